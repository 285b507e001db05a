//! The table from [`GgmlType`](gguf_format::GgmlType) to the block struct that implements it.

/// Calls the generic function `$func::<Block>(args)` for the block struct of `$ggml_type`
/// and wraps the result in `Some`, or evaluates to `None` when this crate has no quantizer
/// for the type.
macro_rules! dispatch_weight_type {
    ($ggml_type:expr, $func:ident($($arg:expr),* $(,)?)) => {
        match $ggml_type {
            gguf_format::GgmlType::F32 => Some($func::<f32>($($arg),*)),
            gguf_format::GgmlType::F16 => Some($func::<half::f16>($($arg),*)),
            gguf_format::GgmlType::BF16 => Some($func::<half::bf16>($($arg),*)),
            gguf_format::GgmlType::Q4_0 => Some($func::<$crate::blocks::BlockQ4_0>($($arg),*)),
            gguf_format::GgmlType::Q4_1 => Some($func::<$crate::blocks::BlockQ4_1>($($arg),*)),
            gguf_format::GgmlType::Q5_0 => Some($func::<$crate::blocks::BlockQ5_0>($($arg),*)),
            gguf_format::GgmlType::Q5_1 => Some($func::<$crate::blocks::BlockQ5_1>($($arg),*)),
            gguf_format::GgmlType::Q8_0 => Some($func::<$crate::blocks::BlockQ8_0>($($arg),*)),
            gguf_format::GgmlType::Q2_K => Some($func::<$crate::blocks::BlockQ2K>($($arg),*)),
            gguf_format::GgmlType::Q3_K => Some($func::<$crate::blocks::BlockQ3K>($($arg),*)),
            gguf_format::GgmlType::Q4_K => Some($func::<$crate::blocks::BlockQ4K>($($arg),*)),
            gguf_format::GgmlType::Q5_K => Some($func::<$crate::blocks::BlockQ5K>($($arg),*)),
            gguf_format::GgmlType::Q6_K => Some($func::<$crate::blocks::BlockQ6K>($($arg),*)),
            gguf_format::GgmlType::IQ4_NL => Some($func::<$crate::blocks::BlockIQ4NL>($($arg),*)),
            gguf_format::GgmlType::IQ4_XS => Some($func::<$crate::blocks::BlockIQ4XS>($($arg),*)),
            _ => None,
        }
    };
}

pub(crate) use dispatch_weight_type;
