//! The exact denoiser of a Gaussian mixture under the forward process (papers.md §6.1; the
//! ground truth of Aithal et al. 2024's "true-score sampler"):
//!
//! ```text
//! p(x0) = Σ_k w_k N(μ_k, diag σ_k²),   x_t = a·x0 + b·ε,   a = √ᾱ_t,  b² = 1 − ᾱ_t
//! v_kj  = a²σ_kj² + b²
//! r_k   ∝ w_k Π_j v_kj^{−1/2} exp(−(x_j − aμ_kj)²/(2v_kj))          (log-sum-exp, f64)
//! m_k   = μ_k + (aσ_k²/v_k) ⊙ (x − aμ_k)                              (component posterior mean)
//! x̂0    = E[x0 | x_t] = Σ_k r_k m_k,      ε̂ = (x − a·x̂0)/b,      v̂ = a·ε̂ − b·x̂0
//! ```
//!
//! The Jacobian (papers.md §9 D13) with g_k = −(x − aμ_k)/v_k and g = Σ_k r_k g_k is
//! J = ∂x̂0/∂x = Σ_k r_k diag(aσ_k²/v_k) + Σ_k r_k m_k (g_k − g)ᵀ; [`Denoiser::predict_jvp`]
//! applies it to one direction in O(K·d) without forming it.
//!
//! Everything is computed in f64 from f32 inputs and rounded once at the end: x̂0 agrees with
//! an independent f64 evaluation to 1e-6·(1 + |x̂0|) in the tests.

use crate::denoiser::{Denoiser, check_lengths};
use crate::error::Error;
use crate::math;
use crate::sampler::Prediction;
use crate::schedule::{Schedule, Table, TableSet};

/// Most mixture components an [`ExactGmm`] accepts (its per-call state lives on the stack).
pub const MAX_COMPONENTS: usize = 256;

/// Closed-form E[x0 | x_t] of a Gaussian mixture, as a [`Denoiser`].
#[derive(Clone, Copy, Debug)]
pub struct ExactGmm<'a> {
    dim: usize,
    means: &'a [f32],
    stds: &'a [f32],
    /// 1 for isotropic components (one σ per component), `dim` for diagonal ones.
    std_stride: usize,
    weights: &'a [f32],
    schedule: Schedule<'a>,
    prediction: Prediction,
}

/// a = √ᾱ_t, b = √(1 − ᾱ_t) and b² at one timestep, in f64.
#[derive(Clone, Copy, Debug)]
struct NoiseLevel {
    a: f64,
    b: f64,
    b2: f64,
}

impl<'a> ExactGmm<'a> {
    /// A mixture of K = `weights.len()` components in `dim` dimensions: `means` is K×d
    /// (row per component), `stds` is K (isotropic) or K×d (diagonal), `weights` are ≥ 0 with
    /// a positive sum (normalised internally). `schedule` must contain every `model_t` the
    /// caller will ask for in its `ModelT` table: the full training schedule, or a respaced
    /// one (ᾱ at a kept timestep is unchanged by respacing). `prediction` picks the output.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`]`("dim")` if `dim == 0`; [`Error::CapacityExceeded`] if
    /// K > [`MAX_COMPONENTS`]; [`Error::InvalidParameter`] for no components, a negative or
    /// non-finite weight or σ, or weights summing to 0; [`Error::LengthMismatch`] for `means`
    /// or `stds` of the wrong length; [`Error::NonFinite`]`("means")`; [`Error::MissingTable`]
    /// if the schedule lacks `ModelT`, √ᾱ, √(1−ᾱ) or 1 − ᾱ.
    pub fn new(
        dim: usize,
        means: &'a [f32],
        stds: &'a [f32],
        weights: &'a [f32],
        schedule: Schedule<'a>,
        prediction: Prediction,
    ) -> Result<Self, Error> {
        if dim == 0 {
            return Err(Error::InvalidParameter("dim"));
        }
        schedule.require(TableSet::of(&[
            Table::ModelT,
            Table::SqrtAlphaBar,
            Table::SqrtOneMinusAlphaBar,
            Table::OneMinusAlphaBar,
        ]))?;
        let k = weights.len();
        if k > MAX_COMPONENTS {
            return Err(Error::CapacityExceeded(
                "mixture components (MAX_COMPONENTS = 256)",
            ));
        }
        if k == 0 {
            return Err(Error::InvalidParameter("weights (no components)"));
        }
        if Some(means.len()) != k.checked_mul(dim) {
            return Err(Error::LengthMismatch("means (components × dim)"));
        }
        let std_stride = if stds.len() == k {
            1
        } else if Some(stds.len()) == k.checked_mul(dim) {
            dim
        } else {
            return Err(Error::LengthMismatch(
                "stds (components or components × dim)",
            ));
        };
        if !weights.iter().all(|w| w.is_finite() && *w >= 0.0) {
            return Err(Error::InvalidParameter("weights (negative or non-finite)"));
        }
        if !weights.iter().any(|w| *w > 0.0) {
            return Err(Error::InvalidParameter("weights (sum is zero)"));
        }
        if !stds.iter().all(|s| s.is_finite() && *s >= 0.0) {
            return Err(Error::InvalidParameter("stds (negative or non-finite)"));
        }
        if !means.iter().all(|m| m.is_finite()) {
            return Err(Error::NonFinite("means"));
        }
        Ok(Self {
            dim,
            means,
            stds,
            std_stride,
            weights,
            schedule,
            prediction,
        })
    }

