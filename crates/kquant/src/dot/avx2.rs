//! Kernels for x86-64 with AVX2, FMA and F16C.
//!
//! Every function is `unsafe` because it requires those features; the dispatch in
//! [`super::kernels`] calls them only after [`super::Isa::resolve`] confirmed them.

super::x86::x86_kernels!("avx2,fma,f16c");
