//! Q4_K weights times Q8_K activations in the order of `ggml_gemm_q4_K_8x8_q8_K` and
//! `ggml_gemv_q4_K_8x8_q8_K` (llama.cpp b11312, x86-64 AVX2 and AVX-512 branches).
//!
//! Both kernels first form exact integer sums per 32-element sub-block `j` of a super-block:
//! `scale_j * dot(codes_j, a_j)` and `min_j * sum(a_j)`, where `a_j` are the Q8_K codes and
//! `sum(a_j)` comes from the block's `bsums`. They differ in how many of those sums they
//! convert to f32 at once, and the conversion rounds once the sum passes 2^24:
//!
//! - the gemm kernel converts each pair of sub-blocks (64 elements) and accumulates
//!   `acc = fma(f32(pair sum), d * d_a, acc)`, four times per super-block, and likewise
//!   `acc_min` with `dmin * d_a`;
//! - the gemv kernel converts the sum of all 8 sub-blocks and accumulates once per
//!   super-block.
//!
//! Here `d` and `dmin` are the weight block's f16 scales widened to f32 and `d_a` is the
//! activation block's f32 scale. Both accumulators start at 0 and the result is
//! `acc - acc_min`. ggml's AVX-512 branch (columns in groups of 16) and its AVX2 branch (the
//! remaining 8) use this same per-element formula.

use crate::blocks::{BlockQ4K, BlockQ8K, QK_K};
use crate::dot::Isa;
use crate::matmul::{tile_blocks, OutPtr, QuantizedActivations, WeightMatrix};
use crate::packing::f16_value;
use crate::q4_k::get_scale_min_k4;
use crate::QuantError;

use super::repack::{activation_blocks, for_each_tile, Kernel};

/// Elements per sub-block, each with its own 6-bit scale and min.
const SUB_BLOCK: usize = 32;

/// Sub-blocks per super-block.
const SUB_BLOCKS: usize = QK_K / SUB_BLOCK;

/// Sub-blocks whose sums the gemm kernel converts to f32 together.
const GEMM_SUB_BLOCKS: usize = 2;

/// Elements of [`BlockQ8K::bsums`] per sub-block.
const BSUMS_PER_SUB_BLOCK: usize = 2;

/// Computes the product with the kernels written for `isa`.
///
/// # Errors
///
/// [`QuantError::ActivationMismatch`] when the activations are not Q8_K blocks.
pub(crate) fn matmul(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let acts = activation_blocks::<BlockQ8K>(weight, activations)?;

    #[cfg(target_arch = "x86_64")]
    if isa.resolve() == Isa::Avx512 {
        // SAFETY: `resolve` confirmed AVX-512 F, BW, VL and VNNI.
        unsafe { avx512::matmul(weight, acts, activations.n_batch(), out) };
        return Ok(());
    }

    // NOTE: AVX2-only CPUs run this scalar version too; it gives the same bits, slower.
    let _ = isa;
    matmul_scalar(weight, acts, activations.n_batch(), out);
    Ok(())
}

/// Computes every output element with [`dot_scalar`].
fn matmul_scalar(weight: &WeightMatrix, acts: &[BlockQ8K], n_batch: usize, out: &mut [f32]) {
    let n_rows = weight.n_rows();
    let n_blocks = weight.n_cols() / QK_K;
    let out_ptr = OutPtr(out.as_mut_ptr());

    for_each_tile(
        n_rows,
        n_batch,
        Vec::<BlockQ4K>::new,
        |copied, rows, batch| {
            let tile = tile_blocks(weight, &rows, copied);
            for (i, r) in rows.clone().enumerate() {
                let w_row = &tile[i * n_blocks..(i + 1) * n_blocks];
                for b in batch.clone() {
                    let a_row = &acts[b * n_blocks..(b + 1) * n_blocks];
                    let value = dot_scalar(w_row, a_row, Kernel::for_row(b, n_batch));

                    // SAFETY: tiles partition the (row, batch) grid, so this tile alone writes
                    // element `b * n_rows + r`, and the caller checked the output length.
                    unsafe { out_ptr.write(b * n_rows + r, value) };
                }
            }
        },
    );
}