    /// Number of mixture components K.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// a, b, b² at `model_t`, found in the schedule's `ModelT` table.
    fn noise_level(&self, model_t: u32) -> Result<NoiseLevel, Error> {
        let wanted = model_t as f32;
        let i = self
            .schedule
            .table(Table::ModelT)
            .binary_search_by(|t| t.total_cmp(&wanted))
            .map_err(|_| Error::StepOutOfRange)?;
        let coefs = self.schedule.coefs(i)?;
        Ok(NoiseLevel {
            a: f64::from(coefs.sqrt_alpha_bar),
            b: f64::from(coefs.sqrt_one_minus_alpha_bar),
            b2: f64::from(coefs.one_minus_alpha_bar),
        })
    }

    /// (mean row, std row) of every component; an isotropic std row has one entry.
    fn rows(&self) -> impl Iterator<Item = (&'a [f32], &'a [f32])> {
        self.means
            .chunks_exact(self.dim)
            .zip(self.stds.chunks_exact(self.std_stride))
    }

    /// Writes r_k into `resp` (log-sum-exp in f64).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if some v_kj is 0 (σ = 0 at ᾱ = 1); [`Error::NonFinite`]`("x")`
    /// if no component has a finite log-likelihood (x is NaN or ±∞).
    fn responsibilities(
        &self,
        level: NoiseLevel,
        x: &[f32],
        resp: &mut [f64; MAX_COMPONENTS],
    ) -> Result<(), Error> {
        let mut max = f64::NEG_INFINITY;
        for ((logit, &w), (mean, std)) in resp.iter_mut().zip(self.weights).zip(self.rows()) {
            let mut log_lik = 0.0f64;
            for (j, (&xj, &mu)) in x.iter().zip(mean).enumerate() {
                let v = variance(level, std_at(std, j));
                if v <= 0.0 {
                    return Err(Error::InvalidParameter(
                        "stds (zero variance at alpha_bar = 1)",
                    ));
                }
                let dev = f64::from(xj) - level.a * f64::from(mu);
                log_lik -= 0.5 * (math::ln_f64(v) + dev * dev / v);
            }
            *logit = math::ln_f64(f64::from(w)) + log_lik;
            if *logit > max {
                max = *logit;
            }
        }
        if !max.is_finite() {
            return Err(Error::NonFinite("x"));
        }
        let mut total = 0.0f64;
        for r in resp.iter_mut().take(self.components()) {
            *r = math::exp_f64(*r - max);
            total += *r;
        }
        for r in resp.iter_mut().take(self.components()) {
            *r /= total;
        }
        Ok(())
    }

    /// x̂0_j = Σ_k r_k m_kj for coordinate j.
    fn posterior_mean_at(
        &self,
        level: NoiseLevel,
        x_j: f64,
        j: usize,
        resp: &[f64; MAX_COMPONENTS],
    ) -> f64 {
        self.rows()
            .zip(resp)
            .map(|((mean, std), &r)| {
                r * component_mean(level, x_j, mean_at(mean, j), std_at(std, j))
            })
            .sum()
    }

    /// Fills `out` (length d) with f(x) for one sample.
    fn predict_one(&self, level: NoiseLevel, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        let mut resp = [0.0f64; MAX_COMPONENTS];
        self.responsibilities(level, x, &mut resp)?;
        for (j, (o, &xj)) in out.iter_mut().zip(x).enumerate() {
            let xj = f64::from(xj);
            let x0 = self.posterior_mean_at(level, xj, j, &resp);
            *o = output(self.prediction, level, xj, x0) as f32;
            if !o.is_finite() {
                // e.g. ε̂ = (x − a·x̂0)/b for |x| near f32::MAX and b ≪ 1 (adversarial tests).
                return Err(Error::NonFinite("output (overflows f32: x too large)"));
            }
        }
        Ok(())
    }

