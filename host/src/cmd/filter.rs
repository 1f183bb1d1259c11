//! `mirage filter`: every hallucination detector on the same samples, scored by D5
//! (papers.md §7 D5, §9): Hal at the paper's K and at the best K (chosen on the calibration
//! half only), path length (D15), the Tweedie posterior variance (D11, exact and with one
//! Hutchinson probe, D14) and the batch k-NN distance (D16).
//!
//! Writes into `--out DIR` (atomically): `filter.json` (per detector the D5 report with its
//! ROC curve, extra denoiser calls per sample and measured time overhead), `filter.csv` (the
//! table), `roc.png` (all detectors), `scores_<detector>.png` (histograms of hallucinated vs
//! in-support scores); with `--by-step`, `by_step.json` and `by_step.png`: the AUROC of each
//! detector read at step s (Hal and path over the K steps ending at s, posterior variance at
//! step s) and what reading early would save (an abort at step s skips s of the S steps).
//! With `--by-step`, "postvar best reading" is the posterior-variance reading (one step
//! s ≤ 3, or tr J / tr Cov summed over the last 2, 3 or 5 steps) with the highest TPR on the
//! calibration half, as Hal's best K; `--save-scores` adds `samples.npy` and `scores.npy`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::data::{Mixture, parse_mixture};
use crate::detect::{DetectConfig, DetectOutput, RunOptions, knn_distances, run_detectors};
use crate::io::atomic::write_atomic;
use crate::io::matrix::Matrix;
use crate::io::npy::write_npy;
use crate::label::Labeller;
use crate::metrics::{D5Config, D5Report, RocCurve, auroc, best_window_on_calibration, score_d5};
use crate::plot::roc_curves;
use crate::plot::score_histograms;
use crate::plot::{Series, line_plot};
use crate::sample::BatchDenoiser;
use crate::train::Layout;
use crate::train::export::read_aligned;
use mirage_core::detector::posterior_variance::{PostVarConfig, TraceEstimator};
use mirage_core::schedule::{BetaSchedule, Schedule, Spacing, compute_tables, table_len};
use mirage_core::{ExactGmm, Prediction, SamplerConfig};

/// Detector names on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DetectorArg {
    /// Hal (variance of x̂0 over the last K steps), at K and at the best K.
    Hal,
    /// Path length of x̂0 over the last K steps.
    Path,
    /// Exact tr ∂x̂0/∂x_t at the final step (and ‖J‖_F).
    Postvar,
    /// Hutchinson tr J with one Rademacher probe at the final step.
    Postvar1,
    /// Distance to the k-th nearest other generated sample.
    Knn,
    /// All of the above.
    All,
}

/// Model source and sampling options shared by `filter` and `hallucination`.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Dataset: gauss1d-3, gauss1d-4, grid25, grid25-rot, or a .toml/.json mixture spec.
    #[arg(long, default_value = "grid25")]
    pub dataset: String,
    /// Trained model (.mrg, from `mirage train`).
    #[arg(long, conflicts_with = "exact")]
    pub model: Option<PathBuf>,
    /// Use the exact mixture denoiser of --dataset (the no-hallucination reference).
    #[arg(long)]
    pub exact: bool,
    /// Reverse steps (linspace over T; default all T).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Samples per chunk.
    #[arg(long, default_value_t = 512)]
    pub chunk: usize,
}

