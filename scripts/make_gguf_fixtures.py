#!/usr/bin/env python3
"""Write the gguf-py interop fixtures and the values a reader must find in them.

Usage: scripts/make_gguf_fixtures.py [OUTPUT_DIR]
    OUTPUT_DIR defaults to crates/gguf-format/tests/data.

Writes small GGUF files with gguf-py's GGUFWriter (gguf 0.19.0) and reads each back with
GGUFReader. gguf_py_expected.json stores what GGUFReader reports: version, alignment, data
offset, every metadata pair (type, element type, value) and every tensor. A tensor entry
has the name, dims in GGUF order, ggml type, offset from the data section, byte size and
the SHA-256 of the data.
Floats are stored as their IEEE-754 bit patterns so the comparison is exact.
The data is deterministic (fixed seed), so rerunning the script reproduces the files.
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

SEED = 20241204
VT = GGUFValueType


def scalar_kvs(writer: GGUFWriter) -> None:
    """Add one key of every scalar type, with edge values."""
    writer.add_key_value("test.u8", 255, VT.UINT8)
    writer.add_key_value("test.i8", -128, VT.INT8)
    writer.add_key_value("test.u16", 65535, VT.UINT16)
    writer.add_key_value("test.i16", -32768, VT.INT16)
    writer.add_key_value("test.u32", 4294967295, VT.UINT32)
    writer.add_key_value("test.i32", -2147483648, VT.INT32)
    writer.add_key_value("test.f32", -1.25, VT.FLOAT32)
    writer.add_key_value("test.bool", True, VT.BOOL)
    writer.add_key_value("test.string", "Gemma ▁日本語 ✓", VT.STRING)
    writer.add_key_value("test.u64", 2**64 - 1, VT.UINT64)
    writer.add_key_value("test.i64", -(2**63), VT.INT64)
    writer.add_key_value("test.f64", 1e-300, VT.FLOAT64)
    writer.add_key_value("test.empty_string", "", VT.STRING)


def array_kvs(writer: GGUFWriter) -> None:
    """Add one array of every element type, strings included."""
    arrays = [
        ("test.array.u8", VT.UINT8, [0, 1, 255]),
        ("test.array.i8", VT.INT8, [-128, 0, 127]),
        ("test.array.u16", VT.UINT16, [0, 65535]),
        ("test.array.i16", VT.INT16, [-32768, 32767]),
        ("test.array.u32", VT.UINT32, [1, 2, 3, 4294967295]),
        ("test.array.i32", VT.INT32, [-1, 0, 1]),
        ("test.array.f32", VT.FLOAT32, [0.0, -0.0, 1.5, 3.4028234663852886e38, 1e-45]),
        ("test.array.bool", VT.BOOL, [True, False, True]),
        ("test.array.u64", VT.UINT64, [0, 2**64 - 1]),
        ("test.array.i64", VT.INT64, [-(2**63), 2**63 - 1]),
        ("test.array.f64", VT.FLOAT64, [0.1, -2.5e300]),
        ("tokenizer.ggml.tokens", VT.STRING, ["<pad>", "<eos>", "<bos>", "▁a", "日本", ""]),
    ]
    for key, sub_type, values in arrays:
        writer.add_key_value(key, values, VT.ARRAY, sub_type=sub_type)


def write_all_types(path: Path, rng: np.random.Generator) -> None:
    writer = GGUFWriter(str(path), "gemma3")
    scalar_kvs(writer)
    array_kvs(writer)

    # numpy shapes are row-major, the reverse of GGUF's dims.
    writer.add_tensor("f32.matrix", rng.standard_normal((3, 4)).astype(np.float32))
    writer.add_tensor("f16.vector", rng.standard_normal(8).astype(np.float16))
    writer.add_tensor("i32.vector", np.arange(5, dtype=np.int32))
    q8_0 = rng.integers(0, 256, size=(2, 34), dtype=np.uint8)
    writer.add_tensor("q8_0.matrix", q8_0, raw_dtype=GGMLQuantizationType.Q8_0)
    q4_k = rng.integers(0, 256, size=(1, 144), dtype=np.uint8)
    writer.add_tensor("q4_k.row", q4_k, raw_dtype=GGMLQuantizationType.Q4_K)
    f32_3d = rng.standard_normal((2, 3, 4)).astype(np.float32)
    writer.add_tensor("f32.cube", f32_3d)
    finish(writer)


def write_aligned64(path: Path) -> None:
    writer = GGUFWriter(str(path), "gemma3")
    writer.add_custom_alignment(64)
    writer.add_key_value("general.name", "x" * 36, VT.STRING)
    for i, name in enumerate(["a", "b", "c"]):
        writer.add_tensor(name, np.arange(4 * i + 1, 4 * i + 5, dtype=np.float32))
    finish(writer)


def write_no_tensors(path: Path) -> None:
    writer = GGUFWriter(str(path), "gemma3")
    writer.add_key_value("gemma3.context_length", 32768, VT.UINT32)
    finish(writer)


def finish(writer: GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def float_bits(value: float, vtype: GGUFValueType) -> int:
    if vtype == VT.FLOAT32:
        return struct.unpack("<I", struct.pack("<f", value))[0]
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def json_value(value, vtype: GGUFValueType):
    if vtype in (VT.FLOAT32, VT.FLOAT64):
        return float_bits(float(value), vtype)
    if vtype == VT.BOOL:
        return bool(value)
    if vtype == VT.STRING:
        return value
    return int(value)


def describe(path: Path) -> dict:
    """Return what GGUFReader finds in `path`."""
    reader = GGUFReader(str(path))
    metadata = []
    for field in reader.fields.values():
        if field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        entry = {"key": field.name, "type": vtype.name}
        if vtype == VT.ARRAY:
            # parts: key length, key, value type, element type, count, elements. The element
            # type comes from the raw part because GGUFReader leaves it out of `types` for
            # an empty array.
            sub_type = VT(int(field.parts[3][0]))
            entry["element_type"] = sub_type.name
            entry["value"] = [json_value(v, sub_type) for v in field.contents()]
        else:
            entry["value"] = json_value(field.contents(), vtype)
        metadata.append(entry)

    tensors = []
    for t in reader.tensors:
        tensors.append({
            "name": t.name,
            "dims": [int(d) for d in t.shape],
            "ggml_type": t.tensor_type.name,
            "offset": int(t.data_offset - reader.data_offset),
            "size_bytes": int(t.n_bytes),
            "sha256": hashlib.sha256(t.data.tobytes()).hexdigest(),
        })

    version = int(reader.fields["GGUF.version"].parts[-1][0])
    return {
        "version": version,
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata": metadata,
        "tensors": tensors,
    }


def main() -> None:
    repo = Path(__file__).resolve().parent.parent
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else repo / "crates/gguf-format/tests/data"
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    fixtures = {
        "gguf_py_all_types.gguf": lambda p: write_all_types(p, rng),
        "gguf_py_aligned64.gguf": write_aligned64,
        "gguf_py_no_tensors.gguf": write_no_tensors,
    }
    expected = {}
    for name, write in fixtures.items():
        path = out_dir / name
        write(path)
        expected[name] = describe(path)
        print(f"wrote {path} ({path.stat().st_size} bytes)")

    expected_path = out_dir / "gguf_py_expected.json"
    expected_path.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {expected_path}")


if __name__ == "__main__":
    main()
