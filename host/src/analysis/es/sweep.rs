//! The Epsilon Scaling λ sweep (Ning et al. 2024; papers.md §2.2–§2.4, D8).
//!
//! For each sampler (DDPM fixed-small / DDIM η = 0 …), each step count T′ (ADM even spacing) and
//! each λ schedule — constant λ = b or linear λ_i = b + k·i with i the respaced index (T′−1 first,
//! 0 last; D8) — n samples are drawn with core's sampler and scored against the data mixture:
//!
//! - W1 to fresh data (exact W1 in 1D; sliced W1 over 64 evenly spaced directions in 2D);
//! - hallucination rate: min_k ‖x − μ_k‖ > 5σ_k (papers.md D1/D2);
//! - mode coverage: share of modes k holding at least max(1, 0.1·n·w_k) in-support samples
//!   (within 5σ_k of μ_k) — our definition; the paper has none for toys.
//!
//! The automatic pick is the λ schedule of lowest W1 per (sampler, T′); papers.md §2.3: tune toys by
//! W1, not by ε-norm matching. The denoiser must accept every model timestep of the full training
//! schedule (an `ExactGmm` on the full-T tables, or a trained `Mlp`).

use anyhow::{Result, ensure};
use mirage_core::Denoiser;
use mirage_core::sampler::{Clip, EpsilonScaling, Method, SamplerConfig};
use mirage_core::schedule::{BetaSchedule, Schedule, Spacing, compute_tables, table_len};

use super::chain::{core_err, run_chain};
use crate::analysis::mixture::Mixture;
use crate::analysis::stats::sliced_wasserstein1;
use crate::data::Dataset;

/// A λ schedule (papers.md D8).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum LambdaSchedule {
    Constant { b: f64 },
    Linear { k: f64, b: f64 },
}

impl LambdaSchedule {
    fn scaling(self) -> EpsilonScaling {
        match self {
            Self::Constant { b: 1.0 } => EpsilonScaling::Off,
            Self::Constant { b } => EpsilonScaling::Constant(b as f32),
            Self::Linear { k, b } => EpsilonScaling::Linear {
                k: k as f32,
                b: b as f32,
            },
        }
    }

    pub fn label(self) -> String {
        match self {
            Self::Constant { b } => format!("b={b}"),
            Self::Linear { k, b } => format!("k={k},b={b}"),
        }
    }
}

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    pub methods: Vec<Method>,
    pub steps: Vec<usize>,
    pub lambdas: Vec<LambdaSchedule>,
    pub clip: Clip,
    /// Samples per configuration.
    pub samples: usize,
    /// Fresh data points for W1.
    pub reference: usize,
    pub seed: u64,
    pub threads: usize,
}

/// One configuration's scores.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SweepPoint {
    pub method: String,
    pub steps: usize,
    pub lambda: LambdaSchedule,
    pub w1: f64,
    pub hallucination_rate: f64,
    pub mode_coverage: f64,
}

/// The automatic λ pick for one (sampler, T′).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Pick {
    pub method: String,
    pub steps: usize,
    pub best: LambdaSchedule,
    pub w1: f64,
    pub baseline_w1: Option<f64>,
}

/// Human name of a sampler method.
pub fn method_name(m: &Method) -> String {
    match m {
        Method::Ddpm(v) => format!("ddpm-{v:?}").to_lowercase(),
        Method::Ddim { eta } => format!("ddim-eta{eta}"),
    }
}

/// Scores samples (n × dim) against `mixture`: (hallucination rate, mode coverage).
pub fn support_scores(mixture: &Mixture, samples: &[f64]) -> (f64, f64) {
    let dim = mixture.dim();
    let n = samples.len() / dim;
    let k = mixture.components();
    let mut per_mode = vec![0usize; k];
    let mut hallucinated = 0usize;
    for x in samples.chunks_exact(dim) {
        let nearest = mixture.nearest(x);
        let dist: f64 = mixture
            .mean(nearest)
            .iter()
            .zip(x)
            .map(|(m, v)| (v - m) * (v - m))
            .sum::<f64>()
            .sqrt();
        // Nearest mean = nearest in σ units for the equal-σ sets of D1/D2.
        if dist > 5.0 * mixture.std(nearest) {
            hallucinated += 1;
        } else {
            per_mode[nearest] += 1;
        }
    }
    let covered = (0..k)
        .filter(|&c| per_mode[c] as f64 >= (0.1 * n as f64 * mixture.weight(c)).max(1.0))
        .count();
    (
        hallucinated as f64 / n.max(1) as f64,
        covered as f64 / k as f64,
    )
}

