//! Respaced DDPM coefficients kept in f64, for the closed-form exposure-bias analysis
//! (papers.md §2.2 "Spacing", "ADM cosine schedule", §6.2).
//!
//! Core's `compute_tables` builds the same quantities in f64 but hands them out as f32, which is
//! what samplers need. The closed forms of §2.4 need f64 *outputs*: with 20 cosine steps the first
//! respaced β′ is 1 − 3.6e−7 and the perfect-model gain 1 − β′/(λ(ᾱs²+1−ᾱ)) cancels to 6e−4, below
//! f32 resolution of β′. The tests check these f64 tables against core's f32 tables.
//!
//! - Linear: β_t = start + (end − start)·t/(T−1).
//! - Cosine (ADM squaredcos_cap_v2): ᾱ(u) = cos²((u+0.008)/1.008·π/2), β_t = min(1 − ᾱ((t+1)/T)/ᾱ(t/T), max_beta).
//! - ADM "even" respacing: frac = (T−1)/(n−1), τ_k = round_half_even(k·frac) with the stride
//!   accumulated in floating point exactly as ADM's `space_timesteps` does.
//! - Respaced: ᾱ′_i = ᾱ_{τ_i}, α′_i = ᾱ_{τ_i}/ᾱ_{τ_{i−1}} (ᾱ_{τ_{−1}} = 1), β′_i = 1 − α′_i;
//!   c1 = β′√ᾱ′_{i−1}/(1−ᾱ′_i), c2 = √α′_i(1−ᾱ′_{i−1})/(1−ᾱ′_i), β̃ = β′(1−ᾱ′_{i−1})/(1−ᾱ′_i).
//!   Index i = 0 is the last reverse step, as in core.

use anyhow::{Result, ensure};

/// The β schedules the analysis uses (the same formulas as core's `BetaSchedule`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Betas {
    /// β linearly spaced from `start` to `end` over T steps.
    Linear { start: f64, end: f64 },
    /// ADM cosine with β capped at `max_beta`.
    Cosine { max_beta: f64 },
}

impl Betas {
    /// Aithal et al.'s toy schedule, linspace(1e−3, 0.2, 1000) (papers.md §1.2).
    pub const PAPER: Self = Self::Linear {
        start: 1e-3,
        end: 0.2,
    };
    /// ADM's cosine schedule (papers.md §2.2).
    pub const COSINE: Self = Self::Cosine { max_beta: 0.999 };

    /// β_t for t = 0..T−1.
    ///
    /// # Errors
    /// Fails on T = 0 or t ≥ T, or parameters outside (0, 1).
    pub fn beta(&self, t: usize, train_steps: usize) -> Result<f64> {
        ensure!(
            train_steps > 0 && t < train_steps,
            "step {t} out of range for T = {train_steps}"
        );
        match *self {
            Self::Linear { start, end } => {
                ensure!(
                    start > 0.0 && end < 1.0 && start <= end,
                    "linear β needs 0 < start ≤ end < 1"
                );
                if train_steps == 1 {
                    return Ok(start);
                }
                Ok(start + (end - start) * t as f64 / (train_steps - 1) as f64)
            }
            Self::Cosine { max_beta } => {
                ensure!(
                    max_beta > 0.0 && max_beta < 1.0,
                    "cosine max_beta must lie in (0, 1)"
                );
                let alpha_bar = |u: f64| {
                    let c = ((u + 0.008) / 1.008 * core::f64::consts::FRAC_PI_2).cos();
                    c * c
                };
                let t0 = t as f64 / train_steps as f64;
                let t1 = (t + 1) as f64 / train_steps as f64;
                Ok((1.0 - alpha_bar(t1) / alpha_bar(t0)).min(max_beta))
            }
        }
    }

    /// ᾱ_t for t = 0..T−1.
    ///
    /// # Errors
    /// As [`Betas::beta`].
    pub fn alpha_bars(&self, train_steps: usize) -> Result<Vec<f64>> {
        let mut acc = 1.0;
        (0..train_steps)
            .map(|t| {
                acc *= 1.0 - self.beta(t, train_steps)?;
                Ok(acc)
            })
            .collect()
    }
}

