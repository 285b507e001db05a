//! Q4_0 and IQ4_NL weights times Q8_0 activations in the order of
//! `ggml_gemm_q4_0_8x8_q8_0`, `ggml_gemv_q4_0_8x8_q8_0` and their IQ4_NL twins (llama.cpp
//! b11312, x86-64; both share the `*_q4_b32_8x8_q8_0_lut_avx` templates).
//!
//! Each 32-element block gives one exact integer dot product of the signed weight codes
//! (`n - 8` for Q4_0, the code book value for IQ4_NL) with the activation codes. The
//! kernels accumulate `acc = fma(f32(dot), d * d_a, acc)` block after block, from 0, where
//! `d` and `d_a` are the weight and activation f16 scales widened to f32. The gemm kernel
//! (AVX-512 and AVX2 branches) and the gemv kernel use this same per-element formula, so
//! the batch position of a row does not matter here.

use crate::blocks::{BlockIQ4NL, BlockQ4_0, BlockQ8_0, KVALUES_IQ4NL, QK};
use crate::dot::{Isa, VecDot};
use crate::matmul::{tile_blocks, OutPtr, QuantizedActivations, WeightMatrix};
use crate::packing::f16_value;
use crate::QuantError;

use super::repack::{activation_blocks, for_each_tile};

/// A weight block of 32 signed codes and one f16 scale.
pub(crate) trait RepackB32: VecDot<VecDotType = BlockQ8_0> {
    /// Added to every code to make it an unsigned byte for `vpdpbusd`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only the x86-64 kernels use it
    const CODE_OFFSET: i32;

    /// Returns the 32 signed codes in element order.
    fn codes(&self) -> [i8; QK];

    /// Returns the scale's f16 bits.
    fn scale_bits(&self) -> u16;
}

/// Bias of the Q4_0 nibbles: code `n` means `n - 8`.
const Q4_0_BIAS: i8 = 8;

/// Splits 16 bytes of nibbles into 32 elements: low nibbles first, then high nibbles.
fn nibbles(qs: &[u8; QK / 2]) -> [u8; QK] {
    std::array::from_fn(|e| {
        if e < QK / 2 {
            qs[e] & 0x0F
        } else {
            qs[e - QK / 2] >> 4
        }
    })
}

impl RepackB32 for BlockQ4_0 {
    const CODE_OFFSET: i32 = Q4_0_BIAS as i32;

    fn codes(&self) -> [i8; QK] {
        nibbles(&self.qs).map(|n| n as i8 - Q4_0_BIAS)
    }

    fn scale_bits(&self) -> u16 {
        self.d
    }
}

impl RepackB32 for BlockIQ4NL {
    /// The code book spans -127..=113.
    const CODE_OFFSET: i32 = 128;

    fn codes(&self) -> [i8; QK] {
        nibbles(&self.qs).map(|n| KVALUES_IQ4NL[usize::from(n)])
    }

    fn scale_bits(&self) -> u16 {
        self.d
    }
}

/// Computes the product with the kernels written for `isa`.
///
/// # Errors
///
/// [`QuantError::ActivationMismatch`] when the activations are not Q8_0 blocks.
pub(crate) fn matmul<W: RepackB32>(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let acts = activation_blocks::<BlockQ8_0>(weight, activations)?;

    #[cfg(target_arch = "x86_64")]
    if isa.resolve() == Isa::Avx512 {
        // SAFETY: `resolve` confirmed AVX-512 F, BW, VL and VNNI.
        unsafe { avx512::matmul::<W>(weight, acts, activations.n_batch(), out) };
        return Ok(());
    }

    // NOTE: AVX2-only CPUs run this scalar version too; it gives the same bits, slower.
    let _ = isa;
    matmul_scalar::<W>(weight, acts, activations.n_batch(), out);
    Ok(())
}

