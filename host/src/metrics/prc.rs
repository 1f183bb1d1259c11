//! AUPRC as average precision: AP = Σ_g (R_g − R_{g−1})·P_g over tie groups g in
//! descending score order, with precision P_g and recall R_g after flagging everything
//! down to and including group g (a tie group enters all at once, as in scikit-learn's
//! `average_precision_score`).

use anyhow::{Result, ensure};

use super::{check_inputs, tie_groups};

/// Average precision of `scores` for the positive (hallucinated) class.
///
/// # Errors
/// Length mismatch, a NaN score, or no positive sample.
pub fn auprc(scores: &[f32], positive: &[bool]) -> Result<f64> {
    check_inputs(scores, positive)?;
    let groups = tie_groups(scores, positive);
    let n_pos: u64 = groups.iter().map(|g| g.0).sum();
    ensure!(n_pos > 0, "AUPRC needs at least one hallucinated sample");
    let (mut tp, mut flagged) = (0u64, 0u64);
    let mut ap = 0.0;
    for &(p, n, _) in &groups {
        tp += p;
        flagged += p + n;
        if p > 0 {
            ap += (p as f64 / n_pos as f64) * (tp as f64 / flagged as f64);
        }
    }
    Ok(ap)
}
