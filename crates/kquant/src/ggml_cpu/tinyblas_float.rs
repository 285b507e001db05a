//! llamafile's float `tinyBLAS` as built for AVX-512 (llama.cpp b11312,
//! `ggml-cpu/llamafile/sgemm.cpp`, `tinyBLAS<16, __m512, __m512, T, T, float>`): F32 weights
//! times F32 activations and F16 weights times F16 activations, for batches of two or more.
//!
//! Each output element is one accumulator of 16 lanes: the row is read 16 elements at a
//! time, lane `l` taking `fma(w[k + l], a[k + l], acc[l])`, and GCC's
//! `_mm512_reduce_add_ps` ([`reduce16`]) sums the lanes at the end. tinyBLAS rejects a
//! product whose row length is not a multiple of 16 or whose weight has a number of rows
//! that is not a multiple of 4; ggml then falls back to `ggml_vec_dot_*` ([`accepts`]).

use gguf_format::GgmlType;
use half::f16;

use crate::dot::Isa;
use crate::matmul::{QuantizedActivations, WeightMatrix};
use crate::QuantError;

use super::tiles::{for_each_element, mismatch};
use super::vec_dot_float::{reduce16, EPR};

/// Elements per step of the accumulator (the `KN` template argument).
const KN: usize = EPR;

/// tinyBLAS's float kernels take weight rows in tiles of 4 and need a multiple of it.
const ROW_MULTIPLE: usize = 4;

/// Returns whether tinyBLAS's float kernels accept a weight of `n_rows` x `n_cols`.
pub(crate) fn accepts(n_rows: usize, n_cols: usize) -> bool {
    n_cols % KN == 0 && n_rows % ROW_MULTIPLE == 0
}

/// An element type of the float kernels.
pub(crate) trait FloatElement: bytemuck::Pod + Send + Sync {
    /// The ggml type of the weights and of the activations.
    const TYPE: GgmlType;

    /// Converts to f32 (exact for both types).
    fn to_f32(self) -> f32;

    /// Returns the stored activation rows, or `None` when they are of another type.
    fn activation_rows(activations: &QuantizedActivations) -> Option<&[Self]>;
}

impl FloatElement for f32 {
    const TYPE: GgmlType = GgmlType::F32;

    fn to_f32(self) -> f32 {
        self
    }

    fn activation_rows(activations: &QuantizedActivations) -> Option<&[Self]> {
        activations.blocks::<f32>()
    }
}

impl FloatElement for f16 {
    const TYPE: GgmlType = GgmlType::F16;

    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }

    fn activation_rows(activations: &QuantizedActivations) -> Option<&[Self]> {
        activations.blocks::<f16>()
    }
}

/// Computes one output element in tinyBLAS's order.
pub(crate) fn dot_scalar<T: FloatElement>(w: &[T], a: &[T]) -> f32 {
    let mut acc = [0.0f32; KN];
    for (w, a) in w.chunks_exact(KN).zip(a.chunks_exact(KN)) {
        for (l, lane) in acc.iter_mut().enumerate() {
            *lane = w[l].to_f32().mul_add(a[l].to_f32(), *lane);
        }
    }
    reduce16(acc)
}