/// Runs the sweep; returns every point and the automatic picks.
///
/// # Errors
/// Fails on an empty sweep, a dimension mismatch or any core error.
pub fn sweep<D: Denoiser + Sync + ?Sized>(
    den: &D,
    betas: &BetaSchedule<'_>,
    train_steps: usize,
    data: &crate::data::Mixture,
    cfg: &SweepConfig,
    progress: bool,
) -> Result<(Vec<SweepPoint>, Vec<Pick>)> {
    ensure!(
        !cfg.methods.is_empty() && !cfg.steps.is_empty() && !cfg.lambdas.is_empty(),
        "the λ sweep is empty"
    );
    ensure!(
        cfg.samples > 0 && cfg.reference > 0,
        "need samples > 0 and reference > 0"
    );
    ensure!(
        data.dim() == den.dim(),
        "model dimension {} differs from data dimension {}",
        den.dim(),
        data.dim()
    );
    let mixture = Mixture::from_data(data)?;
    let dim = data.dim();
    let reference: Vec<f64> =
        Dataset::generate(data.clone(), cfg.reference, cfg.seed ^ 0x5245_4645)
            .points()
            .iter()
            .map(|&v| f64::from(v))
            .collect();
    let mut points = Vec::new();
    let mut picks = Vec::new();
    for method in &cfg.methods {
        for &steps in &cfg.steps {
            let mut tables = vec![0.0f32; table_len(steps)];
            compute_tables(betas, train_steps, &Spacing::Linspace, steps, &mut tables)
                .map_err(core_err("schedule"))?;
            let schedule = Schedule::from_tables(&tables, steps).map_err(core_err("schedule"))?;
            let mut group: Vec<SweepPoint> = Vec::new();
            for &lambda in &cfg.lambdas {
                let sampler = SamplerConfig {
                    method: *method,
                    prediction: den.prediction(),
                    clip: cfg.clip,
                    eps_scaling: lambda.scaling(),
                };
                let mut x = vec![0.0f32; cfg.samples * dim];
                run_chain(
                    den,
                    &schedule,
                    &sampler,
                    cfg.seed,
                    &mut x,
                    true,
                    cfg.threads,
                    || (),
                    |_, _| {},
                )?;
                let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
                let w1 = if xs.iter().all(|v| v.is_finite()) {
                    sliced_wasserstein1(&xs, &reference, dim, 64)?
                } else {
                    f64::INFINITY
                };
                let (hallucination_rate, mode_coverage) = support_scores(&mixture, &xs);
                let point = SweepPoint {
                    method: method_name(method),
                    steps,
                    lambda,
                    w1,
                    hallucination_rate,
                    mode_coverage,
                };
                if progress {
                    eprintln!(
                        "es sweep: {} T'={} {}: W1 {:.5}, hallucinated {:.4}, coverage {:.2}",
                        point.method,
                        steps,
                        lambda.label(),
                        w1,
                        hallucination_rate,
                        mode_coverage
                    );
                }
                group.push(point);
            }
            if let Some(best) = group.iter().min_by(|a, b| a.w1.total_cmp(&b.w1)) {
                picks.push(Pick {
                    method: best.method.clone(),
                    steps,
                    best: best.lambda,
                    w1: best.w1,
                    baseline_w1: group
                        .iter()
                        .find(|p| p.lambda == LambdaSchedule::Constant { b: 1.0 })
                        .map(|p| p.w1),
                });
            }
            points.extend(group);
        }
    }
    Ok((points, picks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirage_core::ExactGmm;
    use mirage_core::sampler::{Prediction, Variance};

    fn w1_table(method: Method, steps: &[usize], lambdas: &[f64]) -> Vec<SweepPoint> {
        let data = crate::data::Mixture::isotropic("es-toy", 1, &[-0.5, 0.5], 0.1).unwrap();
        let mut full = vec![0.0f32; table_len(1000)];
        compute_tables(
            &BetaSchedule::COSINE,
            1000,
            &Spacing::Linspace,
            1000,
            &mut full,
        )
        .unwrap();
        let sched = Schedule::from_tables(&full, 1000).unwrap();
        let den = ExactGmm::new(
            1,
            data.means(),
            data.stds(),
            data.weights(),
            sched,
            Prediction::Epsilon,
        )
        .unwrap();
        let cfg = SweepConfig {
            methods: vec![method],
            steps: steps.to_vec(),
            lambdas: lambdas
                .iter()
                .map(|&b| LambdaSchedule::Constant { b })
                .collect(),
            clip: Clip::Symmetric(1.0),
            samples: 40_000,
            reference: 40_000,
            seed: 17,
            threads: 0,
        };
        sweep(&den, &BetaSchedule::COSINE, 1000, &data, &cfg, false)
            .unwrap()
            .0
    }

    #[test]
    fn ddpm_w1_table_of_section_2_4() {
        // papers.md §2.4 (our simulation): ½N(±0.5, 0.1²), exact denoiser with clip, DDPM β̃.
        // At n = 10⁵ the measured W1 matched every entry to ±0.001; at n = 4·10⁴ (sample and fresh
        // data) the sampling floor is ≈0.003: accept ±0.005.
        let want = [
            (10, [0.045, 0.041, 0.038, 0.027]),
            (20, [0.0245, 0.0196, 0.0145, 0.0055]),
            (50, [0.0156, 0.0111, 0.0068, 0.0080]),
        ];
        let pts = w1_table(
            Method::Ddpm(Variance::FixedSmall),
            &[10, 20, 50],
            &[1.0, 1.05, 1.1, 1.2],
        );
        for (steps, row) in want {
            for (lambda, w) in [1.0, 1.05, 1.1, 1.2].into_iter().zip(row) {
                let p = pts
                    .iter()
                    .find(|p| {
                        p.steps == steps && p.lambda == LambdaSchedule::Constant { b: lambda }
                    })
                    .unwrap();
                assert!(
                    (p.w1 - w).abs() < 0.005,
                    "T′ = {steps}, λ = {lambda}: W1 {} vs {w}",
                    p.w1
                );
                assert_eq!(p.hallucination_rate, 0.0);
                assert_eq!(p.mode_coverage, 1.0);
            }
        }
    }

    #[test]
    fn ddim_es_helps_at_10_steps_and_hurts_at_50() {
        let pts = w1_table(Method::Ddim { eta: 0.0 }, &[10, 50], &[1.0, 1.05]);
        let get = |s: usize, l: f64| {
            pts.iter()
                .find(|p| p.steps == s && p.lambda == LambdaSchedule::Constant { b: l })
                .unwrap()
                .w1
        };
        assert!(
            (get(10, 1.0) - 0.038).abs() < 0.006 && (get(10, 1.05) - 0.0315).abs() < 0.006,
            "{} {}",
            get(10, 1.0),
            get(10, 1.05)
        );
        assert!(
            (get(50, 1.0) - 0.0082).abs() < 0.006 && (get(50, 1.05) - 0.028).abs() < 0.006,
            "{} {}",
            get(50, 1.0),
            get(50, 1.05)
        );
    }

    #[test]
    fn support_scores_count_far_samples() {
        let m = Mixture::equal(1, vec![0.0, 1.0], 0.05).unwrap();
        let (rate, cov) = support_scores(&m, &[0.0, 0.01, 0.5, 1.0]);
        assert_eq!(rate, 0.25);
        assert_eq!(cov, 1.0);
        let (_, cov) = support_scores(&m, &[0.0, 0.01, 0.02]);
        assert_eq!(cov, 0.5);
    }
}
