//! The KL-divergence base file and statistics on mock models.

mod common;

use std::fs;
use std::path::Path;

use common::{token_stream, CorruptingModel, FixedRowModel, HashModel};
use ppl_eval::{
    kl_divergence, perplexity, perplexity_with_kld_base, Estimate, KldBaseHeader, KldBaseReader,
    KldBaseWriter, KldStats, PerplexityConfig, PplError, Quantiles,
};

const N_VOCAB: usize = 97;
const N_CTX: usize = 64;

fn write_base(
    dir: &Path,
    model: &mut HashModel,
    tokens: &[u32],
    chunks: usize,
) -> std::path::PathBuf {
    let path = dir.join("base.kld");
    let config = PerplexityConfig::new(N_CTX).with_max_chunks(chunks);
    perplexity_with_kld_base(model, tokens, &config, &path, |_| {}).unwrap();
    path
}

/// Parses a base file with plain byte arithmetic, independent of the crate's reader.
fn parse_raw(bytes: &[u8]) -> (i32, i32, i32, Vec<i32>, Vec<u16>) {
    assert_eq!(&bytes[..8], b"_logits_");
    let i32_at = |offset: usize| i32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap());
    let (n_ctx, n_vocab, n_chunk) = (i32_at(8), i32_at(12), i32_at(16));
    let n_tokens = (n_ctx * n_chunk) as usize;
    let tokens = (0..n_tokens).map(|i| i32_at(20 + 4 * i)).collect();
    let words = bytes[20 + 4 * n_tokens..]
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    (n_ctx, n_vocab, n_chunk, tokens, words)
}

#[test]
fn base_file_has_llama_cpp_layout() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_stream(N_CTX * 4, N_VOCAB, 21);
    let path = write_base(dir.path(), &mut HashModel::new(N_VOCAB), &tokens, 3);

    let bytes = fs::read(&path).unwrap();
    let (n_ctx, n_vocab, n_chunk, stored, words) = parse_raw(&bytes);
    assert_eq!((n_ctx, n_vocab, n_chunk), (N_CTX as i32, N_VOCAB as i32, 3));

    // The raw stream is stored, not the BOS-patched chunks.
    let expected: Vec<i32> = tokens[..3 * N_CTX].iter().map(|&t| t as i32).collect();
    assert_eq!(stored, expected);

    // 31 records per chunk of 2 * ceil(97 / 2) + 4 = 102 words.
    let record_len = 102;
    assert_eq!(words.len(), 3 * 31 * record_len);
    for record in words.chunks_exact(record_len) {
        assert_eq!(record[record_len - 1], 0, "pad word of an odd vocabulary");
        let scale = f32::from_bits(u32::from(record[0]) | u32::from(record[1]) << 16);
        assert!(scale > 0.0, "scale {scale}");
        assert!(scale <= 16.0 / 65535.0 * 1.0001, "scale {scale}");
        assert!(
            record[4..4 + N_VOCAB].contains(&65535),
            "the maximum logit takes the top code"
        );
    }

    let header = KldBaseHeader::new(N_CTX, N_VOCAB, 3).unwrap();
    assert_eq!(header.file_len(), Some(bytes.len() as u64));
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
}

#[test]
fn writer_and_reader_round_trip_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("round-trip.kld");
    let header = KldBaseHeader::new(8, 5, 2).unwrap();
    let tokens: Vec<u32> = (0..16).map(|i| i % 5).collect();
    let record_len = header.record_len();
    let total_words = header.records_per_chunk() * header.n_chunk * record_len;

    // Arbitrary codes with valid scale and min_log_prob words in each record.
    let mut words: Vec<u16> = (0..total_words)
        .map(|i| ((i * 2654435761usize) >> 7) as u16)
        .collect();
    for record in words.chunks_exact_mut(record_len) {
        let scale = (16.0_f32 / 65535.0).to_bits();
        let min_log_prob = (-17.5_f32).to_bits();
        record[..4].copy_from_slice(&[
            scale as u16,
            (scale >> 16) as u16,
            min_log_prob as u16,
            (min_log_prob >> 16) as u16,
        ]);
    }

    let mut writer = KldBaseWriter::create(&path, &header, &tokens).unwrap();
    let (first_chunk, second_chunk) = words.split_at(total_words / 2);
    writer.write_records(first_chunk).unwrap();
    writer.write_records(second_chunk).unwrap();
    writer.finish().unwrap();

    let mut reader = KldBaseReader::open(&path).unwrap();
    assert_eq!(reader.header(), &header);
    assert_eq!(reader.tokens(), tokens.as_slice());
    let mut read_back = Vec::new();
    let mut chunk = Vec::new();
    while reader.read_chunk(&mut chunk).unwrap() {
        read_back.extend_from_slice(&chunk);
    }
    assert_eq!(read_back, words, "codes read back bit for bit");
}

