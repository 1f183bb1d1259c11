//! The batched trainer for the paper's tied residual MLP (papers.md §1.2 "Training"):
//! ε-prediction MSE, Adam, batch 10,000, T = 1000 with β 1e-3→0.2, stored order.
//!
//! GEMM-based forward and backward over chunks of the batch ([`net`], [`engine`]), seeded
//! draws ([`draws`]), Adam ([`adam`]), resumable checkpoints ([`checkpoint`]), and export
//! to the `.mrg` model file and to PyTorch-named safetensors ([`export`]).

pub mod adam;
pub mod checkpoint;
pub mod draws;
pub mod engine;
pub mod export;
pub mod gemm;
pub mod layout;
pub mod net;
pub mod trainer;

pub use adam::{Adam, AdamConfig};
pub use layout::Layout;
pub use trainer::{
    CheckpointPolicy, TrainConfig, Trainer, checkpoint_path, previous_checkpoint_path,
};

#[cfg(test)]
mod tests;
