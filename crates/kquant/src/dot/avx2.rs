//! Kernels for x86-64 with AVX2, FMA and F16C.
//!
//! Every function is `unsafe` because it requires those features; the dispatch in
//! [`super::kernels`] calls them only after [`super::Isa::resolve`] confirmed them.

super::x86::x86_kernels!("avx2,fma,f16c", |ax, sy| {
    // vpmaddubsw cannot saturate here: |x| <= 128 and |y| <= 127 give pairs of at most
    // 2 * 128 * 127 = 32512 < i16::MAX.
    let pairs = _mm256_maddubs_epi16(ax, sy);
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
});
