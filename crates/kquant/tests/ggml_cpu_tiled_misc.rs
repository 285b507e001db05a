//! Products of Q3_K, IQ4_XS and Q2_K weights with batches of 8 or more rows against ggml's
//! tiled K-quant matrix product (`ggml_compute_forward_mul_mat_tiled` of llama.cpp b11312),
//! compared bit for bit.
//!
//! The golden files in `tests/data/ggml-cpu/tiled-misc` come from
//! `scripts/ggml-oracle/tiled_misc.c`; their README describes how. Each case runs with every
//! instruction set this CPU supports.

mod common;

use common::{check_matmul_cases, GoldenDir};
use gguf_format::GgmlType;

fn check_type(ggml_type: GgmlType) {
    check_matmul_cases(&GoldenDir::new("tiled-misc"), ggml_type, false);
}

#[test]
fn q3_k_matches_ggml_tiled() {
    check_type(GgmlType::Q3_K);
}

#[test]
fn iq4_xs_matches_ggml_tiled() {
    check_type(GgmlType::IQ4_XS);
}

#[test]
fn q2_k_matches_ggml_tiled() {
    check_type(GgmlType::Q2_K);
}
