//! Fixed point for microcontrollers: the paper's tied residual MLP (Aithal et al. 2024,
//! papers.md §1.2) with integer weights and activations, and its post-training quantiser.
//!
//! # The two file kinds
//!
//! | kind | code | weights | activations | accumulation |
//! |---|---|---|---|---|
//! | q8 ([`QuantKind::Q8`]) | 2 | i8, per-output-channel symmetric (−127..=127) | i16 | i32 per 512 products, summed in i64 (exact for any width) |
//! | q16 ([`QuantKind::Q16`]) | 3 | i16, per-output-channel symmetric (−32767..=32767) | i16 | i64 |
//!
//! Both keep the residual stream h and the block middle u in i32 (|v| ≤ 2²³, 8 bits of
//! headroom over the calibrated range) and every matrix input in i16. Activations are 16-bit
//! in both kinds because an 8-bit activation alone costs ≈ 1% relative RMS per layer (a
//! range of ±4σ in 255 steps), the whole int8 budget of design.md §4, while the RAM cost of
//! i16 activations is a few hundred bytes; the flash cost, which is what matters on a
//! microcontroller, is set by the weights. The weight-section layout is in [`section`].
//!
//! Requantisation (CMSIS-NN style, [`fixed::requantize`]): y = round(acc·m·2^−k) + b with
//! per-output-channel m < 2³¹, one shift k per layer, round half toward +∞, saturating.
//! LayerNorm is integer throughout ([`fixed::layer_norm`]: integer mean and variance,
//! bit-by-bit integer square root, one u64 division for 1/√D); LeakyReLU multiplies by the
//! Q31 slope round(0.02·2³¹).
//!
//! # Time branch: computed at run time
//! The sinusoidal embedding is computed with libm exactly as [`crate::Mlp::time_embedding`]
//! (arguments reach 999 rad: papers.md §1.3 pitfall 4), quantised to i16, and W_t, W_e run in
//! integers. A per-step table of the block bias c(t) would cost T·W values in flash
//! (1000·128·2 B = 256 KB at i16, 128 KB at i8) against 2·W² weights for the branch (32 KB at
//! q8, 64 KB at q16) plus ≈ 10 KB of f64 libm code; RAM is W·4 bytes either way. Run time
//! wins on flash by 4–8×; its cost is ~E transcendental f64 calls per step (measured in the
//! embedded example's instruction counts).
//!
//! # Sampler and detector stay f32
//! The Cortex-M4F has a single-precision FPU: the sampler step is O(D) multiply-adds per step
//! and Hal's Welford update O(D), against O(W²) integer MACs in the network, so fixed point
//! there would save nothing measurable and would break the bit-identity of the f32 step with
//! the host and GPU paths (papers.md §1.3 pitfall 2: all paths share the ε-form μ). The
//! fixed-point network meets the sampler at an f32 boundary: [`QuantMlp`] implements
//! [`crate::Denoiser`] with f32 inputs (quantised to i16 over at least ±8, pitfall 7) and f32
//! outputs, so core's sampler, trajectory and detectors run unchanged.

pub mod fixed;
pub mod mlp;
pub mod quantize;
pub mod section;

pub use mlp::QuantMlp;
pub use quantize::{Ranges, quantize_into, quantize_scratch_len};
pub use section::{QuantKind, Scales, section_len};

#[cfg(test)]
mod tests;
