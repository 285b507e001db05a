//! Weighted mixing and comparison on synthetic and llama.cpp data.

use std::path::PathBuf;

use imatrix_collect::{
    compare, cosine_similarity, mix, spearman, top_overlap, Imatrix, ImatrixEntry, ImatrixError,
};

fn load(name: &str) -> Imatrix {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    Imatrix::load(path).unwrap()
}

fn single(name: &str, sums: Vec<f32>, count: u64) -> Imatrix {
    let mut imatrix = Imatrix::new(512);
    imatrix.set_chunk_count(1);
    let n_cols = sums.len();
    imatrix.insert(
        name,
        ImatrixEntry::new(name, n_cols, sums, vec![count]).unwrap(),
    );
    imatrix
}

#[test]
fn mix_normalises_by_token_count() {
    // Same per-token means, ten times the tokens: the mix must not move.
    let short = single("w", vec![10.0, 20.0], 10);
    let long = single("w", vec![100.0, 200.0], 100);
    let mixed = mix(&[(&short, 0.3), (&long, 0.7)]).unwrap();
    assert_eq!(mixed.importance_for("w", 2).unwrap(), Some(vec![1.0, 2.0]));
    assert_eq!(mixed.entry("w").unwrap().counts(), &[110]);
    assert_eq!(mixed.chunk_count(), 2);
}

#[test]
fn mix_weights_are_ratios() {
    let a = single("w", vec![1.0, 0.0], 1);
    let b = single("w", vec![0.0, 1.0], 1);
    let mixed = mix(&[(&a, 7.0), (&b, 3.0)]).unwrap();
    let importance = mixed.importance_for("w", 2).unwrap().unwrap();
    assert!((importance[0] - 0.7).abs() < 1e-6, "{importance:?}");
    assert!((importance[1] - 0.3).abs() < 1e-6, "{importance:?}");
}

#[test]
fn mix_renormalises_for_missing_tensors() {
    let a = single("only_a", vec![4.0], 2);
    let mut b = single("shared", vec![9.0], 3);
    b.insert(
        "only_b",
        ImatrixEntry::new("only_b", 1, vec![5.0], vec![5]).unwrap(),
    );
    let mixed = mix(&[(&a, 0.9), (&b, 0.1)]).unwrap();
    assert_eq!(mixed.importance_for("only_a", 1).unwrap(), Some(vec![2.0]));
    assert_eq!(mixed.importance_for("only_b", 1).unwrap(), Some(vec![1.0]));
    assert_eq!(mixed.importance_for("shared", 1).unwrap(), Some(vec![3.0]));
}

#[test]
fn mix_rejects_bad_weights() {
    let a = single("w", vec![1.0], 1);
    for weight in [-1.0, f64::NAN, f64::INFINITY] {
        let error = mix(&[(&a, weight)]).unwrap_err();
        assert!(
            matches!(error, ImatrixError::InvalidWeight { index: 0, .. }),
            "{weight}: {error}"
        );
    }
    assert!(matches!(
        mix(&[(&a, 0.0)]),
        Err(ImatrixError::InvalidWeight { .. })
    ));
    assert!(matches!(mix(&[]), Err(ImatrixError::NoInput)));
}

#[test]
fn mix_of_llama_files_lies_between_sources() {
    let en = load("imatrix-en.gguf");
    let ja = load("imatrix-ja.gguf");
    let mixed = mix(&[(&en, 0.5), (&ja, 0.5)]).unwrap();
    assert_eq!(mixed.entries().len(), 126);
    assert_eq!(mixed.chunk_count(), 200);
    assert_eq!(mixed.token_count(), 20_480 + 81_920);

    let name = "blk.5.ffn_down.weight";
    let e = en.importance_for(name, 2048).unwrap().unwrap();
    let j = ja.importance_for(name, 2048).unwrap().unwrap();
    let m = mixed.importance_for(name, 2048).unwrap().unwrap();
    for column in 0..2048 {
        let want = (e[column] + j[column]) / 2.0;
        assert!(
            (m[column] - want).abs() <= 1e-5 * want.abs().max(1e-30),
            "{name}[{column}]"
        );
    }

    // The 50/50 mix is closer to en than the token-weighted merge (ja has 4x the tokens).
    let merged = Imatrix::merge_all([&en, &ja]).unwrap();
    let mixed_vs_en = compare(&en, &mixed).min_cosine().unwrap();
    let merged_vs_en = compare(&en, &merged).min_cosine().unwrap();
    assert!(
        mixed_vs_en > merged_vs_en,
        "mixed {mixed_vs_en} vs merged {merged_vs_en}"
    );
}

#[test]
fn compare_identical_is_perfect() {
    let en = load("imatrix-en.gguf");
    let report = compare(&en, &en);
    assert_eq!(report.tensors.len(), 126);
    for tensor in &report.tensors {
        assert!(
            (tensor.cosine.unwrap() - 1.0).abs() < 1e-12,
            "{}",
            tensor.name
        );
        assert!(
            (tensor.spearman.unwrap() - 1.0).abs() < 1e-12,
            "{}",
            tensor.name
        );
        assert_eq!(tensor.top_overlap, 1.0, "{}", tensor.name);
    }
    let table = report.to_string();
    assert!(table.starts_with("tensor"), "{table}");
    assert!(table.contains("126 tensors compared"), "{table}");
}

#[test]
fn compare_lists_unmatched_tensors() {
    let mut a = single("shared", vec![1.0, 2.0], 1);
    a.insert("only_a", ImatrixEntry::zeros(2, 1));
    let mut b = single("shared", vec![1.0, 2.0, 3.0], 1);
    b.insert("only_b", ImatrixEntry::zeros(2, 1));

    let report = compare(&a, &b);
    assert!(report.tensors.is_empty());
    assert_eq!(report.only_in_a, vec!["only_a".to_owned()]);
    assert_eq!(report.only_in_b, vec!["only_b".to_owned()]);
    assert_eq!(report.shape_differences.len(), 1);
    assert_eq!(report.shape_differences[0].shape_a, [2, 1]);
    assert_eq!(report.shape_differences[0].shape_b, [3, 1]);

    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["only_in_a"][0], "only_a");
}

#[test]
fn statistics_on_known_vectors() {
    assert_eq!(cosine_similarity(&[1.0, 0.0], &[0.0, 1.0]), Some(0.0));
    assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 1.0]), None);

    // Reversed order: rank correlation -1; ties take their average rank.
    assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[8.0, 6.0, 4.0, 2.0]).unwrap() + 1.0).abs() < 1e-12);
    let tied = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!((tied - 0.948_683_298_050_513_8).abs() < 1e-12, "{tied}");
    assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);

    // 200 columns: the top 1% is 2 columns; one of them is shared.
    let mut x = vec![0.0f32; 200];
    let mut y = vec![0.0f32; 200];
    x[10] = 5.0;
    x[20] = 4.0;
    y[10] = 3.0;
    y[30] = 9.0;
    assert_eq!(top_overlap(&x, &y, 0.01), 0.5);
}
