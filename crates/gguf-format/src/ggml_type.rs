//! The ggml tensor type table: ids, names, block sizes and bytes per block.
//!
//! Ids and sizes follow `enum ggml_type` in ggml's `ggml.h` (ids 0 to 42). The ids that
//! ggml removed (4 and 5, the old `Q4_2`/`Q4_3`; 31 to 33, the repacked `Q4_0_4_4`
//! family; 36 to 38, the repacked `IQ4_NL_4_4` family) have no entry and are rejected as
//! unknown, as llama.cpp's GGUF reader does.

use std::fmt;
use std::str::FromStr;

/// A ggml tensor element type, as stored in a GGUF tensor info (a 32-bit id).
///
/// Every variant is a type that ggml can still load. Quantized types store elements in
/// blocks of [`GgmlType::block_size`] elements taking [`GgmlType::type_size`] bytes each,
/// and blocks always run along `ne[0]`, the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
    NVFP4 = 40,
    Q1_0 = 41,
    Q2_0 = 42,
}

/// One row of the type table: (type, ggml name, elements per block, bytes per block).
const TABLE: [(GgmlType, &str, usize, usize); 35] = [
    (GgmlType::F32, "F32", 1, 4),
    (GgmlType::F16, "F16", 1, 2),
    (GgmlType::Q4_0, "Q4_0", 32, 18),
    (GgmlType::Q4_1, "Q4_1", 32, 20),
    (GgmlType::Q5_0, "Q5_0", 32, 22),
    (GgmlType::Q5_1, "Q5_1", 32, 24),
    (GgmlType::Q8_0, "Q8_0", 32, 34),
    (GgmlType::Q8_1, "Q8_1", 32, 36),
    (GgmlType::Q2_K, "Q2_K", 256, 84),
    (GgmlType::Q3_K, "Q3_K", 256, 110),
    (GgmlType::Q4_K, "Q4_K", 256, 144),
    (GgmlType::Q5_K, "Q5_K", 256, 176),
    (GgmlType::Q6_K, "Q6_K", 256, 210),
    (GgmlType::Q8_K, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, "IQ4_XS", 256, 136),
    (GgmlType::I8, "I8", 1, 1),
    (GgmlType::I16, "I16", 1, 2),
    (GgmlType::I32, "I32", 1, 4),
    (GgmlType::I64, "I64", 1, 8),
    (GgmlType::F64, "F64", 1, 8),
    (GgmlType::IQ1_M, "IQ1_M", 256, 56),
    (GgmlType::BF16, "BF16", 1, 2),
    (GgmlType::TQ1_0, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, "TQ2_0", 256, 66),
    (GgmlType::MXFP4, "MXFP4", 32, 17),
    (GgmlType::NVFP4, "NVFP4", 64, 36),
    (GgmlType::Q1_0, "Q1_0", 128, 18),
    (GgmlType::Q2_0, "Q2_0", 64, 18),
];

impl GgmlType {
    /// Every known type, in id order.
    pub const ALL: [GgmlType; 35] = {
        let mut all = [GgmlType::F32; 35];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    /// Looks a type up by its GGUF id; `None` for ids ggml removed or never assigned.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|row| row.0 as u32 == id).map(|row| row.0)
    }

    /// Returns the 32-bit id stored in GGUF tensor infos.
    pub fn id(self) -> u32 {
        self as u32
    }

    fn row(self) -> &'static (GgmlType, &'static str, usize, usize) {
        // Every variant has exactly one table row; the unit test `table_covers_every_variant`
        // proves it, so the fallback below is never taken.
        TABLE.iter().find(|row| row.0 == self).unwrap_or(&TABLE[0])
    }

    /// Returns ggml's name for the type (`"Q4_K"`, `"F16"`, ...).
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Returns the number of elements in one block (1 for plain types, 32 or 256 for most quants).
    pub fn block_size(self) -> usize {
        self.row().2
    }

    /// Returns the number of bytes one block occupies (ggml's `type_size`).
    pub fn type_size(self) -> usize {
        self.row().3
    }

    /// Returns true for block-quantized types, false for F32, F16, BF16, F64 and the integer types.
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Returns the byte size of a row of `n_per_row` elements, or `None` when `n_per_row` is
    /// not a multiple of the block size or the size overflows `usize`.
    pub fn row_size(self, n_per_row: u64) -> Option<usize> {
        let block = self.block_size() as u64;
        if n_per_row % block != 0 {
            return None;
        }
        let bytes = (n_per_row / block).checked_mul(self.type_size() as u64)?;
        usize::try_from(bytes).ok()
    }

    /// Returns the bits per weight: `8 * type_size / block_size`.
    pub fn bits_per_weight(self) -> f64 {
        8.0 * self.type_size() as f64 / self.block_size() as f64
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error returned when a string names no ggml type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ggml type '{0}'; expected a ggml type name such as F32, F16, BF16, Q4_0, Q8_0, Q4_K or IQ4_XS")]
pub struct UnknownTypeName(pub String);

impl FromStr for GgmlType {
    type Err = UnknownTypeName;

    /// Parses a ggml type name, ignoring ASCII case (`q4_k` and `Q4_K` both work).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TABLE
            .iter()
            .find(|row| row.1.eq_ignore_ascii_case(s))
            .map(|row| row.0)
            .ok_or_else(|| UnknownTypeName(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_every_variant() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(GgmlType::from_id(row.0 as u32), Some(row.0), "row {i}");
            assert_eq!(TABLE.iter().filter(|r| r.0 == row.0).count(), 1, "row {i} repeated");
        }
    }

    #[test]
    fn removed_ids_are_unknown() {
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 43, 1000] {
            assert_eq!(GgmlType::from_id(id), None, "id {id}");
        }
    }

    #[test]
    fn sizes_match_ggml() {
        assert_eq!(GgmlType::Q4_K.type_size(), 144);
        assert_eq!(GgmlType::Q6_K.type_size(), 210);
        assert_eq!(GgmlType::Q8_K.type_size(), 292);
        assert_eq!(GgmlType::IQ4_XS.type_size(), 136);
        assert_eq!(GgmlType::Q4_K.bits_per_weight(), 4.5);
        assert_eq!(GgmlType::Q5_0.row_size(640), Some(440));
        assert_eq!(GgmlType::Q4_K.row_size(640), None);
    }

    #[test]
    fn names_parse_back() {
        for t in GgmlType::ALL {
            assert_eq!(t.name().parse::<GgmlType>(), Ok(t));
            assert_eq!(t.name().to_lowercase().parse::<GgmlType>(), Ok(t));
        }
        assert!("Q4_2".parse::<GgmlType>().is_err());
    }
}
