//! Gemma 2 soft-capping and the query scale of the 27B sizes.

use gemma2_model::ops::soft_cap;
use gemma2_model::{Arch, Config};

#[test]
fn final_cap_of_thirty() {
    let capped: Vec<f32> = [100.0f32, 0.0, -100.0].iter().map(|&x| soft_cap(x, 30.0)).collect();
    assert!((capped[0] - 29.9237).abs() < 1e-4, "{capped:?}");
    assert_eq!(capped[1], 0.0);
    assert!((capped[2] + 29.9237).abs() < 1e-4, "{capped:?}");
}

#[test]
fn attention_cap_bounds_huge_scores() {
    let capped = soft_cap(500.0, 50.0);
    assert!(capped <= 50.0);
    assert!((capped - 49.999_999_79).abs() < 1e-5, "{capped}");
    assert!(soft_cap(-500.0, 50.0) >= -50.0);
}

#[test]
fn query_scale_of_27b_uses_embd_per_head() {
    // Gemma 2 27B: n_embd 4608, 32 heads of 128, 46 layers; query_pre_attn_scalar 144.
    let scale = Config::llama_cpp_query_scale(Arch::Gemma2, 46, 4608, 32, 128);
    assert!((scale - 1.0 / 12.0).abs() < 1e-7, "{scale}");

    // Gemma 2 9B (42 layers) scales by the head size.
    let scale = Config::llama_cpp_query_scale(Arch::Gemma2, 42, 3584, 16, 256);
    assert_eq!(scale, 1.0 / 16.0);

    // Gemma 3 27B has 62 layers: 5376 / 32 = 168.
    let scale = Config::llama_cpp_query_scale(Arch::Gemma3, 62, 5376, 32, 128);
    assert!((scale - 1.0 / 168f32.sqrt()).abs() < 1e-7, "{scale}");
}
