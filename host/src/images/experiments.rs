//! The image experiments of Aithal et al. 2024 on the CPU U-Net (papers.md §1.4, §7 D3,
//! D5, D6; the paper's image setups are *not published*, so every size here is ours and
//! logged in the report):
//!
//! - [`hallucination_vs_size`]: fraction of generated Simple Shapes images with two shapes
//!   in one column (D3) against the training-set size;
//! - [`filter_experiment`]: Hal's ROC AUC and D5 operating point (τ at 96% of in-support
//!   calibration samples kept; removed vs kept on the test half) at several windows K
//!   read from the same trajectories, the reported K chosen on the calibration half (the
//!   image window is not published); AUROC also against clean images only;
//! - [`recursive`]: 5 generations, each a fresh model trained on the previous one's
//!   samples; draw 1.025N and keep N by Hal (lowest), at random, or the first N
//!   (unfiltered). Shapes: % hallucinated; digits: Fréchet distance on the penultimate
//!   features of a classifier trained once on the real digits, and the entropy of its class
//!   histogram. Generation 0 (trained on real data) is shared by the three variants, and
//!   generation g uses the same seeds in every variant (common random numbers).
//!
//! Each run writes PNG grids of samples and a JSON report under its output directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail, ensure};
use rand_core::Rng;
use serde::Serialize;

use mirage_core::noise::chacha_stream;

use super::classifier::{Classifier, class_entropy};
use super::digits::{DIGITS_SIDE, load_digits};
use super::frechet::frechet_distance;
use super::label::{ShapesLabel, ShapesSummary, StripGeometry, label_batch};
use super::png::write_grid;
use super::shapes::ShapesSet;
use super::unet::UnetConfig;
use super::unet::file::UnetModel;
use super::unet::sample::{UnetSampleConfig, UnetSamples, sample, sample_windows};
use super::unet::train::{UnetTrainConfig, train};
use crate::io::atomic::write_atomic;
use crate::metrics::{D5Config, D5Report, auroc, best_window_on_calibration, score_d5};

/// Which image set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ImageDataset {
    /// Simple Shapes (generated; labelled by D3).
    Shapes,
    /// UCI 8×8 handwritten digits (cached by `mirage images fetch-digits`).
    Digits,
}

/// Everything an experiment needs; logged in its report.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentConfig {
    /// Image set.
    pub dataset: ImageDataset,
    /// Training images (shapes: generated; digits: the first n, 0 = all 1,797).
    pub train_size: usize,
    /// Network shape (its `side` is the image side).
    pub net: UnetConfig,
    /// Training settings (its seed is the master seed).
    pub train: UnetTrainConfig,
    /// Sampling settings.
    pub sample: UnetSampleConfig,
    /// Output directory.
    #[serde(skip)]
    pub out_dir: PathBuf,
}

/// A training set: images `[n][side²]` on [−1, 1], labels for digits.
pub struct TrainingSet {
    /// Images.
    pub images: Vec<f32>,
    /// Digit labels (digits only).
    pub labels: Option<Vec<u8>>,
}

/// Loads `n` training images of `dataset` at side `side` (shapes: 64 or 32; digits: 8).
///
/// # Errors
/// Bad side, generation errors, digits not cached.
pub fn load_training(
    dataset: ImageDataset,
    n: usize,
    side: usize,
    seed: u64,
) -> Result<TrainingSet> {
    match dataset {
        ImageDataset::Shapes => Ok(TrainingSet {
            images: ShapesSet::generate(n, seed)?.to_unit(side)?,
            labels: None,
        }),
        ImageDataset::Digits => {
            ensure!(
                side == DIGITS_SIDE,
                "digits are {DIGITS_SIDE}×{DIGITS_SIDE}; --side must be {DIGITS_SIDE}, not {side}"
            );
            let set = load_digits()?;
            let n = if n == 0 {
                set.labels.len()
            } else {
                n.min(set.labels.len())
            };
            Ok(TrainingSet {
                images: set.images[..n * side * side].to_vec(),
                labels: Some(set.labels[..n].to_vec()),
            })
        }
    }
}

