//! A Gaussian mixture under the forward process, in f64 (papers.md §6.1, used by §3 and §4).
//!
//! Data p(x0) = Σ_k w_k N(μ_k, σ_k² I_d). At signal scale a and noise variance h
//! (DDPM: a = √ᾱ_t, h = 1−ᾱ_t; OU time: a = e^{−t}, h = 1−e^{−2t}), with v_k = a²σ_k² + h:
//!
//! - marginal p(x) = Σ_k w_k N(x; aμ_k, v_k I);
//! - responsibilities r_k ∝ w_k v_k^{−d/2} exp(−‖x−aμ_k‖²/(2v_k)), by log-sum-exp;
//! - denoiser E[x0|x] = Σ_k r_k (μ_k + (aσ_k²/v_k)(x − aμ_k));
//! - score ∇ln p = Σ_k r_k g_k with g_k = −(x − aμ_k)/v_k;
//! - Hessian ∇²ln p = Σ_k r_k(−I/v_k + g_k g_kᵀ) − g gᵀ.
//!
//! Every evaluation makes two passes over the components (max logit, then weighted sums), so
//! nothing is allocated per call; σ_k = 0 with equal w_k gives the empirical smoothed density
//! p̂_t of papers.md §4.2.

use anyhow::{Result, bail, ensure};

/// An isotropic Gaussian mixture in `dim` dimensions (validated, weights normalised).
#[derive(Clone, Debug)]
pub struct Mixture {
    dim: usize,
    means: Vec<f64>,
    stds: Vec<f64>,
    log_weights: Vec<f64>,
}

impl Mixture {
    /// `means` is k×dim row-major, `stds` and `weights` have k entries (weights are normalised).
    ///
    /// # Errors
    /// Fails on dim = 0, k = 0, mismatched lengths, non-finite values, negative σ_k or
    /// non-positive weights.
    pub fn new(dim: usize, means: Vec<f64>, stds: Vec<f64>, weights: &[f64]) -> Result<Self> {
        ensure!(dim > 0, "mixture dimension must be positive");
        ensure!(!stds.is_empty(), "mixture needs at least one component");
        ensure!(
            means.len() == stds.len() * dim && weights.len() == stds.len(),
            "mixture: {} means values, {} stds and {} weights do not describe k components in {dim} dimensions",
            means.len(),
            stds.len(),
            weights.len()
        );
        ensure!(
            means.iter().all(|m| m.is_finite()),
            "mixture means must be finite"
        );
        ensure!(
            stds.iter().all(|s| s.is_finite() && *s >= 0.0),
            "mixture stds must be finite and ≥ 0"
        );
        ensure!(
            weights.iter().all(|w| w.is_finite() && *w > 0.0),
            "mixture weights must be finite and > 0"
        );
        let total: f64 = weights.iter().sum();
        let log_weights = weights.iter().map(|w| (w / total).ln()).collect();
        Ok(Self {
            dim,
            means,
            stds,
            log_weights,
        })
    }

    /// Converts a host dataset mixture (f32 tables) to f64; every component must be isotropic.
    ///
    /// # Errors
    /// Fails if a component has different σ per dimension.
    pub fn from_data(m: &crate::data::Mixture) -> Result<Self> {
        ensure!(
            m.is_isotropic(),
            "mixture '{}' has anisotropic components; the analysis tools need isotropic ones",
            m.name()
        );
        let means = m.means().iter().map(|&v| f64::from(v)).collect();
        let stds = (0..m.components())
            .map(|k| f64::from(m.std(k)[0]))
            .collect();
        let weights: Vec<f64> = m.weights().iter().map(|&w| f64::from(w)).collect();
        Self::new(m.dim(), means, stds, &weights)
    }

    /// The smallest distance between two means (the nearest-neighbour spacing).
    pub fn min_spacing(&self) -> f64 {
        let k = self.components();
        let mut best = f64::INFINITY;
        for i in 0..k {
            for j in i + 1..k {
                let d2: f64 = self
                    .mean(i)
                    .iter()
                    .zip(self.mean(j))
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                best = best.min(d2.sqrt());
            }
        }
        best
    }

    /// Equal weights, one common σ.
    ///
    /// # Errors
    /// As [`Mixture::new`].
    pub fn equal(dim: usize, means: Vec<f64>, std: f64) -> Result<Self> {
        ensure!(
            dim > 0 && means.len().is_multiple_of(dim),
            "means length {} is not a multiple of dim {dim}",
            means.len()
        );
        let k = means.len() / dim;
        Self::new(dim, means, vec![std; k], &vec![1.0; k])
    }

