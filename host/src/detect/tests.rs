//! The detector runner against the plain batched sampler and core's functions, and the k-NN
//! score against a brute-force O(N²) reference.

use super::*;
use crate::sample::{BatchDenoiser, SampleOptions, sample_batch};
use crate::train::Layout;
use mirage_core::detector::posterior_variance::{PostVarConfig, Scale, StepSet, TraceEstimator};
use mirage_core::schedule::{BetaSchedule, Schedule, Spacing, compute_tables, table_len};
use mirage_core::{ExactGmm, Prediction, SamplerConfig};

fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*state >> 11) as f64) / (1u64 << 53) as f64
}

/// Independent reference: sort all distances (f64), take the k-th among the others.
fn naive_knn(points: &[f32], dim: usize, k: usize) -> Vec<f32> {
    let n = points.len() / dim;
    (0..n)
        .map(|i| {
            let mut d: Vec<f64> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    (0..dim)
                        .map(|c| {
                            (f64::from(points[i * dim + c]) - f64::from(points[j * dim + c]))
                                .powi(2)
                        })
                        .sum::<f64>()
                        .sqrt()
                })
                .collect();
            d.sort_by(f64::total_cmp);
            d[k - 1] as f32
        })
        .collect()
}

#[test]
fn knn_matches_brute_force_in_every_dimension() {
    let mut s = 3u64;
    for dim in [1usize, 2, 3, 4, 6] {
        for k in [1usize, 5, 50] {
            let n = 300;
            let mut pts: Vec<f32> = (0..n * dim).map(|_| (lcg(&mut s) * 4.0) as f32).collect();
            // Exact duplicates and a cluster.
            for c in 0..dim {
                pts[dim + c] = pts[c];
                pts[2 * dim + c] = pts[c];
            }
            let want = naive_knn(&pts, dim, k);
            for threads in [1usize, 3] {
                let got = knn_distances(&pts, dim, k, threads).unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-6 * (1.0 + w),
                        "d {dim} k {k} #{i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn knn_separates_a_sparse_bridge_and_handles_bad_input() {
    // Dense clusters at 0 and 1 with a few points between: the bridge scores highest.
    let mut s = 9u64;
    let mut pts = Vec::new();
    for i in 0..400 {
        let centre = if i % 2 == 0 { 0.0 } else { 1.0 };
        pts.push((centre + 0.01 * (lcg(&mut s) - 0.5)) as f32);
    }
    pts.extend([0.5f32, 0.4, 0.6]);
    pts.push(f32::NAN);
    let got = knn_distances(&pts, 1, 10, 2).unwrap();
    let cluster_max = got[..400].iter().cloned().fold(0.0f32, f32::max);
    assert!(got[400..403].iter().all(|&b| b > 10.0 * cluster_max));
    assert_eq!(got[403], f32::INFINITY);
    assert!(knn_distances(&pts, 1, 0, 1).is_err());
    assert!(knn_distances(&pts[..5], 1, 10, 1).is_err());
    assert!(knn_distances(&[1.0, 2.0, 3.0], 2, 1, 1).is_err());
    assert!(knn_distances(&[1.0], 0, 1, 1).is_err());
}

fn tables(steps: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; table_len(steps)];
    compute_tables(
        &BetaSchedule::PAPER,
        1000,
        &Spacing::Linspace,
        steps,
        &mut t,
    )
    .unwrap();
    t
}

fn all_detectors(by_step: Vec<usize>) -> DetectConfig {
    DetectConfig {
        hal_windows: vec![10, 3],
        path_window: 10,
        postvar: vec![
            PostVarConfig::EXACT,
            PostVarConfig::one_probe(5),
            PostVarConfig {
                estimator: TraceEstimator::Exact,
                scale: Scale::Covariance,
                steps: StepSet::last(2).unwrap(),
            },
        ],
        by_step,
        by_step_window: 10,
    }
}

#[test]
fn runner_agrees_with_the_sampler_and_the_batch_definitions() {
    let t = tables(40);
    let sched = Schedule::from_tables(&t, 40).unwrap();
    let (means, stds, weights) = ([1.0f32, 2.0, 3.0], [0.05f32; 3], [1.0f32; 3]);
    let gmm = ExactGmm::new(1, &means, &stds, &weights, sched, Prediction::Epsilon).unwrap();
    let den = BatchDenoiser::PerSample(&gmm);
    let cfg = SamplerConfig::PAPER;
    let n = 37;
    let plain = sample_batch(
        &den,
        &sched,
        &cfg,
        n,
        &SampleOptions {
            chunk: 8,
            ..SampleOptions::new(4)
        },
        None,
    )
    .unwrap();
    let mut outs = Vec::new();
    for (threads, chunk) in [(1usize, 5usize), (2, 16)] {
        let out = run_detectors(
            &den,
            &sched,
            &cfg,
            n,
            &all_detectors(vec![0, 3, 20]),
            &RunOptions {
                seed: 4,
                threads,
                chunk,
            },
        )
        .unwrap();
        // The same samples and Hal as the plain sampler, bit for bit.
        assert_eq!(out.samples, plain.samples);
        assert_eq!(out.hal[0], plain.hal);
        outs.push(out);
    }
    // Chunking and threads change nothing.
    assert_eq!(outs[0].postvar_trace, outs[1].postvar_trace);
    assert_eq!(outs[0].path, outs[1].path);
    let out = &outs[0];
    let by = out.by_step.as_ref().unwrap();
    assert_eq!(by.steps, vec![0, 3, 20]);
    // s = 0: the f64 batch definitions equal the streamed scores.
    for i in 0..n {
        let (h, bh) = (out.hal[0][i], by.hal[0][i]);
        assert!((h - bh).abs() <= 1e-5 * bh + 1e-12, "hal {h} vs {bh}");
        let (p, bp) = (out.path[i], by.path[0][i]);
        assert!((p - bp).abs() <= 1e-5 * bp + 1e-9, "path {p} vs {bp}");
        assert_eq!(out.postvar_trace[0][i], by.postvar[0][i]);
        // d = 1: one Rademacher probe is exact.
        let (e, h1) = (out.postvar_trace[0][i], out.postvar_trace[1][i]);
        assert!((e - h1).abs() <= 1e-6 * e.abs());
        // 1D: ‖J‖_F = |tr J|.
        assert!((out.postvar_frobenius[0][i] - e.abs()).abs() <= 1e-6 * e.abs());
        // The covariance-scaled score over {0, 1} exceeds the final step's alone only by
        // the step-1 term, which is positive for this mixture.
        let c = sched.coefs(0).unwrap();
        let scale0 = c.one_minus_alpha_bar / c.sqrt_alpha_bar;
        assert!(out.postvar_trace[2][i] > 0.999 * scale0 * e);
    }
    // The D5 contrast of the detector itself: hallucinated samples (> 0.25 from every mode)
    // have a larger tr J than any in-support one.
    let label = |x: f32| means.iter().all(|m| (x - m).abs() > 0.25);
    let hal_max_in = (0..n)
        .filter(|&i| !label(out.samples[i]))
        .map(|i| out.postvar_trace[0][i])
        .fold(0.0f32, f32::max);
    assert!(
        hal_max_in < 1.0,
        "in-support tr J at t = 0 stays near 0.71: {hal_max_in}"
    );
}

#[test]
fn runner_mlp_postvar_equals_core_function_on_its_x_t() {
    use crate::train::{TrainConfig, Trainer};
    let config = TrainConfig {
        width: 16,
        temb_dim: 16,
        batch: 200,
        ..TrainConfig::paper(2)
    };
    let data: Vec<f32> = (0..400)
        .flat_map(|i| [if i % 2 == 0 { -1.0 } else { 1.0 }, 0.5])
        .collect();
    let mut tr = Trainer::new(config, data, 1).unwrap();
    tr.run(20, None, false).unwrap();
    let layout: Layout = *tr.layout();
    let params = tr.params().to_vec();
    let taus: Vec<u32> = (0..15).rev().map(|k| 2 * k).collect();
    let mut t = vec![0.0f32; table_len(15)];
    compute_tables(
        &BetaSchedule::PAPER,
        1000,
        &Spacing::Custom(&taus),
        15,
        &mut t,
    )
    .unwrap();
    let sched = Schedule::from_tables(&t, 15).unwrap();
    let den = BatchDenoiser::Mlp {
        layout: &layout,
        params: &params,
        prediction: Prediction::Epsilon,
    };
    let out = run_detectors(
        &den,
        &sched,
        &SamplerConfig::PAPER,
        9,
        &DetectConfig {
            hal_windows: vec![4],
            path_window: 4,
            postvar: vec![PostVarConfig::EXACT],
            by_step: vec![0, 5],
            by_step_window: 4,
        },
        &RunOptions {
            seed: 1,
            threads: 2,
            chunk: 4,
        },
    )
    .unwrap();
    let by = out.by_step.unwrap();
    assert_eq!(out.postvar_trace[0], by.postvar[0]);
    assert!(
        out.postvar_trace[0]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
    );
    assert!(by.postvar[1].iter().all(|v| v.is_finite()));
    // Bad configurations are refused with a message.
    let bad = DetectConfig {
        hal_windows: vec![4],
        path_window: 4,
        postvar: vec![PostVarConfig {
            estimator: TraceEstimator::Hutchinson { probes: 0, seed: 0 },
            ..PostVarConfig::EXACT
        }],
        by_step: vec![],
        by_step_window: 4,
    };
    let opts = RunOptions {
        seed: 1,
        threads: 1,
        chunk: 4,
    };
    assert!(run_detectors(&den, &sched, &SamplerConfig::PAPER, 4, &bad, &opts).is_err());
    let too_late = DetectConfig {
        postvar: vec![],
        by_step: vec![12],
        ..bad
    };
    let err = run_detectors(&den, &sched, &SamplerConfig::PAPER, 4, &too_late, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("by-step"), "{err}");
}

/// Random parameters of `shape` (LayerNorm gains near 1, everything else in ±0.3).
fn random_mlp(shape: mirage_core::MlpShape, seed: u64) -> (Layout, Vec<f32>) {
    let layout = Layout::new(shape).unwrap();
    let mut s = seed;
    let mut params: Vec<f32> = (0..layout.len)
        .map(|_| (0.6 * (lcg(&mut s) - 0.5)) as f32)
        .collect();
    let w = shape.width;
    for g in [layout.n1_g, layout.n2_g, layout.no_g] {
        for v in &mut params[g..g + w] {
            *v += 1.0;
        }
    }
    (layout, params)
}

/// max |a − b| / max |b| over a batch.
fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max(f64::from((x - y).abs())));
    diff / scale
}

