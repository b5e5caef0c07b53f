//! Medians and spreads over repeated runs.

use serde::Serialize;

/// A measurement repeated over several runs: every run's value, their median, minimum and
/// maximum.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest run.
    pub min: f64,
    /// The largest run.
    pub max: f64,
    /// Every run, in run order.
    pub runs: Vec<f64>,
}

impl Sample {
    /// The sample of `runs` (NaN values, from runs that could not measure, are left out).
    pub fn of(runs: Vec<f64>) -> Self {
        let mut sorted: Vec<f64> = runs.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
        };
        Self {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            runs,
        }
    }

    /// Per-run ratios `self / other` (runs paired by index, so each ratio comes from one run).
    #[must_use]
    pub fn ratio_to(&self, other: &Self) -> Self {
        Self::of(
            self.runs
                .iter()
                .zip(&other.runs)
                .map(|(a, b)| if *b == 0.0 { f64::NAN } else { a / b })
                .collect(),
        )
    }

    /// Each run mapped by `f`.
    #[must_use]
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        Self::of(self.runs.iter().map(|v| f(*v)).collect())
    }

    /// `median (min-max)` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        if self.median.is_nan() {
            return "n/a".into();
        }
        if self.runs.len() < 2 {
            return format!("{:.digits$}", self.median);
        }
        format!(
            "{:.digits$} ({:.digits$}-{:.digits$})",
            self.median, self.min, self.max
        )
    }

    /// The median alone, with `digits` decimals.
    pub fn show_median(&self, digits: usize) -> String {
        if self.median.is_nan() {
            "n/a".into()
        } else {
            format!("{:.digits$}", self.median)
        }
    }
}

#[cfg(test)]
#[expect(clippy::float_cmp, reason = "exact values of exact arithmetic")]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(Sample::of(vec![3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(Sample::of(vec![4.0, 1.0, 2.0, 3.0]).median, 2.5);
        let s = Sample::of(vec![5.0, f64::NAN, 1.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
        assert!(Sample::of(vec![]).median.is_nan());
    }

    #[test]
    fn ratios_pair_runs() {
        let a = Sample::of(vec![2.0, 4.0, 9.0]);
        let b = Sample::of(vec![1.0, 2.0, 3.0]);
        assert_eq!(a.ratio_to(&b).runs, vec![2.0, 2.0, 3.0]);
        assert_eq!(a.ratio_to(&b).median, 2.0);
        assert_eq!(a.show(1), "4.0 (2.0-9.0)");
    }
}
