//! Batch-1 speed of the paper's setting (Aithal et al. 2024, papers.md §1.2): one full
//! T = 1000 DDPM fixed-large trajectory of the 2D tied residual MLP (67,074 parameters,
//! random Xavier-like weights), with and without the Hal detector (K = 10), plus single
//! forward passes. The yardstick is PyTorch eager at batch 1, ≈ 0.256 s per 1000 steps
//! (target ≥ 50×, i.e. ≤ ~5 ms per trajectory).
//!
//! `Mlp` recomputes the time branch (E sinusoids + two W×W products) every step;
//! `TimeCachedMlp` reads it from a per-t table, so a step costs the x path only.

// A benchmark, not core: setup failures may abort, and tensors are sliced by their spec.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use criterion::{Criterion, criterion_group, criterion_main};
use mirage_core::{
    BetaSchedule, Denoiser, Detector, Error, Hal, Mlp, MlpShape, SamplerConfig, Schedule, Spacing,
    TimeCachedMlp, compute_tables, sample_trajectory, table_len, trajectory_scratch_len,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::hint::black_box;

const T: usize = 1000;

/// Observes nothing: the trajectory without a detector.
struct NoDetector;

impl Detector for NoDetector {
    fn observe(&mut self, _: usize, _: &[f32], _: &[f32]) -> Result<(), Error> {
        Ok(())
    }
    fn reset(&mut self) {}
}

/// Xavier-uniform matrices, LayerNorm γ = 1 ± 0.1, small biases.
fn random_params(shape: MlpShape, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut params = vec![0.0f32; shape.param_count()];
    for spec in shape.tensors() {
        let is_gamma = spec.name.ends_with("norm1.weight")
            || spec.name.ends_with("norm2.weight")
            || spec.name == "out_norm.weight";
        let bound = if spec.cols > 1 || spec.name == "in_fc.weight" {
            (6.0 / (spec.rows + spec.cols) as f64).sqrt()
        } else {
            0.1
        };
        for p in &mut params[spec.range()] {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            *p = (if is_gamma { 1.0 + bound * u } else { bound * u }) as f32;
        }
    }
    params
}

fn trajectory<D: Denoiser, H: Detector>(
    den: &D,
    schedule: &Schedule,
    detector: &mut H,
    scratch: &mut [f32],
    sample: u32,
) -> [f32; 2] {
    let mut x = [0.0f32; 2];
    let mut x0_hat = [0.0f32; 2];
    sample_trajectory(
        den,
        schedule,
        &SamplerConfig::PAPER,
        1234,
        sample,
        &mut x,
        &mut x0_hat,
        detector,
        scratch,
    )
    .expect("trajectory");
    x
}

fn benches(c: &mut Criterion) {
    let shape = MlpShape::PAPER_2D;
    let params = random_params(shape, 42);
    let mlp = Mlp::new(shape, &params).expect("valid weights");
    let mut tables = vec![0.0f32; table_len(T)];
    compute_tables(&BetaSchedule::PAPER, T, &Spacing::Linspace, T, &mut tables).expect("tables");
    let schedule = Schedule::from_tables(&tables, T).expect("schedule");
    let mut scratch = vec![0.0f32; trajectory_scratch_len(mlp.scratch_len(), shape.dim)];
    let mut biases = vec![0.0f32; T * shape.width];
    mlp.fill_time_biases(&mut biases, &mut scratch)
        .expect("bias table");
    let cached = TimeCachedMlp::new(mlp, &biases).expect("cached");
    let mut hal_state = vec![0.0f32; Hal::state_len(1, shape.dim)];

    let mut group = c.benchmark_group("forward_paper_2d_batch1");
    let x = [0.3f32, -0.7];
    let mut out = [0.0f32; 2];
    group.bench_function("mlp_with_time_branch", |b| {
        b.iter(|| mlp.predict(black_box(500), black_box(&x), &mut out, &mut scratch))
    });
    group.bench_function("time_cached_mlp", |b| {
        b.iter(|| cached.predict(black_box(500), black_box(&x), &mut out, &mut scratch))
    });
    group.finish();

    let mut group = c.benchmark_group("trajectory_paper_2d_T1000_batch1");
    group.sample_size(20);
    let mut sample = 0u32;
    group.bench_function("mlp/no_detector", |b| {
        b.iter(|| {
            sample = sample.wrapping_add(1);
            trajectory(&mlp, &schedule, &mut NoDetector, &mut scratch, sample)
        })
    });
    group.bench_function("mlp/hal", |b| {
        b.iter(|| {
            sample = sample.wrapping_add(1);
            let mut hal = Hal::new(Hal::PAPER_WINDOW, shape.dim, &mut hal_state).expect("hal");
            trajectory(&mlp, &schedule, &mut hal, &mut scratch, sample)
        })
    });
    group.bench_function("time_cached_mlp/no_detector", |b| {
        b.iter(|| {
            sample = sample.wrapping_add(1);
            trajectory(&cached, &schedule, &mut NoDetector, &mut scratch, sample)
        })
    });
    group.bench_function("time_cached_mlp/hal", |b| {
        b.iter(|| {
            sample = sample.wrapping_add(1);
            let mut hal = Hal::new(Hal::PAPER_WINDOW, shape.dim, &mut hal_state).expect("hal");
            trajectory(&cached, &schedule, &mut hal, &mut scratch, sample)
        })
    });
    group.finish();
}

criterion_group!(trajectory_benches, benches);
criterion_main!(trajectory_benches);
