//! Generic mixture labeller: a sample is a hallucination iff it lies farther than k
//! standard deviations from every component, min_k ‖(x − μ_k) / σ_k‖₂ > k (σ_k per
//! dimension; the Mahalanobis distance of a diagonal Gaussian). For an isotropic 1D or 2D
//! mixture this is exactly D1 / D2 without sub-types. A non-finite x is a hallucination.

use anyhow::{Result, ensure};

use super::{Kind, Label};
use crate::data::Mixture;

/// The generic labeller.
#[derive(Clone, Debug)]
pub struct MixtureLabeller {
    dim: usize,
    means: Vec<f64>,
    inv_stds: Vec<f64>,
    k: f64,
}

impl MixtureLabeller {
    /// Radius `k` standard deviations around every component of `mixture`.
    ///
    /// # Errors
    /// `k` not finite and > 0.
    pub fn new(mixture: &Mixture, k: f64) -> Result<Self> {
        ensure!(
            k.is_finite() && k > 0.0,
            "labeller radius k = {k} must be finite and > 0"
        );
        Ok(Self {
            dim: mixture.dim(),
            means: mixture.means().iter().map(|&m| f64::from(m)).collect(),
            inv_stds: mixture.stds().iter().map(|&s| 1.0 / f64::from(s)).collect(),
            k,
        })
    }

    /// Dimension of the points it labels.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Labels one point; `nearest` is the component of smallest standardised distance.
    ///
    /// # Errors
    /// `x.len() != dim()`.
    pub fn label(&self, x: &[f32]) -> Result<Label> {
        ensure!(
            x.len() == self.dim,
            "labeller of dimension {} got a point of {} values",
            self.dim,
            x.len()
        );
        let mut nearest = 0;
        let mut best = f64::INFINITY;
        for (k, (mu, inv)) in self
            .means
            .chunks_exact(self.dim)
            .zip(self.inv_stds.chunks_exact(self.dim))
            .enumerate()
        {
            let d2: f64 = x
                .iter()
                .zip(mu)
                .zip(inv)
                .map(|((&xi, &m), &s)| {
                    let z = (f64::from(xi) - m) * s;
                    z * z
                })
                .sum();
            if d2 < best {
                best = d2;
                nearest = k;
            }
        }
        Ok(if best <= self.k * self.k {
            Label::InSupport { mode: nearest }
        } else {
            Label::Hallucination {
                nearest,
                kind: Kind::Other,
            }
        })
    }
}