#[test]
fn kld_of_model_against_itself_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_stream(N_CTX * 6, N_VOCAB, 33);
    let path = write_base(dir.path(), &mut HashModel::new(N_VOCAB), &tokens, 5);

    let mut reader = KldBaseReader::open(&path).unwrap();
    let mut reports = Vec::new();
    let result = kl_divergence(&mut HashModel::new(N_VOCAB), &mut reader, |r| {
        reports.push(*r)
    })
    .unwrap();
    let stats = &result.stats;

    assert_eq!(stats.n_tokens, 5 * 31);
    assert!(stats.kld.value.abs() < 1e-4, "mean KLD {}", stats.kld.value);
    assert!(
        stats.kld_quantiles.max.abs() < 1e-3,
        "max KLD {}",
        stats.kld_quantiles.max
    );
    assert_eq!(stats.same_top_p.value, 1.0);
    assert!(
        (stats.ppl_ratio.value - 1.0).abs() < 1e-3,
        "ratio {}",
        stats.ppl_ratio.value
    );
    assert!(stats.cor_ln_ppl > 0.999, "correlation {}", stats.cor_ln_ppl);
    assert!(stats.rms_p_diff.value < 1e-3);
    assert_eq!(reports.len(), 5);
    assert_eq!(reports[4].chunk, 5);
    assert!(reports.iter().all(|r| r.same_top_p.value == 1.0));
}

#[test]
fn kld_base_run_matches_plain_perplexity() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_stream(N_CTX * 3, N_VOCAB, 34);
    let config = PerplexityConfig::new(N_CTX);
    let plain = perplexity(&mut HashModel::new(N_VOCAB), &tokens, &config, |_| {}).unwrap();
    let with_file = perplexity_with_kld_base(
        &mut HashModel::new(N_VOCAB),
        &tokens,
        &config,
        &dir.path().join("b.kld"),
        |_| {},
    )
    .unwrap();

    assert_eq!(plain.targets, with_file.targets);
    assert!((plain.ppl - with_file.ppl).abs() < 1e-5 * plain.ppl);
}

#[test]
fn perturbed_model_has_positive_kld() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_stream(N_CTX * 6, N_VOCAB, 35);
    let path = write_base(dir.path(), &mut HashModel::new(N_VOCAB), &tokens, 5);

    let mut candidate = HashModel::new(N_VOCAB);
    candidate.noise = 2.0;
    let mut reader = KldBaseReader::open(&path).unwrap();
    let result = kl_divergence(&mut candidate, &mut reader, |_| {}).unwrap();
    let stats = &result.stats;

    // Per-token KLD against the exact value from the same logits.
    let base = HashModel::new(N_VOCAB);
    let exact = ppl_eval::exact_kl_divergence(
        &base.row(tokens[31], tokens[32], 32),
        &candidate.row(tokens[31], tokens[32], 32),
    );
    assert!(
        (f64::from(result.kld[0]) - exact).abs() < 1e-3 * exact.max(1e-3),
        "{} vs {exact}",
        result.kld[0]
    );

    assert!(stats.kld.value > 0.01, "{}", stats.kld.value);
    assert!(stats.kld.uncertainty > 0.0);
    assert!(stats.same_top_p.value < 1.0);
    assert!(stats.kld_quantiles.min <= stats.kld_quantiles.median);
    assert!(stats.kld_quantiles.median <= stats.kld_quantiles.max);
    assert!(stats.p_diff_quantiles.p25 <= stats.p_diff_quantiles.p75);
    let json = serde_json::to_string(&result).unwrap();
    let back: ppl_eval::KldResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back, result);
}

