//! Names of header fields as error messages print them.
//!
//! The decoder ([`Header::parse`](crate::header::Header::parse)) and the structural walk
//! ([`HeaderScanner`](crate::HeaderScanner)) both build their errors from these functions, so
//! a field cut by the end of the input is described in the same words by either.

pub(crate) const VERSION: &str = "version";
pub(crate) const TENSOR_COUNT: &str = "tensor count";
pub(crate) const KV_COUNT: &str = "metadata pair count";

pub(crate) fn key(index: u64) -> String {
    format!("key of metadata pair {index}")
}

pub(crate) fn value_type(key: &str) -> String {
    format!("value type of metadata key '{key}'")
}

pub(crate) fn value(key: &str) -> String {
    format!("value of metadata key '{key}'")
}

pub(crate) fn array_element_type(key: &str) -> String {
    format!("array element type of metadata key '{key}'")
}

pub(crate) fn array_length(key: &str) -> String {
    format!("array length of metadata key '{key}'")
}

pub(crate) fn array_elements(key: &str) -> String {
    format!("elements of array '{key}'")
}

pub(crate) fn array_string(element: u64, key: &str) -> String {
    format!("string {element} of array '{key}'")
}

pub(crate) fn tensor_name(index: u64) -> String {
    format!("name of tensor {index}")
}

pub(crate) fn n_dims(tensor: &str) -> String {
    format!("n_dims of tensor '{tensor}'")
}

pub(crate) fn dimension(axis: u64, tensor: &str) -> String {
    format!("dimension {axis} of tensor '{tensor}'")
}

pub(crate) fn ggml_type(tensor: &str) -> String {
    format!("ggml type of tensor '{tensor}'")
}

pub(crate) fn data_offset(tensor: &str) -> String {
    format!("data offset of tensor '{tensor}'")
}
