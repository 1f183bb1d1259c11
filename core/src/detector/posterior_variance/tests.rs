use super::*;
use crate::gmm::ExactGmm;
use crate::mlp::{Mlp, MlpShape};
use crate::sampler::SamplerConfig;
use crate::schedule::{BetaSchedule, Spacing, compute_tables, table_len};
use crate::trajectory::{sample_trajectory, trajectory_scratch_len};
use std::vec;
use std::vec::Vec;

const T: usize = 1000;

fn paper_tables() -> Vec<f32> {
    let mut buf = vec![0.0f32; table_len(T)];
    compute_tables(&BetaSchedule::PAPER, T, &Spacing::Linspace, T, &mut buf).unwrap();
    buf
}

fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*state >> 11) as f64) / (1u64 << 53) as f64
}

/// An isotropic mixture: K components in d dims, unequal σ and weights.
struct Mix {
    dim: usize,
    means: Vec<f32>,
    stds: Vec<f32>,
    weights: Vec<f32>,
}

fn mix(dim: usize, k: usize, seed: u64) -> Mix {
    let mut s = seed;
    Mix {
        dim,
        means: (0..k * dim)
            .map(|_| (lcg(&mut s) * 0.6 - 0.3) as f32)
            .collect(),
        stds: (0..k).map(|_| (0.03 + 0.1 * lcg(&mut s)) as f32).collect(),
        weights: (0..k).map(|_| (0.5 + lcg(&mut s)) as f32).collect(),
    }
}

/// Independent f64 Jacobian of E[x0|x_t] (papers.md §9 D13) in its covariance form:
/// J = (a/b²)·Cov, Cov = Σ_k r_k (σ_k²b²/v_k·I + m_k m_kᵀ) − x̂0 x̂0ᵀ. Returns J row-major.
fn reference_jacobian(m: &Mix, a: f64, b2: f64, x: &[f32]) -> Vec<f64> {
    let d = m.dim;
    let k = m.weights.len();
    let mut logits = Vec::new();
    let mut comp_means = Vec::new();
    let mut shrinks = Vec::new();
    for c in 0..k {
        let s2 = f64::from(m.stds[c]).powi(2);
        let v = a * a * s2 + b2;
        let mut ll = f64::from(m.weights[c]).ln() - 0.5 * d as f64 * v.ln();
        let mut mc = vec![0.0; d];
        for j in 0..d {
            let mu = f64::from(m.means[c * d + j]);
            let dev = f64::from(x[j]) - a * mu;
            ll -= dev * dev / (2.0 * v);
            mc[j] = mu + a * s2 / v * dev;
        }
        logits.push(ll);
        comp_means.push(mc);
        shrinks.push(s2 * b2 / v);
    }
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let r: Vec<f64> = w.iter().map(|v| v / total).collect();
    let mut mean = vec![0.0; d];
    for c in 0..k {
        for j in 0..d {
            mean[j] += r[c] * comp_means[c][j];
        }
    }
    let mut jac = vec![0.0; d * d];
    for p in 0..d {
        for q in 0..d {
            let mut cov = -mean[p] * mean[q];
            for c in 0..k {
                cov += r[c] * comp_means[c][p] * comp_means[c][q];
                if p == q {
                    cov += r[c] * shrinks[c];
                }
            }
            jac[p * d + q] = a / b2 * cov;
        }
    }
    jac
}

fn level(schedule: &Schedule, i: usize) -> (f64, f64) {
    let c = schedule.coefs(i).unwrap();
    (
        f64::from(c.sqrt_alpha_bar),
        f64::from(c.one_minus_alpha_bar),
    )
}

fn score_one<D: Denoiser>(
    den: &D,
    schedule: &Schedule,
    i: usize,
    x: &[f32],
    estimator: TraceEstimator,
    scale: Scale,
    sample: u32,
) -> (f32, f32) {
    let mut scratch = vec![0.0; scratch_len(den.scratch_len(), den.dim(), 1)];
    let (mut t, mut f) = ([0.0f32], [0.0f32]);
    posterior_variance(
        den,
        schedule,
        i,
        x,
        estimator,
        scale,
        sample,
        &mut t,
        &mut f,
        &mut scratch,
    )
    .unwrap();
    (t[0], f[0])
}

