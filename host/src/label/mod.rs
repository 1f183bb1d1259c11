//! Hallucination labellers (papers.md §7 D1, D2) and mode coverage.
//!
//! A sample is a *hallucination* iff it is farther than k standard deviations from every
//! mode: min_k |x − μ_k| > kσ in 1D (D1, k = 5 ⇒ 0.25 for σ = 0.05), min_k ‖x − c_k‖ > kσ_n
//! in 2D (D2, 0.0884 scaled), and min_k ‖(x − μ_k)/σ_k‖ > k for any mixture.
//! Sub-types: 1D *interpolation* (between the smallest and largest mean) or
//! *extrapolation*; 2D *edge* (within kσ of a segment joining two nearest-neighbour
//! centres) or *off-edge*.

mod coverage;
mod line;
mod mixture;
mod plane;

pub use coverage::{Coverage, mode_coverage, nearest_mode};
pub use line::LineLabeller;
pub use mixture::MixtureLabeller;
pub use plane::PlaneLabeller;

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

use crate::data::Mixture;

/// The paper's radius in standard deviations (D1, D2).
pub const PAPER_K: f64 = 5.0;

/// What kind of hallucination a sample is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// 1D, between the smallest and the largest mean.
    Interpolation,
    /// 1D, beyond the smallest or the largest mean.
    Extrapolation,
    /// 2D, near a segment joining nearest-neighbour centres.
    Edge,
    /// 2D, elsewhere.
    OffEdge,
    /// A mixture without sub-types.
    Other,
}

/// The label of one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "label")]
pub enum Label {
    /// Within kσ of mode `mode` (the nearest one).
    InSupport {
        /// Nearest mode.
        mode: usize,
    },
    /// Farther than kσ from every mode; `nearest` is still the nearest mode.
    Hallucination {
        /// Nearest mode.
        nearest: usize,
        /// Sub-type.
        kind: Kind,
    },
}

impl Label {
    /// Whether the sample is a hallucination.
    #[must_use]
    pub fn is_hallucination(self) -> bool {
        matches!(self, Self::Hallucination { .. })
    }
    /// The nearest mode.
    #[must_use]
    pub fn nearest(self) -> usize {
        match self {
            Self::InSupport { mode } => mode,
            Self::Hallucination { nearest, .. } => nearest,
        }
    }
}

/// The labeller a dataset gets: D1 for 1D mixtures, D2 for isotropic 2D mixtures, the
/// generic one otherwise.
#[derive(Clone, Debug)]
pub enum Labeller {
    /// D1.
    Line(LineLabeller),
    /// D2.
    Plane(PlaneLabeller),
    /// Any mixture.
    Mixture(MixtureLabeller),
}

impl Labeller {
    /// Picks the labeller for `mixture` with radius `k` standard deviations.
    ///
    /// # Errors
    /// `k` not finite and > 0.
    pub fn for_mixture(mixture: &Mixture, k: f64) -> Result<Self> {
        ensure!(
            k.is_finite() && k > 0.0,
            "labeller radius k = {k} must be finite and > 0"
        );
        Ok(match mixture.dim() {
            1 => Self::Line(LineLabeller::new(mixture, k)?),
            2 if mixture.is_isotropic() => Self::Plane(PlaneLabeller::new(mixture, k)?),
            _ => Self::Mixture(MixtureLabeller::new(mixture, k)?),
        })
    }

    /// Dimension of the points it labels.
    #[must_use]
    pub fn dim(&self) -> usize {
        match self {
            Self::Line(_) => 1,
            Self::Plane(_) => 2,
            Self::Mixture(m) => m.dim(),
        }
    }

    /// Labels one point of `dim()` values.
    ///
    /// # Errors
    /// Wrong length.
    pub fn label(&self, x: &[f32]) -> Result<Label> {
        match self {
            Self::Line(l) => {
                ensure!(
                    x.len() == 1,
                    "1D labeller got a point of {} values",
                    x.len()
                );
                Ok(l.label(x[0]))
            }
            Self::Plane(p) => {
                ensure!(
                    x.len() == 2,
                    "2D labeller got a point of {} values",
                    x.len()
                );
                Ok(p.label([x[0], x[1]]))
            }
            Self::Mixture(m) => m.label(x),
        }
    }

    /// Labels every point of a row-major batch.
    ///
    /// # Errors
    /// `points.len()` not a multiple of `dim()`.
    pub fn label_all(&self, points: &[f32]) -> Result<Vec<Label>> {
        let d = self.dim();
        ensure!(
            points.len().is_multiple_of(d),
            "{} values do not form points of dimension {d}",
            points.len()
        );
        points.chunks_exact(d).map(|x| self.label(x)).collect()
    }
}

/// Counts of a labelled batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Samples labelled.
    pub total: usize,
    /// Hallucinations.
    pub hallucinated: usize,
    /// Hallucinations of each kind.
    pub interpolation: usize,
    /// See [`Kind::Extrapolation`].
    pub extrapolation: usize,
    /// See [`Kind::Edge`].
    pub edge: usize,
    /// See [`Kind::OffEdge`].
    pub off_edge: usize,
    /// Fraction hallucinated (0 for an empty batch).
    pub rate: f64,
}

impl Summary {
    /// Tallies `labels`.
    #[must_use]
    pub fn of(labels: &[Label]) -> Self {
        let mut s = Self {
            total: labels.len(),
            ..Self::default()
        };
        for label in labels {
            if let Label::Hallucination { kind, .. } = label {
                s.hallucinated += 1;
                match kind {
                    Kind::Interpolation => s.interpolation += 1,
                    Kind::Extrapolation => s.extrapolation += 1,
                    Kind::Edge => s.edge += 1,
                    Kind::OffEdge => s.off_edge += 1,
                    Kind::Other => {}
                }
            }
        }
        s.rate = if s.total == 0 {
            0.0
        } else {
            s.hallucinated as f64 / s.total as f64
        };
        s
    }
}

#[cfg(test)]
mod tests;
