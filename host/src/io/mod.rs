//! File input and output: every file mirage writes goes through [`atomic::write_atomic`];
//! CSV and NPY readers validate what they read.

pub mod atomic;
pub mod csv;
pub mod matrix;
pub mod npy;
