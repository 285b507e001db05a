//! ggml's `make_qkx3_quants` and `make_qx_quants` on several groups at once, one group per
//! lane.
//!
//! The scalar solvers are bound by the latency of their sequential f32 sums, and those sums
//! cannot be reordered without changing the result. The groups of a super-block are
//! independent, though, so these versions run them side by side: element `i` of every group
//! is processed before element `i + 1`. Each lane performs exactly the scalar function's
//! operations in the same order, which keeps every result bit-identical while the compiler
//! vectorizes across lanes.
//!
//! On x86-64 CPUs with AVX2 the same code runs compiled for AVX2 (8 lanes per register
//! instead of 4). Rust never fuses a multiply and an add, so that build rounds exactly as
//! the baseline one does.

use super::{nearest_int, AffineFit, ScaleSearch, GROUP_MAX_EPS};

/// Runs the affine grid search of [`make_qkx3_quants`](super::make_qkx3_quants) on `G`
/// groups of `N` weights, with the weights given.
///
/// `x[i][k]` is element `i` of group `k`, `weights[i][k]` its importance, and
/// `codes[i][k]` receives its code. Returns one fit per group, each bit-identical to what
/// the scalar function returns for that group alone.
#[inline(always)]
pub(crate) fn make_qkx3_quants_lanes<const N: usize, const G: usize>(
    nmax: i32,
    x: &[[f32; G]; N],
    weights: &[[f32; G]; N],
    codes: &mut [[u8; G]; N],
    search: ScaleSearch,
) -> [AffineFit; G] {
    if search.use_mad {
        search_lanes::<N, G, true>(nmax, x, weights, codes, search)
    } else {
        search_lanes::<N, G, false>(nmax, x, weights, codes, search)
    }
}

/// Runs [`make_qkx3_quants_lanes`] on `G` consecutive groups of `N` weights stored in element
/// order: group `k` is `x[N * k..N * (k + 1)]`, with its weights and codes at the same
/// positions of `weights` and `codes`.
///
/// Panics if a slice is not `N * G` long.
pub(crate) fn fit_consecutive_groups<const N: usize, const G: usize>(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    codes: &mut [u8],
    search: ScaleSearch,
) -> [AffineFit; G] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, as detected just above.
            return unsafe { fit_consecutive_groups_avx2::<N, G>(nmax, x, weights, codes, search) };
        }
    }
    fit_consecutive_groups_portable::<N, G>(nmax, x, weights, codes, search)
}

/// Compiles [`fit_consecutive_groups_portable`] for AVX2.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fit_consecutive_groups_avx2<const N: usize, const G: usize>(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    codes: &mut [u8],
    search: ScaleSearch,
) -> [AffineFit; G] {
    fit_consecutive_groups_portable::<N, G>(nmax, x, weights, codes, search)
}

/// Implements [`fit_consecutive_groups`] for any CPU.
#[inline(always)]
fn fit_consecutive_groups_portable<const N: usize, const G: usize>(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    codes: &mut [u8],
    search: ScaleSearch,
) -> [AffineFit; G] {
    assert_eq!(x.len(), N * G, "fit_consecutive_groups: x length");
    assert_eq!(
        weights.len(),
        N * G,
        "fit_consecutive_groups: weights length"
    );
    assert_eq!(codes.len(), N * G, "fit_consecutive_groups: codes length");

    let x_lanes: [[f32; G]; N] = std::array::from_fn(|i| std::array::from_fn(|k| x[N * k + i]));
    let weight_lanes: [[f32; G]; N] =
        std::array::from_fn(|i| std::array::from_fn(|k| weights[N * k + i]));
    let mut code_lanes = [[0u8; G]; N];
    let fits = make_qkx3_quants_lanes(nmax, &x_lanes, &weight_lanes, &mut code_lanes, search);

    for (i, lane_codes) in code_lanes.iter().enumerate() {
        for (k, &code) in lane_codes.iter().enumerate() {
            codes[N * k + i] = code;
        }
    }
    fits
}

/// Returns the error term of one element: `|diff|` when `MAD`, else `diff^2`.
#[inline(always)]
fn error_term<const MAD: bool>(diff: f32) -> f32 {
    if MAD {
        diff.abs()
    } else {
        diff * diff
    }
}

