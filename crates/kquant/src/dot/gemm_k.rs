//! Register-tiled matrix multiplication for Q2_K, Q3_K, Q4_K, Q5_K and Q6_K weights with
//! Q8_K activations, on AVX-512 VNNI machines.
//!
//! As in [`super::gemm_i8`], a tile of weight rows is decoded once per super-block to
//! signed codes, one i16 scale and one i16 min per 16-element group, `d` and `dmin`; the
//! activation codes are shifted once to unsigned bytes (`a + 128`). The micro-kernel then
//! runs `vpmaddubsw` (no saturation: |code| <= 32 and `a + 128` <= 255 keep each pair
//! below 2 * 255 * 32 = 16320) and `vpmaddwd` with the group scales. Every accumulator
//! lane starts at `-128 * sum(scale * code)` over its own elements, which cancels the
//! shift, so the integer sums are exact, as in the vec-dot kernels.

use std::arch::x86_64::*;

use half::f16;

use crate::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
use crate::dot::unpack::{q3_k_scales, q4_k_scales_mins};
use crate::dot::VecDot;

/// Groups of 16 elements per super-block.
const GROUPS: usize = QK_K / 16;

/// Offset that maps a signed activation code to an unsigned byte.
const UNSIGNED_OFFSET: i32 = 128;

/// Weight rows and activation rows of the micro-kernel.
const MR: usize = 4;
const NR: usize = 2;

/// One decoded super-block.
#[derive(Clone, Copy)]
pub(crate) struct DecodedSuperBlock {
    codes: [i8; QK_K],
    scales: [i16; GROUPS],
    mins: [i16; GROUPS],
    d: f32,
    dmin: f32,
}

impl DecodedSuperBlock {
    const ZERO: Self =
        Self { codes: [0; QK_K], scales: [0; GROUPS], mins: [0; GROUPS], d: 0.0, dmin: 0.0 };
}

/// A k-quant weight type whose codes fit |code| <= 32 with one scale and one min per 16
/// elements: `x = d * scale * code - dmin * min`.
pub(crate) trait DecodeK: VecDot<VecDotType = BlockQ8K> {
    /// Decodes `self` into `out`.
    fn decode(&self, out: &mut DecodedSuperBlock);
}

/// Element `128 h + 32 k + l` of a 2-bit plane: bits `2 k` of byte `32 h + l`.
fn two_bit_code(qs: &[u8; QK_K / 4], e: usize) -> u8 {
    let (h, k, l) = (e / 128, (e % 128) / 32, e % 32);
    (qs[32 * h + l] >> (2 * k)) & 3
}

fn fp16(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

impl DecodeK for BlockQ2K {
    fn decode(&self, out: &mut DecodedSuperBlock) {
        for (e, code) in out.codes.iter_mut().enumerate() {
            *code = two_bit_code(&self.qs, e) as i8;
        }
        for (g, &packed) in self.scales.iter().enumerate() {
            out.scales[g] = i16::from(packed & 0x0F);
            out.mins[g] = i16::from(packed >> 4);
        }
        out.d = fp16(self.d);
        out.dmin = fp16(self.dmin);
    }
}

impl DecodeK for BlockQ3K {
    fn decode(&self, out: &mut DecodedSuperBlock) {
        for (e, code) in out.codes.iter_mut().enumerate() {
            let high = (self.hmask[e % 32] >> (e / 32)) & 1;
            *code = two_bit_code(&self.qs, e) as i8 - if high == 0 { 4 } else { 0 };
        }
        for (scale, value) in out.scales.iter_mut().zip(q3_k_scales(&self.scales)) {
            *scale = value as i16;
        }
        out.mins = [0; GROUPS];
        out.d = fp16(self.d);
        out.dmin = 0.0;
    }
}

/// Fills the per-group scales and mins of Q4_K and Q5_K (one pair per 32 elements).
fn fill_k4_scales(packed: &[u8; 12], out: &mut DecodedSuperBlock) {
    let (scales, mins) = q4_k_scales_mins(packed);
    for g in 0..GROUPS {
        out.scales[g] = scales[g / 2] as i16;
        out.mins[g] = mins[g / 2] as i16;
    }
}

impl DecodeK for BlockQ4K {
    fn decode(&self, out: &mut DecodedSuperBlock) {
        for (e, code) in out.codes.iter_mut().enumerate() {
            let (g, half, l) = (e / 64, (e % 64) / 32, e % 32);
            *code = ((self.qs[32 * g + l] >> (4 * half)) & 0x0F) as i8;
        }
        fill_k4_scales(&self.scales, out);
        out.d = fp16(self.d);
        out.dmin = fp16(self.dmin);
    }
}

impl DecodeK for BlockQ5K {
    fn decode(&self, out: &mut DecodedSuperBlock) {
        for (e, code) in out.codes.iter_mut().enumerate() {
            let (g, half, l) = (e / 64, (e % 64) / 32, e % 32);
            let low = (self.qs[32 * g + l] >> (4 * half)) & 0x0F;
            let high = (self.qh[l] >> (2 * g + half)) & 1;
            *code = (low | (high << 4)) as i8;
        }
        fill_k4_scales(&self.scales, out);
        out.d = fp16(self.d);
        out.dmin = fp16(self.dmin);
    }
}

impl DecodeK for BlockQ6K {
    fn decode(&self, out: &mut DecodedSuperBlock) {
        for (e, code) in out.codes.iter_mut().enumerate() {
            let (h, k, l) = (e / 128, (e % 128) / 32, e % 32);
            let ql = self.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2));
            let qh = (self.qh[32 * h + l] >> (2 * k)) & 3;
            *code = ((ql & 0x0F) | (qh << 4)) as i8 - 32;
        }
        for (scale, &value) in out.scales.iter_mut().zip(&self.scales) {
            *scale = i16::from(value);
        }
        out.mins = [0; GROUPS];
        out.d = fp16(self.d);
        out.dmin = 0.0;
    }
}

