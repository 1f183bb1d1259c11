//! The `mirage` subcommands: argument structs (clap) and their `run` functions. `main.rs`
//! only dispatches.

pub mod bench;
pub mod bench_gpu;
pub mod demo;
pub mod es;
pub mod filter;
pub mod hallucination;
pub mod images;
pub mod quantize;
pub mod recursive;
pub mod ridge;
pub mod sample;
pub mod train;
pub mod windows;
