//! Dequantizes arbitrary bytes as blocks of every type kquant reads, and runs the same
//! bytes through `validate_row_data` and the vec-dot matmul. Nothing may panic and accepted
//! data must give no NaN; see `checks/dequantize_blocks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/dequantize_blocks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
