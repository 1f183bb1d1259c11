//! `mirage recursive`: self-consuming training on a 2D set with the Hal filter vs random
//! vs unfiltered (papers.md §1.2 "Recursion"); see [`crate::experiments::recursive`].
//! Progress goes to stderr, the per-chain table to stdout; rerunning the same command
//! continues an interrupted run.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::experiments::model::ModelSettings;
use crate::experiments::recursive::{Filter, RecursiveConfig, run_recursive};

/// Arguments of `mirage recursive`.
#[derive(Args, Debug)]
pub struct RecursiveArgs {
    /// 2D dataset: grid25, grid25-rot, or a 2D mixture spec.
    #[arg(long, default_value = "grid25")]
    pub dataset: String,
    /// Filters, one chain each: hal, random, none, path, postvar, knn (comma-separated or
    /// repeated).
    #[arg(long, value_delimiter = ',', default_value = "hal,random,none")]
    pub filter: Vec<Filter>,
    /// Training points per generation N (1.025N are drawn).
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Epochs per generation (the paper: 10,000).
    #[arg(long, default_value_t = 300)]
    pub epochs: u64,
    /// Generations (G0 on real data).
    #[arg(long, default_value_t = 5)]
    pub generations: usize,
    /// Master seed.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Hidden width W.
    #[arg(long, default_value_t = 128)]
    pub width: usize,
    /// Applications of the tied block.
    #[arg(long, default_value_t = 3)]
    pub blocks: usize,
    /// Training batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Reverse steps (linspace over T; default all T = 1000).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Hal window K.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// Output directory (reused on a rerun with the same settings).
    #[arg(long, default_value = "runs/recursive")]
    pub out: PathBuf,
    /// Worker threads (results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// Runs `mirage recursive`.
///
/// # Errors
/// Invalid settings, a directory holding a run with other settings, or any training,
/// sampling or file error.
pub fn run(args: &RecursiveArgs) -> Result<()> {
    let cfg = RecursiveConfig {
        dataset: args.dataset.clone(),
        n: args.n,
        seed: args.seed,
        model: ModelSettings {
            width: args.width,
            blocks: args.blocks,
            batch: args.batch,
            lr: args.lr,
            epochs: args.epochs,
            sample_steps: args.steps,
            window: args.window,
        },
    };
    let summary = run_recursive(
        &cfg,
        args.generations,
        &args.filter,
        &args.out,
        args.threads,
    )?;
    println!(
        "{:<8} {:>3} {:>14} {:>14} {:>7} {:>11}",
        "chain", "gen", "% hallucinated", "% in kept set", "modes", "Hal median"
    );
    for r in &summary.rows {
        println!(
            "{:<8} {:>3} {:>14.3} {:>14.3} {:>4}/{:<2} {:>11.3e}",
            r.chain.name(),
            r.generation,
            100.0 * r.hallucination_rate,
            100.0 * r.kept_hallucination_rate,
            r.modes_covered,
            r.modes,
            r.hal_median
        );
    }
    println!("wrote {}", args.out.join("summary.json").display());
    Ok(())
}