#[test]
fn exact_trace_matches_mixture_closed_form_for_every_prediction() {
    let tables = paper_tables();
    let schedule = Schedule::from_tables(&tables, T).unwrap();
    let m = mix(3, 5, 7);
    let mut s = 99u64;
    for &t in &[0usize, 1, 5, 9, 30, 100] {
        let (a, b2) = level(&schedule, t);
        for _ in 0..6 {
            // Points near the modes and between them.
            let x: Vec<f32> = (0..3)
                .map(|_| (a * (lcg(&mut s) * 0.8 - 0.4)) as f32)
                .collect();
            let jac = reference_jacobian(&m, a, b2, &x);
            let tr: f64 = (0..3).map(|j| jac[j * 3 + j]).sum();
            let fro: f64 = jac.iter().map(|v| v * v).sum::<f64>().sqrt();
            for prediction in [
                Prediction::Epsilon,
                Prediction::Sample,
                Prediction::Velocity,
            ] {
                let gmm =
                    ExactGmm::new(3, &m.means, &m.stds, &m.weights, schedule, prediction).unwrap();
                let (got_tr, got_fro) = score_one(
                    &gmm,
                    &schedule,
                    t,
                    &x,
                    TraceEstimator::Exact,
                    Scale::Jacobian,
                    0,
                );
                // ε/v outputs are rounded to f32 before the (u − b·ε̇)/a conversion; the
                // rounding enters J·u as ~6e-8·|1 − aJ|/a per entry.
                let tol = 2e-5 * (1.0 + fro);
                assert!(
                    (f64::from(got_tr) - tr).abs() <= tol,
                    "{prediction:?} t {t}: tr {got_tr} vs {tr} (tol {tol})"
                );
                assert!(
                    (f64::from(got_fro) - fro).abs() <= tol,
                    "{prediction:?} t {t}: fro {got_fro} vs {fro}"
                );
                let (cov_tr, cov_fro) = score_one(
                    &gmm,
                    &schedule,
                    t,
                    &x,
                    TraceEstimator::Exact,
                    Scale::Covariance,
                    0,
                );
                let k = b2 / a;
                assert!((f64::from(cov_tr) - k * tr).abs() <= k * tol + 1e-12);
                assert!((f64::from(cov_fro) - k * fro).abs() <= k * tol + 1e-12);
            }
        }
    }
}

#[test]
fn single_mode_gives_the_contraction() {
    // One isotropic component: J = (aσ²/v)·I everywhere (papers.md §9 D11).
    let tables = paper_tables();
    let schedule = Schedule::from_tables(&tables, T).unwrap();
    let (means, stds, weights) = ([0.3f32, -0.2], [0.05f32], [1.0f32]);
    let gmm = ExactGmm::new(2, &means, &stds, &weights, schedule, Prediction::Epsilon).unwrap();
    for &t in &[0usize, 9, 50] {
        let (a, b2) = level(&schedule, t);
        let v = a * a * 0.0025 + b2;
        let want = 2.0 * a * 0.0025 / v;
        let (tr, fro) = score_one(
            &gmm,
            &schedule,
            t,
            &[0.31, -0.15],
            TraceEstimator::Exact,
            Scale::Jacobian,
            0,
        );
        assert!((f64::from(tr) - want).abs() < 1e-4 * (1.0 + want), "t {t}");
        assert!((f64::from(fro) - want / 2f64.sqrt()).abs() < 1e-4, "t {t}");
    }
}

