//! Detector scoring (papers.md §7 D5): ROC curve and AUROC (Mann–Whitney, ties ½),
//! AUPRC (average precision), the paper's "removes >95% at 96% kept" operating point,
//! and quantiles.
//!
//! Convention everywhere: the *positive* class is "hallucinated", a higher score means
//! "more likely hallucinated", and a sample is flagged iff score > threshold (as core's
//! `Hal::flagged`). Scores may be ±∞ (Hal reports a non-finite trajectory as +∞); NaN
//! is an error naming the sample.

mod choose;
mod d5;
mod prc;
mod quantile;
mod roc;

pub use choose::best_window_on_calibration;
pub use d5::{D5Config, D5Report, Verdict, d5_threshold, score_d5};
pub use prc::auprc;
pub use quantile::{kth_smallest, quantile_sorted, quantiles};
pub use roc::{RocCurve, RocPoint, auroc, roc_curve};

use anyhow::{Result, bail, ensure};

/// Checks that `scores` and `positive` pair up and no score is NaN.
fn check_inputs(scores: &[f32], positive: &[bool]) -> Result<()> {
    ensure!(
        scores.len() == positive.len(),
        "{} scores but {} labels",
        scores.len(),
        positive.len()
    );
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        bail!("score of sample {i} is NaN (a non-finite detector score should be +inf)");
    }
    Ok(())
}

/// Indices sorted by score, descending (ties in index order).
fn order_descending(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Groups of equal score in descending order: (positives, negatives, score) per group.
fn tie_groups(scores: &[f32], positive: &[bool]) -> Vec<(u64, u64, f32)> {
    let mut groups: Vec<(u64, u64, f32)> = Vec::new();
    for i in order_descending(scores) {
        let s = scores[i];
        let (p, n) = (u64::from(positive[i]), u64::from(!positive[i]));
        match groups.last_mut() {
            // == (not total_cmp) so −0.0 and 0.0 tie.
            Some(g) if g.2 == s => {
                g.0 += p;
                g.1 += n;
            }
            _ => groups.push((p, n, s)),
        }
    }
    groups
}

#[cfg(test)]
mod tests;
