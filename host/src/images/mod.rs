//! Image experiments of Aithal et al. 2024 (papers.md §1, §7 D3/D6): the Simple Shapes
//! generator and its labeller, a small real digit set (UCI 8×8 handwritten digits) and an
//! IDX (MNIST) reader, a small convolutional U-Net denoiser trained on the CPU, batched
//! sampling with core's sampler step and Hal detector, and the hallucination, filter and
//! recursion experiments behind `mirage images`.

pub mod bench;
pub mod classifier;
pub mod digits;
pub mod experiments;
pub mod frechet;
pub mod idx;
pub mod label;
pub mod png;
pub mod shapes;
pub mod unet;