#[test]
fn hutchinson_mean_converges_within_its_predicted_variance() {
    let tables = paper_tables();
    let schedule = Schedule::from_tables(&tables, T).unwrap();
    let m = mix(4, 6, 3);
    let gmm = ExactGmm::new(
        4,
        &m.means,
        &m.stds,
        &m.weights,
        schedule,
        Prediction::Sample,
    )
    .unwrap();
    let mut s = 5u64;
    let probes = 4000u32;
    for &t in &[2usize, 20, 60] {
        let (a, b2) = level(&schedule, t);
        let x: Vec<f32> = (0..4)
            .map(|_| (a * (lcg(&mut s) * 0.6 - 0.3)) as f32)
            .collect();
        let jac = reference_jacobian(&m, a, b2, &x);
        let tr: f64 = (0..4).map(|j| jac[j * 4 + j]).sum();
        let fro2: f64 = jac.iter().map(|v| v * v).sum();
        let diag2: f64 = (0..4).map(|j| jac[j * 4 + j].powi(2)).sum();
        // D14: Var = 2(‖J‖_F² − Σ J_jj²)/m for a symmetric J.
        let sd = (2.0 * (fro2 - diag2) / f64::from(probes)).sqrt();
        assert!(
            sd > 1e-6,
            "the test point must have off-diagonal mass (t {t})"
        );
        let (est, fro_est) = score_one(
            &gmm,
            &schedule,
            t,
            &x,
            TraceEstimator::Hutchinson { probes, seed: 11 },
            Scale::Jacobian,
            3,
        );
        let err = (f64::from(est) - tr).abs();
        assert!(err <= 4.0 * sd + 1e-5, "t {t}: {est} vs {tr}, sd {sd}");
        // E‖Jz‖² = ‖J‖_F²; a loose check of the Frobenius estimate.
        let fro = fro2.sqrt();
        assert!(
            (f64::from(fro_est) - fro).abs() <= 0.05 * fro + 1e-5,
            "t {t}"
        );
        // A single probe is exactly zᵀJz for the probe the counter noise gives.
        let z: Vec<f64> = (0..4u32)
            .map(|k| f64::from(rademacher(11, 3, 0, k)))
            .collect();
        let quad: f64 = (0..4)
            .map(|p| (0..4).map(|q| z[p] * jac[p * 4 + q] * z[q]).sum::<f64>())
            .sum();
        let (one, _) = score_one(
            &gmm,
            &schedule,
            t,
            &x,
            TraceEstimator::Hutchinson {
                probes: 1,
                seed: 11,
            },
            Scale::Jacobian,
            3,
        );
        assert!((f64::from(one) - quad).abs() <= 1e-4 * (1.0 + fro), "t {t}");
    }
}

#[test]
fn hutchinson_is_exact_for_one_dimension() {
    // d = 1: z² = 1, so every probe gives J exactly.
    let tables = paper_tables();
    let schedule = Schedule::from_tables(&tables, T).unwrap();
    let (means, stds, weights) = ([1.0f32, 2.0, 3.0], [0.05f32; 3], [1.0f32; 3]);
    let gmm = ExactGmm::new(1, &means, &stds, &weights, schedule, Prediction::Epsilon).unwrap();
    for &x in &[1.0f32, 1.5, 1.52, 2.7] {
        let exact = score_one(
            &gmm,
            &schedule,
            0,
            &[x],
            TraceEstimator::Exact,
            Scale::Jacobian,
            0,
        );
        let hutch = score_one(
            &gmm,
            &schedule,
            0,
            &[x],
            TraceEstimator::Hutchinson { probes: 3, seed: 1 },
            Scale::Jacobian,
            0,
        );
        assert!((exact.0 - hutch.0).abs() <= 1e-6 * (1.0 + exact.0.abs()));
    }
    // Halfway between two modes at t = 0 the step gives J ≈ ½·(Δm)·(Δg) ≈ 20 (D13: m ≈ 1.36,
    // 1.64 and g ≈ ∓143) against a mode's aσ²/v ≈ 0.71.
    let mid = score_one(
        &gmm,
        &schedule,
        0,
        &[1.5],
        TraceEstimator::Exact,
        Scale::Jacobian,
        0,
    )
    .0;
    let on = score_one(
        &gmm,
        &schedule,
        0,
        &[2.0],
        TraceEstimator::Exact,
        Scale::Jacobian,
        0,
    )
    .0;
    assert!(
        mid > 20.0 * on && (0.69..0.73).contains(&on),
        "mid {mid} on {on}"
    );
}

/// Records x_t at every step of a trajectory.
struct Recorder {
    x_t: Vec<Vec<f32>>,
    x0: Vec<Vec<f32>>,
}

