//! D1 (papers.md §7): a 1D sample is a hallucination iff min_k |x − μ_k| > kσ
//! (k = 5, σ = 0.05 ⇒ 0.25). Sub-types: *interpolation* if μ_min < x < μ_max, else
//! *extrapolation*. Components with different σ each use their own radius kσ_k.
//! A non-finite x is a hallucination (extrapolation).

use anyhow::{Result, ensure};

use super::{Kind, Label};
use crate::data::Mixture;

/// The D1 labeller for a 1D mixture.
#[derive(Clone, Debug)]
pub struct LineLabeller {
    means: Vec<f64>,
    radii: Vec<f64>,
    lo: f64,
    hi: f64,
}

impl LineLabeller {
    /// Radius `k`·σ_k around every mean of a 1D `mixture`.
    ///
    /// # Errors
    /// The mixture is not 1D, or `k` is not finite and > 0.
    pub fn new(mixture: &Mixture, k: f64) -> Result<Self> {
        ensure!(
            mixture.dim() == 1,
            "the 1D labeller needs a 1D mixture, '{}' has dimension {}",
            mixture.name(),
            mixture.dim()
        );
        ensure!(
            k.is_finite() && k > 0.0,
            "labeller radius k = {k} must be finite and > 0"
        );
        let means: Vec<f64> = mixture.means().iter().map(|&m| f64::from(m)).collect();
        let radii = mixture.stds().iter().map(|&s| k * f64::from(s)).collect();
        let lo = means.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Ok(Self {
            means,
            radii,
            lo,
            hi,
        })
    }

    /// Labels one value.
    #[must_use]
    pub fn label(&self, x: f32) -> Label {
        let x = f64::from(x);
        let mut nearest = 0;
        let mut best = f64::INFINITY;
        let mut inside: Option<(usize, f64)> = None;
        for (k, (&mu, &r)) in self.means.iter().zip(&self.radii).enumerate() {
            let d = (x - mu).abs();
            if d < best {
                best = d;
                nearest = k;
            }
            if d <= r && inside.is_none_or(|(_, bd)| d < bd) {
                inside = Some((k, d));
            }
        }
        match inside {
            Some((mode, _)) => Label::InSupport { mode },
            None => {
                let kind = if x > self.lo && x < self.hi {
                    Kind::Interpolation
                } else {
                    Kind::Extrapolation
                };
                Label::Hallucination { nearest, kind }
            }
        }
    }
}
