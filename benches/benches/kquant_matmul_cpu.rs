//! CPU time per multiply-add of `kquant::matmul_quantized_with_isa` on one thread, for the
//! AVX2 vec-dot path and the AVX-512 tiled path.
//!
//! Wall-clock benches are unreliable on a shared machine, so this harness reads the
//! process's user + system CPU time from `/proc/self/stat` (Linux only, 10 ms ticks) around
//! at least one second of work and prints GMAC per CPU-second. One element is one
//! multiply-add. Run with `cargo bench -p gemma-quant-benches --bench kquant_matmul_cpu`.

use std::time::Instant;

use gguf_format::GgmlType;
use kquant::{matmul_quantized_with_isa, quantize_activations, vec_dot_type, Isa, WeightMatrix};

/// Activation rows per call, as in a perplexity chunk's output projection.
const N_BATCH: usize = 255;

/// Minimum CPU time per measurement, so the 10 ms tick adds at most 1% error.
const MIN_CPU_SECONDS: f64 = 1.0;

/// Clock ticks per second of `/proc/self/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Returns the process's user + system CPU time in seconds, or `None` off Linux.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn main() {
    if process_cpu_seconds().is_none() {
        eprintln!("kquant_matmul_cpu: /proc/self/stat is unavailable, so CPU time cannot be read; skipping");
        return;
    }
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().expect("one-thread pool");

    let shapes = [
        ("output_slice", GgmlType::Q8_0, 640, 8192),
        ("ffn_up", GgmlType::Q5_0, 640, 2048),
        ("ffn_down", GgmlType::Q6_K, 2048, 640),
        ("attn_output", GgmlType::Q4_K, 1024, 640),
    ];
    for (name, ggml_type, n_cols, n_rows) in shapes {
        let data = kquant::quantize(ggml_type, &values(n_rows * n_cols, 1), n_cols, None).expect("quantize");
        let weight = WeightMatrix::new(ggml_type, &data, n_cols, n_rows).expect("weight matrix");
        let act_type = vec_dot_type(ggml_type).expect("vec-dot type");
        let acts = quantize_activations(act_type, &values(N_BATCH * n_cols, 2), N_BATCH, n_cols).expect("activations");
        let mut out = vec![0.0f32; N_BATCH * n_rows];

        for isa in [Isa::Avx2, Isa::Avx512] {
            if !isa.is_supported() {
                println!("{name} {ggml_type} {isa:?}: not supported on this CPU");
                continue;
            }
            matmul_quantized_with_isa(isa, &weight, &acts, &mut out).expect("warm-up");

            let start_cpu = process_cpu_seconds().unwrap_or(0.0);
            let start_wall = Instant::now();
            let mut calls = 0u64;
            while process_cpu_seconds().unwrap_or(0.0) - start_cpu < MIN_CPU_SECONDS {
                matmul_quantized_with_isa(isa, &weight, &acts, &mut out).expect("matmul");
                calls += 1;
            }
            let cpu = process_cpu_seconds().unwrap_or(0.0) - start_cpu;
            let macs = (n_rows * n_cols * N_BATCH) as f64 * calls as f64;
            println!(
                "{name} {ggml_type} {n_cols}x{n_rows} x{N_BATCH} {isa:?}: {:.1} GMAC per CPU-second \
                 ({calls} calls, {cpu:.2} s CPU, {:.2} s wall)",
                macs / cpu / 1e9,
                start_wall.elapsed().as_secs_f64(),
            );
        }
    }
}
