//! `mirage bench gpu`: GPU sampling throughput (samples × steps per second and x-path
//! FLOP/s, design.md §5) for a list of batch sizes, beside the CPU batched path in the same
//! run on the same model and configuration.
//!
//! The model is the paper's 2D MLP with seeded Xavier weights and x̂0 clipped to [−3, 3]
//! (an untrained chain stays finite that way); the arithmetic per step is exactly that of a
//! trained model, so the figures transfer. The CPU column is measured only up to
//! `--cpu-max` samples (the CPU path is linear in the batch).

use anyhow::Result;
use clap::Args;

#[cfg(feature = "gpu")]
mod measure;

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
#[cfg(feature = "gpu")]
pub fn run(args: &BenchGpuArgs) -> Result<()> {
    measure::run(args)
}

/// Refuses `mirage bench gpu`: this build has no GPU backend.
///
/// # Errors
/// Always: `mirage` was built without the `gpu` feature.
#[cfg(not(feature = "gpu"))]
pub fn run(_args: &BenchGpuArgs) -> Result<()> {
    Err(super::without_gpu())
}
