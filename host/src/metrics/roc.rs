//! ROC curve and AUROC.
//!
//! AUROC = (1/(n₊n₋)) Σ_{i∈+, j∈−} ([s_i > s_j] + ½[s_i = s_j]), the Mann–Whitney U
//! statistic with ties counted ½, computed exactly in integers over tie groups
//! (O(n log n)).

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

use super::{check_inputs, tie_groups};

/// One operating point: flag iff score > `threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// Threshold (±∞ saturate to ±`f32::MAX` so the curve serialises to JSON).
    pub threshold: f32,
    /// False-positive rate: flagged in-support / in-support.
    pub fpr: f64,
    /// True-positive rate: flagged hallucinated / hallucinated.
    pub tpr: f64,
}

/// A ROC curve from (0, 0) to (1, 1), one point per distinct score plus the endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// Points in order of increasing fpr (decreasing threshold).
    pub points: Vec<RocPoint>,
}

fn saturate(t: f32) -> f32 {
    t.clamp(-f32::MAX, f32::MAX)
}

impl RocCurve {
    /// At most `max_points` points (≥ 2) picked evenly along the curve, always keeping
    /// the first and last, for plots and reports.
    #[must_use]
    pub fn thinned(&self, max_points: usize) -> Self {
        let n = self.points.len();
        let max_points = max_points.max(2);
        if n <= max_points {
            return self.clone();
        }
        let points = (0..max_points)
            .map(|j| self.points[(j * (n - 1) + (max_points - 1) / 2) / (max_points - 1)])
            .collect();
        Self { points }
    }

    /// Trapezoidal area under the curve (equals [`auroc`] for the full curve).
    #[must_use]
    pub fn area(&self) -> f64 {
        self.points
            .windows(2)
            .map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) * 0.5)
            .sum()
    }
}

/// The ROC curve of `scores` against `positive` (true = hallucinated).
///
/// # Errors
/// Length mismatch, a NaN score, or a class with no samples.
pub fn roc_curve(scores: &[f32], positive: &[bool]) -> Result<RocCurve> {
    check_inputs(scores, positive)?;
    let groups = tie_groups(scores, positive);
    let n_pos: u64 = groups.iter().map(|g| g.0).sum();
    let n_neg: u64 = groups.iter().map(|g| g.1).sum();
    ensure!(
        n_pos > 0 && n_neg > 0,
        "ROC needs both classes: {n_pos} hallucinated, {n_neg} in-support"
    );
    let mut points = Vec::with_capacity(groups.len() + 1);
    let (mut tp, mut fp) = (0u64, 0u64);
    for &(p, n, s) in &groups {
        // Flag iff score > s: everything in earlier (higher) groups.
        points.push(RocPoint {
            threshold: saturate(s),
            fpr: fp as f64 / n_neg as f64,
            tpr: tp as f64 / n_pos as f64,
        });
        tp += p;
        fp += n;
    }
    // Endpoint: everything flagged; the threshold sits below every finite score.
    points.push(RocPoint {
        threshold: -f32::MAX,
        fpr: 1.0,
        tpr: 1.0,
    });
    Ok(RocCurve { points })
}

/// AUROC by the Mann–Whitney U statistic, ties ½.
///
/// # Errors
/// Length mismatch, a NaN score, or a class with no samples.
pub fn auroc(scores: &[f32], positive: &[bool]) -> Result<f64> {
    check_inputs(scores, positive)?;
    let groups = tie_groups(scores, positive);
    let n_pos: u64 = groups.iter().map(|g| g.0).sum();
    let n_neg: u64 = groups.iter().map(|g| g.1).sum();
    ensure!(
        n_pos > 0 && n_neg > 0,
        "AUROC needs both classes: {n_pos} hallucinated, {n_neg} in-support"
    );
    // Twice U: each positive beats every negative in lower groups (2) and ties its own (1).
    let mut neg_below: u64 = n_neg;
    let mut twice_u: u128 = 0;
    for &(p, n, _) in &groups {
        neg_below -= n;
        twice_u += u128::from(p) * (2 * u128::from(neg_below) + u128::from(n));
    }
    Ok(twice_u as f64 / (2.0 * n_pos as f64 * n_neg as f64))
}
