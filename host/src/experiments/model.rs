//! One model of an experiment: train the paper's ε-prediction MLP (papers.md §1.2
//! "Training": ε-MSE, Adam, stored order, T = 1000, β 1e-3→0.2) on a point set, write it
//! as `.mrg`, and draw samples with Hal (papers.md §1.2 "Sampler", "Hal(x)": ancestral
//! DDPM, fixed-large σ² = β, no clip; Hal = mean_d Var_j x̂0 over the last K steps).
//!
//! The experiments ([`super::recursive`], `mirage demo`) share these settings so a model
//! of either is described by the same logged fields.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use crate::detect::{DetectConfig, DetectOutput, RunOptions, run_detectors};
use crate::io::atomic::write_atomic;
use crate::sample::BatchDenoiser;
use crate::train::export::{AlignedBytes, to_mrg};
use crate::train::{CheckpointPolicy, Layout, TrainConfig, Trainer};
use mirage_core::SamplerConfig;
use mirage_core::detector::posterior_variance::PostVarConfig;
use mirage_core::schedule::{Schedule, Spacing, compute_tables, table_len};

/// Network, optimiser and sampler settings of one model (everything but the data, the
/// seeds and the thread count, which do not change the arithmetic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// Hidden width W (the time embedding has E = W).
    pub width: usize,
    /// Applications of the tied block.
    pub blocks: usize,
    /// Training batch size.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Passes over the training set (Adam steps = epochs × ⌊n / batch⌋).
    pub epochs: u64,
    /// Reverse steps (linspace over T); `None` = all T (the paper).
    pub sample_steps: Option<usize>,
    /// Hal window K (the last K reverse steps).
    pub window: usize,
}

impl ModelSettings {
    /// The paper's network and sampler (W = 128, 3 blocks, batch 10,000, lr 1e-3, all
    /// 1000 steps, K = 10) trained for `epochs` epochs.
    #[must_use]
    pub fn paper(epochs: u64) -> Self {
        Self {
            width: 128,
            blocks: 3,
            batch: 10_000,
            lr: 1e-3,
            epochs,
            sample_steps: None,
            window: 10,
        }
    }

    /// The training configuration for data of dimension `dim` with master seed `seed`.
    #[must_use]
    pub fn train_config(&self, dim: usize, seed: u64) -> TrainConfig {
        TrainConfig {
            width: self.width,
            temb_dim: self.width,
            blocks: self.blocks,
            lr: self.lr,
            batch: self.batch,
            seed,
            ..TrainConfig::paper(dim)
        }
    }

    /// Trains a fresh model (new init and Adam state from `seed`) on `data` (`[n, dim]`)
    /// and returns its `.mrg` bytes. With `checkpoint`, training state is saved there every
    /// 500 steps and an existing checkpoint of the same run is resumed, so an interrupted
    /// run continues where it stopped with the same bits.
    ///
    /// # Errors
    /// Invalid settings, too few points for one batch, non-finite data, divergence, or an
    /// unwritable checkpoint.
    pub fn train(
        &self,
        data: Vec<f32>,
        dim: usize,
        seed: u64,
        threads: usize,
        checkpoint: Option<&Path>,
    ) -> Result<Vec<u8>> {
        let config = self.train_config(dim, seed);
        let policy = checkpoint.map(|path| CheckpointPolicy {
            path: path.to_path_buf(),
            every: 500,
        });
        let mut trainer = match checkpoint.filter(|p| p.is_file()) {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
                let t = Trainer::resume(config, data, threads, &bytes).with_context(|| {
                    format!(
                        "cannot resume from {} (delete it to retrain this model)",
                        path.display()
                    )
                })?;
                eprintln!("  resuming training at step {}", t.step());
                t
            }
            None => Trainer::new(config, data, threads)?,
        };
        let total = self
            .epochs
            .checked_mul(trainer.steps_per_epoch())
            .context("too many epochs")?;
        trainer.run(total, policy.as_ref(), std::io::stderr().is_terminal())?;
        let c = trainer.config();
        to_mrg(
            c.shape(),
            c.train_steps,
            c.beta(),
            trainer.tables(),
            trainer.params(),
        )
    }

    /// Draws `n` samples (indices 0..n) from the model in `mrg` (bytes of a `.mrg` file;
    /// `name` goes into errors) with noise seed `seed`, scoring them with Hal at K =
    /// `window` and the detectors `extra` asks for. The samples and Hal equal
    /// [`crate::sample::sample_batch`]'s bit for bit and do not depend on `threads`.
    ///
    /// # Errors
    /// A corrupt model file, one whose shape differs from these settings, or a sampling
    /// error.
    #[allow(clippy::too_many_arguments)]
    pub fn sample(
        &self,
        mrg: &[u8],
        name: &str,
        dim: usize,
        n: usize,
        seed: u64,
        threads: usize,
        extra: Extra,
    ) -> Result<DetectOutput> {
        let aligned = AlignedBytes::new(mrg);
        let model = aligned.model(name)?;
        let header = *model.header();
        let expected = self.train_config(dim, 0).shape();
        ensure!(
            header.shape == expected,
            "{name} holds a {:?} network, but these settings need {expected:?}",
            header.shape
        );
        let mlp = crate::train::export::f32_mlp(&model, name)?;
        let steps = self.sample_steps.unwrap_or(header.train_steps);
        let mut tables = vec![0.0f32; table_len(steps)];
        compute_tables(
            &header.beta,
            header.train_steps,
            &Spacing::Linspace,
            steps,
            &mut tables,
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot build a {steps}-step schedule out of T = {}: {e}",
                header.train_steps
            )
        })?;
        let schedule =
            Schedule::from_tables(&tables, steps).map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
        let layout = Layout::new(header.shape)?;
        let den = BatchDenoiser::Mlp {
            layout: &layout,
            params: mlp.params(),
            prediction: header.prediction,
        };
        let cfg = SamplerConfig {
            prediction: header.prediction,
            ..SamplerConfig::PAPER
        };
        let dc = DetectConfig {
            hal_windows: vec![self.window],
            path_window: if extra.path { self.window } else { 0 },
            postvar: if extra.postvar {
                vec![PostVarConfig::EXACT]
            } else {
                Vec::new()
            },
            by_step: Vec::new(),
            by_step_window: 0,
        };
        let opts = RunOptions {
            seed,
            threads,
            chunk: 512,
        };
        run_detectors(&den, &schedule, &cfg, n, &dc, &opts)
    }
}

/// Detectors computed while sampling, beside Hal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extra {
    /// Path length of x̂0 over the Hal window (papers.md §9 D15).
    pub path: bool,
    /// Exact tr ∂x̂0/∂x_t at the final step (papers.md §9 D11–D14).
    pub postvar: bool,
}

/// Reads a `.mrg` file written by [`ModelSettings::train`] (its bytes).
///
/// # Errors
/// Unreadable file (named).
pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))
}

/// Writes model bytes atomically.
///
/// # Errors
/// Unwritable file (named).
pub fn write_model(path: &Path, mrg: &[u8]) -> Result<()> {
    write_atomic(path, mrg).with_context(|| format!("cannot write model {}", path.display()))
}
