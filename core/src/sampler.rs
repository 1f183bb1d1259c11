//! One reverse step x_t → x_{t−1} of DDPM (Ho et al. 2020) or DDIM (Song et al. 2021), with
//! Epsilon Scaling (Ning et al. 2024) and optional clipping; it always returns x̂0 beside
//! x_{t−1} (Hal needs it: Aithal et al. 2024). Equations (`papers.md` §1.2, §2.2; tables from
//! [`crate::schedule`], index i the respaced step, model time τ_i):
//!
//! ```text
//! ε̂  from the prediction:  ε: ε̂ = out;  x0: ε̂ = (x − √ᾱ x̂0)/√(1−ᾱ);  v: ε̂ = √ᾱ v + √(1−ᾱ) x
//! ES:                      ε̂ ← ε̂/λ_i,  λ_i = b + k·i (constant: k = 0; off: λ = 1)
//! x̂0 = x/√ᾱ − √(1/ᾱ − 1)·ε̂            clip: x̂0 ← clamp(x̂0, −r, r), ε̂ ← (x − √ᾱ x̂0)/√(1−ᾱ)
//! DDPM, unclipped: μ = (x − β/√(1−ᾱ)·ε̂)/√α   (the ε-form, papers.md §1.3.2)
//! DDPM, clipped:   μ = c1·x̂0 + c2·x
//!                  x_{t−1} = μ + [i > 0]·σ z,  σ = √β (fixed-large) or √β̃ (fixed-small)
//! DDIM:            σ = η·√β̃,  x_{t−1} = √ᾱ_prev x̂0 + √max(0, 1 − ᾱ_prev − σ²)·ε̂ + [i > 0]·σ z
//! ```
//!
//! For x0- and v-prediction x̂0 is taken from the network output directly
//! (x0: x̂0 = out; v: x̂0 = √ᾱ x − √(1−ᾱ) v) and, when λ ≠ 1, shifted by
//! √(1/ᾱ − 1)·(ε̂ − ε̂/λ): the same x̂0 as the formula above, without forming 1/√ᾱ·x where
//! ᾱ is tiny. With λ = 1 (ES off, or a constant or linear λ that equals 1 at i) the scaling
//! is skipped, so such a step is bit-identical to one without ES.

use crate::error::Error;
use crate::schedule::{Schedule, StepCoefs, Table, TableSet};

/// What the network predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prediction {
    /// The noise ε (Ho et al. 2020; the paper's models).
    Epsilon,
    /// The clean sample x0.
    Sample,
    /// The velocity v = √ᾱ ε − √(1 − ᾱ) x0 (Salimans & Ho 2022).
    Velocity,
}

/// DDPM reverse-step variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variance {
    /// σ² = β̃ (the posterior variance).
    FixedSmall,
    /// σ² = β (the paper's sampler).
    FixedLarge,
}

/// The reverse-step update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Ancestral DDPM with the given variance.
    Ddpm(Variance),
    /// DDIM with σ = η·√β̃, η ∈ [0, 1] (0: deterministic, 1: DDPM fixed-small marginals).
    Ddim {
        /// η.
        eta: f32,
    },
}

/// Clipping of x̂0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clip {
    /// No clipping.
    None,
    /// Clamp x̂0 to [−r, r] (r > 0; images use 1).
    Symmetric(f32),
}

/// Epsilon Scaling (Ning et al. 2024): ε̂ ← ε̂/λ_i inside the step; the network input is unchanged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EpsilonScaling {
    /// λ = 1.
    Off,
    /// λ_i = b for every step.
    Constant(f32),
    /// λ_i = b + k·i, i the respaced index (T′ − 1 first, 0 last; `papers.md` D8).
    Linear {
        /// Slope k.
        k: f32,
        /// Intercept b (λ at the last step).
        b: f32,
    },
}

/// Everything a step needs besides the schedule and the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// DDPM or DDIM.
    pub method: Method,
    /// What the model output means.
    pub prediction: Prediction,
    /// Clipping of x̂0.
    pub clip: Clip,
    /// Epsilon Scaling.
    pub eps_scaling: EpsilonScaling,
}

impl SamplerConfig {
    /// The paper's sampler (Aithal et al. 2024): DDPM, fixed-large variance, ε-prediction,
    /// no clipping, no Epsilon Scaling.
    pub const PAPER: Self = Self {
        method: Method::Ddpm(Variance::FixedLarge),
        prediction: Prediction::Epsilon,
        clip: Clip::None,
        eps_scaling: EpsilonScaling::Off,
    };

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if η is outside [0, 1] or NaN, the clip radius is not a
    /// finite positive number, a constant λ is not finite and positive, or a linear λ's b is
    /// not finite and positive or its k is not finite.
    pub fn validate(&self) -> Result<(), Error> {
        let eta_ok = match self.method {
            Method::Ddim { eta } => (0.0..=1.0).contains(&eta),
            Method::Ddpm(_) => true,
        };
        if !eta_ok {
            return Err(Error::InvalidParameter("DDIM eta must lie in [0, 1]"));
        }
        let clip_ok = match self.clip {
            Clip::Symmetric(radius) => radius.is_finite() && radius > 0.0,
            Clip::None => true,
        };
        if !clip_ok {
            return Err(Error::InvalidParameter(
                "clip radius must be finite and positive",
            ));
        }
        match self.eps_scaling {
            EpsilonScaling::Off => {}
            EpsilonScaling::Constant(lambda) => check_lambda(lambda)?,
            EpsilonScaling::Linear { k, b } => {
                check_lambda(b)?;
                if !k.is_finite() {
                    return Err(Error::InvalidParameter(
                        "epsilon scaling slope k must be finite",
                    ));
                }
            }
        }
        Ok(())
    }

