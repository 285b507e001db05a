//! llama-quantize's type plans, checked against llama.cpp's own outputs and the published
//! Gemma 2 9B mix.

use std::collections::BTreeMap;

use gguf_format::GgmlType;
use kquant::plan::{plan_quantization, FileType, ModelInfo, PlanError, PlanOptions, QuantPlan, TensorSpec, TensorTypeOverride};

/// Builds the tensor list of a Gemma model: per layer the seven matrices and six norms
/// (Gemma 3 adds q/k norms), plus the tied token embedding and the output norm.
fn gemma_tensors(gemma3: bool, n_layer: usize, n_embd: u64, n_ff: u64, n_head: u64, n_head_kv: u64, head_dim: u64, n_vocab: u64) -> Vec<TensorSpec> {
    let f32 = GgmlType::F32;
    let mut tensors = vec![
        TensorSpec::new("token_embd.weight", &[n_embd, n_vocab], f32),
        TensorSpec::new("output_norm.weight", &[n_embd], f32),
    ];
    for i in 0..n_layer {
        let name = |suffix: &str| format!("blk.{i}.{suffix}");
        tensors.push(TensorSpec::new(name("attn_q.weight"), &[n_embd, n_head * head_dim], f32));
        tensors.push(TensorSpec::new(name("attn_k.weight"), &[n_embd, n_head_kv * head_dim], f32));
        tensors.push(TensorSpec::new(name("attn_v.weight"), &[n_embd, n_head_kv * head_dim], f32));
        tensors.push(TensorSpec::new(name("attn_output.weight"), &[n_head * head_dim, n_embd], f32));
        tensors.push(TensorSpec::new(name("ffn_gate.weight"), &[n_embd, n_ff], f32));
        tensors.push(TensorSpec::new(name("ffn_up.weight"), &[n_embd, n_ff], f32));
        tensors.push(TensorSpec::new(name("ffn_down.weight"), &[n_ff, n_embd], f32));
        for norm in ["attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"] {
            tensors.push(TensorSpec::new(name(&format!("{norm}.weight")), &[n_embd], f32));
        }
        if gemma3 {
            tensors.push(TensorSpec::new(name("attn_q_norm.weight"), &[head_dim], f32));
            tensors.push(TensorSpec::new(name("attn_k_norm.weight"), &[head_dim], f32));
        }
    }
    tensors
}

fn gemma3_270m() -> (ModelInfo, Vec<TensorSpec>) {
    let model = ModelInfo { arch: "gemma3".into(), n_layer: 18, n_head: 4, n_head_kv: 1, n_expert: 0 };
    (model, gemma_tensors(true, 18, 640, 2048, 4, 1, 256, 262144))
}

fn gemma2_9b() -> (ModelInfo, Vec<TensorSpec>) {
    let model = ModelInfo { arch: "gemma2".into(), n_layer: 42, n_head: 16, n_head_kv: 8, n_expert: 0 };
    (model, gemma_tensors(false, 42, 3584, 14336, 16, 8, 256, 256000))
}

fn layers_with(plan: &QuantPlan, suffix: &str, ggml_type: GgmlType) -> Vec<usize> {
    plan.tensors
        .iter()
        .filter(|t| t.name.ends_with(suffix) && t.target_type == ggml_type)
        .filter_map(|t| kquant::plan::layer_index(&t.name))
        .collect()
}

fn options(output: Option<GgmlType>, token_embd: Option<GgmlType>, pure: bool, has_imatrix: bool) -> PlanOptions {
    PlanOptions { output_tensor_type: output, token_embedding_type: token_embd, pure, has_imatrix, ..Default::default() }
}

#[test]
fn gemma3_270m_q4_k_m_mix() {
    let (model, tensors) = gemma3_270m();
    let plan = plan_quantization(FileType::Q4_K_M, &model, &tensors, &PlanOptions::default()).unwrap();
    let more_bits = vec![0, 1, 4, 7, 10, 13, 15, 16, 17];
    let others: Vec<usize> = (0..18).filter(|i| !more_bits.contains(i)).collect();

    assert_eq!(layers_with(&plan, "attn_output.weight", GgmlType::Q4_K), (0..18).collect::<Vec<_>>());
    assert_eq!(layers_with(&plan, "ffn_down.weight", GgmlType::Q6_K), more_bits);
    assert_eq!(layers_with(&plan, "ffn_down.weight", GgmlType::Q4_K), others);
    assert_eq!(layers_with(&plan, "attn_v.weight", GgmlType::Q8_0), more_bits);
    assert_eq!(layers_with(&plan, "attn_v.weight", GgmlType::Q5_0), others);
    for suffix in ["attn_q.weight", "attn_k.weight", "ffn_gate.weight", "ffn_up.weight"] {
        assert_eq!(layers_with(&plan, suffix, GgmlType::Q5_0), (0..18).collect::<Vec<_>>(), "{suffix}");
    }
    assert_eq!(plan.target("token_embd.weight"), Some(GgmlType::Q8_0));
    for t in plan.tensors.iter().filter(|t| t.name.contains("norm")) {
        assert_eq!(t.target_type, GgmlType::F32, "{}", t.name);
    }
    // Every 640-column k-quant tensor falls back: 72 q/k/gate/up and 18 attn_v.
    assert_eq!(plan.fallbacks().count(), 90);
}

