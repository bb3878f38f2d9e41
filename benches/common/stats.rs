//! Paired statistics for the bench binaries: each round runs every implementation once,
//! so a slow moment of the machine hits all of them alike, and the per-round ratio (or
//! difference) is what is summarised.
#![allow(dead_code)] // each bench uses a subset

use std::time::Duration;

/// The median of per-round values, with a distribution-free 95% confidence interval
/// (order statistics at n/2 ± 0.98·√n).
pub fn median_ci(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len() as f64;
    let half = 0.98 * n.sqrt();
    let at = |rank: f64| v[(rank.max(0.0) as usize).min(v.len() - 1)];
    (
        at(((n - 1.0) * 0.5).round()),
        at((n / 2.0 - half).floor()),
        at((n / 2.0 + half).ceil()),
    )
}

/// Median and 95% CI of `a[r] / b[r]` over rounds `r`: each pair ran within one round.
pub fn paired_ratio(a: &[Duration], b: &[Duration]) -> (f64, f64, f64) {
    median_ci(
        a.iter()
            .zip(b)
            .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
            .collect(),
    )
}

/// Median and 95% CI of `a[r] − b[r]` in µs over rounds `r`.
pub fn paired_difference(a: &[Duration], b: &[Duration]) -> (f64, f64, f64) {
    median_ci(
        a.iter()
            .zip(b)
            .map(|(a, b)| (a.as_secs_f64() - b.as_secs_f64()) * 1e6)
            .collect(),
    )
}
