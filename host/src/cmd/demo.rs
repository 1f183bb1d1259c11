//! `mirage demo`: the whole story of Aithal et al. 2024 (papers.md §1) on a small default
//! that runs in a few minutes on two cores.
//!
//! 1. Train the paper's ε-prediction MLP (a narrower one by default) on grid25 (§1.2).
//! 2. Draw samples with the paper's sampler (ancestral DDPM, σ² = β, all T = 1000 steps),
//!    scoring each with Hal = mean_d Var x̂0 over the last K = 10 steps, the exact posterior
//!    variance tr ∂x̂0/∂x_t at the final step (§9 D11) and the batch k-NN distance (§9 D16).
//! 3. Label them (D2: farther than 5σ_n from every centre is a hallucination).
//! 4. Score every detector by D5: τ = the ⌈0.96·n_in⌉-th smallest score of the in-support
//!    samples of even index; TPR/TNR on the odd half; AUROC.
//! 5. Filter all samples at Hal's τ (drop Hal > τ) and report what went and what stayed.
//!
//! The model is under-trained on purpose (a few minutes instead of the paper's 100k Adam
//! steps), so it interpolates between neighbouring modes visibly. Output under `--out`:
//! `model.mrg`, `samples.csv` (x0, x1, scores, label), `demo.json` (settings, counts, D5
//! reports with ROC curves, timings), `scatter_before.png`, `scatter_after.png`,
//! `hal_hist.png`, `postvar_hist.png`, `knn_hist.png`, `roc.png`. The table goes to stdout,
//! progress to stderr.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, ensure};
use clap::Args;
use serde::Serialize;

use crate::data::{Dataset, parse_mixture};
use crate::detect::{DEFAULT_K, knn_distances};
use crate::experiments::model::{Extra, ModelSettings, write_model};
use crate::io::atomic::write_atomic;
use crate::io::csv::write_csv;
use crate::io::matrix::Matrix;
use crate::label::{Labeller, PAPER_K, Summary};
use crate::metrics::{D5Config, D5Report, score_d5};
use crate::plot::{roc_curves, scatter_2d, score_histograms};