    /// λ_i of Epsilon Scaling at respaced step `i`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if λ_i is not finite and positive.
    pub fn lambda(&self, i: usize) -> Result<f32, Error> {
        let lambda = match self.eps_scaling {
            EpsilonScaling::Off => 1.0,
            EpsilonScaling::Constant(lambda) => lambda,
            EpsilonScaling::Linear { k, b } => b + k * i as f32,
        };
        check_lambda(lambda)?;
        Ok(lambda)
    }

    /// The schedule tables [`step`] reads for this configuration (never `ModelT`, which
    /// only the trajectory reads): x̂0 from ε (1/√ᾱ, √(1/ᾱ − 1)) or from x0/v (√ᾱ, √(1−ᾱ),
    /// plus √(1/ᾱ − 1) under Epsilon Scaling), √ᾱ and √(1−ᾱ) when clipping, the mean's pair
    /// (ε-form: 1/√α, β/√(1−ᾱ); clipped DDPM: c1, c2; DDIM: √ᾱ_prev, 1 − ᾱ_prev) and σ's
    /// table (√β, √β̃; none for DDIM with η = 0). The paper's sampler reads five tables.
    pub fn tables(&self) -> TableSet {
        let x0 = match self.prediction {
            Prediction::Epsilon => {
                TableSet::of(&[Table::InvSqrtAlphaBar, Table::SqrtRecipAlphaBarMinusOne])
            }
            Prediction::Sample | Prediction::Velocity => {
                TableSet::of(&[Table::SqrtAlphaBar, Table::SqrtOneMinusAlphaBar])
            }
        };
        let scaling = match self.eps_scaling {
            EpsilonScaling::Off => TableSet::EMPTY,
            EpsilonScaling::Constant(_) | EpsilonScaling::Linear { .. } => {
                TableSet::of(&[Table::SqrtRecipAlphaBarMinusOne])
            }
        };
        let clip = match self.clip {
            Clip::None => TableSet::EMPTY,
            Clip::Symmetric(_) => TableSet::of(&[Table::SqrtAlphaBar, Table::SqrtOneMinusAlphaBar]),
        };
        let (mean, sigma) = match self.method {
            Method::Ddpm(variance) => {
                let mean = match self.clip {
                    Clip::None => TableSet::of(&[Table::InvSqrtAlpha, Table::EpsCoef]),
                    Clip::Symmetric(_) => TableSet::of(&[Table::PosteriorC1, Table::PosteriorC2]),
                };
                let sigma = match variance {
                    Variance::FixedLarge => Table::SigmaLarge,
                    Variance::FixedSmall => Table::SigmaSmall,
                };
                (mean, TableSet::of(&[sigma]))
            }
            Method::Ddim { eta } => (
                TableSet::of(&[Table::SqrtAlphaBarPrev, Table::OneMinusAlphaBarPrev]),
                if eta == 0.0 {
                    TableSet::EMPTY
                } else {
                    TableSet::of(&[Table::SigmaSmall])
                },
            ),
        };
        x0.union(scaling).union(clip).union(mean).union(sigma)
    }

    /// Whether step `i` adds noise, i.e. needs a non-empty `noise` slice in [`step`]:
    /// every step but the last (i = 0), except for deterministic DDIM (η = 0).
    pub fn needs_noise(&self, i: usize) -> bool {
        i > 0 && !matches!(self.method, Method::Ddim { eta } if eta == 0.0)
    }
}

fn check_lambda(lambda: f32) -> Result<(), Error> {
    if lambda.is_finite() && lambda > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter(
            "epsilon scaling lambda must be finite and positive",
        ))
    }
}

