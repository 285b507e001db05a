//! Parses arbitrary bytes as a legacy `.dat` imatrix. The reader must return `Ok` or `Err`,
//! never panic, and every imatrix it accepts must be writable and readable again.
#![no_main]

use imatrix_collect::{read_dat, write_dat, DEFAULT_CHUNK_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(imatrix) = read_dat(data, DEFAULT_CHUNK_SIZE) else {
        return;
    };

    for (name, entry) in imatrix.entries() {
        let importance = imatrix
            .importance_for(name, entry.n_cols())
            .expect("own shape");
        assert!(importance.expect("present").iter().all(|v| v.is_finite()));
    }

    // The rewrite drops zero-count entries and may round values, but must parse.
    let bytes = write_dat(&imatrix).expect("rewrite of an accepted imatrix");
    let reread = read_dat(&bytes, DEFAULT_CHUNK_SIZE).expect("reread of our own output");
    let nonzero_entries = imatrix
        .entries()
        .values()
        .filter(|e| e.counts().iter().any(|&c| c > 0))
        .count();
    assert_eq!(reread.entries().len(), nonzero_entries);
    assert_eq!(reread.chunk_count(), imatrix.chunk_count());
});
