//! The paper's training loop (papers.md §1.2 "Training"): for each step, take the next
//! batch of N points in stored order (or a seeded per-epoch shuffle), draw t ~ U{0..T−1}
//! and ε ~ N(0, I) per sample, form x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε from the f32 schedule
//! tables (computed in f64), and take one Adam step on the ε-MSE.
//!
//! A step is bit-reproducible from (config, data, seed, step): its draws are keyed by the
//! step number and the gradient's summation order is fixed (see `engine`), so a run
//! resumed from a checkpoint ends with exactly the weights of an uninterrupted run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::adam::{Adam, AdamConfig};
use super::checkpoint::{Checkpoint, CheckpointMeta};
use super::draws::{epoch_order, init_params, step_draws};
use super::engine::GradEngine;
use super::layout::Layout;
use crate::io::atomic::write_atomic;
use mirage_core::crc32::crc32;
use mirage_core::mlp::MlpShape;
use mirage_core::schedule::{BetaSchedule, Schedule, Spacing, Table, compute_tables, table_len};

/// Everything that determines a training run's arithmetic (threads do not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Data dimension D.
    pub dim: usize,
    /// Hidden width W.
    pub width: usize,
    /// Applications of the tied block.
    pub blocks: usize,
    /// Time-embedding size E.
    pub temb_dim: usize,
    /// Diffusion steps T.
    pub train_steps: usize,
    /// Linear β schedule start.
    pub beta_start: f64,
    /// Linear β schedule end.
    pub beta_end: f64,
    /// Adam learning rate.
    pub lr: f32,
    /// Adam β₁.
    pub beta1: f32,
    /// Adam β₂.
    pub beta2: f32,
    /// Adam epsilon.
    pub adam_eps: f32,
    /// Batch size N.
    pub batch: usize,
    /// Master seed (papers.md §7 D7).
    pub seed: u64,
    /// Shuffle each epoch (the paper does not).
    pub shuffle: bool,
}

impl TrainConfig {
    /// The paper's setup for dimension `dim`: W = E = 128, 3 tied blocks, T = 1000,
    /// β 1e-3→0.2, Adam (1e-3, 0.9, 0.999, 1e-8), batch 10,000, seed 1234, stored order.
    #[must_use]
    pub fn paper(dim: usize) -> Self {
        let a = AdamConfig::PAPER;
        Self {
            dim,
            width: 128,
            blocks: 3,
            temb_dim: 128,
            train_steps: 1000,
            beta_start: 1e-3,
            beta_end: 0.2,
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            adam_eps: a.eps,
            batch: 10_000,
            seed: 1234,
            shuffle: false,
        }
    }

    /// The network shape.
    #[must_use]
    pub fn shape(&self) -> MlpShape {
        MlpShape {
            dim: self.dim,
            width: self.width,
            blocks: self.blocks,
            temb_dim: self.temb_dim,
        }
    }

    /// The β schedule.
    #[must_use]
    pub fn beta(&self) -> BetaSchedule<'static> {
        BetaSchedule::Linear {
            start: self.beta_start,
            end: self.beta_end,
        }
    }

    /// The optimiser settings.
    #[must_use]
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.adam_eps,
        }
    }

    /// The full-T schedule tables (Linspace spacing, steps = T), as stored in `.mrg`.
    ///
    /// # Errors
    /// If the schedule is invalid.
    pub fn tables(&self) -> Result<Vec<f32>> {
        let mut tables = vec![0.0f32; table_len(self.train_steps)];
        compute_tables(
            &self.beta(),
            self.train_steps,
            &Spacing::Linspace,
            self.train_steps,
            &mut tables,
        )
        .map_err(|e| anyhow::anyhow!("invalid schedule (T = {}): {e}", self.train_steps))?;
        Ok(tables)
    }
}

/// Where and how often to write checkpoints.
#[derive(Clone, Debug)]
pub struct CheckpointPolicy {
    /// The checkpoint file (rewritten atomically).
    pub path: PathBuf,
    /// Write after every this many steps (and at the end).
    pub every: u64,
}

/// The checkpoint file inside a checkpoint directory.
#[must_use]
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.mckpt")
}

/// Where the checkpoint before the current one is kept: `<checkpoint>.prev`. A corrupt or
/// truncated current checkpoint is refused on resume; this one is still there.
#[must_use]
pub fn previous_checkpoint_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".prev");
    path.with_file_name(name)
}