fn seed_for(master: u64, what: u64, generation: u64) -> u64 {
    chacha_stream(master, (what << 32) | generation).next_u64()
}

fn train_model(cfg: &ExperimentConfig, data: &[f32], seed: u64, tag: &str) -> Result<UnetModel> {
    let n = data.len() / cfg.net.dim();
    eprintln!(
        "[{tag}] training on {n} images: {} steps × batch {}",
        cfg.train.steps, cfg.train.batch
    );
    let every = (cfg.train.steps / 10).max(1);
    let mut window = 0.0;
    let model = train(
        cfg.net,
        data,
        &UnetTrainConfig { seed, ..cfg.train },
        |step, loss| {
            window += loss;
            if (step + 1) % every == 0 {
                eprintln!(
                    "[{tag}]   step {:>6}  loss {:.4}",
                    step + 1,
                    window / every as f64
                );
                window = 0.0;
            }
        },
    )?;
    model.save(&cfg.out_dir.join(format!("model_{tag}.mru")))?;
    Ok(model)
}

fn draw(
    cfg: &ExperimentConfig,
    model: &UnetModel,
    n: usize,
    seed: u64,
    tag: &str,
) -> Result<UnetSamples> {
    eprintln!("[{tag}] sampling {n} images × {} steps", cfg.sample.steps);
    sample(model, n, &UnetSampleConfig { seed, ..cfg.sample }, |_| {})
}

fn shapes_summary(cfg: &ExperimentConfig, images: &[f32]) -> Result<ShapesSummary> {
    Ok(ShapesSummary::of(&label_batch(
        images,
        &StripGeometry::for_side(cfg.net.side)?,
    )?))
}

/// One row of [`hallucination_vs_size`].
#[derive(Clone, Debug, Serialize)]
pub struct SizeRow {
    /// Training images.
    pub train_size: usize,
    /// Labelled samples.
    pub summary: ShapesSummary,
    /// Fraction hallucinated.
    pub hallucinated_fraction: f64,
    /// Median Hal.
    pub hal_median: f64,
}

