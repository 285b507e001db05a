//! Parses arbitrary bytes as GGUF and panics (a finding) if the reader panics, or if a file
//! it accepts does not survive a rewrite through the writer unchanged.
#![no_main]

use gguf_format::{GgufView, GgufWriter};
use libfuzzer_sys::fuzz_target;

/// Writes the metadata and tensors of `view` into a new file.
fn rewrite(view: &GgufView<'_>) -> Vec<u8> {
    let mut writer = GgufWriter::new(view.metadata().clone());
    for t in view.tensors() {
        writer
            .add_tensor(t.name.clone(), &t.dims, t.ggml_type)
            .expect("accepted tensor info");
    }
    writer
        .write_to_vec(|_, info, out| Ok(out.write_all(view.tensor_bytes(&info.name).unwrap())?))
        .expect("rewrite of an accepted file")
}

fuzz_target!(|data: &[u8]| {
    let Ok(view) = GgufView::parse(data) else {
        return;
    };

    // Touch every accessor the way a loader would. Values are compared by address because
    // a NaN float is not equal to itself.
    for (key, value) in view.metadata().iter() {
        assert!(std::ptr::eq(view.metadata().get(key).unwrap(), value));
    }
    for t in view.tensors() {
        assert_eq!(view.tensor_data(t).len(), t.size_bytes);
        assert_eq!(view.tensor(&t.name), Some(t));
    }

    // Whatever the reader accepts, the writer must reproduce: a second rewrite of the first
    // rewrite gives the same bytes, and every tensor keeps its data.
    let bytes = rewrite(&view);
    let reread = GgufView::parse(&bytes).expect("reread of our own output");
    assert_eq!(rewrite(&reread), bytes);
    for t in view.tensors() {
        assert_eq!(reread.tensor_bytes(&t.name), Some(view.tensor_data(t)));
    }
});