#[inline(always)]
fn search_lanes<const N: usize, const G: usize, const MAD: bool>(
    nmax: i32,
    x: &[[f32; G]; N],
    weights: &[[f32; G]; N],
    codes: &mut [[u8; G]; N],
    search: ScaleSearch,
) -> [AffineFit; G] {
    let nmax_f = nmax as f32;

    // Range and weighted sums of each group, in element order.
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x: [f32; G] = std::array::from_fn(|k| sum_w[k] * x[0][k]);
    for i in 1..N {
        for k in 0..G {
            let v = x[i][k];
            if v < min[k] {
                min[k] = v;
            }
            if v > max[k] {
                max[k] = v;
            }
            sum_w[k] += weights[i][k];
            sum_x[k] += weights[i][k] * v;
        }
    }
    for m in &mut min {
        if *m > 0.0 {
            *m = 0.0;
        }
    }
    // The scalar function returns at once for a constant group, so such a lane never
    // adopts a candidate and gets zero codes.
    let constant: [bool; G] = std::array::from_fn(|k| max[k] <= min[k]);

    // Plain min/max fit. The codes of the winning candidate are recomputed at the end from
    // the inverse scale and min that produced them.
    let mut iscale = [0.0f32; G];
    let mut scale = [0.0f32; G];
    for k in 0..G {
        iscale[k] = nmax_f / (max[k] - min[k]);
        scale[k] = 1.0 / iscale[k];
    }
    let mut best_error = [0.0f32; G];
    for i in 0..N {
        for k in 0..G {
            let l = nearest_int(iscale[k] * (x[i][k] - min[k])).clamp(0, nmax) as f32;
            let diff = scale[k] * l + min[k] - x[i][k];
            best_error[k] += weights[i][k] * error_term::<MAD>(diff);
        }
    }
    let mut code_iscale = iscale;
    let mut code_min = min;

    // Grid search with a least-squares refit of scale and min at each step. A lane adopts
    // a candidate only when it lowers that lane's error, as the scalar loop does.
    let mut candidate = [[0.0f32; G]; N];
    // Steps 0..=nstep, or none when nstep < 1 (the scalar function returns before the loop).
    let step_count = if search.nstep < 1 {
        0
    } else {
        search.nstep + 1
    };
    for is in 0..step_count {
        let step = search.rmin + search.rdelta * is as f32 + nmax_f;
        let mut step_iscale = [0.0f32; G];
        for k in 0..G {
            step_iscale[k] = step / (max[k] - min[k]);
        }
        let mut sum_l = [0.0f32; G];
        let mut sum_l2 = [0.0f32; G];
        let mut sum_xl = [0.0f32; G];
        for i in 0..N {
            for k in 0..G {
                let l = nearest_int(step_iscale[k] * (x[i][k] - min[k])).clamp(0, nmax) as f32;
                candidate[i][k] = l;
                let w = weights[i][k];
                sum_l[k] += w * l;
                sum_l2[k] += w * l * l;
                sum_xl[k] += w * l * x[i][k];
            }
        }

        let mut det = [0.0f32; G];
        let mut this_scale = [0.0f32; G];
        let mut this_min = [0.0f32; G];
        for k in 0..G {
            det[k] = sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k];
            this_scale[k] = (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / det[k];
            this_min[k] = (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / det[k];
            if this_min[k] > 0.0 {
                this_min[k] = 0.0;
                this_scale[k] = sum_xl[k] / sum_l2[k];
            }
        }

        // Lanes whose determinant is not positive compute a meaningless error here and
        // are never adopted, because the scalar function skips them.
        let mut cur_error = [0.0f32; G];
        for i in 0..N {
            for k in 0..G {
                let diff = this_scale[k] * candidate[i][k] + this_min[k] - x[i][k];
                cur_error[k] += weights[i][k] * error_term::<MAD>(diff);
            }
        }

        for k in 0..G {
            if !constant[k] && det[k] > 0.0 && cur_error[k] < best_error[k] {
                best_error[k] = cur_error[k];
                scale[k] = this_scale[k];
                code_iscale[k] = step_iscale[k];
                code_min[k] = min[k];
                min[k] = this_min[k];
            }
        }
    }

    // Codes of the adopted candidate, or of the plain fit when none was adopted.
    for i in 0..N {
        for k in 0..G {
            codes[i][k] = if constant[k] {
                0
            } else {
                nearest_int(code_iscale[k] * (x[i][k] - code_min[k])).clamp(0, nmax) as u8
            };
        }
    }
    std::array::from_fn(|k| {
        if constant[k] {
            AffineFit {
                scale: 0.0,
                min: -min[k],
            }
        } else {
            AffineFit {
                scale: scale[k],
                min: -min[k],
            }
        }
    })
}

/// Runs [`make_qx_quants`](super::make_qx_quants) on `G` consecutive groups of `N` weights
/// stored in element order, with the weights given (pass `x[i]^2` for ggml's default).
///
/// Group `k` is `x[N * k..N * (k + 1)]`; its weights and codes sit at the same positions of
/// `weights` and `codes`. Returns one scale per group, each bit-identical to what the
/// scalar function returns for that group alone, and writes the same codes.
///
/// Panics if a slice is not `N * G` long.
pub(crate) fn fit_symmetric_consecutive_groups<const N: usize, const G: usize>(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    codes: &mut [i8],
) -> [f32; G] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, as detected just above.
            return unsafe {
                fit_symmetric_consecutive_groups_avx2::<N, G>(nmax, x, weights, codes)
            };
        }
    }
    fit_symmetric_consecutive_groups_portable::<N, G>(nmax, x, weights, codes)
}

