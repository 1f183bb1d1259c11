//! `mirage bench train` / `mirage bench sample`: throughput of the trainer and of batched
//! sampling with Hal, each reported beside the sgemm rate of a 10000×128 @ 128×128
//! product measured in the same run with the same library (the machine's practical GEMM
//! roofline, design.md §5), so figures compare across noisy, shared machines. `bench
//! sample` also times the exact posterior variance at t = 0 (issue 11's ≤ 1% target).
//!
//! FLOP counts follow `peers/peer_torch.py`: a forward pass is 2·(multiply-adds of every
//! Linear) per sample — 328,704 for the paper's 2D network when the time branch is paid
//! per sample, of which 197,632 are on the x path; training ≈ 3 forward passes.

use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::data::{Dataset, Named};
use crate::detect::{DetectConfig, RunOptions, run_detectors};
use crate::sample::{BatchDenoiser, SampleOptions, sample_batch};
use crate::train::gemm::{Mat, gemm};
use crate::train::{TrainConfig, Trainer};
use mirage_core::detector::posterior_variance::PostVarConfig;
use mirage_core::schedule::{Schedule, Spacing, compute_tables, table_len};
use mirage_core::{BetaSchedule, MlpShape, Prediction, SamplerConfig};

/// Arguments of `mirage bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// Training epochs of 100,000 2D points at batch 10,000.
    Train {
        /// Smaller sizes (20,000 points, batch 2,000, one timed epoch).
        #[arg(long)]
        quick: bool,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Batched sampling, 10,000 samples × 1000 steps with Hal, and the posterior-variance
    /// overhead at t = 0.
    Sample {
        /// Smaller sizes (2,000 samples × 200 steps).
        #[arg(long)]
        quick: bool,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Samples per chunk.
        #[arg(long, default_value_t = 512)]
        chunk: usize,
    },
    /// GPU sampling throughput for batch sizes 10^3 … 10^6, beside the CPU path.
    Gpu(super::bench_gpu::BenchGpuArgs),
}

/// FLOPs per sample of one forward pass: (all Linears, x path only).
fn forward_flops(s: MlpShape) -> (f64, f64) {
    let (d, w, e, b) = (
        s.dim as f64,
        s.width as f64,
        s.temb_dim as f64,
        s.blocks as f64,
    );
    let x_path = 2.0 * (d * w + b * 2.0 * w * w + w * d);
    (x_path + 2.0 * (w * e + b * w * w), x_path)
}

/// sgemm GFLOP/s of 10000×128 @ 128×128 on `threads` threads, each multiplying its own
/// block of rows (the GEMM itself is single-threaded; median of 7 timings of 20 products).
fn gemm_roofline(threads: usize) -> f64 {
    let (m, k, n) = (10_000, 128, 128);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 31) % 1000) as f32 * 1e-3)
        .collect();
    let mut c = vec![0.0f32; m * n];
    let reps = 20;
    let rows = m.div_ceil(threads.max(1));
    let b = &b;
    let mut once = || {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (a, c) in a.chunks(rows * k).zip(c.chunks_mut(rows * n)) {
                s.spawn(move || {
                    for _ in 0..reps {
                        gemm(
                            1.0,
                            Mat::rows(a, a.len() / k, k),
                            Mat::rows(b, k, n),
                            0.0,
                            c,
                        );
                    }
                });
            }
        });
        t.elapsed().as_secs_f64()
    };
    once();
    let mut times: Vec<f64> = (0..7).map(|_| once()).collect();
    times.sort_by(f64::total_cmp);
    2.0 * (m * k * n) as f64 * f64::from(reps) / times[3] / 1e9
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `mirage bench …`.
///
/// # Errors
/// Only if a component fails (it should not on valid built-in settings).
pub fn run(args: &BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Train { quick, threads } => bench_train(quick, threads),
        BenchWhat::Sample {
            quick,
            threads,
            chunk,
        } => bench_sample(quick, threads, chunk),
        BenchWhat::Gpu(ref gpu) => super::bench_gpu::run(gpu),
    }
}

