//! Rotary position embeddings in NeoX layout (dimension `i` pairs with `i + head_dim/2`).

use crate::Numerics;

/// Cosines and sines for positions `0..n_pos` and the `head_dim / 2` frequency pairs.
pub(crate) struct RopeTable {
    half: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// Whether [`RopeTable::apply`] fuses one product of each rotated value into a
    /// multiply-add, as GCC compiles ggml's `rotate_pairs`.
    fused: bool,
}

impl RopeTable {
    /// Builds the table for RoPE base `base`, linear scaling factor `factor` (positions
    /// divided by it) and rotary dimension `n_dims`.
    ///
    /// [`Numerics::LlamaCpp`] follows ggml's `rope_cache_init`: the angle of pair `i` is the
    /// running product `p * base^(-2/n_dims) * ... ` in f32, times `1/factor`.
    /// [`Numerics::Reference`] follows Hugging Face transformers: `p * inv_freq[i]` with
    /// `inv_freq[i] = 1 / base^(2i/n_dims) / factor`.
    pub(crate) fn new(n_pos: usize, n_dims: usize, base: f32, factor: f32, numerics: Numerics) -> RopeTable {
        let half = n_dims / 2;
        let mut cos = vec![0.0; n_pos * half];
        let mut sin = vec![0.0; n_pos * half];

        match numerics {
            Numerics::LlamaCpp => {
                let theta_scale = base.powf(-2.0 / n_dims as f32);
                let freq_scale = 1.0 / factor;
                for p in 0..n_pos {
                    let mut theta = p as f32;
                    for i in 0..half {
                        let angle = freq_scale * theta;
                        cos[p * half + i] = angle.cos();
                        sin[p * half + i] = angle.sin();
                        theta *= theta_scale;
                    }
                }
            }
            Numerics::Reference => {
                let inv_freq: Vec<f32> = (0..half)
                    .map(|i| 1.0 / base.powf((2 * i) as f32 / n_dims as f32) / factor)
                    .collect();
                for p in 0..n_pos {
                    for (i, &f) in inv_freq.iter().enumerate() {
                        let angle = p as f32 * f;
                        cos[p * half + i] = angle.cos();
                        sin[p * half + i] = angle.sin();
                    }
                }
            }
        }
        RopeTable {
            half,
            cos,
            sin,
            fused: numerics == Numerics::LlamaCpp,
        }
    }

    /// Rotates every head of `row` (heads of `2 * half` values) for position `pos`.
    ///
    /// With [`Numerics::LlamaCpp`] the rotation is `fma(x0, cos, -(x1 sin))` and
    /// `fma(x0, sin, x1 cos)`, the contraction GCC 12 emits for ggml's x86-64 CPU backend
    /// (C++ built with `-std=gnu++17`, where `-ffp-contract=fast` is the default).
    pub(crate) fn apply(&self, row: &mut [f32], pos: usize) {
        let half = self.half;
        let cos = &self.cos[pos * half..(pos + 1) * half];
        let sin = &self.sin[pos * half..(pos + 1) * half];
        for head in row.chunks_exact_mut(2 * half) {
            let (first, second) = head.split_at_mut(half);
            for i in 0..half {
                let x0 = first[i];
                let x1 = second[i];
                if self.fused {
                    first[i] = x0.mul_add(cos[i], -(x1 * sin[i]));
                    second[i] = x0.mul_add(sin[i], x1 * cos[i]);
                } else {
                    first[i] = x0 * cos[i] - x1 * sin[i];
                    second[i] = x0 * sin[i] + x1 * cos[i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity() {
        let table = RopeTable::new(2, 8, 10_000.0, 1.0, Numerics::LlamaCpp);
        let mut row = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        table.apply(&mut row, 0);
        assert_eq!(row, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    fn first_pair_rotates_by_position() {
        let table = RopeTable::new(5, 4, 10_000.0, 1.0, Numerics::LlamaCpp);
        let mut row = [1.0, 0.0, 0.0, 0.0];
        table.apply(&mut row, 4);
        // Pair 0 (dimensions 0 and 2) turns by 4 radians.
        assert!((row[0] - 4f32.cos()).abs() < 1e-6);
        assert!((row[2] - 4f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn neox_matches_ggml_bits() {
        // Golden values from scripts/ggml-oracle/attention_golden.cpp: 80 positions of 2 heads
        // of 32 dimensions, RoPE base 10000, through ggml_rope_ext in NeoX mode.
        let decode = |bytes: &[u8]| -> Vec<f32> {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let mut x = decode(include_bytes!("../../tests/data/ggml-golden/attn_q.f32"));
        let ggml = decode(include_bytes!("../../tests/data/ggml-golden/rope_neox_out.f32"));
        let width = 2 * 32;
        let table = RopeTable::new(80, 32, 10_000.0, 1.0, Numerics::LlamaCpp);
        for (pos, row) in x.chunks_exact_mut(width).enumerate() {
            table.apply(row, pos);
        }

        let different = x.iter().zip(&ggml).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(different, 0);
    }

    #[test]
    fn llama_cpp_rotation_is_fused() {
        // x0 cos - x1 sin with x1 sin rounded first: the fused form keeps x0 cos exact.
        let table = RopeTable::new(2, 2, 10_000.0, 1.0, Numerics::LlamaCpp);
        let reference = RopeTable::new(2, 2, 10_000.0, 1.0, Numerics::Reference);
        let (cos, sin) = (table.cos[1], table.sin[1]);
        let (x0, x1) = (1.000_000_1f32, 0.333_333_3f32);

        let mut fused = [x0, x1];
        table.apply(&mut fused, 1);
        assert_eq!(fused[0], x0.mul_add(cos, -(x1 * sin)));
        assert_eq!(fused[1], x0.mul_add(sin, x1 * cos));

        let mut plain = [x0, x1];
        reference.apply(&mut plain, 1);
        assert_eq!(plain[0], x0 * cos - x1 * sin);
    }

    #[test]
    fn linear_factor_divides_position() {
        let scaled = RopeTable::new(4097, 8, 1e6, 8.0, Numerics::LlamaCpp);
        let plain = RopeTable::new(513, 8, 1e6, 1.0, Numerics::LlamaCpp);
        let mut a = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5];
        let mut b = a;
        scaled.apply(&mut a, 4096);
        plain.apply(&mut b, 512);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }
}
