//! Analysis tools from the papers related to Aithal et al. 2024 (papers.md §2–§4, §6), in f64:
//!
//! - [`es`]: exposure bias and Epsilon Scaling (Ning et al. 2024): error recursions, the perfect-
//!   denoiser ES gain, the exposure metric δ_t, the ε-norm tool and the λ sweep;
//! - [`windows`]: critical windows (Li & Chen 2024): noise-then-denoise experiments against the
//!   exact P_stay, window bounds, the hierarchy and the last-switch table;
//! - [`ridge`]: the log-density ridge (He, Qiu & Tao 2026): closed-form Hessians, SCMS projection,
//!   reach/align/slide phases and the two-point error-injection toy.
//!
//! [`mixture`] (diffused Gaussian mixtures), [`stats`] and [`paths`] (deterministic parallel Monte
//! Carlo on core's counter-based noise) are shared by all three.

pub mod es;
pub mod mixture;
pub mod paths;
pub mod ridge;
pub mod stats;
pub mod windows;
