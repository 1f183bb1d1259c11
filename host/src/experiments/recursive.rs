//! Self-consuming training (papers.md §1.2 "Recursion", *paper's code*; §7 D2, D5, D7).
//!
//! Generation 0 trains on real data; each generation g ≥ 1 trains a **fresh** model (new
//! init and Adam state, same settings) on N samples of generation g−1. Real data is never
//! mixed back in. Each generation draws 1.025N samples (⌈1025·N/1000⌉) with Hal and keeps N
//! of them as the next training set, by one filter per chain:
//!
//! - `none`: the first N draws (samples are i.i.d., so this is "N samples of the model");
//! - `random`: a uniform N of the 1.025N (partial Fisher–Yates on a ChaCha stream), in
//!   index order;
//! - `hal`: the N with the lowest Hal (the top 2.44% go), **stored in ascending-Hal order**
//!   (ties by index), which is the order the next model trains in (no shuffling);
//! - `path`, `postvar`, `knn`: the same with another detector of papers.md §9 in place of
//!   Hal (x̂0 path length over the Hal window, exact tr ∂x̂0/∂x_t at the final step, the
//!   distance to the 50th nearest other draw), for comparison.
//!
//! Per generation and chain: the hallucination rate of the draws and of the kept set (D2:
//! farther than 5σ_n from every centre), the number of modes covered (modes with at least
//! 10% of their fair share ⌈0.1·drawn/K⌉ of in-support draws) and Hal quantiles.
//!
//! Seeds (D7): the real data come from the master seed's data stream; generation g's
//! training seed, sampling seed and random-filter seed are ChaCha draws of streams
//! (1, g), (2, g), (3, g) of the master seed, the same in every chain (common random
//! numbers), and generation 0 (model and draws) is shared by all chains.
//!
//! Layout under the output directory (every file written atomically):
//!
//! ```text
//! config.json                      settings (a rerun must match them)
//! g0/model.mrg, samples.npy, hal.npy [, path.npy, postvar.npy]   generation 0, shared
//! <chain>/g<g>/model.mrg, samples.npy, hal.npy [, <detector>.npy]  g ≥ 1
//! <chain>/g<g>/kept.npy, row.json   the kept set (next training data) and metrics
//! <chain>/scatter_g<g>.png          the draws of generation g
//! summary.json, summary.csv, hallucination_rate.png, modes.png
//! ```
//!
//! `row.json` is written last (and the summary is assembled from the records as read back
//! from their JSON text), so a generation counts as finished only once everything
//! else is on disk; a rerun of the same command skips finished generations (reading their
//! kept set back), reuses a finished model or draw file, and resumes an interrupted
//! training from its checkpoint. Chains and generations may be added on a rerun.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use super::model::{Extra, ModelSettings, read_model, write_model};
use crate::data::{Dataset, Mixture, parse_mixture};
use crate::detect::{DEFAULT_K, knn_distances};
use crate::io::atomic::write_atomic;
use crate::io::matrix::{Matrix, NonFinite};
use crate::io::npy::{read_npy, write_npy, write_npy_vector};
use crate::label::{Labeller, PAPER_K, Summary, mode_coverage};
use crate::metrics::quantiles;
use crate::plot::{Series, line_plot, scatter_2d};
use mirage_core::noise::chacha_stream;

/// How a generation's 1.025N draws are cut to the N that train the next generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// The first N draws.
    None,
    /// A uniform N, in index order.
    Random,
    /// The N lowest Hal, in ascending-Hal order.
    Hal,
    /// The N shortest x̂0 paths over the Hal window (papers.md §9 D15), ascending.
    Path,
    /// The N lowest exact tr ∂x̂0/∂x_t at the final step (§9 D11), ascending.
    Postvar,
    /// The N smallest distances to the 50th nearest other draw (§9 D16), ascending.
    Knn,
}