impl Detector for Recorder {
    fn observe(&mut self, _: usize, x_t: &[f32], x0_hat: &[f32]) -> Result<(), Error> {
        self.x_t.push(x_t.to_vec());
        self.x0.push(x0_hat.to_vec());
        Ok(())
    }
    fn reset(&mut self) {
        self.x_t.clear();
        self.x0.clear();
    }
}

/// Runs several detectors over one trajectory (fan-out).
struct Both<'a, A: Detector, B: Detector>(&'a mut A, &'a mut B);

impl<A: Detector, B: Detector> Detector for Both<'_, A, B> {
    fn observe(&mut self, i: usize, x_t: &[f32], x0_hat: &[f32]) -> Result<(), Error> {
        self.0.observe(i, x_t, x0_hat)?;
        self.1.observe(i, x_t, x0_hat)
    }
    fn reset(&mut self) {
        self.0.reset();
        self.1.reset();
    }
}

#[test]
fn streaming_equals_batch_definition_on_stored_trajectories() {
    // A respaced 50-step schedule (ExactGmm only needs ᾱ at the kept timesteps).
    let steps = 50;
    let mut tables = vec![0.0f32; table_len(steps)];
    compute_tables(
        &BetaSchedule::PAPER,
        T,
        &Spacing::Linspace,
        steps,
        &mut tables,
    )
    .unwrap();
    let schedule = Schedule::from_tables(&tables, steps).unwrap();
    let m = mix(2, 4, 21);
    let gmm = ExactGmm::new(
        2,
        &m.means,
        &m.stds,
        &m.weights,
        schedule,
        Prediction::Epsilon,
    )
    .unwrap();
    let cfg = SamplerConfig::PAPER;
    let set = StepSet::from_mask(0b1011).unwrap();
    for estimator in [
        TraceEstimator::Exact,
        TraceEstimator::Hutchinson { probes: 2, seed: 9 },
    ] {
        let config = PostVarConfig {
            estimator,
            scale: Scale::Covariance,
            steps: set,
        };
        let mut batch_x: Vec<Vec<f32>> = vec![Vec::new(); steps];
        let mut streamed = Vec::new();
        let samples = 5u32;
        for sample in 0..samples {
            let mut state = vec![0.0; PosteriorVariance::<ExactGmm>::state_len(1)];
            let mut det_scratch = vec![0.0; scratch_len(0, 2, 1)];
            let mut det = PosteriorVariance::new(
                &gmm,
                schedule,
                config,
                sample,
                &mut state,
                &mut det_scratch,
            )
            .unwrap();
            let mut rec = Recorder {
                x_t: Vec::new(),
                x0: Vec::new(),
            };
            let (mut x, mut x0) = (vec![0.0; 2], vec![0.0; 2]);
            let mut scratch = vec![0.0; trajectory_scratch_len(0, 2)];
            sample_trajectory(
                &gmm,
                &schedule,
                &cfg,
                77,
                sample,
                &mut x,
                &mut x0,
                &mut Both(&mut det, &mut rec),
                &mut scratch,
            )
            .unwrap();
            assert_eq!(det.read_steps(), 3);
            let (mut t, mut f) = ([0.0f32], [0.0f32]);
            det.scores(&mut t, &mut f).unwrap();
            streamed.push((t[0], f[0]));
            // rec.x_t[k] is the input of step i = steps − 1 − k.
            for (k, xt) in rec.x_t.iter().enumerate() {
                batch_x[steps - 1 - k].extend_from_slice(xt);
            }
        }
        // Batch definition: Σ over i in the set of the score of the stored x_t of all
        // samples at once (one call per step, probe indices by sample).
        let n = samples as usize;
        let mut want_t = vec![0.0f64; n];
        let mut want_f = vec![0.0f64; n];
        for i in [0usize, 1, 3] {
            let mut t = vec![0.0f32; n];
            let mut f = vec![0.0f32; n];
            let mut scratch = vec![0.0; scratch_len(0, 2, n)];
            posterior_variance(
                &gmm,
                &schedule,
                i,
                &batch_x[i],
                estimator,
                Scale::Covariance,
                0,
                &mut t,
                &mut f,
                &mut scratch,
            )
            .unwrap();
            for s in 0..n {
                want_t[s] += f64::from(t[s]);
                want_f[s] += f64::from(f[s]);
            }
        }
        for (s, &(t, f)) in streamed.iter().enumerate() {
            assert!(
                (f64::from(t) - want_t[s]).abs() <= 1e-6 * want_t[s].abs(),
                "{s}"
            );
            assert!(
                (f64::from(f) - want_f[s]).abs() <= 1e-6 * want_f[s].abs(),
                "{s}"
            );
        }
    }
}