/// Computes `out` in tinyBLAS's order with the kernels for `isa`. The caller has checked
/// [`accepts`].
pub(crate) fn matmul<T: FloatElement>(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let Some(acts) = T::activation_rows(activations) else {
        return Err(mismatch(weight, activations, T::TYPE));
    };
    let n_batch = activations.n_batch();

    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `resolve` returned Avx512, so AVX-512 F is present; `acts` contains
            // `n_batch` rows of `n_cols` and the caller checked `out.len()` and `accepts`.
            unsafe { x86::matmul::<T>(weight, acts, n_batch, out) };
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: `resolve` returned Avx2, so AVX2, FMA and F16C are present.
            for_each_element(weight, acts, n_batch, out, |w: &[T], a| unsafe { x86::dot_avx2(w, a) });
        }
        _ => for_each_element(weight, acts, n_batch, out, dot_scalar::<T>),
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use half::f16;

    use super::{FloatElement, KN};
    use crate::ggml_cpu::tiles::{BATCH_TILE, ROW_TILE};
    use crate::ggml_cpu::vec_dot_float::x86::{load_f16, reduce16};
    use crate::matmul::{tile_blocks, OutPtr, WeightMatrix};

    /// Weight rows and activation rows of the micro-kernel.
    const MR: usize = 4;
    const NR: usize = 4;

    /// Loads 16 elements as f32.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load<T: FloatElement>(p: *const T) -> __m512 {
        if T::TYPE == gguf_format::GgmlType::F16 {
            load_f16(p.cast::<f16>())
        } else {
            _mm512_loadu_ps(p.cast::<f32>())
        }
    }

    /// Computes [`super::dot_scalar`] with AVX2, one 16-lane accumulator as two halves.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_avx2<T: FloatElement>(w: &[T], a: &[T]) -> f32 {
        use crate::ggml_cpu::vec_dot_float::avx2;

        let load = |p: *const T| {
            // SAFETY: the caller guarantees AVX2, and `p` points at 16 elements of a row.
            unsafe {
                if T::TYPE == gguf_format::GgmlType::F16 {
                    avx2::load_f16(p.cast::<f16>())
                } else {
                    avx2::load_f32(p.cast::<f32>())
                }
            }
        };
        let n = w.len().min(a.len());
        let mut acc = avx2::zero();
        let mut k = 0;
        while k + KN <= n {
            acc = avx2::fmadd(load(w.as_ptr().add(k)), load(a.as_ptr().add(k)), acc);
            k += KN;
        }
        avx2::reduce16(acc)
    }

    /// Multiplies `weight` by `n_batch` rows of `acts` into `out`.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 F. `acts` contains `n_batch` rows of `weight.n_cols()`, a
    /// multiple of 16, and `out` has room for `n_batch * n_rows` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn matmul<T: FloatElement>(weight: &WeightMatrix, acts: &[T], n_batch: usize, out: &mut [f32]) {
        let n_rows = weight.n_rows();
        let n_cols = weight.n_cols();
        if n_batch == 0 || n_rows == 0 {
            return;
        }
        let row_tiles = n_rows.div_ceil(ROW_TILE);
        let batch_tiles = n_batch.div_ceil(BATCH_TILE);
        let out_ptr = OutPtr(out.as_mut_ptr());

        (0..row_tiles * batch_tiles).into_par_iter().for_each_init(Vec::<T>::new, |copied, tile| {
            let rows = (tile / batch_tiles) * ROW_TILE..((tile / batch_tiles + 1) * ROW_TILE).min(n_rows);
            let batch = (tile % batch_tiles) * BATCH_TILE..((tile % batch_tiles + 1) * BATCH_TILE).min(n_batch);
            let w = tile_blocks(weight, &rows, copied);
            let write = |b: usize, i: usize, value: f32| {
                // SAFETY: tiles partition the (row, batch) grid, so only this tile writes
                // element (b, rows.start + i), and `b < n_batch`, `i < rows.len()`.
                unsafe { out_ptr.write(b * n_rows + rows.start + i, value) };
            };
            // SAFETY: the caller guarantees AVX-512 F and the shapes.
            unsafe { multiply_tile(w, rows.len(), &acts[..n_batch * n_cols], batch, n_cols, write) };
        });
    }

    /// Computes every (row, batch row) of a tile, passing `(b, row_in_tile, value)` to `write`.
    #[target_feature(enable = "avx512f")]
    unsafe fn multiply_tile<T: FloatElement>(
        w: &[T],
        n_rows: usize,
        acts: &[T],
        batch: std::ops::Range<usize>,
        n_cols: usize,
        mut write: impl FnMut(usize, usize, f32),
    ) {
        assert_eq!(w.len(), n_rows * n_cols, "weight tile size");
        assert!(batch.end * n_cols <= acts.len(), "activation rows out of range");
        assert_eq!(n_cols % KN, 0, "row length is a multiple of 16");

        let full_rows = n_rows - n_rows % MR;
        let full_batch = batch.start + (batch.len() - batch.len() % NR);
        let mut b = batch.start;
        while b < full_batch {
            let mut r = 0;
            while r < full_rows {
                emit(&kernel::<T, MR, NR>(w, r, acts, b, n_cols), r, b, &mut write);
                r += MR;
            }
            for r in full_rows..n_rows {
                emit(&kernel::<T, 1, NR>(w, r, acts, b, n_cols), r, b, &mut write);
            }
            b += NR;
        }
        for b in full_batch..batch.end {
            let mut r = 0;
            while r < full_rows {
                emit(&kernel::<T, MR, 1>(w, r, acts, b, n_cols), r, b, &mut write);
                r += MR;
            }
            for r in full_rows..n_rows {
                emit(&kernel::<T, 1, 1>(w, r, acts, b, n_cols), r, b, &mut write);
            }
        }
    }

    #[inline(always)]
    fn emit<const M: usize, const N: usize>(
        sums: &[[f32; N]; M],
        r: usize,
        b: usize,
        write: &mut impl FnMut(usize, usize, f32),
    ) {
        for (i, row) in sums.iter().enumerate() {
            for (j, &value) in row.iter().enumerate() {
                write(b + j, r + i, value);
            }
        }
    }

    /// Multiplies weight rows `r0..r0 + M` of the tile by activation rows `b0..b0 + N`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn kernel<T: FloatElement, const M: usize, const N: usize>(
        w: &[T],
        r0: usize,
        acts: &[T],
        b0: usize,
        n_cols: usize,
    ) -> [[f32; N]; M] {
        let mut acc = [[_mm512_setzero_ps(); N]; M];
        let mut k = 0;
        while k < n_cols {
            let mut a = [_mm512_setzero_ps(); N];
            for (j, a) in a.iter_mut().enumerate() {
                *a = load(acts.as_ptr().add((b0 + j) * n_cols + k));
            }
            for i in 0..M {
                let wv = load(w.as_ptr().add((r0 + i) * n_cols + k));
                for j in 0..N {
                    acc[i][j] = _mm512_fmadd_ps(wv, a[j], acc[i][j]);
                }
            }
            k += KN;
        }

        let mut out = [[0.0f32; N]; M];
        for i in 0..M {
            for j in 0..N {
                out[i][j] = reduce16(acc[i][j]);
            }
        }
        out
    }
}