/// One reverse step at respaced index `i` (0 = last), elementwise.
///
/// `x_t`, `model_out`, `x_prev` and `x0_hat` may hold any number of samples back to back and
/// must have the same length. `noise` (standard normals z) has that length too, or may be
/// empty when [`SamplerConfig::needs_noise`] is false (i = 0, or DDIM with η = 0); given
/// there, it is ignored.
///
/// # Errors
/// As [`SamplerConfig::validate`] and [`SamplerConfig::lambda`]; [`Error::MissingTable`] if
/// the schedule lacks one of [`SamplerConfig::tables`]; [`Error::StepOutOfRange`] if
/// `i ≥ schedule.steps()`; [`Error::LengthMismatch`] naming the slice whose length differs
/// from `x_t` (or `noise` empty where noise is needed).
#[allow(clippy::too_many_arguments)]
pub fn step(
    cfg: &SamplerConfig,
    schedule: &Schedule,
    i: usize,
    x_t: &[f32],
    model_out: &[f32],
    noise: &[f32],
    x_prev: &mut [f32],
    x0_hat: &mut [f32],
) -> Result<(), Error> {
    cfg.validate()?;
    schedule.require(cfg.tables())?;
    let lambda = cfg.lambda(i)?;
    let c = schedule.coefs(i)?;
    let n = x_t.len();
    if model_out.len() != n {
        return Err(Error::LengthMismatch("model_out vs x_t"));
    }
    if x_prev.len() != n {
        return Err(Error::LengthMismatch("x_prev vs x_t"));
    }
    if x0_hat.len() != n {
        return Err(Error::LengthMismatch("x0_hat vs x_t"));
    }
    let add_noise = cfg.needs_noise(i);
    if noise.len() != n && (add_noise || !noise.is_empty()) {
        return Err(Error::LengthMismatch(
            "noise vs x_t (empty only where no noise is added)",
        ));
    }
    let sigma = match cfg.method {
        Method::Ddpm(Variance::FixedLarge) => c.sigma_large,
        Method::Ddpm(Variance::FixedSmall) => c.sigma_small,
        Method::Ddim { eta } => eta * c.sigma_small,
    };
    let sigma = if add_noise { sigma } else { 0.0 };
    // DDIM's direction coefficient √max(0, 1 − ᾱ_prev − σ²), once per step in f64.
    let ddim_dir = match cfg.method {
        Method::Ddim { .. } => {
            let sigma_f64 = f64::from(sigma);
            crate::math::sqrt_f64(
                (f64::from(c.one_minus_alpha_bar_prev) - sigma_f64 * sigma_f64).max(0.0),
            ) as f32
        }
        Method::Ddpm(_) => 0.0,
    };
    let radius = match cfg.clip {
        Clip::None => None,
        Clip::Symmetric(radius) => Some(radius),
    };
    let outputs = x_prev.iter_mut().zip(x0_hat.iter_mut());
    for (j, ((&x, &out), (prev, x0_slot))) in x_t.iter().zip(model_out).zip(outputs).enumerate() {
        let (mut x0, mut eps) = predict_x0_eps(cfg.prediction, &c, lambda, x, out);
        if let Some(radius) = radius {
            x0 = x0.clamp(-radius, radius);
            eps = (x - c.sqrt_alpha_bar * x0) / c.sqrt_one_minus_alpha_bar;
        }
        let mean = match cfg.method {
            Method::Ddpm(_) if radius.is_none() => c.inv_sqrt_alpha * (x - c.eps_coef * eps),
            Method::Ddpm(_) => c.posterior_c1 * x0 + c.posterior_c2 * x,
            Method::Ddim { .. } => c.sqrt_alpha_bar_prev * x0 + ddim_dir * eps,
        };
        *prev = if sigma != 0.0 {
            mean + sigma * noise.get(j).copied().unwrap_or(0.0)
        } else {
            mean
        };
        *x0_slot = x0;
    }
    Ok(())
}

