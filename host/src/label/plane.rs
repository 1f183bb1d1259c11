//! D2 (papers.md §7): a 2D sample is a hallucination iff min_k ‖x − c_k‖ > kσ_n
//! (k = 5 ⇒ 0.0884 in the grids' scaled units). Sub-type *edge*: within kσ_n of a segment
//! joining two nearest-neighbour centres (the nearest-mode claim of the paper);
//! otherwise *off-edge*. A pair (a, b) is nearest-neighbour when ‖c_a − c_b‖ is within a
//! relative 1e−4 of the smallest distance from a (or from b) to any other centre.
//! Components with different σ use radius kσ_k around centres and k(σ_a + σ_b)/2
//! around segments. A non-finite x is an off-edge hallucination.

use anyhow::{Result, ensure};

use super::{Kind, Label};
use crate::data::Mixture;

/// Relative tolerance for "as near as the nearest neighbour".
const NN_TOLERANCE: f64 = 1e-4;

/// The D2 labeller for an isotropic 2D mixture.
#[derive(Clone, Debug)]
pub struct PlaneLabeller {
    centres: Vec<[f64; 2]>,
    radii: Vec<f64>,
    segments: Vec<(usize, usize)>,
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

/// Distance from `x` to the segment a–b.
fn segment_dist(x: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let ab = [b[0] - a[0], b[1] - a[1]];
    let len2 = ab[0] * ab[0] + ab[1] * ab[1];
    if len2 == 0.0 {
        return dist(x, a);
    }
    let t = (((x[0] - a[0]) * ab[0] + (x[1] - a[1]) * ab[1]) / len2).clamp(0.0, 1.0);
    dist(x, [a[0] + t * ab[0], a[1] + t * ab[1]])
}

impl PlaneLabeller {
    /// Radius `k`·σ around every centre of an isotropic 2D `mixture`.
    ///
    /// # Errors
    /// The mixture is not 2D or not isotropic, or `k` is not finite and > 0.
    pub fn new(mixture: &Mixture, k: f64) -> Result<Self> {
        ensure!(
            mixture.dim() == 2,
            "the 2D labeller needs a 2D mixture, '{}' has dimension {}",
            mixture.name(),
            mixture.dim()
        );
        ensure!(
            mixture.is_isotropic(),
            "the 2D labeller needs an isotropic mixture; '{}' has per-axis σ",
            mixture.name()
        );
        ensure!(
            k.is_finite() && k > 0.0,
            "labeller radius k = {k} must be finite and > 0"
        );
        let centres: Vec<[f64; 2]> = mixture
            .means()
            .chunks_exact(2)
            .map(|c| [f64::from(c[0]), f64::from(c[1])])
            .collect();
        let radii = mixture
            .stds()
            .chunks_exact(2)
            .map(|s| k * f64::from(s[0]))
            .collect();
        let nn: Vec<f64> = centres
            .iter()
            .enumerate()
            .map(|(a, &ca)| {
                centres
                    .iter()
                    .enumerate()
                    .filter(|&(b, _)| b != a)
                    .map(|(_, &cb)| dist(ca, cb))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        let mut segments = Vec::new();
        for a in 0..centres.len() {
            for b in a + 1..centres.len() {
                let d = dist(centres[a], centres[b]);
                if d <= nn[a] * (1.0 + NN_TOLERANCE) || d <= nn[b] * (1.0 + NN_TOLERANCE) {
                    segments.push((a, b));
                }
            }
        }
        Ok(Self {
            centres,
            radii,
            segments,
        })
    }

    /// The nearest-neighbour pairs (a < b) whose segments define the *edge* sub-type.
    #[must_use]
    pub fn segments(&self) -> &[(usize, usize)] {
        &self.segments
    }

    /// Labels one point.
    #[must_use]
    pub fn label(&self, x: [f32; 2]) -> Label {
        let x = [f64::from(x[0]), f64::from(x[1])];
        let mut nearest = 0;
        let mut best = f64::INFINITY;
        let mut inside: Option<(usize, f64)> = None;
        for (k, (&c, &r)) in self.centres.iter().zip(&self.radii).enumerate() {
            let d = dist(x, c);
            if d < best {
                best = d;
                nearest = k;
            }
            if d <= r && inside.is_none_or(|(_, bd)| d < bd) {
                inside = Some((k, d));
            }
        }
        if let Some((mode, _)) = inside {
            return Label::InSupport { mode };
        }
        let on_edge = self.segments.iter().any(|&(a, b)| {
            segment_dist(x, self.centres[a], self.centres[b])
                <= 0.5 * (self.radii[a] + self.radii[b])
        });
        Label::Hallucination {
            nearest,
            kind: if on_edge { Kind::Edge } else { Kind::OffEdge },
        }
    }
}
