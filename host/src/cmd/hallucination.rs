//! `mirage hallucination`: the fraction of hallucinated samples (papers.md §7 D1/D2 at
//! k = 5, and k = 4, 6 in 1D) of several models — given as `.mrg` files, or trained here on
//! `--train-sizes` points for each of `--epochs` with the paper's settings — next to the
//! exact-GMM denoiser, which should not hallucinate (papers.md §1.4). Per model it writes a
//! density figure like the paper's (1D: histogram with a log count axis, modes marked; 2D:
//! scatter with the centres), and `hallucination.json` / `hallucination.csv` with the rates.
//!
//! Trained models are cached as `DIR/model_n{size}_e{epochs}.mrg` (a rerun reuses them), with
//! resumable checkpoints beside them.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Result, ensure};
use clap::Args;
use serde::Serialize;

use crate::data::{Dataset, parse_mixture};
use crate::detect::DetectConfig;
use crate::experiments::model::{ModelSettings, write_model};
use crate::io::atomic::write_atomic;
use crate::label::{Labeller, Summary};
use crate::plot::histogram_log_y;
use crate::plot::scatter_2d;
use crate::plot::{Series, line_plot};

use super::filter::{ModelArgs, load, sample_with};

/// Arguments of `mirage hallucination`.
#[derive(Args, Debug)]
pub struct HallucinationArgs {
    /// Dataset: gauss1d-3, gauss1d-4, grid25, grid25-rot, or a .toml/.json mixture spec.
    #[arg(long, default_value = "gauss1d-3")]
    pub dataset: String,
    /// Trained models (.mrg) to compare (repeatable).
    #[arg(long)]
    pub model: Vec<PathBuf>,
    /// Train models on these training-set sizes (comma-separated) instead.
    #[arg(long, value_delimiter = ',')]
    pub train_sizes: Vec<usize>,
    /// … for each of these epoch counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub epochs: Vec<u64>,
    /// Training seed (data, init, draws).
    #[arg(long, default_value_t = 1234)]
    pub train_seed: u64,
    /// Hal window K (Hal is reported per model as a summary).
    #[arg(long, default_value_t = 10)]
    pub hal_window: usize,
    /// Samples per model.
    #[arg(short, long, default_value_t = 100_000)]
    pub n: usize,
    /// Reverse steps (linspace over T; default all T).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Noise seed of sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Skip the exact-GMM reference.
    #[arg(long)]
    pub no_exact: bool,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// The rates of one model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelRates {
    /// What was sampled.
    pub source: String,
    /// Training points (trained here), if known.
    pub train_size: Option<usize>,
    /// Epochs (trained here), if known.
    pub epochs: Option<u64>,
    /// Samples.
    pub n: usize,
    /// Hallucination rate at k = 5 (D1/D2) with sub-types.
    pub summary: Summary,
    /// Rates at k = 4 and 6.
    pub rate_k4: f64,
    /// See `rate_k4`.
    pub rate_k6: f64,
    /// Median Hal.
    pub hal_median: f64,
}

