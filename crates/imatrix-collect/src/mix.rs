//! Weighted mixing of importance matrices collected on different texts.
//!
//! Merging (llama-imatrix `--in-file`) adds sums, so a text with four times the tokens gets
//! four times the weight. Mixing first normalises each source by its token count, then weights
//! the per-token means, so that "0.7 English + 0.3 Japanese" means the same whatever the
//! lengths of the two texts.

use crate::error::ImatrixError;
use crate::imatrix::{Imatrix, ImatrixEntry};

/// Mixes `sources` with the given weights into one imatrix.
///
/// For each tensor and matrix slice, with `S` the sources that have it and a non-zero count:
///
/// ```text
/// mean_i   = in_sum2_i / count_i                      (per column, source i)
/// mean     = sum_{i in S} w_i * mean_i / sum_{i in S} w_i
/// count    = sum_{i in S} count_i
/// in_sum2  = mean * count
/// ```
///
/// So only the ratios of the weights matter, a source missing a tensor leaves the others'
/// weights renormalised for it, and the stored count keeps the true number of tokens behind
/// the entry. Sources of weight 0 are ignored. Arithmetic is in `f64`, stored as `f32`.
/// `chunk_count` is the sum of the used sources' and the datasets are concatenated.
///
/// # Errors
/// [`ImatrixError::NoInput`] for an empty list, [`ImatrixError::InvalidWeight`] for a
/// negative, NaN or infinite weight or when all are 0, [`ImatrixError::ChunkSizeMismatch`],
/// and [`ImatrixError::ShapeMismatch`] when a tensor has different shapes in two sources.
///
/// # Examples
/// ```
/// use imatrix_collect::{mix, Imatrix, ImatrixEntry};
///
/// let mut en = Imatrix::new(512);
/// en.insert("blk.0.ffn_up.weight", ImatrixEntry::new("blk.0.ffn_up.weight", 2, vec![100.0, 400.0], vec![100])?);
/// let mut ja = Imatrix::new(512);
/// ja.insert("blk.0.ffn_up.weight", ImatrixEntry::new("blk.0.ffn_up.weight", 2, vec![4000.0, 0.0], vec![400])?);
///
/// let mixed = mix(&[(&en, 0.5), (&ja, 0.5)])?;
/// let importance = mixed.importance_for("blk.0.ffn_up.weight", 2)?.unwrap();
/// assert_eq!(importance, vec![5.5, 2.0]); // (1 + 10) / 2 and (4 + 0) / 2
/// # Ok::<(), imatrix_collect::ImatrixError>(())
/// ```
pub fn mix(sources: &[(&Imatrix, f64)]) -> Result<Imatrix, ImatrixError> {
    let first = sources.first().ok_or(ImatrixError::NoInput)?.0;

    for (index, &(source, weight)) in sources.iter().enumerate() {
        if !weight.is_finite() || weight < 0.0 {
            return Err(ImatrixError::InvalidWeight { index, weight });
        }
        if source.chunk_size() != first.chunk_size() {
            return Err(ImatrixError::ChunkSizeMismatch {
                first: first.chunk_size(),
                second: source.chunk_size(),
            });
        }
    }

    let used: Vec<(&Imatrix, f64)> = sources
        .iter()
        .copied()
        .filter(|&(_, weight)| weight > 0.0)
        .collect();
    if used.is_empty() {
        return Err(ImatrixError::InvalidWeight {
            index: 0,
            weight: 0.0,
        });
    }

    let mut mixed = Imatrix::new(first.chunk_size());
    let mut names: Vec<&String> = used
        .iter()
        .flat_map(|(source, _)| source.entries().keys())
        .collect();
    names.sort();
    names.dedup();

    for name in names {
        let entry = mix_entry(name, &used)?;
        mixed.insert(name.clone(), entry);
    }

    let chunk_count = used
        .iter()
        .map(|(source, _)| source.chunk_count())
        .fold(0u32, u32::saturating_add);
    mixed.set_chunk_count(chunk_count);
    for (source, _) in &used {
        for dataset in source.datasets() {
            mixed.push_dataset(dataset.clone());
        }
    }
    Ok(mixed)
}

/// Mixes one tensor over the sources that have it.
fn mix_entry(name: &str, sources: &[(&Imatrix, f64)]) -> Result<ImatrixEntry, ImatrixError> {
    let present: Vec<(&ImatrixEntry, f64)> = sources
        .iter()
        .filter_map(|&(source, weight)| source.entry(name).map(|entry| (entry, weight)))
        .collect();
    let (shape_entry, _) = present[0];
    let (n_cols, n_mat) = (shape_entry.n_cols(), shape_entry.n_mat());

    for (entry, _) in &present {
        if entry.n_cols() != n_cols || entry.n_mat() != n_mat {
            return Err(ImatrixError::ShapeMismatch {
                tensor: name.to_owned(),
                detail: format!(
                    "sources disagree on the shape: [{n_cols} x {n_mat}] and [{} x {}] (n_cols x n_mat)",
                    entry.n_cols(),
                    entry.n_mat()
                ),
            });
        }
    }

    let mut in_sum2 = Vec::with_capacity(n_cols * n_mat);
    let mut counts = Vec::with_capacity(n_mat);
    for mat in 0..n_mat {
        let columns = mat * n_cols..(mat + 1) * n_cols;
        let mut mean = vec![0.0f64; n_cols];
        let mut weight_sum = 0.0f64;
        let mut count_sum = 0u64;

        for (entry, weight) in &present {
            let count = entry.counts()[mat];
            if count == 0 {
                continue;
            }
            let scale = weight / count as f64;
            for (acc, &sum) in mean.iter_mut().zip(&entry.in_sum2()[columns.clone()]) {
                *acc += scale * f64::from(sum);
            }
            weight_sum += weight;
            count_sum += count;
        }

        if weight_sum > 0.0 {
            let to_sum = count_sum as f64 / weight_sum;
            in_sum2.extend(mean.iter().map(|&m| (m * to_sum) as f32));
        } else {
            in_sum2.extend(std::iter::repeat(0.0).take(n_cols));
        }
        counts.push(count_sum);
    }

    ImatrixEntry::new(name, n_cols, in_sum2, counts)
}