fn bench_train(quick: bool, threads: usize) -> Result<()> {
    let (n, batch, epochs) = if quick {
        (20_000, 2_000, 1)
    } else {
        (100_000, 10_000, 3)
    };
    let roof = gemm_roofline(threads);
    let data = Dataset::generate(Named::Grid25.mixture()?, n, 1234).into_points();
    let config = TrainConfig {
        batch,
        ..TrainConfig::paper(2)
    };
    let shape = config.shape();
    let mut tr = Trainer::new(config, data, threads)?;
    tr.run(1, None, false)?; // warm-up step
    let spe = tr.steps_per_epoch();
    let mut times = Vec::new();
    for _ in 0..epochs {
        let t = Instant::now();
        let until = tr.step() + spe;
        tr.run(until, None, false)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let epoch_s = median(&mut times);
    let (fa, _) = forward_flops(shape);
    let gflops = 3.0 * fa * n as f64 / epoch_s / 1e9;
    let roof_after = gemm_roofline(threads);
    println!(
        "mirage bench train ({} points, batch {batch}, {threads} threads, paper 2D MLP)",
        n
    );
    println!("{:<38} {:>12}", "item", "value");
    println!("{:<38} {:>12.3}", "epoch time (median) [s]", epoch_s);
    println!("{:<38} {:>12.3}", "epoch time (best) [s]", best);
    println!("{:<38} {:>12.1}", "steps/s", spe as f64 / epoch_s);
    println!(
        "{:<38} {:>12.1}",
        "GFLOP/s (3 × forward, peer count)", gflops
    );
    println!("{:<38} {:>12.1}", "sgemm 10000×128@128×128 GFLOP/s", roof);
    println!("{:<38} {:>12.3}", "ratio to sgemm", gflops / roof);
    println!("{:<38} {:>12.1}", "sgemm GFLOP/s (after)", roof_after);
    println!("{:<38} {:>12.5}", "final loss", tr.last_loss());
    let j = json!({
        "bench": "train", "points": n, "batch": batch, "threads": threads, "steps_per_epoch": spe,
        "epoch_s_median": epoch_s, "epoch_s_best": best, "epoch_times_s": times,
        "gflops_peer_count": gflops, "gemm_gflops": roof, "gemm_gflops_after": roof_after,
        "ratio_to_gemm": gflops / roof, "flops_per_sample_forward": fa, "final_loss": tr.last_loss(),
    });
    println!("{j}");
    Ok(())
}

fn bench_sample(quick: bool, threads: usize, chunk: usize) -> Result<()> {
    let (n, steps) = if quick { (2_000, 200) } else { (10_000, 1000) };
    let roof = gemm_roofline(threads);
    // A briefly trained model keeps the chain finite (as the peer does; untimed).
    let data = Dataset::generate(Named::Grid25.mixture()?, 20_000, 1234).into_points();
    let mut tr = Trainer::new(
        TrainConfig {
            batch: 2_000,
            ..TrainConfig::paper(2)
        },
        data,
        threads,
    )?;
    tr.run(if quick { 30 } else { 150 }, None, false)?;
    let shape = tr.config().shape();
    let layout = *tr.layout();
    let mut tables = vec![0.0f32; table_len(steps)];
    compute_tables(
        &BetaSchedule::PAPER,
        1000,
        &Spacing::Linspace,
        steps,
        &mut tables,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sched = Schedule::from_tables(&tables, steps).map_err(|e| anyhow::anyhow!("{e}"))?;
    let den = BatchDenoiser::Mlp {
        layout: &layout,
        params: tr.params(),
        prediction: Prediction::Epsilon,
    };
    let opts = SampleOptions {
        threads,
        chunk,
        ..SampleOptions::new(1234)
    };
    let t = Instant::now();
    let out = sample_batch(&den, &sched, &SamplerConfig::PAPER, n, &opts, None)?;
    let secs = t.elapsed().as_secs_f64();
    let roof_after = gemm_roofline(threads);
    let (fa, fx) = forward_flops(shape);
    let work = (n * steps) as f64;
    let g_peer = fa * work / secs / 1e9;
    let g_x = fx * work / secs / 1e9;
    let finite = out.samples.iter().all(|v| v.is_finite());
    let mut hal: Vec<f64> = out.hal.iter().map(|&h| f64::from(h)).collect();
    let hal_median = median(&mut hal);
    println!(
        "mirage bench sample ({n} samples × {steps} steps + Hal K=10, {threads} threads, chunk {chunk})"
    );
    println!("{:<38} {:>12}", "item", "value");
    println!("{:<38} {:>12.3}", "time [s]", secs);
    println!("{:<38} {:>12.3e}", "samples·steps/s", work / secs);
    println!(
        "{:<38} {:>12.1}",
        "GFLOP/s (peer count, 328,704/fwd)", g_peer
    );
    println!("{:<38} {:>12.1}", "GFLOP/s (x path, 197,632/fwd)", g_x);
    println!("{:<38} {:>12.1}", "sgemm 10000×128@128×128 GFLOP/s", roof);
    println!("{:<38} {:>12.3}", "ratio to sgemm (x path)", g_x / roof);
    println!("{:<38} {:>12.1}", "sgemm GFLOP/s (after)", roof_after);
    println!("{:<38} {:>12}", "samples finite", finite);
    println!("{:<38} {:>12.3e}", "Hal median", hal_median);
    let pv = bench_postvar(&den, &sched, n, threads, chunk)?;
    let j = json!({
        "bench": "sample", "samples": n, "steps": steps, "threads": threads, "chunk": chunk, "time_s": secs,
        "sample_steps_per_s": work / secs, "gflops_peer_count": g_peer, "gflops_x_path": g_x,
        "gemm_gflops": roof, "gemm_gflops_after": roof_after, "ratio_to_gemm_x_path": g_x / roof,
        "extrapolated": false, "output_finite": finite, "hal_median": hal_median, "postvar": pv,
    });
    println!("{j}");
    Ok(())
}

/// The posterior-variance overhead: the detector runner with Hal K = 10 alone, with the
/// exact tr J at t = 0 (d tangent passes per sample, each a primal and a tangent row of the
/// batched JVP) and with one Hutchinson probe. The overhead is the detector's
/// thread-seconds over the sampling thread-seconds of the same run (robust to load); the
/// wall-clock times are printed beside it.
fn bench_postvar(
    den: &BatchDenoiser<'_>,
    sched: &Schedule<'_>,
    n: usize,
    threads: usize,
    chunk: usize,
) -> Result<serde_json::Value> {
    let dim = den.dim();
    let opts = RunOptions {
        seed: 1234,
        threads,
        chunk,
    };
    let configs: [(&str, Vec<PostVarConfig>); 3] = [
        ("Hal K=10", vec![]),
        ("Hal + postvar exact, t=0", vec![PostVarConfig::EXACT]),
        (
            "Hal + postvar 1 probe, t=0",
            vec![PostVarConfig::one_probe(1234)],
        ),
    ];
    println!();
    println!("posterior variance at t = 0 ({n} samples, batched JVP on the GEMM path, {dim}D)");
    println!(
        "{:<28} {:>9} {:>14} {:>12} {:>14}",
        "run", "wall [s]", "sampling [t·s]", "postvar [t·s]", "overhead [%]"
    );
    let mut rows = Vec::new();
    for (name, postvar) in configs {
        let passes: usize = postvar
            .iter()
            .map(|pc| pc.estimator.passes(dim) * pc.steps.len())
            .sum();
        let dc = DetectConfig {
            hal_windows: vec![10],
            path_window: 0,
            postvar,
            by_step: vec![],
            by_step_window: 10,
        };
        let t = Instant::now();
        let out = run_detectors(den, sched, &SamplerConfig::PAPER, n, &dc, &opts)?;
        let wall = t.elapsed().as_secs_f64();
        let pv_s = out.timing.postvar_s.iter().fold(0.0f64, |a, b| a + b);
        let overhead = 100.0 * pv_s / out.timing.sampling_s;
        println!(
            "{name:<28} {wall:>9.3} {:>14.3} {pv_s:>12.4} {overhead:>14.3}",
            out.timing.sampling_s
        );
        rows.push(json!({
            "run": name, "wall_s": wall, "sampling_thread_s": out.timing.sampling_s,
            "hal_thread_s": out.timing.hal_s, "postvar_thread_s": pv_s,
            "overhead_percent": overhead, "tangent_passes_per_sample": passes,
        }));
    }
    println!(
        "extra denoiser calls per sample: exact = d = {dim} tangent passes, Hutchinson = m = 1 \
         (each pass: one primal + one tangent row), vs {} sampling calls",
        sched.steps()
    );
    Ok(serde_json::Value::Array(rows))
}
