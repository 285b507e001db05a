//! Our writers read back equal in our readers and in gguf-py.

use std::path::{Path, PathBuf};
use std::process::Command;

use imatrix_collect::{Imatrix, ImatrixEntry, ImatrixFormat};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Two dense entries and one 3-D (expert) entry with a zero-count matrix.
fn sample() -> Imatrix {
    let mut imatrix = Imatrix::new(512);
    imatrix.set_chunk_count(3);
    imatrix.push_dataset("calib.txt");

    let q: Vec<f32> = (0..64).map(|i| (i * i) as f32 * 0.25).collect();
    imatrix.insert(
        "blk.0.attn_q.weight",
        ImatrixEntry::new("blk.0.attn_q.weight", 64, q, vec![1536]).unwrap(),
    );

    let down: Vec<f32> = (0..128).map(|i| 1000.0 + i as f32).collect();
    imatrix.insert(
        "blk.1.ffn_down.weight",
        ImatrixEntry::new("blk.1.ffn_down.weight", 128, down, vec![1024]).unwrap(),
    );

    let experts: Vec<f32> = (0..3 * 32).map(|i| i as f32).collect();
    let entry =
        ImatrixEntry::new("blk.2.ffn_up_exps.weight", 32, experts, vec![512, 0, 1000]).unwrap();
    imatrix.insert("blk.2.ffn_up_exps.weight", entry);
    imatrix
}

#[test]
fn gguf_roundtrip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.imatrix");
    let imatrix = sample();
    imatrix.save(&path, ImatrixFormat::Gguf).unwrap();

    let loaded = Imatrix::load(&path).unwrap();
    assert_eq!(loaded, imatrix);
}

#[test]
fn gguf_rewrite_of_llama_file_is_byte_identical() {
    let original = std::fs::read(data("imatrix-en.gguf")).unwrap();
    let imatrix = Imatrix::from_bytes(&original).unwrap();
    let rewritten = imatrix_collect::write_gguf_bytes(&imatrix).unwrap();
    assert_eq!(rewritten.len(), original.len());
    assert!(
        rewritten == original,
        "rewritten GGUF differs from llama.cpp's bytes"
    );
}

#[test]
fn dat_roundtrip_keeps_mean_squares() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.dat");
    let imatrix = sample();
    assert_eq!(ImatrixFormat::for_output_path(&path), ImatrixFormat::Dat);
    imatrix.save(&path, ImatrixFormat::Dat).unwrap();

    let loaded = Imatrix::load(&path).unwrap();
    assert_eq!(loaded.chunk_count(), 3);
    assert_eq!(loaded.datasets(), &["calib.txt".to_owned()]);

    for (name, entry) in imatrix.entries() {
        let back = loaded.entry(name).unwrap();

        // Legacy files have no expert axis and one ncall = ceil(max count / 512).
        assert_eq!(back.n_mat(), 1, "{name}");
        assert_eq!(back.n_cols(), entry.in_sum2().len(), "{name}");
        let ncall = entry.counts().iter().max().unwrap().div_ceil(512);
        assert_eq!(back.counts(), &[ncall * 512], "{name}");

        if entry.n_mat() == 1 {
            for (column, (&a, &b)) in back
                .mean_squares()
                .iter()
                .zip(&entry.mean_squares())
                .enumerate()
            {
                assert!(
                    (a - b).abs() <= 4.0 * f32::EPSILON * b.abs(),
                    "{name}[{column}]: {a} vs {b}"
                );
            }
        }
    }

    // llama.cpp writes a zero-count matrix as 1.0, so it reads back as 1.0 / ncall (ncall 2).
    let experts = loaded
        .entry("blk.2.ffn_up_exps.weight")
        .unwrap()
        .mean_squares();
    assert_eq!(&experts[32..64], &[0.5; 32]);
}

#[test]
fn dat_rewrite_of_llama_file_is_byte_identical() {
    let original = std::fs::read(data("imatrix-en.dat")).unwrap();
    let imatrix = Imatrix::from_bytes(&original).unwrap();
    let rewritten = imatrix.to_dat_bytes().unwrap();
    assert!(
        rewritten == original,
        "rewritten .dat differs from llama.cpp's bytes"
    );
}

/// Returns whether `python3 -c "import gguf"` works; fails the test under CI=true when not.
fn gguf_py_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import gguf, numpy"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 with the gguf and numpy packages is required under CI=true"
        );
        eprintln!("skipped: python3 with the gguf package is missing");
    }
    ok
}