#[test]
fn blocks_and_scratch_sizes_do_not_change_scores() {
    // More samples than a block, with the minimal scratch (one sample per pass) and the
    // full one (BLOCK per pass): identical bits.
    let tables = paper_tables();
    let schedule = Schedule::from_tables(&tables, T).unwrap();
    let m = mix(2, 3, 4);
    let gmm = ExactGmm::new(
        2,
        &m.means,
        &m.stds,
        &m.weights,
        schedule,
        Prediction::Epsilon,
    )
    .unwrap();
    let n = BLOCK + 7;
    let mut s = 8u64;
    let x: Vec<f32> = (0..2 * n).map(|_| (lcg(&mut s) - 0.5) as f32).collect();
    let est = TraceEstimator::Hutchinson { probes: 3, seed: 2 };
    let mut out = Vec::new();
    for samples in [1, n] {
        let mut scratch = vec![0.0; scratch_len(0, 2, samples)];
        let (mut t, mut f) = (vec![0.0f32; n], vec![0.0f32; n]);
        posterior_variance(
            &gmm,
            &schedule,
            4,
            &x,
            est,
            Scale::Jacobian,
            10,
            &mut t,
            &mut f,
            &mut scratch,
        )
        .unwrap();
        out.push((t, f));
    }
    assert_eq!(out[0], out[1]);
    // Sample s of the batch uses probe sample index 10 + s.
    let (t, _) = score_one(
        &gmm,
        &schedule,
        4,
        &x[2 * 70..2 * 71],
        est,
        Scale::Jacobian,
        80,
    );
    assert_eq!(t, out[0].0[70]);
}

#[test]
fn mlp_exact_trace_matches_finite_differences() {
    let shape = MlpShape {
        dim: 2,
        width: 16,
        blocks: 2,
        temb_dim: 16,
    };
    let mut s = 31u64;
    let params: Vec<f32> = (0..shape.param_count())
        .map(|_| (lcg(&mut s) - 0.5) as f32 * 0.6)
        .collect();
    let mlp = Mlp::new(shape, &params).unwrap();
    let tables = paper_tables();
    let schedule = Schedule::from_tables(&tables, T).unwrap();
    let mut scratch = vec![0.0; mlp.scratch_len()];
    for &t in &[0usize, 3, 40] {
        let c = schedule.coefs(t).unwrap();
        let x0_of = |x: &[f64], scratch: &mut [f32]| -> Vec<f64> {
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut eps = vec![0.0f32; 2];
            mlp.predict(c.model_t, &xf, &mut eps, scratch).unwrap();
            let (a, b) = (
                f64::from(c.sqrt_alpha_bar),
                f64::from(c.sqrt_one_minus_alpha_bar),
            );
            (0..2).map(|k| (x[k] - b * f64::from(eps[k])) / a).collect()
        };
        let x = [0.3f64, -0.7];
        let h = 1e-2;
        let mut fd_trace = 0.0;
        for j in 0..2 {
            let mut xp = x;
            let mut xm = x;
            xp[j] += h;
            xm[j] -= h;
            fd_trace += (x0_of(&xp, &mut scratch)[j] - x0_of(&xm, &mut scratch)[j]) / (2.0 * h);
        }
        let xs = [x[0] as f32, x[1] as f32];
        let (tr, _) = score_one(
            &mlp,
            &schedule,
            t,
            &xs,
            TraceEstimator::Exact,
            Scale::Jacobian,
            0,
        );
        assert!(
            (f64::from(tr) - fd_trace).abs() <= 2e-3 * (1.0 + fd_trace.abs()),
            "t {t}: {tr} vs {fd_trace}"
        );
    }
}

