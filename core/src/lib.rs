//! # mirage-core
//!
//! The `#![no_std]`, allocation-free heart of mirage: noise schedules computed in f64 and
//! handed out as f32 tables, DDPM/DDIM sampler steps that return x̂0 beside x_{t−1},
//! denoisers (the tied residual MLP of Aithal et al. 2024 and the exact Gaussian-mixture
//! posterior mean), the streaming Hal detector, counter-based noise and the `.mrg` model
//! file. The same code runs on the host, in the tests and on a Cortex-M4.
//!
//! Nothing here allocates or panics: every fallible call returns [`Error`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod crc32;
pub mod denoiser;
pub mod detector;
pub mod error;
pub mod format;
pub mod gmm;
pub mod math;
pub mod mlp;
pub mod noise;
pub mod quant;
pub mod sampler;
pub mod schedule;
pub mod trajectory;

pub use denoiser::Denoiser;
pub use detector::{Detector, Hal, HalSingle, PathLength, PosteriorVariance};
pub use error::Error;
pub use format::{ModelFile, ModelHeader, ModelKind, encoded_len, write_model, write_quant_model};
pub use gmm::{ExactGmm, MAX_COMPONENTS};
pub use mlp::{Mlp, MlpShape, Tap, TensorSpec, TimeCachedMlp};
pub use noise::{
    STREAM_INIT, STREAM_PROBE, STREAM_STEP, chacha_stream, fill_normals, normal, philox4x32_10,
    rademacher,
};
pub use quant::{QuantKind, QuantMlp};
pub use sampler::{Clip, EpsilonScaling, Method, Prediction, SamplerConfig, Variance, step};
pub use schedule::{
    BetaSchedule, Schedule, Spacing, StepCoefs, TABLE_COUNT, Table, compute_tables, table_len,
};
pub use trajectory::{sample_trajectory, trajectory_scratch_len};
