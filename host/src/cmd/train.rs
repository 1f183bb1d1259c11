//! `mirage train`: train the paper's ε-prediction MLP on a dataset (papers.md §1.2
//! "Training"), with resumable checkpoints, writing a `.mrg` model and/or PyTorch-named
//! safetensors.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use clap::Args;

use crate::data::{Dataset, Named, parse_mixture};
use crate::io::atomic::write_atomic;
use crate::train::export::{to_mrg, to_safetensors};
use crate::train::{
    CheckpointPolicy, TrainConfig, Trainer, checkpoint::Checkpoint, checkpoint_path,
    previous_checkpoint_path,
};

/// Arguments of `mirage train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Dataset: gauss1d-3, gauss1d-4, grid25, grid25-rot, or a .toml/.json mixture spec.
    pub dataset: String,
    /// Training points (default: the paper's size, 20k / 50k / 100k / 100k; 100k for specs).
    #[arg(long)]
    pub n: Option<usize>,
    /// Epochs (passes over the data; steps = epochs × ⌊n / batch⌋).
    #[arg(long, default_value_t = 100)]
    pub epochs: u64,
    /// Master seed for data, initial weights and t/ε draws.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Batch size.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Hidden width W (and time-embedding size E).
    #[arg(long, default_value_t = 128)]
    pub width: usize,
    /// Applications of the tied block.
    #[arg(long, default_value_t = 3)]
    pub blocks: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Shuffle the data every epoch (the paper keeps the stored order).
    #[arg(long)]
    pub shuffle: bool,
    /// Directory for the checkpoint file (checkpoint.mckpt).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint every this many steps.
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Continue from the checkpoint in --checkpoint-dir.
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// Worker threads (the result does not depend on it).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Write the trained model as a .mrg file.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Write the trained weights as safetensors with the paper's state_dict names.
    #[arg(long)]
    pub safetensors: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Most f32 training values (points × dimensions) `mirage train` generates: 2²⁸ (1 GiB).
const MAX_TRAIN_VALUES: usize = 1 << 28;

fn default_points(dataset: &str) -> usize {
    match dataset.parse::<Named>() {
        Ok(Named::Gauss1d3) => 20_000,
        Ok(Named::Gauss1d4) => 50_000,
        _ => 100_000,
    }
}

/// Removes the temporary files a killed run may have left in the checkpoint directory
/// (`.checkpoint.mckpt.<pid>.tmp` from an interrupted atomic write, and the `.prev` link
/// staging file). The real checkpoint files are never partial, so nothing else is touched.
fn remove_stale_temps(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours =
            name.starts_with(".checkpoint.mckpt.") || name.starts_with("checkpoint.mckpt.prev.");
        if ours && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Adds to a resume error where the previous checkpoint is, if it is intact.
fn with_previous_hint(err: anyhow::Error, path: &std::path::Path) -> anyhow::Error {
    let prev = previous_checkpoint_path(path);
    match std::fs::read(&prev)
        .ok()
        .and_then(|b| Checkpoint::decode(&b).ok())
    {
        Some(ck) => err.context(format!(
            "the previous checkpoint {} (step {}) is intact; to resume from it, move it over {}",
            prev.display(),
            ck.step,
            path.display()
        )),
        None => err,
    }
}

/// Runs `mirage train`.
///
/// # Errors
/// Unknown dataset, invalid sizes, unreadable or mismatched checkpoint, unwritable output.
pub fn run(args: &TrainArgs) -> Result<()> {
    ensure!(
        args.out.is_some() || args.safetensors.is_some() || args.checkpoint_dir.is_some(),
        "nothing would be saved: pass --out model.mrg, --safetensors file or --checkpoint-dir"
    );
    ensure!(args.threads >= 1, "--threads must be at least 1");
    let mixture = parse_mixture(&args.dataset)?;
    let n = args.n.unwrap_or_else(|| default_points(&args.dataset));
    let dim = mixture.dim();
    // An absurd --n must be a clear error, not an allocation abort (found by the bad-input
    // checks: --n 1e12 aborted with "memory allocation of 4000000000000 bytes failed").
    ensure!(
        n.checked_mul(dim).is_some_and(|v| v <= MAX_TRAIN_VALUES),
        "--n {n}: {n} points × {dim} dimensions exceeds the limit of {MAX_TRAIN_VALUES} training values (1 GiB)"
    );
    let data = Dataset::generate(mixture, n, args.seed).into_points();
    let config = TrainConfig {
        width: args.width,
        temb_dim: args.width,
        blocks: args.blocks,
        lr: args.lr,
        batch: args.batch,
        seed: args.seed,
        shuffle: args.shuffle,
        ..TrainConfig::paper(dim)
    };
    let policy = args.checkpoint_dir.as_ref().map(|dir| CheckpointPolicy {
        path: checkpoint_path(dir),
        every: args.checkpoint_every,
    });
    if let Some(dir) = &args.checkpoint_dir {
        remove_stale_temps(dir);
    }
    let mut trainer = match (&policy, args.resume) {
        (Some(p), true) => {
            let t = std::fs::read(&p.path)
                .with_context(|| format!("cannot read checkpoint {}", p.path.display()))
                .and_then(|bytes| Trainer::resume(config, data, args.threads, &bytes))
                .with_context(|| format!("cannot resume from {}", p.path.display()))
                .map_err(|e| with_previous_hint(e, &p.path))?;
            eprintln!("resuming at step {} from {}", t.step(), p.path.display());
            t
        }
        _ => Trainer::new(config, data, args.threads)?,
    };
    let total = args
        .epochs
        .checked_mul(trainer.steps_per_epoch())
        .context("too many epochs")?;
    let progress = !args.quiet && std::io::stderr().is_terminal();
    trainer.run(total, policy.as_ref(), progress)?;
    let c = trainer.config().clone();
    // Encode everything first, so a failure leaves no partial set of outputs.
    let mrg = match &args.out {
        Some(path) => Some((
            path,
            to_mrg(
                c.shape(),
                c.train_steps,
                c.beta(),
                trainer.tables(),
                trainer.params(),
            )?,
        )),
        None => None,
    };
    let st = match &args.safetensors {
        Some(path) => {
            let meta = HashMap::from([
                ("dataset".to_string(), args.dataset.clone()),
                ("adam_steps".to_string(), trainer.step().to_string()),
                ("seed".to_string(), c.seed.to_string()),
                (
                    "note".to_string(),
                    "temp_fc.0/1/2 are tied (identical) in the model".to_string(),
                ),
            ]);
            Some((
                path,
                to_safetensors(c.shape(), trainer.params(), Some(meta))?,
            ))
        }
        None => None,
    };
    for (path, bytes) in mrg.iter().chain(st.iter()) {
        write_atomic(path, bytes)?;
        println!("wrote {}", path.display());
    }
    println!(
        "steps {}  final loss {:.6}",
        trainer.step(),
        trainer.last_loss()
    );
    Ok(())
}