/// A training run in progress.
pub struct Trainer {
    config: TrainConfig,
    layout: Layout,
    params: Vec<f32>,
    adam: Adam,
    tables: Vec<f32>,
    sqrt_alpha_bar: Vec<f32>,
    sqrt_one_minus_alpha_bar: Vec<f32>,
    data: Vec<f32>,
    data_crc: u32,
    engine: GradEngine,
    grad: Vec<f32>,
    x_t: Vec<f32>,
    t: Vec<u32>,
    eps: Vec<f32>,
    order: Option<(u64, Vec<u32>)>,
    last_loss: f64,
}

impl Trainer {
    /// A fresh run on `data` (`[n, dim]`, row-major) with weights initialised from the seed.
    ///
    /// # Errors
    /// Invalid shape or schedule, data length not a multiple of D, fewer points than one
    /// batch, or non-finite data.
    pub fn new(config: TrainConfig, data: Vec<f32>, threads: usize) -> Result<Self> {
        let layout = Layout::new(config.shape())?;
        let tables = config.tables()?;
        let sched = Schedule::from_tables(&tables, config.train_steps)
            .map_err(|e| anyhow::anyhow!("schedule tables: {e}"))?;
        let sqrt_alpha_bar = sched.table(Table::SqrtAlphaBar).to_vec();
        let sqrt_one_minus_alpha_bar = sched.table(Table::SqrtOneMinusAlphaBar).to_vec();
        ensure!(config.batch > 0, "batch size must be at least 1");
        ensure!(
            data.len().is_multiple_of(config.dim),
            "data length {} is not a multiple of dim {}",
            data.len(),
            config.dim
        );
        let n = data.len() / config.dim;
        ensure!(
            n >= config.batch,
            "the dataset has {n} points, fewer than one batch of {}; lower the batch size",
            config.batch
        );
        ensure!(
            data.iter().all(|v| v.is_finite()),
            "the training data contains NaN or infinite values"
        );
        let data_crc = crc32(bytemuck::cast_slice(&data));
        let params = init_params(&layout, config.seed);
        let adam = Adam::new(config.adam(), layout.len);
        Ok(Self {
            engine: GradEngine::new(layout, threads),
            grad: vec![0.0; layout.len],
            x_t: Vec::new(),
            t: Vec::new(),
            eps: Vec::new(),
            order: None,
            last_loss: f64::NAN,
            config,
            layout,
            params,
            adam,
            tables,
            sqrt_alpha_bar,
            sqrt_one_minus_alpha_bar,
            data,
            data_crc,
        })
    }

