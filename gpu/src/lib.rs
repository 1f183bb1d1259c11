//! # mirage-gpu
//!
//! Batched DDPM/DDIM sampling of the model-file MLP with the Hal detector fused in, in wgpu
//! compute shaders, using core's schedule tables and core's counter-based noise
//! (Aithal et al. 2024, papers.md §1.2–1.3).
//!
//! - [`GpuContext`]: device selection (`MIRAGE_GPU_ADAPTER` substring, or the best adapter);
//!   tests may inject their own device with [`GpuContext::from_device`].
//! - [`GpuSampler`]: the model, the per-step time branch (computed on the CPU by core) and the
//!   sampler coefficients resident on the device; [`GpuSampler::sample`] returns samples and
//!   Hal scores; [`GpuSampler::forward`] and [`GpuSampler::step`] are the per-layer/per-step
//!   debug entry points for differential tests; [`noise::normals`] the noise.
//! - [`GpuSampler::with_postvar`]: the Tweedie posterior-variance score (core's
//!   `PosteriorVariance`, papers.md §9) fused into the sampler at its steps, with core's
//!   directions; [`GpuSampler::posterior_variance`] its debug entry point.
//! - [`bench`]: throughput (samples·steps/s, FLOP/s) for `mirage bench gpu`.

mod context;
mod error;
mod kernels;
mod postvar;
mod sampler;

pub mod bench;
pub mod noise;

pub use context::{ADAPTER_ENV, GpuContext};
pub use error::GpuError;
pub use postvar::PostVarScores;
pub use sampler::{DEFAULT_MAX_CHUNK, GpuOutput, GpuSampler, StepOutput};
