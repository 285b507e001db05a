//! Every kernel on every instruction set this CPU supports, on blocks filled with random
//! codes, against `kquant::dequantize` followed by an f64 dot product.
//!
//! Random bytes reach code values and bit patterns that quantizers rarely produce (Q8_0's
//! -128, every Q3_K high-bit mask, every 6-bit scale); only the f16 scale fields are set to
//! finite values so the blocks pass validation.

use gguf_format::GgmlType;
use half::f16;
use kquant::activation::ActivationBlock;
use kquant::blocks::{BlockQ8_1, QK};
use kquant::{matmul_quantized_with_isa, quantize_activations, vec_dot_type, Isa, WeightMatrix};

/// Weight types with a kernel, with the byte offsets of their f16 scale fields.
const TYPES: [(GgmlType, &[usize]); 15] = [
    (GgmlType::Q4_0, &[0]),
    (GgmlType::Q4_1, &[0, 2]),
    (GgmlType::Q5_0, &[0]),
    (GgmlType::Q5_1, &[0, 2]),
    (GgmlType::Q8_0, &[0]),
    (GgmlType::IQ4_NL, &[0]),
    (GgmlType::Q2_K, &[80, 82]),
    (GgmlType::Q3_K, &[108]),
    (GgmlType::Q4_K, &[0, 2]),
    (GgmlType::Q5_K, &[0, 2]),
    (GgmlType::Q6_K, &[208]),
    (GgmlType::IQ4_XS, &[0]),
    (GgmlType::F32, &[]),
    (GgmlType::F16, &[]),
    (GgmlType::BF16, &[]),
];

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Returns a value in -1..1.
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Builds `n_rows` rows of `n_cols` weights of `ggml_type` from random bytes.
fn random_matrix(ggml_type: GgmlType, scale_offsets: &[usize], n_rows: usize, n_cols: usize, rng: &mut Rng) -> Vec<u8> {
    let n_values = n_rows * n_cols;
    match ggml_type {
        GgmlType::F32 => (0..n_values).flat_map(|_| rng.unit().to_le_bytes()).collect(),
        GgmlType::F16 => (0..n_values).flat_map(|_| f16::from_f32(rng.unit()).to_le_bytes()).collect(),
        GgmlType::BF16 => {
            (0..n_values).flat_map(|_| half::bf16::from_f32(rng.unit()).to_le_bytes()).collect()
        }
        _ => {
            let block_bytes = ggml_type.type_size();
            let n_blocks = n_values / ggml_type.block_size();
            let mut data: Vec<u8> = (0..n_blocks * block_bytes).map(|_| rng.next_u64() as u8).collect();
            for block in data.chunks_exact_mut(block_bytes) {
                for &offset in scale_offsets {
                    let scale = f16::from_f32(rng.unit() * 0.01);
                    block[offset..offset + 2].copy_from_slice(&scale.to_le_bytes());
                }
            }
            data
        }
    }
}

fn blocks_of<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    let mut out = vec![T::zeroed(); bytes.len() / std::mem::size_of::<T>()];
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(bytes);
    out
}

/// Dequantizes activations with the crate's block types.
fn dequantize_activations(acts: &kquant::QuantizedActivations) -> Vec<f32> {
    use kquant::blocks::{BlockQ8K, BlockQ8_0};

    let bytes = acts.as_bytes();
    let mut out = vec![0.0f32; acts.n_batch() * acts.n_cols()];
    match acts.ggml_type() {
        GgmlType::Q8_0 => BlockQ8_0::dequantize_activation_row(&blocks_of(bytes), &mut out),
        GgmlType::Q8_1 => BlockQ8_1::dequantize_activation_row(&blocks_of(bytes), &mut out),
        GgmlType::Q8_K => BlockQ8K::dequantize_activation_row(&blocks_of(bytes), &mut out),
        GgmlType::F32 => f32::dequantize_activation_row(&blocks_of(bytes), &mut out),
        GgmlType::F16 => f16::dequantize_activation_row(&blocks_of(bytes), &mut out),
        GgmlType::BF16 => half::bf16::dequantize_activation_row(&blocks_of(bytes), &mut out),
        other => panic!("unexpected activation type {other}"),
    }
    out
}

/// Returns ggml's Q8_1 correction: `m * (s - sum(a))` per block, because Q4_1 and Q5_1
/// kernels take the activation sum from the stored f16 `s`.
fn q8_1_correction(ggml_type: GgmlType, weight_row: &[u8], act_row: &[BlockQ8_1]) -> f64 {
    if !matches!(ggml_type, GgmlType::Q4_1 | GgmlType::Q5_1) {
        return 0.0;
    }
    let block_bytes = ggml_type.type_size();

    act_row
        .iter()
        .enumerate()
        .map(|(i, act)| {
            let m_bytes = [weight_row[i * block_bytes + 2], weight_row[i * block_bytes + 3]];
            let m = f64::from(f16::from_le_bytes(m_bytes).to_f32());
            let s = f64::from(f16::from_bits(act.s).to_f32());
            let mut deq = [0.0f32; QK];
            BlockQ8_1::dequantize_activation_row(std::slice::from_ref(act), &mut deq);
            m * (s - deq.iter().map(|&a| f64::from(a)).sum::<f64>())
        })
        .sum()
}