#[test]
fn floored_base_gives_floored_kld() {
    // Base: logit 0 then 999 × −20; candidate: 0 then 999 × −18.
    let mut base_row = vec![-20.0_f32; 1000];
    base_row[0] = 0.0;
    let mut candidate_row = vec![-18.0_f32; 1000];
    candidate_row[0] = 0.0;

    let exact = ppl_eval::exact_kl_divergence(&base_row, &candidate_row);
    assert!((exact - 9.037e-6).abs() < 0.001e-6, "exact KL {exact}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floor.kld");
    let tokens = vec![0u32; 32];
    let config = PerplexityConfig::new(16);
    let mut base = FixedRowModel {
        row: base_row,
        bos: Some(0),
    };
    perplexity_with_kld_base(&mut base, &tokens, &config, &path, |_| {}).unwrap();

    let mut reader = KldBaseReader::open(&path).unwrap();
    let mut candidate = FixedRowModel {
        row: candidate_row,
        bos: Some(0),
    };
    let result = kl_divergence(&mut candidate, &mut reader, |_| {}).unwrap();

    // Entries at −20 fall below the max − 16 floor, so only entry 0 counts:
    // ln p_base(0) − ln p(0) = 1.316e-5 in exact arithmetic. The stored
    // log-probability has the f32 resolution of values near 16 (1.9e-6).
    let kld = result.stats.kld.value;
    assert!((kld - 1.316e-5).abs() < 2e-6, "file-based KLD {kld}");
    assert_eq!(result.stats.same_top_p.value, 1.0);
}

// Base files as untrusted input.

#[test]
fn vocab_mismatch_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_stream(N_CTX * 2, N_VOCAB, 36);
    let path = write_base(dir.path(), &mut HashModel::new(N_VOCAB), &tokens, 2);

    let mut reader = KldBaseReader::open(&path).unwrap();
    let error = kl_divergence(&mut HashModel::new(N_VOCAB + 1), &mut reader, |_| {}).unwrap_err();
    assert!(matches!(
        error,
        PplError::VocabularyMismatch {
            file: 97,
            model: 98
        }
    ));
}

#[test]
fn truncated_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_stream(N_CTX * 2, N_VOCAB, 37);
    let path = write_base(dir.path(), &mut HashModel::new(N_VOCAB), &tokens, 2);
    let bytes = fs::read(&path).unwrap();

    for cut in [0, 7, 19, 20 + 17, bytes.len() - 1] {
        fs::write(&path, &bytes[..cut]).unwrap();
        let error = KldBaseReader::open(&path).unwrap_err();
        assert!(
            matches!(error, PplError::InvalidBaseFile { .. }),
            "cut at {cut}: {error}"
        );
    }

    fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let message = KldBaseReader::open(&path).unwrap_err().to_string();
    assert!(
        message.contains(&format!("file is {} bytes", bytes.len() - 1)),
        "{message}"
    );
    assert!(
        message.contains(&format!("need exactly {} bytes", bytes.len())),
        "{message}"
    );
}

#[test]
fn hostile_headers_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.kld");
    let header = |magic: &[u8], n_ctx: i32, n_vocab: i32, n_chunk: i32| {
        let mut bytes = magic.to_vec();
        for v in [n_ctx, n_vocab, n_chunk] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes
    };

    let cases = [
        ("bad magic", header(b"_logitz_", 8, 4, 1)),
        ("negative n_ctx", header(b"_logits_", -8, 4, 1)),
        ("zero n_vocab", header(b"_logits_", 8, 0, 1)),
        ("zero n_chunk", header(b"_logits_", 8, 4, 0)),
        ("tiny n_ctx", header(b"_logits_", 2, 4, 1)),
        (
            "huge sizes",
            header(b"_logits_", i32::MAX, i32::MAX, i32::MAX),
        ),
    ];
    for (name, bytes) in cases {
        fs::write(&path, &bytes).unwrap();
        let error = KldBaseReader::open(&path).unwrap_err();
        assert!(
            matches!(error, PplError::InvalidBaseFile { .. }),
            "{name}: {error}"
        );
    }
}

#[test]
fn token_outside_vocab_in_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_stream(N_CTX * 2, N_VOCAB, 38);
    let path = write_base(dir.path(), &mut HashModel::new(N_VOCAB), &tokens, 2);
    let mut bytes = fs::read(&path).unwrap();
    bytes[20 + 4 * 5..20 + 4 * 6].copy_from_slice(&(N_VOCAB as i32).to_le_bytes());
    fs::write(&path, &bytes).unwrap();

    let message = KldBaseReader::open(&path).unwrap_err().to_string();
    assert!(message.contains("token id 97 at position 5"), "{message}");
}

