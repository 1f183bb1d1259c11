//! # mirage-host
//!
//! Everything mirage does on a workstation: datasets and their hallucination labellers,
//! the batched trainer, batched sampling with the Hal detector, the paper's experiments
//! and the analysis tools, all behind the `mirage` CLI. Per-sample math comes from
//! `mirage-core`; this crate batches it and handles files, plots and progress.

pub mod analysis;
pub mod cmd;
pub mod data;
pub mod detect;
pub mod experiments;
pub mod images;
pub mod io;
pub mod label;
pub mod metrics;
pub mod plot;
pub mod quant;
pub mod sample;
pub mod train;