impl Filter {
    /// Names accepted by [`Filter::from_str`].
    pub const NAMES: [&'static str; 6] = ["hal", "random", "none", "path", "postvar", "knn"];

    /// The command-line name (also the chain's directory name).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Hal => "hal",
            Self::Random => "random",
            Self::None => "none",
            Self::Path => "path",
            Self::Postvar => "postvar",
            Self::Knn => "knn",
        }
    }

    /// Whether it keeps the lowest scores of a detector (rather than ignoring scores).
    #[must_use]
    pub fn is_detector(self) -> bool {
        !matches!(self, Self::None | Self::Random)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Filter {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        if lower == "unfiltered" {
            return Ok(Self::None);
        }
        match Self::NAMES.iter().position(|n| *n == lower) {
            Some(i) => Ok([
                Self::Hal,
                Self::Random,
                Self::None,
                Self::Path,
                Self::Postvar,
                Self::Knn,
            ][i]),
            None => bail!(
                "unknown filter '{lower}': expected one of {}",
                Self::NAMES.join(", ")
            ),
        }
    }
}

/// Indices of the `keep` draws a filter keeps, in training order. `scores` are the
/// filter's detector scores of all draws (higher = more likely hallucinated; only their
/// number matters for `none` and `random`); `seed` drives the random filter.
///
/// # Errors
/// `keep` larger than the number of draws.
pub fn keep_indices(filter: Filter, scores: &[f32], keep: usize, seed: u64) -> Result<Vec<usize>> {
    let n = scores.len();
    ensure!(
        keep <= n,
        "cannot keep {keep} of {n} draws; draw at least as many as are kept"
    );
    Ok(match filter {
        Filter::None => (0..keep).collect(),
        Filter::Random => {
            let mut idx: Vec<usize> = (0..n).collect();
            let mut rng = chacha_stream(seed, 0);
            for i in 0..keep {
                // Lemire's multiply-shift: j uniform in i..n (bias < n/2^64).
                let span = (n - i) as u128;
                let j = i + ((u128::from(rng.next_u64()) * span) >> 64) as usize;
                idx.swap(i, j);
            }
            idx.truncate(keep);
            idx.sort_unstable();
            idx
        }
        Filter::Hal | Filter::Path | Filter::Postvar | Filter::Knn => {
            let mut idx: Vec<usize> = (0..n).collect();
            // total_cmp puts +∞ (diverged trajectories) and NaN last.
            idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
            idx.truncate(keep);
            idx
        }
    })
}

/// What a run is (everything that changes its numbers). Chains and the number of
/// generations are not part of it: a rerun may add either and reuses what exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecursiveConfig {
    /// Dataset name or mixture spec path (must be resolvable by `parse_mixture`).
    pub dataset: String,
    /// Training points per generation (N).
    pub n: usize,
    /// Master seed.
    pub seed: u64,
    /// Model, training and sampler settings of every generation.
    pub model: ModelSettings,
}

impl RecursiveConfig {
    /// Draws per generation: ⌈1.025·N⌉ = ⌈1025·N/1000⌉ (102,500 for N = 100,000).
    #[must_use]
    pub fn drawn(&self) -> usize {
        (self.n * 1025).div_ceil(1000)
    }
}

/// One generation of one chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationRow {
    /// Filter of the chain.
    pub chain: Filter,
    /// Generation (0 = trained on real data).
    pub generation: usize,
    /// Points the model trained on.
    pub trained_on: usize,
    /// Samples drawn (1.025N).
    pub drawn: usize,
    /// Hallucinated draws (D2).
    pub hallucinated: usize,
    /// Fraction of draws hallucinated (D2).
    pub hallucination_rate: f64,
    /// Hallucinated draws near a nearest-neighbour segment (D2 sub-type "edge").
    pub edge: usize,
    /// Samples kept (N): the next generation's training set.
    pub kept: usize,
    /// Fraction of the kept set hallucinated.
    pub kept_hallucination_rate: f64,
    /// Modes with at least `mode_min_count` in-support draws.
    pub modes_covered: usize,
    /// Number of modes of the dataset.
    pub modes: usize,
    /// The coverage threshold ⌈0.1·drawn/modes⌉.
    pub mode_min_count: usize,
    /// In-support draws per mode.
    pub per_mode: Vec<usize>,
    /// Median Hal of the draws.
    pub hal_median: f64,
    /// 96th percentile of Hal of the draws.
    pub hal_q96: f64,
    /// Largest Hal kept (the effective cut of the Hal filter).
    pub kept_hal_max: f64,
}