#[test]
fn batched_jvp_matches_core_per_sample_jvp() {
    use mirage_core::{Denoiser, Mlp, MlpShape};
    let shapes = [
        // The paper's 1D and 2D networks, and a D > 2 one.
        MlpShape {
            dim: 1,
            width: 128,
            blocks: 3,
            temb_dim: 128,
        },
        MlpShape {
            dim: 2,
            width: 128,
            blocks: 3,
            temb_dim: 128,
        },
        MlpShape {
            dim: 5,
            width: 24,
            blocks: 2,
            temb_dim: 16,
        },
    ];
    let mut worst = 0.0f64;
    for (k, shape) in shapes.into_iter().enumerate() {
        let (layout, params) = random_mlp(shape, 11 + k as u64);
        let d = shape.dim;
        let core = Mlp::new(shape, &params)
            .unwrap()
            .with_prediction(Prediction::Epsilon);
        let batched = BatchJvpMlp::new(&layout, &params, Prediction::Epsilon).unwrap();
        assert_eq!(batched.dim(), d);
        let mut s = 40 + k as u64;
        // 130 samples: two full blocks of 64 and a short one; then a single sample.
        for n in [130usize, 1] {
            let x: Vec<f32> = (0..n * d)
                .map(|_| (6.0 * lcg(&mut s) - 3.0) as f32)
                .collect();
            let u: Vec<f32> = (0..n * d)
                .map(|_| (2.0 * lcg(&mut s) - 1.0) as f32)
                .collect();
            for t in [0u32, 7, 500, 999] {
                let mut want = (vec![0.0f32; n * d], vec![0.0f32; n * d]);
                let mut cs = vec![0.0f32; core.scratch_len()];
                core.predict_jvp(t, &x, &u, &mut want.0, &mut want.1, &mut cs)
                    .unwrap();
                let mut got = (vec![0.0f32; n * d], vec![0.0f32; n * d]);
                let mut bs = vec![0.0f32; batched.scratch_len()];
                batched
                    .predict_jvp(t, &x, &u, &mut got.0, &mut got.1, &mut bs)
                    .unwrap();
                let (rp, rt) = (max_rel(&got.0, &want.0), max_rel(&got.1, &want.1));
                assert!(
                    rp <= 1e-4 && rt <= 1e-4,
                    "{shape:?} n {n} t {t}: primal {rp:.2e}, tangent {rt:.2e}"
                );
                worst = worst.max(rt);
                // `predict` is core's.
                let mut p = vec![0.0f32; n * d];
                batched.predict(t, &x, &mut p, &mut bs).unwrap();
                assert!(max_rel(&p, &want.0) <= 1e-5);
            }
        }
    }
    println!("batched vs core JVP: max relative difference {worst:.2e}");
}