/// Arguments of `mirage filter`.
#[derive(Args, Debug)]
pub struct FilterArgs {
    /// Model and sampler.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Detectors to run (repeatable).
    #[arg(long, value_enum, default_values_t = [DetectorArg::All])]
    pub detector: Vec<DetectorArg>,
    /// Hal (and path-length) window K.
    #[arg(long, default_value_t = 10)]
    pub hal_window: usize,
    /// Candidate windows for "Hal, best K" (chosen by TPR at the D5 threshold on the
    /// calibration half only).
    #[arg(long, value_delimiter = ',', default_value = "2,3,4,5,6,8,10,15,20,30")]
    pub hal_windows: Vec<usize>,
    /// k of the k-NN detector.
    #[arg(long, default_value_t = crate::detect::DEFAULT_K)]
    pub knn_k: usize,
    /// Samples (D5 wants ≥ 10^5).
    #[arg(short, long, default_value_t = 100_000)]
    pub n: usize,
    /// Also read every detector at earlier steps s = 0 … --by-step-max.
    #[arg(long)]
    pub by_step: bool,
    /// Largest s of --by-step.
    #[arg(long, default_value_t = 200)]
    pub by_step_max: usize,
    /// Also write `samples.npy` and `scores.npy` (one column per detector, then the
    /// by-step posterior variance at s ≤ 10; names in filter.json's `score_columns`).
    #[arg(long)]
    pub save_scores: bool,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// A loaded model: its schedule tables and the denoiser.
pub struct Loaded {
    /// Respaced tables.
    pub tables: Vec<f32>,
    /// Steps.
    pub steps: usize,
    /// Data dimension.
    pub dim: usize,
    /// The network (layout, params, prediction) when not exact.
    pub mlp: Option<(Layout, Vec<f32>, Prediction)>,
    /// What it is, for reports.
    pub source: String,
}

/// Loads `--model` (or prepares `--exact`) with the sampler steps of `args`.
///
/// # Errors
/// Neither or both sources, unreadable/corrupt model, model dimension ≠ dataset's.
pub fn load(args: &ModelArgs, mixture: &Mixture) -> Result<Loaded> {
    let tables_for = |beta: &BetaSchedule<'_>, train_steps: usize| -> Result<(Vec<f32>, usize)> {
        let steps = args.steps.unwrap_or(train_steps);
        let mut tables = vec![0.0f32; table_len(steps)];
        compute_tables(beta, train_steps, &Spacing::Linspace, steps, &mut tables).map_err(|e| {
            anyhow::anyhow!("cannot build a {steps}-step schedule of T = {train_steps}: {e}")
        })?;
        Ok((tables, steps))
    };
    match (&args.model, args.exact) {
        (Some(path), false) => {
            let name = path.display().to_string();
            let bytes = read_aligned(path)?;
            let model = bytes.model(&name)?;
            let header = *model.header();
            let mlp = crate::train::export::f32_mlp(&model, &name)?;
            ensure!(
                header.shape.dim == mixture.dim(),
                "{name} is a {}-dimensional model but dataset {} is {}-dimensional",
                header.shape.dim,
                args.dataset,
                mixture.dim()
            );
            let (tables, steps) = tables_for(&header.beta, header.train_steps)?;
            Ok(Loaded {
                tables,
                steps,
                dim: mixture.dim(),
                mlp: Some((
                    Layout::new(header.shape)?,
                    mlp.params().to_vec(),
                    header.prediction,
                )),
                source: format!("model {name}"),
            })
        }
        (None, true) => {
            let (tables, steps) = tables_for(&BetaSchedule::PAPER, 1000)?;
            Ok(Loaded {
                tables,
                steps,
                dim: mixture.dim(),
                mlp: None,
                source: format!("exact GMM of {}", args.dataset),
            })
        }
        _ => bail!("pass exactly one of --model FILE.mrg or --exact"),
    }
}

/// Runs the sampler with `dc` on the loaded model.
///
/// # Errors
/// As [`run_detectors`].
pub fn sample_with(
    loaded: &Loaded,
    mixture: &Mixture,
    args: &ModelArgs,
    n: usize,
    dc: &DetectConfig,
) -> Result<DetectOutput> {
    let sched = Schedule::from_tables(&loaded.tables, loaded.steps)
        .map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
    let opts = RunOptions {
        seed: args.seed,
        threads: args.threads,
        chunk: args.chunk,
    };
    match &loaded.mlp {
        Some((layout, params, prediction)) => {
            let den = BatchDenoiser::Mlp {
                layout,
                params,
                prediction: *prediction,
            };
            let cfg = SamplerConfig {
                prediction: *prediction,
                ..SamplerConfig::PAPER
            };
            run_detectors(&den, &sched, &cfg, n, dc, &opts)
        }
        None => {
            let gmm = ExactGmm::new(
                mixture.dim(),
                mixture.means(),
                mixture.stds(),
                mixture.weights(),
                sched,
                Prediction::Epsilon,
            )
            .map_err(|e| anyhow::anyhow!("dataset {}: exact denoiser: {e}", args.dataset))?;
            run_detectors(
                &BatchDenoiser::PerSample(&gmm),
                &sched,
                &SamplerConfig::PAPER,
                n,
                dc,
                &opts,
            )
        }
    }
}