/// Computes every output element with [`dot_scalar`].
fn matmul_scalar<W: RepackB32>(
    weight: &WeightMatrix,
    acts: &[BlockQ8_0],
    n_batch: usize,
    out: &mut [f32],
) {
    let n_rows = weight.n_rows();
    let n_blocks = weight.n_cols() / QK;
    let out_ptr = OutPtr(out.as_mut_ptr());

    for_each_tile(n_rows, n_batch, Vec::<W>::new, |copied, rows, batch| {
        let tile = tile_blocks(weight, &rows, copied);
        for (i, r) in rows.clone().enumerate() {
            let w_row = &tile[i * n_blocks..(i + 1) * n_blocks];
            for b in batch.clone() {
                let value = dot_scalar(w_row, &acts[b * n_blocks..(b + 1) * n_blocks]);

                // SAFETY: tiles partition the (row, batch) grid, so this tile alone writes
                // element `b * n_rows + r`, and the caller checked the output length.
                unsafe { out_ptr.write(b * n_rows + r, value) };
            }
        }
    });
}

/// Returns one output element: weight row `weights` times activation row `acts`.
pub(crate) fn dot_scalar<W: RepackB32>(weights: &[W], acts: &[BlockQ8_0]) -> f32 {
    let mut acc = 0.0f32;
    for (w, a) in weights.iter().zip(acts) {
        let dot: i32 = w
            .codes()
            .iter()
            .zip(&a.qs)
            .map(|(&c, &q)| i32::from(c) * i32::from(q))
            .sum();
        let scale = f16_value(w.scale_bits()) * f16_value(a.d);
        acc = (dot as f32).mul_add(scale, acc);
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The AVX-512 VNNI version: each of the 16 lanes of a register serves one weight row, so it
    //! runs the scalar formula for its own output element and no horizontal sum is needed.
    //!
    //! `vpdpbusd` multiplies unsigned by signed bytes, so the weight codes are stored with
    //! [`RepackB32::CODE_OFFSET`] added, and each block's integer sum starts at
    //! `-CODE_OFFSET * sum(a)` to cancel it; the sum stays exact.

    use std::arch::x86_64::*;

    use bytemuck::Zeroable;

    use super::*;

    /// Weight rows per panel: the f32 lanes of a 512-bit register.
    const LANES: usize = 16;

    /// Activation rows that one call of [`panel_kernel`] multiplies.
    const BATCH_GROUP: usize = 4;

    /// Bytes of codes per lane and `vpdpbusd` step.
    const STEP: usize = 4;

    /// Steps per block.
    const STEPS: usize = QK / STEP;

    /// One block of 16 weight rows, laid out for `vpdpbusd`.
    #[repr(C, align(64))]
    #[derive(Clone, Copy, Zeroable)]
    struct PanelBlock {
        /// `codes[k][STEP * lane + e]`: code of element `4 k + e` of row `lane`, plus the
        /// type's offset.
        codes: [[u8; STEP * LANES]; STEPS],
        d: [f32; LANES],
    }

    /// Decodes up to 16 rows (`rows.len() / n_blocks` of them) into `panel`.
    ///
    /// Lanes past the last row keep stale values; their outputs are never written.
    fn decode_panel<W: RepackB32>(rows: &[W], n_blocks: usize, panel: &mut Vec<PanelBlock>) {
        panel.resize(n_blocks, PanelBlock::zeroed());
        for (lane, row) in rows.chunks_exact(n_blocks).enumerate() {
            for (w, block) in row.iter().zip(panel.iter_mut()) {
                let codes = w.codes();
                for (k, step) in codes.chunks_exact(STEP).enumerate() {
                    for (e, &code) in step.iter().enumerate() {
                        block.codes[k][STEP * lane + e] = (i32::from(code) + W::CODE_OFFSET) as u8;
                    }
                }
                block.d[lane] = f16_value(w.scale_bits());
            }
        }
    }

    /// Q8_0 activation rows with what the kernel needs per block beside the codes.
    struct Activations<'a> {
        blocks: &'a [BlockQ8_0],
        /// `-CODE_OFFSET * sum(qs)` per block: the start of each block's integer sum.
        starts: Vec<i32>,
        /// The f16 scale widened to f32, per block.
        d: Vec<f32>,
    }

    /// Computes the product with 16-row panels on the rayon thread pool.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 F, BW, VL and VNNI; `out` and `acts` have the lengths the
    /// caller checked.
    pub(super) unsafe fn matmul<W: RepackB32>(
        weight: &WeightMatrix,
        acts: &[BlockQ8_0],
        n_batch: usize,
        out: &mut [f32],
    ) {
        let n_rows = weight.n_rows();
        let n_blocks = weight.n_cols() / QK;
        let out_ptr = OutPtr(out.as_mut_ptr());
        let acts = Activations {
            blocks: acts,
            starts: acts
                .iter()
                .map(|a| -W::CODE_OFFSET * a.qs.iter().map(|&q| i32::from(q)).sum::<i32>())
                .collect(),
            d: acts.iter().map(|a| f16_value(a.d)).collect(),
        };

        let init = || (Vec::<W>::new(), Vec::<PanelBlock>::new());
        for_each_tile(n_rows, n_batch, init, |(copied, panel), rows, batch| {
            let tile = tile_blocks(weight, &rows, copied);

            for (panel_index, panel_rows) in tile.chunks(LANES * n_blocks).enumerate() {
                decode_panel(panel_rows, n_blocks, panel);
                let row0 = rows.start + panel_index * LANES;
                let n_lanes = panel_rows.len() / n_blocks;

                let mut b = batch.start;
                while b < batch.end {
                    let len = (batch.end - b).min(BATCH_GROUP);
                    let mut results = [[0.0f32; LANES]; BATCH_GROUP];
                    let first = b * n_blocks;

                    // SAFETY: the caller confirmed the CPU features, and rows `b..b + len`
                    // exist because `batch` lies within `n_batch`.
                    unsafe {
                        match len {
                            4 => results = panel_kernel::<4>(panel, &acts, first, n_blocks),
                            3 => results[..3]
                                .copy_from_slice(&panel_kernel::<3>(panel, &acts, first, n_blocks)),
                            2 => results[..2]
                                .copy_from_slice(&panel_kernel::<2>(panel, &acts, first, n_blocks)),
                            _ => results[..1]
                                .copy_from_slice(&panel_kernel::<1>(panel, &acts, first, n_blocks)),
                        }
                    }

                    for (j, lanes) in results[..len].iter().enumerate() {
                        for (lane, &value) in lanes[..n_lanes].iter().enumerate() {
                            // SAFETY: tiles partition the (row, batch) grid, so this tile
                            // alone writes these elements, all within the checked length.
                            unsafe { out_ptr.write((b + j) * n_rows + row0 + lane, value) };
                        }
                    }
                    b += len;
                }
            }
        });
    }

    /// Multiplies one decoded panel by the `N` activation rows whose first block is
    /// `first`.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 F, BW and VNNI; the activations hold `N` rows of
    /// `panel.len()` blocks from `first`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn panel_kernel<const N: usize>(
        panel: &[PanelBlock],
        acts: &Activations,
        first: usize,
        n_blocks: usize,
    ) -> [[f32; LANES]; N] {
        let mut acc = [_mm512_setzero_ps(); N];

        for (blk, block) in panel.iter().enumerate() {
            let index: [usize; N] = std::array::from_fn(|j| first + j * n_blocks + blk);
            let mut dot: [__m512i; N] =
                std::array::from_fn(|j| _mm512_set1_epi32(acts.starts[index[j]]));

            for k in 0..STEPS {
                let codes = _mm512_load_si512(block.codes[k].as_ptr().cast());
                for (row, &i) in dot.iter_mut().zip(&index) {
                    let a_word = std::ptr::read_unaligned(
                        acts.blocks[i].qs.as_ptr().add(STEP * k).cast::<i32>(),
                    );
                    *row = _mm512_dpbusd_epi32(*row, codes, _mm512_set1_epi32(a_word));
                }
            }

            let d = _mm512_load_ps(block.d.as_ptr());
            for j in 0..N {
                // ggml multiplies the weight scale by the activation scale once per block.
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(acts.d[index[j]]));
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[j]), scale, acc[j]);
            }
        }

        let mut out = [[0.0f32; LANES]; N];
        for j in 0..N {
            _mm512_storeu_ps(out[j].as_mut_ptr(), acc[j]);
        }
        out
    }
}