/// Compiles [`fit_symmetric_consecutive_groups_portable`] for AVX2.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fit_symmetric_consecutive_groups_avx2<const N: usize, const G: usize>(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    codes: &mut [i8],
) -> [f32; G] {
    fit_symmetric_consecutive_groups_portable::<N, G>(nmax, x, weights, codes)
}

/// Implements [`fit_symmetric_consecutive_groups`] for any CPU.
#[inline(always)]
fn fit_symmetric_consecutive_groups_portable<const N: usize, const G: usize>(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    codes: &mut [i8],
) -> [f32; G] {
    assert_eq!(x.len(), N * G, "fit_symmetric_consecutive_groups: x length");
    assert_eq!(
        weights.len(),
        N * G,
        "fit_symmetric_consecutive_groups: weights length"
    );
    assert_eq!(
        codes.len(),
        N * G,
        "fit_symmetric_consecutive_groups: codes length"
    );
    let xs: [[f32; G]; N] = std::array::from_fn(|i| std::array::from_fn(|k| x[N * k + i]));
    let ws: [[f32; G]; N] = std::array::from_fn(|i| std::array::from_fn(|k| weights[N * k + i]));

    // The signed element of largest magnitude per group, the first one on ties.
    let mut max = [0.0f32; G];
    let mut amax = [0.0f32; G];
    for row in &xs {
        for k in 0..G {
            let ax = row[k].abs();
            if ax > amax[k] {
                amax[k] = ax;
                max[k] = row[k];
            }
        }
    }
    let all_zero: [bool; G] = std::array::from_fn(|k| amax[k] < GROUP_MAX_EPS);

    // Sums of one inverse scale per lane, in element order.
    let sums = |iscale: &[f32; G]| {
        let mut sumlx = [0.0f32; G];
        let mut suml2 = [0.0f32; G];
        for (row, row_weights) in xs.iter().zip(&ws) {
            for k in 0..G {
                let l = nearest_int(iscale[k] * row[k]).clamp(-nmax, nmax - 1) as f32;
                let w = row_weights[k];
                sumlx[k] += w * row[k] * l;
                suml2[k] += w * l * l;
            }
        }
        (sumlx, suml2)
    };

    // Start from the scale that maps the largest element to -nmax.
    let nmax_f = nmax as f32;
    let mut code_iscale: [f32; G] = std::array::from_fn(|k| -nmax_f / max[k]);
    let (sumlx, suml2) = sums(&code_iscale);
    let mut scale: [f32; G] = std::array::from_fn(|k| {
        if suml2[k] != 0.0 {
            sumlx[k] / suml2[k]
        } else {
            0.0
        }
    });
    let mut best: [f32; G] = std::array::from_fn(|k| scale[k] * sumlx[k]);

    // Try 18 nearby inverse scales and keep the best least-squares objective per lane.
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale: [f32; G] = std::array::from_fn(|k| -(nmax_f + 0.1 * is as f32) / max[k]);
        let (sumlx, suml2) = sums(&iscale);
        for k in 0..G {
            if suml2[k] > 0.0 && sumlx[k] * sumlx[k] > best[k] * suml2[k] {
                code_iscale[k] = iscale[k];
                scale[k] = sumlx[k] / suml2[k];
                best[k] = scale[k] * sumlx[k];
            }
        }
    }

    for (i, row) in xs.iter().enumerate() {
        for k in 0..G {
            codes[N * k + i] = if all_zero[k] {
                0
            } else {
                (nearest_int(code_iscale[k] * row[k]).clamp(-nmax, nmax - 1) + nmax) as i8
            };
        }
    }
    std::array::from_fn(|k| if all_zero[k] { 0.0 } else { scale[k] })
}