    /// f(x) and (∂f/∂x)·u for one sample (D13 applied to u).
    fn jvp_one(
        &self,
        level: NoiseLevel,
        x: &[f32],
        u: &[f32],
        out: &mut [f32],
        out_dot: &mut [f32],
    ) -> Result<(), Error> {
        let mut resp = [0.0f64; MAX_COMPONENTS];
        self.responsibilities(level, x, &mut resp)?;
        // q_k = g_kᵀu and gᵀu = Σ_k r_k q_k.
        let mut q = [0.0f64; MAX_COMPONENTS];
        let mut g_dot_u = 0.0f64;
        for ((qk, &r), (mean, std)) in q.iter_mut().zip(&resp).zip(self.rows()) {
            *qk = x
                .iter()
                .zip(u)
                .zip(mean)
                .enumerate()
                .map(|(j, ((&xj, &uj), &mu))| {
                    let v = variance(level, std_at(std, j));
                    -(f64::from(xj) - level.a * f64::from(mu)) / v * f64::from(uj)
                })
                .sum();
            g_dot_u += r * *qk;
        }
        let coords = out.iter_mut().zip(out_dot.iter_mut()).zip(x.iter().zip(u));
        for (j, ((o, od), (&xj, &uj))) in coords.enumerate() {
            let (xj, uj) = (f64::from(xj), f64::from(uj));
            let mut x0 = 0.0f64;
            let mut ju = 0.0f64;
            for (((mean, std), &r), &qk) in self.rows().zip(&resp).zip(&q) {
                let (mu, sigma) = (mean_at(mean, j), std_at(std, j));
                let m = component_mean(level, xj, mu, sigma);
                x0 += r * m;
                ju += r * (shrink(level, sigma) * uj + m * (qk - g_dot_u));
            }
            *o = output(self.prediction, level, xj, x0) as f32;
            // The output is linear in (x, x̂0), so its tangent is the same map of (u, J·u).
            *od = output(self.prediction, level, uj, ju) as f32;
        }
        Ok(())
    }
}

/// v = a²σ² + b².
#[inline]
fn variance(level: NoiseLevel, sigma: f64) -> f64 {
    level.a * level.a * sigma * sigma + level.b2
}

/// The per-component contraction aσ²/v (the Jacobian of m_k, and J for one component).
#[inline]
fn shrink(level: NoiseLevel, sigma: f64) -> f64 {
    level.a * sigma * sigma / variance(level, sigma)
}

/// m = μ + (aσ²/v)(x − aμ).
#[inline]
fn component_mean(level: NoiseLevel, x: f64, mu: f64, sigma: f64) -> f64 {
    mu + shrink(level, sigma) * (x - level.a * mu)
}

/// μ_kj from a component's mean row.
#[inline]
fn mean_at(mean: &[f32], j: usize) -> f64 {
    mean.get(j).copied().map_or(0.0, f64::from)
}

/// σ_kj from a component's std row: entry j of a diagonal row, the single entry of an
/// isotropic one.
#[inline]
fn std_at(std: &[f32], j: usize) -> f64 {
    std.get(j).or(std.first()).copied().map_or(0.0, f64::from)
}

/// The denoiser output from x and x̂0: x̂0, ε̂ = (x − a·x̂0)/b or v̂ = a·ε̂ − b·x̂0.
#[inline]
fn output(prediction: Prediction, level: NoiseLevel, x: f64, x0: f64) -> f64 {
    let eps = || (x - level.a * x0) / level.b;
    match prediction {
        Prediction::Sample => x0,
        Prediction::Epsilon => eps(),
        Prediction::Velocity => level.a * eps() - level.b * x0,
    }
}

