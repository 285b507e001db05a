//! Parses arbitrary bytes as a GGUF imatrix. The reader must return `Ok` or `Err`, never
//! panic, and every imatrix it accepts must survive a rewrite unchanged.
#![no_main]

use imatrix_collect::{compare, read_gguf, write_gguf_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(imatrix) = read_gguf(data) else { return };

    // Use the entries the way quantization and comparison would.
    for (name, entry) in imatrix.entries() {
        let importance = imatrix.expert_importance_for(name, entry.n_cols(), entry.n_mat());
        assert_eq!(
            importance.expect("own shape").expect("present").len(),
            entry.in_sum2().len()
        );
    }
    let report = compare(&imatrix, &imatrix);
    assert_eq!(report.tensors.len(), imatrix.entries().len());

    // Accepted names fit GGUF (the suffixes were already on them), so writing cannot fail.
    let bytes = write_gguf_bytes(&imatrix).expect("rewrite of an accepted imatrix");
    let reread = read_gguf(&bytes).expect("reread of our own output");
    assert_eq!(reread, imatrix);
});
