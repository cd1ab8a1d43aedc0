//! Summaries of timing samples.

use std::time::Duration;

/// The value at quantile `q` (0 < q <= 1) of `sorted` (ascending), by the
/// nearest-rank method: the smallest sample with at least `q` of all
/// samples at or below it. So p50 of 1..=100 is 50 and p99 is 99.
///
/// # Panics
/// If `sorted` is empty or `q` is outside (0, 1].
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    assert!(q > 0.0 && q <= 1.0, "quantile {q} is outside (0, 1]");
    debug_assert!(sorted.is_sorted(), "samples must be sorted");
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Percentiles and mean of a set of durations, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

impl Summary {
    /// Summarizes `samples` (in any order; at least one).
    pub fn of(samples: &[Duration]) -> Self {
        let mut micros: Vec<f64> = samples.iter().map(|d| d.as_nanos() as f64 / 1e3).collect();
        micros.sort_by(f64::total_cmp);
        Summary {
            p50_us: percentile(&micros, 0.50),
            p99_us: percentile(&micros, 0.99),
            mean_us: micros.iter().sum::<f64>() / micros.len() as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.50), 50.0);
        assert_eq!(percentile(&hundred, 0.99), 99.0);
        assert_eq!(percentile(&hundred, 1.0), 100.0);
        assert_eq!(percentile(&hundred, 0.001), 1.0);
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 0.5), 5.0);
        assert_eq!(percentile(&ten, 0.51), 6.0);
        assert_eq!(percentile(&ten, 0.99), 10.0);
        assert_eq!(percentile(&[7.0], 0.5), 7.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    #[should_panic(expected = "no samples")]
    fn no_samples_is_an_error() {
        percentile(&[], 0.5);
    }

    #[test]
    fn summary_sorts_and_averages() {
        let mut samples: Vec<Duration> = (1..=200).rev().map(Duration::from_micros).collect();
        samples.swap(3, 150);
        let summary = Summary::of(&samples);
        assert_eq!(summary.p50_us, 100.0);
        assert_eq!(summary.p99_us, 198.0);
        assert!((summary.mean_us - 100.5).abs() < 1e-9);
    }

    #[test]
    fn one_slow_outlier_moves_the_mean_not_the_median() {
        let mut samples = vec![Duration::from_micros(10); 999];
        samples.push(Duration::from_millis(10));
        let summary = Summary::of(&samples);
        assert_eq!(summary.p50_us, 10.0);
        assert_eq!(summary.p99_us, 10.0);
        assert!(summary.mean_us > 19.0);
    }
}
