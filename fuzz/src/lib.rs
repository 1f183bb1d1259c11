//! Fuzz harnesses for mirage, one function per `cargo fuzz` target.
//!
//! The harnesses take raw bytes and decode them with [`reader::Reader`] (no `arbitrary`, no
//! libfuzzer), so the normal test suite can replay every crash input found here through the
//! very same code: `tests/tests/regressions.rs` includes this file with `#[path]`.
//!
//! Each harness panics only when it finds a bug: a panic inside mirage, or a broken
//! property (a file that parsed but does not re-encode, a quantiser output its own
//! validator rejects, a NaN score, fixed point outside its documented error bound).
#![forbid(unsafe_code)]
#![allow(clippy::missing_panics_doc)]

pub mod detector;
pub mod fixed_vs_f32;
pub mod host_inputs;
pub mod model_file;
pub mod quantizer;
pub mod reader;
pub mod sampler_step;
pub mod util;