fn median(v: &[f32]) -> f64 {
    let mut s: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Shapes only: trains one model per training-set size and labels `samples` draws of each.
///
/// # Errors
/// Digits (no labeller), or any training/sampling error.
pub fn hallucination_vs_size(
    cfg: &ExperimentConfig,
    sizes: &[usize],
    samples: usize,
) -> Result<Vec<SizeRow>> {
    ensure!(
        cfg.dataset == ImageDataset::Shapes,
        "the hallucination-vs-size experiment needs the shapes labeller: use --dataset shapes"
    );
    let mut rows = Vec::new();
    for &size in sizes {
        let data = load_training(cfg.dataset, size, cfg.net.side, cfg.train.seed)?;
        let tag = format!("n{size}");
        let model = train_model(cfg, &data.images, seed_for(cfg.train.seed, 1, 0), &tag)?;
        let s = draw(cfg, &model, samples, seed_for(cfg.train.seed, 2, 0), &tag)?;
        write_grid(
            &cfg.out_dir.join(format!("samples_{tag}.png")),
            &s.images,
            cfg.net.side,
            8,
            2,
        )?;
        let summary = shapes_summary(cfg, &s.images)?;
        eprintln!(
            "[{tag}] hallucinated {}/{} ({:.2}%), empty {}, malformed {}",
            summary.hallucinated,
            summary.n,
            100.0 * summary.hallucinated_fraction(),
            summary.empty,
            summary.with_malformed
        );
        rows.push(SizeRow {
            train_size: size,
            hallucinated_fraction: summary.hallucinated_fraction(),
            summary,
            hal_median: median(&s.hal),
        });
    }
    write_report(&cfg.out_dir, "hallucination", cfg, &rows)?;
    Ok(rows)
}

/// One Hal window of [`filter_experiment`], scored by D5.
#[derive(Clone, Debug, Serialize)]
pub struct FilterReading {
    /// Hal window K (last K sampler steps).
    pub window: usize,
    /// Whether this K was chosen on the calibration half.
    pub chosen: bool,
    /// D5 scoring: in-support = every image not hallucinated (malformed and empty included).
    pub d5: D5Report,
    /// Test-half AUROC of hallucinated against *clean* images only (no malformed
    /// component, not empty), the paper's in-support class without D3's side reports.
    pub auroc_vs_clean: Option<f64>,
    /// The same within equal shape counts (see [`auroc_same_count`]).
    pub auroc_same_count: Option<f64>,
}

/// Result of [`filter_experiment`].
#[derive(Clone, Debug, Serialize)]
pub struct FilterReport {
    /// Label totals over all samples.
    pub summary: ShapesSummary,
    /// The configured K first, then the extra windows.
    pub readings: Vec<FilterReading>,
    /// The K chosen on the calibration half (highest TPR at τ, then AUROC).
    pub chosen_window: usize,
    /// Fraction of test-half hallucinations removed at τ with the chosen K (= TPR).
    pub removed_hallucinated: Option<f64>,
    /// Fraction of test-half in-support samples kept at τ with the chosen K (= TNR).
    pub kept_in_support: Option<f64>,
}

/// The test-half (odd-index) images that are hallucinated or clean (no malformed
/// component, not empty), grouped by their total component count: (scores, hallucinated).
fn test_half_by_count(
    scores: &[f32],
    labels: &[ShapesLabel],
) -> BTreeMap<usize, (Vec<f32>, Vec<bool>)> {
    let mut groups: BTreeMap<usize, (Vec<f32>, Vec<bool>)> = BTreeMap::new();
    for (&score, l) in scores.iter().zip(labels).skip(1).step_by(2) {
        let clean = !l.hallucinated && l.malformed == 0 && !l.empty;
        if l.hallucinated || clean {
            let g = groups.entry(l.components.iter().sum()).or_default();
            g.0.push(score);
            g.1.push(l.hallucinated);
        }
    }
    groups
}

/// Test-half AUROC of hallucinated vs clean images; `None` without both classes.
fn auroc_vs_clean(scores: &[f32], labels: &[ShapesLabel]) -> Result<Option<f64>> {
    let (mut s, mut h) = (Vec::new(), Vec::new());
    for (gs, gh) in test_half_by_count(scores, labels).into_values() {
        s.extend(gs);
        h.extend(gh);
    }
    if h.iter().all(|&x| x) || h.iter().all(|&x| !x) {
        return Ok(None);
    }
    Ok(Some(auroc(&s, &h)?))
}

/// Test-half AUROC of hallucinated vs clean images *with the same number of shapes*: the
/// fraction of (hallucinated, clean) pairs within one component count that the score
/// orders correctly (ties ½), i.e. the per-count AUROCs weighted by their pair counts.
/// Hal averages over pixels, so it grows with the number of shapes an image draws, and a
/// hallucinated image has at least two; this reading removes that confound. `None` when no
/// count has both classes.
fn auroc_same_count(scores: &[f32], labels: &[ShapesLabel]) -> Result<Option<f64>> {
    let (mut sum, mut pairs) = (0.0, 0.0);
    for (s, h) in test_half_by_count(scores, labels).values() {
        let pos = h.iter().filter(|&&x| x).count() as f64;
        let neg = h.len() as f64 - pos;
        if pos > 0.0 && neg > 0.0 {
            sum += auroc(s, h)? * pos * neg;
            pairs += pos * neg;
        }
    }
    Ok((pairs > 0.0).then(|| sum / pairs))
}

/// Shapes only: trains (or loads) a model, draws `samples` images, labels them and scores
/// Hal by D5 at the configured window and at each of `extra_windows`, choosing one on the
/// calibration half. Writes the 64 lowest- and highest-Hal samples (chosen K) as grids and
/// every sample's label and scores as `scores.csv`.
///
/// # Errors
/// Digits, a window past the sampling steps, or any training/sampling/scoring error.
pub fn filter_experiment(
    cfg: &ExperimentConfig,
    samples: usize,
    model_path: Option<&Path>,
    extra_windows: &[usize],
) -> Result<FilterReport> {
    ensure!(
        cfg.dataset == ImageDataset::Shapes,
        "the filter experiment scores Hal against D3 labels: use --dataset shapes"
    );
    let model = match model_path {
        Some(p) => UnetModel::load(p)?,
        None => {
            let data = load_training(cfg.dataset, cfg.train_size, cfg.net.side, cfg.train.seed)?;
            train_model(cfg, &data.images, seed_for(cfg.train.seed, 1, 0), "filter")?
        }
    };
    ensure!(
        model.config.side == cfg.net.side,
        "model side {} differs from --side {}",
        model.config.side,
        cfg.net.side
    );
    eprintln!(
        "[filter] sampling {samples} images × {} steps",
        cfg.sample.steps
    );
    let UnetSamples {
        images,
        hal,
        hal_extra,
    } = sample_windows(
        &model,
        samples,
        &UnetSampleConfig {
            seed: seed_for(cfg.train.seed, 2, 0),
            ..cfg.sample
        },
        extra_windows,
        |_| {},
    )?;
    let labels = label_batch(&images, &StripGeometry::for_side(cfg.net.side)?)?;
    let summary = ShapesSummary::of(&labels);
    let flags: Vec<bool> = labels.iter().map(|l| l.hallucinated).collect();
    let windows: Vec<usize> = std::iter::once(cfg.sample.window)
        .chain(extra_windows.iter().copied())
        .collect();
    let scores: Vec<Vec<f32>> = std::iter::once(hal).chain(hal_extra).collect();
    let chosen_window = best_window_on_calibration(&windows, &scores, &flags)?;
    let mut readings = Vec::new();
    for (&window, hal) in windows.iter().zip(&scores) {
        readings.push(FilterReading {
            window,
            chosen: window == chosen_window,
            d5: score_d5(hal, &flags, &D5Config::PAPER)?,
            auroc_vs_clean: auroc_vs_clean(hal, &labels)?,
            auroc_same_count: auroc_same_count(hal, &labels)?,
        });
    }
    let chosen = windows
        .iter()
        .position(|&w| w == chosen_window)
        .unwrap_or(0);
    write_extremes(cfg, &images, &scores[chosen])?;
    write_scores(&cfg.out_dir.join("scores.csv"), &windows, &scores, &labels)?;
    let report = FilterReport {
        summary,
        removed_hallucinated: readings[chosen].d5.tpr,
        kept_in_support: readings[chosen].d5.tnr,
        readings,
        chosen_window,
    };
    write_report(&cfg.out_dir, "filter", cfg, &report)?;
    Ok(report)
}

/// Writes one CSV row per sample: its D3 label (components per strip, malformed count,
/// empty, hallucinated) and its Hal at every window, for analyses beyond the report.
fn write_scores(
    path: &Path,
    windows: &[usize],
    scores: &[Vec<f32>],
    labels: &[ShapesLabel],
) -> Result<()> {
    let mut csv = String::from("sample,strip0,strip1,strip2,malformed,empty,hallucinated");
    for k in windows {
        csv.push_str(&format!(",hal_k{k}"));
    }
    csv.push('\n');
    for (i, l) in labels.iter().enumerate() {
        let [a, b, c] = l.components;
        csv.push_str(&format!(
            "{i},{a},{b},{c},{},{},{}",
            l.malformed,
            u8::from(l.empty),
            u8::from(l.hallucinated)
        ));
        for s in scores {
            csv.push_str(&format!(",{:e}", s[i]));
        }
        csv.push('\n');
    }
    write_atomic(path, csv.as_bytes())
}

/// Writes the 64 lowest- and highest-scoring images as `lowest_hal.png`, `highest_hal.png`.
fn write_extremes(cfg: &ExperimentConfig, images: &[f32], hal: &[f32]) -> Result<()> {
    let d = cfg.net.dim();
    let mut order: Vec<usize> = (0..hal.len()).collect();
    order.sort_by(|&a, &b| hal[a].total_cmp(&hal[b]));
    let pick = |idx: &mut dyn Iterator<Item = &usize>| -> Vec<f32> {
        idx.take(64)
            .flat_map(|&i| images[i * d..][..d].to_vec())
            .collect()
    };
    for (name, imgs) in [
        ("lowest_hal.png", pick(&mut order.iter())),
        ("highest_hal.png", pick(&mut order.iter().rev())),
    ] {
        write_grid(&cfg.out_dir.join(name), &imgs, cfg.net.side, 8, 2)?;
    }
    Ok(())
}

/// How each generation's 1.025N draws are cut to N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    /// The first N (no filter).
    None,
    /// A uniform N (ChaCha), in index order.
    Random,
    /// The N lowest Hal, in ascending-Hal order.
    Hal,
}

