//! llama.cpp's file types (`llama_ftype`): the named mixes that llama-quantize accepts.

use std::fmt;
use std::str::FromStr;

use gguf_format::GgmlType;

/// A target file type of llama-quantize, such as `Q4_K_M`.
///
/// The discriminant is llama.cpp's `llama_ftype` id, which quantized files store under
/// `general.file_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum FileType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q8_0 = 7,
    Q5_0 = 8,
    Q5_1 = 9,
    Q2_K = 10,
    Q3_K_S = 11,
    Q3_K_M = 12,
    Q3_K_L = 13,
    Q4_K_S = 14,
    Q4_K_M = 15,
    Q5_K_S = 16,
    Q5_K_M = 17,
    Q6_K = 18,
    IQ4_NL = 25,
    IQ4_XS = 30,
    BF16 = 32,
}

/// Each file type with its llama-quantize name.
const NAMES: [(FileType, &str); 19] = [
    (FileType::F32, "F32"),
    (FileType::F16, "F16"),
    (FileType::BF16, "BF16"),
    (FileType::Q4_0, "Q4_0"),
    (FileType::Q4_1, "Q4_1"),
    (FileType::Q5_0, "Q5_0"),
    (FileType::Q5_1, "Q5_1"),
    (FileType::Q8_0, "Q8_0"),
    (FileType::Q2_K, "Q2_K"),
    (FileType::Q3_K_S, "Q3_K_S"),
    (FileType::Q3_K_M, "Q3_K_M"),
    (FileType::Q3_K_L, "Q3_K_L"),
    (FileType::Q4_K_S, "Q4_K_S"),
    (FileType::Q4_K_M, "Q4_K_M"),
    (FileType::Q5_K_S, "Q5_K_S"),
    (FileType::Q5_K_M, "Q5_K_M"),
    (FileType::Q6_K, "Q6_K"),
    (FileType::IQ4_NL, "IQ4_NL"),
    (FileType::IQ4_XS, "IQ4_XS"),
];

impl FileType {
    /// Every supported file type, in the order llama-quantize lists them.
    pub fn all() -> impl Iterator<Item = FileType> {
        NAMES.iter().map(|(file_type, _)| *file_type)
    }

    /// Returns llama.cpp's `llama_ftype` id, the value of `general.file_type`.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Returns the name llama-quantize uses (`"Q4_K_M"`).
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(file_type, _)| *file_type == self)
            .map(|(_, name)| *name)
            .unwrap_or("?")
    }

    /// Returns the type every eligible tensor gets before the mix adjusts it
    /// (`llama_ftype_get_default_type`): `Q4_K` for `Q4_K_M`, `Q3_K` for every `Q3_K_*`, ...
    pub fn default_type(self) -> GgmlType {
        match self {
            FileType::F32 => GgmlType::F32,
            FileType::F16 => GgmlType::F16,
            FileType::BF16 => GgmlType::BF16,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::Q4_1 => GgmlType::Q4_1,
            FileType::Q5_0 => GgmlType::Q5_0,
            FileType::Q5_1 => GgmlType::Q5_1,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q2_K => GgmlType::Q2_K,
            FileType::Q3_K_S | FileType::Q3_K_M | FileType::Q3_K_L => GgmlType::Q3_K,
            FileType::Q4_K_S | FileType::Q4_K_M => GgmlType::Q4_K,
            FileType::Q5_K_S | FileType::Q5_K_M => GgmlType::Q5_K,
            FileType::Q6_K => GgmlType::Q6_K,
            FileType::IQ4_NL => GgmlType::IQ4_NL,
            FileType::IQ4_XS => GgmlType::IQ4_XS,
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error returned when a string names no supported file type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown file type '{0}'; expected one of F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, IQ4_NL, IQ4_XS")]
pub struct UnknownFileType(pub String);

impl FromStr for FileType {
    type Err = UnknownFileType;

    /// Parses a llama-quantize type name, ignoring ASCII case; `Q4_K` and `Q5_K` are
    /// accepted as llama-quantize's aliases for `Q4_K_M` and `Q5_K_M`, `Q3_K` for `Q3_K_M`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let alias = match s.to_ascii_uppercase().as_str() {
            "Q3_K" => Some(FileType::Q3_K_M),
            "Q4_K" => Some(FileType::Q4_K_M),
            "Q5_K" => Some(FileType::Q5_K_M),
            _ => None,
        };
        if let Some(file_type) = alias {
            return Ok(file_type);
        }
        NAMES
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(s))
            .map(|(file_type, _)| *file_type)
            .ok_or_else(|| UnknownFileType(s.to_string()))
    }
}