/// Q8_K activation rows shifted to unsigned codes.
pub(crate) struct UnsignedQ8K {
    codes: Vec<u8>,
    d: Vec<f32>,
    bsums: Vec<[i16; GROUPS]>,
    n_cols: usize,
}

impl UnsignedQ8K {
    /// Converts `n_batch` rows of Q8_K blocks.
    pub(crate) fn new(blocks: &[BlockQ8K], n_batch: usize) -> Self {
        let n_cols = if n_batch == 0 { 0 } else { blocks.len() / n_batch * QK_K };
        let mut codes = Vec::with_capacity(blocks.len() * QK_K);
        for block in blocks {
            // Flipping the sign bit adds 128 to a two's-complement byte.
            codes.extend(block.qs.iter().map(|&q| (q as u8) ^ 0x80));
        }
        Self {
            codes,
            d: blocks.iter().map(|b| b.d).collect(),
            bsums: blocks.iter().map(|b| b.bsums).collect(),
            n_cols,
        }
    }
}

/// A tile of weight rows decoded for the micro-kernel.
pub(crate) struct DecodedKTile {
    blocks: Vec<DecodedSuperBlock>,
    /// Per super-block: 8 chunks of 16 i16 scales (group `2 c` eight times, then `2 c + 1`).
    chunk_scales: Vec<[[i16; 16]; QK_K / 32]>,
    /// Per super-block and i32 lane of the accumulator: `-128 * sum(scale * code)` over
    /// the elements that lane sums, so each lane holds an exact, small partial sum that
    /// converts to f32 without rounding.
    starts: Vec<[i32; 8]>,
    n_rows: usize,
}

impl DecodedKTile {
    pub(crate) fn new() -> Self {
        Self { blocks: Vec::new(), chunk_scales: Vec::new(), starts: Vec::new(), n_rows: 0 }
    }

    /// Decodes `rows` (each `blocks_per_row` super-blocks) into this tile.
    pub(crate) fn fill<W: DecodeK>(&mut self, rows: &[W], blocks_per_row: usize) {
        self.n_rows = rows.len() / blocks_per_row.max(1);
        self.blocks.resize(rows.len(), DecodedSuperBlock::ZERO);
        self.chunk_scales.resize(rows.len(), [[0; 16]; QK_K / 32]);
        self.starts.resize(rows.len(), [0; 8]);

        for (i, block) in rows.iter().enumerate() {
            let decoded = &mut self.blocks[i];
            block.decode(decoded);

            // Lane k of a 32-element chunk c sums bytes 4 k .. 4 k + 4, which belong to
            // group 2 c (k < 4) or 2 c + 1 (k >= 4).
            let mut starts = [0i32; 8];
            for c in 0..QK_K / 32 {
                for (k, start) in starts.iter_mut().enumerate() {
                    let bytes = &decoded.codes[32 * c + 4 * k..32 * c + 4 * k + 4];
                    let sum: i32 = bytes.iter().map(|&q| i32::from(q)).sum();
                    let scale = i32::from(decoded.scales[2 * c + k / 4]);
                    *start -= UNSIGNED_OFFSET * scale * sum;
                }
            }
            self.starts[i] = starts;

            for (c, chunk) in self.chunk_scales[i].iter_mut().enumerate() {
                chunk[..8].fill(decoded.scales[2 * c]);
                chunk[8..].fill(decoded.scales[2 * c + 1]);
            }
        }
    }
}

