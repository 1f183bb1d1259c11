//! `mirage bench gpu`: GPU sampling throughput (samples × steps per second and x-path
//! FLOP/s, design.md §5) for a list of batch sizes, beside the CPU batched path in the same
//! run on the same model and configuration.
//!
//! The model is the paper's 2D MLP with seeded Xavier weights and x̂0 clipped to [−3, 3]
//! (an untrained chain stays finite that way); the arithmetic per step is exactly that of a
//! trained model, so the figures transfer. The CPU column is measured only up to
//! `--cpu-max` samples (the CPU path is linear in the batch).

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Args;
use serde_json::json;

use crate::sample::{BatchDenoiser, SampleOptions, sample_batch};
use crate::train::Layout;
use crate::train::draws::init_params;
use mirage_core::schedule::{Schedule, Spacing, compute_tables, table_len};
use mirage_core::{BetaSchedule, Clip, Mlp, MlpShape, SamplerConfig};

/// Arguments of `mirage bench gpu`.
#[derive(Args, Debug)]
pub struct BenchGpuArgs {
    /// Batch sizes (samples per call).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000, 100_000, 1_000_000])]
    pub batches: Vec<usize>,
    /// Reverse steps per trajectory (paper: 1000).
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Largest batch also timed on the CPU path (0: none).
    #[arg(long, default_value_t = 10_000)]
    pub cpu_max: usize,
    /// Small sizes for software rasterisers (lavapipe): batches 256 and 1024, 50 steps.
    #[arg(long)]
    pub quick: bool,
    /// Print only the JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `mirage bench gpu`.
///
/// # Errors
/// No GPU adapter, a batch the device cannot hold, or a sampling failure.
pub fn run(args: &BenchGpuArgs) -> Result<()> {
    let (batches, steps) = if args.quick {
        (vec![256, 1024], 50)
    } else {
        (args.batches.clone(), args.steps)
    };
    ensure!(
        !batches.is_empty() && steps >= 1,
        "need at least one batch size and one step"
    );
    let shape = MlpShape::PAPER_2D;
    let layout = Layout::new(shape)?;
    let params = init_params(&layout, 1234);
    let mlp = Mlp::new(shape, &params).map_err(|e| anyhow::anyhow!("model: {e}"))?;
    let mut tables = vec![0.0f32; table_len(steps)];
    compute_tables(
        &BetaSchedule::PAPER,
        1000,
        &Spacing::Linspace,
        steps,
        &mut tables,
    )
    .map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
    let sched =
        Schedule::from_tables(&tables, steps).map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
    let cfg = SamplerConfig {
        clip: Clip::Symmetric(3.0),
        ..SamplerConfig::PAPER
    };
    let ctx = mirage_gpu::GpuContext::new().context("bench gpu")?;
    let sampler = mirage_gpu::GpuSampler::new(&ctx, &mlp, &sched, &cfg, 10).context("bench gpu")?;
    let gpu = mirage_gpu::bench::run(&sampler, &batches).context("bench gpu")?;
    let flop = mirage_gpu::bench::flop_per_sample_step(shape);
    let mut rows = Vec::new();
    if !args.json {
        println!("mirage bench gpu — adapter: {}", ctx.describe());
        println!(
            "{:>9} {:>6} {:>11} {:>14} {:>10} {:>14} {:>10} {:>8}",
            "batch",
            "steps",
            "gpu [s]",
            "gpu smp·st/s",
            "GFLOP/s",
            "cpu smp·st/s",
            "cpu GF/s",
            "gpu/cpu"
        );
    }
    for point in &gpu {
        let cpu = (point.batch <= args.cpu_max)
            .then(|| time_cpu(&layout, &params, &sched, &cfg, point.batch))
            .transpose()?;
        let work = (point.batch * steps) as f64;
        let cpu_rate = cpu.map(|s| work / s);
        if !args.json {
            println!(
                "{:>9} {:>6} {:>11.3} {:>14.3e} {:>10.2} {:>14} {:>10} {:>8}",
                point.batch,
                steps,
                point.seconds,
                point.sample_steps_per_s,
                point.flops / 1e9,
                cpu_rate.map_or("-".into(), |r| format!("{r:.3e}")),
                cpu_rate.map_or("-".into(), |r| format!("{:.2}", r * flop / 1e9)),
                cpu_rate.map_or("-".into(), |r| format!(
                    "{:.2}",
                    point.sample_steps_per_s / r
                )),
            );
        }
        rows.push(json!({
            "batch": point.batch, "steps": steps, "gpu_s": point.seconds,
            "gpu_sample_steps_per_s": point.sample_steps_per_s, "gpu_flops": point.flops,
            "non_finite": point.non_finite, "cpu_s": cpu,
            "cpu_sample_steps_per_s": cpu_rate, "gpu_over_cpu": cpu_rate.map(|r| point.sample_steps_per_s / r),
        }));
    }
    let j = json!({
        "bench": "gpu", "adapter": ctx.describe(), "flop_per_sample_step": flop,
        "model": "paper 2D MLP (67,074 parameters), Xavier init, clip 3", "points": rows,
    });
    println!("{j}");
    Ok(())
}

/// Seconds for the CPU batched path on the same model, configuration and batch.
fn time_cpu(
    layout: &Layout,
    params: &[f32],
    sched: &Schedule<'_>,
    cfg: &SamplerConfig,
    n: usize,
) -> Result<f64> {
    let den = BatchDenoiser::Mlp {
        layout,
        params,
        prediction: cfg.prediction,
    };
    let opts = SampleOptions::new(0);
    let start = Instant::now();
    sample_batch(&den, sched, cfg, n, &opts, None)?;
    Ok(start.elapsed().as_secs_f64())
}