#[test]
fn bad_input_gets_typed_errors_or_infinite_scores() {
    let tables = paper_tables();
    let schedule = Schedule::from_tables(&tables, T).unwrap();
    // d = 65 > MAX_EXACT_DIM.
    let means = vec![0.0f32; 65];
    let (stds, weights) = ([0.1f32], [1.0f32]);
    let big = ExactGmm::new(65, &means, &stds, &weights, schedule, Prediction::Epsilon).unwrap();
    let mut scratch = vec![0.0; scratch_len(0, 65, 1)];
    let (mut t, mut f) = ([0.0f32], [0.0f32]);
    let x = vec![0.0f32; 65];
    let r = posterior_variance(
        &big,
        &schedule,
        0,
        &x,
        TraceEstimator::Exact,
        Scale::Jacobian,
        0,
        &mut t,
        &mut f,
        &mut scratch,
    );
    assert!(matches!(r, Err(Error::CapacityExceeded(_))));
    // Hutchinson handles it.
    posterior_variance(
        &big,
        &schedule,
        0,
        &x,
        TraceEstimator::Hutchinson { probes: 2, seed: 0 },
        Scale::Jacobian,
        0,
        &mut t,
        &mut f,
        &mut scratch,
    )
    .unwrap();
    let (a, b2) = level(&schedule, 0);
    let want = 65.0 * a * 0.01 / (a * a * 0.01 + b2);
    assert!((f64::from(t[0]) - want).abs() < 1e-3 * want);

    let (m1, s1, w1) = ([0.0f32, 1.0], [0.05f32; 2], [1.0f32; 2]);
    let gmm = ExactGmm::new(1, &m1, &s1, &w1, schedule, Prediction::Epsilon).unwrap();
    let mut scratch = vec![0.0; scratch_len(0, 1, 4)];
    let zero = TraceEstimator::Hutchinson { probes: 0, seed: 0 };
    let (mut t4, mut f4) = ([0.0f32; 4], [0.0f32; 4]);
    assert!(matches!(
        posterior_variance(
            &gmm,
            &schedule,
            0,
            &[0.0; 4],
            zero,
            Scale::Jacobian,
            0,
            &mut t4,
            &mut f4,
            &mut scratch
        ),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        posterior_variance(
            &gmm,
            &schedule,
            0,
            &[0.0; 3],
            TraceEstimator::Exact,
            Scale::Jacobian,
            0,
            &mut t4,
            &mut f4,
            &mut scratch
        ),
        Err(Error::LengthMismatch(_))
    ));
    assert!(matches!(
        posterior_variance(
            &gmm,
            &schedule,
            0,
            &[0.0; 4],
            TraceEstimator::Exact,
            Scale::Jacobian,
            0,
            &mut t4,
            &mut f4,
            &mut []
        ),
        Err(Error::BufferTooSmall(_))
    ));
    assert!(matches!(
        posterior_variance(
            &gmm,
            &schedule,
            T,
            &[0.0; 4],
            TraceEstimator::Exact,
            Scale::Jacobian,
            0,
            &mut t4,
            &mut f4,
            &mut scratch
        ),
        Err(Error::StepOutOfRange)
    ));
    // Non-finite x_t: +∞ for that sample only.
    posterior_variance(
        &gmm,
        &schedule,
        0,
        &[0.0, f32::NAN, 1.0, f32::INFINITY],
        TraceEstimator::Exact,
        Scale::Jacobian,
        0,
        &mut t4,
        &mut f4,
        &mut scratch,
    )
    .unwrap();
    assert!(t4[0].is_finite() && t4[2].is_finite());
    assert_eq!([t4[1], t4[3], f4[1], f4[3]], [f32::INFINITY; 4]);

    // The detector: a non-finite x̂0 flags the sample; order and read-before-observe errors.
    let mut state = vec![0.0; PosteriorVariance::<ExactGmm>::state_len(2)];
    let mut det_scratch = vec![0.0; scratch_len(0, 1, 2)];
    assert!(matches!(
        PosteriorVariance::new(
            &gmm,
            schedule,
            PostVarConfig::EXACT,
            0,
            &mut [0.0; 3],
            &mut det_scratch
        ),
        Err(Error::LengthMismatch(_))
    ));
    assert!(matches!(
        PosteriorVariance::new(
            &gmm,
            schedule,
            PostVarConfig::one_probe(0),
            0,
            &mut state,
            &mut []
        ),
        Err(Error::BufferTooSmall(_))
    ));
    let mut det = PosteriorVariance::new(
        &gmm,
        schedule,
        PostVarConfig::EXACT,
        0,
        &mut state,
        &mut det_scratch,
    )
    .unwrap();
    let (mut t2, mut f2) = ([0.0f32; 2], [0.0f32; 2]);
    assert!(matches!(
        det.scores(&mut t2, &mut f2),
        Err(Error::InvalidParameter(_))
    ));
    det.observe(5, &[0.0, 1.0], &[0.0, 1.0]).unwrap();
    assert_eq!(det.read_steps(), 0);
    assert!(matches!(
        det.observe(0, &[0.0], &[0.0]),
        Err(Error::LengthMismatch(_))
    ));
    det.observe(0, &[0.0, 1.0], &[0.0, f32::NAN]).unwrap();
    det.scores(&mut t2, &mut f2).unwrap();
    assert!(t2[0].is_finite());
    assert_eq!(t2[1], f32::INFINITY);
    assert!(matches!(
        det.observe(0, &[0.0, 1.0], &[0.0, 1.0]),
        Err(Error::InvalidParameter(_))
    ));
    det.reset();
    det.observe(0, &[0.0, 1.0], &[0.0, 1.0]).unwrap();
    det.scores(&mut t2, &mut f2).unwrap();
    assert!(t2[1].is_finite());

    assert!(StepSet::last(0).is_err());
    assert!(StepSet::last(65).is_err());
    assert!(StepSet::single(64).is_err());
    assert!(StepSet::from_mask(0).is_err());
    assert_eq!(StepSet::last(64).unwrap().len(), 64);
    assert!(StepSet::last(3).unwrap().contains(2) && !StepSet::last(3).unwrap().contains(3));

    // A denoiser without JVP.
    struct NoJvp;
    impl Denoiser for NoJvp {
        fn dim(&self) -> usize {
            1
        }
        fn prediction(&self) -> Prediction {
            Prediction::Epsilon
        }
        fn scratch_len(&self) -> usize {
            0
        }
        fn predict(&self, _: u32, x: &[f32], out: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
            out.copy_from_slice(x);
            Ok(())
        }
    }
    assert_eq!(
        posterior_variance(
            &NoJvp,
            &schedule,
            0,
            &[0.0],
            TraceEstimator::Exact,
            Scale::Jacobian,
            0,
            &mut t,
            &mut f,
            &mut scratch
        ),
        Err(Error::Unsupported("jvp"))
    );
}

