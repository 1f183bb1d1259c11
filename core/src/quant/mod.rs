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
//! # Error bounds
//! With ε = 1e−2 (q8) or 1e−3 (q16), on inputs from the calibrated range, each error an RMS
//! over all compared values, the f32 network being the reference:
//!
//! - **Per layer, isolated** (each layer fed the f32 network's input): every LayerNorm output
//!   within ε of its RMS; every linear layer y = W·a + b (in_fc; fc1 plus c(t); h plus fc2;
//!   out_fc plus b_o) within ε of its *condition magnitude* m_r = Σ_j |W[r,j]|·|a_j| + |b_r|;
//!   the time bias c(t), two matrices deep, within 2ε of enc's condition magnitude.
//! - **End to end**: ε̂ within L·ε of out_fc's condition magnitude, L = 2 + 2·blocks (the
//!   matrices on the x path; the per-layer bound composed linearly), plus the f32 network's
//!   own response to rounding x to the i16 input grid (step s_x ≥ 16/65534 = 2.4e−4, the
//!   ±8 floor): that error belongs to the input format, not to the weights, and an
//!   ill-conditioned net amplifies it (fuzzing found a q16, D = 1, width-16 net on ±0.5
//!   inputs whose f32 forward on the rounded x alone moves ε̂ by 6.89e−3 of m, against
//!   L·ε = 4e−3; its whole end-to-end error was 6.90e−3;
//!   tests/regressions/fixed_vs_f32/q16_w16_d1_amp05_input_rounding).
//!
//! The reference is m, not |y|, because a W-term sum can cancel and the weight rounding
//! error of a row, ≈ max|W_r|/(q_max·√12)·‖a‖, scales with the terms, not with their sum.
//! This matters at the output: D ≪ W rows with no normalisation after them. The plain
//! relative error is the bounded one times κ = ‖m‖/‖y‖: κ ≈ 1–10 for hidden layers, and up
//! to ≈ 70 for the output of small random nets (a width-16 q8 net: 3.7e−3 of m, plain 0.27,
//! a constant offset, since its activations barely vary over ±0.5 inputs at one t). The
//! `fixed_vs_f32` fuzz target checks these bounds on random nets of width 16–64 (observed
//! maxima over 20,000 random draws: q8 0.50ε per layer, 0.13·L·ε end to end; q16 0.37ε,
//! 0.49·L·ε); tests/tests/fixed_vs_f32.rs checks the plain per-layer ≤ ε on trained nets.
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
