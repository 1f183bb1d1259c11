//! `mirage sample`: draw samples with Hal scores (papers.md §1.2 "Sampler", "Hal(x)"),
//! from the exact Gaussian-mixture denoiser of a dataset (default: the paper's grid25) or
//! from a trained `.mrg` model, and write them as CSV.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{Mixture, parse_mixture};
use crate::io::atomic::write_atomic;
use crate::metrics::quantiles;
use crate::sample::{BatchDenoiser, SampleOptions, SampleOutput, sample_batch};
use crate::train::Layout;
use crate::train::export::read_aligned;
use mirage_core::schedule::{BetaSchedule, Schedule, Spacing, compute_tables, table_len};
use mirage_core::{Clip, EpsilonScaling, ExactGmm, Method, Prediction, SamplerConfig, Variance};

/// Timestep spacing names.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SpacingArg {
    /// ADM "even": includes 0 and T−1.
    Linspace,
    /// DDIM "leading": k·⌊T/n⌋.
    Leading,
    /// diffusers "trailing": includes T−1.
    Trailing,
}

/// Reverse-process variants.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MethodArg {
    /// Ancestral DDPM, σ² = β (the paper's "fixed-large").
    DdpmLarge,
    /// Ancestral DDPM, σ² = β̃ (posterior variance).
    DdpmSmall,
    /// DDIM with --eta.
    Ddim,
}

/// Sampler options shared by commands that run the reverse process.
#[derive(Args, Debug, Clone)]
pub struct SamplerArgs {
    /// Reverse steps (default: all T training steps).
    #[arg(long)]
    pub steps: Option<usize>,
    /// How the steps are chosen out of T.
    #[arg(long, value_enum, default_value_t = SpacingArg::Linspace)]
    pub spacing: SpacingArg,
    /// Reverse process.
    #[arg(long, value_enum, default_value_t = MethodArg::DdpmLarge)]
    pub method: MethodArg,
    /// DDIM η (0 = deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub eta: f32,
    /// Epsilon Scaling: λ_i = b + k·i (b = --es-b, k = --es-k); ε̂ ← ε̂/λ_i.
    #[arg(long)]
    pub es_b: Option<f32>,
    /// Epsilon Scaling slope k (needs --es-b).
    #[arg(long, requires = "es_b", default_value_t = 0.0)]
    pub es_k: f32,
    /// Clamp x̂0 to [−r, r].
    #[arg(long)]
    pub clip: Option<f32>,
    /// Hal window K (the last K reverse steps).
    #[arg(long, default_value_t = 10)]
    pub window: usize,
}

impl SamplerArgs {
    /// The sampler configuration (ε-prediction).
    ///
    /// # Errors
    /// If core rejects the combination (e.g. η outside [0, 1], r ≤ 0, λ ≤ 0).
    pub fn config(&self) -> Result<SamplerConfig> {
        let cfg = SamplerConfig {
            method: match self.method {
                MethodArg::DdpmLarge => Method::Ddpm(Variance::FixedLarge),
                MethodArg::DdpmSmall => Method::Ddpm(Variance::FixedSmall),
                MethodArg::Ddim => Method::Ddim { eta: self.eta },
            },
            prediction: Prediction::Epsilon,
            clip: self.clip.map_or(Clip::None, Clip::Symmetric),
            eps_scaling: match self.es_b {
                None => EpsilonScaling::Off,
                Some(b) if self.es_k == 0.0 => EpsilonScaling::Constant(b),
                Some(b) => EpsilonScaling::Linear { k: self.es_k, b },
            },
        };
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("invalid sampler options: {e}"))?;
        Ok(cfg)
    }

    /// The respaced tables for a model trained with `beta` over `train_steps`, and the
    /// step count.
    ///
    /// # Errors
    /// If the step count or spacing is invalid for T.
    pub fn tables(&self, beta: &BetaSchedule<'_>, train_steps: usize) -> Result<(Vec<f32>, usize)> {
        let steps = self.steps.unwrap_or(train_steps);
        let spacing = match self.spacing {
            SpacingArg::Linspace => Spacing::Linspace,
            SpacingArg::Leading => Spacing::Leading,
            SpacingArg::Trailing => Spacing::Trailing,
        };
        let mut tables = vec![0.0f32; table_len(steps)];
        compute_tables(beta, train_steps, &spacing, steps, &mut tables).map_err(|e| {
            anyhow::anyhow!("cannot build a {steps}-step schedule out of T = {train_steps}: {e}")
        })?;
        Ok((tables, steps))
    }
}