/// One generation of one variant in [`recursive`].
#[derive(Clone, Debug, Serialize)]
pub struct GenerationRow {
    /// Filter variant.
    pub variant: FilterKind,
    /// Generation (0 = trained on real data).
    pub generation: usize,
    /// Images drawn (1.025N).
    pub drawn: usize,
    /// Images kept (N), the next generation's training set.
    pub kept: usize,
    /// Shapes: hallucinated fraction of all draws.
    pub drawn_hallucinated: Option<f64>,
    /// Shapes: hallucinated fraction of the kept set.
    pub kept_hallucinated: Option<f64>,
    /// Shapes: fraction of draws with no shape (an emptying model lowers the hallucinated
    /// fraction without drawing better images).
    pub drawn_empty: Option<f64>,
    /// Shapes: fraction of draws with a malformed component (specks, blobs).
    pub drawn_malformed: Option<f64>,
    /// Digits: Fréchet distance (classifier features) of all draws to the real digits.
    pub drawn_frechet: Option<f64>,
    /// Digits: the same for the kept set.
    pub kept_frechet: Option<f64>,
    /// Digits: class-histogram entropy (nats) of the kept set (ln 10 = 2.303 balanced).
    pub kept_entropy: Option<f64>,
    /// Median Hal of the draws.
    pub hal_median: f64,
}

