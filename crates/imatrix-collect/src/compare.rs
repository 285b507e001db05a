//! Comparison of two importance matrices, tensor by tensor.

use std::fmt;

use serde::Serialize;

use crate::error::ImatrixError;
use crate::imatrix::Imatrix;

/// Share of columns that the top-columns overlap looks at: the top 1%.
pub const TOP_FRACTION: f64 = 0.01;

/// Agreement of one tensor's importance vectors (mean squares) in two imatrices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorComparison {
    /// Weight tensor name.
    pub name: String,
    /// Values compared (n_cols x n_mat).
    pub n_values: usize,
    /// Largest per-matrix count in the first imatrix.
    pub count_a: u64,
    /// Largest per-matrix count in the second imatrix.
    pub count_b: u64,
    /// Cosine similarity of the mean-square vectors; `None` when one vector is all zero.
    pub cosine: Option<f64>,
    /// Spearman rank correlation (ties get their average rank); `None` when one vector is
    /// constant.
    pub spearman: Option<f64>,
    /// Share (0..=1) of the top-1% columns of the first imatrix that are also among the
    /// top-1% of the second (at least one column is always compared).
    pub top_overlap: f64,
}

/// A tensor whose shape differs between the two imatrices, as `[n_cols, n_mat]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeDifference {
    /// Weight tensor name.
    pub name: String,
    /// Shape in the first imatrix.
    pub shape_a: [usize; 2],
    /// Shape in the second imatrix.
    pub shape_b: [usize; 2],
}

/// Result of [`compare`]: per-tensor agreement plus the tensors that could not be compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImatrixComparison {
    /// Tensors present in both with equal shapes, sorted by name.
    pub tensors: Vec<TensorComparison>,
    /// Tensors only in the first imatrix.
    pub only_in_a: Vec<String>,
    /// Tensors only in the second imatrix.
    pub only_in_b: Vec<String>,
    /// Tensors in both whose shapes differ.
    pub shape_differences: Vec<ShapeDifference>,
}

impl ImatrixComparison {
    /// Returns the smallest cosine similarity over the compared tensors (`None` when none has
    /// one).
    pub fn min_cosine(&self) -> Option<f64> {
        self.tensors
            .iter()
            .filter_map(|t| t.cosine)
            .reduce(f64::min)
    }

    /// Returns the mean Spearman correlation over the tensors that have one.
    pub fn mean_spearman(&self) -> Option<f64> {
        mean(self.tensors.iter().filter_map(|t| t.spearman))
    }

    /// Returns the mean top-1% overlap over the compared tensors.
    pub fn mean_top_overlap(&self) -> Option<f64> {
        mean(self.tensors.iter().map(|t| t.top_overlap))
    }

    /// Serialises the comparison as pretty-printed JSON.
    ///
    /// # Errors
    /// [`ImatrixError::Json`] if serialisation fails.
    pub fn to_json(&self) -> Result<String, ImatrixError> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(sum, n), v| (sum + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn format_option(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.8}"))
}

impl fmt::Display for ImatrixComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        writeln!(
            f,
            "{:<width$}  {:>8}  {:>10}  {:>10}  {:>11}  {:>11}  {:>7}",
            "tensor", "values", "count_a", "count_b", "cosine", "spearman", "top1%"
        )?;
        for t in &self.tensors {
            writeln!(
                f,
                "{:<width$}  {:>8}  {:>10}  {:>10}  {:>11}  {:>11}  {:>7.3}",
                t.name,
                t.n_values,
                t.count_a,
                t.count_b,
                format_option(t.cosine),
                format_option(t.spearman),
                t.top_overlap
            )?;
        }

        writeln!(
            f,
            "{} tensors compared: min cosine {}, mean spearman {}, mean top-1% overlap {}",
            self.tensors.len(),
            format_option(self.min_cosine()),
            format_option(self.mean_spearman()),
            format_option(self.mean_top_overlap())
        )?;
        for name in &self.only_in_a {
            writeln!(f, "only in first: {name}")?;
        }
        for name in &self.only_in_b {
            writeln!(f, "only in second: {name}")?;
        }
        for d in &self.shape_differences {
            writeln!(
                f,
                "shape differs: {} {:?} vs {:?}",
                d.name, d.shape_a, d.shape_b
            )?;
        }
        Ok(())
    }
}

