//! ggml's shared scale solvers: the searches that pick a block's scale (and min) and its codes.
//!
//! Each function mirrors one static helper of ggml's `ggml-quants.c` and keeps its
//! floating-point operation order: the same sums in the same order, and divisions where ggml
//! divides. The k-quants and the imatrix-aware legacy quantizers are only bit-exact with ggml
//! when every intermediate `f32` matches. Rust never contracts `a * b + c` into a fused
//! multiply-add, so the results match a ggml build without FMA contraction.
//!
//! The functions trust their inputs: finite values, and `weights` (when given) as long as `x`.

mod lanes;

pub(crate) use lanes::{fit_consecutive_groups, fit_symmetric_consecutive_groups};

/// Max |x| below which a group (or a vector of scales) is stored as all zeros.
///
/// ggml's `GROUP_MAX_EPS`: it keeps `1 / max` from overflowing and avoids dividing by zero
/// for all-zero and denormal-only groups.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// `1.5 * 2^23`: adding it to an `f32` of magnitude below `2^22` leaves the rounded integer in
/// the low mantissa bits, rounded half to even by the FPU.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Mantissa bits of an `f32`.
const MANTISSA_MASK: u32 = 0x007f_ffff;

/// `2^22`: the bias that [`ROUND_MAGIC`] leaves in the mantissa.
const ROUND_BIAS: i32 = 0x0040_0000;

/// Largest group the affine solvers accept: 32 weights (a Q4_K/Q5_K sub-block or a legacy
/// block); ggml calls them with 16 or 32.
pub(crate) const MAX_AFFINE_GROUP: usize = 32;

/// Rounds `x` to the nearest integer, ties to even, exactly as ggml's `nearest_int`.
///
/// Valid for `|x| <= 4194303` (`2^22 - 1`), the range that ggml asserts. Outside it the
/// result is wrong but nothing panics. The quantizers stay inside it for finite input
/// because every product `iscale * x` is bounded by the code range.
#[inline]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let shifted = x + ROUND_MAGIC;
    (shifted.to_bits() & MANTISSA_MASK) as i32 - ROUND_BIAS
}

/// Returns the value of largest magnitude in `x` (with its sign) and that magnitude.
///
/// On ties the first element wins, as in ggml.
#[inline]
fn signed_max_abs(x: &[f32]) -> (f32, f32) {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let av = v.abs();
        if av > amax {
            amax = av;
            max = v;
        }
    }
    (max, amax)
}

