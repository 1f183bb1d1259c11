//! Exposure bias and Epsilon Scaling (Ning et al. 2024, arXiv 2308.15321; papers.md §2, §6.2, D8):
//! f64 respaced schedules ([`schedule64`]), the closed-form error and ES variance recursions
//! ([`recursion`]), the exposure metric δ_t and the ε-norm tool measured along sampler chains
//! ([`exposure`]), and the λ sweep with W1, hallucination rate, mode coverage and automatic λ pick
//! ([`sweep`]).

pub mod chain;
pub mod exposure;
pub mod recursion;
pub mod schedule64;
pub mod sweep;
