//! Choosing a detector reading on the calibration half only (papers.md §7 D5: "never tune K
//! or τ on the test half"): among candidate readings (Hal windows K, posterior-variance
//! steps), the one whose score has the highest TPR at the D5 threshold τ on the even-index
//! samples, ties to the higher calibration AUROC, then the earlier candidate.

use anyhow::{Context, Result};

use super::{D5Config, auroc, d5_threshold};

/// The window K among `candidates` whose Hal has the highest TPR at the D5 threshold on the
/// calibration (even-index) half, ties to the higher calibration AUROC, then the earlier
/// candidate.
///
/// # Errors
/// No candidates or a metrics error.
pub fn best_window_on_calibration(
    candidates: &[usize],
    scores: &[Vec<f32>],
    hallucinated: &[bool],
) -> Result<usize> {
    let mut best: Option<(f64, f64, usize)> = None;
    for (&k, s) in candidates.iter().zip(scores) {
        let cal_s: Vec<f32> = s.iter().step_by(2).copied().collect();
        let cal_h: Vec<bool> = hallucinated.iter().step_by(2).copied().collect();
        let inn: Vec<f32> = cal_s
            .iter()
            .zip(&cal_h)
            .filter(|(_, h)| !**h)
            .map(|(s, _)| *s)
            .collect();
        let (tau, _) = d5_threshold(&inn, D5Config::PAPER.keep_percent)?;
        let pos: Vec<f32> = cal_s
            .iter()
            .zip(&cal_h)
            .filter(|(_, h)| **h)
            .map(|(s, _)| *s)
            .collect();
        let tpr = if pos.is_empty() {
            0.0
        } else {
            pos.iter().filter(|&&v| v > tau || !v.is_finite()).count() as f64 / pos.len() as f64
        };
        let au = if pos.is_empty() || inn.is_empty() {
            0.0
        } else {
            auroc(&cal_s, &cal_h)?
        };
        if best.is_none_or(|(bt, ba, _)| tpr > bt || (tpr == bt && au > ba)) {
            best = Some((tpr, au, k));
        }
    }
    best.map(|b| b.2).context("no candidate Hal windows")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_window_uses_the_calibration_half_only() {
        // Window A separates perfectly on even (calibration) indices and is useless on odd
        // ones; window B is the opposite. The choice must follow the calibration half.
        let n = 400;
        let hallucinated: Vec<bool> = (0..n).map(|i| (i / 2) % 5 == 0).collect();
        let a: Vec<f32> = (0..n)
            .map(|i| {
                let good = if hallucinated[i] { 10.0 } else { 1.0 };
                if i % 2 == 0 { good } else { (i % 7) as f32 }
            })
            .collect();
        let b: Vec<f32> = (0..n)
            .map(|i| {
                let good = if hallucinated[i] { 10.0 } else { 1.0 };
                if i % 2 == 1 { good } else { (i % 7) as f32 }
            })
            .collect();
        assert_eq!(
            best_window_on_calibration(&[3, 8], &[a.clone(), b.clone()], &hallucinated).unwrap(),
            3
        );
        assert_eq!(
            best_window_on_calibration(&[8, 3], &[b, a], &hallucinated).unwrap(),
            3
        );
        assert!(best_window_on_calibration(&[], &[], &hallucinated).is_err());
    }
}
