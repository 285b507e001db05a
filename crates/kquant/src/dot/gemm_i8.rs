//! Register-tiled matrix multiplication for the weight types whose blocks decode to 32
//! signed bytes and one scale (Q4_0, Q5_0, Q8_0, IQ4_NL, all paired with Q8_0
//! activations), on AVX-512 VNNI.
//!
//! A vec-dot kernel reloads and re-decodes a weight block for every activation row. Here a
//! tile of weight rows is decoded once to plain `i8` codes and the activation codes are
//! shifted once to unsigned bytes (`a + 128`). A 4 x 4 micro-kernel then keeps 16
//! accumulators in registers. Each block costs one `vpdpbusd`, one conversion, one multiply
//! and one fused multiply-add per (weight row, activation row) pair.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, hence the shift: the sum it returns is
//! `sum(a * w) + 128 * sum(w)`. Each block's accumulator starts at `-128 * sum(w)`
//! instead of 0, so the integer sum of every block is exact, as in the vec-dot kernels.
//! Only the order of the float additions differs from them.

use std::arch::x86_64::*;

use crate::blocks::{BlockIQ4NL, BlockQ4_0, BlockQ5_0, BlockQ8_0, QK};
use crate::dot::avx512;
use crate::dot::VecDot;

/// Offset that maps a signed activation code to an unsigned byte.
const UNSIGNED_OFFSET: i32 = 128;

/// Weight rows and activation rows of the micro-kernel.
const MR: usize = 4;
const NR: usize = 4;

/// A weight type that decodes to one scale and 32 signed codes per block.
pub(crate) trait DecodeI8: VecDot<VecDotType = BlockQ8_0> {
    /// Writes the 32 signed codes of `self` to `codes` and returns its scale.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 VNNI ([`crate::Isa::Avx512`]).
    unsafe fn decode(&self, codes: &mut [i8; QK]) -> f32;
}

macro_rules! impl_decode {
    ($block:ty, $codes:ident) => {
        impl DecodeI8 for $block {
            #[inline]
            unsafe fn decode(&self, codes: &mut [i8; QK]) -> f32 {
                _mm256_storeu_si256(codes.as_mut_ptr().cast(), avx512::$codes(self));
                avx512::fp16(self.d)
            }
        }
    };
}

impl_decode!(BlockQ4_0, codes_q4_0);
impl_decode!(BlockQ5_0, codes_q5_0);
impl_decode!(BlockQ8_0, codes_q8_0);
impl_decode!(BlockIQ4NL, codes_iq4_nl);

/// Q8_0 activation rows shifted to unsigned codes, with f32 scales.
pub(crate) struct UnsignedActivations {
    /// `a + 128` per element, `n_batch` rows of `n_cols`.
    codes: Vec<u8>,
    /// One scale per block, `n_batch` rows of `n_cols / 32`.
    scales: Vec<f32>,
    n_cols: usize,
}

impl UnsignedActivations {
    /// Converts `n_batch` rows of Q8_0 blocks.
    pub(crate) fn new(blocks: &[BlockQ8_0], n_batch: usize) -> Self {
        let n_cols = if n_batch == 0 { 0 } else { blocks.len() / n_batch * QK };
        let mut codes = Vec::with_capacity(blocks.len() * QK);
        let mut scales = Vec::with_capacity(blocks.len());

        for block in blocks {
            // Flipping the sign bit adds 128 to a two's-complement byte.
            codes.extend(block.qs.iter().map(|&q| (q as u8) ^ 0x80));
            scales.push(half::f16::from_bits(block.d).to_f32());
        }
        Self { codes, scales, n_cols }
    }
}

/// A tile of weight rows decoded to codes, scales and accumulator starts.
pub(crate) struct DecodedTile {
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// `-128 * sum(codes)` per block.
    starts: Vec<i32>,
    n_rows: usize,
}

impl DecodedTile {
    pub(crate) fn new() -> Self {
        Self { codes: Vec::new(), scales: Vec::new(), starts: Vec::new(), n_rows: 0 }
    }

    /// Decodes `rows` (each `blocks_per_row` blocks) into this tile, reusing its buffers.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 VNNI.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn fill<W: DecodeI8>(&mut self, rows: &[W], blocks_per_row: usize) {
        self.n_rows = rows.len() / blocks_per_row.max(1);
        self.codes.resize(rows.len() * QK, 0);
        self.scales.resize(rows.len(), 0.0);
        self.starts.resize(rows.len(), 0);

        for (i, block) in rows.iter().enumerate() {
            let mut codes = [0i8; QK];
            self.scales[i] = block.decode(&mut codes);
            let sum: i32 = codes.iter().map(|&q| i32::from(q)).sum();
            self.starts[i] = -UNSIGNED_OFFSET * sum;
            self.codes[i * QK..(i + 1) * QK].copy_from_slice(&codes);
        }
    }
}

/// Computes the dot products of tile rows `rows` with activation rows `batch`, passing
/// each result to `write(b, r_in_tile, value)`.
///
/// # Safety
///
/// The CPU supports AVX-512 VNNI, `tile` and `acts` have the same `n_cols`, and the ranges
/// are in bounds of both.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn multiply_tile(
    tile: &DecodedTile,
    acts: &UnsignedActivations,
    batch: std::ops::Range<usize>,
    mut write: impl FnMut(usize, usize, f32),
) {
    let n_rows = tile.n_rows;
    assert!(batch.end * acts.n_cols <= acts.codes.len(), "activation rows out of range");
    assert_eq!(tile.codes.len(), n_rows * acts.n_cols, "tile and activations differ in n_cols");

    let full_rows = n_rows - n_rows % MR;
    let full_batch = batch.start + (batch.len() - batch.len() % NR);

    let mut b = batch.start;
    while b < full_batch {
        let mut r = 0;
        while r < full_rows {
            let sums = kernel::<MR, NR>(tile, r, acts, b);
            emit(&sums, r, b, &mut write);
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
    tile: &DecodedTile,
    r0: usize,
    acts: &UnsignedActivations,
    b0: usize,
) -> [[f32; N]; M] {
    let n_cols = acts.n_cols;
    let n_blocks = n_cols / QK;
    let w_codes = tile.codes.as_ptr();
    let a_codes = acts.codes.as_ptr();

    let mut acc = [[_mm256_setzero_ps(); N]; M];
    for blk in 0..n_blocks {
        let mut w = [_mm256_setzero_si256(); M];
        let mut w_scale = [_mm256_setzero_ps(); M];
        let mut start = [_mm256_setzero_si256(); M];
        for i in 0..M {
            let row_block = (r0 + i) * n_blocks + blk;
            w[i] = _mm256_loadu_si256(w_codes.add(row_block * QK).cast());
            w_scale[i] = _mm256_set1_ps(*tile.scales.get_unchecked(row_block));
            start[i] = _mm256_setr_epi32(*tile.starts.get_unchecked(row_block), 0, 0, 0, 0, 0, 0, 0);
        }

        for j in 0..N {
            let act_block = (b0 + j) * n_blocks + blk;
            let a = _mm256_loadu_si256(a_codes.add(act_block * QK).cast());
            let a_scale = _mm256_set1_ps(*acts.scales.get_unchecked(act_block));
            for i in 0..M {
                let sums = _mm256_dpbusd_epi32(start[i], a, w[i]);
                let scale = _mm256_mul_ps(w_scale[i], a_scale);
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, acc[i][j]);
            }
        }
    }

    let mut out = [[0.0f32; N]; M];
    for i in 0..M {
        for j in 0..N {
            out[i][j] = avx512::hsum_ps(acc[i][j]);
        }
    }
    out
}
