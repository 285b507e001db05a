//! Study specifications: parsing, validation and cache keys, without a model.

use kquant::plan::FileType;
use quant_study::{cache_key, render_csv, render_markdown, ImatrixMode, Quantization, StudyError, StudySpec, Variant};

fn reference() -> StudySpec {
    StudySpec::reference("model.gguf", "data", "out")
}

#[test]
fn reference_spec_has_published_cells() {
    let spec = reference();
    spec.validate().unwrap();
    let labels: Vec<String> = spec.cells().iter().map(|c| c.label()).collect();
    assert_eq!(labels.len(), 6 * 4);
    assert_eq!(labels[0], "Q4_K_M-M-none");
    assert!(labels.contains(&"Q4_K_M-fp16-enja".to_owned()));
    assert!(labels.contains(&"Q4_0-pure-enja-mixed".to_owned()));
    assert!(labels.contains(&"IQ4_XS-M-en".to_owned()));
    assert_eq!(spec.calibration[0].chunks, Some(40));
    assert_eq!(spec.calibration[1].chunks, Some(160));
}

#[test]
fn quantization_list_parses_variants() {
    let list = Quantization::parse_list("Q4_K_M:M,L,fp16").unwrap();
    assert_eq!(list.iter().map(|q| q.variant).collect::<Vec<_>>(), vec![Variant::M, Variant::L, Variant::Fp16]);
    assert!(list.iter().all(|q| q.file_type == FileType::Q4_K_M));

    let pure = Quantization::parse_list("q4_0:pure").unwrap();
    assert_eq!(pure[0].label(), "Q4_0-pure");
    assert!(pure[0].options().plan.pure);

    let l = Quantization::parse_list("Q4_K_M:L").unwrap()[0].options();
    assert_eq!(l.plan.output_tensor_type, Some(gguf_format::GgmlType::Q8_0));
    assert_eq!(l.plan.token_embedding_type, Some(gguf_format::GgmlType::Q8_0));
}

#[test]
fn quantization_list_rejects_unknown() {
    let err = Quantization::parse_list("Q4_K_Q").unwrap_err();
    assert!(matches!(err, StudyError::InvalidQuant { .. }), "{err}");
    let err = Quantization::parse_list("Q4_0:XL").unwrap_err();
    assert!(err.to_string().contains("expected M, L, fp16 or pure"), "{err}");
    let err = Quantization::parse_list("F32").unwrap_err();
    assert!(err.to_string().contains("base"), "{err}");
}

#[test]
fn imatrix_modes_parse() {
    assert_eq!(ImatrixMode::parse("none").unwrap(), ImatrixMode::None);
    assert_eq!(ImatrixMode::parse("en").unwrap(), ImatrixMode::Merged { name: "en".into(), sets: vec!["en".into()] });
    assert_eq!(ImatrixMode::parse("enja=en+ja").unwrap(), ImatrixMode::Merged { name: "enja".into(), sets: vec!["en".into(), "ja".into()] });
    assert_eq!(
        ImatrixMode::parse("mixed=en:0.5+ja:0.5").unwrap(),
        ImatrixMode::Mixed { name: "mixed".into(), sets: vec![("en".into(), 0.5), ("ja".into(), 0.5)] }
    );
}

#[test]
fn imatrix_modes_reject_bad_text() {
    for bad in ["x=", "=en", "x=en+", "x=en:0.5+ja", "x=en:-1", "x=en:nan", "x=en:abc"] {
        let err = ImatrixMode::parse(bad).unwrap_err();
        assert!(matches!(err, StudyError::InvalidSpec(_)), "{bad}: {err}");
    }
}

#[test]
fn validation_names_the_fault() {
    let mut spec = reference();
    spec.modes.push(ImatrixMode::Merged { name: "fr".into(), sets: vec!["fr".into()] });
    let err = spec.validate().unwrap_err().to_string();
    assert!(err.contains("'fr'"), "{err}");
    assert!(err.contains("not defined"), "{err}");

    let mut spec = reference();
    spec.kld_chunks = 30;
    let err = spec.validate().unwrap_err().to_string();
    assert!(err.contains("--kld-chunks 30"), "{err}");

    let mut spec = reference();
    spec.eval_chunks = 0;
    assert!(spec.validate().unwrap_err().to_string().contains("--chunks"));

    let mut spec = reference();
    spec.texts[1].name = "wiki".into();
    assert!(spec.validate().unwrap_err().to_string().contains("given twice"));

    let mut spec = reference();
    spec.texts[0].name = "../wiki".into();
    assert!(spec.validate().unwrap_err().to_string().contains("'../wiki'"));
}

#[test]
fn missing_input_fails_before_work() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StudySpec::reference(dir.path().join("absent.gguf"), dir.path(), dir.path().join("out"));
    let err = quant_study::run_study(&spec, None, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("absent.gguf"), "{err}");
    assert!(err.to_string().contains("not found"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing is written");
}

#[test]
fn cache_key_depends_on_every_part() {
    let a = cache_key(&[("model", "abc"), ("chunks", "20")]);
    assert_eq!(a.len(), 64);
    assert_eq!(a, cache_key(&[("model", "abc"), ("chunks", "20")]));
    assert_ne!(a, cache_key(&[("model", "abc"), ("chunks", "21")]));
    assert_ne!(a, cache_key(&[("model", "ab"), ("cchunks", "20")]), "parts are delimited");
}

/// Returns results of the reference specification with the given cells and nothing else.
fn results_with(cells: Vec<quant_study::CellResult>) -> quant_study::StudyResults {
    quant_study::StudyResults {
        tool_version: "0".into(),
        spec: reference(),
        base_from_quantized: true,
        base: Vec::new(),
        cells,
        paired: Vec::new(),
        imatrix_comparisons: Vec::new(),
        timings: Vec::new(),
        recomputed: Vec::new(),
        wall_seconds: 0.0,
    }
}

#[test]
fn empty_results_render() {
    let results = results_with(Vec::new());
    let markdown = render_markdown(&results);
    assert!(markdown.contains("| base (F32) | - | - | - |"), "{markdown}");
    assert_eq!(render_csv(&results).lines().count(), 1);
}

#[test]
fn identical_files_are_named_in_markdown() {
    let cell = |label: &str, variant: Variant, sha: &str| quant_study::CellResult {
        label: label.into(),
        quantization: Quantization { file_type: kquant::plan::FileType::Q4_K_M, variant },
        mode: "en".into(),
        model_bytes: 1,
        model_sha256: sha.into(),
        evals: Vec::new(),
    };
    let mut results = results_with(vec![
        cell("Q4_K_M-M-en", Variant::M, "aa"),
        cell("Q4_K_M-L-en", Variant::L, "aa"),
        cell("Q4_K_M-fp16-en", Variant::Fp16, "bb"),
    ]);
    let markdown = render_markdown(&results);
    assert!(markdown.contains("byte-identical files (same sha256), so their figures are equal: `Q4_K_M-M-en` = `Q4_K_M-L-en`."), "{markdown}");
    assert!(!markdown.contains("Q4_K_M-fp16-en`"), "{markdown}");

    results.cells[1].model_sha256 = "cc".into();
    assert!(!render_markdown(&results).contains("byte-identical"));
}
