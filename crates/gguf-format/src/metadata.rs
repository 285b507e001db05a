//! The ordered key-value metadata of a GGUF file.

use std::collections::HashMap;

use crate::error::{GgufError, MetadataError};
use crate::value::{Array, Value, ValueType};

/// GGUF metadata: key-value pairs in file order with O(1) look-up by key.
///
/// Keys are unique. Iteration, and the order in which a writer emits the pairs, is insertion
/// order, and [`Metadata::set`] replaces a value in place, keeping its position.
///
/// ```
/// use gguf_format::{Metadata, MetadataError, Value, ValueType};
///
/// let mut m = Metadata::new();
/// m.insert("gemma3.block_count", Value::U32(18)).unwrap();
/// m.insert("gemma3.rope.freq_base", Value::F32(1e6)).unwrap();
///
/// assert_eq!(m.get_u32("gemma3.block_count"), Ok(18));
/// assert_eq!(m.opt_f32("gemma3.rope.scaling.factor"), Ok(None));
/// assert_eq!(
///     m.get_u32("gemma3.rope.freq_base"),
///     Err(MetadataError::WrongType {
///         key: "gemma3.rope.freq_base".into(),
///         expected: ValueType::U32,
///         found: ValueType::F32,
///     })
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pairs: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

/// Generates a required and an optional typed getter for one scalar type.
macro_rules! typed_getters {
    ($($get:ident, $opt:ident => $variant:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Returns the `", stringify!($ty), "` stored under `key`.")]
            ///
            /// # Errors
            ///
            /// [`MetadataError::Missing`] when the key is absent, [`MetadataError::WrongType`]
            /// when the value has another type (integer types are not converted).
            pub fn $get(&self, key: &str) -> Result<$ty, MetadataError> {
                match self.require(key)? {
                    Value::$variant(v) => Ok(*v),
                    other => Err(wrong_type(key, ValueType::$variant, other)),
                }
            }

            #[doc = concat!("Returns the `", stringify!($ty), "` stored under `key`, or `None` when the key is absent.")]
            ///
            /// # Errors
            ///
            /// [`MetadataError::WrongType`] when the value has another type.
            pub fn $opt(&self, key: &str) -> Result<Option<$ty>, MetadataError> {
                match self.get(key) {
                    None => Ok(None),
                    Some(Value::$variant(v)) => Ok(Some(*v)),
                    Some(other) => Err(wrong_type(key, ValueType::$variant, other)),
                }
            }
        )*
    };
}

/// Generates a typed array getter returning a slice.
macro_rules! array_getters {
    ($($get:ident => $variant:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Returns the array of `", stringify!($ty), "` stored under `key`.")]
            ///
            /// # Errors
            ///
            /// [`MetadataError::Missing`] when the key is absent, [`MetadataError::WrongType`]
            /// when the value is not an array, [`MetadataError::WrongArrayType`] when its
            /// elements have another type.
            pub fn $get(&self, key: &str) -> Result<&[$ty], MetadataError> {
                match self.get_array(key)? {
                    Array::$variant(v) => Ok(v),
                    other => Err(MetadataError::WrongArrayType {
                        key: key.to_string(),
                        expected: ValueType::$variant,
                        found: other.element_type(),
                    }),
                }
            }
        )*
    };
}

fn wrong_type(key: &str, expected: ValueType, found: &Value) -> MetadataError {
    MetadataError::WrongType {
        key: key.to_string(),
        expected,
        found: found.value_type(),
    }
}

impl Metadata {
    /// Creates empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates empty metadata with room for `capacity` pairs.
    pub fn with_capacity(capacity: usize) -> Self {
        Metadata {
            pairs: Vec::with_capacity(capacity),
            index: HashMap::with_capacity(capacity),
        }
    }

