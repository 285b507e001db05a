//! Replays every input of the committed `dequantize_blocks` fuzz corpus through the fuzz
//! target's own checks: dequantization, `validate_row_data` and the vec-dot matmul must
//! never panic, and accepted data must give no NaN.

use std::path::Path;

#[path = "../../../fuzz/checks/dequantize_blocks.rs"]
mod checks;

#[test]
fn dequantize_corpus_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dequantize_blocks");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();

        let outcome = std::panic::catch_unwind(|| checks::check(&bytes));
        assert!(outcome.is_ok(), "{} broke a check", path.display());
        replayed += 1;
    }
    assert!(
        replayed >= 17,
        "only {replayed} inputs in {}",
        dir.display()
    );
}
