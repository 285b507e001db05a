//! Weight matrix products, with the activation hook in front of them.

use kquant::{QuantizedActivations, WeightMatrix};

use crate::error::ModelError;
use crate::hook::MatmulHook;
use crate::tensor::WeightTensor;

/// Computes `out = x · wᵀ`: `x` is `n_batch` rows of `w.n_cols`, `out` is `n_batch` rows of
/// `w.n_rows`. The hook, when set, first receives `x` under the weight's name, then `out`.
///
/// Activations are quantized to the weight's ggml vec-dot type before the products (Q8_0,
/// Q8_1, Q8_K, F16, BF16 or none for F32), as ggml's CPU backend does.
pub(crate) fn matmul(
    w: &WeightTensor,
    x: &[f32],
    n_batch: usize,
    out: &mut [f32],
    hook: &mut Option<&mut dyn MatmulHook>,
) -> Result<(), ModelError> {
    matmul_shared_input(&mut [(w, out)], x, n_batch, hook)
}

/// Computes several products that read the same input `x` (Q, K and V; gate and up),
/// quantizing `x` once per distinct vec-dot type. The hook receives `x` once per weight, in
/// order.
pub(crate) fn matmul_shared_input(
    products: &mut [(&WeightTensor, &mut [f32])],
    x: &[f32],
    n_batch: usize,
    hook: &mut Option<&mut dyn MatmulHook>,
) -> Result<(), ModelError> {
    if let Some(hook) = hook.as_deref_mut() {
        for (w, _) in products.iter() {
            hook.on_matmul_input(&w.name, x, n_batch, w.n_cols);
        }
    }

    let mut activations: Option<QuantizedActivations> = None;
    for (w, out) in products.iter_mut() {
        let kernel_error = |e: kquant::QuantError| ModelError::Kernel {
            name: w.name.clone(),
            message: e.to_string(),
        };
        let weight = WeightMatrix::new(w.ggml_type, w.bytes(), w.n_cols, w.n_rows)
            .map_err(kernel_error)?
            .with_repack(w.repacked);
        let dot_type = kquant::dot::vec_dot_type(w.ggml_type).ok_or_else(|| ModelError::UnsupportedTensorType {
            name: w.name.clone(),
            ggml_type: w.ggml_type,
            reason: "kquant has no dot product for this type".into(),
        })?;

        let reusable = activations
            .as_ref()
            .is_some_and(|a| a.ggml_type() == dot_type && a.n_cols() == w.n_cols);
        if !reusable {
            activations = Some(kquant::quantize_activations(dot_type, x, n_batch, w.n_cols).map_err(kernel_error)?);
        }
        let quantized = activations.as_ref().expect("set just above");
        kquant::matmul_quantized(&weight, quantized, out).map_err(kernel_error)?;

        if let Some(hook) = hook.as_deref_mut() {
            hook.on_matmul_output(&w.name, out, n_batch, w.n_rows);
        }
    }
    Ok(())
}
