//! Seeded training datasets (papers.md §1.2 "Datasets", *paper's code*; seeds §7 D7).
//!
//! Sample i belongs to mode c(i) — i mod K for equal weights, so batches are exactly
//! balanced — and its value is x_d = μ_{c,d} + σ_{c,d}·z with z ~ N(0, 1) drawn by
//! Box–Muller from a ChaCha8 stream of the master seed, computed in f64 and stored as f32.
//! Normals are consumed sample by sample, dimension by dimension.

mod mixture;
mod named;
mod normal;

use std::path::Path;

use anyhow::{Result, bail};

pub use mixture::{MAX_COMPONENTS, MAX_DIM, Mixture};
pub use named::{GRID_DIVISOR, Named, PAPER_SIGMA};
pub use normal::{DATA_STREAM, NormalStream, data_rng};

/// Resolves a dataset argument: a built-in name ([`Named::NAMES`]) or a path to a
/// `.toml`/`.json` mixture spec.
///
/// # Errors
/// An unknown name that is not an existing spec file gets a message listing the valid
/// names; spec files report their own problems (see [`Mixture::from_spec_file`]).
pub fn parse_mixture(arg: &str) -> Result<Mixture> {
    if let Ok(named) = arg.parse::<Named>() {
        return named.mixture();
    }
    let path = Path::new(arg);
    let is_spec = matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("toml" | "json")
    );
    if path.is_file() || is_spec {
        return Mixture::from_spec_file(path);
    }
    bail!(
        "unknown dataset '{arg}': expected one of {}, or a path to a .toml/.json mixture spec",
        Named::NAMES.join(", ")
    )
}

/// A generated dataset: `len` points of dimension `dim`, row-major, and the mixture they
/// were drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    mixture: Mixture,
    seed: u64,
    points: Vec<f32>,
}

impl Dataset {
    /// Draws `n` samples of `mixture` from the data stream of `master_seed`
    /// ([`data_rng`]). Same arguments ⇒ same bits.
    #[must_use]
    pub fn generate(mixture: Mixture, n: usize, master_seed: u64) -> Self {
        let dim = mixture.dim();
        let mut normals = NormalStream::new(data_rng(master_seed));
        let mut points = Vec::with_capacity(n * dim);
        for c in mixture.component_sequence(n) {
            for (&mu, &sigma) in mixture.mean(c).iter().zip(mixture.std(c)) {
                let z = normals.next_normal();
                points.push((f64::from(mu) + f64::from(sigma) * z) as f32);
            }
        }
        Self {
            mixture,
            seed: master_seed,
            points,
        }
    }

    /// The mixture the points were drawn from.
    #[must_use]
    pub fn mixture(&self) -> &Mixture {
        &self.mixture
    }
    /// Dimension d.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.mixture.dim()
    }
    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.points.len() / self.dim()
    }
    /// Whether there are no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
    /// The master seed the points were drawn with.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// All points, row-major (len × dim).
    #[must_use]
    pub fn points(&self) -> &[f32] {
        &self.points
    }
    /// Consumes the dataset, returning the points.
    #[must_use]
    pub fn into_points(self) -> Vec<f32> {
        self.points
    }
    /// Point `i` (empty if out of range).
    #[must_use]
    pub fn point(&self, i: usize) -> &[f32] {
        let d = self.dim();
        self.points.get(i * d..(i + 1) * d).unwrap_or(&[])
    }
    /// The component each sample was drawn from.
    #[must_use]
    pub fn components(&self) -> Vec<usize> {
        self.mixture.component_sequence(self.len())
    }
}

#[cfg(test)]
mod tests;
