//! GPU throughput for `mirage bench gpu`: whole trajectories of the model-file MLP.
//!
//! FLOP per sample and step: the x path, 2·(D·W + 2·blocks·W² + W·D) (the time branch is
//! computed once per step on the CPU and not counted), as in design.md §5 (197,632 for the
//! paper's 2D model). [`postvar_overhead`]: the extra time of the fused posterior variance.

use std::time::Instant;

use mirage_core::mlp::MlpShape;

use crate::{GpuError, GpuSampler};

/// One measured batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchPoint {
    /// Samples per call.
    pub batch: usize,
    /// Reverse steps per trajectory.
    pub steps: usize,
    /// Wall-clock seconds of the timed call.
    pub seconds: f64,
    /// samples × steps per second.
    pub sample_steps_per_s: f64,
    /// x-path FLOP per second.
    pub flops: f64,
    /// Samples whose value came back non-finite (should be 0).
    pub non_finite: usize,
}

/// x-path FLOP of one forward pass of one sample.
pub fn flop_per_sample_step(shape: MlpShape) -> f64 {
    let (d, w, b) = (shape.dim as f64, shape.width as f64, shape.blocks as f64);
    2.0 * (d * w + 2.0 * b * w * w + w * d)
}

/// Times [`GpuSampler::sample`] for each batch size (seed 0, sample indices from 0), after
/// one untimed warm-up call at the smallest size (pipelines compiled, caches filled).
///
/// # Errors
/// Whatever [`GpuSampler::sample`] returns.
pub fn run(sampler: &GpuSampler, batches: &[usize]) -> Result<Vec<BenchPoint>, GpuError> {
    warm_up(sampler, batches.iter().copied().min().unwrap_or(1))?;
    batches.iter().map(|&b| time_batch(sampler, b)).collect()
}

/// One untimed call of `batch` samples.
///
/// # Errors
/// Whatever [`GpuSampler::sample`] returns.
pub fn warm_up(sampler: &GpuSampler, batch: usize) -> Result<(), GpuError> {
    sampler.sample(0, 0, batch).map(|_| ())
}

/// One timed call of `batch` samples.
///
/// # Errors
/// Whatever [`GpuSampler::sample`] returns.
pub fn time_batch(sampler: &GpuSampler, batch: usize) -> Result<BenchPoint, GpuError> {
    let flop = flop_per_sample_step(sampler.shape());
    let steps = sampler.steps();
    let start = Instant::now();
    let out = sampler.sample(0, 0, batch)?;
    let seconds = start.elapsed().as_secs_f64();
    let work = (batch * steps) as f64;
    Ok(BenchPoint {
        batch,
        steps,
        seconds,
        sample_steps_per_s: work / seconds,
        flops: work * flop / seconds,
        non_finite: out.non_finite,
    })
}

/// The cost of the fused posterior variance at one batch size: the same trajectories with
/// and without it.
#[derive(Clone, Debug, PartialEq)]
pub struct PostVarOverhead {
    /// Samples per call.
    pub batch: usize,
    /// Fastest of the timed calls without the score, seconds.
    pub plain_seconds: f64,
    /// Fastest of the timed calls with the score, seconds.
    pub fused_seconds: f64,
    /// fused / plain − 1 (may come out slightly negative when the extra work is below the
    /// timing noise).
    pub overhead: f64,
    /// Extra tangent rows per sample over the trajectory (passes × steps of the set), in
    /// forward passes: the FLOP overhead is this / steps.
    pub extra_passes: usize,
}

/// Times `plain` and `fused` (the same model and schedule; `fused` built with
/// [`GpuSampler::with_postvar`]) on `batch` samples, alternating, `reps` timed calls each
/// after one warm-up call each, keeping the fastest of each (robust to a shared machine).
///
/// # Errors
/// [`GpuError::InvalidInput`] if `fused` has no posterior variance, the step counts differ
/// or `reps` is 0; whatever [`GpuSampler::sample`] returns.
pub fn postvar_overhead(
    plain: &GpuSampler,
    fused: &GpuSampler,
    batch: usize,
    reps: usize,
) -> Result<PostVarOverhead, GpuError> {
    let Some(config) = fused.postvar() else {
        return Err(GpuError::InvalidInput(
            "fused sampler has no posterior variance",
        ));
    };
    if plain.steps() != fused.steps() || reps == 0 {
        return Err(GpuError::InvalidInput(
            "postvar bench: step counts differ or 0 reps",
        ));
    }
    let time = |s: &GpuSampler| -> Result<f64, GpuError> {
        let start = Instant::now();
        s.sample(0, 0, batch)?;
        Ok(start.elapsed().as_secs_f64())
    };
    time(plain)?;
    time(fused)?;
    let (mut plain_s, mut fused_s) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps {
        plain_s = plain_s.min(time(plain)?);
        fused_s = fused_s.min(time(fused)?);
    }
    Ok(PostVarOverhead {
        batch,
        plain_seconds: plain_s,
        fused_seconds: fused_s,
        overhead: fused_s / plain_s - 1.0,
        extra_passes: config.estimator.passes(fused.shape().dim) * config.steps.len(),
    })
}
