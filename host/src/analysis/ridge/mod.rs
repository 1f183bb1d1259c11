//! The log-density ridge (He, Qiu & Tao 2026, arXiv 2602.06021; papers.md §4, §6.4, D10): a
//! Jacobi eigen-solver ([`eigen`]), the ridge condition and SCMS projection ([`scms`]), the
//! two-point error-injection toy with reach/align/slide phase logging ([`toy`]) and the ridge of
//! grid25 ([`grid`]).

pub mod eigen;
pub mod grid;
pub mod scms;
pub mod toy;
