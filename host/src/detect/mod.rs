//! Hallucination detectors beyond Hal on the host (papers.md §9 "Detectors beyond Hal"):
//! the batch k-NN score (D16, [`knn`]) and the runner that feeds every streaming detector —
//! Hal at several windows, path length (D15), the Tweedie posterior variance (D11–D14) —
//! from the batched sampler ([`run`]), the MLP's JVP batched on the GEMM path ([`jvp`]).
//! Scoring stays D5 (`crate::metrics`).

pub mod jvp;
pub mod knn;
pub mod run;

pub use jvp::BatchJvpMlp;
pub use knn::{DEFAULT_K, knn_distances};
pub use run::{
    ByStep, DetectConfig, DetectOutput, RunOptions, Timing, run_detectors, window_scores,
};

#[cfg(test)]
mod tests;