/// One row of the D5 table.
#[derive(Clone, Debug, Serialize)]
pub struct DetectorRow {
    /// Detector name.
    pub name: String,
    /// D5 report (test half).
    pub d5: D5Report,
    /// Extra denoiser evaluations per sample (a JVP pass counts as one, at ~2–3× the
    /// FLOPs of a plain forward).
    pub extra_calls_per_sample: f64,
    /// Measured detector time / sampling time (thread-seconds).
    pub time_overhead: f64,
    /// Detector thread-seconds.
    pub seconds: f64,
}

/// The posterior-variance readings a "best reading" is chosen from (on the calibration half,
/// like Hal's best K), from the by-step exact tr J: the single steps s = 0 … 3, and the sums
/// over s = 0 … k−1 (k = 2, 3, 5) of tr J and of tr Cov = ((1 − ᾱ_s)/√ᾱ_s)·tr J.
/// Each comes with the number of steps it reads. Readings whose steps were not
/// read are left out.
///
/// # Errors
/// A step outside the schedule.
fn postvar_readings(
    b: &crate::detect::ByStep,
    sched: &Schedule<'_>,
) -> Result<Vec<(String, Vec<f32>, usize)>> {
    let at = |s: usize| b.steps.iter().position(|&x| x == s).map(|g| &b.postvar[g]);
    let mut out = Vec::new();
    for s in 0..4 {
        if let Some(v) = at(s) {
            out.push((format!("s={s}"), v.clone(), 1));
        }
    }
    for cov in [false, true] {
        for k in [2usize, 3, 5] {
            let Some(cols) = (0..k).map(at).collect::<Option<Vec<_>>>() else {
                continue;
            };
            let mut sum = vec![0.0f32; cols[0].len()];
            for (s, col) in cols.iter().enumerate() {
                let c = sched
                    .coefs(s)
                    .map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
                let f = if cov {
                    c.one_minus_alpha_bar / c.sqrt_alpha_bar
                } else {
                    1.0
                };
                for (acc, v) in sum.iter_mut().zip(col.iter()) {
                    *acc += f * v;
                }
            }
            let what = if cov { "tr Cov" } else { "tr J" };
            out.push((format!("{what} s<{k}"), sum, k));
        }
    }
    Ok(out)
}

