//! Smoke test of the benchmark entry point (not a timed test): it runs, counts work and FLOP
//! consistently, and reports no non-finite samples.
mod common;

use mirage_core::detector::{PostVarConfig, Scale, StepSet, TraceEstimator};
use mirage_core::mlp::MlpShape;
use mirage_core::sampler::{Clip, SamplerConfig};
use mirage_core::schedule::Schedule;
use mirage_gpu::{GpuSampler, bench};

/// The benched network: D = 2, W = 16, one block, 8 paper steps, clip 3.
const SHAPE: MlpShape = MlpShape {
    dim: 2,
    width: 16,
    blocks: 1,
    temb_dim: 4,
};

/// A sampler of [`SHAPE`] with fixed random weights.
fn sampler(ctx: &mirage_gpu::GpuContext) -> GpuSampler {
    let params = common::random_params(SHAPE, 4);
    let mlp = common::mlp(SHAPE, &params);
    let tables = common::paper_tables(8);
    let schedule = Schedule::from_tables(&tables, 8).unwrap();
    let cfg = SamplerConfig {
        clip: Clip::Symmetric(3.0),
        ..SamplerConfig::PAPER
    };
    GpuSampler::new(ctx, &mlp, &schedule, &cfg, 10).unwrap()
}

#[test]
fn bench_reports_consistent_figures() {
    let Some(ctx) = common::context() else { return };
    let gpu = sampler(&ctx);
    let points = bench::run(&gpu, &[3, 65]).unwrap();
    assert_eq!(points.len(), 2);
    // 2·(D·W + 2·blocks·W² + W·D) = 2·(32 + 512 + 32)
    assert_eq!(bench::flop_per_sample_step(SHAPE), 1152.0);
    assert_eq!(bench::flop_per_sample_step(MlpShape::PAPER_2D), 197_632.0);
    for p in &points {
        assert_eq!(p.steps, 8);
        assert_eq!(p.non_finite, 0);
        assert!(p.seconds > 0.0);
        let expected = (p.batch * p.steps) as f64 / p.seconds;
        assert!((p.sample_steps_per_s - expected).abs() <= 1e-9 * expected);
        assert!((p.flops - expected * 1152.0).abs() <= 1e-6 * p.flops);
    }
}

#[test]
fn postvar_overhead_runs_and_counts_passes() {
    let Some(ctx) = common::context() else { return };
    let plain = sampler(&ctx);
    let fused = sampler(&ctx)
        .with_postvar(PostVarConfig {
            estimator: TraceEstimator::Hutchinson { probes: 3, seed: 1 },
            scale: Scale::Jacobian,
            steps: StepSet::last(2).unwrap(),
        })
        .unwrap();
    let o = bench::postvar_overhead(&plain, &fused, 65, 2).unwrap();
    assert_eq!((o.batch, o.extra_passes), (65, 6)); // 3 probes × 2 steps
    assert!(o.plain_seconds > 0.0 && o.fused_seconds > 0.0);
    assert!((o.overhead - (o.fused_seconds / o.plain_seconds - 1.0)).abs() < 1e-12);
    assert!(bench::postvar_overhead(&plain, &plain, 65, 2).is_err());
    assert!(bench::postvar_overhead(&plain, &fused, 65, 0).is_err());
}
