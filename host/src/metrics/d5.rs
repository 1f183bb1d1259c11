//! D5 (papers.md §7): the threshold and scoring behind "removes >95% of hallucinations
//! while keeping 96% of in-support samples".
//!
//! Samples are split by index parity: even indices calibrate, odd indices test.
//! τ = the ⌈0.96·n_in⌉-th smallest score among the in-support calibration samples
//! (integer ceiling, no float rounding). A sample is flagged iff score > τ or its score
//! is not finite. On the test half: TNR = P(score ≤ τ | in), TPR = P(score > τ | hal),
//! precision = TP/(TP+FP), base rate = hal/n, AUROC, AUPRC and the ROC curve.
//! Pass: TPR ≥ 0.95 and TNR ≥ 0.955. Fewer than 100 test hallucinations: inconclusive.

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::{RocCurve, auprc, auroc, check_inputs, kth_smallest, roc_curve};

/// Points kept in the report's ROC curve.
const REPORT_ROC_POINTS: usize = 1025;

/// The knobs of D5; [`D5Config::PAPER`] is the paper's operating point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct D5Config {
    /// Percent of in-support calibration samples kept (τ's rank is ⌈keep·n_in/100⌉).
    pub keep_percent: u32,
    /// Fewer test hallucinations than this make the result inconclusive.
    pub min_test_hallucinations: usize,
    /// Pass needs TPR ≥ this …
    pub pass_tpr: f64,
    /// … and TNR ≥ this.
    pub pass_tnr: f64,
}

impl D5Config {
    /// 96% kept, ≥ 100 test hallucinations, pass at TPR ≥ 0.95 and TNR ≥ 0.955.
    pub const PAPER: Self = Self {
        keep_percent: 96,
        min_test_hallucinations: 100,
        pass_tpr: 0.95,
        pass_tnr: 0.955,
    };
}

impl Default for D5Config {
    fn default() -> Self {
        Self::PAPER
    }
}

/// Outcome of D5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// TPR and TNR reach the paper's figure.
    Pass,
    /// They do not.
    Fail,
    /// Too few test hallucinations to tell: sample more.
    Inconclusive,
}

/// Everything D5 reports. Rates are `None` when their denominator is 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct D5Report {
    /// The configuration used.
    pub config: D5Config,
    /// Samples scored (both halves).
    pub n: usize,
    /// In-support samples in the calibration (even) half.
    pub calibration_in: usize,
    /// Hallucinated samples in the calibration half (unused for τ).
    pub calibration_hallucinated: usize,
    /// τ; +∞ saturates to `f32::MAX` (flagging then means "score not finite").
    pub threshold: f32,
    /// Rank of τ among the in-support calibration scores (1-based).
    pub threshold_rank: usize,
    /// In-support samples in the test (odd) half.
    pub test_in: usize,
    /// Hallucinated samples in the test half.
    pub test_hallucinated: usize,
    /// Test hallucinations flagged.
    pub true_positives: usize,
    /// Test in-support samples flagged.
    pub false_positives: usize,
    /// P(score ≤ τ | in) on the test half.
    pub tnr: Option<f64>,
    /// P(score > τ | hallucinated) on the test half.
    pub tpr: Option<f64>,
    /// Flagged test samples that are hallucinations.
    pub precision: Option<f64>,
    /// Fraction of test samples that are hallucinations.
    pub base_rate: Option<f64>,
    /// AUROC on the test half (Mann–Whitney, ties ½).
    pub auroc: Option<f64>,
    /// AUPRC (average precision) on the test half.
    pub auprc: Option<f64>,
    /// ROC curve on the test half, thinned to ≤ 1025 points.
    pub roc: Option<RocCurve>,
    /// Pass, fail or inconclusive.
    pub verdict: Verdict,
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// τ from in-support calibration scores: the ⌈keep_percent·n/100⌉-th smallest.
/// Returns (τ, rank).
///
/// # Errors
/// No scores, a NaN score, or `keep_percent` outside 1..=100.
pub fn d5_threshold(in_support_scores: &[f32], keep_percent: u32) -> Result<(f32, usize)> {
    ensure!(
        (1..=100).contains(&keep_percent),
        "keep percentage {keep_percent} must be in 1..=100"
    );
    let n = in_support_scores.len();
    ensure!(
        n > 0,
        "no in-support calibration samples to set the threshold from"
    );
    let rank = (n * keep_percent as usize).div_ceil(100);
    Ok((kth_smallest(in_support_scores, rank)?, rank))
}

/// Scores a detector by D5: `scores[i]` of sample i, `hallucinated[i]` its label.
///
/// # Errors
/// Length mismatch, a NaN score, no in-support calibration sample, or a bad config.
pub fn score_d5(scores: &[f32], hallucinated: &[bool], config: &D5Config) -> Result<D5Report> {
    check_inputs(scores, hallucinated)?;
    if !(config.pass_tpr.is_finite() && config.pass_tnr.is_finite()) {
        bail!("D5 pass levels must be finite");
    }
    let calibration_in: Vec<f32> = scores
        .iter()
        .zip(hallucinated)
        .step_by(2)
        .filter(|(_, h)| !**h)
        .map(|(s, _)| *s)
        .collect();
    let calibration_hallucinated = hallucinated.iter().step_by(2).filter(|h| **h).count();
    let (tau, threshold_rank) = d5_threshold(&calibration_in, config.keep_percent)?;
    let flagged = |s: f32| s > tau || !s.is_finite();

    let test_scores: Vec<f32> = scores.iter().skip(1).step_by(2).copied().collect();
    let test_labels: Vec<bool> = hallucinated.iter().skip(1).step_by(2).copied().collect();
    let test_hallucinated = test_labels.iter().filter(|h| **h).count();
    let test_in = test_labels.len() - test_hallucinated;
    let (mut tp, mut fp) = (0usize, 0usize);
    for (&s, &h) in test_scores.iter().zip(&test_labels) {
        if flagged(s) {
            if h {
                tp += 1;
            } else {
                fp += 1;
            }
        }
    }
    let both = test_in > 0 && test_hallucinated > 0;
    let tpr = ratio(tp, test_hallucinated);
    let tnr = ratio(test_in - fp, test_in);
    let verdict = if test_hallucinated < config.min_test_hallucinations {
        Verdict::Inconclusive
    } else if tpr.is_some_and(|r| r >= config.pass_tpr) && tnr.is_some_and(|r| r >= config.pass_tnr)
    {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    Ok(D5Report {
        config: *config,
        n: scores.len(),
        calibration_in: calibration_in.len(),
        calibration_hallucinated,
        threshold: tau.clamp(-f32::MAX, f32::MAX),
        threshold_rank,
        test_in,
        test_hallucinated,
        true_positives: tp,
        false_positives: fp,
        tnr,
        tpr,
        precision: ratio(tp, tp + fp),
        base_rate: ratio(test_hallucinated, test_labels.len()),
        auroc: if both {
            Some(auroc(&test_scores, &test_labels)?)
        } else {
            None
        },
        auprc: if test_hallucinated > 0 {
            Some(auprc(&test_scores, &test_labels)?)
        } else {
            None
        },
        roc: if both {
            Some(roc_curve(&test_scores, &test_labels)?.thinned(REPORT_ROC_POINTS))
        } else {
            None
        },
        verdict,
    })
}