/// The summary of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecursiveSummary {
    /// Settings.
    pub config: RecursiveConfig,
    /// Generations per chain.
    pub generations: usize,
    /// Chains run.
    pub chains: Vec<Filter>,
    /// One row per chain and generation, chain-major.
    pub rows: Vec<GenerationRow>,
}

/// A generation's draws and their detector scores (`[drawn]` each).
struct Draws {
    samples: Vec<f32>,
    hal: Vec<f32>,
    path: Option<Vec<f32>>,
    postvar: Option<Vec<f32>>,
}

fn seed_for(master: u64, what: u64, generation: usize) -> u64 {
    chacha_stream(master, (what << 32) | generation as u64).next_u64()
}

/// A run in progress: settings, resolved dataset and output directory.
struct Run<'a> {
    cfg: &'a RecursiveConfig,
    mixture: Mixture,
    labeller: Labeller,
    out: PathBuf,
    threads: usize,
}

impl Run<'_> {
    fn dim(&self) -> usize {
        self.mixture.dim()
    }

    fn model_dir(&self, chain: Filter, g: usize) -> PathBuf {
        if g == 0 {
            self.out.join("g0")
        } else {
            self.out.join(chain.name()).join(format!("g{g}"))
        }
    }

    /// The model of generation g of `chain` trained on `data`, from disk if present.
    fn model(&self, chain: Filter, g: usize, data: &[f32], tag: &str) -> Result<Vec<u8>> {
        let dir = self.model_dir(chain, g);
        let path = dir.join("model.mrg");
        if path.is_file() {
            eprintln!("[{tag}] reusing {}", path.display());
            return read_model(&path);
        }
        let n = data.len() / self.dim();
        eprintln!(
            "[{tag}] training a fresh model on {n} points for {} epochs",
            self.cfg.model.epochs
        );
        let t0 = Instant::now();
        let ckpt = dir.join("checkpoint.mckpt");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mrg = self.cfg.model.train(
            data.to_vec(),
            self.dim(),
            seed_for(self.cfg.seed, 1, g),
            self.threads,
            Some(&ckpt),
        )?;
        write_model(&path, &mrg)?;
        let _ = std::fs::remove_file(&ckpt);
        eprintln!("[{tag}] trained in {:.1} s", t0.elapsed().as_secs_f64());
        Ok(mrg)
    }

    /// The 1.025N draws of generation g with Hal and the scores `needs` asks for, from
    /// disk if every file is there (a missing score file redraws: same seed, same bits).
    fn draws(
        &self,
        chain: Filter,
        g: usize,
        mrg: &[u8],
        needs: &[Filter],
        tag: &str,
    ) -> Result<Draws> {
        let dir = self.model_dir(chain, g);
        let d = self.dim();
        let drawn = self.cfg.drawn();
        let extra = Extra {
            path: needs.contains(&Filter::Path),
            postvar: needs.contains(&Filter::Postvar),
        };
        let sp = dir.join("samples.npy");
        let file = |what: &str| dir.join(format!("{what}.npy"));
        let mut wanted = vec!["hal"];
        if extra.path {
            wanted.push("path");
        }
        if extra.postvar {
            wanted.push("postvar");
        }
        if sp.is_file() && wanted.iter().all(|w| file(w).is_file()) {
            let s = read_npy(&sp, NonFinite::Allow)?.matrix;
            ensure!(
                s.rows() == drawn && s.cols() == d,
                "{} does not hold {drawn} draws of dimension {d}; delete it to redraw",
                sp.display()
            );
            let score = |what: &str| -> Result<Option<Vec<f32>>> {
                let path = file(what);
                if !path.is_file() {
                    return Ok(None);
                }
                let m = read_npy(&path, NonFinite::Allow)?.matrix;
                ensure!(
                    m.rows() == drawn && m.cols() == 1,
                    "{} does not hold {drawn} scores; delete it to redraw",
                    path.display()
                );
                Ok(Some(m.into_data()))
            };
            eprintln!("[{tag}] reusing {drawn} draws in {}", dir.display());
            return Ok(Draws {
                hal: score("hal")?.unwrap_or_default(),
                path: score("path")?,
                postvar: score("postvar")?,
                samples: s.into_data(),
            });
        }
        eprintln!("[{tag}] drawing {drawn} samples with Hal");
        let t0 = Instant::now();
        let name = dir.join("model.mrg").display().to_string();
        let mut out = self.cfg.model.sample(
            mrg,
            &name,
            d,
            drawn,
            seed_for(self.cfg.seed, 2, g),
            self.threads,
            extra,
        )?;
        let draws = Draws {
            hal: out.hal.pop().unwrap_or_default(),
            path: extra.path.then(|| std::mem::take(&mut out.path)),
            postvar: out.postvar_trace.pop(),
            samples: out.samples,
        };
        write_npy_vector(&file("hal"), &draws.hal)?;
        if let Some(p) = &draws.path {
            write_npy_vector(&file("path"), p)?;
        }
        if let Some(p) = &draws.postvar {
            write_npy_vector(&file("postvar"), p)?;
        }
        write_npy(&sp, &Matrix::new(drawn, d, draws.samples.clone())?)?;
        eprintln!("[{tag}] sampled in {:.1} s", t0.elapsed().as_secs_f64());
        Ok(draws)
    }

    /// The scores `filter` ranks by (Hal for `none`/`random`, which only count them).
    fn scores(&self, filter: Filter, draws: &Draws) -> Result<Vec<f32>> {
        let missing = || anyhow::anyhow!("internal: {filter} scores were not computed");
        Ok(match filter {
            Filter::Hal | Filter::None | Filter::Random => draws.hal.clone(),
            Filter::Path => draws.path.clone().ok_or_else(missing)?,
            Filter::Postvar => draws.postvar.clone().ok_or_else(missing)?,
            Filter::Knn => knn_distances(&draws.samples, self.dim(), DEFAULT_K, self.threads)?,
        })
    }

    /// Runs (or reads back) generation g of `chain` trained on `data`; returns its row and
    /// the kept set.
    fn generation(
        &self,
        chain: Filter,
        g: usize,
        data: &[f32],
        chains: &[Filter],
    ) -> Result<(GenerationRow, Vec<f32>)> {
        let tag = format!("{chain} g{g}");
        let dir = self.out.join(chain.name()).join(format!("g{g}"));
        let (row_path, kept_path) = (dir.join("row.json"), dir.join("kept.npy"));
        let d = self.dim();
        if row_path.is_file() && kept_path.is_file() {
            let text = std::fs::read_to_string(&row_path)
                .with_context(|| format!("cannot read {}", row_path.display()))?;
            let row: GenerationRow = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a generation record", row_path.display()))?;
            let kept = read_npy(&kept_path, NonFinite::Reject)?.matrix;
            ensure!(
                kept.rows() == self.cfg.n && kept.cols() == d,
                "{} does not hold {} points of dimension {d}",
                kept_path.display(),
                self.cfg.n
            );
            eprintln!("[{tag}] finished earlier; skipped");
            return Ok((row, kept.into_data()));
        }
        let mrg = self.model(chain, g, data, &tag)?;
        // Generation 0 is shared: compute every score any chain of this run ranks by.
        let needs = if g == 0 {
            chains
        } else {
            std::slice::from_ref(&chain)
        };
        let draws = self.draws(chain, g, &mrg, needs, &tag)?;
        let scores = self.scores(chain, &draws)?;
        let keep = keep_indices(chain, &scores, self.cfg.n, seed_for(self.cfg.seed, 3, g))?;
        let kept: Vec<f32> = keep
            .iter()
            .flat_map(|&i| draws.samples[i * d..(i + 1) * d].iter().copied())
            .collect();
        if let Some(bad) = kept
            .chunks_exact(d)
            .position(|x| !x.iter().all(|v| v.is_finite()))
        {
            bail!(
                "[{tag}] kept sample {bad} is not finite (the model diverged); it cannot train the next generation"
            );
        }
        let row = self.row(chain, g, data.len() / d, &draws, &keep, &kept)?;
        scatter_2d(
            &self
                .out
                .join(chain.name())
                .join(format!("scatter_g{g}.png")),
            &draws.samples,
            self.mixture.means(),
            &format!(
                "{} chain, generation {g}: {:.2}% hallucinated, {} modes",
                chain,
                100.0 * row.hallucination_rate,
                row.modes_covered
            ),
        )?;
        write_npy(&kept_path, &Matrix::new(self.cfg.n, d, kept.clone())?)?;
        let text = serde_json::to_string_pretty(&row)?;
        write_atomic(&row_path, text.as_bytes())?;
        // The summary is built from the records as stored (JSON floats need not parse back
        // to the same last bit), so a resumed run reports exactly what a fresh one does.
        let row: GenerationRow = serde_json::from_str(&text)?;
        eprintln!(
            "[{tag}] hallucinated {:.3}% of draws ({:.3}% kept), {} of {} modes",
            100.0 * row.hallucination_rate,
            100.0 * row.kept_hallucination_rate,
            row.modes_covered,
            row.modes
        );
        Ok((row, kept))
    }

    fn row(
        &self,
        chain: Filter,
        g: usize,
        trained_on: usize,
        draws: &Draws,
        keep: &[usize],
        kept: &[f32],
    ) -> Result<GenerationRow> {
        let labels = self.labeller.label_all(&draws.samples)?;
        let drawn = Summary::of(&labels);
        let kept_summary = Summary::of(&self.labeller.label_all(kept)?);
        let modes = self.mixture.components();
        let min_count = (labels.len().div_ceil(10)).div_ceil(modes).max(1);
        let cov = mode_coverage(&labels, modes, min_count);
        let finite: Vec<f32> = draws
            .hal
            .iter()
            .copied()
            .filter(|h| h.is_finite())
            .collect();
        let q = if finite.is_empty() {
            vec![f64::INFINITY; 2]
        } else {
            quantiles(&finite, &[0.5, 0.96])?
        };
        let kept_hal_max = keep
            .iter()
            .map(|&i| f64::from(draws.hal[i]))
            .fold(f64::NEG_INFINITY, f64::max);
        Ok(GenerationRow {
            chain,
            generation: g,
            trained_on,
            drawn: drawn.total,
            hallucinated: drawn.hallucinated,
            hallucination_rate: drawn.rate,
            edge: drawn.edge,
            kept: kept_summary.total,
            kept_hallucination_rate: kept_summary.rate,
            modes_covered: cov.covered,
            modes,
            mode_min_count: min_count,
            per_mode: cov.per_mode,
            hal_median: q[0],
            hal_q96: q[1],
            kept_hal_max,
        })
    }
}

