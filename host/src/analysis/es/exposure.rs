//! The exposure metric δ_t and the ε-norm tool (Ning et al. 2024, paper's code; papers.md §2.2).
//!
//! δ_t: noise real x0 to the first sampler step, x_{T′−1} = √ᾱ x0 + √(1−ᾱ) z; sample; after each
//! step i take the per-dimension std over samples of x̂_{i−1} − √ᾱ_{i−1}x0, averaged over dimensions,
//! as √β̂_{i−1}; then δ = (√β̂ − √(1−ᾱ_{i−1}))² (ᾱ_{−1} = 1, so the last row measures the error of
//! the output itself).
//!
//! ε-norm: the mean ‖ε_θ(x, τ_i)‖₂ per step along that chain versus on q-noised inputs
//! x = √ᾱ_i x0 + √(1−ᾱ_i) ε with fresh ε (core noise, seed ⊕ [`Q_NOISE_SALT`], step stream, step i).
//! Their ratio chain/q is a first guess at λ (papers.md §2.3: toys can flip its sign; tune by W1).

use anyhow::{Result, ensure};
use mirage_core::Denoiser;
use mirage_core::noise::{STREAM_INIT, STREAM_STEP, fill_normals};
use mirage_core::sampler::SamplerConfig;
use mirage_core::schedule::Schedule;

use super::chain::{core_err, epsilon_of, run_chain};
use crate::analysis::paths::par_map;

/// XORed into the seed for the q-noised ε of the ε-norm tool.
pub const Q_NOISE_SALT: u64 = 0x0071_5f6e_6f69_7365; // "q_noise"

/// One row per respaced step i (the state after step i is x_{i−1}).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExposureRow {
    pub i: usize,
    pub model_t: u32,
    /// √β̂_{i−1}: measured std of x_{i−1} − √ᾱ_{i−1}x0.
    pub sqrt_beta_hat: f64,
    /// √(1 − ᾱ_{i−1}).
    pub sqrt_one_minus_alpha_bar_prev: f64,
    /// δ = (√β̂ − √(1−ᾱ_{i−1}))².
    pub delta: f64,
    /// Mean ‖ε_θ‖ along the chain (input x_i).
    pub eps_norm_chain: f64,
    /// Mean ‖ε_θ‖ on q-noised inputs at the same step.
    pub eps_norm_q: f64,
}

#[derive(Clone)]
struct Sums {
    err: Vec<f64>,
    err2: Vec<f64>,
    eps_norm: Vec<f64>,
}