#[test]
fn batched_jvp_gives_core_posterior_variance_and_refuses_bad_input() {
    use mirage_core::detector::posterior_variance::{posterior_variance, scratch_len};
    use mirage_core::{Denoiser, Error, Mlp, MlpShape};
    let shape = MlpShape {
        dim: 2,
        width: 32,
        blocks: 3,
        temb_dim: 16,
    };
    let (layout, params) = random_mlp(shape, 5);
    let core = Mlp::new(shape, &params).unwrap();
    let batched = BatchJvpMlp::new(&layout, &params, Prediction::Epsilon).unwrap();
    let t = tables(50);
    let sched = Schedule::from_tables(&t, 50).unwrap();
    let n = 100;
    let mut s = 8u64;
    let x: Vec<f32> = (0..2 * n)
        .map(|_| (4.0 * lcg(&mut s) - 2.0) as f32)
        .collect();
    for estimator in [
        TraceEstimator::Exact,
        TraceEstimator::Hutchinson { probes: 3, seed: 2 },
    ] {
        for (i, scale) in [(0usize, Scale::Jacobian), (3, Scale::Covariance)] {
            let score = |den: &dyn Denoiser| {
                let (mut tr, mut fr) = (vec![0.0f32; n], vec![0.0f32; n]);
                let mut scratch = vec![0.0f32; scratch_len(den.scratch_len(), 2, n)];
                posterior_variance(
                    den,
                    &sched,
                    i,
                    &x,
                    estimator,
                    scale,
                    9,
                    &mut tr,
                    &mut fr,
                    &mut scratch,
                )
                .unwrap();
                (tr, fr)
            };
            let (want, got) = (score(&core), score(&batched));
            assert!(max_rel(&got.0, &want.0) <= 1e-4, "{estimator:?} step {i}");
            assert!(max_rel(&got.1, &want.1) <= 1e-4, "{estimator:?} step {i}");
        }
    }
    let mut scratch = vec![0.0f32; batched.scratch_len()];
    let (mut o, mut to) = (vec![0.0f32; 4], vec![0.0f32; 4]);
    let short_tangent = batched.predict_jvp(0, &x[..4], &x[..2], &mut o, &mut to, &mut scratch);
    assert_eq!(short_tangent, Err(Error::LengthMismatch("tangent")));
    let odd = batched.predict_jvp(0, &x[..3], &x[..3], &mut o[..3], &mut to[..3], &mut scratch);
    assert!(matches!(odd, Err(Error::LengthMismatch(_))));
    let small = batched.predict_jvp(0, &x[..4], &x[..4], &mut o, &mut to, &mut scratch[..10]);
    assert_eq!(small, Err(Error::BufferTooSmall("scratch")));
    assert!(BatchJvpMlp::new(&layout, &params[1..], Prediction::Epsilon).is_err());
}