/// ADM's "even" spacing of n of T steps, ascending (τ_0 = 0, τ_{n−1} = T−1).
///
/// # Errors
/// Fails unless 1 ≤ n ≤ T.
pub fn even_spacing(train_steps: usize, steps: usize) -> Result<Vec<usize>> {
    ensure!(
        steps >= 1 && steps <= train_steps,
        "cannot take {steps} of {train_steps} steps"
    );
    if steps == 1 {
        return Ok(vec![0]);
    }
    let frac = (train_steps - 1) as f64 / (steps - 1) as f64;
    let mut cur = 0.0_f64;
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        out.push(cur.round_ties_even() as usize);
        cur += frac;
    }
    Ok(out)
}

/// Respaced per-step coefficients in f64; index i = 0 is the last reverse step.
#[derive(Clone, Debug)]
pub struct Respaced {
    /// Model timesteps τ_i, ascending.
    pub model_t: Vec<usize>,
    pub alpha_bar: Vec<f64>,
    pub alpha: Vec<f64>,
    pub beta: Vec<f64>,
    pub posterior_c1: Vec<f64>,
    pub posterior_c2: Vec<f64>,
    pub posterior_variance: Vec<f64>,
}

impl Respaced {
    /// Respaces `betas` (T steps) onto the ascending timesteps `model_t`.
    ///
    /// # Errors
    /// Fails if `model_t` is empty, not strictly ascending or reaches T.
    pub fn new(betas: &Betas, train_steps: usize, model_t: &[usize]) -> Result<Self> {
        ensure!(!model_t.is_empty(), "respacing needs at least one step");
        ensure!(
            model_t.windows(2).all(|w| w[0] < w[1]),
            "respaced timesteps must be strictly ascending"
        );
        ensure!(
            model_t.iter().all(|&t| t < train_steps),
            "respaced timesteps must be < T = {train_steps}"
        );
        let full = betas.alpha_bars(train_steps)?;
        let n = model_t.len();
        let alpha_bar: Vec<f64> = model_t.iter().map(|&t| full[t]).collect();
        let prev = |i: usize| if i == 0 { 1.0 } else { alpha_bar[i - 1] };
        let mut out = Self {
            model_t: model_t.to_vec(),
            alpha_bar: alpha_bar.clone(),
            alpha: Vec::with_capacity(n),
            beta: Vec::with_capacity(n),
            posterior_c1: Vec::with_capacity(n),
            posterior_c2: Vec::with_capacity(n),
            posterior_variance: Vec::with_capacity(n),
        };
        for (i, &ab) in alpha_bar.iter().enumerate() {
            let ab_prev = prev(i);
            let alpha = ab / ab_prev;
            let beta = 1.0 - alpha;
            out.alpha.push(alpha);
            out.beta.push(beta);
            out.posterior_c1.push(beta * ab_prev.sqrt() / (1.0 - ab));
            out.posterior_c2
                .push(alpha.sqrt() * (1.0 - ab_prev) / (1.0 - ab));
            out.posterior_variance
                .push(beta * (1.0 - ab_prev) / (1.0 - ab));
        }
        Ok(out)
    }

    /// `steps` of T with ADM even spacing.
    ///
    /// # Errors
    /// As [`even_spacing`] and [`Respaced::new`].
    pub fn even(betas: &Betas, train_steps: usize, steps: usize) -> Result<Self> {
        Self::new(betas, train_steps, &even_spacing(train_steps, steps)?)
    }

    pub fn steps(&self) -> usize {
        self.model_t.len()
    }
}