/// The planned type of every tensor equals the type llama-quantize wrote, for all twelve
/// models of the reference set.
#[test]
fn gemma3_270m_plans_match_llama_quantize() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/llama-quantize/quant-hashes.json")).unwrap();
    let reference = parse_reference_types(&text);
    let (model, tensors) = gemma3_270m();
    let q8 = Some(GgmlType::Q8_0);
    let f16 = Some(GgmlType::F16);

    for (label, expected) in &reference {
        let has_imatrix = label.ends_with("-en");
        let (file_type, opts) = match label.trim_end_matches("-en").trim_end_matches("-none") {
            "q4km-M" => (FileType::Q4_K_M, options(None, None, false, has_imatrix)),
            "q4km-L" => (FileType::Q4_K_M, options(q8, q8, false, has_imatrix)),
            "q4km-fp16" => (FileType::Q4_K_M, options(f16, f16, false, has_imatrix)),
            "q4_0-pure" => (FileType::Q4_0, options(None, None, true, has_imatrix)),
            "q3km" => (FileType::Q3_K_M, options(None, None, false, has_imatrix)),
            "iq4xs" => (FileType::IQ4_XS, options(None, None, false, has_imatrix)),
            other => panic!("unknown reference model {other}"),
        };
        let plan = plan_quantization(file_type, &model, &tensors, &opts).unwrap();

        assert_eq!(plan.tensors.len(), expected.len(), "{label}: tensor count");
        for t in &plan.tensors {
            assert_eq!(Some(&t.target_type.to_string()), expected.get(&t.name), "{label}: {}", t.name);
        }
    }
    assert_eq!(reference.len(), 12);
}

/// Reads `{model: {tensor: [type, sha256]}}` into `{model: {tensor: type}}`.
fn parse_reference_types(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let json: BTreeMap<String, BTreeMap<String, (String, String)>> = serde_json::from_str(text).unwrap();
    json.into_iter()
        .map(|(model, tensors)| (model, tensors.into_iter().map(|(name, (ggml_type, _))| (name, ggml_type)).collect()))
        .collect()
}

#[test]
fn gemma2_9b_q4_k_m_mix() {
    let (model, tensors) = gemma2_9b();
    let plan = plan_quantization(FileType::Q4_K_M, &model, &tensors, &PlanOptions::default()).unwrap();
    let mut more_bits: Vec<usize> = vec![0, 1, 2, 3, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34];
    more_bits.extend(36..42);
    let others: Vec<usize> = (0..42).filter(|i| !more_bits.contains(i)).collect();

    for suffix in ["attn_v.weight", "ffn_down.weight"] {
        assert_eq!(layers_with(&plan, suffix, GgmlType::Q6_K), more_bits, "{suffix}");
        assert_eq!(layers_with(&plan, suffix, GgmlType::Q4_K), others, "{suffix}");
    }
    assert_eq!(plan.target("token_embd.weight"), Some(GgmlType::Q6_K));
    assert_eq!(plan.fallbacks().count(), 0);

    let q8 = Some(GgmlType::Q8_0);
    let plan_l = plan_quantization(FileType::Q4_K_M, &model, &tensors, &options(q8, q8, false, false)).unwrap();
    assert_eq!(plan_l.target("token_embd.weight"), Some(GgmlType::Q8_0));

    let f16 = Some(GgmlType::F16);
    let plan_f16 = plan_quantization(FileType::Q4_K_M, &model, &tensors, &options(f16, f16, false, false)).unwrap();
    assert_eq!(plan_f16.target("token_embd.weight"), Some(GgmlType::F16));
}

