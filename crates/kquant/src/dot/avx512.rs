//! Kernels for x86-64 with AVX-512 (on 256-bit registers, through AVX512VL).
//!
//! Every function is `unsafe` because it requires those features; the dispatch in
//! [`super::kernels`] calls them only after [`super::Isa::resolve`] confirmed them.

super::x86::x86_kernels!("avx2,fma,f16c,avx512f,avx512vl,avx512bw");