/// Runs `mirage filter`.
///
/// # Errors
/// Bad arguments, model or dataset problems, unwritable output.
#[allow(clippy::too_many_lines)]
pub fn run(args: &FilterArgs) -> Result<()> {
    ensure!(
        args.n >= 2,
        "-n must be at least 2 (D5 splits by index parity)"
    );
    ensure!(args.hal_window >= 1, "--hal-window must be at least 1");
    ensure!(
        args.hal_windows.iter().all(|&k| k >= 1),
        "--hal-windows must be ≥ 1"
    );
    let want =
        |d: DetectorArg| args.detector.contains(&d) || args.detector.contains(&DetectorArg::All);
    let mixture = parse_mixture(&args.model.dataset)?;
    let labeller = Labeller::for_mixture(&mixture, crate::label::PAPER_K)?;
    let loaded = load(&args.model, &mixture)?;
    let dim = loaded.dim;
    let mut hal_windows = vec![args.hal_window];
    if want(DetectorArg::Hal) {
        for &k in &args.hal_windows {
            if !hal_windows.contains(&k) && k <= loaded.steps {
                hal_windows.push(k);
            }
        }
    }
    let mut postvar = Vec::new();
    if want(DetectorArg::Postvar) {
        if dim <= mirage_core::detector::posterior_variance::MAX_EXACT_DIM {
            postvar.push(("postvar", PostVarConfig::EXACT));
        } else {
            eprintln!("note: d = {dim} > 64: the exact trace is replaced by 8 Hutchinson probes");
            postvar.push((
                "postvar",
                PostVarConfig {
                    estimator: TraceEstimator::Hutchinson {
                        probes: 8,
                        seed: args.model.seed,
                    },
                    ..PostVarConfig::EXACT
                },
            ));
        }
    }
    if want(DetectorArg::Postvar1) {
        postvar.push(("postvar1", PostVarConfig::one_probe(args.model.seed)));
    }
    let by_step: Vec<usize> = if args.by_step {
        let max = args
            .by_step_max
            .min(loaded.steps.saturating_sub(args.hal_window));
        (0..=max).collect()
    } else {
        Vec::new()
    };
    let dc = DetectConfig {
        hal_windows: hal_windows.clone(),
        path_window: if want(DetectorArg::Path) {
            args.hal_window
        } else {
            0
        },
        postvar: postvar.iter().map(|p| p.1).collect(),
        by_step,
        by_step_window: args.hal_window,
    };
    eprintln!(
        "sampling {} × {} steps from {} with detectors …",
        args.n, loaded.steps, loaded.source
    );
    let wall = Instant::now();
    let out = sample_with(&loaded, &mixture, &args.model, args.n, &dc)?;
    let sampling_wall = wall.elapsed().as_secs_f64();
    let labels = labeller.label_all(&out.samples)?;
    let hallucinated: Vec<bool> = labels.iter().map(|l| l.is_hallucination()).collect();
    let base = hallucinated.iter().filter(|h| **h).count();
    eprintln!(
        "{} of {} samples hallucinated ({:.3}%) in {sampling_wall:.1} s",
        base,
        args.n,
        100.0 * base as f64 / args.n as f64
    );
    let sampling_s = out.timing.sampling_s.max(1e-12);
    let mut rows: Vec<DetectorRow> = Vec::new();
    let mut all_scores: Vec<Vec<f32>> = Vec::new();
    let mut add = |name: String, scores: &[f32], calls: f64, secs: f64| -> Result<()> {
        all_scores.push(scores.to_vec());
        rows.push(DetectorRow {
            d5: score_d5(scores, &hallucinated, &D5Config::PAPER)
                .with_context(|| format!("scoring {name}"))?,
            name,
            extra_calls_per_sample: calls,
            time_overhead: secs / sampling_s,
            seconds: secs,
        });
        Ok(())
    };
    let mut best_k = None;
    if want(DetectorArg::Hal) {
        add(
            format!("hal K={}", args.hal_window),
            &out.hal[0],
            0.0,
            out.timing.hal_s[0],
        )?;
        let k = best_window_on_calibration(&hal_windows, &out.hal, &hallucinated)?;
        let j = hal_windows.iter().position(|&w| w == k).unwrap_or(0);
        add(
            format!("hal best K={k} (calibration)"),
            &out.hal[j],
            0.0,
            out.timing.hal_s[j],
        )?;
        best_k = Some(k);
    }
    if want(DetectorArg::Path) {
        add(
            format!("path K={}", args.hal_window),
            &out.path,
            0.0,
            out.timing.path_s,
        )?;
    }
    for (j, (name, pc)) in postvar.iter().enumerate() {
        let passes = pc.estimator.passes(dim) as f64 * pc.steps.len() as f64;
        add(
            (*name).to_string(),
            &out.postvar_trace[j],
            passes,
            out.timing.postvar_s[j],
        )?;
        if *name == "postvar" {
            add(
                "postvar-frobenius".to_string(),
                &out.postvar_frobenius[j],
                passes,
                out.timing.postvar_s[j],
            )?;
        }
    }
    if let (Some(b), true) = (out.by_step.as_ref(), want(DetectorArg::Postvar)) {
        let sched = Schedule::from_tables(&loaded.tables, loaded.steps)
            .map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
        let readings = postvar_readings(b, &sched)?;
        if !readings.is_empty() {
            let scores: Vec<Vec<f32>> = readings.iter().map(|r| r.1.clone()).collect();
            let idx: Vec<usize> = (0..readings.len()).collect();
            let best = best_window_on_calibration(&idx, &scores, &hallucinated)?;
            let (label, chosen, steps_read) = &readings[best];
            // Time: the exact postvar's at t = 0 per step read (the by-step pass is untimed).
            let per_step = postvar
                .iter()
                .position(|p| p.0 == "postvar")
                .map_or(0.0, |j| out.timing.postvar_s[j]);
            add(
                format!("postvar best reading {label} (calibration)"),
                chosen,
                (*steps_read * dim) as f64,
                per_step * *steps_read as f64,
            )?;
        }
    }
    if want(DetectorArg::Knn) {
        let t0 = Instant::now();
        let knn = knn_distances(&out.samples, dim, args.knn_k, args.model.threads)?;
        let secs = t0.elapsed().as_secs_f64() * args.model.threads as f64;
        add(format!("knn k={}", args.knn_k), &knn, 0.0, secs)?;
    }
    if args.save_scores {
        save_scores(&args.out, &out, &rows, &all_scores)?;
    }
    write_reports(
        args,
        &loaded,
        &out,
        &hallucinated,
        (&rows, &all_scores),
        best_k,
        sampling_wall,
    )
}