#[test]
fn nan_scale_in_record_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_stream(N_CTX * 2, N_VOCAB, 39);
    let path = write_base(dir.path(), &mut HashModel::new(N_VOCAB), &tokens, 2);
    let mut bytes = fs::read(&path).unwrap();
    let records_start = 20 + 4 * 2 * N_CTX;
    let record_bytes = 2 * 102;
    let offset = records_start + 31 * record_bytes + 3 * record_bytes;
    bytes[offset..offset + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    fs::write(&path, &bytes).unwrap();

    let mut reader = KldBaseReader::open(&path).unwrap();
    let error = kl_divergence(&mut HashModel::new(N_VOCAB), &mut reader, |_| {}).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("chunk 2 record 3"), "{message}");
}

#[test]
fn failed_run_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partial.kld");
    let tokens = token_stream(N_CTX * 3, N_VOCAB, 40);
    let mut model = CorruptingModel {
        inner: HashModel::new(N_VOCAB),
        chunk: 2,
        row: 0,
        vocab_index: 0,
        value: f32::NAN,
        calls: 0,
    };
    let error = perplexity_with_kld_base(
        &mut model,
        &tokens,
        &PerplexityConfig::new(N_CTX),
        &path,
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(error, PplError::NonFiniteLogit { chunk: 3, .. }));

    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "neither the file nor its temporary copy may remain"
    );
}

#[test]
fn unwritable_folder_reports_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-folder").join("base.kld");
    let tokens = token_stream(N_CTX * 2, N_VOCAB, 41);
    let error = perplexity_with_kld_base(
        &mut HashModel::new(N_VOCAB),
        &tokens,
        &PerplexityConfig::new(N_CTX),
        &path,
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(error, PplError::Io { .. }));
    assert!(error.to_string().contains("missing-folder"), "{error}");
}

// Output layout.

/// Reads the numbers of one printed statistics block, in order of appearance.
fn numbers_in(text: &str) -> Vec<f64> {
    let mut numbers = Vec::new();
    for line in text.lines() {
        let values = line.split_once(':').map_or("", |(_, v)| v);
        for word in values.split(|c: char| c.is_whitespace() || c == '%' || c == '±') {
            if let Ok(value) = word.parse::<f64>() {
                numbers.push(value);
            }
        }
    }
    numbers
}

fn stats_from_numbers(n: &[f64]) -> KldStats {
    let est = |value: f64, uncertainty: f64| Estimate { value, uncertainty };
    let pct = |i: usize| n[i] / 100.0;
    KldStats {
        n_tokens: 1275,
        ppl: est(n[0], n[1]),
        ppl_base: est(n[2], n[3]),
        cor_ln_ppl: pct(4),
        ln_ppl_ratio: est(n[5], n[6]),
        ppl_ratio: est(n[7], n[8]),
        ppl_diff: est(n[9], n[10]),
        kld: est(n[11], n[12]),
        kld_quantiles: Quantiles {
            max: n[13],
            p99_9: n[14],
            p99: n[15],
            p95: n[16],
            p90: n[17],
            p75: 0.0,
            median: n[18],
            p25: 0.0,
            p10: n[19],
            p5: n[20],
            p1: n[21],
            p0_1: n[22],
            min: n[23],
        },
        p_diff: est(pct(24), pct(25)),
        p_diff_quantiles: Quantiles {
            max: pct(26),
            p99_9: pct(27),
            p99: pct(28),
            p95: pct(29),
            p90: pct(30),
            p75: pct(31),
            median: pct(32),
            p25: pct(33),
            p10: pct(34),
            p5: pct(35),
            p1: pct(36),
            p0_1: pct(37),
            min: pct(38),
        },
        rms_p_diff: est(pct(39), pct(40)),
        same_top_p: est(pct(41), pct(42)),
    }
}

#[test]
fn stats_display_matches_llama_cpp() {
    for file in ["llama-cpp-kld-q4_0-pure.txt", "llama-cpp-kld-q4_k_m.txt"] {
        let expected = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(file),
        )
        .unwrap();
        let numbers = numbers_in(&expected);
        assert_eq!(numbers.len(), 43, "{file}");
        let stats = stats_from_numbers(&numbers);
        assert_eq!(stats.to_string(), expected.trim_end(), "{file}");
    }
}