/// Prints, per entry, `name n_cols n_mat counts... | mean squares...` as gguf-py reads them.
const GGUF_PY_DUMP: &str = r#"
import sys, gguf, numpy as np
r = gguf.GGUFReader(sys.argv[1])
f = r.fields
assert f["general.type"].contents() == "imatrix", f["general.type"].contents()
print("chunks", f["imatrix.chunk_count"].contents(), f["imatrix.chunk_size"].contents())
print("datasets", ";".join(f["imatrix.datasets"].contents()))
t = {x.name: x for x in r.tensors}
for name in sorted(n[:-len(".in_sum2")] for n in t if n.endswith(".in_sum2")):
    s = t[name + ".in_sum2"]; c = t[name + ".counts"]
    n_cols = int(s.shape[0]); n_mat = int(np.prod(s.shape[1:])) if len(s.shape) > 1 else 1
    sums = np.asarray(s.data, dtype=np.float32).reshape(n_mat, n_cols)
    counts = np.asarray(c.data, dtype=np.float32).reshape(n_mat)
    print(name, n_cols, n_mat, " ".join(repr(float(v)) for v in counts), "|",
          " ".join(repr(float(v)) for v in sums.reshape(-1)))
"#;

fn gguf_py_dump(path: &Path) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(GGUF_PY_DUMP)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gguf-py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn gguf_output_reads_equal_in_gguf_py() {
    if !gguf_py_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.gguf");
    let imatrix = sample();
    imatrix.save(&path, ImatrixFormat::Gguf).unwrap();

    let dump = gguf_py_dump(&path);
    let mut lines = dump.lines();
    assert_eq!(lines.next(), Some("chunks 3 512"));
    assert_eq!(lines.next(), Some("datasets calib.txt"));

    let mut seen = 0;
    for line in lines {
        let (head, sums) = line.split_once(" | ").unwrap();
        let fields: Vec<&str> = head.split(' ').collect();
        let entry = imatrix
            .entry(fields[0])
            .unwrap_or_else(|| panic!("unexpected entry {}", fields[0]));
        assert_eq!(
            fields[1].parse::<usize>().unwrap(),
            entry.n_cols(),
            "{line}"
        );
        assert_eq!(fields[2].parse::<usize>().unwrap(), entry.n_mat(), "{line}");

        let counts: Vec<u64> = fields[3..]
            .iter()
            .map(|c| c.parse::<f64>().unwrap() as u64)
            .collect();
        assert_eq!(counts, entry.counts(), "{}", fields[0]);
        let sums: Vec<f32> = sums
            .split(' ')
            .map(|v| v.parse::<f64>().unwrap() as f32)
            .collect();
        assert_eq!(sums, entry.in_sum2(), "{}", fields[0]);
        seen += 1;
    }
    assert_eq!(seen, imatrix.entries().len());
}

#[test]
fn dat_output_reads_equal_in_python() {
    if !gguf_py_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.dat");
    let imatrix = sample();
    imatrix.save(&path, ImatrixFormat::Dat).unwrap();

    // An independent reader of the legacy layout: name, ncall and value / ncall per entry.
    let script = r#"
import sys, struct, numpy as np
d = open(sys.argv[1], "rb").read(); off = 0
def i32():
    global off; v = struct.unpack_from("<i", d, off)[0]; off += 4; return v
for _ in range(i32()):
    n = i32(); name = d[off:off + n].decode(); off += n
    ncall = i32(); nval = i32()
    v = np.frombuffer(d, dtype="<f4", count=nval, offset=off); off += 4 * nval
    print(name, ncall, " ".join(repr(float(x)) for x in (v / np.float32(ncall))))
chunks = i32(); n = i32(); print("trailer", chunks, d[off:off + n].decode()); off += n
assert off == len(d)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8(out.stdout).unwrap();

    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.len(), imatrix.entries().len() + 1);
    assert_eq!(*lines.last().unwrap(), "trailer 3 calib.txt");
    for line in &lines[..lines.len() - 1] {
        let fields: Vec<&str> = line.split(' ').collect();
        let entry = imatrix.entry(fields[0]).unwrap();
        let ncall = entry.counts().iter().max().unwrap().div_ceil(512);
        assert_eq!(fields[1].parse::<u64>().unwrap(), ncall, "{line}");

        // A zero-count matrix is stored as 1.0, which reads as 1.0 / ncall.
        let mut expected = entry.mean_squares();
        for (mat, &count) in entry.counts().iter().enumerate() {
            if count == 0 {
                expected[mat * entry.n_cols()..(mat + 1) * entry.n_cols()].fill(1.0 / ncall as f32);
            }
        }
        for (column, value) in fields[2..].iter().enumerate() {
            let value = value.parse::<f64>().unwrap() as f32;
            let want = expected[column];
            assert!(
                (value - want).abs() <= 4.0 * f32::EPSILON * want.abs(),
                "{}[{column}]: {value} vs {want}",
                fields[0]
            );
        }
    }
}
