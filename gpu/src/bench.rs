//! GPU throughput for `mirage bench gpu`: whole trajectories of the model-file MLP.
//!
//! FLOP per sample and step: the x path, 2·(D·W + 2·blocks·W² + W·D) (the time branch is
//! computed once per step on the CPU and not counted), as in design.md §5 (197,632 for the
//! paper's 2D model).

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
    /// Wall-clock seconds of the timed call (after one warm-up call).
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
/// one untimed warm-up call per size (pipeline and buffer creation).
///
/// # Errors
/// Whatever [`GpuSampler::sample`] returns.
pub fn run(sampler: &GpuSampler, batches: &[usize]) -> Result<Vec<BenchPoint>, GpuError> {
    let flop = flop_per_sample_step(sampler.shape());
    let steps = sampler.steps();
    batches
        .iter()
        .map(|&batch| {
            sampler.sample(0, 0, batch)?;
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
        })
        .collect()
}