/// Rows whose length is not a multiple of 256 fall back to a 32-block type, or to F16 when
/// not even 32 divides them; a type forced by an option that cannot hold the rows is an
/// error before any output exists.
///
/// The fallback of Q2_K and Q3_K is Q4_0, as in llama.cpp b11312 (older versions used IQ4_NL).
#[test]
fn row_length_fallback_and_forced_types() {
    let model = ModelInfo { arch: "gemma2".into(), n_layer: 1, n_head: 8, n_head_kv: 8, n_expert: 0 };
    let tensors = [
        TensorSpec::new("blk.0.attn_q.weight", &[1152, 8], GgmlType::F32),
        TensorSpec::new("blk.0.ffn_up.weight", &[1000, 8], GgmlType::F32),
        TensorSpec::new("blk.0.attn_k.weight", &[512, 8], GgmlType::F32),
    ];
    let expected = [
        (FileType::Q2_K, GgmlType::Q4_0, GgmlType::Q2_K),
        (FileType::Q3_K_S, GgmlType::Q4_0, GgmlType::Q3_K),
        (FileType::IQ4_XS, GgmlType::IQ4_NL, GgmlType::IQ4_XS),
        (FileType::Q4_K_S, GgmlType::Q5_0, GgmlType::Q4_K),
        (FileType::Q5_K_S, GgmlType::Q5_1, GgmlType::Q5_K),
        (FileType::Q6_K, GgmlType::Q8_0, GgmlType::Q6_K),
    ];
    for (file_type, fallback, control) in expected {
        let plan = plan_quantization(file_type, &model, &tensors, &PlanOptions::default()).unwrap();
        assert_eq!(plan.target("blk.0.attn_q.weight"), Some(fallback), "{file_type}");
        assert_eq!(plan.target("blk.0.ffn_up.weight"), Some(GgmlType::F16), "{file_type}");
        assert_eq!(plan.target("blk.0.attn_k.weight"), Some(control), "{file_type}");
    }

    let forced = PlanOptions {
        tensor_type_overrides: vec![TensorTypeOverride::parse("attn_q=q4_k").unwrap()],
        ..Default::default()
    };
    let err = plan_quantization(FileType::Q8_0, &model, &tensors, &forced).unwrap_err();
    assert!(matches!(err, PlanError::RowLength { ne0: 1152, .. }), "{err}");
    assert!(err.to_string().contains("row length (ne0) 1152"), "{err}");
}

#[test]
fn overrides_take_first_differing_rule() {
    let (model, tensors) = gemma3_270m();
    let rules = ["attn_v=q5_0", "attn_v=q8_0", "ffn_down=q4_k"];
    let opts = PlanOptions {
        tensor_type_overrides: rules.iter().map(|r| TensorTypeOverride::parse(r).unwrap()).collect(),
        ..Default::default()
    };
    let plan = plan_quantization(FileType::Q4_0, &model, &tensors, &opts).unwrap();
    assert_eq!(plan.target("blk.3.attn_v.weight"), Some(GgmlType::Q5_0));
    assert_eq!(plan.target("blk.3.ffn_down.weight"), Some(GgmlType::Q4_K));
    assert_eq!(plan.target("blk.3.attn_q.weight"), Some(GgmlType::Q4_0));

    for bad in ["attn_v", "=q8_0", "attn_v=q9_9", "attn_v(=q8_0"] {
        assert!(TensorTypeOverride::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn leave_output_tensor_keeps_type() {
    let model = ModelInfo { arch: "llama".into(), n_layer: 1, n_head: 8, n_head_kv: 8, n_expert: 0 };
    let tensors = [
        TensorSpec::new("token_embd.weight", &[512, 1000], GgmlType::F16),
        TensorSpec::new("output.weight", &[512, 1000], GgmlType::F16),
    ];
    let opts = PlanOptions { leave_output_tensor: true, ..Default::default() };
    let plan = plan_quantization(FileType::Q4_K_M, &model, &tensors, &opts).unwrap();
    assert_eq!(plan.target("output.weight"), Some(GgmlType::F16));
    assert_eq!(plan.target("token_embd.weight"), Some(GgmlType::Q4_K), "untied embedding takes the default");

    let plan = plan_quantization(FileType::Q4_K_M, &model, &tensors, &PlanOptions::default()).unwrap();
    assert_eq!(plan.target("output.weight"), Some(GgmlType::Q6_K));
}

#[test]
fn float_file_types_convert_everything() {
    let (model, tensors) = gemma3_270m();
    for (file_type, ggml_type) in [(FileType::F16, GgmlType::F16), (FileType::BF16, GgmlType::BF16), (FileType::F32, GgmlType::F32)] {
        let plan = plan_quantization(file_type, &model, &tensors, &PlanOptions::default()).unwrap();
        assert_eq!(plan.target("token_embd.weight"), Some(ggml_type));
        assert_eq!(plan.target("blk.0.ffn_down.weight"), Some(ggml_type));
        assert_eq!(plan.target("blk.0.attn_norm.weight"), Some(GgmlType::F32));
    }
}

#[test]
fn file_type_names_parse() {
    for file_type in FileType::all() {
        assert_eq!(file_type.name().parse::<FileType>(), Ok(file_type));
    }
    assert_eq!("q4_k".parse::<FileType>(), Ok(FileType::Q4_K_M));
    assert_eq!(FileType::Q4_K_M.id(), 15);
    assert!("Q4_K_X".parse::<FileType>().is_err());
}
