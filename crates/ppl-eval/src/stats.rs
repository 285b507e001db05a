//! The summary statistics llama-perplexity reports, with its exact conventions.

use serde::{Deserialize, Serialize};

/// A mean with its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The mean.
    pub value: f64,
    /// The standard error of the mean; 0 where llama.cpp reports none.
    pub uncertainty: f64,
}

/// Minimum sample size for which llama.cpp reports an uncertainty.
const MIN_COUNT_FOR_UNCERTAINTY: usize = 11;

/// Minimum sample size for which llama.cpp reports a covariance.
const MIN_COUNT_FOR_COVARIANCE: usize = 10;

/// Returns the mean of `count` values and its standard error from their sum
/// and sum of squares.
///
/// The error is `sqrt((sum2/count − mean²)/(count − 1))`, and 0 when that
/// variance is not positive or `count <= 10`, as in llama.cpp's KL-divergence
/// report. An empty sample gives `0 ± 0`.
pub(crate) fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> Estimate {
    if count == 0 {
        return Estimate {
            value: 0.0,
            uncertainty: 0.0,
        };
    }

    let n = count as f64;
    let value = sum / n;
    let variance = sum2 / n - value * value;
    let uncertainty = if variance > 0.0 && count >= MIN_COUNT_FOR_UNCERTAINTY {
        (variance / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Estimate { value, uncertainty }
}

/// Returns the covariance of two sample means from their sums, 0 below 10 values.
pub(crate) fn covariance(sum_a: f64, sum_b: f64, sum_ab: f64, count: usize) -> f64 {
    if count < MIN_COUNT_FOR_COVARIANCE {
        return 0.0;
    }
    let n = count as f64;
    (sum_ab / n - (sum_a / n) * (sum_b / n)) / (n - 1.0)
}

/// Returns the value at `fraction` of sorted `values`, interpolating linearly
/// between neighbours at index `fraction · (len − 1)`, in f32 as llama.cpp does.
///
/// `values` must be sorted ascending and non-empty.
pub(crate) fn percentile(values: &[f32], fraction: f32) -> f32 {
    if fraction <= 0.0 {
        return values[0];
    }
    if fraction >= 1.0 {
        return values[values.len() - 1];
    }

    let position = fraction * (values.len() - 1) as f32;
    let lower = position as usize;
    let weight = position - lower as f32;
    let upper = (lower + 1).min(values.len() - 1);
    (1.0 - weight) * values[lower] + weight * values[upper]
}

/// Returns the median of sorted, non-empty `values`: the mean of the two
/// middle values for an even count.
pub(crate) fn median(values: &[f32]) -> f32 {
    let middle = values.len() / 2;
    if values.len() % 2 == 0 {
        0.5 * (values[middle] + values[middle - 1])
    } else {
        values[middle]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_linearly() {
        let values = [0.0_f32, 10.0, 20.0, 30.0, 40.0];
        assert_eq!(percentile(&values, 0.5), 20.0);
        assert!((percentile(&values, 0.1) - 4.0).abs() < 1e-5);
        assert_eq!(percentile(&values, 0.0), 0.0);
        assert_eq!(percentile(&values, 1.0), 40.0);
    }

    #[test]
    fn median_of_even_count() {
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(median(&[1.0, 2.0, 3.0]), 2.0);
    }

    #[test]
    fn uncertainty_needs_eleven_values() {
        let ten = mean_and_uncertainty(5.0, 5.0 * 5.0 + 1.0, 10);
        assert_eq!(ten.uncertainty, 0.0);

        let values: Vec<f64> = (0..11).map(f64::from).collect();
        let sum: f64 = values.iter().sum();
        let sum2: f64 = values.iter().map(|v| v * v).sum();
        let estimate = mean_and_uncertainty(sum, sum2, 11);
        assert_eq!(estimate.value, 5.0);
        // Population variance 10, so the error is sqrt(10 / 10) = 1.
        assert!((estimate.uncertainty - 1.0).abs() < 1e-12);
    }
}
