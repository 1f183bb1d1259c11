//! The measurement behind `mirage bench gpu` (built with the `gpu` feature only).

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde_json::json;

use crate::sample::{BatchDenoiser, SampleOptions, sample_batch};
use crate::train::Layout;
use crate::train::draws::init_params;
use mirage_core::detector::PostVarConfig;
use mirage_core::schedule::{Schedule, Spacing, compute_tables, table_len};
use mirage_core::{BetaSchedule, Clip, Mlp, MlpShape, SamplerConfig};

use super::BenchGpuArgs;

/// Measures the GPU and CPU paths for `mirage bench gpu`.
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
    let postvar = postvar_row(&ctx, &mlp, &sched, &cfg, &sampler, &batches, args.json)?;
    let j = json!({
        "bench": "gpu", "adapter": ctx.describe(), "flop_per_sample_step": flop,
        "model": "paper 2D MLP (67,074 parameters), Xavier init, clip 3", "points": rows,
        "postvar_exact_t0": postvar,
    });
    println!("{j}");
    Ok(())
}

/// The overhead of the posterior-variance score (exact tr J at t = 0) fused into the GPU
/// sampler, at the smallest benched batch: fastest of 2 alternating calls each.
///
/// # Errors
/// Whatever building the fused sampler or sampling returns.
fn postvar_row(
    ctx: &mirage_gpu::GpuContext,
    mlp: &Mlp<'_>,
    sched: &Schedule<'_>,
    cfg: &SamplerConfig,
    plain: &mirage_gpu::GpuSampler,
    batches: &[usize],
    quiet: bool,
) -> Result<serde_json::Value> {
    let batch = batches.iter().copied().min().unwrap_or(1);
    let fused = mirage_gpu::GpuSampler::new(ctx, mlp, sched, cfg, 10)
        .and_then(|s| s.with_postvar(PostVarConfig::EXACT))
        .context("bench gpu: fused posterior variance")?;
    let o = mirage_gpu::bench::postvar_overhead(plain, &fused, batch, 2)
        .context("bench gpu: fused posterior variance")?;
    if !quiet {
        println!(
            "posterior variance (exact tr J at t = 0, {} extra tangent rows per sample) fused, batch {}: {:.3} s vs {:.3} s plain, overhead {:+.2}%",
            o.extra_passes,
            o.batch,
            o.fused_seconds,
            o.plain_seconds,
            100.0 * o.overhead
        );
    }
    Ok(json!({
        "batch": o.batch, "plain_s": o.plain_seconds, "fused_s": o.fused_seconds,
        "overhead": o.overhead, "extra_passes": o.extra_passes,
    }))
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
