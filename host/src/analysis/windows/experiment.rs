//! The noising–denoising experiment of critical windows (Li & Chen 2024; papers.md §3.2):
//!
//! 1. draw x0 from the sub-mixture p^S (weights renormalised);
//! 2. noise it to OU time t̂: x = e^{−t̂}x0 + √(1−e^{−2t̂}) z;
//! 3. run the reverse process with the **full** mixture's exact score over `steps` uniform steps
//!    Δ = t̂/steps, evaluating the score at t = t̂ − jΔ:
//!    - SDE (Euler–Maruyama): x ← x + (x + 2∇ln q_t(x))Δ + √(2Δ) z_j;
//!    - probability-flow ODE (Euler): x ← x + (x + ∇ln q_t(x))Δ;
//! 4. label the result by the nearest mean (papers.md D9).
//!
//! Path p's randomness is core's counter-based noise keyed by p (init stream: step 0 = x0, step 1 =
//! forward noise, step 2 = component choice u = Φ(z); step stream: step j = z_j), so results do not
//! depend on the thread count. Papers.md §3.3: use ≥ 400 steps, Euler steps can cross the symmetry
//! plane the exact ODE never crosses.

use anyhow::{Result, ensure};

use super::closed_form::Process;
use crate::analysis::mixture::{Diffused, Mixture};
use crate::analysis::paths::{STREAM_INIT, STREAM_STEP, normals, par_map};
use crate::analysis::stats::normal_cdf;

/// One noising–denoising run.
#[derive(Clone, Debug)]
pub struct NoiseDenoise<'m> {
    /// The full mixture whose score denoises (every σ_k > 0 or the score is singular at t = 0).
    pub mixture: &'m Mixture,
    /// The start subset S (indices into `mixture`).
    pub start: &'m [usize],
    /// Noise level t̂ (OU time).
    pub t_hat: f64,
    /// Reverse steps.
    pub steps: usize,
    pub process: Process,
    pub seed: u64,
    /// Worker threads (0 = all cores).
    pub threads: usize,
}

/// Final positions and labels of every path.
#[derive(Clone, Debug)]
pub struct Paths {
    pub dim: usize,
    /// n × dim, row-major.
    pub finals: Vec<f64>,
    /// Nearest-mean label per path.
    pub labels: Vec<usize>,
}

impl Paths {
    /// Fraction of paths per label (length K).
    pub fn fractions(&self, k: usize) -> Vec<f64> {
        let mut counts = vec![0usize; k];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l) {
                *c += 1;
            }
        }
        counts
            .iter()
            .map(|&c| c as f64 / self.labels.len().max(1) as f64)
            .collect()
    }
}

