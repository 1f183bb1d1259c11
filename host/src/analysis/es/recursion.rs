//! Closed-form exposure-bias recursions (Ning et al. 2024, *Elucidating the Exposure Bias in
//! Diffusion Models*; papers.md §2.2 "Error model", §6.2).
//!
//! - Error model: x̂0 = x0 + e_t with e_t ~ N(0, φ²I). The excess variance of x_t over the exact
//!   marginal obeys Δ_{t−1} = c1_t²φ² + c2_t²Δ_t from Δ = 0 at the first step; after the last step
//!   (c1 = 1, c2 = 0) Δ = φ².
//! - Epsilon Scaling with a perfect denoiser on data N(0, s²): the sampler's mean is linear in x_t,
//!   μ = A_t(λ)x_t with gain A_t(λ) = α_t^{−1/2}(1 − β_t/(λ(ᾱ_t s² + 1 − ᾱ_t))), and the sample
//!   variance evolves as Var ← A²Var + σ_t² (σ_t² = β̃_t fixed-small or β_t fixed-large; no noise at
//!   the last step), from Var = 1 (x_T ~ N(0, I)).

use anyhow::{Result, ensure};

use super::schedule64::Respaced;

/// Δ entering each respaced step: `out[i]` is the excess variance of the x_i fed to step i
/// (`out[T′−1] = 0`), and the last entry `out[T′]`… is not stored; see [`excess_after_last`].
///
/// # Errors
/// Fails on a non-finite or negative φ.
pub fn excess_entering(sched: &Respaced, phi: f64) -> Result<Vec<f64>> {
    ensure!(
        phi.is_finite() && phi >= 0.0,
        "φ must be finite and ≥ 0, got {phi}"
    );
    let n = sched.steps();
    let mut out = vec![0.0; n];
    for i in (1..n).rev() {
        out[i - 1] =
            sched.posterior_c1[i].powi(2) * phi * phi + sched.posterior_c2[i].powi(2) * out[i];
    }
    Ok(out)
}

/// Δ after the last step: c1_0²φ² + c2_0²Δ_0 (= φ², since c1_0 = 1 and c2_0 = 0).
///
/// # Errors
/// As [`excess_entering`].
pub fn excess_after_last(sched: &Respaced, phi: f64) -> Result<f64> {
    let entering = excess_entering(sched, phi)?;
    Ok(sched.posterior_c1[0].powi(2) * phi * phi + sched.posterior_c2[0].powi(2) * entering[0])
}

/// The ES gain A_i(λ) = α_i^{−1/2}(1 − β_i/(λ(ᾱ_i s² + 1 − ᾱ_i))) of respaced step i.
pub fn es_gain(sched: &Respaced, i: usize, lambda: f64, data_var: f64) -> f64 {
    let (ab, beta, alpha) = (sched.alpha_bar[i], sched.beta[i], sched.alpha[i]);
    (1.0 - beta / (lambda * (ab * data_var + 1.0 - ab))) / alpha.sqrt()
}

/// Which reverse-step variance the recursion adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepVariance {
    /// σ² = β̃ (posterior variance).
    FixedSmall,
    /// σ² = β′.
    FixedLarge,
}