/// Where the reverse process runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Batched on the CPU cores (core's step and detector).
    #[default]
    Cpu,
    /// wgpu compute shaders (needs --model; the exact denoiser runs on the CPU only).
    Gpu,
}

/// Arguments of `mirage sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Where to run: the CPU cores or the GPU (same noise, same outputs within design.md §4).
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Trained model (.mrg). Without it, the exact posterior-mean denoiser of --dataset.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Dataset whose modes define the exact denoiser and the ">4σ" summary.
    #[arg(long, default_value = "grid25")]
    pub dataset: String,
    /// Number of samples.
    #[arg(short, long, default_value_t = 10_000)]
    pub n: usize,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampler options.
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Worker threads (results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Samples per chunk (bounds memory).
    #[arg(long, default_value_t = 512)]
    pub chunk: usize,
    /// Output CSV: one row per sample, x0..x{D−1}, hal.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Fraction of samples farther than `k`σ from every mode of `mixture` (σ of a mode = its
/// largest per-dimension std).
#[must_use]
pub fn fraction_beyond(mixture: &Mixture, out: &SampleOutput, k: f32) -> f64 {
    let d = out.dim;
    let n = out.hal.len().max(1);
    let far = out
        .samples
        .chunks_exact(d)
        .filter(|x| {
            (0..mixture.components()).all(|c| {
                let sigma = mixture.std(c).iter().fold(0.0f32, |m, &s| m.max(s));
                let dist2: f32 = x
                    .iter()
                    .zip(mixture.mean(c))
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                // Farther than kσ, or NaN (a non-finite sample is far from everything).
                !matches!(
                    dist2.sqrt().partial_cmp(&(k * sigma)),
                    Some(Ordering::Less | Ordering::Equal)
                )
            })
        })
        .count();
    far as f64 / n as f64
}

/// CSV text of samples and Hal scores (`x0,…,x{D−1},hal`; shortest round-trip floats).
#[must_use]
pub fn to_csv(out: &SampleOutput) -> String {
    let mut s = String::with_capacity(out.hal.len() * 16 * (out.dim + 1));
    for j in 0..out.dim {
        let _ = write!(s, "x{j},");
    }
    s.push_str("hal\n");
    for (x, h) in out.samples.chunks_exact(out.dim).zip(&out.hal) {
        for v in x {
            let _ = write!(s, "{v},");
        }
        let _ = writeln!(s, "{h}");
    }
    s
}

/// A progress bar over `n` samples on stderr (hidden when not a terminal or `quiet`).
#[must_use]
pub fn sample_bar(n: usize, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} samples  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs `mirage sample`.
///
/// # Errors
/// Unreadable or corrupt model file (named), unknown dataset, invalid sampler options,
/// unwritable output.
pub fn run(args: &SampleArgs) -> Result<()> {
    ensure!(args.n > 0, "-n must be at least 1");
    ensure!(
        args.threads >= 1 && args.chunk >= 1,
        "--threads and --chunk must be at least 1"
    );
    let cfg = args.sampler.config()?;
    let mixture = parse_mixture(&args.dataset)?;
    let opts = SampleOptions {
        seed: args.seed,
        first: 0,
        hal_window: args.sampler.window,
        threads: args.threads,
        chunk: args.chunk,
    };
    #[cfg(not(feature = "gpu"))]
    if args.backend == Backend::Gpu {
        return Err(super::without_gpu());
    }
    if args.backend == Backend::Gpu && args.model.is_none() {
        bail!(
            "--backend gpu needs --model FILE.mrg (the exact mixture denoiser runs on the CPU only)"
        );
    }
    let bar = sample_bar(args.n, args.quiet);
    let (out, source) = match &args.model {
        Some(path) => {
            let name = path.display().to_string();
            let bytes = read_aligned(path)?;
            let model = bytes.model(&name)?;
            let header = *model.header();
            let (tables, steps) = args.sampler.tables(&header.beta, header.train_steps)?;
            let sched = Schedule::from_tables(&tables, steps)
                .map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
            let mlp = crate::train::export::f32_mlp(&model, &name)?;
            let layout = Layout::new(header.shape)?;
            let cfg = SamplerConfig {
                prediction: header.prediction,
                ..cfg
            };
            if args.backend == Backend::Gpu {
                bar.finish_and_clear();
                let out = sample_gpu(&mlp, &sched, &cfg, args)?;
                (out, format!("model {name} on the GPU"))
            } else {
                let den = BatchDenoiser::Mlp {
                    layout: &layout,
                    params: mlp.params(),
                    prediction: header.prediction,
                };
                (
                    sample_batch(&den, &sched, &cfg, args.n, &opts, Some(&bar))?,
                    format!("model {name}"),
                )
            }
        }
        None => {
            let (tables, steps) = args.sampler.tables(&BetaSchedule::PAPER, 1000)?;
            let sched = Schedule::from_tables(&tables, steps)
                .map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
            let gmm = ExactGmm::new(
                mixture.dim(),
                mixture.means(),
                mixture.stds(),
                mixture.weights(),
                sched,
                Prediction::Epsilon,
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "dataset {}: cannot build the exact denoiser: {e}",
                    args.dataset
                )
            })?;
            let den = BatchDenoiser::PerSample(&gmm);
            (
                sample_batch(&den, &sched, &cfg, args.n, &opts, Some(&bar))?,
                format!("exact GMM of {}", args.dataset),
            )
        }
    };
    bar.finish_and_clear();
    if let Some(path) = &args.out {
        write_atomic(path, to_csv(&out).as_bytes())?;
    }
    print_summary(&source, &args.dataset, &mixture, &out)?;
    Ok(())
}