impl NoiseDenoise<'_> {
    /// Runs `n` paths.
    ///
    /// # Errors
    /// Fails on an empty or out-of-range start set, t̂ ≤ 0, zero steps, or a mixture with a σ_k = 0
    /// (its score is singular at t = 0).
    pub fn run(&self, n: usize, progress: Option<&str>) -> Result<Paths> {
        ensure!(
            self.t_hat.is_finite() && self.t_hat > 0.0,
            "t̂ must be positive, got {}",
            self.t_hat
        );
        ensure!(self.steps > 0, "need at least one reverse step");
        ensure!(
            (0..self.mixture.components()).all(|k| self.mixture.std(k) > 0.0),
            "noise–denoise needs every σ_k > 0"
        );
        let start = self.mixture.subset(self.start)?;
        let dim = self.mixture.dim();
        // The diffused mixture at t = t̂ − jΔ, shared by every path.
        let dt = self.t_hat / self.steps as f64;
        let levels: Vec<Diffused<'_>> = (0..self.steps)
            .map(|j| {
                let t = self.t_hat - j as f64 * dt;
                self.mixture.diffused((-t).exp(), -(-2.0 * t).exp_m1())
            })
            .collect::<Result<_>>()?;
        let results = par_map(n, self.threads, progress, |p| self.path(&start, &levels, p));
        let mut finals = Vec::with_capacity(n * dim);
        let mut labels = Vec::with_capacity(n);
        for r in results {
            let x = r?;
            labels.push(self.mixture.nearest(&x));
            finals.extend_from_slice(&x);
        }
        Ok(Paths {
            dim,
            finals,
            labels,
        })
    }

    fn path(&self, start: &Mixture, levels: &[Diffused<'_>], p: usize) -> Result<Vec<f64>> {
        let dim = self.mixture.dim();
        let mut z = vec![0.0; dim];
        let mut grad = vec![0.0; dim];
        let mut choice = [0.0];
        normals(self.seed, STREAM_INIT, p, 2, &mut choice);
        let u = normal_cdf(choice[0]);
        let mut acc = 0.0;
        let mut comp = start.components() - 1;
        for k in 0..start.components() {
            acc += start.weight(k);
            if u < acc {
                comp = k;
                break;
            }
        }
        normals(self.seed, STREAM_INIT, p, 0, &mut z);
        let mut x: Vec<f64> = start
            .mean(comp)
            .iter()
            .zip(&z)
            .map(|(m, zi)| m + start.std(comp) * zi)
            .collect();
        normals(self.seed, STREAM_INIT, p, 1, &mut z);
        let a = (-self.t_hat).exp();
        let noise = (1.0 - a * a).sqrt();
        for (xi, zi) in x.iter_mut().zip(&z) {
            *xi = a * *xi + noise * zi;
        }
        let dt = self.t_hat / self.steps as f64;
        let diffusion = (2.0 * dt).sqrt();
        for (j, level) in levels.iter().enumerate() {
            level.score(&x, &mut grad)?;
            match self.process {
                Process::Sde => {
                    normals(self.seed, STREAM_STEP, p, j, &mut z);
                    for ((xi, g), zi) in x.iter_mut().zip(&grad).zip(&z) {
                        *xi += (*xi + 2.0 * g) * dt + diffusion * zi;
                    }
                }
                Process::Ode => {
                    for (xi, g) in x.iter_mut().zip(&grad) {
                        *xi += (*xi + g) * dt;
                    }
                }
            }
        }
        Ok(x)
    }
}

/// Two unit-variance components ±μ with μ = ‖μ‖e_1 in `dim` dimensions (component 0 is +μ).
///
/// # Errors
/// Fails on dim = 0 or a non-positive ‖μ‖.
pub fn symmetric_pair(mu_norm: f64, dim: usize) -> Result<Mixture> {
    ensure!(
        mu_norm.is_finite() && mu_norm > 0.0,
        "‖μ‖ must be positive, got {mu_norm}"
    );
    ensure!(dim > 0, "dimension must be positive");
    let mut means = vec![0.0; 2 * dim];
    means[0] = mu_norm;
    means[dim] = -mu_norm;
    Mixture::equal(dim, means, 1.0)
}

/// The hierarchy of papers.md §3.4: equal weights, unit variance, μ1 = (25, 0.5), μ2 = (25, −0.5),
/// μ3 = (−25, 0).
///
/// # Errors
/// Never in practice (the constants are valid).
pub fn hierarchy_mixture() -> Result<Mixture> {
    Mixture::equal(2, vec![25.0, 0.5, 25.0, -0.5, -25.0, 0.0], 1.0)
}