/// OU time of DDPM step τ: t_OU = −½ ln ᾱ_τ (papers.md §3.2).
pub fn ou_time(alpha_bar: f64) -> f64 {
    -0.5 * alpha_bar.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirage_core::schedule::{
        BetaSchedule, Schedule, Spacing, Table, compute_tables, table_len,
    };

    #[test]
    fn paper_schedule_matches_the_alpha_bar_table() {
        let ab = Betas::PAPER.alpha_bars(1000).unwrap();
        for (t, want) in [
            (0, 0.999),
            (9, 0.981195),
            (49, 0.744460),
            (99, 0.334986),
            (199, 0.0146719),
        ] {
            assert!((ab[t] / want - 1.0).abs() < 4e-6, "ᾱ_{t} = {}", ab[t]);
        }
        assert!((ab[999] / 1.2895e-47 - 1.0).abs() < 1e-3);
        // papers.md §3.2: τ = 9, 49, 99, 199 → t_OU = 0.0095, 0.148, 0.547, 2.11.
        for (t, want) in [(9, 0.0095), (49, 0.148), (99, 0.547), (199, 2.11)] {
            assert!(
                (ou_time(ab[t]) - want).abs() < 5e-3 * want.max(0.1),
                "t_OU({t}) = {}",
                ou_time(ab[t])
            );
        }
        let full = Respaced::even(&Betas::PAPER, 1000, 1000).unwrap();
        assert!(
            (full.posterior_c1[1] - 0.545314).abs() < 1e-6
                && (full.posterior_c2[1] - 0.454686).abs() < 1e-6
        );
    }

    #[test]
    fn cosine_schedule_endpoints_and_identities() {
        let ab = Betas::COSINE.alpha_bars(1000).unwrap();
        assert!((Betas::COSINE.beta(0, 1000).unwrap() / 4.13e-5 - 1.0).abs() < 2e-3);
        assert!((ab[999] / 2.43e-9 - 1.0).abs() < 5e-3, "{}", ab[999]);
        let r = Respaced::even(&Betas::COSINE, 1000, 20).unwrap();
        // papers.md §2.3: the first respaced step of 20 has β′ = 1 − 3.6e−7.
        assert!(
            ((1.0 - r.beta[19]) / 3.6e-7 - 1.0).abs() < 0.05,
            "{}",
            1.0 - r.beta[19]
        );
        // §6.2 identities: c1 + c2√ᾱ_t = √ᾱ_{t−1}; c2²(1−ᾱ_t) + β̃_t = 1−ᾱ_{t−1}.
        for i in 1..r.steps() {
            let (ab, abp) = (r.alpha_bar[i], r.alpha_bar[i - 1]);
            assert!((r.posterior_c1[i] + r.posterior_c2[i] * ab.sqrt() - abp.sqrt()).abs() < 1e-12);
            assert!(
                (r.posterior_c2[i].powi(2) * (1.0 - ab) + r.posterior_variance[i] - (1.0 - abp))
                    .abs()
                    < 1e-12
            );
        }
        assert_eq!(
            (
                r.posterior_c1[0],
                r.posterior_c2[0],
                r.posterior_variance[0]
            ),
            (1.0, 0.0, 0.0)
        );
    }

    #[test]
    fn even_spacing_matches_core_linspace_tables() {
        for (betas, core_betas) in [
            (Betas::COSINE, BetaSchedule::COSINE),
            (Betas::PAPER, BetaSchedule::PAPER),
        ] {
            for steps in [10, 20, 50, 100] {
                let r = Respaced::even(&betas, 1000, steps).unwrap();
                let mut data = vec![0.0f32; table_len(steps)];
                compute_tables(&core_betas, 1000, &Spacing::Linspace, steps, &mut data).unwrap();
                let sched = Schedule::from_tables(&data, steps).unwrap();
                let model_t: Vec<usize> = sched
                    .table(Table::ModelT)
                    .iter()
                    .map(|&t| t as usize)
                    .collect();
                assert_eq!(model_t, r.model_t, "{steps} steps");
                for (ours, theirs) in r.alpha_bar.iter().zip(sched.table(Table::AlphaBar)) {
                    assert!((*ours as f32 - theirs).abs() <= 1e-6 * theirs.abs().max(1e-30));
                }
                for (ours, theirs) in r
                    .posterior_variance
                    .iter()
                    .zip(sched.table(Table::PosteriorVariance))
                {
                    assert!((*ours as f32 - theirs).abs() <= 1e-6 * theirs.abs().max(1e-12));
                }
                for (ours, theirs) in r.posterior_c2.iter().zip(sched.table(Table::PosteriorC2)) {
                    assert!((*ours as f32 - theirs).abs() <= 1e-6);
                }
            }
        }
        assert!(even_spacing(10, 11).is_err());
    }
}
