//! File output: every file mirage writes goes through [`atomic::write_atomic`].

pub mod atomic;
pub mod csv;
pub mod matrix;
pub mod npy;
