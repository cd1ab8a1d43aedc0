//! A histogram as Prometheus exposes one: observations counted in buckets
//! with upper bounds, plus their sum. It carries its bounds, so whoever
//! reads it (the metrics, from a worker's heartbeat) needs no table of them.

use serde::{Deserialize, Serialize};

/// Bucket bounds of a task attempt's wall time, seconds.
pub const RUNTIME_BOUNDS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];
/// Bucket bounds of an attempt's fuel (WebAssembly instructions, roughly).
pub const FUEL_BOUNDS: &[f64] = &[1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11];
/// Bucket bounds of an attempt's peak linear memory, bytes (1 MiB to 4 GiB).
pub const MEMORY_BOUNDS_BYTES: &[f64] = &[
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
    4294967296.0,
];
/// Bucket bounds of a model batch's latency, seconds.
pub const BATCH_BOUNDS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Observations in buckets. `counts[i]` counts the values in
/// `(bounds[i-1], bounds[i]]`; the last count, those above every bound.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Upper bounds, increasing.
    pub bounds: Vec<f64>,
    /// One count per bound, then one for the values above the last.
    pub counts: Vec<u64>,
    /// The sum of the values.
    pub sum: f64,
}

impl Histogram {
    /// An empty histogram with `bounds`.
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    /// Counts `value`.
    pub fn observe(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.counts.get_mut(bucket) {
            *count += 1;
            self.sum += value;
        }
    }

    /// How many values were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// (bound, values at or under it) for every bound, as Prometheus's
    /// cumulative `le` buckets; `+Inf` is [`Histogram::count`].
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds
            .iter()
            .zip(self.counts.iter().scan(0, |total, count| {
                *total += count;
                Some(*total)
            }))
            .map(|(bound, total)| (*bound, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        let mut h = Histogram::new(&[1.0, 10.0]);
        for value in [0.5, 1.0, 3.0, 10.0, 11.0] {
            h.observe(value);
        }
        assert_eq!(h.counts, [2, 2, 1]);
        assert_eq!((h.count(), h.sum), (5, 25.5));
        assert_eq!(h.cumulative().collect::<Vec<_>>(), [(1.0, 2), (10.0, 4)]);
    }

    #[test]
    fn a_histogram_read_with_missing_counts_counts_nothing_wrongly() {
        let mut h = Histogram::default();
        h.observe(3.0);
        assert_eq!((h.count(), h.sum), (0, 0.0), "no bucket, no count");
    }
}