/// Writes `samples.npy` and `scores.npy` (`[n, columns]`) into `dir`; returns nothing, the
/// column names are [`score_columns`].
///
/// # Errors
/// Unwritable directory.
fn save_scores(
    dir: &Path,
    out: &DetectOutput,
    rows: &[DetectorRow],
    all_scores: &[Vec<f32>],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let n = out.samples.len() / out.dim;
    let mut cols: Vec<&[f32]> = all_scores.iter().map(Vec::as_slice).collect();
    if let Some(b) = &out.by_step {
        cols.extend(
            b.steps
                .iter()
                .zip(&b.postvar)
                .filter(|(s, _)| **s <= SAVED_STEPS)
                .map(|(_, v)| v.as_slice()),
        );
    }
    let data: Vec<f32> = (0..n)
        .flat_map(|i| cols.iter().map(move |c| c[i]))
        .collect();
    write_npy(&dir.join("scores.npy"), &Matrix::new(n, cols.len(), data)?)?;
    write_npy(
        &dir.join("samples.npy"),
        &Matrix::new(n, out.dim, out.samples.clone())?,
    )?;
    debug_assert_eq!(score_columns(rows, out).len(), cols.len());
    Ok(())
}

/// By-step posterior-variance columns saved by `--save-scores`: s ≤ this.
const SAVED_STEPS: usize = 10;

/// Names of the columns of `scores.npy`.
fn score_columns(rows: &[DetectorRow], out: &DetectOutput) -> Vec<String> {
    let mut names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    if let Some(b) = &out.by_step {
        names.extend(
            b.steps
                .iter()
                .filter(|s| **s <= SAVED_STEPS)
                .map(|s| format!("postvar s={s}")),
        );
    }
    names
}