    /// The sub-mixture on `subset` (weights renormalised), papers.md §3.2 step 1.
    ///
    /// # Errors
    /// Fails on an empty subset or an index ≥ k.
    pub fn subset(&self, subset: &[usize]) -> Result<Self> {
        ensure!(
            !subset.is_empty(),
            "sub-mixture needs at least one component"
        );
        let mut means = Vec::with_capacity(subset.len() * self.dim);
        let mut stds = Vec::with_capacity(subset.len());
        let mut weights = Vec::with_capacity(subset.len());
        for &k in subset {
            ensure!(
                k < self.components(),
                "component {k} out of range (k = {})",
                self.components()
            );
            means.extend_from_slice(self.mean(k));
            stds.push(self.stds[k]);
            weights.push(self.log_weights[k].exp());
        }
        Self::new(self.dim, means, stds, &weights)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn components(&self) -> usize {
        self.stds.len()
    }

    pub fn mean(&self, k: usize) -> &[f64] {
        &self.means[k * self.dim..(k + 1) * self.dim]
    }

    pub fn std(&self, k: usize) -> f64 {
        self.stds[k]
    }

    pub fn weight(&self, k: usize) -> f64 {
        self.log_weights[k].exp()
    }

    /// The marginal at signal scale `a` and noise variance `h`.
    ///
    /// # Errors
    /// Fails unless a ≥ 0, h ≥ 0 are finite and every v_k = a²σ_k² + h is positive.
    pub fn diffused(&self, a: f64, h: f64) -> Result<Diffused<'_>> {
        ensure!(
            a.is_finite() && h.is_finite() && a >= 0.0 && h >= 0.0,
            "diffusion needs finite a, h ≥ 0 (a = {a}, h = {h})"
        );
        if self.stds.iter().any(|s| a * a * s * s + h <= 0.0) {
            bail!("a component has zero variance after diffusion (a = {a}, h = {h}); use h > 0");
        }
        Ok(Diffused { gmm: self, a, h })
    }

    /// The index of the nearest mean (papers.md D9's label).
    pub fn nearest(&self, x: &[f64]) -> usize {
        let mut best = (f64::INFINITY, 0);
        for k in 0..self.components() {
            let d2: f64 = self
                .mean(k)
                .iter()
                .zip(x)
                .map(|(m, v)| (v - m) * (v - m))
                .sum();
            if d2 < best.0 {
                best = (d2, k);
            }
        }
        best.1
    }
}

/// A [`Mixture`] diffused to (a, h).
#[derive(Clone, Copy, Debug)]
pub struct Diffused<'g> {
    gmm: &'g Mixture,
    a: f64,
    h: f64,
}