/// Compares two imatrices tensor by tensor on their mean-square vectors
/// (`in_sum2 / count`): cosine similarity, Spearman rank correlation and top-1% overlap.
///
/// # Examples
/// ```
/// use imatrix_collect::{compare, Imatrix, ImatrixEntry};
///
/// let mut a = Imatrix::new(512);
/// a.insert("blk.0.attn_q.weight", ImatrixEntry::new("blk.0.attn_q.weight", 3, vec![1.0, 2.0, 3.0], vec![1])?);
/// let mut b = Imatrix::new(512);
/// b.insert("blk.0.attn_q.weight", ImatrixEntry::new("blk.0.attn_q.weight", 3, vec![2.0, 4.0, 6.0], vec![2])?);
///
/// let report = compare(&a, &b);
/// let tensor = &report.tensors[0];
/// assert!((tensor.cosine.unwrap() - 1.0).abs() < 1e-12);
/// assert!((tensor.spearman.unwrap() - 1.0).abs() < 1e-12);
/// assert_eq!(tensor.top_overlap, 1.0);
/// # Ok::<(), imatrix_collect::ImatrixError>(())
/// ```
pub fn compare(a: &Imatrix, b: &Imatrix) -> ImatrixComparison {
    let mut report = ImatrixComparison {
        tensors: Vec::new(),
        only_in_a: Vec::new(),
        only_in_b: Vec::new(),
        shape_differences: Vec::new(),
    };

    for (name, entry_a) in a.entries() {
        let Some(entry_b) = b.entry(name) else {
            report.only_in_a.push(name.clone());
            continue;
        };

        let shape_a = [entry_a.n_cols(), entry_a.n_mat()];
        let shape_b = [entry_b.n_cols(), entry_b.n_mat()];
        if shape_a != shape_b {
            report.shape_differences.push(ShapeDifference {
                name: name.clone(),
                shape_a,
                shape_b,
            });
            continue;
        }

        let x = entry_a.mean_squares();
        let y = entry_b.mean_squares();
        report.tensors.push(TensorComparison {
            name: name.clone(),
            n_values: x.len(),
            count_a: entry_a.counts().iter().copied().max().unwrap_or(0),
            count_b: entry_b.counts().iter().copied().max().unwrap_or(0),
            cosine: cosine_similarity(&x, &y),
            spearman: spearman(&x, &y),
            top_overlap: top_overlap(&x, &y, TOP_FRACTION),
        });
    }

    report.only_in_b = b
        .entries()
        .keys()
        .filter(|name| a.entry(name).is_none())
        .cloned()
        .collect();
    report
}

/// Computes the cosine similarity of two equal-length vectors in `f64`; `None` when either
/// has norm 0.
pub fn cosine_similarity(x: &[f32], y: &[f32]) -> Option<f64> {
    let mut dot = 0.0f64;
    let mut norm_x = 0.0f64;
    let mut norm_y = 0.0f64;
    for (&a, &b) in x.iter().zip(y) {
        let (a, b) = (f64::from(a), f64::from(b));
        dot += a * b;
        norm_x += a * a;
        norm_y += b * b;
    }

    if norm_x == 0.0 || norm_y == 0.0 {
        return None;
    }
    Some(dot / (norm_x.sqrt() * norm_y.sqrt()))
}

/// Computes the Spearman rank correlation of two equal-length vectors: the Pearson
/// correlation of their ranks, ties ranked by their average position. `None` when either
/// vector is constant or shorter than 2.
pub fn spearman(x: &[f32], y: &[f32]) -> Option<f64> {
    if x.len() < 2 || x.len() != y.len() {
        return None;
    }
    pearson(&ranks(x), &ranks(y))
}

/// Ranks values from 1, giving tied values the mean of their positions.
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));

    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }

        // Positions start..end (0-based) share the mean 1-based rank.
        let rank = (start + end + 1) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = rank;
        }
        start = end;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let mean_x = x.iter().sum::<f64>() / n;
    let mean_y = y.iter().sum::<f64>() / n;

    let mut cov = 0.0;
    let mut var_x = 0.0;
    let mut var_y = 0.0;
    for (&a, &b) in x.iter().zip(y) {
        cov += (a - mean_x) * (b - mean_y);
        var_x += (a - mean_x) * (a - mean_x);
        var_y += (b - mean_y) * (b - mean_y);
    }

    if var_x == 0.0 || var_y == 0.0 {
        return None;
    }
    Some(cov / (var_x.sqrt() * var_y.sqrt()))
}

/// Returns the indices of the `k` largest values, ties broken by the lower index.
fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[j].total_cmp(&values[i]).then(i.cmp(&j)));
    order.truncate(k);
    order.sort_unstable();
    order
}

/// Computes the share of the top `fraction` of columns (at least one) of `x` that are also
/// among the top of `y`.
pub fn top_overlap(x: &[f32], y: &[f32], fraction: f64) -> f64 {
    let n = x.len().min(y.len());
    if n == 0 {
        return 0.0;
    }
    let k = ((n as f64 * fraction).ceil() as usize).clamp(1, n);

    let top_x = top_indices(&x[..n], k);
    let top_y = top_indices(&y[..n], k);
    let shared = top_x
        .iter()
        .filter(|i| top_y.binary_search(i).is_ok())
        .count();
    shared as f64 / k as f64
}