    /// Returns the number of key-value pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Returns true when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Returns the value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.pairs[i].1)
    }

    /// Returns true when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Iterates over the pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Iterates over the keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// Appends a new pair.
    ///
    /// # Errors
    ///
    /// [`GgufError::EmptyKey`] for an empty key, [`GgufError::DuplicateKey`] when the key is
    /// already present (use [`Metadata::set`] to replace a value).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Result<(), GgufError> {
        let key = key.into();
        if key.is_empty() {
            return Err(GgufError::EmptyKey {
                index: self.pairs.len(),
            });
        }
        if self.index.contains_key(&key) {
            return Err(GgufError::DuplicateKey { key });
        }

        self.index.insert(key.clone(), self.pairs.len());
        self.pairs.push((key, value));
        Ok(())
    }

    /// Replaces the value under `key` in place, or appends the pair when the key is new.
    ///
    /// An empty key is stored, but [`GgufWriter`](crate::GgufWriter) rejects it with
    /// [`GgufError::EmptyKey`] when writing; [`Metadata::insert`] rejects it at once.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.index.get(&key) {
            Some(&i) => self.pairs[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.pairs.len());
                self.pairs.push((key, value));
            }
        }
    }

    /// Removes `key` and returns its value; the remaining pairs keep their order.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let position = self.index.remove(key)?;
        let (_, value) = self.pairs.remove(position);

        // Every pair after the removed one moved down by one place.
        for (k, _) in &self.pairs[position..] {
            if let Some(i) = self.index.get_mut(k) {
                *i -= 1;
            }
        }
        Some(value)
    }

    fn require(&self, key: &str) -> Result<&Value, MetadataError> {
        self.get(key).ok_or_else(|| MetadataError::Missing {
            key: key.to_string(),
        })
    }

    typed_getters! {
        get_u8, opt_u8 => U8: u8,
        get_i8, opt_i8 => I8: i8,
        get_u16, opt_u16 => U16: u16,
        get_i16, opt_i16 => I16: i16,
        get_u32, opt_u32 => U32: u32,
        get_i32, opt_i32 => I32: i32,
        get_f32, opt_f32 => F32: f32,
        get_bool, opt_bool => Bool: bool,
        get_u64, opt_u64 => U64: u64,
        get_i64, opt_i64 => I64: i64,
        get_f64, opt_f64 => F64: f64,
    }

    /// Returns the string stored under `key`.
    ///
    /// # Errors
    ///
    /// [`MetadataError::Missing`] when the key is absent, [`MetadataError::WrongType`] when
    /// the value is not a string.
    pub fn get_str(&self, key: &str) -> Result<&str, MetadataError> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            other => Err(wrong_type(key, ValueType::String, other)),
        }
    }

    /// Returns the string stored under `key`, or `None` when the key is absent.
    ///
    /// # Errors
    ///
    /// [`MetadataError::WrongType`] when the value is not a string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, MetadataError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(key, ValueType::String, other)),
        }
    }

    /// Returns the array stored under `key`.
    ///
    /// # Errors
    ///
    /// [`MetadataError::Missing`] when the key is absent, [`MetadataError::WrongType`] when
    /// the value is not an array.
    pub fn get_array(&self, key: &str) -> Result<&Array, MetadataError> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            other => Err(wrong_type(key, ValueType::Array, other)),
        }
    }

    array_getters! {
        get_string_array => String: String,
        get_f32_array => F32: f32,
        get_i32_array => I32: i32,
        get_u32_array => U32: u32,
        get_u8_array => U8: u8,
    }

    /// Returns an integer stored under `key` with any of the eight integer types, converted
    /// to `u64`. Use it for keys whose integer type differs between writers (token ids).
    ///
    /// # Errors
    ///
    /// [`MetadataError::Missing`] when the key is absent; [`MetadataError::WrongType`] when
    /// the value is not an integer or is negative (reported as expected `u64`).
    pub fn get_uint(&self, key: &str) -> Result<u64, MetadataError> {
        let value = self.require(key)?;
        value
            .as_integer()
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| wrong_type(key, ValueType::U64, value))
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Metadata {
    /// Collects pairs in order; a repeated key replaces the earlier value in place, as in
    /// [`Metadata::set`].
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut metadata = Metadata::new();
        for (key, value) in iter {
            metadata.set(key, value);
        }
        metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_keeps_order_and_index() {
        let mut m = Metadata::new();
        m.insert("a", Value::U32(1)).unwrap();
        m.insert("b", Value::U32(2)).unwrap();
        m.insert("c", Value::U32(3)).unwrap();

        assert_eq!(m.remove("a"), Some(Value::U32(1)));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(m.get_u32("c"), Ok(3));
        assert_eq!(m.remove("a"), None);
    }

    #[test]
    fn set_replaces_in_place() {
        let mut m = Metadata::new();
        m.insert("a", Value::U32(1)).unwrap();
        m.insert("b", Value::U32(2)).unwrap();
        m.set("a", Value::from("x"));
        m.set("c", Value::Bool(true));

        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(m.get_str("a"), Ok("x"));
    }

    #[test]
    fn insert_rejects_empty_and_duplicate_keys() {
        let mut m = Metadata::new();
        m.insert("a", Value::U8(0)).unwrap();

        assert!(matches!(
            m.insert("", Value::U8(0)),
            Err(GgufError::EmptyKey { index: 1 })
        ));
        assert!(
            matches!(m.insert("a", Value::U8(0)), Err(GgufError::DuplicateKey { key }) if key == "a")
        );
    }

    #[test]
    fn typed_getters_name_key_and_types() {
        let mut m = Metadata::new();
        m.insert("n", Value::I32(5)).unwrap();
        m.insert("t", Value::from(vec![1u8, 2])).unwrap();

        assert_eq!(
            m.get_u32("n"),
            Err(MetadataError::WrongType {
                key: "n".into(),
                expected: ValueType::U32,
                found: ValueType::I32
            })
        );
        assert_eq!(
            m.get_u32("x"),
            Err(MetadataError::Missing { key: "x".into() })
        );
        assert_eq!(m.opt_u32("x"), Ok(None));
        assert!(m.opt_u32("n").is_err());
        assert_eq!(m.get_uint("n"), Ok(5));
        assert_eq!(
            m.get_string_array("t"),
            Err(MetadataError::WrongArrayType {
                key: "t".into(),
                expected: ValueType::String,
                found: ValueType::U8
            })
        );
        assert_eq!(
            m.get_string_array("t").unwrap_err().to_string(),
            "metadata key 't' is an array of u8, expected an array of string"
        );
    }
}
