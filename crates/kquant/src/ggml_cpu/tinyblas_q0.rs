//! llamafile's `tinyBLAS_Q0_AVX` (llama.cpp b11312, `ggml-cpu/llamafile/sgemm.cpp`): Q4_0,
//! Q5_0, Q8_0 and IQ4_NL weights times Q8_0 activations, for batches of two or more rows.
//!
//! Whatever tile shape tinyBLAS picks (`gemm4xN`, `gemmMx4` or `gemm<RM, RN>`), each output
//! element is one accumulator of eight lanes: every block adds
//! `fma(d_w * d_a, lanes, acc)`, blocks in order, and `hsum(__m256)` sums the lanes in the
//! order of [`hsum8`](super::q0_block::hsum8). That is the order of ggml's single-row
//! Q4_0/Q5_0/Q8_0 kernels, and for IQ4_NL differs from `ggml_vec_dot_iq4_nl_q8_0`, which
//! splits even and odd blocks.
//!
//! The AVX-512 kernel here computes the same lanes with other instructions, so it gives the
//! same bits. It shifts the activation codes once to unsigned bytes (`a + 128`) for
//! `vpdpbusd` and starts each lane at `-128` times the sum of its four weight codes, which
//! leaves the exact integer lane sum. That equals the `vpsignb` lane sum because
//! [`quantize_activations`](crate::quantize_activations) never writes the code -128.

use gguf_format::GgmlType;

use crate::blocks::BlockQ8_0;
use crate::dot::Isa;
use crate::matmul::{QuantizedActivations, WeightMatrix};
use crate::QuantError;

use super::q0_block::Q0Block;
use super::tiles::{for_each_element, mismatch};
use super::vec_dot_q0;

/// Computes `out` in tinyBLAS's order with the kernels for `isa`.
pub(crate) fn matmul<W: Q0Block>(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let Some(acts) = activations.blocks::<BlockQ8_0>() else {
        return Err(mismatch(weight, activations, GgmlType::Q8_0));
    };
    let n_batch = activations.n_batch();

    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if !has_minus_128(acts) => {
            // SAFETY: `resolve` returned Avx512, so AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C
            // are present, and the activations hold no -128 code.
            unsafe { x86::matmul::<W>(weight, acts, n_batch, out) };
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => {
            // SAFETY: `resolve` returned Avx2 or Avx512, both with AVX2, FMA and F16C.
            for_each_element(weight, acts, n_batch, out, |w: &[W], a| unsafe { vec_dot_q0::x86::dot(w, a) });
        }
        _ => for_each_element(weight, acts, n_batch, out, vec_dot_q0::dot_scalar::<W>),
    }
    Ok(())
}

