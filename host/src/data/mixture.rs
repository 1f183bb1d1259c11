//! A Gaussian mixture p(x) = Σ_k w_k N(μ_k, diag σ_k²) (papers.md §6.1): the definition
//! every dataset is drawn from, and what the exact GMM denoiser of `mirage-core` and the
//! labellers of [`crate::label`] are built from.
//!
//! Custom mixtures come from a small TOML or JSON spec file:
//!
//! ```toml
//! name = "two-blobs"          # optional; defaults to the file stem
//! [[components]]
//! mean = [0.0, 1.0]
//! std = 0.05                  # one σ for every dimension, or a list of `dim` values
//! weight = 2.0                # optional; all components or none (then equal)
//! [[components]]
//! mean = [1.0, 0.0]
//! std = [0.05, 0.1]
//! weight = 1.0
//! ```
//!
//! JSON uses the same keys: `{"components": [{"mean": [..], "std": .., "weight": ..}]}`.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

/// Most components a mixture may have (the capacity of core's exact GMM denoiser).
pub const MAX_COMPONENTS: usize = 256;
/// Largest dimension a mixture may have.
pub const MAX_DIM: usize = 4096;

/// A validated Gaussian mixture with diagonal covariances, stored as f32 tables in the
/// layout core's exact GMM denoiser borrows: `means` and `stds` are k×d row-major,
/// `weights` has k entries and sums to 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawMixture")]
pub struct Mixture {
    name: String,
    dim: usize,
    means: Vec<f32>,
    stds: Vec<f32>,
    weights: Vec<f32>,
}

/// The serialised form of [`Mixture`], validated on the way in.
#[derive(Deserialize)]
struct RawMixture {
    name: String,
    dim: usize,
    means: Vec<f32>,
    stds: Vec<f32>,
    weights: Vec<f32>,
}

impl TryFrom<RawMixture> for Mixture {
    type Error = anyhow::Error;

    /// Validates like [`Mixture::new`] and checks that the weights already sum to 1
    /// (within 1e−5), then keeps the stored values bit for bit.
    fn try_from(raw: RawMixture) -> Result<Self> {
        let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        Self::new(
            &raw.name,
            raw.dim,
            &wide(&raw.means),
            &wide(&raw.stds),
            &wide(&raw.weights),
        )?;
        let total: f64 = wide(&raw.weights).iter().sum();
        ensure!(
            (total - 1.0).abs() <= 1e-5,
            "mixture '{}': stored weights sum to {total}, not 1",
            raw.name
        );
        Ok(Self {
            name: raw.name,
            dim: raw.dim,
            means: raw.means,
            stds: raw.stds,
            weights: raw.weights,
        })
    }
}