/// Computes the dot products of all tile rows with activation rows `batch`, passing each
/// result to `write(b, r_in_tile, value)`.
///
/// # Safety
///
/// The CPU supports AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn multiply_tile(
    tile: &DecodedKTile,
    acts: &UnsignedQ8K,
    batch: std::ops::Range<usize>,
    mut write: impl FnMut(usize, usize, f32),
) {
    let n_rows = tile.n_rows;
    let n_blocks = acts.n_cols / QK_K;
    assert!(batch.end * n_blocks <= acts.d.len(), "activation rows out of range");
    assert_eq!(tile.blocks.len(), n_rows * n_blocks, "tile and activations differ in n_cols");

    let full_rows = n_rows - n_rows % MR;
    let full_batch = batch.start + (batch.len() - batch.len() % NR);

    let mut b = batch.start;
    while b < full_batch {
        let mut r = 0;
        while r < full_rows {
            emit(&kernel::<MR, NR>(tile, r, acts, b), r, b, &mut write);
            r += MR;
        }
        for r in full_rows..n_rows {
            emit(&kernel::<1, NR>(tile, r, acts, b), r, b, &mut write);
        }
        b += NR;
    }
    for b in full_batch..batch.end {
        let mut r = 0;
        while r < full_rows {
            emit(&kernel::<MR, 1>(tile, r, acts, b), r, b, &mut write);
            r += MR;
        }
        for r in full_rows..n_rows {
            emit(&kernel::<1, 1>(tile, r, acts, b), r, b, &mut write);
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

/// Multiplies tile rows `r0..r0 + M` by activation rows `b0..b0 + N`.
///
/// # Safety
///
/// As [`multiply_tile`], which checked the ranges.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn kernel<const M: usize, const N: usize>(
    tile: &DecodedKTile,
    r0: usize,
    acts: &UnsignedQ8K,
    b0: usize,
) -> [[f32; N]; M] {
    let n_blocks = acts.n_cols / QK_K;
    let mut acc = [[_mm256_setzero_ps(); N]; M];
    let mut min_acc = [[_mm256_setzero_ps(); N]; M];

    for blk in 0..n_blocks {
        for j in 0..N {
            let act_block = (b0 + j) * n_blocks + blk;
            let a_codes = acts.codes.as_ptr().add(act_block * QK_K);
            let a_d = *acts.d.get_unchecked(act_block);
            let bsums = _mm256_loadu_si256(acts.bsums.get_unchecked(act_block).as_ptr().cast());

            for i in 0..M {
                let row_block = (r0 + i) * n_blocks + blk;
                let w = tile.blocks.get_unchecked(row_block);
                let scales = tile.chunk_scales.get_unchecked(row_block);

                let mut isum = _mm256_loadu_si256(tile.starts.get_unchecked(row_block).as_ptr().cast());
                for c in 0..QK_K / 32 {
                    let a = _mm256_loadu_si256(a_codes.add(32 * c).cast());
                    let codes = _mm256_loadu_si256(w.codes.as_ptr().add(32 * c).cast());
                    let pairs = _mm256_maddubs_epi16(a, codes);
                    let scale = _mm256_loadu_si256(scales[c].as_ptr().cast());
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(pairs, scale));
                }

                let mins = _mm256_loadu_si256(w.mins.as_ptr().cast());
                let min_sum = _mm256_madd_epi16(mins, bsums);

                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(w.d * a_d), acc[i][j]);
                min_acc[i][j] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(min_sum), _mm256_set1_ps(w.dmin * a_d), min_acc[i][j]);
            }
        }
    }

    let mut out = [[0.0f32; N]; M];
    for i in 0..M {
        for j in 0..N {
            out[i][j] = super::avx512::hsum_ps(acc[i][j]) - super::avx512::hsum_ps(min_acc[i][j]);
        }
    }
    out
}
