//! `mirage images …`: the image experiments (Simple Shapes and handwritten digits) with
//! the CPU U-Net — see [`crate::images`]. Reports go to stdout as JSON and, with PNG grids
//! and model files (`.mru`), under `--out`; progress goes to stderr.

use std::path::PathBuf;

use anyhow::{Result, bail, ensure};
use clap::{Args, Subcommand};

use crate::images::bench::bench_unet;
use crate::images::digits::fetch_digits;
use crate::images::experiments::{
    ExperimentConfig, FilterKind, ImageDataset, filter_experiment, hallucination_vs_size,
    parse_sizes, recursive,
};
use crate::images::unet::UnetConfig;
use crate::images::unet::sample::UnetSampleConfig;
use crate::images::unet::train::UnetTrainConfig;

/// Arguments of `mirage images`.
#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// What to run.
    #[command(subcommand)]
    pub what: ImagesWhat,
}

/// Settings shared by the experiments.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Image set.
    #[arg(long, value_enum, default_value_t = ImageDataset::Shapes)]
    pub dataset: ImageDataset,
    /// Image side: shapes 32 (2×2-mean downscale, default) or 64; digits are always 8.
    #[arg(long)]
    pub side: Option<usize>,
    /// Training images (shapes: generated; digits: first n, 0 = all 1,797).
    #[arg(long, default_value_t = 5_000)]
    pub train_size: usize,
    /// U-Net channels at full and reduced resolution, "C1,C2".
    #[arg(long, default_value = "16,32")]
    pub channels: String,
    /// Optimiser steps per model.
    #[arg(long, default_value_t = 3_000)]
    pub steps: usize,
    /// Training batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f32,
    /// Use the paper's toy schedule β 1e-3→0.2 instead of DDPM's 1e-4→0.02 (T = 1000).
    #[arg(long)]
    pub paper_beta: bool,
    /// Respaced sampling steps (linspace over T = 1000).
    #[arg(long, default_value_t = 100)]
    pub sample_steps: usize,
    /// Hal window K (last K sampler steps).
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// Images per sampling forward pass.
    #[arg(long, default_value_t = 128)]
    pub sample_batch: usize,
    /// Master seed (papers.md D7).
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Training threads: each step's batch is split into this many shards (the trained
    /// bits depend on it; 1 reproduces the README's figures).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Output directory.
    #[arg(long, default_value = "images-out")]
    pub out: PathBuf,
}

impl CommonArgs {
    fn config(&self) -> Result<ExperimentConfig> {
        let side = match (self.dataset, self.side) {
            (ImageDataset::Digits, s) => s.unwrap_or(8),
            (ImageDataset::Shapes, s) => s.unwrap_or(32),
        };
        let (c1, c2) = parse_channels(&self.channels)?;
        let net = UnetConfig {
            side,
            c1,
            c2,
            ..UnetConfig::SHAPES32
        };
        net.validate()?;
        let beta = if self.paper_beta {
            (1e-3, 0.2)
        } else {
            (1e-4, 0.02)
        };
        Ok(ExperimentConfig {
            dataset: self.dataset,
            train_size: self.train_size,
            net,
            train: UnetTrainConfig {
                steps: self.steps,
                batch: self.batch,
                lr: self.lr,
                seed: self.seed,
                train_steps: 1000,
                beta,
                threads: self.threads,
            },
            sample: UnetSampleConfig {
                steps: self.sample_steps,
                window: self.window,
                batch: self.sample_batch,
                seed: 0,
                first_sample: 0,
            },
            out_dir: self.out.clone(),
        })
    }
}

/// The image subcommands.
#[derive(Subcommand, Debug)]
pub enum ImagesWhat {
    /// Download scikit-learn's copy of the UCI 8×8 digits once (python3 + pip) and cache it.
    FetchDigits,
    /// Fraction of generated shapes images with two shapes in a column, per training-set size.
    Hallucination {
        #[command(flatten)]
        common: CommonArgs,
        /// Training-set sizes, comma-separated.
        #[arg(long, default_value = "500,5000")]
        sizes: String,
        /// Images drawn per model.
        #[arg(long, default_value_t = 1_000)]
        samples: usize,
    },
    /// Hal filter on shapes: ROC AUC and removed-vs-kept at the D5 threshold.
    Filter {
        #[command(flatten)]
        common: CommonArgs,
        /// Images drawn and labelled (D5 asks for ≥ 10⁴).
        #[arg(long, default_value_t = 10_000)]
        samples: usize,
        /// Score an existing model (.mru) instead of training one.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Extra Hal windows scored from the same trajectories; the reported K is chosen
        /// among them and --window on the calibration half (papers.md D5).
        #[arg(long, value_delimiter = ',', default_value = "2,5,20,40")]
        windows: Vec<usize>,
    },
    /// Recursive training: generations of fresh models, Hal filter vs random vs none.
    Recursive {
        #[command(flatten)]
        common: CommonArgs,
        /// Generations (including generation 0 on real data).
        #[arg(long, default_value_t = 5)]
        generations: usize,
        /// Variants to run.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "hal,random,none"
        )]
        variants: Vec<FilterKind>,
    },
    /// U-Net training and sampling throughput (images/s, GFLOP/s) beside the sgemm rate.
    Bench {
        /// Images per batch.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Timed training steps (and forward passes).
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Image side (32 = shapes, 8 = digits).
        #[arg(long, default_value_t = 32)]
        side: usize,
        /// Channels "C1,C2".
        #[arg(long, default_value = "16,32")]
        channels: String,
        /// Training threads (batch shards).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// Runs `mirage images …`.
///
/// # Errors
/// Whatever the subcommand reports.
pub fn run(args: &ImagesArgs) -> Result<()> {
    let json = match &args.what {
        ImagesWhat::FetchDigits => {
            let path = fetch_digits()?;
            serde_json::json!({ "cached": path })
        }
        ImagesWhat::Hallucination {
            common,
            sizes,
            samples,
        } => serde_json::to_value(hallucination_vs_size(
            &common.config()?,
            &parse_sizes(sizes)?,
            *samples,
        )?)?,
        ImagesWhat::Filter {
            common,
            samples,
            model,
            windows,
        } => {
            if let Some(k) = windows.iter().find(|&&k| k == 0 || k > common.sample_steps) {
                bail!(
                    "--windows {k} must lie in 1..={} (--sample-steps); pass --windows with \
                     smaller values",
                    common.sample_steps
                );
            }
            serde_json::to_value(filter_experiment(
                &common.config()?,
                *samples,
                model.as_deref(),
                windows,
            )?)?
        }
        ImagesWhat::Recursive {
            common,
            generations,
            variants,
        } => serde_json::to_value(recursive(&common.config()?, *generations, variants)?)?,
        ImagesWhat::Bench {
            batch,
            steps,
            side,
            channels,
            threads,
        } => {
            let (c1, c2) = parse_channels(channels)?;
            let net = UnetConfig {
                side: *side,
                c1,
                c2,
                ..UnetConfig::SHAPES32
            };
            serde_json::to_value(bench_unet(net, *batch, *steps, *steps, *threads)?)?
        }
    };
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

/// Parses "C1,C2".
fn parse_channels(text: &str) -> Result<(usize, usize)> {
    let ch: Vec<usize> = text
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--channels {text:?}: {e}"))?;
    ensure!(
        ch.len() == 2,
        "--channels wants two counts, \"C1,C2\", not {text:?}"
    );
    Ok((ch[0], ch[1]))
}
