//! # mirage-tests
//!
//! Differential tests across mirage's paths (core f32, host batched, GPU, fixed point).