/// The first t̂ (linear interpolation on an ascending grid) at which `values` falls to `target`.
pub fn crossing(t_grid: &[f64], values: &[f64], target: f64) -> Option<f64> {
    t_grid.windows(2).zip(values.windows(2)).find_map(|(t, v)| {
        if v[0] >= target && v[1] < target {
            Some(t[0] + (t[1] - t[0]) * (v[0] - target) / (v[0] - v[1]))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::closed_form::{p_stay, p_stay_sde_side};
    use super::*;

    fn stay(process: Process, dim: usize, t_hat: f64, n: usize, steps: usize) -> f64 {
        let gmm = symmetric_pair(4.0, dim).unwrap();
        let run = NoiseDenoise {
            mixture: &gmm,
            start: &[0],
            t_hat,
            steps,
            process,
            seed: 2024,
            threads: 0,
        };
        run.run(n, None).unwrap().fractions(2)[0]
    }

    #[test]
    fn sde_and_ode_p_stay_match_closed_forms_in_2d() {
        // papers.md §3.4, ‖μ‖ = 4: accept ±0.02 (MC SE ≤ 0.005 at 10k paths).
        for t_hat in [0.5, 1.0, 1.5, 2.0, 3.0] {
            let s = 4.0 * f64::exp(-t_hat);
            let sde = stay(Process::Sde, 2, t_hat, 10_000, 400);
            let exact_side = p_stay_sde_side(4.0, t_hat).unwrap();
            assert!(
                (sde - exact_side).abs() < 0.02,
                "SDE t̂ = {t_hat}: {sde} vs {exact_side}"
            );
            assert!((sde - p_stay(Process::Sde, s)).abs() < 0.02);
            let ode = stay(Process::Ode, 2, t_hat, 10_000, 400);
            assert!(
                (ode - p_stay(Process::Ode, s)).abs() < 0.02,
                "ODE t̂ = {t_hat}: {ode}"
            );
        }
    }

    #[test]
    fn sde_p_stay_does_not_depend_on_dimension() {
        for t_hat in [1.0, 2.0] {
            let sde = stay(Process::Sde, 50, t_hat, 4_000, 400);
            let exact = p_stay_sde_side(4.0, t_hat).unwrap();
            // 4000 paths: SE ≤ 0.008; allow ±0.03 (3.75 SE).
            assert!(
                (sde - exact).abs() < 0.03,
                "d = 50, t̂ = {t_hat}: {sde} vs {exact}"
            );
        }
    }

    #[test]
    fn same_bits_for_any_thread_count() {
        let gmm = symmetric_pair(2.0, 3).unwrap();
        let mk = |threads| NoiseDenoise {
            mixture: &gmm,
            start: &[0],
            t_hat: 1.0,
            steps: 50,
            process: Process::Sde,
            seed: 1,
            threads,
        };
        assert_eq!(
            mk(1).run(200, None).unwrap().finals,
            mk(2).run(200, None).unwrap().finals
        );
        let bad = NoiseDenoise {
            t_hat: 0.0,
            ..mk(1)
        };
        assert!(bad.run(1, None).is_err());
    }

    #[test]
    fn hierarchy_plateau_and_limits() {
        let gmm = hierarchy_mixture().unwrap();
        let run = |t_hat: f64| {
            NoiseDenoise {
                mixture: &gmm,
                start: &[0],
                t_hat,
                steps: 600,
                process: Process::Sde,
                seed: 3,
                threads: 0,
            }
            .run(4_000, None)
            .unwrap()
            .fractions(3)
        };
        // At t̂ → 0 the label of a component-1 draw is 1 with probability Φ(0.5) = 0.691.
        let early = run(1e-3);
        assert!(
            (early[0] - normal_cdf(0.5)).abs() < 0.03 && early[2] == 0.0,
            "{early:?}"
        );
        // Plateau between the windows (T_lower ≈ 1.38 < t̂ < T_upper ≈ 2.27): 50/50 within the pair.
        let mid = run(2.0);
        assert!(
            (mid[0] - 0.5).abs() < 0.03 && (mid[1] - 0.5).abs() < 0.03 && mid[2] < 0.01,
            "{mid:?}"
        );
        // Fully mixed at t̂ = 6 (≫ ln 25): ≈ 1/3 each.
        let late = run(6.0);
        assert!(
            late.iter().all(|f| (f - 1.0 / 3.0).abs() < 0.035),
            "{late:?}"
        );
    }

    #[test]
    fn crossing_interpolates() {
        assert_eq!(crossing(&[0.0, 1.0, 2.0], &[1.0, 0.8, 0.4], 0.6), Some(1.5));
        assert_eq!(crossing(&[0.0, 1.0], &[0.5, 0.4], 0.9), None);
    }
}
