//! IQ4_NL: 32 weights per block as 4-bit indices into a non-linear code book, 4.5 bits per weight.
//!
//! The search for a block's scale is shared with IQ4_XS, which applies it to each
//! 32-element sub-block of a 256-element super-block.

use gguf_format::GgmlType;

use crate::blocks::{BlockIQ4NL, KVALUES_IQ4NL, QK};
use crate::packing::{f16_bits, f16_value, pack_nibbles, unpack_codes};
use crate::solvers::GROUP_MAX_EPS;
use crate::traits::QuantBlock;

/// Scale steps tried on each side of the first guess (ggml's `ntry`).
const SCALE_TRIES: i32 = 7;

impl QuantBlock for BlockIQ4NL {
    const TYPE: GgmlType = GgmlType::IQ4_NL;
    const BLOCK_SIZE: usize = QK;

    /// Quantizes as ggml's `quantize_iq4_nl`: with or without an imatrix, the scale is the
    /// weighted least-squares best of 16 candidates.
    fn quantize_row(row: &[f32], imatrix: Option<&[f32]>, out: &mut [Self]) {
        for (index, (block, x)) in out.iter_mut().zip(row.chunks_exact(QK)).enumerate() {
            let importance = imatrix.map(|qw| &qw[index * QK..(index + 1) * QK]);
            *block = quantize_block(x, importance);
        }
    }

    fn dequantize_row(blocks: &[Self], out: &mut [f32]) {
        for (block, y) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
            let d = f16_value(block.d);
            let indices = unpack_codes(&block.qs, None);
            for (value, &index) in y.iter_mut().zip(&indices) {
                *value = d * f32::from(KVALUES_IQ4NL[usize::from(index)]);
            }
        }
    }
}

fn quantize_block(x: &[f32], importance: Option<&[f32]>) -> BlockIQ4NL {
    let sigma2 = super_block_sigma2(x);
    let weights = sub_block_weights(x, importance, sigma2);
    let scale = fit_sub_block_scale(x, &weights);

    let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    let indices: [u8; QK] = std::array::from_fn(|j| nearest_code_index(id * x[j]));

    BlockIQ4NL {
        d: f16_bits(scale),
        qs: pack_nibbles(&indices),
    }
}

/// Returns `2 * mean(x^2)` over a (super-)block, the variance term of the imatrix weights.
pub(crate) fn super_block_sigma2(x: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    sum_x2 * (2.0 / x.len() as f32)
}

/// Returns the element weights of one 32-element sub-block: `imatrix[j] * sqrt(sigma2 + x[j]^2)`
/// with an importance vector, `x[j]^2` without.
pub(crate) fn sub_block_weights(x: &[f32], importance: Option<&[f32]>, sigma2: f32) -> [f32; QK] {
    match importance {
        Some(qw) => std::array::from_fn(|j| qw[j] * (sigma2 + x[j] * x[j]).sqrt()),
        None => std::array::from_fn(|j| x[j] * x[j]),
    }
}

/// Returns the index of the code book entry nearest to `x` (ggml's `best_index_int8`).
///
/// Values beyond either end map to the end entry, and a tie between two entries goes to
/// the upper one. NaN maps to the last entry, as ggml's comparisons do.
pub(crate) fn nearest_code_index(x: f32) -> u8 {
    let values = KVALUES_IQ4NL.map(f32::from);
    let last = values.len() - 1;
    if x <= values[0] {
        return 0;
    }
    if x >= values[last] {
        return last as u8;
    }

    // Bisect to values[lower] <= x < values[upper] with upper = lower + 1.
    let mut lower = 0;
    let mut upper = last;
    while upper - lower > 1 {
        let middle = (lower + upper) / 2;
        if x < values[middle] {
            upper = middle;
        } else {
            lower = middle;
        }
    }

    if x - values[upper - 1] < values[upper] - x {
        (upper - 1) as u8
    } else {
        upper as u8
    }
}

/// Returns the weighted least-squares scale of one 32-element sub-block, or 0 when its
/// largest magnitude is below [`GROUP_MAX_EPS`].
///
/// The first guess maps the element of largest magnitude to the code book's end. Then
/// `2 * SCALE_TRIES + 1` inverse scales `(t - 127) / max` are tried, and the scale that
/// maximises `(Σ w q x)^2 / Σ w q^2` wins. The code indices are recomputed from the final
/// scale by the caller.
pub(crate) fn fit_sub_block_scale(x: &[f32], weights: &[f32; QK]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }

    let first_value = f32::from(KVALUES_IQ4NL[0]);
    let weighted_sums = |id: f32| {
        let mut sumqx = 0.0f32;
        let mut sumq2 = 0.0f32;
        for (&v, &w) in x.iter().zip(weights) {
            let q = f32::from(KVALUES_IQ4NL[usize::from(nearest_code_index(id * v))]);
            sumqx += w * q * v;
            sumq2 += w * q * q;
        }
        (sumqx, sumq2)
    };

    // ggml's first guess has the opposite sign to the tries below; both are kept as it has them.
    let (sumqx, sumq2) = weighted_sums(1.0 / (-max / first_value));
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;

    for step in -SCALE_TRIES..=SCALE_TRIES {
        let id = (step as f32 + first_value) / max;
        let (sumqx, sumq2) = weighted_sums(id);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}