#[cfg(test)]
mod tests {
    use super::super::{make_qkx2_quants, make_qkx3_quants, make_qx_quants, IMATRIX_SEARCH};
    use super::*;

    /// Returns the next value in [0, 1) of a deterministic pseudo-random sequence (64-bit LCG).
    fn uniform(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*state >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Builds group `k` of a test batch: ordinary, skewed, constant, tiny and tied values.
    fn group_values<const N: usize>(kind: usize, state: &mut u64) -> [f32; N] {
        std::array::from_fn(|i| match kind % 8 {
            0 => uniform(state) - 0.5,
            1 => (uniform(state) - 0.5) * 0.02 + if i == 3 { 1.5 } else { 0.0 },
            2 => uniform(state) + 0.25,
            3 => -uniform(state),
            4 => -0.75,
            5 => 0.0,
            6 => (uniform(state) - 0.5) * 1e-37,
            _ => ((uniform(state) * 8.0) as i32 as f32 - 4.0) * 0.25,
        })
    }

    /// Returns the bit patterns of a fit, so that comparisons see the sign of zero.
    fn fit_bits(fit: AffineFit) -> (u32, u32) {
        (fit.scale.to_bits(), fit.min.to_bits())
    }

    fn check_against_scalar<const N: usize, const G: usize>(
        search: ScaleSearch,
        seed: u64,
        with_zero_weights: bool,
    ) {
        let mut state = seed;
        let mut x = [[0.0f32; G]; N];
        let mut weights = [[0.0f32; G]; N];
        for k in 0..G {
            let values: [f32; N] = group_values(k + seed as usize, &mut state);
            for i in 0..N {
                x[i][k] = values[i];
                let zero = with_zero_weights && uniform(&mut state) < 0.2;
                weights[i][k] = if zero {
                    0.0
                } else {
                    uniform(&mut state) * 3.0 + values[i].abs()
                };
            }
        }

        let mut codes = [[0u8; G]; N];
        let fits = make_qkx3_quants_lanes(nmax_for(N), &x, &weights, &mut codes, search);

        // The element-order entry points, dispatched (AVX2 where available) and portable,
        // must agree with the lane search.
        let flat_x: Vec<f32> = (0..N * G).map(|e| x[e % N][e / N]).collect();
        let flat_weights: Vec<f32> = (0..N * G).map(|e| weights[e % N][e / N]).collect();
        let mut dispatched_codes = vec![0u8; N * G];
        let dispatched: [AffineFit; G] = fit_consecutive_groups::<N, G>(
            nmax_for(N),
            &flat_x,
            &flat_weights,
            &mut dispatched_codes,
            search,
        );
        let mut portable_codes = vec![0u8; N * G];
        let portable: [AffineFit; G] = fit_consecutive_groups_portable::<N, G>(
            nmax_for(N),
            &flat_x,
            &flat_weights,
            &mut portable_codes,
            search,
        );
        assert_eq!(
            dispatched.map(fit_bits),
            fits.map(fit_bits),
            "seed {seed}: dispatched fits"
        );
        assert_eq!(
            portable.map(fit_bits),
            fits.map(fit_bits),
            "seed {seed}: portable fits"
        );
        for e in 0..N * G {
            assert_eq!(
                dispatched_codes[e],
                codes[e % N][e / N],
                "seed {seed}: dispatched code {e}"
            );
            assert_eq!(
                portable_codes[e],
                codes[e % N][e / N],
                "seed {seed}: portable code {e}"
            );
        }

        for k in 0..G {
            let group: Vec<f32> = (0..N).map(|i| x[i][k]).collect();
            let group_weights: Vec<f32> = (0..N).map(|i| weights[i][k]).collect();
            let mut expected_codes = vec![0u8; N];
            let expected = if search.use_mad {
                make_qkx2_quants(
                    nmax_for(N),
                    &group,
                    &group_weights,
                    &mut expected_codes,
                    search,
                )
            } else {
                make_qkx3_quants(
                    nmax_for(N),
                    &group,
                    Some(&group_weights),
                    &mut expected_codes,
                    search,
                )
            };
            assert_eq!(
                fits[k].scale.to_bits(),
                expected.scale.to_bits(),
                "seed {seed} group {k}: scale"
            );
            assert_eq!(
                fits[k].min.to_bits(),
                expected.min.to_bits(),
                "seed {seed} group {k}: min"
            );
            let lane_codes: Vec<u8> = (0..N).map(|i| codes[i][k]).collect();
            assert_eq!(lane_codes, expected_codes, "seed {seed} group {k}: codes");
        }
    }

    /// Returns a code range typical for the group length: 3 (Q2_K) for 16, 15 (Q4_K) for 32.
    fn nmax_for(n: usize) -> i32 {
        if n == 16 {
            3
        } else {
            15
        }
    }

    #[test]
    fn lanes_match_scalar_imatrix_search() {
        for seed in 0..40 {
            check_against_scalar::<32, 8>(IMATRIX_SEARCH, seed, seed % 2 == 0);
            check_against_scalar::<16, 16>(IMATRIX_SEARCH, seed, seed % 2 == 1);
        }
    }

    #[test]
    fn lanes_match_scalar_ref_searches() {
        let q2_k = ScaleSearch {
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        let q4_k = ScaleSearch {
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        let no_search = ScaleSearch {
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 0,
            use_mad: false,
        };
        for seed in 0..40 {
            check_against_scalar::<16, 16>(q2_k, seed, false);
            check_against_scalar::<32, 8>(q4_k, seed, false);
            check_against_scalar::<32, 8>(no_search, seed, true);
        }
    }

    fn check_symmetric_against_scalar<const N: usize, const G: usize>(
        nmax: i32,
        seed: u64,
        square_weights: bool,
    ) {
        let mut state = seed;
        let mut x = vec![0.0f32; N * G];
        let mut weights = vec![0.0f32; N * G];
        for k in 0..G {
            let values: [f32; N] = group_values(k + seed as usize, &mut state);
            for i in 0..N {
                let v = values[i];
                x[N * k + i] = v;
                weights[N * k + i] = if square_weights {
                    v * v
                } else if uniform(&mut state) < 0.2 {
                    0.0
                } else {
                    uniform(&mut state)
                };
            }
        }

        let mut codes = vec![0i8; N * G];
        let scales: [f32; G] =
            fit_symmetric_consecutive_groups::<N, G>(nmax, &x, &weights, &mut codes);

        for k in 0..G {
            let group = &x[N * k..N * (k + 1)];
            let mut expected_codes = vec![0i8; N];
            let group_weights = (!square_weights).then(|| &weights[N * k..N * (k + 1)]);
            let expected = make_qx_quants(nmax, group, &mut expected_codes, group_weights);
            assert_eq!(
                scales[k].to_bits(),
                expected.to_bits(),
                "seed {seed} group {k}: scale"
            );
            assert_eq!(
                &codes[N * k..N * (k + 1)],
                expected_codes.as_slice(),
                "seed {seed} group {k}: codes"
            );
        }
    }

    #[test]
    fn symmetric_lanes_match_scalar() {
        for seed in 0..40 {
            check_symmetric_against_scalar::<16, 16>(32, seed, true);
            check_symmetric_against_scalar::<16, 16>(32, seed, false);
            check_symmetric_against_scalar::<16, 16>(4, seed, false);
        }
    }
}
