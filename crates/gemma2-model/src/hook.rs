//! Observation of the activations that enter each weight matrix product.

/// Receives the f32 input activations of every weight matmul, before they are quantized for
/// the dot product.
///
/// `x` holds `n_rows` rows of `n_cols` values, row-major. `weight_name` is the GGUF name of
/// the weight (`blk.3.ffn_down.weight`, or `output.weight` / `token_embd.weight` for the LM
/// head). Calls arrive sequentially on the thread that called [`crate::Model::forward`], in
/// graph order; Q, K and V each get their own call with the same input. When no hook is
/// passed, nothing is copied or called.
pub trait MatmulHook {
    /// Observes the input of one matmul.
    fn on_matmul_input(&mut self, weight_name: &str, x: &[f32], n_rows: usize, n_cols: usize);

    /// Observes the output of one matmul, `n_rows` rows of `n_cols` values (the weight's row
    /// count), and may overwrite it. The forward pass continues with what `out` then contains.
    ///
    /// A parity check can replace the outputs with another implementation's, so that any
    /// remaining difference comes from the rest of the graph. The default does nothing.
    fn on_matmul_output(&mut self, weight_name: &str, out: &mut [f32], n_rows: usize, n_cols: usize) {
        let _ = (weight_name, out, n_rows, n_cols);
    }
}