impl Denoiser for ExactGmm<'_> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn prediction(&self) -> Prediction {
        self.prediction
    }

    fn scratch_len(&self) -> usize {
        0
    }

    /// # Errors
    /// Besides the length checks: [`Error::StepOutOfRange`] if `model_t` is not in the
    /// schedule, [`Error::NonFinite`]`("x")` for a NaN/∞ input, [`Error::NonFinite`] when an
    /// output overflows f32 (|x| near `f32::MAX`), [`Error::InvalidParameter`] when a zero σ
    /// meets ᾱ = 1.
    fn predict(
        &self,
        model_t: u32,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        check_lengths(self.dim, x.len(), out.len(), scratch.len(), 0)?;
        let level = self.noise_level(model_t)?;
        for (xs, os) in x.chunks_exact(self.dim).zip(out.chunks_exact_mut(self.dim)) {
            self.predict_one(level, xs, os)?;
        }
        Ok(())
    }

    fn predict_jvp(
        &self,
        model_t: u32,
        x: &[f32],
        tangent: &[f32],
        out: &mut [f32],
        tangent_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        check_lengths(self.dim, x.len(), out.len(), scratch.len(), 0)?;
        if tangent.len() != x.len() {
            return Err(Error::LengthMismatch("tangent"));
        }
        if tangent_out.len() != x.len() {
            return Err(Error::LengthMismatch("tangent_out"));
        }
        let level = self.noise_level(model_t)?;
        let samples = x
            .chunks_exact(self.dim)
            .zip(tangent.chunks_exact(self.dim))
            .zip(
                out.chunks_exact_mut(self.dim)
                    .zip(tangent_out.chunks_exact_mut(self.dim)),
            );
        for ((xs, us), (os, uos)) in samples {
            self.jvp_one(level, xs, us, os, uos)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{BetaSchedule, Spacing, compute_tables, table_len};
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};
    use std::vec;
    use std::vec::Vec;

    const T: usize = 1000;

    fn tables(beta: &BetaSchedule, train: usize, spacing: &Spacing, steps: usize) -> Vec<f32> {
        let mut buf = vec![0.0f32; table_len(steps)];
        compute_tables(beta, train, spacing, steps, &mut buf).unwrap();
        buf
    }

    fn paper_tables() -> Vec<f32> {
        tables(&BetaSchedule::PAPER, T, &Spacing::Linspace, T)
    }

    fn uniform(rng: &mut ChaCha8Rng) -> f64 {
        (rng.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        let u1 = 1.0 - uniform(rng);
        let u2 = uniform(rng);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A diagonal 2D mixture with unequal, unnormalised weights and two overlapping modes.
    struct Mix {
        means: Vec<f32>,
        stds: Vec<f32>,
        weights: Vec<f32>,
    }

    fn mix2d() -> Mix {
        Mix {
            means: vec![0.0, 0.0, 0.15, 0.0, 1.0, 1.0],
            stds: vec![0.05, 0.05, 0.08, 0.03, 0.1, 0.1],
            weights: vec![5.0, 3.0, 2.0],
        }
    }

    fn level(schedule: &Schedule, t: usize) -> (f64, f64) {
        let c = schedule.coefs(t).unwrap();
        (c.sqrt_alpha_bar as f64, c.one_minus_alpha_bar as f64)
    }

    /// Independent f64 posterior quantities (§6.1, full Gaussian densities, plain
    /// normalisation): (r, m, g, x̂0) for one x, diagonal components.
    struct Post {
        r: Vec<f64>,
        m: Vec<Vec<f64>>,
        g: Vec<Vec<f64>>,
        v: Vec<Vec<f64>>,
        x0: Vec<f64>,
    }

    fn posterior(mix: &Mix, d: usize, a: f64, b2: f64, x: &[f64]) -> Post {
        let k = mix.weights.len();
        let wsum: f64 = mix.weights.iter().map(|&w| w as f64).sum();
        let (mut dens, mut m, mut g, mut vs) = (vec![], vec![], vec![], vec![]);
        for c in 0..k {
            let mu: Vec<f64> = (0..d).map(|j| mix.means[c * d + j] as f64).collect();
            let sd: Vec<f64> = (0..d)
                .map(|j| mix.stds[if mix.stds.len() == k { c } else { c * d + j }] as f64)
                .collect();
            let v: Vec<f64> = sd.iter().map(|s| a * a * s * s + b2).collect();
            let mut p = mix.weights[c] as f64 / wsum;
            for j in 0..d {
                let dev = x[j] - a * mu[j];
                p *= (-dev * dev / (2.0 * v[j])).exp() / (2.0 * std::f64::consts::PI * v[j]).sqrt();
            }
            dens.push(p);
            m.push(
                (0..d)
                    .map(|j| mu[j] + a * sd[j] * sd[j] / v[j] * (x[j] - a * mu[j]))
                    .collect::<Vec<_>>(),
            );
            g.push(
                (0..d)
                    .map(|j| -(x[j] - a * mu[j]) / v[j])
                    .collect::<Vec<_>>(),
            );
            vs.push(v);
        }
        let total: f64 = dens.iter().sum();
        let r: Vec<f64> = dens.iter().map(|p| p / total).collect();
        let x0 = (0..d)
            .map(|j| (0..k).map(|c| r[c] * m[c][j]).sum())
            .collect();
        Post { r, m, g, v: vs, x0 }
    }

    fn gmm<'a>(mix: &'a Mix, d: usize, s: Schedule<'a>, p: Prediction) -> ExactGmm<'a> {
        ExactGmm::new(d, &mix.means, &mix.stds, &mix.weights, s, p).unwrap()
    }

    fn x0_hat(g: &ExactGmm, t: u32, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; x.len()];
        g.predict(t, x, &mut out, &mut []).unwrap();
        out
    }

    #[test]
    fn schedule_without_its_tables_is_refused() {
        let mix = mix2d();
        let buf = paper_tables();
        let full = Schedule::from_tables(&buf, T).unwrap();
        // A model file's sampler subset has neither ModelT nor √ᾱ.
        let set = crate::SamplerConfig::PAPER.tables();
        let data: Vec<f32> = Table::ALL
            .iter()
            .filter(|&&t| set.contains(t))
            .flat_map(|&t| full.table(t).iter().copied())
            .collect();
        let subset = Schedule::from_table_subset(&data, T, set).unwrap();
        let err = ExactGmm::new(
            2,
            &mix.means,
            &mix.stds,
            &mix.weights,
            subset,
            Prediction::Sample,
        );
        assert_eq!(err.err(), Some(Error::MissingTable(Table::ModelT.name())));
    }

    #[test]
    fn posterior_mean_matches_importance_sampling() {
        let mix = mix2d();
        let buf = paper_tables();
        let schedule = Schedule::from_tables(&buf, T).unwrap();
        let g = gmm(&mix, 2, schedule, Prediction::Sample);
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let wsum: f64 = mix.weights.iter().map(|&w| w as f64).sum();
        // x_t = a·anchor: near the overlapping pair at small t, anywhere at large t.
        let cases: [(usize, [f64; 2]); 6] = [
            (0, [0.07, 0.01]),
            (0, [0.12, -0.03]),
            (5, [0.1, -0.02]),
            (50, [0.5, 0.4]),
            (200, [0.3, -0.5]),
            (200, [3.0, 2.0]),
        ];
        for (t, anchor) in cases {
            let (a, b2) = level(&schedule, t);
            let x: Vec<f32> = anchor.iter().map(|&v| (a * v) as f32).collect();
            let n = 400_000;
            let (mut sw, mut sw2) = (0.0f64, 0.0f64);
            let mut swx = [0.0f64; 2];
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let mut u = uniform(&mut rng) * wsum;
                let mut c = 0;
                while c + 1 < mix.weights.len() && u >= mix.weights[c] as f64 {
                    u -= mix.weights[c] as f64;
                    c += 1;
                }
                let x0: [f64; 2] = core::array::from_fn(|j| {
                    mix.means[2 * c + j] as f64 + mix.stds[2 * c + j] as f64 * normal(&mut rng)
                });
                let dist2: f64 = (0..2).map(|j| (x[j] as f64 - a * x0[j]).powi(2)).sum();
                let w = (-dist2 / (2.0 * b2)).exp();
                sw += w;
                sw2 += w * w;
                for j in 0..2 {
                    swx[j] += w * x0[j];
                }
                samples.push((w, x0));
            }
            let ess = sw * sw / sw2;
            assert!(ess > 1000.0, "t {t}: effective sample size {ess}");
            let got = x0_hat(&g, t as u32, &x);
            for j in 0..2 {
                let est = swx[j] / sw;
                let se = (samples
                    .iter()
                    .map(|(w, x0)| (w * (x0[j] - est)).powi(2))
                    .sum::<f64>())
                .sqrt()
                    / sw;
                let err = (got[j] as f64 - est).abs();
                assert!(
                    err <= 3.0 * se + 1e-6,
                    "t {t} j {j}: exact {} vs IS {est} ± {se}",
                    got[j]
                );
            }
        }
    }

    #[test]
    fn matches_independent_f64_posterior_mean() {
        let mix = mix2d();
        let buf = paper_tables();
        let schedule = Schedule::from_tables(&buf, T).unwrap();
        let g = gmm(&mix, 2, schedule, Prediction::Sample);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for t in [0usize, 1, 9, 49, 120, 400, 999] {
            let (a, b2) = level(&schedule, t);
            let x: Vec<f32> = (0..8)
                .map(|_| (normal(&mut rng) * 0.7 + 0.3) as f32)
                .collect();
            let got = x0_hat(&g, t as u32, &x);
            for (xs, gs) in x.chunks(2).zip(got.chunks(2)) {
                let xs: Vec<f64> = xs.iter().map(|&v| v as f64).collect();
                let p = posterior(&mix, 2, a, b2, &xs);
                for (&got, &want) in gs.iter().zip(&p.x0) {
                    assert!(
                        (got as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                        "t {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn limits_at_no_noise_and_pure_noise() {
        let mix = mix2d();
        // ᾱ → 1: a custom schedule whose first β is 1e-9.
        let betas: Vec<f64> = (0..20)
            .map(|i| if i == 0 { 1e-9 } else { 0.01 * i as f64 })
            .collect();
        let custom = tables(&BetaSchedule::Custom(&betas), 20, &Spacing::Linspace, 20);
        let s_custom = Schedule::from_tables(&custom, 20).unwrap();
        let g = gmm(&mix, 2, s_custom, Prediction::Sample);
        let x = [0.3f32, -0.2, 1.7, 0.9, -2.0, 0.01];
        for (o, &xi) in x0_hat(&g, 0, &x).iter().zip(&x) {
            assert!((o - xi).abs() <= 1e-5 * (1.0 + xi.abs()), "{o} vs {xi}");
        }
        // ᾱ → 0 (paper t = 999, ᾱ ≈ 1.3e-47): the weighted mean of the means.
        let buf = paper_tables();
        let g = gmm(
            &mix,
            2,
            Schedule::from_tables(&buf, T).unwrap(),
            Prediction::Sample,
        );
        let wsum: f32 = mix.weights.iter().sum();
        let centre: Vec<f32> = (0..2)
            .map(|j| {
                (0..3)
                    .map(|c| mix.weights[c] * mix.means[2 * c + j])
                    .sum::<f32>()
                    / wsum
            })
            .collect();
        for (pair, _) in x0_hat(&g, 999, &x).chunks(2).zip(0..) {
            for j in 0..2 {
                assert!(
                    (pair[j] - centre[j]).abs() <= 1e-6,
                    "{pair:?} vs {centre:?}"
                );
            }
        }
    }

    #[test]
    fn epsilon_and_velocity_outputs_agree_with_x0() {
        let mix = mix2d();
        let buf = paper_tables();
        let schedule = Schedule::from_tables(&buf, T).unwrap();
        let (g0, ge, gv) = (
            gmm(&mix, 2, schedule, Prediction::Sample),
            gmm(&mix, 2, schedule, Prediction::Epsilon),
            gmm(&mix, 2, schedule, Prediction::Velocity),
        );
        assert_eq!(ge.prediction(), Prediction::Epsilon);
        let x = [0.05f32, 0.02, 0.4, 0.6, -1.0, 2.0];
        for t in [0u32, 3, 30, 300, 999] {
            let (a, b2) = level(&schedule, t as usize);
            let b = b2.sqrt();
            let x0 = x0_hat(&g0, t, &x);
            let eps = x0_hat(&ge, t, &x);
            let vel = x0_hat(&gv, t, &x);
            for i in 0..x.len() {
                let want_eps = (x[i] as f64 - a * x0[i] as f64) / b;
                assert!(
                    (eps[i] as f64 - want_eps).abs() <= 1e-5 * (1.0 + want_eps.abs()),
                    "t {t}"
                );
                let want_v = a * want_eps - b * x0[i] as f64;
                assert!(
                    (vel[i] as f64 - want_v).abs() <= 1e-5 * (1.0 + want_v.abs()),
                    "t {t}"
                );
            }
        }
    }

    /// J column by column from the JVP with basis directions.
    fn jacobian(g: &ExactGmm, t: u32, x: &[f32]) -> Vec<Vec<f64>> {
        let d = x.len();
        let mut cols = vec![];
        for j in 0..d {
            let mut e = vec![0.0f32; d];
            e[j] = 1.0;
            let mut out = vec![0.0f32; d];
            let mut col = vec![0.0f32; d];
            g.predict_jvp(t, x, &e, &mut out, &mut col, &mut [])
                .unwrap();
            assert_eq!(out, x0_hat(g, t, x), "the JVP's primal is predict");
            cols.push(col.iter().map(|&v| v as f64).collect::<Vec<f64>>());
        }
        (0..d)
            .map(|i| (0..d).map(|j| cols[j][i]).collect())
            .collect()
    }

    #[test]
    fn jacobian_matches_differences_hessian_and_covariance() {
        let mix = mix2d();
        let buf = paper_tables();
        let schedule = Schedule::from_tables(&buf, T).unwrap();
        let g = gmm(&mix, 2, schedule, Prediction::Sample);
        let ge = gmm(&mix, 2, schedule, Prediction::Epsilon);
        for (t, x) in [
            (0usize, [0.08f32, 0.01]),
            (2, [0.1, -0.02]),
            (20, [0.4, 0.3]),
            (100, [0.2, 0.1]),
            (300, [1.0, -1.0]),
        ] {
            let (a, b2) = level(&schedule, t);
            let j_got = jacobian(&g, t as u32, &x);
            let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let p = posterior(&mix, 2, a, b2, &xs);
            let scale = j_got.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
            let tol = 2e-6 * scale + 1e-9;
            // Central differences of the independent f64 posterior mean.
            let h = 1e-6;
            for jcol in 0..2 {
                let mut xp = xs.clone();
                let mut xm = xs.clone();
                xp[jcol] += h;
                xm[jcol] -= h;
                let (pp, pm) = (
                    posterior(&mix, 2, a, b2, &xp),
                    posterior(&mix, 2, a, b2, &xm),
                );
                for (i, row) in j_got.iter().enumerate() {
                    let fd = (pp.x0[i] - pm.x0[i]) / (2.0 * h);
                    assert!(
                        (row[jcol] - fd).abs() <= tol + 1e-6 * fd.abs(),
                        "t {t} J[{i}][{jcol}] {} vs fd {fd}",
                        row[jcol]
                    );
                }
            }
            // Tweedie: J = (I + b²·∇²ln p_t)/a, Hessian = Σ r_k(−diag(1/v_k) + g_k g_kᵀ) − g gᵀ.
            let gbar: Vec<f64> = (0..2)
                .map(|i| (0..3).map(|c| p.r[c] * p.g[c][i]).sum())
                .collect();
            // Covariance: Cov = Σ r_k(diag(σ_k² b²/v_k) + m_k m_kᵀ) − x̂0 x̂0ᵀ, J = (a/b²)·Cov.
            for i in 0..2 {
                for jj in 0..2 {
                    let mut hess = -gbar[i] * gbar[jj];
                    let mut cov = -p.x0[i] * p.x0[jj];
                    for c in 0..3 {
                        let diag = if i == jj { 1.0 } else { 0.0 };
                        let sd = mix.stds[2 * c + i] as f64;
                        hess += p.r[c] * (-diag / p.v[c][i] + p.g[c][i] * p.g[c][jj]);
                        cov += p.r[c] * (diag * sd * sd * b2 / p.v[c][i] + p.m[c][i] * p.m[c][jj]);
                    }
                    let eye = if i == jj { 1.0 } else { 0.0 };
                    let tweedie = (eye + b2 * hess) / a;
                    let from_cov = a / b2 * cov;
                    let got = j_got[i][jj];
                    assert!(
                        (got - tweedie).abs() <= tol + 1e-6 * tweedie.abs(),
                        "t {t}: {got} vs Tweedie {tweedie}"
                    );
                    assert!(
                        (got - from_cov).abs() <= tol + 1e-6 * from_cov.abs(),
                        "t {t}: {got} vs Cov {from_cov}"
                    );
                }
            }
            // The ε-output tangent is (u − a·J·u)/b.
            let mut out = [0.0f32; 2];
            let mut eps_dot = [0.0f32; 2];
            ge.predict_jvp(t as u32, &x, &[1.0, 0.0], &mut out, &mut eps_dot, &mut [])
                .unwrap();
            for i in 0..2 {
                let want = ((if i == 0 { 1.0 } else { 0.0 }) - a * j_got[i][0]) / b2.sqrt();
                assert!(
                    (eps_dot[i] as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "t {t}"
                );
            }
        }
    }

    #[test]
    fn trace_at_a_mode_centre_is_the_single_component_contraction() {
        // Well separated isotropic modes in d = 3: at x = a·μ_1, g_1 = 0 and the other
        // responsibilities are ≈ exp(−a²‖Δμ‖²/(2v)) ≈ 0, so J = Σ r_k (aσ²/v) I + 0 and
        // tr J = d·aσ²/(a²σ² + b²).
        let means = [1.0f32, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 3.0, 1.0];
        let stds = [0.05f32; 3];
        let weights = [1.0f32, 2.0, 1.0];
        let buf = paper_tables();
        let schedule = Schedule::from_tables(&buf, T).unwrap();
        let g = ExactGmm::new(3, &means, &stds, &weights, schedule, Prediction::Sample).unwrap();
        assert_eq!(g.components(), 3);
        let sigma = 0.05f64;
        let mut previous_gap = f64::INFINITY;
        for t in [40usize, 20, 5, 0] {
            let (a, b2) = level(&schedule, t);
            let x: Vec<f32> = means[..3].iter().map(|&m| (a * m as f64) as f32).collect();
            let j = jacobian(&g, t as u32, &x);
            let trace: f64 = (0..3).map(|i| j[i][i]).sum();
            let want = 3.0 * a * sigma * sigma / (a * a * sigma * sigma + b2);
            let gap = (trace - want).abs() / want;
            if t <= 5 {
                assert!(gap < 1e-5, "t {t}: trace {trace} vs {want}");
            }
            assert!(
                gap <= previous_gap + 1e-6,
                "t {t}: the gap should shrink as t → 0"
            );
            previous_gap = gap;
        }
    }

    #[test]
    fn respaced_schedule_gives_the_same_denoiser() {
        let mix = mix2d();
        let full = paper_tables();
        let resp = tables(&BetaSchedule::PAPER, T, &Spacing::Linspace, 50);
        let s_full = Schedule::from_tables(&full, T).unwrap();
        let s_resp = Schedule::from_tables(&resp, 50).unwrap();
        let (gf, gr) = (
            gmm(&mix, 2, s_full, Prediction::Epsilon),
            gmm(&mix, 2, s_resp, Prediction::Epsilon),
        );
        let x = [0.2f32, 0.1];
        for &t in s_resp.table(Table::ModelT) {
            let (a, b) = (x0_hat(&gf, t as u32, &x), x0_hat(&gr, t as u32, &x));
            for (p, q) in a.iter().zip(&b) {
                assert!(
                    (p - q).abs() <= 1e-4 * (1.0 + p.abs()),
                    "t {t}: {a:?} vs {b:?}"
                );
            }
        }
        let mut out = [0.0f32; 2];
        assert_eq!(
            gr.predict(1, &x, &mut out, &mut []),
            Err(Error::StepOutOfRange)
        );
        assert_eq!(
            gf.predict(1000, &x, &mut out, &mut []),
            Err(Error::StepOutOfRange)
        );
    }

    #[test]
    fn bad_input_is_a_named_error() {
        let buf = paper_tables();
        let s = Schedule::from_tables(&buf, T).unwrap();
        let p = Prediction::Epsilon;
        let many = vec![0.0f32; MAX_COMPONENTS + 1];
        let ones = vec![1.0f32; MAX_COMPONENTS + 1];
        assert!(
            ExactGmm::new(
                1,
                &many[..MAX_COMPONENTS],
                &ones[..MAX_COMPONENTS],
                &ones[..MAX_COMPONENTS],
                s,
                p
            )
            .is_ok()
        );
        assert!(matches!(
            ExactGmm::new(1, &many, &ones, &ones, s, p),
            Err(Error::CapacityExceeded(_))
        ));
        let m = [0.0f32, 1.0];
        for bad in [f32::NAN, -0.1, f32::INFINITY] {
            assert!(matches!(
                ExactGmm::new(1, &m, &[0.1, bad], &[1.0, 1.0], s, p),
                Err(Error::InvalidParameter(_))
            ));
            assert!(matches!(
                ExactGmm::new(1, &m, &[0.1, 0.1], &[1.0, bad], s, p),
                Err(Error::InvalidParameter(_))
            ));
        }
        assert!(matches!(
            ExactGmm::new(1, &m, &[0.1, 0.1], &[0.0, 0.0], s, p),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            ExactGmm::new(1, &[], &[], &[], s, p),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            ExactGmm::new(0, &m, &[0.1, 0.1], &[1.0, 1.0], s, p),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            ExactGmm::new(1, &m[..1], &[0.1, 0.1], &[1.0, 1.0], s, p),
            Err(Error::LengthMismatch(_))
        ));
        assert!(matches!(
            ExactGmm::new(1, &m, &[0.1, 0.1, 0.1], &[1.0, 1.0], s, p),
            Err(Error::LengthMismatch(_))
        ));
        assert!(matches!(
            ExactGmm::new(2, &m, &[0.1, 0.1, 0.1], &[1.0], s, p),
            Err(Error::LengthMismatch(_))
        ));
        assert!(matches!(
            ExactGmm::new(1, &[0.0, f32::NAN], &[0.1, 0.1], &[1.0, 1.0], s, p),
            Err(Error::NonFinite(_))
        ));
        let g = ExactGmm::new(1, &m, &[0.1, 0.0], &[1.0, 1.0], s, p).unwrap();
        let mut out = [0.0f32; 2];
        assert_eq!(
            g.predict(0, &[f32::NAN, 1.0], &mut out, &mut []),
            Err(Error::NonFinite("x"))
        );
        assert_eq!(
            g.predict(0, &[1.0, 1.0], &mut out[..1], &mut []),
            Err(Error::LengthMismatch("out"))
        );
        let mut tan = [0.0f32; 1];
        assert_eq!(
            g.predict_jvp(0, &[1.0], &[1.0], &mut out[..1], &mut tan, &mut []),
            Ok(())
        );
        assert_eq!(
            g.predict_jvp(0, &[1.0], &[1.0, 2.0], &mut out[..1], &mut tan, &mut []),
            Err(Error::LengthMismatch("tangent"))
        );
        assert_eq!(g.scratch_len(), 0);
    }
}