/// What [`recursive`] measures on a set of images: D3 fractions (shapes) or the
/// classifier's Fréchet distance and class entropy (digits).
#[derive(Default)]
struct SetMetrics {
    hallucinated: Option<f64>,
    empty: Option<f64>,
    malformed: Option<f64>,
    frechet: Option<f64>,
    entropy: Option<f64>,
}

impl SetMetrics {
    fn shapes(s: &ShapesSummary) -> Self {
        let frac = |k: usize| Some(if s.n == 0 { 0.0 } else { k as f64 / s.n as f64 });
        Self {
            hallucinated: frac(s.hallucinated),
            empty: frac(s.empty),
            malformed: frac(s.with_malformed),
            ..Self::default()
        }
    }
}

fn keep_indices(kind: FilterKind, hal: &[f32], keep: usize, seed: u64) -> Vec<usize> {
    let n = hal.len();
    match kind {
        FilterKind::None => (0..keep).collect(),
        FilterKind::Random => {
            let mut idx: Vec<usize> = (0..n).collect();
            let mut rng = chacha_stream(seed, 0x6669_6c74);
            for i in 0..keep {
                let j = i + ((u64::from(rng.next_u32()) * (n - i) as u64) >> 32) as usize;
                idx.swap(i, j);
            }
            let mut kept = idx[..keep].to_vec();
            kept.sort_unstable();
            kept
        }
        FilterKind::Hal => {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by(|&a, &b| hal[a].total_cmp(&hal[b]).then(a.cmp(&b)));
            idx.truncate(keep);
            idx
        }
    }
}

