//! Q4_K, Q5_K and Q6_K x Q8_K in the float order of ggml's tiled K-quant matmul.
//!
//! llama.cpp b11312 multiplies these types with `ggml_compute_forward_mul_mat_tiled`
//! (`ggml-cpu/tiled/`) when the batch has at least [`TILED_MIN_BATCH`] rows and the weight
//! is not repacked, and with `ggml_vec_dot_*` otherwise. The tiled kernel keeps one exact
//! integer sum per (weight row, activation row, super-block) rather than 8 lanes, and
//! applies the scales differently. Its AVX-512 VNNI micro-kernel, as compiled with
//! `-march=native` by GCC, does per super-block:
//!
//! 1. `r = f32(s1) * fp16(w.d)`, where `s1` is the scaled product sum (code offset
//!    included for Q6_K);
//! 2. for Q4_K and Q5_K, `r = fma(-fp16(w.dmin), f32(s2), r)` (`vfnmadd`), where `s2` is
//!    the sum of mins times sub-block activation sums;
//! 3. `acc = fma(r, a.d, acc)`, starting from 0.0: the source writes `acc + r * a.d` with
//!    intrinsics, and GCC contracts it to one `vfmadd213ps`.
//!
//! The super-blocks are added in ascending order, so each output element only depends on
//! its own row pair.

use bytemuck::Pod;
use rayon::prelude::*;