/// Measures δ_t and the ε norms for real samples `x0` (n × dim).
///
/// # Errors
/// Fails on fewer than two samples, mismatched lengths, or any core error.
pub fn exposure<D: Denoiser + Sync + ?Sized>(
    den: &D,
    schedule: &Schedule<'_>,
    cfg: &SamplerConfig,
    x0: &[f32],
    seed: u64,
    threads: usize,
) -> Result<Vec<ExposureRow>> {
    let dim = den.dim();
    ensure!(
        x0.len().is_multiple_of(dim) && x0.len() / dim >= 2,
        "exposure needs at least two real samples of dimension {dim}"
    );
    let n = x0.len() / dim;
    let steps = schedule.steps();
    let top = schedule.coefs(steps - 1).map_err(core_err("schedule"))?;
    let mut x = vec![0.0f32; x0.len()];
    let mut z = vec![0.0f32; dim];
    for (s, (row, x0_row)) in x
        .chunks_exact_mut(dim)
        .zip(x0.chunks_exact(dim))
        .enumerate()
    {
        fill_normals(seed, STREAM_INIT, s as u32, 1, &mut z);
        for ((xv, &x0v), &zv) in row.iter_mut().zip(x0_row).zip(&z) {
            *xv = (f64::from(top.sqrt_alpha_bar) * f64::from(x0v)
                + f64::from(top.sqrt_one_minus_alpha_bar) * f64::from(zv)) as f32;
        }
    }
    let prediction = den.prediction();
    let blocks = run_chain(
        den,
        schedule,
        cfg,
        seed,
        &mut x,
        false,
        threads,
        || Sums {
            err: vec![0.0; steps * dim],
            err2: vec![0.0; steps * dim],
            eps_norm: vec![0.0; steps],
        },
        |acc, view| {
            let Ok(c) = schedule.coefs(view.i) else {
                return;
            };
            let (a, b) = (
                f64::from(c.sqrt_alpha_bar),
                f64::from(c.sqrt_one_minus_alpha_bar),
            );
            let sab_prev = f64::from(c.sqrt_alpha_bar_prev);
            let rows = view.x_prev.len() / dim;
            for s in 0..rows {
                let x0_row = &x0[(view.first_sample + s) * dim..(view.first_sample + s + 1) * dim];
                let mut norm2 = 0.0f64;
                for (d, &x0v) in x0_row.iter().enumerate() {
                    let k = s * dim + d;
                    let e = f64::from(view.x_prev[k]) - sab_prev * f64::from(x0v);
                    acc.err[view.i * dim + d] += e;
                    acc.err2[view.i * dim + d] += e * e;
                    let eps = epsilon_of(
                        prediction,
                        a,
                        b,
                        f64::from(view.x_t[k]),
                        f64::from(view.model_out[k]),
                    );
                    norm2 += eps * eps;
                }
                acc.eps_norm[view.i] += norm2.sqrt();
            }
        },
    )?;
    let mut total = Sums {
        err: vec![0.0; steps * dim],
        err2: vec![0.0; steps * dim],
        eps_norm: vec![0.0; steps],
    };
    for b in blocks {
        for (t, v) in total.err.iter_mut().zip(b.err) {
            *t += v;
        }
        for (t, v) in total.err2.iter_mut().zip(b.err2) {
            *t += v;
        }
        for (t, v) in total.eps_norm.iter_mut().zip(b.eps_norm) {
            *t += v;
        }
    }
    let q_norms = q_noised_eps_norms(den, schedule, x0, seed, threads)?;
    let nf = n as f64;
    (0..steps)
        .rev()
        .map(|i| {
            let c = schedule.coefs(i).map_err(core_err("schedule"))?;
            let sqrt_beta_hat = (0..dim)
                .map(|d| {
                    let mean = total.err[i * dim + d] / nf;
                    (total.err2[i * dim + d] / nf - mean * mean).max(0.0).sqrt()
                })
                .sum::<f64>()
                / dim as f64;
            let target = f64::from(c.one_minus_alpha_bar_prev).max(0.0).sqrt();
            Ok(ExposureRow {
                i,
                model_t: c.model_t,
                sqrt_beta_hat,
                sqrt_one_minus_alpha_bar_prev: target,
                delta: (sqrt_beta_hat - target).powi(2),
                eps_norm_chain: total.eps_norm[i] / nf,
                eps_norm_q: q_norms[i],
            })
        })
        .collect()
}

