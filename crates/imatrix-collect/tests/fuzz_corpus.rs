//! Replays the committed fuzz corpora (fuzz/corpus/imatrix_gguf and imatrix_dat) with the
//! fuzz targets' checks, so every input the fuzzers kept stays covered by `cargo test`.

use std::path::PathBuf;

use imatrix_collect::{
    compare, read_dat, read_gguf, write_dat, write_gguf_bytes, DEFAULT_CHUNK_SIZE,
};

/// Returns every file of `fuzz/corpus/<target>`, failing when the folder is missing or empty.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no inputs", dir.display());
    files
}

#[test]
fn gguf_corpus_replays() {
    let mut accepted = 0;
    for (path, bytes) in corpus("imatrix_gguf") {
        let Ok(imatrix) = read_gguf(&bytes) else {
            continue;
        };
        accepted += 1;

        for (name, entry) in imatrix.entries() {
            let importance = imatrix
                .expert_importance_for(name, entry.n_cols(), entry.n_mat())
                .unwrap();
            assert_eq!(
                importance.unwrap().len(),
                entry.in_sum2().len(),
                "{}",
                path.display()
            );
        }
        assert_eq!(
            compare(&imatrix, &imatrix).tensors.len(),
            imatrix.entries().len()
        );

        let rewritten = write_gguf_bytes(&imatrix).unwrap();
        assert_eq!(
            read_gguf(&rewritten).unwrap(),
            imatrix,
            "{}",
            path.display()
        );
    }
    assert!(
        accepted >= 3,
        "only {accepted} corpus files parse; the seeds are gone"
    );
}

#[test]
fn dat_corpus_replays() {
    let mut accepted = 0;
    for (path, bytes) in corpus("imatrix_dat") {
        let Ok(imatrix) = read_dat(&bytes, DEFAULT_CHUNK_SIZE) else {
            continue;
        };
        accepted += 1;

        for (name, entry) in imatrix.entries() {
            let importance = imatrix
                .importance_for(name, entry.n_cols())
                .unwrap()
                .unwrap();
            assert!(
                importance.iter().all(|v| v.is_finite()),
                "{}",
                path.display()
            );
        }

        let rewritten = write_dat(&imatrix).unwrap();
        let reread = read_dat(&rewritten, DEFAULT_CHUNK_SIZE).unwrap();
        let nonzero_entries = imatrix
            .entries()
            .values()
            .filter(|e| e.counts().iter().any(|&c| c > 0))
            .count();
        assert_eq!(
            reread.entries().len(),
            nonzero_entries,
            "{}",
            path.display()
        );
        assert_eq!(
            reread.chunk_count(),
            imatrix.chunk_count(),
            "{}",
            path.display()
        );
    }
    assert!(
        accepted >= 3,
        "only {accepted} corpus files parse; the seeds are gone"
    );
}