use super::{vec_dot_q4_k, vec_dot_q5_k, vec_dot_q6_k};
use crate::blocks::{BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::dot::scalar::fp16;
use crate::dot::Isa;
use crate::matmul::{tile_blocks, OutPtr, QuantizedActivations, WeightMatrix};
use crate::QuantError;

/// The smallest batch for which ggml takes the tiled path (`ggml_tiled_min_batch`).
pub(crate) const TILED_MIN_BATCH: usize = 8;

/// Weight rows per parallel task.
const ROW_TILE: usize = 16;

/// Activation rows per parallel task; a multiple of 4 for the four-row kernels.
const BATCH_TILE: usize = 64;

/// Activation rows the AVX-512 integer kernels take at once.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only the x86-64 kernels use it
const GROUP: usize = 4;

/// A K-quant weight block the tiled kernel supports.
pub(crate) trait TiledK: Pod + Send + Sync {
    /// Whether the format has a min term (Q4_K, Q5_K) or not (Q6_K).
    const HAS_MIN: bool;

    /// Returns the super-block scale and min scale as f32 (0.0 without a min).
    fn scales(&self) -> (f32, f32);

    /// Returns the exact integer sums `(s1, s2)` of the block with `a`.
    fn sums(&self, a: &BlockQ8K) -> (i32, i32);

    /// Returns [`TiledK::sums`] for four activation blocks.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA, AVX-512 F and BW.
    #[cfg(target_arch = "x86_64")]
    unsafe fn sums_x4_avx512(&self, a: [&BlockQ8K; 4]) -> [(i32, i32); 4];
}

impl TiledK for BlockQ6K {
    const HAS_MIN: bool = false;

    fn scales(&self) -> (f32, f32) {
        (fp16(self.d), 0.0)
    }

    fn sums(&self, a: &BlockQ8K) -> (i32, i32) {
        (vec_dot_q6_k::block_sum(self, a), 0)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn sums_x4_avx512(&self, a: [&BlockQ8K; 4]) -> [(i32, i32); 4] {
        vec_dot_q6_k::tiled_sums_x4_avx512(self, a)
    }
}

impl TiledK for BlockQ5K {
    const HAS_MIN: bool = true;

    fn scales(&self) -> (f32, f32) {
        (fp16(self.d), fp16(self.dmin))
    }

    fn sums(&self, a: &BlockQ8K) -> (i32, i32) {
        vec_dot_q5_k::block_sums(self, a)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn sums_x4_avx512(&self, a: [&BlockQ8K; 4]) -> [(i32, i32); 4] {
        vec_dot_q5_k::tiled_sums_x4_avx512(self, a)
    }
}

impl TiledK for BlockQ4K {
    const HAS_MIN: bool = true;

    fn scales(&self) -> (f32, f32) {
        (fp16(self.d), fp16(self.dmin))
    }

    fn sums(&self, a: &BlockQ8K) -> (i32, i32) {
        vec_dot_q4_k::block_sums(self, a)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn sums_x4_avx512(&self, a: [&BlockQ8K; 4]) -> [(i32, i32); 4] {
        vec_dot_q4_k::tiled_sums_x4_avx512(self, a)
    }
}

/// Adds one super-block's contribution to `acc` in the tiled kernel's float order.
#[inline]
fn accumulate<W: TiledK>(acc: f32, (d, dmin): (f32, f32), (s1, s2): (i32, i32), a_d: f32) -> f32 {
    let mut r = s1 as f32 * d;
    if W::HAS_MIN {
        r = (-dmin).mul_add(s2 as f32, r);
    }
    r.mul_add(a_d, acc)
}

/// Computes one output element in the tiled kernel's order, in portable Rust.
pub(crate) fn tiled_dot<W: TiledK>(w: &[W], a: &[BlockQ8K]) -> f32 {
    w.iter().zip(a).fold(0.0, |acc, (w, a)| {
        accumulate::<W>(acc, w.scales(), w.sums(a), a.d)
    })
}

/// Computes four output elements (one weight row, four activation rows) with the AVX-512
/// integer kernels, bit for bit as [`tiled_dot`].
///
/// # Safety
///
/// The CPU supports AVX2, FMA, AVX-512 F and BW, and every row of `a` has as many blocks
/// as `w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
unsafe fn tiled_dot_x4_avx512<W: TiledK>(w: &[W], a: [&[BlockQ8K]; GROUP]) -> [f32; GROUP] {
    let mut acc = [0.0f32; GROUP];
    for (i, w) in w.iter().enumerate() {
        let sums = w.sums_x4_avx512([&a[0][i], &a[1][i], &a[2][i], &a[3][i]]);
        let scales = w.scales();
        for r in 0..GROUP {
            acc[r] = accumulate::<W>(acc[r], scales, sums[r], a[r][i].d);
        }
    }
    acc
}

/// Computes `out` for a batch of at least [`TILED_MIN_BATCH`] rows in the tiled kernel's
/// float order. `Isa::Avx512` uses the AVX-512 integer kernels; every other ISA uses the
/// portable code, with identical bits.
///
/// NOTE: there is no AVX2 integer kernel here yet, so AVX2-only CPUs run the portable code.
pub(crate) fn matmul<W: TiledK>(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let Some(acts) = activations.blocks::<BlockQ8K>() else {
        return Err(QuantError::UnsupportedType(activations.ggml_type()));
    };

    let n_rows = weight.n_rows();
    let n_batch = activations.n_batch();
    let blocks_per_row = acts.len() / n_batch.max(1);
    let row_tiles = n_rows.div_ceil(ROW_TILE);
    let batch_tiles = n_batch.div_ceil(BATCH_TILE);
    let out_ptr = OutPtr(out.as_mut_ptr());
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    let use_avx512 = cfg!(target_arch = "x86_64") && isa.resolve() == Isa::Avx512;

    (0..row_tiles * batch_tiles)
        .into_par_iter()
        .for_each_init(Vec::<W>::new, |copied, tile| {
            let (row_tile, batch_tile) = (tile / batch_tiles, tile % batch_tiles);
            let rows = row_tile * ROW_TILE..((row_tile + 1) * ROW_TILE).min(n_rows);
            let batch = batch_tile * BATCH_TILE..((batch_tile + 1) * BATCH_TILE).min(n_batch);
            let tile_weights = tile_blocks(weight, &rows, copied);
            let act_row = |b: usize| &acts[b * blocks_per_row..(b + 1) * blocks_per_row];

            // SAFETY: this task writes exactly the elements `b * n_rows + r` for `b` in `batch`
            // and `r` in `rows`. Tasks partition that grid, and the caller checked that
            // `out.len() == n_batch * n_rows`.
            let write =
                |b: usize, r: usize, value: f32| unsafe { out_ptr.write(b * n_rows + r, value) };

            #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
            let mut b = batch.start;
            #[cfg(target_arch = "x86_64")]
            if use_avx512 {
                // A last group of fewer than 4 rows repeats its last row and keeps only the
                // rows it owns, because the portable code is far slower than one more row.
                while b < batch.end {
                    let owned = GROUP.min(batch.end - b);
                    let group: [&[BlockQ8K]; GROUP] =
                        std::array::from_fn(|k| act_row(b + k.min(owned - 1)));
                    for (i, r) in rows.clone().enumerate() {
                        let w_row = &tile_weights[i * blocks_per_row..(i + 1) * blocks_per_row];
                        // SAFETY: `use_avx512` means `resolve` confirmed AVX-512 F/BW, AVX2 and
                        // FMA. Every activation row has `blocks_per_row` blocks.
                        let values = unsafe { tiled_dot_x4_avx512(w_row, group) };
                        for (k, &value) in values.iter().enumerate().take(owned) {
                            write(b + k, r, value);
                        }
                    }
                    b += owned;
                }
            }
            for b in b..batch.end {
                for (i, r) in rows.clone().enumerate() {
                    let w_row = &tile_weights[i * blocks_per_row..(i + 1) * blocks_per_row];
                    write(b, r, tiled_dot(w_row, act_row(b)));
                }
            }
        });
    Ok(())
}