/// Checks `out/config.json` against `cfg` (writing it if absent).
fn check_config(out: &Path, cfg: &RecursiveConfig) -> Result<()> {
    let path = out.join("config.json");
    if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let old: RecursiveConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a recursive-run config", path.display()))?;
        ensure!(
            &old == cfg,
            "{} holds a run with other settings:\n  there: {}\n  now:   {}\nuse another --out or delete the directory",
            out.display(),
            serde_json::to_string(&old)?,
            serde_json::to_string(cfg)?
        );
        return Ok(());
    }
    write_atomic(&path, serde_json::to_string_pretty(cfg)?.as_bytes())
}

/// Runs `generations` generations of every chain in `chains` under `out` (see the module
/// docs), writing the per-generation files, the plots and `summary.json`/`summary.csv`.
/// Results do not depend on `threads`.
///
/// # Errors
/// Invalid settings, a mismatched existing run in `out`, a dataset the D2 labeller cannot
/// scatter (not 2D), or any training, sampling or file error.
pub fn run_recursive(
    cfg: &RecursiveConfig,
    generations: usize,
    chains: &[Filter],
    out: &Path,
    threads: usize,
) -> Result<RecursiveSummary> {
    ensure!(generations >= 1, "--generations must be at least 1");
    ensure!(!chains.is_empty(), "give at least one --filter");
    ensure!(threads >= 1, "--threads must be at least 1");
    ensure!(cfg.n >= 1, "--n must be at least 1");
    for (i, c) in chains.iter().enumerate() {
        ensure!(!chains[..i].contains(c), "filter '{c}' is listed twice");
    }
    let mixture = parse_mixture(&cfg.dataset)?;
    ensure!(
        mixture.dim() == 2,
        "the recursion experiment plots 2D samples; dataset {} has dimension {}",
        cfg.dataset,
        mixture.dim()
    );
    ensure!(
        cfg.n >= cfg.model.batch,
        "N = {} is smaller than one training batch ({}); lower --batch",
        cfg.n,
        cfg.model.batch
    );
    check_config(out, cfg)?;
    let run = Run {
        cfg,
        labeller: Labeller::for_mixture(&mixture, PAPER_K)?,
        mixture,
        out: out.to_path_buf(),
        threads,
    };
    let real = Dataset::generate(run.mixture.clone(), cfg.n, cfg.seed).into_points();
    let mut rows = Vec::new();
    for &chain in chains {
        let mut data = real.clone();
        for g in 0..generations {
            let (row, kept) = run.generation(chain, g, &data, chains)?;
            rows.push(row);
            data = kept;
        }
    }
    let summary = RecursiveSummary {
        config: cfg.clone(),
        generations,
        chains: chains.to_vec(),
        rows,
    };
    write_summary(out, &summary)?;
    Ok(summary)
}