/// Runs `mirage hallucination`.
///
/// # Errors
/// Bad arguments, training or sampling failures, unwritable output.
pub fn run(args: &HallucinationArgs) -> Result<()> {
    ensure!(args.n >= 1, "-n must be at least 1");
    ensure!(
        !args.model.is_empty() || !args.train_sizes.is_empty() || !args.no_exact,
        "nothing to do: pass --model files, --train-sizes, or drop --no-exact"
    );
    ensure!(args.epochs.iter().all(|&e| e >= 1), "--epochs must be ≥ 1");
    std::fs::create_dir_all(&args.out)?;
    let mixture = parse_mixture(&args.dataset)?;
    let dim = mixture.dim();
    // (path or None for exact, train size, epochs)
    let mut jobs: Vec<(Option<PathBuf>, Option<usize>, Option<u64>)> = Vec::new();
    if !args.no_exact {
        jobs.push((None, None, None));
    }
    for m in &args.model {
        jobs.push((Some(m.clone()), None, None));
    }
    for &size in &args.train_sizes {
        for &epochs in &args.epochs {
            let path = args.out.join(format!("model_n{size}_e{epochs}.mrg"));
            if !path.is_file() {
                eprintln!("training on {size} points for {epochs} epochs …");
                let data = Dataset::generate(mixture.clone(), size, args.train_seed).into_points();
                let ck = args.out.join(format!("model_n{size}_e{epochs}.mckpt"));
                let mrg = ModelSettings::paper(epochs).train(
                    data,
                    dim,
                    args.train_seed,
                    args.threads,
                    Some(&ck),
                )?;
                write_model(&path, &mrg)?;
            }
            jobs.push((Some(path), Some(size), Some(epochs)));
        }
    }
    let labellers = [4.0, 5.0, 6.0]
        .map(|k| Labeller::for_mixture(&mixture, k))
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let dc = DetectConfig {
        hal_windows: vec![args.hal_window],
        path_window: 0,
        postvar: vec![],
        by_step: vec![],
        by_step_window: args.hal_window,
    };
    let mut results = Vec::new();
    for (path, size, epochs) in jobs {
        let margs = ModelArgs {
            dataset: args.dataset.clone(),
            exact: path.is_none(),
            model: path.clone(),
            steps: args.steps,
            seed: args.seed,
            threads: args.threads,
            chunk: 512,
        };
        let loaded = load(&margs, &mixture)?;
        eprintln!("sampling {} from {} …", args.n, loaded.source);
        let out = sample_with(&loaded, &mixture, &margs, args.n, &dc)?;
        let rate =
            |l: &Labeller| -> Result<Summary> { Ok(Summary::of(&l.label_all(&out.samples)?)) };
        let summary = rate(&labellers[1])?;
        let mut hal = out.hal[0].clone();
        hal.sort_by(f32::total_cmp);
        let tag = path
            .as_ref()
            .and_then(|p| p.file_stem())
            .map_or_else(|| "exact".to_string(), |s| s.to_string_lossy().into_owned());
        let title = format!(
            "{}: {} ({:.3}% hallucinated)",
            args.dataset,
            loaded.source,
            100.0 * summary.rate
        );
        let fig = args.out.join(format!("density_{tag}.png"));
        if dim == 1 {
            let marks: Vec<f64> = mixture.means().iter().map(|&m| f64::from(m)).collect();
            histogram_log_y(&fig, &out.samples, 100, &marks, &title)?;
        } else if dim == 2 {
            let shown = out.samples.len().min(2 * 100_000);
            scatter_2d(&fig, &out.samples[..shown], mixture.means(), &title)?;
        }
        results.push(ModelRates {
            source: loaded.source.clone(),
            train_size: size,
            epochs,
            n: args.n,
            rate_k4: rate(&labellers[0])?.rate,
            rate_k6: rate(&labellers[2])?.rate,
            summary,
            hal_median: f64::from(hal.get(hal.len() / 2).copied().unwrap_or(f32::NAN)),
        });
    }
    let mut csv = String::from("source,train_size,epochs,n,rate_k4,rate_k5,rate_k6,hal_median\n");
    for r in &results {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.6e},{:.6e},{:.6e},{:.4e}",
            r.source,
            opt(r.train_size.map(|v| v.to_string())),
            opt(r.epochs.map(|v| v.to_string())),
            r.n,
            r.rate_k4,
            r.summary.rate,
            r.rate_k6,
            r.hal_median
        );
    }
    write_atomic(&args.out.join("hallucination.csv"), csv.as_bytes())?;
    write_atomic(
        &args.out.join("hallucination.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "dataset": args.dataset,
            "seed": args.seed,
            "train_seed": args.train_seed,
            "models": results,
        }))?
        .as_bytes(),
    )?;
    // Rate vs training-set size, one line per epoch count (and vice versa).
    if !args.train_sizes.is_empty() {
        let by = |key_epochs: bool| -> Vec<Series> {
            let outer: Vec<u64> = if key_epochs {
                args.epochs.clone()
            } else {
                args.train_sizes.iter().map(|&s| s as u64).collect()
            };
            outer
                .iter()
                .map(|&o| Series {
                    name: if key_epochs {
                        format!("{o} epochs")
                    } else {
                        format!("{o} points")
                    },
                    points: results
                        .iter()
                        .filter(|r| {
                            if key_epochs {
                                r.epochs == Some(o)
                            } else {
                                r.train_size.map(|s| s as u64) == Some(o)
                            }
                        })
                        .filter_map(|r| {
                            let x = if key_epochs {
                                r.train_size? as f64
                            } else {
                                r.epochs? as f64
                            };
                            Some((x, 100.0 * r.summary.rate))
                        })
                        .collect(),
                })
                .collect()
        };
        line_plot(
            &args.out.join("rate_vs_size.png"),
            &by(true),
            "training points",
            "% hallucinated",
            false,
            &format!("{}: hallucination vs training-set size", args.dataset),
        )?;
        line_plot(
            &args.out.join("rate_vs_epochs.png"),
            &by(false),
            "epochs",
            "% hallucinated",
            false,
            &format!("{}: hallucination vs training steps", args.dataset),
        )?;
    }
    print!("{csv}");
    Ok(())
}