/// Arguments of `mirage demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Output directory.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// A tiny configuration that finishes in seconds (smoke test; the model is untrained).
    #[arg(long)]
    pub quick: bool,
    /// 2D dataset (grid25, grid25-rot or a 2D mixture spec).
    #[arg(long, default_value = "grid25")]
    pub dataset: String,
    /// Training points [default 20,000; quick 400].
    #[arg(long)]
    pub n: Option<usize>,
    /// Epochs [default 800; quick 2].
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Hidden width W [default 32; quick 8].
    #[arg(long)]
    pub width: Option<usize>,
    /// Training batch [default 1,000; quick 200].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Samples drawn [default 20,000; quick 400].
    #[arg(long)]
    pub samples: Option<usize>,
    /// Reverse steps, linspace over T = 1000 [default 1000; quick 100].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Hal window K.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// Master seed (data, weights, training draws; sampling uses seed + 1).
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Worker threads (results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// The resolved settings, logged in `demo.json`.
#[derive(Clone, Debug, Serialize)]
struct DemoConfig {
    dataset: String,
    train_points: usize,
    model: ModelSettings,
    adam_steps: u64,
    samples: usize,
    seed: u64,
    sample_seed: u64,
}

impl DemoArgs {
    fn config(&self) -> Result<DemoConfig> {
        let q = self.quick;
        let pick =
            |v: Option<usize>, full: usize, quick: usize| v.unwrap_or(if q { quick } else { full });
        let n = pick(self.n, 20_000, 400);
        let model = ModelSettings {
            width: pick(self.width, 32, 8),
            blocks: 3,
            batch: pick(self.batch, 1_000, 200),
            lr: self.lr,
            epochs: self.epochs.unwrap_or(if q { 2 } else { 800 }),
            sample_steps: Some(pick(self.steps, 1000, 100)),
            window: self.window,
        };
        ensure!(
            model.batch >= 1 && n >= model.batch,
            "--n {n} must be at least one --batch ({})",
            model.batch
        );
        ensure!(self.threads >= 1, "--threads must be at least 1");
        let samples = pick(self.samples, 20_000, 400);
        ensure!(
            samples > DEFAULT_K,
            "--samples must exceed the k-NN k = {DEFAULT_K}"
        );
        Ok(DemoConfig {
            dataset: self.dataset.clone(),
            train_points: n,
            adam_steps: model.epochs * (n / model.batch) as u64,
            model,
            samples,
            seed: self.seed,
            sample_seed: self.seed.wrapping_add(1),
        })
    }
}

/// One detector's D5 result (or why there is none).
#[derive(Clone, Debug, Serialize)]
struct DetectorResult {
    name: &'static str,
    report: Option<D5Report>,
    error: Option<String>,
}

/// What filtering all samples at Hal's τ did.
#[derive(Clone, Debug, Serialize)]
struct FilterResult {
    threshold: f32,
    removed: usize,
    kept: usize,
    hallucinations_removed: usize,
    hallucinations_kept: usize,
    in_support_removed: usize,
    in_support_kept: usize,
    rate_before: f64,
    rate_after: f64,
}

#[derive(Serialize)]
struct DemoReport<'a> {
    config: &'a DemoConfig,
    labels: Summary,
    detectors: &'a [DetectorResult],
    filter: Option<FilterResult>,
    seconds: Timings,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Timings {
    train: f64,
    sample: f64,
    score: f64,
    total: f64,
}

fn filter_at(hal: &[f32], hallucinated: &[bool], tau: f32) -> FilterResult {
    let mut r = FilterResult {
        threshold: tau,
        removed: 0,
        kept: 0,
        hallucinations_removed: 0,
        hallucinations_kept: 0,
        in_support_removed: 0,
        in_support_kept: 0,
        rate_before: 0.0,
        rate_after: 0.0,
    };
    for (&h, &bad) in hal.iter().zip(hallucinated) {
        let removed = h > tau || !h.is_finite();
        match (removed, bad) {
            (true, true) => r.hallucinations_removed += 1,
            (true, false) => r.in_support_removed += 1,
            (false, true) => r.hallucinations_kept += 1,
            (false, false) => r.in_support_kept += 1,
        }
    }
    r.removed = r.hallucinations_removed + r.in_support_removed;
    r.kept = r.hallucinations_kept + r.in_support_kept;
    let n = hal.len().max(1);
    r.rate_before = (r.hallucinations_removed + r.hallucinations_kept) as f64 / n as f64;
    r.rate_after = r.hallucinations_kept as f64 / r.kept.max(1) as f64;
    r
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{:.2}%", 100.0 * x))
}

/// Runs `mirage demo`.
///
/// # Errors
/// Invalid sizes, a dataset that is not 2D, or any training, sampling or file error.
pub fn run(args: &DemoArgs) -> Result<()> {
    let t_all = Instant::now();
    let cfg = args.config()?;
    let mixture = parse_mixture(&cfg.dataset)?;
    ensure!(
        mixture.dim() == 2,
        "the demo plots 2D samples; dataset {} has dimension {}",
        cfg.dataset,
        mixture.dim()
    );
    let out = &args.out;
    let mut secs = Timings::default();

    eprintln!(
        "[1/4] training a W = {} MLP on {} points of {} for {} epochs ({} Adam steps, batch {})",
        cfg.model.width,
        cfg.train_points,
        cfg.dataset,
        cfg.model.epochs,
        cfg.adam_steps,
        cfg.model.batch
    );
    let t0 = Instant::now();
    let data = Dataset::generate(mixture.clone(), cfg.train_points, cfg.seed).into_points();
    let mrg = cfg.model.train(data, 2, cfg.seed, args.threads, None)?;
    write_model(&out.join("model.mrg"), &mrg)?;
    secs.train = t0.elapsed().as_secs_f64();
    eprintln!("      {:.1} s", secs.train);

    let steps = cfg.model.sample_steps.unwrap_or(1000);
    eprintln!(
        "[2/4] drawing {} samples × {steps} steps with Hal (K = {}) and the posterior variance",
        cfg.samples, cfg.model.window
    );
    let t0 = Instant::now();
    let name = out.join("model.mrg").display().to_string();
    let mut drawn = cfg.model.sample(
        &mrg,
        &name,
        2,
        cfg.samples,
        cfg.sample_seed,
        args.threads,
        Extra {
            path: false,
            postvar: true,
        },
    )?;
    secs.sample = t0.elapsed().as_secs_f64();
    eprintln!("      {:.1} s", secs.sample);

    eprintln!("[3/4] labelling (D2) and scoring the detectors (D5)");
    let t0 = Instant::now();
    let samples = std::mem::take(&mut drawn.samples);
    let hal = drawn.hal.pop().unwrap_or_default();
    let postvar = drawn.postvar_trace.pop().unwrap_or_default();
    let knn = knn_distances(&samples, 2, DEFAULT_K, args.threads)?;
    let labels = Labeller::for_mixture(&mixture, PAPER_K)?.label_all(&samples)?;
    let hallucinated: Vec<bool> = labels.iter().map(|l| l.is_hallucination()).collect();
    let summary = Summary::of(&labels);
    let detectors: Vec<DetectorResult> = [("hal", &hal), ("postvar", &postvar), ("knn", &knn)]
        .into_iter()
        .map(
            |(name, scores)| match score_d5(scores, &hallucinated, &D5Config::PAPER) {
                Ok(r) => DetectorResult {
                    name,
                    report: Some(r),
                    error: None,
                },
                Err(e) => DetectorResult {
                    name,
                    report: None,
                    error: Some(format!("{e:#}")),
                },
            },
        )
        .collect();
    let filter = detectors[0]
        .report
        .as_ref()
        .map(|r| filter_at(&hal, &hallucinated, r.threshold));
    secs.score = t0.elapsed().as_secs_f64();

    eprintln!("[4/4] writing files under {}", out.display());
    write_files(
        out,
        &cfg,
        &samples,
        [&hal, &postvar, &knn],
        &hallucinated,
        &detectors,
        filter.as_ref(),
    )?;
    secs.total = t_all.elapsed().as_secs_f64();
    let report = DemoReport {
        config: &cfg,
        labels: summary.clone(),
        detectors: &detectors,
        filter: filter.clone(),
        seconds: secs,
    };
    write_atomic(
        &out.join("demo.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    print_table(&cfg, &summary, &detectors, filter.as_ref(), &secs);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_files(
    out: &Path,
    cfg: &DemoConfig,
    samples: &[f32],
    scores: [&[f32]; 3],
    hallucinated: &[bool],
    detectors: &[DetectorResult],
    filter: Option<&FilterResult>,
) -> Result<()> {
    let n = hallucinated.len();
    let mixture = parse_mixture(&cfg.dataset)?;
    let mut table = Vec::with_capacity(n * 6);
    for i in 0..n {
        table.extend_from_slice(&samples[2 * i..2 * i + 2]);
        table.extend(scores.iter().map(|s| s[i]));
        table.push(f32::from(u8::from(hallucinated[i])));
    }
    write_csv(
        &out.join("samples.csv"),
        &["x0", "x1", "hal", "postvar", "knn", "hallucinated"],
        &Matrix::new(n, 6, table)?,
    )?;
    let rate = 100.0 * hallucinated.iter().filter(|h| **h).count() as f64 / n.max(1) as f64;
    scatter_2d(
        &out.join("scatter_before.png"),
        samples,
        mixture.means(),
        &format!("{n} samples: {rate:.2}% hallucinated"),
    )?;
    let kept: Vec<f32> = match filter {
        Some(f) => samples
            .chunks_exact(2)
            .zip(scores[0])
            .filter(|(_, h)| **h <= f.threshold)
            .flat_map(|(x, _)| x.iter().copied())
            .collect(),
        None => samples.to_vec(),
    };
    scatter_2d(
        &out.join("scatter_after.png"),
        &kept,
        mixture.means(),
        &match filter {
            Some(f) => format!(
                "Hal ≤ τ = {:.2e}: {} kept, {:.2}% hallucinated",
                f.threshold,
                f.kept,
                100.0 * f.rate_after
            ),
            None => "no Hal threshold (no in-support calibration samples)".into(),
        },
    )?;
    let mut curves = Vec::new();
    for (d, s) in detectors.iter().zip(scores) {
        let class = |want: bool| -> Vec<f32> {
            s.iter()
                .zip(hallucinated)
                .filter(|(_, h)| **h == want)
                .map(|(v, _)| *v)
                .collect()
        };
        score_histograms(
            &out.join(format!("{}_hist.png", d.name)),
            &class(false),
            &class(true),
            60,
            d.report.as_ref().map(|r| f64::from(r.threshold)),
            &format!("{} scores: in-support vs hallucinated (D2)", d.name),
        )?;
        if let Some(roc) = d.report.as_ref().and_then(|r| r.roc.as_ref()) {
            curves.push((d.name, roc));
        }
    }
    roc_curves(&out.join("roc.png"), &curves, "ROC on the test half (D5)")
}

fn print_table(
    cfg: &DemoConfig,
    s: &Summary,
    detectors: &[DetectorResult],
    filter: Option<&FilterResult>,
    secs: &Timings,
) {
    println!(
        "mirage demo: {} | W = {} MLP, {} points, {} epochs ({} Adam steps) | {} samples × {} steps",
        cfg.dataset,
        cfg.model.width,
        cfg.train_points,
        cfg.model.epochs,
        cfg.adam_steps,
        cfg.samples,
        cfg.model.sample_steps.unwrap_or(1000)
    );
    println!(
        "hallucinated (D2, > 5σ_n from every centre): {} of {} = {:.2}%  ({} near an edge)",
        s.hallucinated,
        s.total,
        100.0 * s.rate,
        s.edge
    );
    println!();
    println!(
        "{:<9} {:>7} {:>11} {:>9} {:>9} {:>10} {:>9}  verdict",
        "detector", "AUROC", "τ (D5)", "TPR", "TNR", "precision", "test hal"
    );
    for d in detectors {
        match &d.report {
            Some(r) => println!(
                "{:<9} {:>7} {:>11.3e} {:>9} {:>9} {:>10} {:>9}  {:?}",
                d.name,
                r.auroc.map_or_else(|| "n/a".into(), |a| format!("{a:.4}")),
                r.threshold,
                pct(r.tpr),
                pct(r.tnr),
                pct(r.precision),
                r.test_hallucinated,
                r.verdict
            ),
            None => println!(
                "{:<9} n/a: {}",
                d.name,
                d.error.as_deref().unwrap_or("no report")
            ),
        }
    }
    println!();
    match filter {
        Some(f) => {
            let hal = f.hallucinations_removed + f.hallucinations_kept;
            let ins = f.in_support_removed + f.in_support_kept;
            println!(
                "filter at Hal τ = {:.3e} (all samples): removed {} / kept {}",
                f.threshold, f.removed, f.kept
            );
            println!(
                "  hallucinations removed {} of {} ({}); in-support kept {} of {} ({})",
                f.hallucinations_removed,
                hal,
                pct((hal > 0).then(|| f.hallucinations_removed as f64 / hal as f64)),
                f.in_support_kept,
                ins,
                pct((ins > 0).then(|| f.in_support_kept as f64 / ins as f64)),
            );
            println!(
                "  hallucination rate {:.2}% → {:.2}%",
                100.0 * f.rate_before,
                100.0 * f.rate_after
            );
        }
        None => println!("filter: no Hal threshold (no in-support calibration samples)"),
    }
    println!(
        "time: train {:.1} s, sample {:.1} s, score {:.1} s, total {:.1} s",
        secs.train, secs.sample, secs.score, secs.total
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        demo: DemoArgs,
    }

    #[test]
    fn quick_demo_writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("demo");
        let cli = Cli::try_parse_from(["demo", "--quick", "--out", out.to_str().unwrap()]).unwrap();
        run(&cli.demo).unwrap();
        for f in [
            "model.mrg",
            "samples.csv",
            "demo.json",
            "scatter_before.png",
            "scatter_after.png",
            "hal_hist.png",
            "postvar_hist.png",
            "knn_hist.png",
            "roc.png",
        ] {
            let p = out.join(f);
            assert!(
                p.is_file() && std::fs::metadata(&p).unwrap().len() > 0,
                "{f}"
            );
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("demo.json")).unwrap()).unwrap();
        assert_eq!(json["config"]["samples"], 400);
        assert_eq!(json["labels"]["total"], 400);
        // The CSV's label column agrees with the JSON count.
        let csv = crate::io::csv::read_csv(
            &out.join("samples.csv"),
            crate::io::matrix::NonFinite::Allow,
        )
        .unwrap();
        let hal_rows = (0..csv.matrix.rows())
            .filter(|&r| csv.matrix.row(r)[5] == 1.0)
            .count();
        assert_eq!(json["labels"]["hallucinated"], hal_rows);
    }

    #[test]
    fn filter_counts_partition_the_samples() {
        let hal = [0.1f32, 0.5, f32::INFINITY, 0.2, 0.9];
        let bad = [false, true, true, false, false];
        let f = filter_at(&hal, &bad, 0.4);
        assert_eq!(
            (
                f.removed,
                f.kept,
                f.hallucinations_removed,
                f.in_support_removed
            ),
            (3, 2, 2, 1)
        );
        assert!((f.rate_before - 0.4).abs() < 1e-12);
        assert_eq!(f.rate_after, 0.0);
    }

    #[test]
    fn bad_sizes_are_refused() {
        let cli = Cli::try_parse_from(["demo", "--quick", "--n", "10"]).unwrap();
        assert!(run(&cli.demo).unwrap_err().to_string().contains("batch"));
        let cli = Cli::try_parse_from(["demo", "--quick", "--dataset", "gauss1d-3"]).unwrap();
        assert!(run(&cli.demo).unwrap_err().to_string().contains("2D"));
    }
}
