//! Criterion benchmarks of the gemma-quant workspace, under `benches/`; run them with
//! `cargo bench -p gemma-quant-benches`. Results are recorded in `docs/benchmarks.md`.