/// Runs `generations` generations for each variant in `variants` (see the module docs).
///
/// # Errors
/// Any training/sampling/metric error.
pub fn recursive(
    cfg: &ExperimentConfig,
    generations: usize,
    variants: &[FilterKind],
) -> Result<Vec<GenerationRow>> {
    ensure!(
        generations >= 1 && !variants.is_empty(),
        "need at least one generation and one variant"
    );
    let real = load_training(cfg.dataset, cfg.train_size, cfg.net.side, cfg.train.seed)?;
    let d = cfg.net.dim();
    let n = real.images.len() / d;
    let drawn = (n * 1025).div_ceil(1000);
    let classifier = match &real.labels {
        Some(labels) => {
            let c = Classifier::train(&real.images, labels, d, 60, seed_for(cfg.train.seed, 5, 0))?;
            let (_, cls) = c.features_and_classes(&real.images)?;
            let acc = cls.iter().zip(labels).filter(|(a, b)| a == b).count() as f64 / n as f64;
            eprintln!("[classifier] training accuracy {:.3}", acc);
            Some(c)
        }
        None => None,
    };
    let real_features = match &classifier {
        Some(c) => Some(c.features_and_classes(&real.images)?.0),
        None => None,
    };
    let metrics = |images: &[f32]| -> Result<SetMetrics> {
        match (&classifier, &real_features) {
            (Some(c), Some(rf)) => {
                let (f, cls) = c.features_and_classes(images)?;
                Ok(SetMetrics {
                    frechet: Some(frechet_distance(&f, rf, super::classifier::FEATURES)?),
                    entropy: Some(class_entropy(&cls)),
                    ..SetMetrics::default()
                })
            }
            _ => Ok(SetMetrics::shapes(&shapes_summary(cfg, images)?)),
        }
    };
    let mut rows = Vec::new();
    let mut g0: Option<UnetSamples> = None;
    for &variant in variants {
        let mut data = real.images.clone();
        for g in 0..generations {
            let tag = format!("{variant:?}_g{g}").to_lowercase();
            let s = match (&g0, g) {
                (Some(s), 0) => s.clone(),
                _ => {
                    let model =
                        train_model(cfg, &data, seed_for(cfg.train.seed, 1, g as u64), &tag)?;
                    let s = draw(
                        cfg,
                        &model,
                        drawn,
                        seed_for(cfg.train.seed, 2, g as u64),
                        &tag,
                    )?;
                    if g == 0 {
                        g0 = Some(s.clone());
                    }
                    s
                }
            };
            write_grid(
                &cfg.out_dir.join(format!("samples_{tag}.png")),
                &s.images,
                cfg.net.side,
                8,
                if d <= 64 { 4 } else { 2 },
            )?;
            let kept = keep_indices(variant, &s.hal, n, seed_for(cfg.train.seed, 3, g as u64));
            let kept_images: Vec<f32> = kept
                .iter()
                .flat_map(|&i| s.images[i * d..][..d].to_vec())
                .collect();
            let (dm, km) = (metrics(&s.images)?, metrics(&kept_images)?);
            let row = GenerationRow {
                variant,
                generation: g,
                drawn,
                kept: n,
                drawn_hallucinated: dm.hallucinated,
                kept_hallucinated: km.hallucinated,
                drawn_empty: dm.empty,
                drawn_malformed: dm.malformed,
                drawn_frechet: dm.frechet,
                kept_frechet: km.frechet,
                kept_entropy: km.entropy,
                hal_median: median(&s.hal),
            };
            eprintln!("[{tag}] {}", serde_json::to_string(&row)?);
            rows.push(row);
            data = kept_images;
        }
    }
    write_report(&cfg.out_dir, "recursive", cfg, &rows)?;
    Ok(rows)
}