/// Returns whether an activation code is -128, which [`quantize_activations`] never writes
/// but which the `vpsignb` lane sums treat differently from the exact ones.
///
/// [`quantize_activations`]: crate::quantize_activations
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only the x86-64 kernels use it
fn has_minus_128(acts: &[BlockQ8_0]) -> bool {
    acts.iter().any(|block| block.qs.contains(&i8::MIN))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use crate::blocks::{BlockQ8_0, QK};
    use crate::ggml_cpu::q0_block::{fp16, Q0Block, LANES};
    use crate::ggml_cpu::tiles::ROW_TILE;
    use crate::ggml_cpu::vec_dot_q0::x86::{decode, hsum8};
    use crate::matmul::{tile_blocks, OutPtr, WeightMatrix};

    /// Weight rows of the micro-kernel.
    const MR: usize = 4;

    /// Activation row pairs of the micro-kernel: each 512-bit register contains the eight
    /// lanes of one weight row with each of two activation rows.
    const NP: usize = 4;

    /// Row tiles from which a tile spans the whole batch: 16 tiles keep 2 to 8 threads busy
    /// while each decoded tile serves every activation row.
    const MIN_ROW_TILES_FOR_FULL_BATCH: usize = 16;

    /// Activation pairs per tile when the matrix has fewer row tiles.
    const PAIR_TILE: usize = 32;

    /// Offset that maps a signed activation code to an unsigned byte.
    const UNSIGNED_OFFSET: i32 = 128;

    /// Two activation rows' block: unsigned codes and scales, low half the first row.
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct PairBlock {
        codes: [u8; 2 * QK],
        scales: [f32; 2 * LANES],
    }

    /// A decoded weight block: codes, the per-lane start `-128 * sum(4 codes)`, and scale.
    #[derive(Clone, Copy)]
    #[repr(C, align(32))]
    struct WeightBlock {
        codes: [i8; QK],
        starts: [i32; LANES],
        d: f32,
    }

    /// Multiplies `weight` by `n_batch` rows of `acts` into `out`.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C, and no activation code is
    /// -128. `acts` contains `n_batch` rows of `weight.n_cols()`, and `out` has room for
    /// `n_batch * n_rows` values.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn matmul<W: Q0Block>(weight: &WeightMatrix, acts: &[BlockQ8_0], n_batch: usize, out: &mut [f32]) {
        let n_rows = weight.n_rows();
        let n_blocks = weight.n_cols() / QK;
        if n_batch == 0 || n_rows == 0 {
            return;
        }
        let pairs = pair_activations(acts, n_batch, n_blocks);
        let n_pairs = n_batch.div_ceil(2);

        // Decoding a tile costs about one pass over its weights, so a tile spans the whole
        // batch unless the matrix has too few rows to keep every thread busy.
        let row_tiles = n_rows.div_ceil(ROW_TILE);
        let pair_tile = if row_tiles >= MIN_ROW_TILES_FOR_FULL_BATCH { n_pairs } else { PAIR_TILE };
        let pair_tiles = n_pairs.div_ceil(pair_tile);
        let out_ptr = OutPtr(out.as_mut_ptr());

        (0..row_tiles * pair_tiles).into_par_iter().for_each_init(
            || (Vec::<W>::new(), Vec::<WeightBlock>::new()),
            |(copied, decoded), tile| {
                let rows = (tile / pair_tiles) * ROW_TILE..((tile / pair_tiles + 1) * ROW_TILE).min(n_rows);
                let tile_pairs = (tile % pair_tiles) * pair_tile..((tile % pair_tiles + 1) * pair_tile).min(n_pairs);
                // SAFETY: the caller guarantees the CPU features.
                unsafe { decode_rows(tile_blocks(weight, &rows, copied), decoded) };

                let write = |b: usize, i: usize, value: f32| {
                    // SAFETY: tiles partition the (row, batch) grid, so only this tile writes
                    // element (b, rows.start + i), and `b < n_batch`, `i < rows.len()` keep it
                    // in bounds of `out` (`n_batch * n_rows` values).
                    if b < n_batch {
                        unsafe { out_ptr.write(b * n_rows + rows.start + i, value) };
                    }
                };
                // SAFETY: the caller guarantees the CPU features; `decoded` holds
                // `rows.len() * n_blocks` blocks and `pairs` `n_pairs * n_blocks`.
                unsafe { multiply_tile(decoded, rows.len(), &pairs, tile_pairs, n_blocks, write) };
            },
        );
    }

    /// Shifts the activation codes to unsigned bytes and pairs up the rows.
    fn pair_activations(acts: &[BlockQ8_0], n_batch: usize, n_blocks: usize) -> Vec<PairBlock> {
        let n_pairs = n_batch.div_ceil(2);
        // A missing second row reads as code 0 with scale 0; its outputs are dropped.
        let empty = PairBlock { codes: [UNSIGNED_OFFSET as u8; 2 * QK], scales: [0.0; 2 * LANES] };
        let mut pairs = vec![empty; n_pairs * n_blocks];

        pairs.par_chunks_mut(n_blocks).enumerate().for_each(|(p, row)| {
            for half in 0..2 {
                let b = 2 * p + half;
                if b >= n_batch {
                    break;
                }
                for (l, pair) in row.iter_mut().enumerate() {
                    let block = &acts[b * n_blocks + l];
                    for (code, &q) in pair.codes[half * QK..(half + 1) * QK].iter_mut().zip(&block.qs) {
                        // Flipping the sign bit adds 128 to a two's-complement byte.
                        *code = (q as u8) ^ 0x80;
                    }
                    pair.scales[half * LANES..(half + 1) * LANES].fill(fp16(block.d));
                }
            }
        });
        pairs
    }

    /// Decodes weight blocks into `decoded`, reusing its buffer.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn decode_rows<W: Q0Block>(blocks: &[W], decoded: &mut Vec<WeightBlock>) {
        decoded.clear();
        let ones = _mm256_set1_epi8(1);
        let offset = _mm256_set1_epi32(-UNSIGNED_OFFSET);
        for block in blocks {
            let codes = decode(block);
            // Per lane: -128 * (sum of its four codes), from a dot product with ones.
            let sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, codes);
            let starts = _mm256_mullo_epi32(sums, offset);

            let mut out = WeightBlock { codes: [0; QK], starts: [0; LANES], d: fp16(block.d()) };
            _mm256_storeu_si256(out.codes.as_mut_ptr().cast(), codes);
            _mm256_storeu_si256(out.starts.as_mut_ptr().cast(), starts);
            decoded.push(out);
        }
    }

    /// Computes every (row, pair) of a tile, passing `(b, row_in_tile, value)` to `write`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn multiply_tile(
        decoded: &[WeightBlock],
        n_rows: usize,
        pairs: &[PairBlock],
        tile_pairs: std::ops::Range<usize>,
        n_blocks: usize,
        mut write: impl FnMut(usize, usize, f32),
    ) {
        assert_eq!(decoded.len(), n_rows * n_blocks, "decoded tile size");
        assert!(tile_pairs.end * n_blocks <= pairs.len(), "activation pairs out of range");

        let full_rows = n_rows - n_rows % MR;
        let full_pairs = tile_pairs.start + (tile_pairs.len() - tile_pairs.len() % NP);

        let mut p = tile_pairs.start;
        while p < full_pairs {
            let mut r = 0;
            while r < full_rows {
                emit(&kernel::<MR, NP>(decoded, r, pairs, p, n_blocks), r, p, &mut write);
                r += MR;
            }
            for r in full_rows..n_rows {
                emit(&kernel::<1, NP>(decoded, r, pairs, p, n_blocks), r, p, &mut write);
            }
            p += NP;
        }
        for p in full_pairs..tile_pairs.end {
            let mut r = 0;
            while r < full_rows {
                emit(&kernel::<MR, 1>(decoded, r, pairs, p, n_blocks), r, p, &mut write);
                r += MR;
            }
            for r in full_rows..n_rows {
                emit(&kernel::<1, 1>(decoded, r, pairs, p, n_blocks), r, p, &mut write);
            }
        }
    }

    /// Passes the results of a micro-kernel to `write`: pair `j` gives rows `2 (p + j)` and
    /// `2 (p + j) + 1`.
    #[inline(always)]
    fn emit<const M: usize, const N: usize>(
        sums: &[[[f32; 2]; N]; M],
        r: usize,
        p: usize,
        write: &mut impl FnMut(usize, usize, f32),
    ) {
        for (i, row) in sums.iter().enumerate() {
            for (j, pair) in row.iter().enumerate() {
                write(2 * (p + j), r + i, pair[0]);
                write(2 * (p + j) + 1, r + i, pair[1]);
            }
        }
    }

    /// Multiplies decoded rows `r0..r0 + M` by activation pairs `p0..p0 + N`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn kernel<const M: usize, const N: usize>(
        decoded: &[WeightBlock],
        r0: usize,
        pairs: &[PairBlock],
        p0: usize,
        n_blocks: usize,
    ) -> [[[f32; 2]; N]; M] {
        let mut acc = [[_mm512_setzero_ps(); N]; M];
        for l in 0..n_blocks {
            let mut codes = [_mm512_setzero_si512(); M];
            let mut starts = [_mm512_setzero_si512(); M];
            let mut d_w = [_mm512_setzero_ps(); M];
            for i in 0..M {
                let w = decoded.get_unchecked((r0 + i) * n_blocks + l);
                codes[i] = _mm512_broadcast_i64x4(_mm256_load_si256(w.codes.as_ptr().cast()));
                starts[i] = _mm512_broadcast_i64x4(_mm256_load_si256(w.starts.as_ptr().cast()));
                d_w[i] = _mm512_set1_ps(w.d);
            }

            for j in 0..N {
                let pair = pairs.get_unchecked((p0 + j) * n_blocks + l);
                let a = _mm512_load_si512(pair.codes.as_ptr().cast());
                let d_a = _mm512_load_ps(pair.scales.as_ptr());
                for i in 0..M {
                    let lanes = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(starts[i], a, codes[i]));
                    let scale = _mm512_mul_ps(d_w[i], d_a);
                    acc[i][j] = _mm512_fmadd_ps(scale, lanes, acc[i][j]);
                }
            }
        }

        let mut out = [[[0.0f32; 2]; N]; M];
        for i in 0..M {
            for j in 0..N {
                let low = _mm512_castps512_ps256(acc[i][j]);
                let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc[i][j])));
                out[i][j] = [hsum8(low), hsum8(high)];
            }
        }
        out
    }
}
