//! Bit-exactness of Q4_1, Q5_1, Q2_K, Q3_K and IQ4_XS matrix products against ggml's
//! x86-64 `ggml_vec_dot_*` kernels.
//!
//! The golden files in `tests/data/ggml-cpu/vec-dot-misc/` come from llama.cpp b11312's
//! CPU backend (see the README there). For these weight types and batches of up to 7 rows
//! ggml computes each output element with one `vec_dot` call, so an output depends on one
//! weight row and one activation row only. Each case runs for several batch sizes, on the first rows of the
//! stored activations, and with every instruction set this CPU supports.

mod common;

use common::{compare_bits, parse_type, GoldenDir};
use kquant::blocks::{BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ4_1, BlockQ5_1, BlockQ8K, BlockQ8_1};
use kquant::{
    matmul_quantized_with_isa, quantize_activations, vec_dot_type, GgmlType, Isa, VecDot,
    WeightMatrix,
};

/// Activation rows stored per shape.
const STORED_BATCH: usize = 16;

/// Batch sizes to run: single rows, every remainder of the four-row groups, and full groups.
const BATCHES: [usize; 8] = [1, 2, 3, 4, 5, 7, 9, 16];

/// The smallest batch ggml multiplies Q2_K, Q3_K and IQ4_XS with its tiled kernel.
const TILED_MIN_BATCH: usize = 8;

fn golden() -> GoldenDir {
    GoldenDir::new("vec-dot-misc")
}

fn read(name: &str) -> Vec<u8> {
    golden().read(name)
}

fn read_f32(name: &str) -> Vec<f32> {
    golden().read_f32(name)
}

/// One line of `cases.txt`: the weight type's file-name stem, n_cols and n_rows.
struct Case {
    stem: String,
    ggml_type: GgmlType,
    n_cols: usize,
    n_rows: usize,
}

fn cases() -> Vec<Case> {
    golden()
        .case_lines(3)
        .into_iter()
        .map(|fields| Case {
            ggml_type: parse_type(&fields[0]),
            stem: fields[0].clone(),
            n_cols: fields[1].parse().expect("n_cols is a number"),
            n_rows: fields[2].parse().expect("n_rows is a number"),
        })
        .collect()
}

/// Returns ggml's file-name suffix of an activation type.
fn act_suffix(ggml_type: GgmlType) -> &'static str {
    match ggml_type {
        GgmlType::Q8_1 => "q8_1",
        GgmlType::Q8_K => "q8_K",
        other => panic!("no golden activations for {other}"),
    }
}

#[test]
fn cases_cover_every_type() {
    let cases = cases();
    for ggml_type in [
        GgmlType::Q4_1,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::IQ4_XS,
    ] {
        let n = cases.iter().filter(|c| c.ggml_type == ggml_type).count();
        assert_eq!(n, 3, "{ggml_type}: expected three shapes in cases.txt");
    }
}

#[test]
fn activations_match_ggml_from_float() {
    for case in cases() {
        let act_type = vec_dot_type(case.ggml_type).expect("type has a vec_dot_type");
        let x = read_f32(&format!("act_{}.f32", case.n_cols));
        let expected = read(&format!("act_{}.{}", case.n_cols, act_suffix(act_type)));

        let acts = quantize_activations(act_type, &x, STORED_BATCH, case.n_cols).expect("quantize");

        assert!(
            acts.as_bytes() == expected.as_slice(),
            "{} {}: {act_type} activations differ from ggml's",
            case.stem,
            case.n_cols,
        );
    }
}

#[test]
fn outputs_bit_identical_to_ggml() {
    let mut failures = Vec::new();

    for case in cases() {
        let name = format!("{}_{}x{}", case.stem, case.n_cols, case.n_rows);
        let weight_bytes = read(&format!("{name}.weight"));
        let weight = WeightMatrix::new(case.ggml_type, &weight_bytes, case.n_cols, case.n_rows)
            .expect("weight matrix");
        let expected = read_f32(&format!("{name}.out"));
        assert_eq!(
            expected.len(),
            STORED_BATCH * case.n_rows,
            "{name}.out has the wrong length"
        );

        let act_type = vec_dot_type(case.ggml_type).expect("type has a vec_dot_type");
        let x = read_f32(&format!("act_{}.f32", case.n_cols));

        for n_batch in BATCHES {
            // From 8 rows on, ggml multiplies Q2_K, Q3_K and IQ4_XS with its tiled kernel
            // instead of `vec_dot`; tests/ggml_cpu_tiled_misc.rs checks those batches.
            let tiled = matches!(
                case.ggml_type,
                GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::IQ4_XS
            );
            if tiled && n_batch >= TILED_MIN_BATCH {
                println!("{name} batch {n_batch}: tiled path, checked in ggml_cpu_tiled_misc");
                continue;
            }

            let acts =
                quantize_activations(act_type, &x[..n_batch * case.n_cols], n_batch, case.n_cols)
                    .expect("quantize");
            for isa in Isa::supported() {
                let mut out = vec![0.0f32; n_batch * case.n_rows];
                matmul_quantized_with_isa(isa, &weight, &acts, &mut out).expect("matmul");

                let label = format!("{name} batch {n_batch} {isa:?}");
                if let Err(message) = compare_bits(&label, &expected[..out.len()], &out) {
                    failures.push(message);
                }
            }
        }
    }

    assert!(
        failures.is_empty(),
        "outputs differ from ggml:\n{}",
        failures.join("\n")
    );
}