/// Quantizes `x` to symmetric codes in `-nmax..nmax` with a weighted least-squares scale
/// (ggml's `make_qx_quants` with `rmse_type == 1`, the only mode its quantizers use).
///
/// Writes `codes[i] = l + nmax` (so `0..2 * nmax`) and returns the scale `d` with
/// `x[i] ≈ d * (codes[i] - nmax)`. `weights` are the per-element importances; `None` means
/// `x[i]^2`. The search starts at `iscale = -nmax / max` (`max` the signed element of largest
/// magnitude) and tries `iscale = -(nmax + 0.1 * is) / max` for `is` in `-9..=9`, keeping the
/// codes that maximise `(Σ w x l)^2 / Σ w l^2`. A group whose max |x| is below
/// [`GROUP_MAX_EPS`] gets zero codes and scale 0.
///
/// `codes.len()` must equal `x.len()` (panics otherwise); `nmax` is at most 64.
pub(crate) fn make_qx_quants(
    nmax: i32,
    x: &[f32],
    codes: &mut [i8],
    weights: Option<&[f32]>,
) -> f32 {
    assert_eq!(
        codes.len(),
        x.len(),
        "make_qx_quants: codes and x lengths differ"
    );
    let (max, amax) = signed_max_abs(x);
    if amax < GROUP_MAX_EPS {
        codes.fill(0);
        return 0.0;
    }

    let weight = |i: usize| match weights {
        Some(w) => w[i],
        None => x[i] * x[i],
    };
    let code = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);

    // Start from the scale that maps the largest element to -nmax.
    let mut iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (i, &v) in x.iter().enumerate() {
        let l = code(iscale, v);
        codes[i] = (l + nmax) as i8;
        let w = weight(i);
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;

    // Try 18 nearby inverse scales and keep the best least-squares objective.
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for (i, &v) in x.iter().enumerate() {
            let l = code(iscale, v);
            let w = weight(i);
            sumlx += w * v * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (c, &v) in codes.iter_mut().zip(x) {
                *c = (code(iscale, v) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Quantizes `x` to symmetric codes in `-nmax..nmax` by coordinate descent with weights
/// `x[i]^2` (ggml's `make_q3_quants` with `do_rmse == true`, the mode Q3_K uses).
///
/// Writes `codes[i] = l + nmax` and returns the scale `d` with `x[i] ≈ d * (codes[i] - nmax)`.
/// It starts from `iscale = -nmax / max`, then runs up to 5 sweeps that move one code at a
/// time to `nearest_int(x[i] * Σ'w l^2 / Σ'w x l)` (sums without element `i`) when that
/// raises `(Σ w x l)^2 / Σ w l^2`. A group whose max |x| is below [`GROUP_MAX_EPS`] gets
/// zero codes and scale 0.
///
/// `codes.len()` must equal `x.len()` (panics otherwise); `nmax` is at most 64.
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], codes: &mut [i8]) -> f32 {
    const MAX_SWEEPS: usize = 5;

    assert_eq!(
        codes.len(),
        x.len(),
        "make_q3_quants: codes and x lengths differ"
    );
    let (max, amax) = signed_max_abs(x);
    if amax < GROUP_MAX_EPS {
        codes.fill(0);
        return 0.0;
    }

    // Initial codes, kept signed until the end.
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (c, &v) in codes.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *c = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }

    // Coordinate descent on one code at a time.
    for _ in 0..MAX_SWEEPS {
        let mut n_changed = 0;
        for (c, &v) in codes.iter_mut().zip(x) {
            let w = v * v;
            let old = *c as f32;
            let mut slx = sumlx - w * v * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *c as i32 {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *c = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }

    for c in codes.iter_mut() {
        *c += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Grid of inverse scales that the affine solvers try, and the error they minimise.
///
/// Step `is` (for `is` in `0..=nstep`) tries `iscale = (rmin + rdelta * is + nmax) / (max - min)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ScaleSearch {
    /// Offset of the first step from `nmax`, in code units (negative: start below `nmax`).
    pub rmin: f32,
    /// Increment per step, in code units.
    pub rdelta: f32,
    /// Last step index; 0 or less skips the search and keeps the plain min/max fit.
    pub nstep: i32,
    /// Minimise the weighted absolute error instead of the weighted squared error.
    pub use_mad: bool,
}

/// The grid of ggml's imatrix-aware quantizers (Q2_K..Q5_K `_impl`, Q4_1, Q5_1):
/// 37 steps from `nmax - 0.9` to `nmax + 0.9`, squared error.
pub(crate) const IMATRIX_SEARCH: ScaleSearch = ScaleSearch {
    rmin: -0.9,
    rdelta: 0.05,
    nstep: 36,
    use_mad: false,
};

/// Scale, min and codes chosen by an affine solver: `x[i] ≈ scale * codes[i] - min`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AffineFit {
    /// Step between codes.
    pub scale: f32,
    /// Negated offset (ggml's `the_min`), at least 0 for finite input.
    pub min: f32,
}

/// Quantizes `x` to codes in `0..=nmax` with a scale and a min, weights required
/// (ggml's `make_qkx2_quants`, used by the reference Q2_K, Q4_K and Q5_K quantizers).
///
/// Same computation as [`make_qkx3_quants`] with `Some(weights)`; see there.
// The quantizers call the lane version (`fit_consecutive_groups`); this scalar form is the
// definition that the lane tests compare against.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    codes: &mut [u8],
    search: ScaleSearch,
) -> AffineFit {
    make_qkx3_quants(nmax, x, Some(weights), codes, search)
}

/// Quantizes `x` to codes in `0..=nmax` with a scale and a min by a weighted grid search
/// (ggml's `make_qkx3_quants`).
///
/// `min` starts at `min(x)` clamped to at most 0. For each step of `search` the codes are
/// `clamp(nearest_int(iscale * (x - min)), 0, nmax)` and (scale, min) come from a 2×2
/// weighted least-squares fit. A fitted min above 0 is replaced by 0, and the scale is then
/// refitted alone. The candidate with the lowest weighted error (squared, or absolute with
/// `use_mad`) wins. `weights` are the per-element importances; `None` means `x[i]^2`.
/// A constant group (`max <= min`) gets zero codes and scale 0.
///
/// Panics if `codes.len() != x.len()` or `x.len() > MAX_AFFINE_GROUP`.
pub(crate) fn make_qkx3_quants(
    nmax: i32,
    x: &[f32],
    weights: Option<&[f32]>,
    codes: &mut [u8],
    search: ScaleSearch,
) -> AffineFit {
    assert_eq!(
        codes.len(),
        x.len(),
        "make_qkx3_quants: codes and x lengths differ"
    );
    assert!(
        x.len() <= MAX_AFFINE_GROUP,
        "make_qkx3_quants: group of {} > {MAX_AFFINE_GROUP}",
        x.len()
    );
    let weight = |i: usize| match weights {
        Some(w) => w[i],
        None => x[i] * x[i],
    };
    let error = |diff: f32| {
        if search.use_mad {
            diff.abs()
        } else {
            diff * diff
        }
    };

    // Range and weighted sums of the group.
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weight(0);
    let mut sum_x = sum_w * x[0];
    for (i, &v) in x.iter().enumerate().skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        let w = weight(i);
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        codes.fill(0);
        return AffineFit {
            scale: 0.0,
            min: -min,
        };
    }

    // Plain min/max fit.
    let nmax_f = nmax as f32;
    let mut iscale = nmax_f / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for (i, (c, &v)) in codes.iter_mut().zip(x).enumerate() {
        let l = nearest_int(iscale * (v - min)).clamp(0, nmax);
        *c = l as u8;
        let diff = scale * l as f32 + min - v;
        best_error += weight(i) * error(diff);
    }
    if search.nstep < 1 {
        return AffineFit { scale, min: -min };
    }

    // Grid search with a least-squares refit of scale and min at each step.
    let mut candidate = [0u8; MAX_AFFINE_GROUP];
    let candidate = &mut candidate[..x.len()];
    for is in 0..=search.nstep {
        iscale = (search.rmin + search.rdelta * is as f32 + nmax_f) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for (i, (c, &v)) in candidate.iter_mut().zip(x).enumerate() {
            let l = nearest_int(iscale * (v - min)).clamp(0, nmax);
            *c = l as u8;
            let w = weight(i);
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for (i, (&c, &v)) in candidate.iter().zip(x).enumerate() {
                let diff = this_scale * c as f32 + this_min - v;
                cur_error += weight(i) * error(diff);
            }
            if cur_error < best_error {
                codes.copy_from_slice(candidate);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    AffineFit { scale, min: -min }
}

/// Quantizes non-negative values (sub-block scales or mins) to codes in `0..=nmax` with a
/// weighted least-squares scale (ggml's `make_qp_quants`).
///
/// Writes the codes and returns the scale `d` with `x[i] ≈ d * codes[i]`. It starts from
/// `iscale = nmax / max`, tries `(nmax + 0.1 * is) / max` for `is` in `-4..=4` by weighted
/// squared error, then runs up to 5 coordinate-descent sweeps as [`make_q3_quants`] does.
/// `weights` are the per-value importances (ggml passes the summed element weights of each
/// sub-block). If max(x) is below [`GROUP_MAX_EPS`] the codes are 0 and the scale 0.
///
/// Codes are stored as ggml stores them in its `uint8_t` array (modulo 256), which only
/// matters for negative input, something the k-quants never pass.
///
/// `codes.len()` and `weights.len()` must equal `x.len()` (panics otherwise).
pub(crate) fn make_qp_quants(nmax: i32, x: &[f32], codes: &mut [u8], weights: &[f32]) -> f32 {
    const MAX_SWEEPS: usize = 5;

    assert_eq!(
        codes.len(),
        x.len(),
        "make_qp_quants: codes and x lengths differ"
    );
    assert_eq!(
        weights.len(),
        x.len(),
        "make_qp_quants: weights and x lengths differ"
    );
    let max = x.iter().fold(0.0f32, |m, &v| if m > v { m } else { v });
    if max < GROUP_MAX_EPS {
        codes.fill(0);
        return 0.0;
    }

    // Pick the inverse scale with the lowest weighted squared error.
    let nmax_f = nmax as f32;
    let mut iscale = nmax_f / max;
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = nearest_int(iscale * v) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for ((&c, &v), &w) in codes.iter().zip(x).zip(weights) {
        let diff = v - scale * c as f32;
        best_mse += w * diff * diff;
    }
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1 * is as f32 + nmax_f) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for (&v, &w) in x.iter().zip(weights) {
            let l = nearest_int(iscale_is * v).min(nmax);
            let diff = v - scale_is * l as f32;
            mse += w * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }

    // Codes at the chosen scale.
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for ((c, &v), &w) in codes.iter_mut().zip(x).zip(weights) {
        let l = nearest_int(iscale * v).min(nmax);
        *c = l as u8;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }

    // Coordinate descent on one code at a time.
    for _ in 0..MAX_SWEEPS {
        let mut n_changed = 0;
        for ((c, &v), &w) in codes.iter_mut().zip(x).zip(weights) {
            let old = *c as f32;
            let mut slx = sumlx - w * v * old;
            let mut sl2 = suml2 - w * old * old;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(v * sl2 / slx).min(nmax);
                if new_l != *c as i32 {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *c = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }

    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (2.4999998, 2),
            (-7.6, -8),
            (4_194_303.0, 4_194_303),
            (-4_194_303.0, -4_194_303),
        ];
        for (x, expected) in cases {
            assert_eq!(nearest_int(x), expected, "nearest_int({x})");
        }
    }

    #[test]
    fn nearest_int_matches_round_ties_even() {
        let mut x = -300.0f32;
        while x < 300.0 {
            assert_eq!(
                nearest_int(x),
                x.round_ties_even() as i32,
                "nearest_int({x})"
            );
            x += 0.03125;
        }
    }

    #[test]
    fn qx_quants_zero_group() {
        let x = [0.0f32; 16];
        let mut codes = [7i8; 16];
        assert_eq!(make_qx_quants(32, &x, &mut codes, None), 0.0);
        assert_eq!(codes, [0i8; 16]);
    }

    #[test]
    fn qx_quants_exact_grid() {
        // Values on the grid d * l with d = 0.25 are reproduced exactly.
        let x: Vec<f32> = (-4..4).map(|l| l as f32 * 0.25).collect();
        let mut codes = [0i8; 8];
        let d = make_qx_quants(4, &x, &mut codes, None);
        assert_eq!(d, 0.25);
        let expected: Vec<i8> = (0..8).collect();
        assert_eq!(codes.to_vec(), expected);
    }

    #[test]
    fn q3_quants_zero_group() {
        let x = [1e-20f32; 16];
        let mut codes = [3i8; 16];
        assert_eq!(make_q3_quants(4, &x, &mut codes), 0.0);
        assert_eq!(codes, [0i8; 16]);
    }

    #[test]
    fn q3_quants_codes_in_range() {
        let x: Vec<f32> = (0..16).map(|i| ((i * 7) % 13) as f32 - 6.3).collect();
        let mut codes = [0i8; 16];
        let d = make_q3_quants(4, &x, &mut codes);
        assert!(d.is_finite(), "scale {d}");
        assert_ne!(d, 0.0);
        assert!(codes.iter().all(|&c| (0..8).contains(&c)), "{codes:?}");
    }

    #[test]
    fn qkx3_quants_constant_group() {
        let x = [0.0f32; 32];
        let mut codes = [9u8; 32];
        let fit = make_qkx3_quants(15, &x, None, &mut codes, IMATRIX_SEARCH);
        assert_eq!(fit.scale, 0.0);
        assert_eq!(fit.min, 0.0);
        assert_eq!(codes, [0u8; 32]);
    }

    #[test]
    fn qkx3_quants_recovers_affine_grid() {
        // x = 0.5 * l - 1.0 for l in 0..16 is on a 4-bit affine grid.
        let x: Vec<f32> = (0..32).map(|i| 0.5 * (i % 16) as f32 - 1.0).collect();
        let mut codes = [0u8; 32];
        let fit = make_qkx3_quants(15, &x, None, &mut codes, IMATRIX_SEARCH);
        for (i, (&c, &v)) in codes.iter().zip(&x).enumerate() {
            let back = fit.scale * c as f32 - fit.min;
            assert!((back - v).abs() < 1e-5, "element {i}: {back} vs {v}");
        }
    }

    #[test]
    fn qkx2_quants_positive_group_keeps_zero_min() {
        let x: Vec<f32> = (0..16).map(|i| 1.0 + i as f32).collect();
        let weights: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let search = ScaleSearch {
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        let mut codes = [0u8; 16];
        let fit = make_qkx2_quants(3, &x, &weights, &mut codes, search);
        assert_eq!(fit.min, 0.0);
        assert!(fit.scale > 0.0);
        assert!(codes.iter().all(|&c| c <= 3));
    }

    #[test]
    fn qp_quants_zero_and_exact() {
        let mut codes = [1u8; 8];
        assert_eq!(make_qp_quants(63, &[0.0; 8], &mut codes, &[1.0; 8]), 0.0);
        assert_eq!(codes, [0u8; 8]);

        let x: Vec<f32> = (0..8).map(|i| i as f32 * 9.0).collect();
        let d = make_qp_quants(63, &x, &mut codes, &[1.0; 8]);
        assert_eq!(d, 1.0);
        let expected: Vec<u8> = (0..8).map(|i| i * 9).collect();
        assert_eq!(codes.to_vec(), expected);
    }
}
