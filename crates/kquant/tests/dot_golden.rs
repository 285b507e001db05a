//! Every vec-dot kernel, on every instruction set this CPU supports, against a plain f64 dot
//! product of ggml's own dequantized weights with the dequantized activations.
//!
//! The weights are the golden vectors in `tests/data/golden-quant` (quantized by ggml, with
//! ggml's dequantization beside them). Because both sides see exactly the same weights and
//! activation codes, the only difference left is float rounding of the accumulation, so the
//! tolerance is tight: `1e-3 * |reference| + 1e-5 * sum(|w * a|)`.

use std::path::{Path, PathBuf};

use gguf_format::GgmlType;
use kquant::{matmul_quantized_with_isa, quantize_activations, vec_dot_type, Isa, WeightMatrix};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-quant")
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// Returns `n` deterministic activations in -1..1 with a few larger outliers, like the
/// hidden state of a transformer layer.
fn activations(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            if i % 97 == 13 {
                unit * 20.0
            } else {
                unit
            }
        })
        .collect()
}

/// Copies `bytes` into a vector of `T`, whatever their alignment.
fn blocks_of<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    let mut out = vec![T::zeroed(); bytes.len() / std::mem::size_of::<T>()];
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(bytes);
    out
}

/// Dequantizes activation rows through the public block types.
fn dequantize_activations(acts: &kquant::QuantizedActivations) -> Vec<f32> {
    use kquant::activation::ActivationBlock;
    use kquant::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1};

    let bytes = acts.as_bytes();
    let n = acts.n_batch() * acts.n_cols();
    let mut out = vec![0.0f32; n];
    match acts.ggml_type() {
        GgmlType::Q8_0 => {
            let blocks: Vec<BlockQ8_0> = blocks_of(bytes);
            BlockQ8_0::dequantize_activation_row(&blocks, &mut out);
        }
        GgmlType::Q8_1 => {
            let blocks: Vec<BlockQ8_1> = blocks_of(bytes);
            BlockQ8_1::dequantize_activation_row(&blocks, &mut out);
        }
        GgmlType::Q8_K => {
            let blocks: Vec<BlockQ8K> = blocks_of(bytes);
            BlockQ8K::dequantize_activation_row(&blocks, &mut out);
        }
        GgmlType::F32 => out.copy_from_slice(&blocks_of::<f32>(bytes)),
        GgmlType::F16 => {
            let v: Vec<half::f16> = blocks_of(bytes);
            half::f16::dequantize_activation_row(&v, &mut out);
        }
        GgmlType::BF16 => {
            let v: Vec<half::bf16> = blocks_of(bytes);
            half::bf16::dequantize_activation_row(&v, &mut out);
        }
        other => panic!("unexpected activation type {other}"),
    }
    out
}

/// Returns the part of a Q4_1 or Q5_1 dot product that ggml takes from Q8_1's stored sum
/// instead of the codes: per block `m * (s - sum(a))`, where `s = d * sum(qs)` was computed
/// from the unrounded scale and rounded to f16, so it differs slightly from the sum of the
/// dequantized activations. Returns 0 for other weight types.
fn q8_1_min_correction(
    ggml_type: GgmlType,
    weight_row: &[u8],
    acts: &kquant::QuantizedActivations,
    b: usize,
) -> f64 {
    use kquant::activation::ActivationBlock;
    use kquant::blocks::BlockQ8_1;

    let block_bytes = match ggml_type {
        GgmlType::Q4_1 => 20,
        GgmlType::Q5_1 => 24,
        _ => return 0.0,
    };
    let n_blocks = acts.n_cols() / 32;
    let act_blocks: Vec<BlockQ8_1> = blocks_of(acts.as_bytes());
    let act_row = &act_blocks[b * n_blocks..(b + 1) * n_blocks];

    let mut correction = 0.0f64;
    for (i, act) in act_row.iter().enumerate() {
        // The min `m` is the second f16 of both Q4_1 and Q5_1 blocks.
        let m_bits = u16::from_le_bytes([weight_row[i * block_bytes + 2], weight_row[i * block_bytes + 3]]);
        let m = f64::from(half::f16::from_bits(m_bits).to_f32());
        let s = f64::from(half::f16::from_bits(act.s).to_f32());

        let mut deq = [0.0f32; 32];
        BlockQ8_1::dequantize_activation_row(std::slice::from_ref(act), &mut deq);
        let sum: f64 = deq.iter().map(|&a| f64::from(a)).sum();
        correction += m * (s - sum);
    }
    correction
}

#[test]
fn golden_weights_match_f64_reference() {
    let manifest_path = golden_dir().join("manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("golden manifest"))
            .expect("manifest is JSON");

    let mut checked = 0usize;
    for entry in manifest["entries"].as_array().expect("entries") {
        let ggml_type: GgmlType = entry["type"].as_str().unwrap().parse().unwrap();
        let Some(act_type) = vec_dot_type(ggml_type) else {
            continue;
        };
        let rows = entry["rows"].as_u64().unwrap() as usize;
        let cols = entry["cols"].as_u64().unwrap() as usize;
        let label = entry["quantized"].as_str().unwrap();

        let data = std::fs::read(golden_dir().join(label)).unwrap();
        let deq_w = read_f32(&golden_dir().join(entry["dequantized"].as_str().unwrap()));
        let weight = WeightMatrix::new(ggml_type, &data, cols, rows).unwrap();

        // Five activation rows run the four-row kernels once and the single-row ones once.
        let n_batch = 5;
        let x = activations(n_batch * cols, checked as u64 + 1);
        let acts = quantize_activations(act_type, &x, n_batch, cols).unwrap();
        let deq_a = dequantize_activations(&acts);

        for isa in Isa::supported() {
            let mut out = vec![0.0f32; n_batch * rows];
            matmul_quantized_with_isa(isa, &weight, &acts, &mut out).unwrap();

            for b in 0..n_batch {
                for r in 0..rows {
                    let w_row = &deq_w[r * cols..(r + 1) * cols];
                    let a_row = &deq_a[b * cols..(b + 1) * cols];
                    let reference: f64 =
                        w_row.iter().zip(a_row).map(|(&w, &a)| f64::from(w) * f64::from(a)).sum();
                    let magnitude: f64 = w_row
                        .iter()
                        .zip(a_row)
                        .map(|(&w, &a)| (f64::from(w) * f64::from(a)).abs())
                        .sum();
                    let reference = reference
                        + q8_1_min_correction(ggml_type, &data[r * weight.row_size()..], &acts, b);
                    let got = f64::from(out[b * rows + r]);
                    let tolerance = 1e-3 * reference.abs() + 1e-5 * magnitude;

                    assert!(
                        (got - reference).abs() <= tolerance,
                        "{label} {isa:?} row {r} batch {b}: got {got}, reference {reference}, \
                         tolerance {tolerance}"
                    );
                }
            }
        }
        checked += 1;
    }

    // 14 golden weight types have a kernel (all but F32, which has no golden case), with 27
    // cases each.
    assert_eq!(checked, 14 * 27, "golden entries checked");
}