/// One σ for all dimensions, or one per dimension.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum StdSpec {
    Isotropic(f64),
    Diagonal(Vec<f64>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentSpec {
    mean: Vec<f64>,
    std: StdSpec,
    weight: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MixtureSpec {
    name: Option<String>,
    components: Vec<ComponentSpec>,
}

impl Mixture {
    /// Builds a mixture from k×d `means`, k×d `stds` and k `weights` (any positive
    /// scale; they are normalised to sum 1).
    ///
    /// # Errors
    /// Names the problem: no components, more than [`MAX_COMPONENTS`], `dim` 0 or above
    /// [`MAX_DIM`], table lengths that do not match, a non-finite mean, a σ that is not
    /// finite and > 0, or a weight that is not finite and > 0.
    pub fn new(
        name: &str,
        dim: usize,
        means: &[f64],
        stds: &[f64],
        weights: &[f64],
    ) -> Result<Self> {
        ensure!(
            (1..=MAX_DIM).contains(&dim),
            "mixture '{name}': dimension {dim} must be in 1..={MAX_DIM}"
        );
        let k = weights.len();
        ensure!(k >= 1, "mixture '{name}': needs at least one component");
        ensure!(
            k <= MAX_COMPONENTS,
            "mixture '{name}': {k} components, at most {MAX_COMPONENTS} are supported"
        );
        ensure!(
            means.len() == k * dim,
            "mixture '{name}': {} mean values for {k} components of dimension {dim} (expected {})",
            means.len(),
            k * dim
        );
        ensure!(
            stds.len() == k * dim,
            "mixture '{name}': {} std values for {k} components of dimension {dim} (expected {})",
            stds.len(),
            k * dim
        );
        for (c, row) in means.chunks_exact(dim).enumerate() {
            if let Some(d) = row
                .iter()
                .position(|m| !m.is_finite() || m.abs() > f64::from(f32::MAX))
            {
                bail!(
                    "mixture '{name}': component {c}: mean[{d}] = {} is not a finite f32",
                    row[d]
                );
            }
        }
        for (c, row) in stds.chunks_exact(dim).enumerate() {
            if let Some(d) = row
                .iter()
                .position(|s| !(s.is_finite() && *s > 0.0 && *s <= f64::from(f32::MAX)))
            {
                bail!(
                    "mixture '{name}': component {c}: std[{d}] = {} must be finite and > 0",
                    row[d]
                );
            }
        }
        if let Some(c) = weights.iter().position(|w| !(w.is_finite() && *w > 0.0)) {
            bail!(
                "mixture '{name}': component {c}: weight {} must be finite and > 0",
                weights[c]
            );
        }
        let total: f64 = weights.iter().sum();
        ensure!(
            total.is_finite(),
            "mixture '{name}': weights sum to {total}"
        );
        Ok(Self {
            name: name.to_owned(),
            dim,
            means: means.iter().map(|&m| m as f32).collect(),
            stds: stds.iter().map(|&s| s as f32).collect(),
            weights: weights.iter().map(|&w| (w / total) as f32).collect(),
        })
    }

    /// Equal-weight isotropic mixture: every component has the same σ in every dimension.
    ///
    /// # Errors
    /// As [`Mixture::new`].
    pub fn isotropic(name: &str, dim: usize, means: &[f64], sigma: f64) -> Result<Self> {
        ensure!(dim >= 1, "mixture '{name}': dimension must be at least 1");
        let k = means.len() / dim;
        Self::new(name, dim, means, &vec![sigma; means.len()], &vec![1.0; k])
    }

    /// Parses a TOML (`.toml`) or JSON (anything else starting with `{`) spec; see the
    /// module docs. `default_name` is used when the spec has no `name`.
    ///
    /// # Errors
    /// Syntax errors (with the parser's location), unknown keys, components of different
    /// dimensions, a σ list of the wrong length, weights on only some components, and
    /// everything [`Mixture::new`] rejects.
    pub fn from_spec_str(text: &str, is_toml: bool, default_name: &str) -> Result<Self> {
        let spec: MixtureSpec = if is_toml {
            toml::from_str(text).context("invalid TOML mixture spec")?
        } else {
            serde_json::from_str(text).context("invalid JSON mixture spec")?
        };
        let name = spec.name.unwrap_or_else(|| default_name.to_owned());
        let first = spec
            .components
            .first()
            .with_context(|| format!("mixture '{name}': `components` is empty"))?;
        let dim = first.mean.len();
        ensure!(dim >= 1, "mixture '{name}': component 0: `mean` is empty");
        let with_weight = spec
            .components
            .iter()
            .filter(|c| c.weight.is_some())
            .count();
        ensure!(
            with_weight == 0 || with_weight == spec.components.len(),
            "mixture '{name}': {with_weight} of {} components have a `weight`; give all or none",
            spec.components.len()
        );
        let (mut means, mut stds, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for (c, comp) in spec.components.iter().enumerate() {
            ensure!(
                comp.mean.len() == dim,
                "mixture '{name}': component {c}: `mean` has {} values, component 0 has {dim}",
                comp.mean.len()
            );
            means.extend_from_slice(&comp.mean);
            match &comp.std {
                StdSpec::Isotropic(s) => stds.extend(std::iter::repeat_n(*s, dim)),
                StdSpec::Diagonal(v) => {
                    ensure!(
                        v.len() == dim,
                        "mixture '{name}': component {c}: `std` has {} values, expected 1 or {dim}",
                        v.len()
                    );
                    stds.extend_from_slice(v);
                }
            }
            weights.push(comp.weight.unwrap_or(1.0));
        }
        Self::new(&name, dim, &means, &stds, &weights)
    }

    /// Reads a spec file: `.toml` as TOML, `.json` as JSON.
    ///
    /// # Errors
    /// Unreadable file, another extension, or anything [`Mixture::from_spec_str`] rejects;
    /// the message names the path.
    pub fn from_spec_file(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let is_toml = match ext.as_deref() {
            Some("toml") => true,
            Some("json") => false,
            _ => bail!(
                "mixture spec {}: expected a .toml or .json file",
                path.display()
            ),
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read mixture spec {}", path.display()))?;
        let stem = path.file_stem().map_or_else(
            || "mixture".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        );
        Self::from_spec_str(&text, is_toml, &stem)
            .with_context(|| format!("in mixture spec {}", path.display()))
    }

    /// Name (a built-in name or the spec's).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Dimension d.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Number of components k.
    #[must_use]
    pub fn components(&self) -> usize {
        self.weights.len()
    }
    /// Means, k×d row-major.
    #[must_use]
    pub fn means(&self) -> &[f32] {
        &self.means
    }
    /// Per-dimension standard deviations, k×d row-major.
    #[must_use]
    pub fn stds(&self) -> &[f32] {
        &self.stds
    }
    /// Weights, summing to 1.
    #[must_use]
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
    /// Mean of component `k` (d values). Panics-free: empty if `k` is out of range.
    #[must_use]
    pub fn mean(&self, k: usize) -> &[f32] {
        self.means
            .get(k * self.dim..(k + 1) * self.dim)
            .unwrap_or(&[])
    }
    /// σ of component `k` (d values); empty if `k` is out of range.
    #[must_use]
    pub fn std(&self, k: usize) -> &[f32] {
        self.stds
            .get(k * self.dim..(k + 1) * self.dim)
            .unwrap_or(&[])
    }
    /// Whether every component has one σ shared by all its dimensions.
    #[must_use]
    pub fn is_isotropic(&self) -> bool {
        self.stds
            .chunks_exact(self.dim)
            .all(|row| row.iter().all(|&s| s == row[0]))
    }
    /// Whether all weights are exactly equal.
    #[must_use]
    pub fn equal_weights(&self) -> bool {
        self.weights.iter().all(|&w| w == self.weights[0])
    }

    /// The component of each of the first `n` samples. Equal weights: sample i belongs to
    /// component i mod k (the paper's balanced batches). Otherwise smooth weighted
    /// round-robin: every prefix of length m holds ⌊m·w_k⌋ or ⌈m·w_k⌉ samples of k (up
    /// to rounding in f64), and it reduces to i mod k for equal weights.
    #[must_use]
    pub fn component_sequence(&self, n: usize) -> Vec<usize> {
        let k = self.components();
        if self.equal_weights() {
            return (0..n).map(|i| i % k).collect();
        }
        let weights: Vec<f64> = self.weights.iter().map(|&w| f64::from(w)).collect();
        let total: f64 = weights.iter().sum();
        let mut current = vec![0.0f64; k];
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            for (cur, w) in current.iter_mut().zip(&weights) {
                *cur += w;
            }
            let best = argmax_first(&current);
            current[best] -= total;
            out.push(best);
        }
        out
    }
}

/// Index of the largest value; ties keep the lowest index.
fn argmax_first(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}