    /// Continues the run saved in `checkpoint` (bytes of a checkpoint file) on the same data.
    ///
    /// # Errors
    /// Corrupt checkpoint, or one written for another config or dataset.
    pub fn resume(
        config: TrainConfig,
        data: Vec<f32>,
        threads: usize,
        checkpoint: &[u8],
    ) -> Result<Self> {
        let ck = Checkpoint::decode(checkpoint)?;
        if ck.meta.config != config {
            bail!(
                "the checkpoint was written with a different configuration:\n  checkpoint: {:?}\n  now:        {config:?}",
                ck.meta.config
            );
        }
        let mut tr = Self::new(config, data, threads)?;
        ensure!(
            ck.meta.data_len == tr.data.len() / tr.config.dim && ck.meta.data_crc == tr.data_crc,
            "the checkpoint was written for a different dataset ({} points, CRC {:#010x}; now {} points, CRC {:#010x})",
            ck.meta.data_len,
            ck.meta.data_crc,
            tr.data.len() / tr.config.dim,
            tr.data_crc
        );
        ensure!(
            ck.params.len() == tr.layout.len,
            "checkpoint holds {} parameters, the shape needs {}",
            ck.params.len(),
            tr.layout.len
        );
        ensure!(
            ck.params.iter().all(|v| v.is_finite()),
            "checkpoint weights contain NaN or infinite values"
        );
        tr.params = ck.params;
        tr.adam.m = ck.m;
        tr.adam.v = ck.v;
        tr.adam.step = ck.step;
        Ok(tr)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    /// The parameter layout.
    #[must_use]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// Current parameters.
    #[must_use]
    pub fn params(&self) -> &[f32] {
        &self.params
    }
    /// Optimiser state.
    #[must_use]
    pub fn adam(&self) -> &Adam {
        &self.adam
    }
    /// Full-T schedule tables.
    #[must_use]
    pub fn tables(&self) -> &[f32] {
        &self.tables
    }
    /// Steps taken.
    #[must_use]
    pub fn step(&self) -> u64 {
        self.adam.step
    }
    /// Loss of the last step (NaN before the first).
    #[must_use]
    pub fn last_loss(&self) -> f64 {
        self.last_loss
    }
    /// Steps per epoch: ⌊n / N⌋ (a remainder is dropped, as the paper's loader does).
    #[must_use]
    pub fn steps_per_epoch(&self) -> u64 {
        (self.data.len() / self.config.dim / self.config.batch) as u64
    }

    /// The checkpoint of the current state.
    ///
    /// # Errors
    /// Only if serialisation fails.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        Checkpoint {
            meta: CheckpointMeta {
                config: self.config.clone(),
                data_len: self.data.len() / self.config.dim,
                data_crc: self.data_crc,
            },
            step: self.adam.step,
            params: self.params.clone(),
            m: self.adam.m.clone(),
            v: self.adam.v.clone(),
        }
        .encode()
    }

    /// One Adam step on the next batch; returns its loss.
    pub fn train_step(&mut self) -> f64 {
        let c = &self.config;
        let (d, nb) = (c.dim, c.batch);
        let s = self.adam.step;
        let spe = self.steps_per_epoch();
        let epoch = s / spe;
        let k = (s % spe) as usize;
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.order = Some((
                epoch,
                epoch_order(c.seed, epoch, self.data.len() / d, c.shuffle),
            ));
        }
        step_draws(c.seed, s, c.train_steps, d, &mut self.t, &mut self.eps, nb);
        let (sab, s1m) = (&self.sqrt_alpha_bar, &self.sqrt_one_minus_alpha_bar);
        let order = self
            .order
            .as_ref()
            .map_or(&[][..], |(_, o)| &o[k * nb..(k + 1) * nb]);
        self.x_t.clear();
        for ((&idx, &t), e) in order.iter().zip(&self.t).zip(self.eps.chunks_exact(d)) {
            let x0 = &self.data[idx as usize * d..(idx as usize + 1) * d];
            let (a, b) = (sab[t as usize], s1m[t as usize]);
            self.x_t
                .extend(x0.iter().zip(e).map(|(x, ev)| a * x + b * ev));
        }
        let loss =
            self.engine
                .loss_grad(&self.params, &self.x_t, &self.t, &self.eps, &mut self.grad);
        self.adam.update(&mut self.params, &self.grad);
        self.last_loss = loss;
        loss
    }

    /// Trains until `until` steps have been taken, writing checkpoints per `policy` and a
    /// progress bar (steps/s, loss, ETA) on stderr if `progress`.
    ///
    /// # Errors
    /// If a checkpoint cannot be written, or the loss becomes non-finite.
    pub fn run(
        &mut self,
        until: u64,
        policy: Option<&CheckpointPolicy>,
        progress: bool,
    ) -> Result<()> {
        let start = self.step();
        let bar = if progress {
            ProgressBar::new(until)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps  {per_sec}  loss {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(start);
        let t0 = Instant::now();
        while self.step() < until {
            let loss = self.train_step();
            ensure!(
                loss.is_finite(),
                "the loss became {loss} at step {}; training diverged",
                self.step()
            );
            bar.set_position(self.step());
            bar.set_message(format!("{loss:.5}"));
            if let Some(p) = policy
                && (p.every > 0 && self.step().is_multiple_of(p.every) || self.step() == until)
            {
                self.save_checkpoint(&p.path)?;
            }
        }
        bar.finish_and_clear();
        if progress && self.step() > start {
            let secs = t0.elapsed().as_secs_f64();
            eprintln!(
                "trained {} steps in {secs:.1} s ({:.2} steps/s), final loss {:.5}",
                self.step() - start,
                (self.step() - start) as f64 / secs,
                self.last_loss
            );
        }
        Ok(())
    }

    /// Writes the checkpoint to `path` atomically, first keeping the current one (if any)
    /// as [`previous_checkpoint_path`]. At every instant `path` holds a complete checkpoint
    /// (the old or the new one) and `.prev` a complete older one: the old file is hard-linked
    /// (or copied) to a temporary name and renamed onto `.prev` before the new one is renamed
    /// onto `path`.
    ///
    /// # Errors
    /// If either file cannot be written.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let bytes = self.checkpoint()?;
        if path.is_file() {
            let prev = previous_checkpoint_path(path);
            let mut tmp_name = prev.file_name().unwrap_or_default().to_os_string();
            tmp_name.push(format!(".{}.link.tmp", std::process::id()));
            let tmp = prev.with_file_name(tmp_name);
            let _ = std::fs::remove_file(&tmp);
            std::fs::hard_link(path, &tmp)
                .or_else(|_| std::fs::copy(path, &tmp).map(|_| ()))
                .and_then(|()| std::fs::rename(&tmp, &prev))
                .with_context(|| {
                    format!("cannot keep the previous checkpoint as {}", prev.display())
                })?;
        }
        write_atomic(path, &bytes)
            .with_context(|| format!("cannot write checkpoint {}", path.display()))
    }
}
