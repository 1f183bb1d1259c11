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

/// The error of a GPU command in a `mirage` built without the `gpu` feature.
#[cfg(not(feature = "gpu"))]
fn without_gpu() -> anyhow::Error {
    anyhow::anyhow!(
        "this mirage was built without the `gpu` feature: rebuild with it \
         (`cargo build --release -p mirage-host --features gpu`) to use the GPU backend"
    )
}
