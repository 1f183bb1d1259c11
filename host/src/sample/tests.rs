//! The batched sampler against core's per-sample `sample_trajectory` (the reference
//! path), and against itself under other chunkings and thread counts.

use super::*;
use mirage_core::schedule::{BetaSchedule, Spacing, compute_tables, table_len};
use mirage_core::{ExactGmm, Mlp, sample_trajectory, trajectory_scratch_len};

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

/// A short low-noise chain τ = 57, 54, …, 0 (the paper's schedule respaced coarsely over
/// all of T amplifies any ε̂ error ~9× per step at large t, which only a trained model
/// survives).
fn low_noise_tables() -> Vec<f32> {
    let taus: Vec<u32> = (0..20).rev().map(|k| 3 * k).collect();
    let mut t = vec![0.0f32; table_len(20)];
    compute_tables(
        &BetaSchedule::PAPER,
        1000,
        &Spacing::Custom(&taus),
        20,
        &mut t,
    )
    .unwrap();
    t
}

/// Per-sample reference: core's trajectory with a one-sample Hal.
fn reference(
    den: &dyn Denoiser,
    sched: &Schedule<'_>,
    cfg: &SamplerConfig,
    seed: u64,
    n: usize,
) -> (Vec<f32>, Vec<f32>) {
    let d = den.dim();
    let mut xs = vec![0.0f32; n * d];
    let mut hals = vec![0.0f32; n];
    let mut scratch = vec![0.0f32; trajectory_scratch_len(den.scratch_len(), d)];
    let mut x0 = vec![0.0f32; d];
    let mut state = vec![0.0f32; Hal::state_len(1, d)];
    for (s, (x, h)) in xs.chunks_exact_mut(d).zip(hals.iter_mut()).enumerate() {
        let mut hal = Hal::new(Hal::PAPER_WINDOW, d, &mut state).unwrap();
        sample_trajectory(
            den,
            sched,
            cfg,
            seed,
            s as u32,
            x,
            &mut x0,
            &mut hal,
            &mut scratch,
        )
        .unwrap();
        hal.scores(std::slice::from_mut(h)).unwrap();
    }
    (xs, hals)
}

#[test]
fn exact_gmm_batch_is_bit_identical_to_per_sample_trajectories() {
    let full = tables(1000);
    let full_s = Schedule::from_tables(&full, 1000).unwrap();
    let means = [-1.0f32, -1.0, 1.0, -1.0, 0.0, 1.0];
    let stds = [0.05f32; 3];
    let weights = [1.0f32; 3];
    let gmm = ExactGmm::new(2, &means, &stds, &weights, full_s, Prediction::Epsilon).unwrap();
    let t = tables(100);
    let sched = Schedule::from_tables(&t, 100).unwrap();
    for cfg in [
        SamplerConfig::PAPER,
        SamplerConfig {
            method: mirage_core::Method::Ddim { eta: 0.5 },
            ..SamplerConfig::PAPER
        },
    ] {
        let (want_x, want_h) = reference(&gmm, &sched, &cfg, 7, 37);
        let opts = SampleOptions {
            chunk: 8,
            threads: 3,
            ..SampleOptions::new(7)
        };
        let got = sample_batch(
            &BatchDenoiser::PerSample(&gmm),
            &sched,
            &cfg,
            37,
            &opts,
            None,
        )
        .unwrap();
        assert_eq!(got.samples, want_x);
        assert_eq!(got.hal, want_h);
        assert!(got.hal.iter().all(|h| h.is_finite() && *h >= 0.0));
    }
}

/// A small network trained for a few dozen Adam steps on four 2D modes, so that the
/// reverse chain stays bounded (an untrained ε̂ ≈ 0 makes x grow like 1/√ᾱ).
fn small_mlp() -> (Layout, Vec<f32>) {
    use crate::train::{TrainConfig, Trainer};
    let config = TrainConfig {
        width: 16,
        temb_dim: 16,
        batch: 400,
        ..TrainConfig::paper(2)
    };
    let data: Vec<f32> = (0..800)
        .flat_map(|i| {
            [
                if i % 2 == 0 { -1.0 } else { 1.0 },
                if i % 4 < 2 { -1.0 } else { 1.0 },
            ]
        })
        .collect();
    let mut tr = Trainer::new(config, data, 2).unwrap();
    tr.run(40, None, false).unwrap();
    (*tr.layout(), tr.params().to_vec())
}

#[test]
fn mlp_batch_matches_core_trajectories() {
    let (layout, params) = small_mlp();
    let t = low_noise_tables();
    let sched = Schedule::from_tables(&t, 20).unwrap();
    let cfg = SamplerConfig::PAPER;
    let mlp = Mlp::new(layout.shape, &params).unwrap();
    let (want_x, want_h) = reference(&mlp, &sched, &cfg, 3, 40);
    let den = BatchDenoiser::Mlp {
        layout: &layout,
        params: &params,
        prediction: Prediction::Epsilon,
    };
    let got = sample_batch(
        &den,
        &sched,
        &cfg,
        40,
        &SampleOptions {
            chunk: 16,
            ..SampleOptions::new(3)
        },
        None,
    )
    .unwrap();
    for (g, w) in got.samples.iter().zip(&want_x) {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
    }
    assert!(
        want_h.iter().all(|h| h.is_finite()) && want_h.iter().any(|h| *h > 1e-8),
        "{want_h:?}"
    );
    for (g, w) in got.hal.iter().zip(&want_h) {
        assert!((g - w).abs() <= 1e-3 * w.abs() + 1e-7, "hal {g} vs {w}");
    }
}

#[test]
fn mlp_batch_does_not_depend_on_chunks_or_threads() {
    let (layout, params) = small_mlp();
    let t = low_noise_tables();
    let sched = Schedule::from_tables(&t, 20).unwrap();
    let den = BatchDenoiser::Mlp {
        layout: &layout,
        params: &params,
        prediction: Prediction::Epsilon,
    };
    let cfg = SamplerConfig::PAPER;
    let a = sample_batch(
        &den,
        &sched,
        &cfg,
        50,
        &SampleOptions {
            chunk: 50,
            threads: 1,
            ..SampleOptions::new(9)
        },
        None,
    )
    .unwrap();
    let b = sample_batch(
        &den,
        &sched,
        &cfg,
        50,
        &SampleOptions {
            chunk: 7,
            threads: 3,
            ..SampleOptions::new(9)
        },
        None,
    )
    .unwrap();
    assert_eq!(a, b);
    // Samples are numbered: the last 10 of a run from index 40 are samples 40..50.
    let c = sample_batch(
        &den,
        &sched,
        &cfg,
        10,
        &SampleOptions {
            first: 40,
            ..SampleOptions::new(9)
        },
        None,
    )
    .unwrap();
    assert_eq!(c.samples, a.samples[80..]);
}

#[test]
fn mismatched_prediction_is_refused() {
    let (layout, params) = small_mlp();
    let t = tables(5);
    let sched = Schedule::from_tables(&t, 5).unwrap();
    let den = BatchDenoiser::Mlp {
        layout: &layout,
        params: &params,
        prediction: Prediction::Sample,
    };
    let err = sample_batch(
        &den,
        &sched,
        &SamplerConfig::PAPER,
        3,
        &SampleOptions::new(1),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("prediction"), "{err}");
}
