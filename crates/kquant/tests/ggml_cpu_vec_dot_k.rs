//! Q4_K, Q5_K and Q6_K matrix products against outputs of ggml's own x86-64 kernels
//! (llama.cpp b11312), compared bit for bit: `ggml_vec_dot_q{4,5,6}_K_q8_K` for batches of
//! up to 7 rows, the tiled K-quant matmul of a `GGML_OP_MUL_MAT` graph from 8 rows on.
//!
//! The golden files in `tests/data/ggml-cpu/vec-dot-k` come from
//! `scripts/ggml-oracle/vec_dot_k.c`, whose header comment gives the build command.

mod common;

use common::{compare_bits, matmul_cases, GoldenDir};
use gguf_format::GgmlType;
use kquant::{matmul_quantized_with_isa, quantize_activations, Isa, WeightMatrix};

/// Batch sizes to check: each uses the first rows of a case's activations, so every
/// remainder of the four-row groups, the single-row path and both sides of the tiled
/// kernel's threshold are covered.
const BATCHES: [usize; 9] = [1, 2, 3, 4, 5, 7, 8, 9, 16];

/// The smallest batch ggml multiplies with its tiled kernel instead of the vec-dot.
const TILED_MIN_BATCH: usize = 8;

/// Checks every case of `ggml_type` for every batch prefix and every supported ISA.
fn check_type(ggml_type: GgmlType) {
    let dir = GoldenDir::new("vec-dot-k");
    for case in matmul_cases(&dir, ggml_type) {
        let weight_bytes = dir.read(&case.weight_file);
        let weight =
            WeightMatrix::new(case.ggml_type, &weight_bytes, case.n_cols, case.n_rows).unwrap();
        let x = dir.read_f32(&format!("{}.f32", case.act));
        let q8_golden = dir.read(&format!("{}.q8_k", case.act));
        let expected_tiled = (case.n_batch >= TILED_MIN_BATCH)
            .then(|| dir.read_f32(&case.out_file.replace(".out.f32", ".tiled.f32")));
        let expected = dir.read_f32(&case.out_file);
        assert_eq!(
            expected.len(),
            case.n_batch * case.n_rows,
            "{}: output file length",
            case.name()
        );

        let all = quantize_activations(GgmlType::Q8_K, &x, case.n_batch, case.n_cols).unwrap();
        assert!(
            all.as_bytes() == q8_golden.as_slice(),
            "{}: Q8_K activations differ from ggml's",
            case.name()
        );

        let batches = BATCHES
            .iter()
            .copied()
            .filter(|&n| n < case.n_batch)
            .chain([case.n_batch]);
        for n_batch in batches {
            let acts = quantize_activations(
                GgmlType::Q8_K,
                &x[..n_batch * case.n_cols],
                n_batch,
                case.n_cols,
            )
            .unwrap();
            let expected = if n_batch >= TILED_MIN_BATCH {
                let tiled = expected_tiled.as_ref().expect("a tiled output file");
                &tiled[..n_batch * case.n_rows]
            } else {
                &expected[..n_batch * case.n_rows]
            };

            for isa in Isa::supported() {
                let mut out = vec![f32::NAN; n_batch * case.n_rows];
                matmul_quantized_with_isa(isa, &weight, &acts, &mut out).unwrap();

                let label = format!("{} prefix {n_batch} {isa:?}", case.name());
                if let Err(message) = compare_bits(&label, expected, &out) {
                    panic!("{message}");
                }
            }
        }
    }
}

#[test]
fn q6_k_matches_ggml_bits() {
    check_type(GgmlType::Q6_K);
}

#[test]
fn q5_k_matches_ggml_bits() {
    check_type(GgmlType::Q5_K);
}

#[test]
fn q4_k_matches_ggml_bits() {
    check_type(GgmlType::Q4_K);
}

#[test]
fn repacked_q4_k_odd_rows_use_plain_kernels() {
    // A repacked Q4_K matrix whose row count is not a multiple of 8 cannot be repacked, so
    // ggml multiplies it with the plain kernels: the tiled one for this batch of 16.
    let dir = GoldenDir::new("vec-dot-k");
    let case = matmul_cases(&dir, GgmlType::Q4_K)
        .into_iter()
        .find(|c| c.n_rows % 8 != 0)
        .expect("a Q4_K case with n_rows % 8 != 0");
    let weight_bytes = dir.read(&case.weight_file);
    let weight = WeightMatrix::new(GgmlType::Q4_K, &weight_bytes, case.n_cols, case.n_rows)
        .unwrap()
        .with_repack(true);
    let x = dir.read_f32(&format!("{}.f32", case.act));
    let acts = quantize_activations(GgmlType::Q8_K, &x, case.n_batch, case.n_cols).unwrap();
    assert!(
        case.n_batch >= TILED_MIN_BATCH,
        "{}: expected a batch of 8 or more",
        case.name()
    );
    let expected = dir.read_f32(&case.out_file.replace(".out.f32", ".tiled.f32"));

    let mut out = vec![f32::NAN; expected.len()];
    matmul_quantized_with_isa(Isa::detect(), &weight, &acts, &mut out).unwrap();

    if let Err(message) = compare_bits(&case.name(), &expected, &out) {
        panic!("{message}");
    }
}

/// A small xorshift generator for the synthetic blocks below.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u8
    }

    /// Returns 0x00, 0xFF, 0x80 or 0x7F in 4 of 6 draws, so codes and scales often sit at
    /// their limits (i8 scales at -128 and 127).
    fn extreme(&mut self) -> u8 {
        match self.next() % 6 {
            0 => 0x00,
            1 => 0xFF,
            2 => 0x80,
            3 => 0x7F,
            _ => self.next(),
        }
    }
}

