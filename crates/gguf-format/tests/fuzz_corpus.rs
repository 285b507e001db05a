//! Replays every input of the committed fuzz corpus through the reader: each must parse or
//! fail with an error, never panic.

use std::path::Path;

use gguf_format::GgufView;

#[test]
fn fuzz_corpus_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/gguf_reader");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();

        if let Ok(view) = GgufView::parse(&bytes) {
            for t in view.tensors() {
                assert_eq!(
                    view.tensor_data(t).len(),
                    t.size_bytes,
                    "{}",
                    path.display()
                );
            }
        }
        replayed += 1;
    }
    assert!(replayed >= 3, "only {replayed} inputs in {}", dir.display());
}