fn write_report<T: Serialize>(
    dir: &Path,
    name: &str,
    cfg: &ExperimentConfig,
    result: &T,
) -> Result<()> {
    let json = serde_json::json!({ "experiment": name, "config": cfg, "result": result });
    write_atomic(
        &dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )
}

/// Parses "500,2000,5000".
///
/// # Errors
/// Empty or non-numeric entries.
pub fn parse_sizes(text: &str) -> Result<Vec<usize>> {
    let sizes: Vec<usize> = text
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--sizes {text:?}: {e}"))?;
    if sizes.is_empty() || sizes.contains(&0) {
        bail!("--sizes needs positive comma-separated counts");
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_keep_the_right_sets() {
        let hal = [0.5f32, 0.1, 0.9, 0.3, 0.2];
        assert_eq!(keep_indices(FilterKind::None, &hal, 3, 1), vec![0, 1, 2]);
        assert_eq!(keep_indices(FilterKind::Hal, &hal, 3, 1), vec![1, 4, 3]);
        let r = keep_indices(FilterKind::Random, &hal, 3, 1);
        assert_eq!(r.len(), 3);
        assert!(r.windows(2).all(|w| w[0] < w[1]) && r.iter().all(|&i| i < 5));
        // Over many seeds each index is kept with probability 3/5.
        let mut counts = [0usize; 5];
        for seed in 0..2000 {
            for i in keep_indices(FilterKind::Random, &hal, 3, seed) {
                counts[i] += 1;
            }
        }
        for c in counts {
            assert!((c as f64 / 2000.0 - 0.6).abs() < 0.05, "{counts:?}");
        }
        assert_eq!(parse_sizes("5, 10").unwrap(), vec![5, 10]);
        assert!(parse_sizes("5,x").is_err() && parse_sizes("0").is_err());
    }

    #[test]
    fn scores_csv_has_one_row_per_sample_with_label_and_every_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.csv");
        let label = |components, malformed, empty, hallucinated| ShapesLabel {
            components,
            malformed,
            empty,
            hallucinated,
        };
        let labels = [
            label([1, 0, 2], 0, false, true),
            label([0, 0, 0], 0, true, false),
            label([1, 1, 0], 1, false, false),
        ];
        let scores = [vec![0.5f32, 0.0, 2e-3], vec![0.25, 1.0, f32::INFINITY]];
        write_scores(&path, &[10, 3], &scores, &labels).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "sample,strip0,strip1,strip2,malformed,empty,hallucinated,hal_k10,hal_k3\n\
             0,1,0,2,0,0,1,5e-1,2.5e-1\n\
             1,0,0,0,0,1,0,0e0,1e0\n\
             2,1,1,0,1,0,0,2e-3,inf\n"
        );
    }

    #[test]
    fn same_count_auroc_removes_the_shape_count_confound() {
        // (score, shapes per strip, hallucinated) at odd indices; even indices are
        // calibration samples and must be ignored (score 99 would move every AUROC).
        let test: [(f32, [usize; 3], bool); 9] = [
            (1.0, [1, 0, 0], false),
            (1.0, [0, 1, 0], false),
            (3.0, [2, 1, 0], true),
            (3.0, [1, 1, 1], false),
            (3.0, [1, 0, 1], true),
            (1.0, [1, 1, 0], true),
            (2.0, [0, 1, 1], false),
            (1.0, [0, 1, 1], false),
            (5.0, [1, 1, 0], false),
        ];
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for (score, components, hallucinated) in test {
            scores.extend([99.0, score]);
            let label = ShapesLabel {
                components,
                malformed: 0,
                empty: false,
                hallucinated,
            };
            labels.extend([
                ShapesLabel {
                    hallucinated: true,
                    ..label
                },
                label,
            ]);
        }
        // Count 3: positive 3 vs negative 3 → ½. Count 2: positives {3, 1} vs negatives
        // {2, 1, 5} → (1 + 1 + 0 + 0 + ½ + 0)/6 = 5/12. Weighted by 1 and 6 pairs: 3/7.
        let same = auroc_same_count(&scores, &labels).unwrap().unwrap();
        assert!(
            (same - (0.5 * 1.0 + 5.0 / 12.0 * 6.0) / 7.0).abs() < 1e-12,
            "{same}"
        );
        // Ignoring counts, the single-shape negatives at 1 make Hal look better:
        // positives {3, 3, 1} vs negatives {1, 1, 3, 2, 1, 5}.
        let pooled = auroc_vs_clean(&scores, &labels).unwrap().unwrap();
        let want = (4.5 + 4.5 + 1.5) / 18.0;
        assert!((pooled - want).abs() < 1e-12, "{pooled} vs {want}");
        let none: Vec<ShapesLabel> = labels
            .iter()
            .map(|l| ShapesLabel {
                hallucinated: false,
                ..*l
            })
            .collect();
        assert_eq!(auroc_same_count(&scores, &none).unwrap(), None);
    }

    #[test]
    fn a_tiny_pipeline_runs_end_to_end_and_is_seeded() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ExperimentConfig {
            dataset: ImageDataset::Shapes,
            train_size: 16,
            net: UnetConfig {
                side: 32,
                c1: 4,
                c2: 4,
                temb_dim: 4,
                time_width: 4,
                groups: 2,
            },
            train: UnetTrainConfig {
                steps: 2,
                batch: 4,
                lr: 1e-3,
                seed: 3,
                train_steps: 100,
                beta: (1e-4, 0.02),
                threads: 1,
            },
            sample: UnetSampleConfig {
                steps: 4,
                window: 3,
                batch: 3,
                seed: 0,
                first_sample: 0,
            },
            out_dir: dir.path().to_path_buf(),
        };
        let rows = recursive(&cfg, 2, &[FilterKind::Hal, FilterKind::None]).unwrap();
        assert_eq!(rows.len(), 4);
        // Generation 0 is shared by both variants: same draws, same hallucination rate.
        assert_eq!(rows[0].drawn_hallucinated, rows[2].drawn_hallucinated);
        assert_eq!(rows[0].hal_median, rows[2].hal_median);
        assert_eq!(rows[0].drawn, 17);
        assert!(rows.iter().all(|r| r.drawn_empty.is_some()
            && r.drawn_malformed.is_some()
            && r.drawn_frechet.is_none()));
        assert!(
            dir.path().join("recursive.json").exists()
                && dir.path().join("samples_hal_g1.png").exists()
        );
        let again = recursive(&cfg, 1, &[FilterKind::Hal]).unwrap();
        assert_eq!(again[0].hal_median, rows[0].hal_median);
        assert!(
            hallucination_vs_size(
                &ExperimentConfig {
                    dataset: ImageDataset::Digits,
                    ..cfg.clone()
                },
                &[4],
                2
            )
            .is_err()
        );
    }

    #[test]
    fn set_metrics_are_fractions_of_the_summary() {
        let m = SetMetrics::shapes(&ShapesSummary {
            n: 8,
            hallucinated: 2,
            empty: 3,
            with_malformed: 1,
        });
        assert_eq!(
            (m.hallucinated, m.empty, m.malformed),
            (Some(0.25), Some(0.375), Some(0.125))
        );
        assert_eq!((m.frechet, m.entropy), (None, None));
        let none = SetMetrics::shapes(&ShapesSummary {
            n: 0,
            hallucinated: 0,
            empty: 0,
            with_malformed: 0,
        });
        assert_eq!(none.empty, Some(0.0));
    }
}