#[test]
fn schedule_without_the_score_tables_is_refused() {
    let tables = paper_tables();
    let full = Schedule::from_tables(&tables, T).unwrap();
    let m = mix(2, 3, 4);
    let gmm = ExactGmm::new(2, &m.means, &m.stds, &m.weights, full, Prediction::Epsilon).unwrap();
    // The paper sampler's subset (a `--tables sampler` file) lacks √ᾱ and 1 − ᾱ.
    let set = SamplerConfig::PAPER.tables();
    let data: Vec<f32> = Table::ALL
        .iter()
        .filter(|&&t| set.contains(t))
        .flat_map(|&t| full.table(t).iter().copied())
        .collect();
    let subset = Schedule::from_table_subset(&data, T, set).unwrap();
    let mut scratch = vec![0.0; scratch_len(gmm.scratch_len(), 2, 1)];
    let (mut t, mut f) = ([0.0f32], [0.0f32]);
    let x = [0.1f32, -0.2];
    let mut run = |s: &Schedule| {
        posterior_variance(
            &gmm,
            s,
            5,
            &x,
            TraceEstimator::Exact,
            Scale::Jacobian,
            0,
            &mut t,
            &mut f,
            &mut scratch,
        )
    };
    assert_eq!(run(&full), Ok(()));
    assert_eq!(
        run(&subset),
        Err(Error::MissingTable(Table::OneMinusAlphaBar.name()))
    );
}