/// Builds Q8_K blocks with codes mostly at -128 or 127 and matching `bsums`.
fn extreme_q8_k(bytes: &mut Bytes, n_blocks: usize) -> Vec<kquant::blocks::BlockQ8K> {
    (0..n_blocks)
        .map(|_| {
            let mut block = kquant::blocks::BlockQ8K {
                d: 1.0 / 127.0,
                qs: [0; 256],
                bsums: [0; 16],
            };
            for q in block.qs.iter_mut() {
                *q = match bytes.next() % 4 {
                    0 => -128,
                    1 => 127,
                    _ => bytes.next() as i8,
                };
            }
            for (g, sum) in block.bsums.iter_mut().enumerate() {
                *sum = block.qs[16 * g..16 * g + 16]
                    .iter()
                    .map(|&q| i16::from(q))
                    .sum();
            }
            block
        })
        .collect()
}

/// Fills every byte of `blocks` with extreme bytes, then sets the f16 scales to 1.0 so no
/// product overflows to infinity.
fn extreme_weights<W: bytemuck::Pod>(
    bytes: &mut Bytes,
    n_blocks: usize,
    set_scales: impl Fn(&mut W),
) -> Vec<W> {
    let mut blocks = vec![W::zeroed(); n_blocks];
    for b in bytemuck::cast_slice_mut::<W, u8>(&mut blocks) {
        *b = bytes.extreme();
    }
    blocks.iter_mut().for_each(set_scales);
    blocks
}

/// Asserts that every supported ISA returns the scalar result bit for bit.
fn assert_isas_agree<W: kquant::VecDot>(name: &str, weights: &[W], acts: &[W::VecDotType]) {
    let scalar = W::vec_dot(Isa::Scalar, weights, acts);
    for isa in Isa::supported() {
        let simd = W::vec_dot(isa, weights, acts);
        assert_eq!(
            simd.to_bits(),
            scalar.to_bits(),
            "{name} {isa:?}: {simd:e} vs scalar {scalar:e}"
        );

        let x4 = W::vec_dot_x4(isa, weights, [acts, acts, acts, acts]);
        for (r, value) in x4.into_iter().enumerate() {
            assert_eq!(
                value.to_bits(),
                scalar.to_bits(),
                "{name} {isa:?} x4 row {r}: {value:e} vs scalar {scalar:e}"
            );
        }
    }
}

#[test]
fn extreme_blocks_agree_across_isas() {
    const ONE_F16: u16 = 0x3C00;
    let mut bytes = Bytes(0x9E37_79B9_7F4A_7C15);

    for case in 0..200 {
        let n_blocks = 1 + case % 4;
        let acts = extreme_q8_k(&mut bytes, n_blocks);

        let q6: Vec<kquant::blocks::BlockQ6K> =
            extreme_weights(&mut bytes, n_blocks, |b: &mut kquant::blocks::BlockQ6K| {
                b.d = ONE_F16
            });
        assert_isas_agree(&format!("Q6_K case {case}"), &q6, &acts);

        let q5: Vec<kquant::blocks::BlockQ5K> =
            extreme_weights(&mut bytes, n_blocks, |b: &mut kquant::blocks::BlockQ5K| {
                b.d = ONE_F16;
                b.dmin = ONE_F16;
            });
        assert_isas_agree(&format!("Q5_K case {case}"), &q5, &acts);

        let q4: Vec<kquant::blocks::BlockQ4K> =
            extreme_weights(&mut bytes, n_blocks, |b: &mut kquant::blocks::BlockQ4K| {
                b.d = ONE_F16;
                b.dmin = ONE_F16;
            });
        assert_isas_agree(&format!("Q4_K case {case}"), &q4, &acts);
    }
}

/// Packs 256 unsigned 6-bit codes into a Q6_K block's `ql` and `qh`.
fn pack_q6_k(codes: &[u8; 256], block: &mut kquant::blocks::BlockQ6K) {
    block.ql = [0; 128];
    block.qh = [0; 64];
    for (e, &code) in codes.iter().enumerate() {
        let (h, k, l) = (e / 128, (e % 128) / 32, e % 32);
        block.ql[64 * h + 32 * (k % 2) + l] |= (code & 0x0F) << (4 * (k / 2));
        block.qh[32 * h + l] |= (code >> 4) << (2 * k);
    }
}

#[test]
fn q6_k_huge_lane_agrees_across_isas() {
    // Lane 0 takes the products of byte column 0 (elements with e % 32 < 4) but the code
    // offset of chunk 0 (elements 0..32). Large codes in column 0 and an offset of the same
    // sign push it to 45458111. Above 2^25 f32 keeps only multiples of 4, so the i32 to f32
    // conversion has to round that odd value.
    let mut codes = [32u8; 256];
    let mut acts = [1i8; 256];
    for e in 0..256 {
        if e % 32 < 4 {
            codes[e] = 63;
            acts[e] = -128;
        } else if e < 32 {
            codes[e] = 0;
            acts[e] = 127;
        }
    }
    acts[32] = -127;

    let mut weight = kquant::blocks::BlockQ6K {
        ql: [0; 128],
        qh: [0; 64],
        scales: [-128; 16],
        d: 0x3C00,
    };
    weight.scales[2] = -127;
    pack_q6_k(&codes, &mut weight);

    let mut act = kquant::blocks::BlockQ8K {
        d: 1.0,
        qs: acts,
        bsums: [0; 16],
    };
    for (g, sum) in act.bsums.iter_mut().enumerate() {
        *sum = acts[16 * g..16 * g + 16]
            .iter()
            .map(|&q| i16::from(q))
            .sum();
    }

    assert_isas_agree("Q6_K crafted lane", &[weight], &[act]);
}