/// Writes `summary.json`, `summary.csv` and the two line plots.
fn write_summary(out: &Path, s: &RecursiveSummary) -> Result<()> {
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(s)?.as_bytes(),
    )?;
    write_atomic(&out.join("summary.csv"), summary_csv(&s.rows).as_bytes())?;
    let series = |f: &dyn Fn(&GenerationRow) -> f64| -> Vec<Series> {
        s.chains
            .iter()
            .map(|&c| Series {
                name: c.to_string(),
                points: s
                    .rows
                    .iter()
                    .filter(|r| r.chain == c)
                    .map(|r| (r.generation as f64, f(r)))
                    .collect(),
            })
            .collect()
    };
    line_plot(
        &out.join("hallucination_rate.png"),
        &series(&|r| 100.0 * r.hallucination_rate),
        "generation",
        "% hallucinated (D2)",
        false,
        &format!("Self-consuming training on {}", s.config.dataset),
    )?;
    line_plot(
        &out.join("modes.png"),
        &series(&|r| r.modes_covered as f64),
        "generation",
        "modes covered",
        false,
        &format!("Mode coverage on {}", s.config.dataset),
    )
}

/// The CSV form of the rows (one per chain and generation).
#[must_use]
pub fn summary_csv(rows: &[GenerationRow]) -> String {
    let mut s = String::from(
        "chain,generation,trained_on,drawn,hallucinated,hallucination_rate,edge,kept,kept_hallucination_rate,modes_covered,modes,hal_median,hal_q96,kept_hal_max\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.chain,
            r.generation,
            r.trained_on,
            r.drawn,
            r.hallucinated,
            r.hallucination_rate,
            r.edge,
            r.kept,
            r.kept_hallucination_rate,
            r.modes_covered,
            r.modes,
            r.hal_median,
            r.hal_q96,
            r.kept_hal_max
        ));
    }
    s
}

#[cfg(test)]
mod tests;
