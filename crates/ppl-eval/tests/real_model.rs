//! Perplexity and KL divergence on Gemma 3 270M, checked against llama.cpp's figures.
//!
//! The model is `models/gemma-3-270m-q4_k_m.gguf` or the path in
//! `GEMMA3_270M_GGUF`. Without it (or without the `gemma2` feature) every test
//! prints `skipped: ...`, and fails when `CI=true`. The figures come from
//! llama.cpp b11312 on the CPU (`llama-perplexity -c 512 --chunks 20 -t 2`);
//! the F32 base is the exact dequantization of the Q4_K_M file and Q4_0 is a
//! `--pure` quantization of that base without an imatrix.

#![cfg_attr(not(feature = "gemma2"), allow(dead_code))]

use std::path::PathBuf;

/// Relative tolerance for perplexities against llama.cpp.
const PPL_TOLERANCE: f64 = 1e-3;

/// Relative tolerance for perplexity uncertainties and KL statistics against llama.cpp.
const STAT_TOLERANCE: f64 = 1e-2;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Returns the model path, or `None` after printing why the test is skipped.
///
/// # Panics
///
/// Panics when the model is unavailable and `CI=true`.
fn model_path() -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/gemma-3-270m-q4_k_m.gguf"));
    let reason = if !cfg!(feature = "gemma2") {
        "built without the gemma2 feature; run with --features gemma2".to_owned()
    } else if !path.is_file() {
        format!(
            "model missing at {}; run scripts/fetch-model.sh or set GEMMA3_270M_GGUF",
            path.display()
        )
    } else {
        return Some(path);
    };

    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("real-model test cannot run: {reason}");
    }
    eprintln!("skipped: model missing ({reason})");
    None
}

fn assert_close(name: &str, actual: f64, expected: f64, tolerance: f64) {
    let relative = (actual - expected).abs() / expected.abs();
    assert!(
        relative <= tolerance,
        "{name}: got {actual}, llama.cpp {expected} (relative error {relative:.2e} > {tolerance:.0e})"
    );
}

#[cfg(feature = "gemma2")]
mod gemma {
    use std::path::Path;
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Instant;

    use gemma2_model::Model;
    use gguf_format::GgufFile;
    use kquant::pipeline::{quantize_model_to_writer, QuantizeOptions};
    use kquant::plan::FileType;
    use ppl_eval::gemma2::tokenize_for_perplexity;
    use ppl_eval::{
        kl_divergence, perplexity, perplexity_with_kld_base, KldBaseReader, PairedComparison,
        PerplexityConfig, PerplexityResult,
    };

    use super::{assert_close, repo_root, PPL_TOLERANCE, STAT_TOLERANCE};

    /// Serializes the heavy tests: each one already uses every core.
    pub static HEAVY: Mutex<()> = Mutex::new(());

    /// Derived models, built once per test binary in memory: a static owns them for the
    /// whole run, and a temporary folder held there would never be removed.
    pub struct Derived {
        /// The F32 base (about 1.1 GB).
        pub base_f32: Arc<GgufFile>,
        /// The `--pure` Q4_0 quantization of the base.
        pub q4_0: Arc<GgufFile>,
    }

    impl Derived {
        pub fn base_f32(&self) -> Model {
            Model::from_gguf_file(Arc::clone(&self.base_f32)).expect("load the F32 base")
        }

        pub fn q4_0(&self) -> Model {
            Model::from_gguf_file(Arc::clone(&self.q4_0)).expect("load Q4_0")
        }
    }

    fn quantize_in_memory(source: &GgufFile, options: &QuantizeOptions) -> Arc<GgufFile> {
        let mut bytes = Vec::new();
        quantize_model_to_writer(source, &mut bytes, options, &mut |_| {}).expect("quantize");
        Arc::new(GgufFile::from_bytes(bytes).expect("read the quantized bytes"))
    }