#[test]
fn random_blocks_match_dequantized_dot() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (n_rows, n_cols, n_batch) = (7, 1024, 6);

    for (ggml_type, scale_offsets) in TYPES {
        let data = random_matrix(ggml_type, scale_offsets, n_rows, n_cols, &mut rng);
        let weight = WeightMatrix::new(ggml_type, &data, n_cols, n_rows).unwrap();
        let deq_w = kquant::dequantize(ggml_type, &data, n_cols).unwrap();

        let x: Vec<f32> = (0..n_batch * n_cols).map(|_| rng.unit()).collect();
        let act_type = vec_dot_type(ggml_type).unwrap();
        let acts = quantize_activations(act_type, &x, n_batch, n_cols).unwrap();
        let deq_a = dequantize_activations(&acts);
        let q8_1_rows: Vec<BlockQ8_1> =
            if act_type == GgmlType::Q8_1 { blocks_of(acts.as_bytes()) } else { Vec::new() };

        for isa in Isa::supported() {
            let mut out = vec![0.0f32; n_batch * n_rows];
            matmul_quantized_with_isa(isa, &weight, &acts, &mut out).unwrap();

            for b in 0..n_batch {
                for r in 0..n_rows {
                    let w_row = &deq_w[r * n_cols..(r + 1) * n_cols];
                    let a_row = &deq_a[b * n_cols..(b + 1) * n_cols];
                    let terms = w_row.iter().zip(a_row).map(|(&w, &a)| f64::from(w) * f64::from(a));
                    let magnitude: f64 = terms.clone().map(f64::abs).sum();
                    let mut reference: f64 = terms.sum();
                    if !q8_1_rows.is_empty() {
                        let blocks_per_row = n_cols / QK;
                        let act_row = &q8_1_rows[b * blocks_per_row..(b + 1) * blocks_per_row];
                        let weight_row = &data[r * weight.row_size()..(r + 1) * weight.row_size()];
                        reference += q8_1_correction(ggml_type, weight_row, act_row);
                    }

                    let got = f64::from(out[b * n_rows + r]);
                    let tolerance = 1e-3 * reference.abs() + 1e-5 * magnitude;
                    assert!(
                        (got - reference).abs() <= tolerance,
                        "{ggml_type} {isa:?} row {r} batch {b}: got {got}, reference {reference}"
                    );
                }
            }
        }
    }
}

#[test]
fn x4_kernels_equal_single_row_kernels() {
    use kquant::blocks::{BlockIQ4NL, BlockQ4_0, BlockQ5_0, BlockQ8_0};
    use kquant::VecDot;

    fn check<W: VecDot>(ggml_type: GgmlType, scale_offsets: &[usize], rng: &mut Rng) {
        let n_cols = 512;
        let data = random_matrix(ggml_type, scale_offsets, 1, n_cols, rng);
        let weights: Vec<W> = blocks_of(&data);
        let x: Vec<f32> = (0..4 * n_cols).map(|_| rng.unit()).collect();
        let acts = quantize_activations(W::VecDotType::TYPE, &x, 4, n_cols).unwrap();
        let act_blocks: Vec<W::VecDotType> = blocks_of(acts.as_bytes());
        let per_row = act_blocks.len() / 4;
        let rows: [&[W::VecDotType]; 4] = std::array::from_fn(|k| &act_blocks[k * per_row..(k + 1) * per_row]);

        for isa in Isa::supported() {
            let together = W::vec_dot_x4(isa, &weights, rows);
            for k in 0..4 {
                let alone = W::vec_dot(isa, &weights, rows[k]);
                assert_eq!(together[k].to_bits(), alone.to_bits(), "{ggml_type} {isa:?} row {k}");
            }
        }
    }

    let mut rng = Rng(42);
    check::<BlockQ4_0>(GgmlType::Q4_0, &[0], &mut rng);
    check::<BlockQ5_0>(GgmlType::Q5_0, &[0], &mut rng);
    check::<BlockQ8_0>(GgmlType::Q8_0, &[0], &mut rng);
    check::<BlockIQ4NL>(GgmlType::IQ4_NL, &[0], &mut rng);
}

#[test]
fn simd_paths_are_tested_here() {
    // The comparisons above cover a SIMD path only when the CPU has one, so print the list
    // and require AVX2 on x86-64 CI machines.
    let supported = Isa::supported();
    println!("instruction sets under test: {supported:?}");
    if cfg!(target_arch = "x86_64") && std::env::var("CI").as_deref() == Ok("true") {
        assert!(supported.contains(&Isa::Avx2), "CI machine lacks AVX2: {supported:?}");
    }
}
