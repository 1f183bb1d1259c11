//! `cargo run --release -p mirage-gpu --example gpu_bench -- [steps] [batch ...]`: GPU
//! sampling throughput of a paper-sized 2D model (random weights; x̂0 clipped to ±3 so the
//! untrained network stays finite — the cost per step is that of the paper's sampler), as JSON
//! Lines on stdout, each line printed as soon as it is measured (a device run cut short still
//! reports what it finished): the adapter, then per batch a `point` and, up to 10⁴, a
//! `postvar_exact_t0` row (the extra time of the fused posterior variance, exact trace at
//! t = 0, d = 2 tangent passes per sample; fastest of 2 alternating calls each). Used by
//! `gpu/device-check.sh`.

use mirage_core::detector::PostVarConfig;
use mirage_core::mlp::{Mlp, MlpShape};
use mirage_core::sampler::{Clip, SamplerConfig};
use mirage_core::schedule::{BetaSchedule, Schedule, Spacing, compute_tables, table_len};
use mirage_gpu::{GpuContext, GpuSampler, bench};

/// Largest batch of the postvar rows (6 more calls per batch; keeps the device run short).
const POSTVAR_MAX_BATCH: usize = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let steps = args.first().copied().unwrap_or(1000);
    let batches: Vec<usize> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![1_000, 10_000, 100_000]
    };
    let shape = MlpShape::PAPER_2D;
    let mut state = 0x5EED_u64;
    let params: Vec<f32> = (0..shape.param_count())
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect();
    let mlp = Mlp::new(shape, &params)?;
    let mut tables = vec![0.0f32; table_len(steps)];
    compute_tables(
        &BetaSchedule::PAPER,
        1000,
        &Spacing::Linspace,
        steps,
        &mut tables,
    )?;
    let schedule = Schedule::from_tables(&tables, steps)?;
    let cfg = SamplerConfig {
        clip: Clip::Symmetric(3.0),
        ..SamplerConfig::PAPER
    };
    let ctx = GpuContext::new()?;
    let sampler = GpuSampler::new(&ctx, &mlp, &schedule, &cfg, 10)?;
    let fused =
        GpuSampler::new(&ctx, &mlp, &schedule, &cfg, 10)?.with_postvar(PostVarConfig::EXACT)?;
    println!(
        "{{\"adapter\":{:?},\"flop_per_sample_step\":{},\"max_chunk\":{}}}",
        ctx.describe(),
        bench::flop_per_sample_step(shape),
        sampler.max_chunk()
    );
    bench::warm_up(&sampler, batches.iter().copied().min().unwrap_or(1))?;
    for &b in &batches {
        let p = bench::time_batch(&sampler, b)?;
        println!(
            "{{\"point\":{{\"batch\":{},\"steps\":{},\"seconds\":{:.6},\"sample_steps_per_s\":{:.6e},\"flops\":{:.6e},\"non_finite\":{}}}}}",
            p.batch, p.steps, p.seconds, p.sample_steps_per_s, p.flops, p.non_finite
        );
        if b <= POSTVAR_MAX_BATCH {
            let o = bench::postvar_overhead(&sampler, &fused, b, 2)?;
            println!(
                "{{\"postvar_exact_t0\":{{\"batch\":{},\"plain_seconds\":{:.6},\"fused_seconds\":{:.6},\"overhead\":{:.6},\"extra_passes\":{}}}}}",
                o.batch, o.plain_seconds, o.fused_seconds, o.overhead, o.extra_passes
            );
        }
    }
    Ok(())
}
