//! Property test: writing random metadata and tensors and reading them back is the identity.

use gguf_format::{Array, GgmlType, GgufView, GgufWriter, Metadata, Value};
use proptest::collection::vec;
use proptest::prelude::*;

/// NaN is excluded only because it is not equal to itself; its bits round-trip like any other.
fn f32_value() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("NaN != NaN", |v| !v.is_nan())
}

fn f64_value() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN != NaN", |v| !v.is_nan())
}

fn array() -> impl Strategy<Value = Array> {
    const MAX: usize = 6;
    prop_oneof![
        vec(any::<u8>(), 0..MAX).prop_map(Array::U8),
        vec(any::<i8>(), 0..MAX).prop_map(Array::I8),
        vec(any::<u16>(), 0..MAX).prop_map(Array::U16),
        vec(any::<i16>(), 0..MAX).prop_map(Array::I16),
        vec(any::<u32>(), 0..MAX).prop_map(Array::U32),
        vec(any::<i32>(), 0..MAX).prop_map(Array::I32),
        vec(f32_value(), 0..MAX).prop_map(Array::F32),
        vec(any::<bool>(), 0..MAX).prop_map(Array::Bool),
        vec(any::<String>(), 0..MAX).prop_map(Array::String),
        vec(any::<u64>(), 0..MAX).prop_map(Array::U64),
        vec(any::<i64>(), 0..MAX).prop_map(Array::I64),
        vec(f64_value(), 0..MAX).prop_map(Array::F64),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<i8>().prop_map(Value::I8),
        any::<u16>().prop_map(Value::U16),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        f32_value().prop_map(Value::F32),
        any::<bool>().prop_map(Value::Bool),
        any::<String>().prop_map(Value::String),
        array().prop_map(Value::Array),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        f64_value().prop_map(Value::F64),
    ]
}

/// Random metadata: up to 12 pairs with unique non-empty keys, and sometimes a valid
/// `general.alignment`.
fn metadata() -> impl Strategy<Value = Metadata> {
    let alignment = prop::option::of(prop::sample::select(vec![1u32, 8, 16, 32, 64, 256]));
    (vec(("[a-z][a-z0-9._]{0,20}", value()), 0..12), alignment).prop_map(|(pairs, alignment)| {
        let mut m = Metadata::new();
        if let Some(a) = alignment {
            m.set("general.alignment", Value::U32(a));
        }
        for (key, value) in pairs {
            if key != "general.alignment" {
                m.set(key, value);
            }
        }
        m
    })
}

/// Generates a tensor: type, dims with `ne[0]` a block multiple, and random data of the
/// right size.
fn tensor() -> impl Strategy<Value = (GgmlType, Vec<u64>, Vec<u8>)> {
    let types = prop::sample::select(vec![
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::I8,
    ]);
    (types, 1u64..3, vec(1u64..4, 0..4)).prop_flat_map(|(ggml_type, blocks, rest)| {
        let mut dims = vec![blocks * ggml_type.block_size() as u64];
        dims.extend(rest);
        let size =
            ggml_type.row_size(dims[0]).unwrap() * dims[1..].iter().product::<u64>() as usize;
        (Just(ggml_type), Just(dims), vec(any::<u8>(), size))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn write_then_read_is_identity(m in metadata(), tensors in vec(tensor(), 0..5)) {
        let mut writer = GgufWriter::new(m.clone());
        for (i, (ggml_type, dims, _)) in tensors.iter().enumerate() {
            writer.add_tensor(format!("blk.{i}.weight"), dims, *ggml_type).unwrap();
        }
        let bytes = writer.write_to_vec(|i, _, out| Ok(out.write_all(&tensors[i].2)?)).unwrap();

        let view = GgufView::parse(&bytes).unwrap();
        prop_assert_eq!(view.version(), 3);
        prop_assert_eq!(view.metadata(), &m);
        prop_assert_eq!(view.tensors().len(), tensors.len());
        for (i, (ggml_type, dims, data)) in tensors.iter().enumerate() {
            let info = &view.tensors()[i];
            prop_assert_eq!(&info.name, &format!("blk.{i}.weight"));
            prop_assert_eq!(&info.dims, dims);
            prop_assert_eq!(info.ggml_type, *ggml_type);
            prop_assert_eq!(info.offset % view.alignment(), 0);
            prop_assert_eq!(view.tensor_data(info), &data[..]);
        }
    }
}