    pub fn derived(original: &Path) -> &'static Derived {
        static DERIVED: OnceLock<Derived> = OnceLock::new();
        DERIVED.get_or_init(|| {
            let mut options = QuantizeOptions::new(FileType::F32);
            options.allow_requantize = true;
            let source = GgufFile::open(original).expect("open the original model");
            let base_f32 = quantize_in_memory(&source, &options);

            let mut options = QuantizeOptions::new(FileType::Q4_0);
            options.plan.pure = true;
            let q4_0 = quantize_in_memory(&base_f32, &options);

            Derived { base_f32, q4_0 }
        })
    }

    pub fn load(path: &Path) -> Model {
        Model::from_gguf(path).expect("load model")
    }

    pub fn text_tokens(model: &Model, name: &str) -> Vec<u32> {
        let path = repo_root().join("data").join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        tokenize_for_perplexity(model, &text).expect("tokenize")
    }

    /// Checks that a literal `<bos>` in the text stays plain text: only the
    /// prepended BOS has id 2, as in llama-perplexity, which does not parse special tokens.
    pub fn check_literal_bos(original: &Path) {
        let model = Model::from_gguf(original).expect("load model");
        let tokens = tokenize_for_perplexity(&model, "<bos>The tower is 324 metres tall.")
            .expect("tokenize");
        let bos = model.bos_token();

        assert_eq!(tokens[0], bos, "BOS is prepended");
        assert_eq!(
            tokens.iter().filter(|&&t| t == bos).count(),
            1,
            "{tokens:?}"
        );
    }

    pub fn run_ppl(name: &str, mut model: Model, text: &str, chunks: usize) -> PerplexityResult {
        let tokens = text_tokens(&model, text);
        let config = PerplexityConfig::new(512).with_max_chunks(chunks);

        let start = Instant::now();
        let mut line = String::new();
        let result = perplexity(&mut model, &tokens, &config, |r| {
            line.push_str(&r.to_string())
        })
        .expect("perplexity");
        let seconds = start.elapsed().as_secs_f64();
        eprintln!(
            "{name} on {text}: {line}\n{result}\n{} tokens evaluated in {seconds:.1} s ({:.0} tokens/s)",
            result.n_chunk * 512,
            (result.n_chunk * 512) as f64 / seconds
        );
        result
    }

    pub fn check_ppl(
        name: &str,
        load: impl FnOnce() -> Model,
        text: &str,
        ppl: f64,
        ppl_err: f64,
        tolerance: f64,
    ) {
        let _guard = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        let result = run_ppl(name, load(), text, 20);
        assert_eq!(result.n_chunk, 20);
        assert_close("PPL", result.ppl, ppl, tolerance);
        assert_close(
            "PPL uncertainty",
            result.ppl_err.expect("positive variance"),
            ppl_err,
            STAT_TOLERANCE,
        );
    }

    pub fn check_q4_0_kld(original: &Path) {
        let _guard = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        let derived = derived(original);
        let dir = tempfile::tempdir().expect("temporary folder");
        let base_file = dir.path().join("base-wiki-5.kld");

        let mut base = derived.base_f32();
        let tokens = text_tokens(&base, "wiki.test.raw");
        let config = PerplexityConfig::new(512).with_max_chunks(5);
        let base_result = perplexity_with_kld_base(&mut base, &tokens, &config, &base_file, |_| {})
            .expect("base run");
        drop(base);
        assert_eq!(
            std::fs::metadata(&base_file).unwrap().len(),
            668_487_660,
            "llama.cpp's file size"
        );

        let mut q4_0 = derived.q4_0();
        let mut reader = KldBaseReader::open(&base_file).expect("open base file");
        let result =
            kl_divergence(&mut q4_0, &mut reader, |r| eprintln!("{r}")).expect("KL divergence");
        let stats = &result.stats;
        eprintln!("{stats}");

        assert_close("mean KLD", stats.kld.value, 0.470503, STAT_TOLERANCE);
        assert_close(
            "same top p",
            stats.same_top_p.value,
            0.65333,
            STAT_TOLERANCE,
        );
        assert_close("PPL ratio", stats.ppl_ratio.value, 1.622158, STAT_TOLERANCE);
        assert_close(
            "Mean PPL(base)",
            stats.ppl_base.value,
            15.539670,
            PPL_TOLERANCE,
        );
        assert_close("Mean PPL(Q)", stats.ppl.value, 25.207795, STAT_TOLERANCE);

        // Paired on the same tokens: Q4_0 is worse than the base beyond noise.
        let candidate = perplexity(&mut q4_0, &tokens, &config, |_| {}).expect("Q4_0 perplexity");
        let comparison = PairedComparison::from_results(&base_result, &candidate).expect("pair");
        eprintln!("{comparison}");
        assert!(comparison.ci95.high < 0.0, "{:?}", comparison.ci95);
        assert!(comparison.is_significant());

        let same =
            PairedComparison::from_results(&candidate, &candidate).expect("pair with itself");
        assert!(same.ci95.contains(0.0));
        assert!(!same.is_significant());
    }
}

/// Relative tolerance against llama.cpp's figures: our kernels and graph follow its float
/// order (repacked, tiled, tinyBLAS and vec-dot kernels alike), so only the rounding of the
/// 4 printed decimals (at most 3e-6 here) separates the runs.
const EXACT_PPL_TOLERANCE: f64 = 1e-5;

#[test]
fn q4_k_m_wiki_ppl_matches_llama_cpp() {
    let Some(_path) = model_path() else { return };
    #[cfg(feature = "gemma2")]
    gemma::check_ppl("Q4_K_M", || gemma::load(&_path), "wiki.test.raw", 19.0643, 0.84115, EXACT_PPL_TOLERANCE);
}

#[test]
fn q4_k_m_ja_wiki_ppl_matches_llama_cpp() {
    let Some(_path) = model_path() else { return };
    #[cfg(feature = "gemma2")]
    gemma::check_ppl("Q4_K_M", || gemma::load(&_path), "ja-wiki.test.raw", 34.8796, 1.49715, EXACT_PPL_TOLERANCE);
}

#[test]
fn f32_base_wiki_ppl_matches_llama_cpp() {
    let Some(_path) = model_path() else { return };
    #[cfg(feature = "gemma2")]
    gemma::check_ppl(
        "F32 base",
        || gemma::derived(&_path).base_f32(),
        "wiki.test.raw",
        18.9500,
        0.83589,
        EXACT_PPL_TOLERANCE,
    );
}

#[test]
fn f32_base_ja_wiki_ppl_matches_llama_cpp() {
    let Some(_path) = model_path() else { return };
    #[cfg(feature = "gemma2")]
    gemma::check_ppl(
        "F32 base",
        || gemma::derived(&_path).base_f32(),
        "ja-wiki.test.raw",
        34.5349,
        1.47945,
        EXACT_PPL_TOLERANCE,
    );
}

#[test]
fn q4_0_kld_matches_llama_cpp() {
    let Some(_path) = model_path() else { return };
    #[cfg(feature = "gemma2")]
    gemma::check_q4_0_kld(&_path);
}

#[test]
fn literal_bos_text_is_not_parsed() {
    let Some(_path) = model_path() else { return };
    #[cfg(feature = "gemma2")]
    gemma::check_literal_bos(&_path);
}
