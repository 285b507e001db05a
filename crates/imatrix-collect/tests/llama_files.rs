//! Reading llama.cpp's own imatrix files (copies in tests/data, see its README).

use std::path::PathBuf;

use imatrix_collect::{compare, Imatrix, ImatrixFormat};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn load(name: &str) -> Imatrix {
    Imatrix::load(data(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

#[test]
fn gguf_metadata_and_entries() {
    let en = load("imatrix-en.gguf");
    assert_eq!(en.chunk_count(), 40);
    assert_eq!(en.chunk_size(), 512);
    assert_eq!(en.datasets().len(), 1);
    assert!(en.datasets()[0].ends_with("calibration_datav3.txt"));
    assert_eq!(en.entries().len(), 126);
    assert_eq!(en.token_count(), 20_480);

    let down = en
        .entry("blk.17.ffn_down.weight")
        .expect("blk.17.ffn_down.weight");
    assert_eq!(down.n_cols(), 2048);
    assert_eq!(down.n_mat(), 1);
    assert_eq!(down.counts(), &[20_480]);
    assert!(en.entry("token_embd.weight").is_none());
    assert!(en.entry("output.weight").is_none());
}

#[test]
fn gguf_and_dat_give_same_mean_squares() {
    let gguf = load("imatrix-en.gguf");
    let dat = load("imatrix-en.dat");
    assert_eq!(
        ImatrixFormat::detect(&std::fs::read(data("imatrix-en.dat")).unwrap()),
        ImatrixFormat::Dat
    );
    assert_eq!(dat.chunk_count(), 40);
    assert_eq!(dat.entries().len(), gguf.entries().len());

    for (name, entry) in gguf.entries() {
        let from_dat = dat
            .entry(name)
            .unwrap_or_else(|| panic!("{name} missing from .dat"));
        assert_eq!(from_dat.counts(), entry.counts(), "{name}: counts");

        let expected = entry.mean_squares();
        let found = from_dat.mean_squares();
        assert_eq!(found.len(), expected.len(), "{name}: length");
        for (column, (&a, &b)) in found.iter().zip(&expected).enumerate() {
            // The .dat stores (sum / count) * ncall in f32, one extra rounding each way.
            let tolerance = 4.0 * f32::EPSILON * b.abs();
            assert!(
                (a - b).abs() <= tolerance,
                "{name}[{column}]: dat {a} vs gguf {b}"
            );
        }
    }
}

#[test]
fn merge_reproduces_llama_enja() {
    let en = load("imatrix-en.gguf");
    let ja = load("imatrix-ja.gguf");
    let enja = load("imatrix-enja.gguf");

    let merged = Imatrix::merge_all([&en, &ja]).unwrap();
    assert_eq!(merged.chunk_count(), enja.chunk_count());
    assert_eq!(merged.datasets(), enja.datasets());

    // llama.cpp adds the same f32 values in the same order, so the result is bit-exact.
    assert_eq!(merged.entries(), enja.entries());
}

#[test]
fn load_merged_reads_both_formats() {
    let merged = Imatrix::load_merged(&[data("imatrix-en.dat"), data("imatrix-ja.gguf")]).unwrap();
    let enja = load("imatrix-enja.gguf");
    let report = compare(&merged, &enja);
    assert_eq!(report.tensors.len(), 126);
    assert!(report.min_cosine().unwrap() > 0.999_999, "{report}");
    for tensor in &report.tensors {
        assert_eq!(tensor.count_a, tensor.count_b, "{}", tensor.name);
    }
}

#[test]
fn importance_matches_manual_division() {
    let en = load("imatrix-en.gguf");
    let entry = en.entry("blk.0.attn_k.weight").unwrap();
    let importance = en
        .importance_for("blk.0.attn_k.weight", 640)
        .unwrap()
        .unwrap();
    assert_eq!(importance.len(), 640);
    assert_eq!(importance[0], entry.in_sum2()[0] / 20_480.0);
}

#[test]
fn english_and_japanese_differ_measurably() {
    let en = load("imatrix-en.gguf");
    let ja = load("imatrix-ja.gguf");
    let report = compare(&en, &ja);
    assert_eq!(report.tensors.len(), 126);
    assert!(report.only_in_a.is_empty());
    assert!(report.only_in_b.is_empty());

    let min = report.min_cosine().unwrap();
    assert!(
        min < 0.9999,
        "en and ja should not be identical, min cosine {min}"
    );
    assert!(min > 0.0, "mean squares are non-negative, min cosine {min}");

    let json = report.to_json().unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["tensors"].as_array().unwrap().len(), 126);
}
