//! Kernels for x86-64 with AVX-512 VNNI (on 256-bit registers, through AVX512VL).
//!
//! The byte products use `vpdpbusd`, which multiplies and sums four unsigned-by-signed
//! byte pairs into an i32 lane in one instruction. Every function is `unsafe` because it
//! requires those features; the dispatch in [`super::kernels`] calls them only after
//! [`super::Isa::resolve`] confirmed them.

super::x86::x86_kernels!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    |ax, sy| _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy)
);
