//! The `mirage` subcommands: argument structs (clap) and their `run` functions. `main.rs`
//! only dispatches.

pub mod bench;
pub mod es;
pub mod images;
pub mod ridge;
pub mod sample;
pub mod train;
pub mod windows;