/// Mean ‖ε_θ(√ᾱ_i x0 + √(1−ᾱ_i) ε, τ_i)‖ per respaced step i.
///
/// # Errors
/// Any core error.
pub fn q_noised_eps_norms<D: Denoiser + Sync + ?Sized>(
    den: &D,
    schedule: &Schedule<'_>,
    x0: &[f32],
    seed: u64,
    threads: usize,
) -> Result<Vec<f64>> {
    const BLOCK: usize = 1024;
    let dim = den.dim();
    let n = x0.len() / dim;
    let steps = schedule.steps();
    let prediction = den.prediction();
    let parts = par_map(
        n.div_ceil(BLOCK),
        threads,
        None,
        |blk| -> Result<Vec<f64>> {
            let rows = &x0[blk * BLOCK * dim..((blk + 1) * BLOCK).min(n) * dim];
            let mut x = vec![0.0f32; rows.len()];
            let mut out = vec![0.0f32; rows.len()];
            let mut eps = vec![0.0f32; rows.len()];
            let mut scratch = vec![0.0f32; den.scratch_len()];
            let mut sums = vec![0.0; steps];
            for (i, sum) in sums.iter_mut().enumerate() {
                let c = schedule.coefs(i).map_err(core_err("schedule"))?;
                let (a, b) = (
                    f64::from(c.sqrt_alpha_bar),
                    f64::from(c.sqrt_one_minus_alpha_bar),
                );
                for (s, row) in eps.chunks_exact_mut(dim).enumerate() {
                    fill_normals(
                        seed ^ Q_NOISE_SALT,
                        STREAM_STEP,
                        (blk * BLOCK + s) as u32,
                        i as u32,
                        row,
                    );
                }
                for ((xv, &x0v), &ev) in x.iter_mut().zip(rows).zip(&eps) {
                    *xv = (a * f64::from(x0v) + b * f64::from(ev)) as f32;
                }
                den.predict(c.model_t, &x, &mut out, &mut scratch)
                    .map_err(core_err("denoiser"))?;
                for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact(dim)) {
                    *sum += xr
                        .iter()
                        .zip(or)
                        .map(|(&xv, &ov)| {
                            epsilon_of(prediction, a, b, f64::from(xv), f64::from(ov)).powi(2)
                        })
                        .sum::<f64>()
                        .sqrt();
                }
            }
            Ok(sums)
        },
    );
    let mut total = vec![0.0; steps];
    for p in parts {
        for (t, v) in total.iter_mut().zip(p?) {
            *t += v;
        }
    }
    Ok(total.into_iter().map(|s| s / n as f64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::es::recursion::{StepVariance, es_variance_trace};
    use crate::analysis::es::schedule64::{Betas, Respaced};
    use mirage_core::ExactGmm;
    use mirage_core::sampler::{Clip, EpsilonScaling, Method, Prediction, Variance};
    use mirage_core::schedule::{BetaSchedule, Spacing, compute_tables, table_len};

    fn tables(steps: usize) -> Vec<f32> {
        let mut data = vec![0.0f32; table_len(steps)];
        compute_tables(
            &BetaSchedule::COSINE,
            1000,
            &Spacing::Linspace,
            steps,
            &mut data,
        )
        .unwrap();
        data
    }

    #[test]
    fn exposure_rows_match_the_linear_gaussian_chain() {
        // Data N(0, s²), exact denoiser, DDPM fixed-small, λ = 1.02. The chain is linear:
        // x_{i−1} = A_i x_i + σ_i z (A from the ES gain), x_{T′−1} = a_top x0 + b_top z_0, so
        // x_{i−1} = g_{i−1} x0 + noise of variance v_{i−1} with g ← A g, v ← A²v + σ². Then
        // √β̂_{i−1} = √((g − √ᾱ_{i−1})²s² + v), and ε̂ = x·√h/(ᾱs² + h) gives the ε-norm ratio
        // chain/q = sd_chain(x_i)/sd_q(x_i).
        let steps = 20;
        let data = tables(steps);
        let sched = Schedule::from_tables(&data, steps).unwrap();
        let (means, stds, weights) = ([0.0f32], [0.5f32], [1.0f32]);
        let den = ExactGmm::new(1, &means, &stds, &weights, sched, Prediction::Epsilon).unwrap();
        let lambda = 1.02;
        let cfg = SamplerConfig {
            method: Method::Ddpm(Variance::FixedSmall),
            prediction: Prediction::Epsilon,
            clip: Clip::None,
            eps_scaling: EpsilonScaling::Constant(lambda as f32),
        };
        let n = 20_000u32;
        let x0: Vec<f32> = (0..n)
            .map(|s| 0.5 * mirage_core::noise::normal(99, STREAM_INIT, s, 7, 0))
            .collect();
        let rows = exposure(&den, &sched, &cfg, &x0, 3, 0).unwrap();
        assert_eq!(rows.len(), steps);
        let s64 = Respaced::even(&Betas::COSINE, 1000, steps).unwrap();
        let s2 = 0.25;
        let top = steps - 1;
        let (mut g, mut v) = (s64.alpha_bar[top].sqrt(), 1.0 - s64.alpha_bar[top]);
        for r in &rows {
            let i = r.i;
            let sd_chain = (g * g * s2 + v).sqrt();
            let sd_q = (s64.alpha_bar[i] * s2 + 1.0 - s64.alpha_bar[i]).sqrt();
            assert!(
                (r.eps_norm_chain / r.eps_norm_q / (sd_chain / sd_q) - 1.0).abs() < 0.03,
                "{r:?}"
            );
            let gain = super::super::recursion::es_gain(&s64, i, lambda, s2);
            g *= gain;
            v = gain * gain * v
                + if i > 0 {
                    s64.posterior_variance[i]
                } else {
                    0.0
                };
            let ab_prev = if i > 0 { s64.alpha_bar[i - 1] } else { 1.0 };
            let want = ((g - ab_prev.sqrt()).powi(2) * s2 + v).sqrt();
            // Sample std of n = 2·10⁴ draws: relative SE ≈ 0.5%; allow 3%.
            assert!(
                (r.sqrt_beta_hat / want - 1.0).abs() < 0.03,
                "{r:?} vs {want}"
            );
            assert!((r.sqrt_one_minus_alpha_bar_prev - (1.0 - ab_prev).sqrt()).abs() < 1e-6);
        }
        // Chains from pure noise: the final variance equals the closed-form recursion (f64).
        let cfg1 = SamplerConfig {
            eps_scaling: EpsilonScaling::Off,
            ..cfg
        };
        let mut x = vec![0.0f32; n as usize];
        run_chain(&den, &sched, &cfg1, 5, &mut x, true, 0, || (), |_, _| {}).unwrap();
        let var = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / f64::from(n);
        let target_var = es_variance_trace(&s64, 1.0, 0.25, StepVariance::FixedSmall).unwrap()[0];
        assert!(
            (var / target_var - 1.0).abs() < 4.0 * (2.0 / f64::from(n)).sqrt(),
            "{var} vs {target_var}"
        );
    }

    #[test]
    fn es_chain_variance_matches_recursion_at_100_steps() {
        let data = tables(100);
        let sched = Schedule::from_tables(&data, 100).unwrap();
        let (means, stds, weights) = ([0.0f32], [0.5f32], [1.0f32]);
        let den = ExactGmm::new(1, &means, &stds, &weights, sched, Prediction::Epsilon).unwrap();
        let s64 = Respaced::even(&Betas::COSINE, 1000, 100).unwrap();
        let n = 20_000usize;
        for lambda in [1.017f32, 1.05] {
            let cfg = SamplerConfig {
                method: Method::Ddpm(Variance::FixedSmall),
                prediction: Prediction::Epsilon,
                clip: Clip::None,
                eps_scaling: EpsilonScaling::Constant(lambda),
            };
            let mut x = vec![0.0f32; n];
            run_chain(&den, &sched, &cfg, 8, &mut x, true, 0, || (), |_, _| {}).unwrap();
            let var = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n as f64;
            let want = es_variance_trace(&s64, f64::from(lambda), 0.25, StepVariance::FixedSmall)
                .unwrap()[0];
            assert!(
                (var / want - 1.0).abs() < 4.0 * (2.0 / n as f64).sqrt(),
                "λ = {lambda}: {var} vs {want}"
            );
        }
    }

    #[test]
    fn chain_reproduces_core_trajectories_for_any_thread_count() {
        use mirage_core::detector::HalSingle;
        let data = tables(10);
        let sched = Schedule::from_tables(&data, 10).unwrap();
        let (means, stds, weights) = ([-0.5f32, 0.5], [0.1f32, 0.1], [1.0f32, 1.0]);
        let den = ExactGmm::new(1, &means, &stds, &weights, sched, Prediction::Epsilon).unwrap();
        let cfg = SamplerConfig {
            method: Method::Ddpm(Variance::FixedSmall),
            prediction: Prediction::Epsilon,
            clip: Clip::Symmetric(1.0),
            eps_scaling: EpsilonScaling::Constant(1.1),
        };
        let mut one = vec![0.0f32; 37];
        let mut two = vec![0.0f32; 37];
        run_chain(&den, &sched, &cfg, 4, &mut one, true, 1, || (), |_, _| {}).unwrap();
        run_chain(&den, &sched, &cfg, 4, &mut two, true, 2, || (), |_, _| {}).unwrap();
        assert_eq!(one, two);
        let mut hal = HalSingle::<1>::new(3).unwrap();
        let mut scratch = vec![0.0f32; mirage_core::trajectory_scratch_len(den.scratch_len(), 1)];
        for s in [0u32, 17, 36] {
            let (mut x, mut x0) = ([0.0f32], [0.0f32]);
            mirage_core::sample_trajectory(
                &den,
                &sched,
                &cfg,
                4,
                s,
                &mut x,
                &mut x0,
                &mut hal,
                &mut scratch,
            )
            .unwrap();
            assert_eq!(x[0], one[s as usize]);
        }
    }
}