/// Returns one output element: weight row `weights` times activation row `acts`, in the
/// order of `kernel`.
pub(crate) fn dot_scalar(weights: &[BlockQ4K], acts: &[BlockQ8K], kernel: Kernel) -> f32 {
    let mut acc = 0.0f32;
    let mut acc_min = 0.0f32;

    for (w, a) in weights.iter().zip(acts) {
        let d = f16_value(w.d) * a.d;
        let dmin = f16_value(w.dmin) * a.d;
        let (scaled, mins) = sub_block_sums(w, a);

        match kernel {
            Kernel::Gemm => {
                for (pair, pair_mins) in scaled
                    .chunks_exact(GEMM_SUB_BLOCKS)
                    .zip(mins.chunks_exact(GEMM_SUB_BLOCKS))
                {
                    acc = (pair.iter().sum::<i32>() as f32).mul_add(d, acc);
                    acc_min = (pair_mins.iter().sum::<i32>() as f32).mul_add(dmin, acc_min);
                }
            }
            Kernel::Gemv => {
                acc = (scaled.iter().sum::<i32>() as f32).mul_add(d, acc);
                acc_min = (mins.iter().sum::<i32>() as f32).mul_add(dmin, acc_min);
            }
        }
    }
    acc - acc_min
}

/// Returns, per sub-block `j`, the exact sums `scale_j * dot(codes_j, a_j)` and
/// `min_j * sum(a_j)`.
fn sub_block_sums(w: &BlockQ4K, a: &BlockQ8K) -> ([i32; SUB_BLOCKS], [i32; SUB_BLOCKS]) {
    let mut scaled = [0i32; SUB_BLOCKS];
    let mut mins = [0i32; SUB_BLOCKS];

    for j in 0..SUB_BLOCKS {
        let (scale, min) = get_scale_min_k4(&w.scales, j);

        // Byte `32 g + l` holds element `64 g + l` in its low nibble and `64 g + 32 + l`
        // in its high nibble, so sub-block `j` reads nibble `j % 2` of bytes `32 (j / 2)..`.
        let bytes = &w.qs[SUB_BLOCK * (j / 2)..SUB_BLOCK * (j / 2 + 1)];
        let shift = 4 * (j % 2);
        let a_codes = &a.qs[SUB_BLOCK * j..SUB_BLOCK * (j + 1)];
        let dot: i32 = bytes
            .iter()
            .zip(a_codes)
            .map(|(&byte, &q)| i32::from((byte >> shift) & 0x0F) * i32::from(q))
            .sum();

        let bsums = &a.bsums[BSUMS_PER_SUB_BLOCK * j..BSUMS_PER_SUB_BLOCK * (j + 1)];
        let a_sum: i32 = bsums.iter().map(|&s| i32::from(s)).sum();

        scaled[j] = i32::from(scale) * dot;
        mins[j] = i32::from(min) * a_sum;
    }
    (scaled, mins)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The AVX-512 VNNI version: each of the 16 lanes of a register serves one weight row, so it
    //! runs the scalar formula for its own output element and no horizontal sum is needed.

    use std::arch::x86_64::*;

    use bytemuck::Zeroable;

    use super::*;
    use crate::ggml_cpu::repack::kernel_runs;

    /// Weight rows per panel: the f32 lanes of a 512-bit register.
    const LANES: usize = 16;

    /// Activation rows that one call of [`panel_kernel`] multiplies.
    const MAX_BATCH_GROUP: usize = 4;

    /// Bytes of codes per lane and `vpdpbusd` step.
    const STEP: usize = 4;

    /// Steps per sub-block.
    const STEPS: usize = SUB_BLOCK / STEP;

    /// One super-block of 16 weight rows, laid out for `vpdpbusd`.
    #[repr(C, align(64))]
    #[derive(Clone, Copy, Zeroable)]
    struct PanelBlock {
        /// `codes[STEPS * j + k][STEP * lane + e]`: the 4-bit code of element
        /// `32 j + 4 k + e` of row `lane`, as an unsigned byte.
        codes: [[u8; STEP * LANES]; SUB_BLOCKS * STEPS],
        /// `scales[j][lane]`: 6-bit scale of sub-block `j`.
        scales: [[i32; LANES]; SUB_BLOCKS],
        /// `min_pairs[p][lane]`: mins of sub-blocks `2 p` (low i16) and `2 p + 1` (high
        /// i16), the operand of `vpmaddwd`.
        min_pairs: [[i32; LANES]; SUB_BLOCKS / GEMM_SUB_BLOCKS],
        d: [f32; LANES],
        dmin: [f32; LANES],
    }

    /// Decodes up to 16 rows (`rows.len() / n_blocks` of them) into `panel`.
    ///
    /// Lanes past the last row keep stale values; their outputs are never written.
    fn decode_panel(rows: &[BlockQ4K], n_blocks: usize, panel: &mut Vec<PanelBlock>) {
        const LOW_NIBBLES: u32 = 0x0F0F_0F0F;

        panel.resize(n_blocks, PanelBlock::zeroed());
        for (lane, row) in rows.chunks_exact(n_blocks).enumerate() {
            for (w, block) in row.iter().zip(panel.iter_mut()) {
                for (word_index, word) in w.qs.chunks_exact(STEP).enumerate() {
                    let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                    let (pair, k) = (word_index / STEPS, word_index % STEPS);
                    let lane_bytes = STEP * lane..STEP * (lane + 1);
                    block.codes[STEPS * 2 * pair + k][lane_bytes.clone()]
                        .copy_from_slice(&(word & LOW_NIBBLES).to_le_bytes());
                    block.codes[STEPS * (2 * pair + 1) + k][lane_bytes]
                        .copy_from_slice(&((word >> 4) & LOW_NIBBLES).to_le_bytes());
                }

                let mut mins = [0i32; SUB_BLOCKS];
                for (j, min) in mins.iter_mut().enumerate() {
                    let (scale, m) = get_scale_min_k4(&w.scales, j);
                    block.scales[j][lane] = i32::from(scale);
                    *min = i32::from(m);
                }
                for (p, pair) in mins.chunks_exact(GEMM_SUB_BLOCKS).enumerate() {
                    block.min_pairs[p][lane] = pair[0] | (pair[1] << 16);
                }
                block.d[lane] = f16_value(w.d);
                block.dmin[lane] = f16_value(w.dmin);
            }
        }
    }

    /// Computes the product with 16-row panels on the rayon thread pool.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 F, BW, VL and VNNI; `out` and `acts` have the lengths the
    /// caller checked.
    pub(super) unsafe fn matmul(
        weight: &WeightMatrix,
        acts: &[BlockQ8K],
        n_batch: usize,
        out: &mut [f32],
    ) {
        let n_rows = weight.n_rows();
        let n_blocks = weight.n_cols() / QK_K;
        let out_ptr = OutPtr(out.as_mut_ptr());

        let init = || (Vec::<BlockQ4K>::new(), Vec::<PanelBlock>::new());
        for_each_tile(n_rows, n_batch, init, |(copied, panel), rows, batch| {
            let tile = tile_blocks(weight, &rows, copied);

            for (panel_index, panel_rows) in tile.chunks(LANES * n_blocks).enumerate() {
                decode_panel(panel_rows, n_blocks, panel);
                let row0 = rows.start + panel_index * LANES;
                let n_lanes = panel_rows.len() / n_blocks;

                for (run, kernel) in kernel_runs(batch.clone(), n_batch, MAX_BATCH_GROUP) {
                    let mut results = [[0.0f32; LANES]; MAX_BATCH_GROUP];
                    let first = run.start;

                    // SAFETY: the caller confirmed the CPU features, and `run` lies within
                    // the batch.
                    unsafe {
                        match (run.len(), kernel) {
                            (4, Kernel::Gemm) => {
                                run_group::<4, true>(panel, acts, first, &mut results)
                            }
                            (3, Kernel::Gemm) => {
                                run_group::<3, true>(panel, acts, first, &mut results)
                            }
                            (2, Kernel::Gemm) => {
                                run_group::<2, true>(panel, acts, first, &mut results)
                            }
                            (1, Kernel::Gemm) => {
                                run_group::<1, true>(panel, acts, first, &mut results)
                            }
                            (3, Kernel::Gemv) => {
                                run_group::<3, false>(panel, acts, first, &mut results)
                            }
                            (2, Kernel::Gemv) => {
                                run_group::<2, false>(panel, acts, first, &mut results)
                            }
                            (1, Kernel::Gemv) => {
                                run_group::<1, false>(panel, acts, first, &mut results)
                            }
                            // `kernel_runs` yields 1 to 4 rows, and at most the 3 rows of
                            // `n_batch % 4` take the gemv kernel.
                            (len, kernel) => {
                                unreachable!("kernel_runs yielded {len} {kernel:?} rows")
                            }
                        }
                    }

                    for (b, lanes) in run.zip(&results) {
                        for (lane, &value) in lanes[..n_lanes].iter().enumerate() {
                            // SAFETY: tiles partition the (row, batch) grid, so this tile
                            // alone writes these elements, all within the checked length.
                            unsafe { out_ptr.write(b * n_rows + row0 + lane, value) };
                        }
                    }
                }
            }
        });
    }

    /// Runs [`panel_kernel`] on the `N` activation rows from `first` and copies the results
    /// to the front of `results`.
    ///
    /// # Safety
    ///
    /// As [`panel_kernel`]; rows `first..first + N` exist.
    #[inline]
    unsafe fn run_group<const N: usize, const GEMM: bool>(
        panel: &[PanelBlock],
        acts: &[BlockQ8K],
        first: usize,
        results: &mut [[f32; LANES]; MAX_BATCH_GROUP],
    ) {
        let n_blocks = panel.len();
        let rows: [&[BlockQ8K]; N] =
            std::array::from_fn(|j| &acts[(first + j) * n_blocks..(first + j + 1) * n_blocks]);

        // SAFETY: the caller upholds `panel_kernel`'s contract.
        let values = unsafe { panel_kernel::<N, GEMM>(panel, rows) };
        results[..N].copy_from_slice(&values);
    }

    /// Multiplies one decoded panel by `N` activation rows with the gemm formula (`GEMM`)
    /// or the gemv formula.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 F, BW and VNNI; every activation row has `panel.len()` blocks.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn panel_kernel<const N: usize, const GEMM: bool>(
        panel: &[PanelBlock],
        acts: [&[BlockQ8K]; N],
    ) -> [[f32; LANES]; N] {
        let mut acc = [_mm512_setzero_ps(); N];
        let mut acc_min = [_mm512_setzero_ps(); N];

        for (blk, block) in panel.iter().enumerate() {
            let d = _mm512_load_ps(block.d.as_ptr());
            let dmin = _mm512_load_ps(block.dmin.as_ptr());
            let a_blocks: [&BlockQ8K; N] = std::array::from_fn(|j| &acts[j][blk]);

            // ggml multiplies the weight scale by the activation scale once per block.
            let scale: [__m512; N] =
                std::array::from_fn(|j| _mm512_mul_ps(d, _mm512_set1_ps(a_blocks[j].d)));
            let scale_min: [__m512; N] =
                std::array::from_fn(|j| _mm512_mul_ps(dmin, _mm512_set1_ps(a_blocks[j].d)));

            let mut block_sum = [_mm512_setzero_si512(); N];
            let mut block_min = [_mm512_setzero_si512(); N];

            for p in 0..SUB_BLOCKS / GEMM_SUB_BLOCKS {
                let mut pair_sum = [_mm512_setzero_si512(); N];
                for j in GEMM_SUB_BLOCKS * p..GEMM_SUB_BLOCKS * (p + 1) {
                    let mut dot = [_mm512_setzero_si512(); N];
                    for k in 0..STEPS {
                        let codes = _mm512_load_si512(block.codes[STEPS * j + k].as_ptr().cast());
                        for (row, a) in dot.iter_mut().zip(&a_blocks) {
                            let a_word = std::ptr::read_unaligned(
                                a.qs.as_ptr().add(SUB_BLOCK * j + STEP * k).cast::<i32>(),
                            );
                            *row = _mm512_dpbusd_epi32(*row, codes, _mm512_set1_epi32(a_word));
                        }
                    }
                    let scales = _mm512_load_si512(block.scales[j].as_ptr().cast());
                    for (sum, row) in pair_sum.iter_mut().zip(dot) {
                        *sum = _mm512_add_epi32(*sum, _mm512_mullo_epi32(row, scales));
                    }
                }

                let min_pairs = _mm512_load_si512(block.min_pairs[p].as_ptr().cast());
                for j in 0..N {
                    let bsums = &a_blocks[j].bsums
                        [2 * BSUMS_PER_SUB_BLOCK * p..2 * BSUMS_PER_SUB_BLOCK * (p + 1)];
                    let first = i32::from(bsums[0]) + i32::from(bsums[1]);
                    let second = i32::from(bsums[2]) + i32::from(bsums[3]);
                    // Each sum of 32 codes fits an i16 (|sum| <= 32 * 128).
                    let packed = (first & 0xFFFF) | (second << 16);
                    let pair_min = _mm512_madd_epi16(min_pairs, _mm512_set1_epi32(packed));

                    if GEMM {
                        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pair_sum[j]), scale[j], acc[j]);
                        acc_min[j] =
                            _mm512_fmadd_ps(_mm512_cvtepi32_ps(pair_min), scale_min[j], acc_min[j]);
                    } else {
                        block_sum[j] = _mm512_add_epi32(block_sum[j], pair_sum[j]);
                        block_min[j] = _mm512_add_epi32(block_min[j], pair_min);
                    }
                }
            }

            if !GEMM {
                for j in 0..N {
                    acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(block_sum[j]), scale[j], acc[j]);
                    acc_min[j] =
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(block_min[j]), scale_min[j], acc_min[j]);
                }
            }
        }

        let mut out = [[0.0f32; LANES]; N];
        for j in 0..N {
            _mm512_storeu_ps(out[j].as_mut_ptr(), _mm512_sub_ps(acc[j], acc_min[j]));
        }
        out
    }
}
