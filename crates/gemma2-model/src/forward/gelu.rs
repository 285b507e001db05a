//! The gated tanh-GELU of Gemma's feed-forward network.

use std::sync::OnceLock;

use crate::Numerics;

const GELU_COEF_A: f32 = 0.044715;
const SQRT_2_OVER_PI: f32 = 0.797_884_560_802_865_4;

/// Beyond this magnitude ggml skips its lookup table: GELU(x) is 0 below `-10` and `x` above `10`.
const GELU_TABLE_LIMIT: f32 = 10.0;

/// Computes the tanh approximation of GELU in f32, as ggml's `ggml_gelu_f32` does:
/// `0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x²)))`.
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// Computes [`gelu_tanh`] with `1 + 0.044715 x²` as one fused multiply-add, as GCC compiles
/// ggml's `ggml_gelu_f32` on x86-64 (C code built with `-std=gnu11` contracts `a * b + c`).
///
/// This rounding is what fills ggml's f16 GELU table; it differs from the unfused formula
/// in one f16 entry (x = -1.999).
fn gelu_tanh_fused(x: f32) -> f32 {
    let inner = (GELU_COEF_A * x).mul_add(x, 1.0);
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * inner).tanh())
}

/// Returns ggml's GELU table: entry `t` is GELU of the f16 with bits `t`, rounded to f16
/// (kept here as the f32 value of that f16).
fn gelu_f16_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = half::f16::from_bits(bits).to_f32();
                half::f16::from_f32(gelu_tanh_fused(x)).to_f32()
            })
            .collect()
    })
}

/// Replaces `gate` with `GELU(gate) * up`, element by element.
///
/// [`Numerics::LlamaCpp`] uses ggml's CPU path (`GGML_GELU_FP16`, defined in ggml-cpu's
/// `vec.h`): for `|x| < 10` the input is rounded to f16 and GELU read from an f16 table.
pub(crate) fn geglu_in_place(gate: &mut [f32], up: &[f32], numerics: Numerics) {
    match numerics {
        Numerics::LlamaCpp => {
            let table = gelu_f16_table();
            for (g, &u) in gate.iter_mut().zip(up) {
                let x = *g;
                *g = if x <= -GELU_TABLE_LIMIT {
                    0.0
                } else if x >= GELU_TABLE_LIMIT {
                    x * u
                } else {
                    table[usize::from(half::f16::from_f32(x).to_bits())] * u
                };
            }
        }
        Numerics::Reference => {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = gelu_tanh(*g) * u;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_gelu_not_erf_gelu() {
        assert!((gelu_tanh(1.0) - 0.841192).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841345).abs() > 1e-4);
    }

    #[test]
    fn table_entry_uses_fused_rounding() {
        // f16 0xbfff is -1.999; ggml's table stores f16 0xa9d3 there, the unfused formula
        // rounds to 0xa9d2.
        let mut gate = [half::f16::from_bits(0xbfff).to_f32()];
        geglu_in_place(&mut gate, &[1.0], Numerics::LlamaCpp);
        assert_eq!(half::f16::from_f32(gate[0]).to_bits(), 0xa9d3);
        assert_eq!(half::f16::from_f32(gelu_tanh(-1.999_023_4)).to_bits(), 0xa9d2);
    }

    #[test]
    fn table_path_is_close_and_saturates() {
        let mut gate = [-12.0, -3.0, -1.0, 0.0, 1.0, 3.0, 12.0];
        let up = [1.0; 7];
        geglu_in_place(&mut gate, &up, Numerics::LlamaCpp);
        assert_eq!(gate[0], 0.0);
        assert_eq!(gate[6], 12.0);
        for (got, x) in gate[1..6].iter().zip([-3.0f32, -1.0, 0.0, 1.0, 3.0]) {
            assert!((got - gelu_tanh(x)).abs() < 2e-3, "{got} vs {}", gelu_tanh(x));
        }
    }
}
