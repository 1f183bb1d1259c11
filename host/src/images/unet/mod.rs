//! A small convolutional U-Net ε-predictor trained on the CPU (papers.md §1 image
//! experiments; the paper's image networks are *not published*, D6): 3×3 convolutions via
//! im2col + GEMM (the `gemm` crate, one image at a time), group norm, SiLU, a sinusoidal
//! time embedding added in every residual block, two 2× mean-pool downsamplings and nearest
//! upsamplings with skip connections. Forward and backward are written by hand and checked
//! against central finite differences in f64 (`tests.rs`).
//!
//! Speed (`mirage images bench`, README "Images"): passes of [`net::MICRO_BATCH`] images
//! keep the activations in cache; im2col rows are padded by one cache line (32×32 planes
//! at a power-of-two stride cut the weight-gradient GEMM five-fold by 4K aliasing); the
//! binary tells glibc to keep freed memory (`main.rs`); SiLU's exp is branch-free.

pub mod file;
pub mod layers;
pub mod net;
pub mod real;
pub mod sample;
pub mod train;

#[cfg(test)]
mod tests;

pub use net::{Tape, UnetConfig, UnetLayout, forward_flops};
pub use real::Real;