/// Samples `args.n` trajectories of `mlp` on the GPU, sample indices 0..n, so each
/// sample's noise equals the CPU path's.
#[cfg(feature = "gpu")]
fn sample_gpu(
    mlp: &mirage_core::Mlp<'_>,
    sched: &Schedule<'_>,
    cfg: &SamplerConfig,
    args: &SampleArgs,
) -> Result<SampleOutput> {
    let ctx = mirage_gpu::GpuContext::new().context("GPU backend")?;
    let sampler = mirage_gpu::GpuSampler::new(&ctx, mlp, sched, cfg, args.sampler.window)
        .context("GPU backend")?;
    let out = sampler
        .sample(args.seed, 0, args.n)
        .context("GPU sampling")?;
    Ok(SampleOutput {
        dim: mlp.shape().dim,
        samples: out.samples,
        hal: out.hal,
    })
}

/// Without the `gpu` feature `run` refuses `--backend gpu` before this is reached.
#[cfg(not(feature = "gpu"))]
fn sample_gpu(
    _mlp: &mirage_core::Mlp<'_>,
    _sched: &Schedule<'_>,
    _cfg: &SamplerConfig,
    _args: &SampleArgs,
) -> Result<SampleOutput> {
    Err(super::without_gpu())
}

fn print_summary(source: &str, dataset: &str, mixture: &Mixture, out: &SampleOutput) -> Result<()> {
    println!("samples      {} ({source})", out.hal.len());
    if mixture.dim() == out.dim {
        println!(
            "beyond 4σ    {:.3e} of samples farther than 4σ from every mode of {dataset}",
            fraction_beyond(mixture, out, 4.0)
        );
    } else {
        println!(
            "beyond 4σ    n/a (dataset {dataset} has dimension {}, the model {})",
            mixture.dim(),
            out.dim
        );
    }
    let non_finite = out.hal.iter().filter(|h| !h.is_finite()).count();
    if non_finite == out.hal.len() {
        bail!("every trajectory became non-finite");
    }
    let finite: Vec<f32> = out.hal.iter().copied().filter(|h| h.is_finite()).collect();
    let q = quantiles(&finite, &[0.5, 0.9, 0.96, 0.99, 1.0]).context("Hal quantiles")?;
    println!(
        "Hal          median {:.3e}  q90 {:.3e}  q96 {:.3e}  q99 {:.3e}  max {:.3e}  non-finite {non_finite}",
        q[0], q[1], q[2], q[3], q[4]
    );
    Ok(())
}