/// Final sample variance of the perfect-denoiser ES sampler on N(0, s²) with constant λ, from
/// Var = 1: Var ← A_i(λ)²Var + [i > 0]σ_i² for i = T′−1 … 0. Returns the variance after every
/// step (`out[i]` = Var after step i; `out[0]` is the final variance).
///
/// # Errors
/// Fails on non-positive or non-finite λ or s².
pub fn es_variance_trace(
    sched: &Respaced,
    lambda: f64,
    data_var: f64,
    variance: StepVariance,
) -> Result<Vec<f64>> {
    ensure!(
        lambda.is_finite() && lambda > 0.0,
        "λ must be finite and > 0, got {lambda}"
    );
    ensure!(
        data_var.is_finite() && data_var > 0.0,
        "data variance must be finite and > 0, got {data_var}"
    );
    let n = sched.steps();
    let mut out = vec![0.0; n];
    let mut var = 1.0;
    for i in (0..n).rev() {
        let gain = es_gain(sched, i, lambda, data_var);
        let noise = match (i, variance) {
            (0, _) => 0.0,
            (_, StepVariance::FixedSmall) => sched.posterior_variance[i],
            (_, StepVariance::FixedLarge) => sched.beta[i],
        };
        var = gain * gain * var + noise;
        out[i] = var;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::schedule64::Betas;
    use super::*;

    fn cosine(steps: usize) -> Respaced {
        Respaced::even(&Betas::COSINE, 1000, steps).unwrap()
    }

    #[test]
    fn excess_variance_table_of_section_2_4() {
        // papers.md §2.4 (our derivation): Δ entering steps 1 / 0.
        for (steps, phi, d1, d0) in [
            (20, 0.1, 0.00531, 0.00991),
            (20, 0.05, 0.00133, 0.00248),
            (100, 0.1, 0.00422, 0.00890),
        ] {
            let s = cosine(steps);
            let delta = excess_entering(&s, phi).unwrap();
            assert!(
                (delta[1] - d1).abs() < 5e-6,
                "T′ = {steps}, φ = {phi}: Δ_1 = {}",
                delta[1]
            );
            assert!(
                (delta[0] - d0).abs() < 5e-6,
                "T′ = {steps}, φ = {phi}: Δ_0 = {}",
                delta[0]
            );
            assert!(delta.iter().all(|&d| d >= 0.0));
            assert!((excess_after_last(&s, phi).unwrap() - phi * phi).abs() < 1e-15);
        }
    }

    #[test]
    fn excess_recursion_matches_a_monte_carlo_of_the_error_model() {
        // Simulate the error model directly: x_{t−1} = c1(x0 + φe) + c2 x_t + σ z from an exact
        // x_T, and compare Var(x_{t−1} − exact-chain x_{t−1}) with Δ. Coupled chains share z.
        let s = cosine(20);
        let phi = 0.1;
        let delta = excess_entering(&s, phi).unwrap();
        let n = 20_000;
        // SplitMix64 + Box–Muller: a test-only generator independent of core's noise.
        let mut state = 7u64;
        let mut uniform = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / 9_007_199_254_740_992.0 + 0.5 / 9_007_199_254_740_992.0
        };
        let mut normal = || {
            let (u1, u2) = (uniform(), uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * core::f64::consts::PI * u2).cos()
        };
        let mut sum_sq = 0.0;
        for _ in 0..n {
            let x0 = normal();
            let ab_top = s.alpha_bar[19];
            let start = ab_top.sqrt() * x0 + (1.0 - ab_top).sqrt() * normal();
            let (mut exact, mut noisy) = (start, start);
            for i in (1..20).rev() {
                let z = normal();
                let sigma = s.posterior_variance[i].sqrt();
                exact = s.posterior_c1[i] * x0 + s.posterior_c2[i] * exact + sigma * z;
                noisy = s.posterior_c1[i] * (x0 + phi * normal())
                    + s.posterior_c2[i] * noisy
                    + sigma * z;
            }
            sum_sq += (noisy - exact).powi(2);
        }
        let mc = sum_sq / n as f64;
        // Var of a mean of squares of N(0, Δ): SE = Δ√(2/n).
        let se = delta[0] * (2.0 / n as f64).sqrt();
        assert!(
            (mc - delta[0]).abs() < 4.0 * se,
            "MC {mc} vs Δ_0 {}",
            delta[0]
        );
    }

    #[test]
    fn perfect_denoiser_es_variance_table_of_section_2_4() {
        let table = [
            (20, [0.1847, 0.2196, 0.6490, 6.6057]),
            (100, [0.2326, 0.2351, 0.2417, 0.2695]),
        ];
        for (steps, want) in table {
            let s = cosine(steps);
            for (lambda, w) in [1.0, 1.005, 1.017, 1.05].into_iter().zip(want) {
                let v = es_variance_trace(&s, lambda, 0.25, StepVariance::FixedSmall).unwrap()[0];
                assert!(
                    (v - w).abs() < 5e-4 * w.max(1.0),
                    "T′ = {steps}, λ = {lambda}: {v} vs {w}"
                );
            }
        }
        // papers.md §2.3: first step of 20, gain 6e−4 at λ = 1 and ≈ 80 at λ = 1.05.
        let s = cosine(20);
        assert!((es_gain(&s, 19, 1.0, 0.25) / 6e-4 - 1.0).abs() < 0.1);
        assert!((es_gain(&s, 19, 1.05, 0.25) / 80.0 - 1.0).abs() < 0.1);
        assert!(es_variance_trace(&s, 0.0, 0.25, StepVariance::FixedSmall).is_err());
    }
}