#[allow(clippy::too_many_arguments)]
fn write_reports(
    args: &FilterArgs,
    loaded: &Loaded,
    out: &DetectOutput,
    hallucinated: &[bool],
    (rows, all_scores): (&[DetectorRow], &[Vec<f32>]),
    best_k: Option<usize>,
    sampling_wall: f64,
) -> Result<()> {
    let dir = &args.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Table.
    let mut csv = String::from(
        "detector,auroc,tpr,tnr,precision,threshold,test_hallucinated,test_in,verdict,extra_calls_per_sample,time_overhead\n",
    );
    let opt = |v: Option<f64>| v.map_or_else(String::new, |x| format!("{x:.6}"));
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:e},{},{},{:?},{},{:.3e}",
            r.name,
            opt(r.d5.auroc),
            opt(r.d5.tpr),
            opt(r.d5.tnr),
            opt(r.d5.precision),
            r.d5.threshold,
            r.d5.test_hallucinated,
            r.d5.test_in,
            r.d5.verdict,
            r.extra_calls_per_sample,
            r.time_overhead
        );
    }
    write_atomic(&dir.join("filter.csv"), csv.as_bytes())?;
    print!("{csv}");
    // Figures.
    let curves: Vec<(&str, &RocCurve)> = rows
        .iter()
        .filter_map(|r| r.d5.roc.as_ref().map(|c| (r.name.as_str(), c)))
        .collect();
    if !curves.is_empty() {
        roc_curves(
            &dir.join("roc.png"),
            &curves,
            &format!("ROC on the test half, {}", args.model.dataset),
        )?;
    }
    for (r, scores) in rows.iter().zip(all_scores) {
        let (mut inn, mut hal) = (Vec::new(), Vec::new());
        for (&v, &h) in scores.iter().zip(hallucinated) {
            if h { hal.push(v) } else { inn.push(v) }
        }
        let file = format!("scores_{}.png", slug(&r.name));
        score_histograms(
            &dir.join(file),
            &inn,
            &hal,
            60,
            Some(f64::from(r.d5.threshold)),
            &format!("{}: hallucinated vs in-support", r.name),
        )?;
    }
    let by_step = match &out.by_step {
        Some(b) => Some(by_step_report(dir, b, hallucinated, loaded.steps)?),
        None => None,
    };
    let json = serde_json::json!({
        "source": loaded.source,
        "dataset": args.model.dataset,
        "n": args.n,
        "steps": loaded.steps,
        "seed": args.model.seed,
        "hal_window": args.hal_window,
        "hal_best_window_calibration": best_k,
        "hallucinated": hallucinated.iter().filter(|h| **h).count(),
        "sampling_wall_s": sampling_wall,
        "sampling_thread_s": out.timing.sampling_s,
        "detectors": rows,
        "by_step": by_step,
        "score_columns": args.save_scores.then(|| score_columns(rows, out)),
    });
    write_atomic(
        &dir.join("filter.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    eprintln!("wrote {}", dir.display());
    Ok(())
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// AUROC per step for each detector, its plot, and the early-abort reading.
fn by_step_report(
    dir: &Path,
    b: &crate::detect::ByStep,
    hallucinated: &[bool],
    steps: usize,
) -> Result<serde_json::Value> {
    let test_h: Vec<bool> = hallucinated.iter().skip(1).step_by(2).copied().collect();
    let both = test_h.iter().any(|h| *h) && test_h.iter().any(|h| !*h);
    ensure!(both, "--by-step needs both classes on the test half");
    let au = |scores: &[f32]| -> Result<f64> {
        let s: Vec<f32> = scores.iter().skip(1).step_by(2).copied().collect();
        auroc(&s, &test_h)
    };
    let mut series = Vec::new();
    let mut table = serde_json::Map::new();
    for (name, per_step) in [("hal", &b.hal), ("path", &b.path), ("postvar", &b.postvar)] {
        let values: Vec<f64> = per_step.iter().map(|s| au(s)).collect::<Result<_>>()?;
        // The latest reading (largest s, so the most compute saved) that keeps ≥ 99% of
        // the s = 0 AUROC.
        let at0 = values.first().copied().unwrap_or(f64::NAN);
        let latest = b
            .steps
            .iter()
            .zip(&values)
            .filter(|(_, v)| **v >= 0.99 * at0)
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(0);
        table.insert(
            name.to_string(),
            serde_json::json!({
                "auroc": values,
                "auroc_at_0": at0,
                "largest_s_within_1pct_of_s0": latest,
                "compute_saved_on_aborted_trajectories": latest as f64 / steps as f64,
            }),
        );
        series.push(Series {
            name: name.to_string(),
            points: b
                .steps
                .iter()
                .zip(&values)
                .map(|(s, v)| (*s as f64, *v))
                .collect(),
        });
    }
    line_plot(
        &dir.join("by_step.png"),
        &series,
        "step s read (0 = last)",
        "AUROC (test half)",
        false,
        "Detector AUROC vs the step it is read at",
    )?;
    let json = serde_json::json!({ "steps": b.steps, "detectors": table });
    write_atomic(
        &dir.join("by_step.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_writes_every_report_for_the_exact_denoiser() {
        let dir = tempfile::tempdir().unwrap();
        let args = FilterArgs {
            model: ModelArgs {
                dataset: "gauss1d-3".into(),
                model: None,
                exact: true,
                steps: Some(30),
                seed: 3,
                threads: 2,
                chunk: 64,
            },
            detector: vec![DetectorArg::All],
            hal_window: 10,
            hal_windows: vec![2, 5, 10],
            knn_k: 5,
            n: 600,
            by_step: true,
            by_step_max: 12,
            save_scores: true,
            out: dir.path().to_path_buf(),
        };
        run(&args).unwrap();
        for f in [
            "filter.json",
            "filter.csv",
            "roc.png",
            "by_step.json",
            "by_step.png",
            "samples.npy",
            "scores.npy",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("filter.json")).unwrap())
                .unwrap();
        let names: Vec<&str> = json["detectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 8, "{names:?}");
        assert!(names.contains(&"postvar1") && names.contains(&"knn k=5"));
        assert!(names[6].starts_with("postvar best reading "), "{names:?}");
        // scores.npy: the 8 detectors and postvar at s = 0 … 10, sample-major.
        let cols = json["score_columns"].as_array().unwrap();
        assert_eq!(cols.len(), 8 + 11);
        let m = crate::io::npy::read_npy(
            &dir.path().join("scores.npy"),
            crate::io::matrix::NonFinite::Allow,
        )
        .unwrap()
        .matrix;
        assert_eq!((m.rows(), m.cols()), (600, 19));
        // Column "postvar s=0" equals the streamed exact postvar (d = 1: column 4).
        assert_eq!(cols[3], "postvar");
        assert_eq!(cols[8], "postvar s=0");
        for i in 0..600 {
            assert_eq!(m.data()[i * 19 + 3], m.data()[i * 19 + 8]);
        }
        let by = &json["by_step"]["detectors"]["postvar"]["auroc"];
        assert_eq!(by.as_array().unwrap().len(), 13);
        // Neither source, or both, is refused.
        let mut bad = args;
        bad.model.exact = false;
        assert!(run(&bad).is_err());
    }
}
