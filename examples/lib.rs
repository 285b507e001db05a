//! Command-line tools of the gemma-quant workspace, one `[[example]]` each; run them with
//! `cargo run --release --example <name> -- --help`. This library holds what the tools
//! share.

pub mod cli;