/// Blocks per random row: enough for several fused multiply-adds per lane.
const RANDOM_ROW_BLOCKS: usize = 3;

/// Random rows compared per weight type.
const RANDOM_ROWS: usize = 200;

/// Returns `n` pseudo-random bytes (xorshift64, fixed seed).
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// Reinterprets `bytes` as blocks of `T`; any bit pattern is a valid block.
fn blocks_from_bytes<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    let mut blocks = vec![T::zeroed(); bytes.len() / std::mem::size_of::<T>()];
    bytemuck::cast_slice_mut::<T, u8>(&mut blocks).copy_from_slice(bytes);
    blocks
}

/// Returns f16 bits of a finite value in [-1, 1), so that no NaN payload has to match.
fn finite_f16(byte_a: u8, byte_b: u8) -> u16 {
    let value = (f32::from(byte_a) - 128.0) / 128.0 + f32::from(byte_b) / 32768.0;
    half::f16::from_f32(value).to_bits()
}

/// Checks that every instruction set gives the scalar kernel's bits, for single rows and
/// for groups of four, on blocks of random bytes (activation codes of -128 included).
fn check_random_rows<W: VecDot>(
    fix: impl Fn(&mut W, &[u8]),
    fix_act: impl Fn(&mut W::VecDotType, &[u8]),
) {
    let w_size = std::mem::size_of::<W>();
    let a_blocks = RANDOM_ROW_BLOCKS * W::BLOCK_SIZE
        / <W::VecDotType as kquant::activation::ActivationBlock>::BLOCK_SIZE;
    let a_size = std::mem::size_of::<W::VecDotType>();

    for row in 0..RANDOM_ROWS {
        let seed = (row as u64 + 1) * 0x9E37_79B9;
        let mut weights: Vec<W> =
            blocks_from_bytes(&random_bytes(RANDOM_ROW_BLOCKS * w_size, seed));
        let extra = random_bytes(4 * RANDOM_ROW_BLOCKS, seed ^ 1);
        for (i, w) in weights.iter_mut().enumerate() {
            fix(w, &extra[4 * i..4 * i + 4]);
        }

        let acts: Vec<Vec<W::VecDotType>> = (0..4)
            .map(|k| {
                let bytes = random_bytes(a_blocks * a_size, seed ^ (k + 2));
                let mut blocks: Vec<W::VecDotType> = blocks_from_bytes(&bytes);
                let extra = random_bytes(4 * a_blocks, seed ^ (k + 10));
                for (i, a) in blocks.iter_mut().enumerate() {
                    fix_act(a, &extra[4 * i..4 * i + 4]);
                }
                blocks
            })
            .collect();
        let group = [&acts[0][..], &acts[1][..], &acts[2][..], &acts[3][..]];

        let want: Vec<u32> = group
            .iter()
            .map(|a| W::vec_dot(Isa::Scalar, &weights, a).to_bits())
            .collect();
        for isa in Isa::supported() {
            for (k, a) in group.iter().enumerate() {
                let got = W::vec_dot(isa, &weights, a).to_bits();
                assert_eq!(
                    got,
                    want[k],
                    "{} row {row} activation {k}: {isa:?} differs from Scalar",
                    W::TYPE
                );
            }
            let got_x4 = W::vec_dot_x4(isa, &weights, group).map(f32::to_bits);
            assert_eq!(
                got_x4.to_vec(),
                want,
                "{} row {row}: {isa:?} vec_dot_x4 differs from Scalar",
                W::TYPE
            );
        }
    }
}

fn fix_q8_1(a: &mut BlockQ8_1, extra: &[u8]) {
    a.d = finite_f16(extra[0], extra[1]);
    a.s = finite_f16(extra[2], extra[3]);
}

fn fix_q8_k(a: &mut BlockQ8K, extra: &[u8]) {
    a.d = (f32::from(extra[0]) - 128.0) / 4096.0 + f32::from(extra[1]) / 1e6;
}

#[test]
fn random_blocks_match_scalar() {
    check_random_rows::<BlockQ4_1>(
        |w, e| {
            w.d = finite_f16(e[0], e[1]);
            w.m = finite_f16(e[2], e[3]);
        },
        fix_q8_1,
    );
    check_random_rows::<BlockQ5_1>(
        |w, e| {
            w.d = finite_f16(e[0], e[1]);
            w.m = finite_f16(e[2], e[3]);
        },
        fix_q8_1,
    );
    check_random_rows::<BlockQ2K>(
        |w, e| {
            w.d = finite_f16(e[0], e[1]);
            w.dmin = finite_f16(e[2], e[3]);
        },
        fix_q8_k,
    );
    check_random_rows::<BlockQ3K>(|w, e| w.d = finite_f16(e[0], e[1]), fix_q8_k);
    check_random_rows::<BlockIQ4XS>(|w, e| w.d = finite_f16(e[0], e[1]), fix_q8_k);
}