/// (x̂0, ε̂) of one element after Epsilon Scaling with λ (see the module docs).
#[inline(always)]
fn predict_x0_eps(
    prediction: Prediction,
    c: &StepCoefs,
    lambda: f32,
    x: f32,
    out: f32,
) -> (f32, f32) {
    match prediction {
        Prediction::Epsilon => {
            let eps = if lambda != 1.0 { out / lambda } else { out };
            (
                c.inv_sqrt_alpha_bar * x - c.sqrt_recip_alpha_bar_minus_one * eps,
                eps,
            )
        }
        Prediction::Sample | Prediction::Velocity => {
            let (x0, eps) = if prediction == Prediction::Sample {
                (
                    out,
                    (x - c.sqrt_alpha_bar * out) / c.sqrt_one_minus_alpha_bar,
                )
            } else {
                (
                    c.sqrt_alpha_bar * x - c.sqrt_one_minus_alpha_bar * out,
                    c.sqrt_alpha_bar * out + c.sqrt_one_minus_alpha_bar * x,
                )
            };
            if lambda != 1.0 {
                let scaled = eps / lambda;
                (
                    x0 + c.sqrt_recip_alpha_bar_minus_one * (eps - scaled),
                    scaled,
                )
            } else {
                (x0, eps)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{BetaSchedule, Spacing, Table, compute_tables, table_len};
    use std::vec;
    use std::vec::Vec;

    fn tables(beta: &BetaSchedule, spacing: &Spacing, steps: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; table_len(steps)];
        compute_tables(beta, 1000, spacing, steps, &mut out).unwrap();
        out
    }

    /// Independent f64 reference of the paper schedule at full length: (β_t, ᾱ_t) for every t.
    fn paper_f64() -> Vec<(f64, f64)> {
        let mut alpha_bar = 1.0;
        (0..1000)
            .map(|t| {
                let beta = 1e-3 + (0.2 - 1e-3) * t as f64 / 999.0;
                alpha_bar *= 1.0 - beta;
                (beta, alpha_bar)
            })
            .collect()
    }

    /// The exact ε of a point mass at `x0_star`: ε* = (x − √ᾱ x0*)/√(1 − ᾱ), in f64.
    fn exact_eps(
        x: &[f32],
        x0_star: &[f32],
        sqrt_alpha_bar: f64,
        sqrt_one_minus_alpha_bar: f64,
    ) -> Vec<f32> {
        x.iter()
            .zip(x0_star)
            .map(|(&x, &x0)| {
                ((x as f64 - sqrt_alpha_bar * x0 as f64) / sqrt_one_minus_alpha_bar) as f32
            })
            .collect()
    }

    fn cfg(method: Method) -> SamplerConfig {
        SamplerConfig {
            method,
            ..SamplerConfig::PAPER
        }
    }

    /// Runs one step and returns (x_prev, x0_hat).
    fn run(
        cfg: &SamplerConfig,
        s: &Schedule,
        i: usize,
        x: &[f32],
        out: &[f32],
        noise: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let (mut prev, mut x0) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        step(cfg, s, i, x, out, noise, &mut prev, &mut x0).unwrap();
        (prev, x0)
    }

    const X0_STAR: [f32; 3] = [0.7, -1.3, 2.0];

    #[test]
    fn ddim_eta0_with_exact_denoiser_lands_on_the_point() {
        let starts: [[f32; 3]; 4] = [
            [0.0; 3],
            [1.5, -0.3, 2.2],
            [-3.0, 3.0, -1.0],
            [0.01, 12.0, -7.5],
        ];
        let cases: &[(BetaSchedule, Spacing, usize)] = &[
            (BetaSchedule::PAPER, Spacing::Linspace, 1000),
            (BetaSchedule::PAPER, Spacing::Linspace, 10),
            (BetaSchedule::PAPER, Spacing::Trailing, 50),
            (BetaSchedule::COSINE, Spacing::Leading, 20),
            (BetaSchedule::COSINE, Spacing::Linspace, 5),
            (BetaSchedule::DDPM, Spacing::Trailing, 100),
        ];
        let config = cfg(Method::Ddim { eta: 0.0 });
        for (beta, spacing, n) in cases {
            let data = tables(beta, spacing, *n);
            let s = Schedule::from_tables(&data, *n).unwrap();
            for start in &starts {
                let mut x = start.to_vec();
                for i in (0..*n).rev() {
                    // The point mass's denoiser reads √ᾱ and √(1 − ᾱ) of τ_i from the tables.
                    let (a, b) = (
                        s.table(Table::SqrtAlphaBar)[i] as f64,
                        s.table(Table::SqrtOneMinusAlphaBar)[i] as f64,
                    );
                    let eps = exact_eps(&x, &X0_STAR, a, b);
                    let (prev, _) = run(&config, &s, i, &x, &eps, &[]);
                    x = prev;
                }
                for (got, want) in x.iter().zip(X0_STAR) {
                    assert!(
                        (got - want).abs() <= 1e-4,
                        "{beta:?} {spacing:?} n = {n} from {start:?}: {x:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ddpm_step_is_the_closed_form_posterior() {
        let data = tables(&BetaSchedule::PAPER, &Spacing::Linspace, 1000);
        let s = Schedule::from_tables(&data, 1000).unwrap();
        let reference = paper_f64();
        let x: [f32; 3] = [0.4, -2.1, 1.3];
        let z: [f32; 3] = [1.0, -0.5, 2.0];
        for i in [1usize, 2, 9, 50, 99, 300, 998] {
            let (beta, alpha_bar) = reference[i];
            let alpha_bar_prev = reference[i - 1].1;
            // q(x_{t−1} | x_t, x0) in f64.
            let c1 = beta * alpha_bar_prev.sqrt() / (1.0 - alpha_bar);
            let c2 = (1.0 - beta).sqrt() * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar);
            let posterior_var = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar);
            let eps = exact_eps(&x, &X0_STAR, alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt());
            for (variance, want_var) in [
                (Variance::FixedSmall, posterior_var),
                (Variance::FixedLarge, beta),
            ] {
                let config = cfg(Method::Ddpm(variance));
                let (mean, _) = run(&config, &s, i, &x, &eps, &[0.0; 3]);
                let (noisy, _) = run(&config, &s, i, &x, &eps, &z);
                for d in 0..3 {
                    let want = c1 * X0_STAR[d] as f64 + c2 * x[d] as f64;
                    assert!(
                        (mean[d] as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()),
                        "t = {i} mean {} vs {want}",
                        mean[d]
                    );
                    let sigma = (noisy[d] as f64 - mean[d] as f64) / z[d] as f64;
                    assert!(
                        (sigma * sigma - want_var).abs() <= 1e-5 * want_var,
                        "t = {i} {variance:?}: σ² {} vs {want_var}",
                        sigma * sigma
                    );
                }
            }
        }
        // The last step adds no noise and returns x̂0 (c1 = 1, c2 = 0).
        let eps = exact_eps(
            &x,
            &X0_STAR,
            reference[0].1.sqrt(),
            (1.0 - reference[0].1).sqrt(),
        );
        let (out, x0) = run(&SamplerConfig::PAPER, &s, 0, &x, &eps, &[5.0; 3]);
        for d in 0..3 {
            assert!((out[d] - X0_STAR[d]).abs() <= 1e-5 && (x0[d] - X0_STAR[d]).abs() <= 1e-5);
        }
    }

    #[test]
    fn prediction_types_agree_when_converted() {
        let data = tables(&BetaSchedule::COSINE, &Spacing::Linspace, 50);
        let s = Schedule::from_tables(&data, 50).unwrap();
        let x: [f32; 4] = [0.3, -1.1, 2.4, -0.05];
        let x0_true: [f32; 4] = [0.5, -0.9, 0.8, 0.0];
        let z: [f32; 4] = [0.2, 1.0, -1.3, 0.7];
        let methods = [
            Method::Ddpm(Variance::FixedLarge),
            Method::Ddpm(Variance::FixedSmall),
            Method::Ddim { eta: 0.0 },
            Method::Ddim { eta: 0.6 },
        ];
        let clips = [Clip::None, Clip::Symmetric(0.85)];
        let scalings = [EpsilonScaling::Off, EpsilonScaling::Constant(1.05)];
        for i in [0usize, 1, 10, 30, 45] {
            let (a, b) = (
                s.table(Table::SqrtAlphaBar)[i] as f64,
                s.table(Table::SqrtOneMinusAlphaBar)[i] as f64,
            );
            // A model that predicts x0_true: ε = (x − a x0)/b, v = a ε − b x0.
            let eps: Vec<f32> = x
                .iter()
                .zip(x0_true)
                .map(|(&x, x0)| ((x as f64 - a * x0 as f64) / b) as f32)
                .collect();
            let vel: Vec<f32> = eps
                .iter()
                .zip(x0_true)
                .map(|(&e, x0)| (a * e as f64 - b * x0 as f64) as f32)
                .collect();
            let outputs = [
                (Prediction::Epsilon, eps.clone()),
                (Prediction::Sample, x0_true.to_vec()),
                (Prediction::Velocity, vel),
            ];
            for method in methods {
                for clip in clips {
                    for eps_scaling in scalings {
                        let results: Vec<_> = outputs
                            .iter()
                            .map(|(prediction, out)| {
                                let c = SamplerConfig {
                                    method,
                                    prediction: *prediction,
                                    clip,
                                    eps_scaling,
                                };
                                run(&c, &s, i, &x, out, &z)
                            })
                            .collect();
                        for (k, (prev, x0)) in results.iter().enumerate().skip(1) {
                            let (ref_prev, ref_x0) = &results[0];
                            for d in 0..4 {
                                let ctx = format_args!(
                                    "i = {i} {method:?} {clip:?} {eps_scaling:?} prediction #{k} dim {d}"
                                );
                                let tol = 2e-5 * (1.0 + s.table(Table::InvSqrtAlphaBar)[i]);
                                assert!(
                                    (x0[d] - ref_x0[d]).abs() <= tol,
                                    "{ctx}: x̂0 {} vs {}",
                                    x0[d],
                                    ref_x0[d]
                                );
                                assert!(
                                    (prev[d] - ref_prev[d]).abs() <= tol,
                                    "{ctx}: x_prev {} vs {}",
                                    prev[d],
                                    ref_prev[d]
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn epsilon_scaling_divides_eps_and_is_exactly_off_at_one() {
        let data = tables(&BetaSchedule::PAPER, &Spacing::Linspace, 100);
        let s = Schedule::from_tables(&data, 100).unwrap();
        let x: [f32; 3] = [0.9, -0.4, 1.7];
        let out: [f32; 3] = [0.3, 1.2, -0.8];
        let z: [f32; 3] = [-1.0, 0.4, 0.9];
        for prediction in [
            Prediction::Epsilon,
            Prediction::Sample,
            Prediction::Velocity,
        ] {
            for method in [
                Method::Ddpm(Variance::FixedLarge),
                Method::Ddim { eta: 0.3 },
            ] {
                for i in [0usize, 5, 60] {
                    let base = SamplerConfig {
                        method,
                        prediction,
                        clip: Clip::None,
                        eps_scaling: EpsilonScaling::Off,
                    };
                    let off = run(&base, &s, i, &x, &out, &z);
                    for one in [
                        EpsilonScaling::Constant(1.0),
                        EpsilonScaling::Linear { k: 0.0, b: 1.0 },
                    ] {
                        let on = run(
                            &SamplerConfig {
                                eps_scaling: one,
                                ..base
                            },
                            &s,
                            i,
                            &x,
                            &out,
                            &z,
                        );
                        let bits = |v: &Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            (bits(&on.0), bits(&on.1)),
                            (bits(&off.0), bits(&off.1)),
                            "{prediction:?} {method:?} i = {i}"
                        );
                    }
                    // Linear λ_i = b + k·i equals the constant λ at that step.
                    let linear = run(
                        &SamplerConfig {
                            eps_scaling: EpsilonScaling::Linear { k: 0.002, b: 1.01 },
                            ..base
                        },
                        &s,
                        i,
                        &x,
                        &out,
                        &z,
                    );
                    let constant = run(
                        &SamplerConfig {
                            eps_scaling: EpsilonScaling::Constant(1.01 + 0.002 * i as f32),
                            ..base
                        },
                        &s,
                        i,
                        &x,
                        &out,
                        &z,
                    );
                    assert_eq!(linear, constant);
                }
            }
        }
        // ε-prediction: x̂0 = x/√ᾱ − √(1/ᾱ − 1)·ε̂/λ and the DDPM mean (x − β/√(1−ᾱ)·ε̂/λ)/√α.
        let lambda = 1.2f64;
        let es = SamplerConfig {
            eps_scaling: EpsilonScaling::Constant(lambda as f32),
            ..SamplerConfig::PAPER
        };
        for i in [0usize, 7, 40] {
            let (prev, x0) = run(&es, &s, i, &x, &out, &[0.0; 3]);
            let at = |t: Table| s.table(t)[i] as f64;
            for d in 0..3 {
                let eps = out[d] as f64 / lambda;
                let want_x0 = at(Table::InvSqrtAlphaBar) * x[d] as f64
                    - at(Table::SqrtRecipAlphaBarMinusOne) * eps;
                assert!(
                    (x0[d] as f64 - want_x0).abs()
                        <= 1e-6 * (1.0 + want_x0.abs() * at(Table::InvSqrtAlphaBar)),
                    "i = {i}"
                );
                let want_mean = at(Table::InvSqrtAlpha) * (x[d] as f64 - at(Table::EpsCoef) * eps);
                assert!(
                    (prev[d] as f64 - want_mean).abs() <= 1e-6 * (1.0 + want_mean.abs()),
                    "i = {i}"
                );
            }
        }
    }

    #[test]
    fn clipping_clamps_x0_and_uses_the_posterior_mean() {
        let data = tables(&BetaSchedule::COSINE, &Spacing::Linspace, 20);
        let s = Schedule::from_tables(&data, 20).unwrap();
        let x: [f32; 4] = [3.0, -3.0, 0.1, -0.2];
        let out: [f32; 4] = [-2.0, 2.0, 0.05, 0.1];
        let i = 4;
        let at = |t: Table| s.table(t)[i];
        let unclipped = run(&SamplerConfig::PAPER, &s, i, &x, &out, &[0.0; 4]).1;
        let ddpm = SamplerConfig {
            clip: Clip::Symmetric(1.0),
            ..SamplerConfig::PAPER
        };
        let (prev, x0) = run(&ddpm, &s, i, &x, &out, &[0.0; 4]);
        for d in 0..4 {
            assert_eq!(x0[d], unclipped[d].clamp(-1.0, 1.0));
            let want = at(Table::PosteriorC1) * x0[d] + at(Table::PosteriorC2) * x[d];
            assert!((prev[d] - want).abs() <= 1e-6 * (1.0 + want.abs()));
        }
        assert!(
            unclipped[0] > 1.0 && unclipped[1] < -1.0,
            "the test must exercise the clamp: {unclipped:?}"
        );
        // DDIM recomputes ε̂ from the clipped x̂0.
        let ddim = SamplerConfig {
            method: Method::Ddim { eta: 0.0 },
            ..ddpm
        };
        let (prev, x0) = run(&ddim, &s, i, &x, &out, &[]);
        for d in 0..4 {
            let eps = (x[d] - at(Table::SqrtAlphaBar) * x0[d]) / at(Table::SqrtOneMinusAlphaBar);
            let want =
                at(Table::SqrtAlphaBarPrev) * x0[d] + at(Table::OneMinusAlphaBarPrev).sqrt() * eps;
            assert!(
                (prev[d] - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{} vs {want}",
                prev[d]
            );
        }
    }

    #[test]
    fn ddim_noise_scale_is_eta_sigma_small() {
        let data = tables(&BetaSchedule::COSINE, &Spacing::Linspace, 20);
        let s = Schedule::from_tables(&data, 20).unwrap();
        let (x, out, z) = ([0.5f32, -0.5], [0.1f32, 0.2], [1.0f32, -2.0]);
        for eta in [0.25f32, 1.0] {
            let c = cfg(Method::Ddim { eta });
            let (clean, _) = run(&c, &s, 7, &x, &out, &[0.0; 2]);
            let (noisy, _) = run(&c, &s, 7, &x, &out, &z);
            let sigma = eta * s.table(Table::SigmaSmall)[7];
            for d in 0..2 {
                assert!(
                    ((noisy[d] - clean[d]) / z[d] - sigma).abs() <= 1e-6,
                    "η = {eta}"
                );
                // x_prev = √ᾱ_prev x̂0 + √(1 − ᾱ_prev − σ²)·ε̂ + σz, in f64 from the tables.
                let at = |t: Table| s.table(t)[7] as f64;
                let x0 = at(Table::InvSqrtAlphaBar) * x[d] as f64
                    - at(Table::SqrtRecipAlphaBarMinusOne) * out[d] as f64;
                let sigma = sigma as f64;
                let dir = (at(Table::OneMinusAlphaBarPrev) - sigma * sigma).sqrt();
                let want =
                    at(Table::SqrtAlphaBarPrev) * x0 + dir * out[d] as f64 + sigma * z[d] as f64;
                assert!(
                    (noisy[d] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "η = {eta}: {} vs {want}",
                    noisy[d]
                );
            }
        }
    }

    #[test]
    fn invalid_configs_and_lengths_are_rejected() {
        let data = tables(&BetaSchedule::PAPER, &Spacing::Linspace, 10);
        let s = Schedule::from_tables(&data, 10).unwrap();
        let invalid = [
            cfg(Method::Ddim { eta: -0.1 }),
            cfg(Method::Ddim { eta: 1.01 }),
            cfg(Method::Ddim { eta: f32::NAN }),
            SamplerConfig {
                eps_scaling: EpsilonScaling::Constant(0.0),
                ..SamplerConfig::PAPER
            },
            SamplerConfig {
                eps_scaling: EpsilonScaling::Constant(-1.0),
                ..SamplerConfig::PAPER
            },
            SamplerConfig {
                eps_scaling: EpsilonScaling::Constant(f32::NAN),
                ..SamplerConfig::PAPER
            },
            SamplerConfig {
                eps_scaling: EpsilonScaling::Constant(f32::INFINITY),
                ..SamplerConfig::PAPER
            },
            SamplerConfig {
                eps_scaling: EpsilonScaling::Linear {
                    k: f32::NAN,
                    b: 1.0,
                },
                ..SamplerConfig::PAPER
            },
            SamplerConfig {
                eps_scaling: EpsilonScaling::Linear { k: 0.0, b: 0.0 },
                ..SamplerConfig::PAPER
            },
            SamplerConfig {
                clip: Clip::Symmetric(0.0),
                ..SamplerConfig::PAPER
            },
            SamplerConfig {
                clip: Clip::Symmetric(-1.0),
                ..SamplerConfig::PAPER
            },
            SamplerConfig {
                clip: Clip::Symmetric(f32::NAN),
                ..SamplerConfig::PAPER
            },
        ];
        let (x, mut a, mut b) = ([0.5f32; 2], [0.0f32; 2], [0.0f32; 2]);
        for c in invalid {
            assert!(
                matches!(c.validate(), Err(Error::InvalidParameter(_))),
                "{c:?}"
            );
            assert!(
                matches!(
                    step(&c, &s, 3, &x, &x, &x, &mut a, &mut b),
                    Err(Error::InvalidParameter(_))
                ),
                "{c:?}"
            );
        }
        // A linear λ that turns non-positive at some step fails there.
        let falling = SamplerConfig {
            eps_scaling: EpsilonScaling::Linear { k: -0.5, b: 1.0 },
            ..SamplerConfig::PAPER
        };
        assert!(falling.validate().is_ok());
        assert!(step(&falling, &s, 1, &x, &x, &x, &mut a, &mut b).is_ok());
        assert!(matches!(
            step(&falling, &s, 2, &x, &x, &x, &mut a, &mut b),
            Err(Error::InvalidParameter(_))
        ));
        for eta in [0.0f32, 1.0] {
            assert!(cfg(Method::Ddim { eta }).validate().is_ok());
        }
        let p = SamplerConfig::PAPER;
        let (mut short, mut long) = ([0.0f32; 1], [0.0f32; 3]);
        assert_eq!(
            step(&p, &s, 3, &x, &x[..1], &x, &mut a, &mut b),
            Err(Error::LengthMismatch("model_out vs x_t"))
        );
        assert_eq!(
            step(&p, &s, 3, &x, &x, &x, &mut short, &mut b),
            Err(Error::LengthMismatch("x_prev vs x_t"))
        );
        assert_eq!(
            step(&p, &s, 3, &x, &x, &x, &mut a, &mut long),
            Err(Error::LengthMismatch("x0_hat vs x_t"))
        );
        assert!(
            matches!(
                step(&p, &s, 3, &x, &x, &[], &mut a, &mut b),
                Err(Error::LengthMismatch(_))
            ),
            "noise needed"
        );
        assert!(
            matches!(
                step(&p, &s, 0, &x, &x, &[1.0], &mut a, &mut b),
                Err(Error::LengthMismatch(_))
            ),
            "bad noise"
        );
        assert!(
            step(&p, &s, 0, &x, &x, &[], &mut a, &mut b).is_ok(),
            "no noise at i = 0"
        );
        assert!(
            step(
                &cfg(Method::Ddim { eta: 0.0 }),
                &s,
                5,
                &x,
                &x,
                &[],
                &mut a,
                &mut b
            )
            .is_ok()
        );
        assert_eq!(
            step(&p, &s, 10, &x, &x, &x, &mut a, &mut b),
            Err(Error::StepOutOfRange)
        );
        // Batches: two samples back to back equal two single-sample steps.
        let (xs, outs, zs) = (
            [0.1f32, 0.2, -0.3, 0.4],
            [0.5f32, -0.6, 0.7, 0.8],
            [1.0f32, 0.0, -1.0, 0.5],
        );
        let batch = run(&p, &s, 4, &xs, &outs, &zs);
        let first = run(&p, &s, 4, &xs[..2], &outs[..2], &zs[..2]);
        let second = run(&p, &s, 4, &xs[2..], &outs[2..], &zs[2..]);
        assert_eq!(batch.0, [first.0, second.0].concat());
        assert_eq!(batch.1, [first.1, second.1].concat());
    }

    /// `data` (all tables, `steps` each) cut down to the tables of `set`.
    fn subset(data: &[f32], steps: usize, set: TableSet) -> Vec<f32> {
        Table::ALL
            .iter()
            .zip(data.chunks_exact(steps))
            .filter(|(which, _)| set.contains(**which))
            .flat_map(|(_, table)| table.iter().copied())
            .collect()
    }

    #[test]
    fn step_reads_exactly_the_tables_it_names() {
        let n = 20;
        let data = tables(&BetaSchedule::COSINE, &Spacing::Trailing, n);
        let full = Schedule::from_tables(&data, n).unwrap();
        let methods = [
            Method::Ddpm(Variance::FixedLarge),
            Method::Ddpm(Variance::FixedSmall),
            Method::Ddim { eta: 0.0 },
            Method::Ddim { eta: 0.5 },
        ];
        let predictions = [
            Prediction::Epsilon,
            Prediction::Sample,
            Prediction::Velocity,
        ];
        let clips = [Clip::None, Clip::Symmetric(0.8)];
        let scalings = [
            EpsilonScaling::Off,
            EpsilonScaling::Constant(1.004),
            EpsilonScaling::Linear { k: 1e-3, b: 1.0 },
        ];
        let (x, out, z) = (
            [0.9f32, -1.7, 0.2],
            [0.4f32, 1.1, -2.3],
            [0.6f32, -0.2, 1.4],
        );
        let mut configs = 0;
        for method in methods {
            for prediction in predictions {
                for clip in clips {
                    for eps_scaling in scalings {
                        let c = SamplerConfig {
                            method,
                            prediction,
                            clip,
                            eps_scaling,
                        };
                        let needed = c.tables();
                        let sub_data = subset(&data, n, needed);
                        let sub = Schedule::from_table_subset(&sub_data, n, needed).unwrap();
                        // Absent tables read as NaN, so any unnamed read would show here.
                        for i in [0, 1, 7, n - 1] {
                            let noise: &[f32] = if c.needs_noise(i) { &z } else { &[] };
                            let want = run(&c, &full, i, &x, &out, noise);
                            let got = run(&c, &sub, i, &x, &out, noise);
                            let bits =
                                |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(&got.0), bits(&want.0), "{c:?} step {i}");
                            assert_eq!(bits(&got.1), bits(&want.1), "{c:?} step {i}");
                        }
                        // Dropping any named table is refused with that table's name.
                        for which in Table::ALL.into_iter().filter(|&t| needed.contains(t)) {
                            let fewer =
                                TableSet::from_bits(needed.bits() & !(1 << which as u32)).unwrap();
                            if fewer.is_empty() {
                                continue;
                            }
                            let fewer_data = subset(&data, n, fewer);
                            let s = Schedule::from_table_subset(&fewer_data, n, fewer).unwrap();
                            let (mut a, mut b) = (vec![0.0; 3], vec![0.0; 3]);
                            assert_eq!(
                                step(&c, &s, 1, &x, &out, &z, &mut a, &mut b),
                                Err(Error::MissingTable(which.name())),
                                "{c:?} without {which:?}"
                            );
                        }
                        configs += 1;
                    }
                }
            }
        }
        assert_eq!(configs, 72);
        // The paper's sampler reads five tables.
        assert_eq!(
            SamplerConfig::PAPER.tables(),
            TableSet::of(&[
                Table::InvSqrtAlphaBar,
                Table::SqrtRecipAlphaBarMinusOne,
                Table::InvSqrtAlpha,
                Table::EpsCoef,
                Table::SigmaLarge,
            ])
        );
    }
}
