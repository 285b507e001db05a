//! x86-64 kernels, written once and compiled twice: for AVX2 ([`super::avx2`]) and for
//! AVX-512 VNNI ([`super::avx512`]).
//!
//! [`x86_kernels!`] expands to a full set of kernels for one `#[target_feature]` list. The
//! only difference between the two expansions is `mul_sum_us8`, the product of unsigned and
//! signed bytes summed in groups of four: `vpmaddubsw` + `vpmaddwd` on AVX2, one `vpdpbusd`
//! with VNNI. Every other instruction also exists on AVX2, and the wider feature list lets
//! the compiler pick EVEX encodings where they help.
//!
//! Each kernel computes the same per-block integer sums as the scalar definition in
//! [`super::scalar`]; only the order of float additions differs.

/// Expands the x86-64 kernels for the feature list `$features`.
///
/// `$mul_sum_us8` is the body of `fn(ax: __m256i, sy: __m256i) -> __m256i` returning, per
/// 32-bit lane, the sum of four products of an unsigned byte of `ax` with a signed byte of
/// `sy`.
macro_rules! x86_kernels {
    ($features:literal, |$ax:ident, $sy:ident| $mul_sum_us8:expr) => {
        use std::arch::x86_64::*;

        use half::{bf16, f16};

        use crate::blocks::{
            BlockIQ4NL, BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
            BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, KVALUES_IQ4NL, QK_K,
        };
        use crate::dot::unpack::{iq4_xs_scale, q3_k_scales, q4_k_scales_mins};

        /// Converts f16 bits to f32 with F16C.
        #[target_feature(enable = $features)]
        #[inline]
        pub(crate) unsafe fn fp16(bits: u16) -> f32 {
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
        }

        /// Sums the eight f32 lanes.
        #[target_feature(enable = $features)]
        #[inline]
        pub(crate) unsafe fn hsum_ps(v: __m256) -> f32 {
            let sum4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
            let sum1 = _mm_add_ss(sum2, _mm_movehdup_ps(sum2));
            _mm_cvtss_f32(sum1)
        }

        /// Loads 32 bytes from any address.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn load32(bytes: &[u8; 32]) -> __m256i {
            _mm256_loadu_si256(bytes.as_ptr().cast())
        }

        /// Loads 32 signed bytes from any address.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn load32_i8(bytes: &[i8]) -> __m256i {
            debug_assert!(bytes.len() >= 32);
            _mm256_loadu_si256(bytes.as_ptr().cast())
        }

        /// Sums groups of four unsigned-by-signed byte products into i32 lanes.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn mul_sum_us8($ax: __m256i, $sy: __m256i) -> __m256i {
            $mul_sum_us8
        }

        /// Sums groups of four signed byte products into i32 lanes. The sign of `x` moves to
        /// `y`, so the unsigned-by-signed instruction multiplies |x| (at most 128) by ±y.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256i {
            mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
        }

        /// Expands 16 bytes of nibbles to 32 bytes: low nibbles first, then high nibbles (the
        /// element order of Q4_0, Q4_1, Q5_0, Q5_1 and IQ4_NL).
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn nibbles(qs: &[u8]) -> __m256i {
            debug_assert!(qs.len() >= 16);
            let packed = _mm_loadu_si128(qs.as_ptr().cast());
            let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
            _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
        }

        /// Expands 32 bits to 32 bytes: 0xFF where the bit is set, 0 elsewhere.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn bytes_from_bits(bits: u32) -> __m256i {
            // Byte i takes byte i / 8 of `bits`; OR-ing every bit except bit i % 8 leaves
            // 0xFF exactly when that bit is set.
            let spread = _mm256_shuffle_epi8(
                _mm256_set1_epi32(bits as i32),
                _mm256_set_epi64x(
                    0x0303_0303_0303_0303,
                    0x0202_0202_0202_0202,
                    0x0101_0101_0101_0101,
                    0,
                ),
            );
            let others = _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE);
            _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1))
        }

        /// Decodes a Q4_0 block to signed codes `n - 8`.
        #[target_feature(enable = $features)]
        #[inline]
        pub(crate) unsafe fn codes_q4_0(w: &BlockQ4_0) -> __m256i {
            _mm256_sub_epi8(nibbles(&w.qs), _mm256_set1_epi8(8))
        }

        /// Decodes a Q5_0 block to signed codes `n - 16`: a clear fifth bit means "subtract
        /// 16", which is OR-ing 0xF0 into the nibble.
        #[target_feature(enable = $features)]
        #[inline]
        pub(crate) unsafe fn codes_q5_0(w: &BlockQ5_0) -> __m256i {
            let clear = _mm256_andnot_si256(
                bytes_from_bits(u32::from_le_bytes(w.qh)),
                _mm256_set1_epi8(0xF0u8 as i8),
            );
            _mm256_or_si256(nibbles(&w.qs), clear)
        }

        /// Decodes a Q8_0 block (its codes are already signed bytes).
        #[target_feature(enable = $features)]
        #[inline]
        pub(crate) unsafe fn codes_q8_0(w: &BlockQ8_0) -> __m256i {
            load32_i8(&w.qs)
        }

        /// Decodes an IQ4_NL block through the 16-entry code book.
        #[target_feature(enable = $features)]
        #[inline]
        pub(crate) unsafe fn codes_iq4_nl(w: &BlockIQ4NL) -> __m256i {
            lookup_iq4(nibbles(&w.qs))
        }

        /// Maps nibbles (0..16 per byte) to the IQ4_NL code book values.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn lookup_iq4(indices: __m256i) -> __m256i {
            let table = _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast());
            _mm256_shuffle_epi8(_mm256_set_m128i(table, table), indices)
        }

        /// Decodes a Q4_1 block to unsigned codes.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn codes_q4_1(w: &BlockQ4_1) -> __m256i {
            nibbles(&w.qs)
        }

        /// Decodes a Q5_1 block to unsigned codes.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn codes_q5_1(w: &BlockQ5_1) -> __m256i {
            let high = _mm256_and_si256(
                bytes_from_bits(u32::from_le_bytes(w.qh)),
                _mm256_set1_epi8(0x10),
            );
            _mm256_or_si256(nibbles(&w.qs), high)
        }

        /// Generates the kernels of a legacy type whose codes are signed (Q8_0 activations).
        macro_rules! signed_legacy {
            ($dot:ident, $dot_x4:ident, $weight:ty, $codes:ident) => {
                #[target_feature(enable = $features)]
                pub(crate) unsafe fn $dot(w: &[$weight], a: &[BlockQ8_0]) -> f32 {
                    let mut acc = _mm256_setzero_ps();
                    for (w, a) in w.iter().zip(a) {
                        let sums = mul_sum_i8($codes(w), load32_i8(&a.qs));
                        let d = _mm256_set1_ps(fp16(w.d) * fp16(a.d));
                        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc);
                    }
                    hsum_ps(acc)
                }

                #[target_feature(enable = $features)]
                pub(crate) unsafe fn $dot_x4(w: &[$weight], a: [&[BlockQ8_0]; 4]) -> [f32; 4] {
                    let mut acc = [_mm256_setzero_ps(); 4];
                    for (i, w) in w.iter().enumerate() {
                        // Decode once; the sign of each weight code moves to all four rows.
                        let codes = $codes(w);
                        let magnitude = _mm256_sign_epi8(codes, codes);
                        let d_w = fp16(w.d);
                        for k in 0..4 {
                            let a = &a[k][i];
                            let signed = _mm256_sign_epi8(load32_i8(&a.qs), codes);
                            let sums = mul_sum_us8(magnitude, signed);
                            let d = _mm256_set1_ps(d_w * fp16(a.d));
                            acc[k] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc[k]);
                        }
                    }
                    [hsum_ps(acc[0]), hsum_ps(acc[1]), hsum_ps(acc[2]), hsum_ps(acc[3])]
                }
            };
        }

        signed_legacy!(q4_0_q8_0, q4_0_q8_0_x4, BlockQ4_0, codes_q4_0);
        signed_legacy!(q5_0_q8_0, q5_0_q8_0_x4, BlockQ5_0, codes_q5_0);
        signed_legacy!(q8_0_q8_0, q8_0_q8_0_x4, BlockQ8_0, codes_q8_0);
        signed_legacy!(iq4_nl_q8_0, iq4_nl_q8_0_x4, BlockIQ4NL, codes_iq4_nl);

        /// Generates the kernel of a legacy type with a min (Q8_1 activations).
        macro_rules! unsigned_legacy {
            ($dot:ident, $weight:ty, $codes:ident) => {
                #[target_feature(enable = $features)]
                pub(crate) unsafe fn $dot(w: &[$weight], a: &[BlockQ8_1]) -> f32 {
                    let mut acc = _mm256_setzero_ps();
                    let mut min_sum = 0.0f32;
                    for (w, a) in w.iter().zip(a) {
                        let sums = mul_sum_us8($codes(w), load32_i8(&a.qs));
                        let d = _mm256_set1_ps(fp16(w.d) * fp16(a.d));
                        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc);
                        min_sum += fp16(w.m) * fp16(a.s);
                    }
                    hsum_ps(acc) + min_sum
                }
            };
        }

        unsigned_legacy!(q4_1_q8_1, BlockQ4_1, codes_q4_1);
        unsigned_legacy!(q5_1_q8_1, BlockQ5_1, codes_q5_1);

        /// Sums `sum(i16 lanes * scale)` where the low 128 bits use `scale_low` and the high
        /// 128 bits `scale_high` (one scale per 16-element group).
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn scale_pairs(products: __m256i, scale_low: i32, scale_high: i32) -> __m256i {
            let scales = _mm256_set_m128i(
                _mm_set1_epi16(scale_high as i16),
                _mm_set1_epi16(scale_low as i16),
            );
            _mm256_madd_epi16(products, scales)
        }

        /// Returns `sum(mins[j] * (bsums[2 j] + bsums[2 j + 1]))` for Q4_K and Q5_K.
        #[inline]
        fn q4_k_min_sum(mins: &[i32; 8], a: &BlockQ8K) -> i32 {
            (0..8)
                .map(|j| mins[j] * (i32::from(a.bsums[2 * j]) + i32::from(a.bsums[2 * j + 1])))
                .sum()
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn q4_k_q8_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
            let low_mask = _mm256_set1_epi8(0x0F);
            let mut acc = _mm256_setzero_ps();
            let mut min_acc = 0.0f32;

            for (w, a) in w.iter().zip(a) {
                let (scales, mins) = q4_k_scales_mins(&w.scales);
                min_acc += a.d * fp16(w.dmin) * q4_k_min_sum(&mins, a) as f32;

                let mut sumi = _mm256_setzero_si256();
                for g in 0..QK_K / 64 {
                    let packed = _mm256_loadu_si256(w.qs[32 * g..].as_ptr().cast());
                    let low = _mm256_and_si256(packed, low_mask);
                    let high = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low_mask);

                    let p_low = _mm256_maddubs_epi16(low, load32_i8(&a.qs[64 * g..]));
                    let p_high = _mm256_maddubs_epi16(high, load32_i8(&a.qs[64 * g + 32..]));
                    let s_low = _mm256_set1_epi16(scales[2 * g] as i16);
                    let s_high = _mm256_set1_epi16(scales[2 * g + 1] as i16);

                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_low, s_low));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_high, s_high));
                }

                let d = _mm256_set1_ps(a.d * fp16(w.d));
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
            }
            hsum_ps(acc) - min_acc
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn q5_k_q8_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
            let low_mask = _mm256_set1_epi8(0x0F);
            let one = _mm256_set1_epi8(1);
            let mut acc = _mm256_setzero_ps();
            let mut min_acc = 0.0f32;

            for (w, a) in w.iter().zip(a) {
                let (scales, mins) = q4_k_scales_mins(&w.scales);
                min_acc += a.d * fp16(w.dmin) * q4_k_min_sum(&mins, a) as f32;

                let qh = load32(&w.qh);
                let mut sumi = _mm256_setzero_si256();
                for g in 0..QK_K / 64 {
                    let packed = _mm256_loadu_si256(w.qs[32 * g..].as_ptr().cast());
                    // Bit 2 g of qh[l] is the fifth bit of the low code, bit 2 g + 1 of the high.
                    let shift = _mm_cvtsi32_si128(2 * g as i32);
                    let bits = _mm256_srl_epi16(qh, shift);
                    let h_low = _mm256_slli_epi16::<4>(_mm256_and_si256(bits, one));
                    let h_high = _mm256_slli_epi16::<3>(
                        _mm256_and_si256(bits, _mm256_set1_epi8(2)),
                    );
                    let low = _mm256_or_si256(_mm256_and_si256(packed, low_mask), h_low);
                    let high = _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low_mask),
                        h_high,
                    );

                    let p_low = _mm256_maddubs_epi16(low, load32_i8(&a.qs[64 * g..]));
                    let p_high = _mm256_maddubs_epi16(high, load32_i8(&a.qs[64 * g + 32..]));
                    let s_low = _mm256_set1_epi16(scales[2 * g] as i16);
                    let s_high = _mm256_set1_epi16(scales[2 * g + 1] as i16);

                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_low, s_low));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_high, s_high));
                }

                let d = _mm256_set1_ps(a.d * fp16(w.d));
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
            }
            hsum_ps(acc) - min_acc
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn q6_k_q8_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
            let low_mask = _mm256_set1_epi8(0x0F);
            let two_bits = _mm256_set1_epi8(3);
            let offset = _mm256_set1_epi8(32);
            let mut acc = _mm256_setzero_ps();

            for (w, a) in w.iter().zip(a) {
                let mut sumi = _mm256_setzero_si256();
                for h in 0..2 {
                    let ql_a = _mm256_loadu_si256(w.ql[64 * h..].as_ptr().cast());
                    let ql_b = _mm256_loadu_si256(w.ql[64 * h + 32..].as_ptr().cast());
                    let qh = _mm256_loadu_si256(w.qh[32 * h..].as_ptr().cast());

                    // Chunk k covers elements 128 h + 32 k .. +32: its low nibble comes from
                    // ql_a (k even) or ql_b (k odd), low half for k < 2, and its top two bits
                    // from qh at bits 2 k.
                    let lows = [
                        _mm256_and_si256(ql_a, low_mask),
                        _mm256_and_si256(ql_b, low_mask),
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql_a), low_mask),
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql_b), low_mask),
                    ];
                    let highs = [
                        _mm256_slli_epi16::<4>(_mm256_and_si256(qh, two_bits)),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<2>(qh), two_bits)),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<4>(qh), two_bits)),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<6>(qh), two_bits)),
                    ];

                    for k in 0..4 {
                        let codes = _mm256_or_si256(lows[k], highs[k]);
                        let act = load32_i8(&a.qs[128 * h + 32 * k..]);
                        // (q - 32) * a, with q unsigned for vpmaddubsw.
                        let products = _mm256_sub_epi16(
                            _mm256_maddubs_epi16(codes, act),
                            _mm256_maddubs_epi16(offset, act),
                        );
                        let group = 8 * h + 2 * k;
                        let scaled = scale_pairs(
                            products,
                            i32::from(w.scales[group]),
                            i32::from(w.scales[group + 1]),
                        );
                        sumi = _mm256_add_epi32(sumi, scaled);
                    }
                }

                let d = _mm256_set1_ps(a.d * fp16(w.d));
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
            }
            hsum_ps(acc)
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn q2_k_q8_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
            let two_bits = _mm256_set1_epi8(3);
            let mut acc = _mm256_setzero_ps();
            let mut min_acc = 0.0f32;

            for (w, a) in w.iter().zip(a) {
                let min_sum: i32 = w
                    .scales
                    .iter()
                    .zip(&a.bsums)
                    .map(|(&s, &b)| i32::from(s >> 4) * i32::from(b))
                    .sum();
                min_acc += a.d * fp16(w.dmin) * min_sum as f32;

                let mut sumi = _mm256_setzero_si256();
                for h in 0..2 {
                    let packed = _mm256_loadu_si256(w.qs[32 * h..].as_ptr().cast());
                    for k in 0..4 {
                        let shift = _mm_cvtsi32_si128(2 * k as i32);
                        let codes = _mm256_and_si256(_mm256_srl_epi16(packed, shift), two_bits);
                        let act = load32_i8(&a.qs[128 * h + 32 * k..]);
                        let products = _mm256_maddubs_epi16(codes, act);
                        let group = 8 * h + 2 * k;
                        let scaled = scale_pairs(
                            products,
                            i32::from(w.scales[group] & 0x0F),
                            i32::from(w.scales[group + 1] & 0x0F),
                        );
                        sumi = _mm256_add_epi32(sumi, scaled);
                    }
                }

                let d = _mm256_set1_ps(a.d * fp16(w.d));
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
            }
            hsum_ps(acc) - min_acc
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn q3_k_q8_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
            let two_bits = _mm256_set1_epi8(3);
            let four = _mm256_set1_epi8(4);
            let mut acc = _mm256_setzero_ps();

            for (w, a) in w.iter().zip(a) {
                let scales = q3_k_scales(&w.scales);
                let hmask = load32(&w.hmask);

                let mut sumi = _mm256_setzero_si256();
                for h in 0..2 {
                    let packed = _mm256_loadu_si256(w.qs[32 * h..].as_ptr().cast());
                    for k in 0..4 {
                        let shift = _mm_cvtsi32_si128(2 * k as i32);
                        let low = _mm256_and_si256(_mm256_srl_epi16(packed, shift), two_bits);

                        // A clear high bit (bit 4 h + k of hmask[l]) subtracts 4.
                        let bit = _mm256_set1_epi8((1u8 << (4 * h + k)) as i8);
                        let clear = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), _mm256_setzero_si256());
                        let minus = _mm256_and_si256(clear, four);

                        let act = load32_i8(&a.qs[128 * h + 32 * k..]);
                        let products = _mm256_sub_epi16(
                            _mm256_maddubs_epi16(low, act),
                            _mm256_maddubs_epi16(minus, act),
                        );
                        let group = 8 * h + 2 * k;
                        let scaled = scale_pairs(products, scales[group], scales[group + 1]);
                        sumi = _mm256_add_epi32(sumi, scaled);
                    }
                }

                let d = _mm256_set1_ps(a.d * fp16(w.d));
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
            }
            hsum_ps(acc)
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn iq4_xs_q8_k(w: &[BlockIQ4XS], a: &[BlockQ8K]) -> f32 {
            let mut acc = _mm256_setzero_ps();

            for (w, a) in w.iter().zip(a) {
                let mut sumi = _mm256_setzero_si256();
                for ib in 0..QK_K / 32 {
                    let codes = lookup_iq4(nibbles(&w.qs[16 * ib..]));
                    let act = load32_i8(&a.qs[32 * ib..]);
                    let products = _mm256_maddubs_epi16(
                        _mm256_sign_epi8(codes, codes),
                        _mm256_sign_epi8(act, codes),
                    );
                    let scale = iq4_xs_scale(w, ib);
                    sumi = _mm256_add_epi32(sumi, scale_pairs(products, scale, scale));
                }

                let d = _mm256_set1_ps(a.d * fp16(w.d));
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
            }
            hsum_ps(acc)
        }

        /// Elements per step of the float kernels: four registers of eight.
        const FLOAT_STEP: usize = 32;

        /// Generates a float kernel: `$load` turns a pointer to eight elements into `__m256`.
        macro_rules! float_dot {
            ($dot:ident, $elem:ty, |$p:ident| $load:expr, $scalar:path) => {
                #[target_feature(enable = $features)]
                pub(crate) unsafe fn $dot(w: &[$elem], a: &[$elem]) -> f32 {
                    let n = w.len().min(a.len());
                    let main = n - n % FLOAT_STEP;
                    let mut acc = [_mm256_setzero_ps(); 4];

                    let mut i = 0;
                    while i < main {
                        for (k, acc) in acc.iter_mut().enumerate() {
                            let $p = w.as_ptr().add(i + 8 * k);
                            let wv = $load;
                            let $p = a.as_ptr().add(i + 8 * k);
                            let av = $load;
                            *acc = _mm256_fmadd_ps(wv, av, *acc);
                        }
                        i += FLOAT_STEP;
                    }

                    let total = _mm256_add_ps(
                        _mm256_add_ps(acc[0], acc[1]),
                        _mm256_add_ps(acc[2], acc[3]),
                    );
                    hsum_ps(total) + $scalar(&w[main..n], &a[main..n])
                }
            };
        }

        float_dot!(f32_f32, f32, |p| _mm256_loadu_ps(p), crate::dot::scalar::f32_f32);
        float_dot!(
            f16_f16,
            f16,
            |p| _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
            crate::dot::scalar::f16_f16
        );
        float_dot!(
            bf16_bf16,
            bf16,
            |p| _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
                _mm_loadu_si128(p.cast())
            ))),
            crate::dot::scalar::bf16_bf16
        );
    };
}

pub(crate) use x86_kernels;
