//! Mode coverage: how many modes received at least `min_count` in-support samples
//! (a collapse diagnostic for recursive training), and the nearest-mode index
//! argmin_k ‖x − μ_k‖₂.

use serde::{Deserialize, Serialize};

use super::Label;

/// In-support counts per mode and how many modes reach `min_count`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// In-support samples of each mode.
    pub per_mode: Vec<usize>,
    /// The threshold used.
    pub min_count: usize,
    /// Modes with at least `min_count` in-support samples.
    pub covered: usize,
}

/// Counts in-support labels per mode (out-of-range modes are ignored) for `modes` modes.
#[must_use]
pub fn mode_coverage(labels: &[Label], modes: usize, min_count: usize) -> Coverage {
    let mut per_mode = vec![0usize; modes];
    for label in labels {
        if let Label::InSupport { mode } = *label
            && let Some(c) = per_mode.get_mut(mode)
        {
            *c += 1;
        }
    }
    let covered = per_mode.iter().filter(|&&c| c >= min_count).count();
    Coverage {
        per_mode,
        min_count,
        covered,
    }
}

/// Index of the mean (k×`dim` row-major `means`) nearest to `x` in Euclidean distance;
/// ties keep the lowest index. `None` if there are no means, `dim` is 0, the lengths do
/// not match, or `x` is not finite.
#[must_use]
pub fn nearest_mode(means: &[f32], dim: usize, x: &[f32]) -> Option<usize> {
    if dim == 0
        || x.len() != dim
        || means.is_empty()
        || !means.len().is_multiple_of(dim)
        || !x.iter().all(|v| v.is_finite())
    {
        return None;
    }
    let mut best: Option<(usize, f64)> = None;
    for (k, mu) in means.chunks_exact(dim).enumerate() {
        let d2: f64 = x
            .iter()
            .zip(mu)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        if best.is_none_or(|(_, bd)| d2 < bd) {
            best = Some((k, d2));
        }
    }
    best.map(|(k, _)| k)
}