impl Diffused<'_> {
    pub fn signal(&self) -> f64 {
        self.a
    }

    pub fn noise_variance(&self) -> f64 {
        self.h
    }

    fn variance(&self, k: usize) -> f64 {
        let s = self.gmm.stds[k];
        self.a * self.a * s * s + self.h
    }

    fn logit(&self, k: usize, x: &[f64]) -> f64 {
        let v = self.variance(k);
        let d2: f64 = self
            .gmm
            .mean(k)
            .iter()
            .zip(x)
            .map(|(m, xi)| (xi - self.a * m) * (xi - self.a * m))
            .sum();
        self.gmm.log_weights[k] - 0.5 * self.gmm.dim as f64 * v.ln() - d2 / (2.0 * v)
    }

    fn check(&self, x: &[f64]) -> Result<()> {
        ensure!(
            x.len() == self.gmm.dim,
            "point has {} coordinates, the mixture {}",
            x.len(),
            self.gmm.dim
        );
        Ok(())
    }

    /// Calls `each(k, r_k)` for every component with its responsibility and returns ln p(x)
    /// (without the −d/2 ln 2π constant). Logits are cached on the stack for k ≤ 64 and
    /// recomputed otherwise.
    fn for_each_responsibility(&self, x: &[f64], mut each: impl FnMut(usize, f64)) -> f64 {
        const CACHE: usize = 64;
        let k = self.gmm.components();
        let mut cache = [0.0f64; CACHE];
        let mut max = f64::NEG_INFINITY;
        for c in 0..k {
            let l = self.logit(c, x);
            if let Some(slot) = cache.get_mut(c) {
                *slot = l;
            }
            max = max.max(l);
        }
        let mut sum = 0.0;
        for c in 0..k {
            let e = match cache.get_mut(c) {
                Some(slot) => {
                    *slot = (*slot - max).exp();
                    *slot
                }
                None => (self.logit(c, x) - max).exp(),
            };
            sum += e;
        }
        for c in 0..k {
            let e = cache
                .get(c)
                .copied()
                .unwrap_or_else(|| (self.logit(c, x) - max).exp());
            each(c, e / sum);
        }
        max + sum.ln()
    }

    fn log_norm_const(&self) -> f64 {
        -0.5 * self.gmm.dim as f64 * (2.0 * core::f64::consts::PI).ln()
    }

    /// ln p(x).
    ///
    /// # Errors
    /// Fails if x has the wrong length.
    pub fn log_density(&self, x: &[f64]) -> Result<f64> {
        self.check(x)?;
        Ok(self.for_each_responsibility(x, |_, _| {}) + self.log_norm_const())
    }

    /// Writes the responsibilities r_k into `out` (length k).
    ///
    /// # Errors
    /// Fails on wrong lengths.
    pub fn responsibilities(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        self.check(x)?;
        ensure!(
            out.len() == self.gmm.components(),
            "responsibility buffer has the wrong length"
        );
        self.for_each_responsibility(x, |c, r| out[c] = r);
        Ok(())
    }

    /// Writes ∇ln p(x) into `grad` and returns ln p(x).
    ///
    /// # Errors
    /// Fails on wrong lengths.
    pub fn score(&self, x: &[f64], grad: &mut [f64]) -> Result<f64> {
        self.check(x)?;
        ensure!(
            grad.len() == self.gmm.dim,
            "gradient buffer has the wrong length"
        );
        grad.fill(0.0);
        let log_p = self.for_each_responsibility(x, |c, r| {
            let v = self.variance(c);
            for ((g, xi), m) in grad.iter_mut().zip(x).zip(self.gmm.mean(c)) {
                *g -= r * (xi - self.a * m) / v;
            }
        });
        Ok(log_p + self.log_norm_const())
    }

    /// Writes ∇ln p into `grad`, ∇²ln p (d×d row-major) into `hess`, and returns ln p.
    ///
    /// # Errors
    /// Fails on wrong lengths.
    pub fn hessian(&self, x: &[f64], grad: &mut [f64], hess: &mut [f64]) -> Result<f64> {
        let d = self.gmm.dim;
        ensure!(
            hess.len() == d * d,
            "Hessian buffer must hold d² = {} values",
            d * d
        );
        let log_p = self.score(x, grad)?;
        hess.fill(0.0);
        let mut gk = vec![0.0; d];
        self.for_each_responsibility(x, |c, r| {
            let v = self.variance(c);
            for ((g, xi), m) in gk.iter_mut().zip(x).zip(self.gmm.mean(c)) {
                *g = -(xi - self.a * m) / v;
            }
            for i in 0..d {
                for j in 0..d {
                    hess[i * d + j] += r * gk[i] * gk[j];
                }
                hess[i * d + i] -= r / v;
            }
        });
        for i in 0..d {
            for j in 0..d {
                hess[i * d + j] -= grad[i] * grad[j];
            }
        }
        Ok(log_p)
    }

    /// Writes E[x0 | x] into `out`.
    ///
    /// # Errors
    /// Fails on wrong lengths.
    pub fn denoise(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        self.check(x)?;
        ensure!(
            out.len() == self.gmm.dim,
            "denoiser buffer has the wrong length"
        );
        out.fill(0.0);
        self.for_each_responsibility(x, |c, r| {
            let v = self.variance(c);
            let s2 = self.gmm.stds[c] * self.gmm.stds[c];
            for ((o, xi), m) in out.iter_mut().zip(x).zip(self.gmm.mean(c)) {
                *o += r * (m + self.a * s2 / v * (xi - self.a * m));
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_component() -> Mixture {
        Mixture::new(
            2,
            vec![0.0, 0.0, 1.5, -0.5, -1.0, 2.0],
            vec![0.3, 0.1, 0.6],
            &[0.5, 0.2, 0.3],
        )
        .unwrap()
    }

    #[test]
    fn gradient_and_hessian_match_finite_differences() {
        let gmm = three_component();
        let p = gmm.diffused(0.8, 0.36).unwrap();
        let eps = 1e-5;
        for x in [[0.3, -0.2], [1.1, 0.4], [-0.9, 1.7], [4.0, -3.0]] {
            let mut grad = [0.0; 2];
            let mut hess = [0.0; 4];
            p.hessian(&x, &mut grad, &mut hess).unwrap();
            for i in 0..2 {
                let mut xp = x;
                let mut xm = x;
                xp[i] += eps;
                xm[i] -= eps;
                let fd = (p.log_density(&xp).unwrap() - p.log_density(&xm).unwrap()) / (2.0 * eps);
                assert!(
                    (fd - grad[i]).abs() < 1e-7 * (1.0 + grad[i].abs()),
                    "grad {i} at {x:?}: {fd} vs {}",
                    grad[i]
                );
                let (mut gp, mut gm) = ([0.0; 2], [0.0; 2]);
                p.score(&xp, &mut gp).unwrap();
                p.score(&xm, &mut gm).unwrap();
                for j in 0..2 {
                    let fd2 = (gp[j] - gm[j]) / (2.0 * eps);
                    assert!(
                        (fd2 - hess[j * 2 + i]).abs() < 1e-6 * (1.0 + fd2.abs()),
                        "hess {j}{i} at {x:?}"
                    );
                }
            }
            assert!(
                (hess[1] - hess[2]).abs() < 1e-12,
                "Hessian must be symmetric"
            );
        }
    }

    #[test]
    fn density_integrates_to_one_in_1d() {
        let gmm = Mixture::new(1, vec![-1.0, 2.0], vec![0.2, 0.5], &[1.0, 3.0]).unwrap();
        let p = gmm.diffused(0.9, 0.1).unwrap();
        let step = 1e-3;
        let total: f64 = (0..20_000)
            .map(|i| p.log_density(&[-10.0 + step * i as f64]).unwrap().exp() * step)
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
    }

    #[test]
    fn tweedie_links_denoiser_and_score() {
        // ∇ln p = (a E[x0|x] − x)/h.
        let gmm = three_component();
        let (a, h) = (0.6f64, 0.64f64);
        let p = gmm.diffused(a, h).unwrap();
        let x = [0.7, -1.2];
        let (mut grad, mut den) = ([0.0; 2], [0.0; 2]);
        p.score(&x, &mut grad).unwrap();
        p.denoise(&x, &mut den).unwrap();
        // Tweedie holds per component only with σ_k = 0 or when the per-component posterior is
        // used; for σ_k > 0: a·m_k − x = −(h/v_k)(x − aμ_k), so (a E − x)/h = Σ r_k g_k.
        for i in 0..2 {
            assert!((grad[i] - (a * den[i] - x[i]) / h).abs() < 1e-12);
        }
    }

    #[test]
    fn denoiser_limits() {
        let gmm = three_component();
        let x = [0.4, 0.1];
        let mut out = [0.0; 2];
        gmm.diffused(1.0, 1e-12)
            .unwrap()
            .denoise(&x, &mut out)
            .unwrap();
        assert!((out[0] - x[0]).abs() < 1e-6 && (out[1] - x[1]).abs() < 1e-6);
        gmm.diffused(0.0, 1.0)
            .unwrap()
            .denoise(&x, &mut out)
            .unwrap();
        let mean = [0.2 * 1.5 - 0.3, -0.2 * 0.5 + 0.3 * 2.0];
        assert!((out[0] - mean[0]).abs() < 1e-12 && (out[1] - mean[1]).abs() < 1e-12);
    }

    #[test]
    fn responsibilities_survive_far_points() {
        let gmm = Mixture::equal(1, vec![-3.0, 3.0], 0.0).unwrap();
        let p = gmm.diffused(1.0, 1e-3).unwrap();
        let mut r = [0.0; 2];
        p.responsibilities(&[1.0], &mut r).unwrap();
        assert!(r[1] == 1.0 && r[0] >= 0.0 && r[0] < 1e-300_f64.max(0.0) + 1e-100);
        assert!(p.log_density(&[1.0]).unwrap().is_finite());
        assert!(gmm.diffused(1.0, 0.0).is_err());
        assert!(p.log_density(&[1.0, 2.0]).is_err());
    }
}
