//! Batched CPU sampling with the Hal detector (papers.md §1.2 "Sampler", "Hal(x)").
//!
//! For every sample n and reverse step i = S−1…0: ε̂ = model(x_t, τ_i); core's
//! `sampler::step` gives x_{t−1} and x̂0 (elementwise over the whole chunk), and core's
//! [`Hal`] streams x̂0 over the last K steps: Hal = mean_d Var_j x̂0_{j,d}.
//!
//! Noise is core's counter-based `fill_normals(seed, stream, sample index, step)`, exactly
//! as `trajectory::sample_trajectory` draws it, so the result of a sample does not depend
//! on the batch size, the chunking or the thread count. The batch is cut into chunks of
//! at most `chunk` samples (bounded memory), each run through all steps while it stays in
//! cache; the threads take contiguous runs of chunks.
//!
//! The MLP path evaluates the network for a whole chunk with GEMMs and computes the time
//! branch (embedding → t_proj → LReLU → enc) once per step for everyone; any other
//! [`Denoiser`] (e.g. core's `ExactGmm`) is called per sample.

use anyhow::{Result, bail, ensure};
use indicatif::ProgressBar;

use crate::train::Layout;
use crate::train::net::{Acts, BatchMlp, TimeBranch, TimeRows};
use mirage_core::detector::Detector;
use mirage_core::noise::{STREAM_INIT, STREAM_STEP, fill_normals};
use mirage_core::sampler::{Prediction, SamplerConfig, step};
use mirage_core::schedule::{Schedule, Table};
use mirage_core::{Denoiser, Hal};

/// The model a batch is sampled from.
#[derive(Clone, Copy)]
pub enum BatchDenoiser<'a> {
    /// The paper's MLP in core's flat layout, evaluated with batched GEMMs.
    Mlp {
        /// Parameter layout (shape).
        layout: &'a Layout,
        /// Flat parameters.
        params: &'a [f32],
        /// What the network predicts.
        prediction: Prediction,
    },
    /// Any core denoiser, called per sample.
    PerSample(&'a (dyn Denoiser + Sync)),
}

impl BatchDenoiser<'_> {
    /// Data dimension.
    #[must_use]
    pub fn dim(&self) -> usize {
        match self {
            Self::Mlp { layout, .. } => layout.shape.dim,
            Self::PerSample(d) => d.dim(),
        }
    }

    /// What the model predicts.
    #[must_use]
    pub fn prediction(&self) -> Prediction {
        match self {
            Self::Mlp { prediction, .. } => *prediction,
            Self::PerSample(d) => d.prediction(),
        }
    }
}

/// Sampling options that do not change the math of one sample (except the seed and the
/// Hal window).
#[derive(Clone, Copy, Debug)]
pub struct SampleOptions {
    /// Noise seed.
    pub seed: u64,
    /// Index of the first sample (samples are numbered `first..first + n`).
    pub first: u32,
    /// Hal window K (the last K reverse steps).
    pub hal_window: usize,
    /// Worker threads (≥ 1).
    pub threads: usize,
    /// Samples per chunk (bounds memory; ≥ 1).
    pub chunk: usize,
}

impl SampleOptions {
    /// Seed `seed`, K = 10, two threads, chunks of 512.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            first: 0,
            hal_window: Hal::PAPER_WINDOW,
            threads: 2,
            chunk: 512,
        }
    }
}

/// Samples (`[n, dim]`, row-major) and their Hal scores (`[n]`).
#[derive(Clone, Debug, PartialEq)]
pub struct SampleOutput {
    /// Data dimension.
    pub dim: usize,
    /// The final samples x_0.
    pub samples: Vec<f32>,
    /// Hal per sample (+∞ if x̂0 became non-finite).
    pub hal: Vec<f32>,
}

fn core_err(e: mirage_core::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Per-thread buffers.
struct Work {
    x: Vec<f32>,
    x_prev: Vec<f32>,
    x0_hat: Vec<f32>,
    model_out: Vec<f32>,
    noise: Vec<f32>,
    hal_state: Vec<f32>,
    scratch: Vec<f32>,
    acts: Option<Acts>,
}

/// Draws `n` samples with `cfg` on `schedule` (respaced; its `ModelT` table gives the
/// model timesteps) and scores them with Hal. `progress` (if any) advances by samples.
///
/// # Errors
/// Invalid sampler config, a config whose prediction type differs from the model's, n
/// beyond the u32 sample index, or any core error during the steps.
pub fn sample_batch(
    den: &BatchDenoiser<'_>,
    schedule: &Schedule<'_>,
    cfg: &SamplerConfig,
    n: usize,
    opts: &SampleOptions,
    progress: Option<&ProgressBar>,
) -> Result<SampleOutput> {
    cfg.validate().map_err(core_err)?;
    ensure!(
        cfg.prediction == den.prediction(),
        "the sampler is set for {:?} prediction but the model predicts {:?}",
        cfg.prediction,
        den.prediction()
    );
    ensure!(
        opts.chunk > 0 && opts.threads > 0,
        "chunk size and thread count must be at least 1"
    );
    ensure!(
        (opts.first as u64) + (n as u64) <= u64::from(u32::MAX) + 1,
        "at most 2^32 samples can be indexed"
    );
    let dim = den.dim();
    let model_t: Vec<u32> = schedule
        .table(Table::ModelT)
        .iter()
        .map(|&t| t as u32)
        .collect();
    // The MLP's time branch for every step, computed once for all chunks.
    let time = match den {
        BatchDenoiser::Mlp { layout, params, .. } => {
            ensure!(
                params.len() == layout.len,
                "parameter vector length {} ≠ {}",
                params.len(),
                layout.len
            );
            Some(TimeBranch::compute(layout, params, &model_t))
        }
        BatchDenoiser::PerSample(_) => None,
    };
    let mut samples = vec![0.0f32; n * dim];
    let mut hal = vec![0.0f32; n];
    let chunk = opts.chunk.min(n.max(1));
    let chunks = n.div_ceil(chunk);
    let per_thread = chunks.div_ceil(opts.threads).max(1);

    let run = |sample_out: &mut [f32], hal_out: &mut [f32], first: usize| -> Result<()> {
        let cap = chunk.min(hal_out.len());
        let mut work = Work {
            x: vec![0.0; cap * dim],
            x_prev: vec![0.0; cap * dim],
            x0_hat: vec![0.0; cap * dim],
            model_out: vec![0.0; cap * dim],
            noise: vec![0.0; cap * dim],
            hal_state: vec![0.0; Hal::state_len(cap, dim)],
            scratch: match den {
                BatchDenoiser::PerSample(d) => vec![0.0; d.scratch_len()],
                BatchDenoiser::Mlp { .. } => Vec::new(),
            },
            acts: match den {
                BatchDenoiser::Mlp { layout, .. } => Some(Acts::new(layout, cap, false)),
                BatchDenoiser::PerSample(_) => None,
            },
        };
        for (c, (xs, hs)) in sample_out
            .chunks_mut(chunk * dim)
            .zip(hal_out.chunks_mut(chunk))
            .enumerate()
        {
            run_chunk(
                den,
                schedule,
                cfg,
                &model_t,
                time.as_ref(),
                opts,
                first + c * chunk,
                xs,
                hs,
                &mut work,
            )?;
            if let Some(p) = progress {
                p.inc(hs.len() as u64);
            }
        }
        Ok(())
    };

    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        let mut first_job = None;
        for (j, (xs, hs)) in samples
            .chunks_mut(per_thread * chunk * dim)
            .zip(hal.chunks_mut(per_thread * chunk))
            .enumerate()
        {
            let first = opts.first as usize + j * per_thread * chunk;
            if j == 0 {
                first_job = Some((xs, hs, first));
            } else {
                let run = &run;
                handles.push(s.spawn(move || run(xs, hs, first)));
            }
        }
        let mut out = Vec::new();
        if let Some((xs, hs, first)) = first_job {
            out.push(run(xs, hs, first));
        }
        for h in handles {
            out.push(
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a sampling thread panicked"))),
            );
        }
        out
    });
    for r in results {
        r?;
    }
    Ok(SampleOutput { dim, samples, hal })
}

/// Runs one chunk of samples (indices `start..start + hal_out.len()`) through every step,
/// writing x_0 into `x_out` and the Hal scores into `hal_out`.
#[allow(clippy::too_many_arguments)]
fn run_chunk(
    den: &BatchDenoiser<'_>,
    schedule: &Schedule<'_>,
    cfg: &SamplerConfig,
    model_t: &[u32],
    time: Option<&TimeBranch>,
    opts: &SampleOptions,
    start: usize,
    x_out: &mut [f32],
    hal_out: &mut [f32],
    work: &mut Work,
) -> Result<()> {
    let dim = den.dim();
    let rows = hal_out.len();
    let len = rows * dim;
    let mut hal = Hal::new(
        opts.hal_window,
        dim,
        &mut work.hal_state[..Hal::state_len(rows, dim)],
    )
    .map_err(core_err)?;
    for (r, x) in work.x[..len].chunks_exact_mut(dim).enumerate() {
        fill_normals(opts.seed, STREAM_INIT, (start + r) as u32, 0, x);
    }
    for i in (0..schedule.steps()).rev() {
        let x = &work.x[..len];
        let out = &mut work.model_out[..len];
        match (den, time, work.acts.as_mut()) {
            (BatchDenoiser::Mlp { layout, params, .. }, Some(time), Some(acts)) => {
                BatchMlp::new(layout, params).forward(
                    x,
                    rows,
                    time,
                    TimeRows::Shared(i as u32),
                    acts,
                    out,
                );
            }
            (BatchDenoiser::PerSample(d), _, _) => {
                for (xs, os) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
                    d.predict(model_t[i], xs, os, &mut work.scratch)
                        .map_err(core_err)?;
                }
            }
            _ => bail!("internal: MLP sampling without its time branch"),
        }
        let noise: &[f32] = if cfg.needs_noise(i) {
            for (r, z) in work.noise[..len].chunks_exact_mut(dim).enumerate() {
                fill_normals(opts.seed, STREAM_STEP, (start + r) as u32, i as u32, z);
            }
            &work.noise[..len]
        } else {
            &[]
        };
        step(
            cfg,
            schedule,
            i,
            x,
            out,
            noise,
            &mut work.x_prev[..len],
            &mut work.x0_hat[..len],
        )
        .map_err(core_err)?;
        hal.observe(i, x, &work.x0_hat[..len]).map_err(core_err)?;
        std::mem::swap(&mut work.x, &mut work.x_prev);
    }
    hal.scores(hal_out).map_err(core_err)?;
    x_out.copy_from_slice(&work.x[..len]);
    Ok(())
}

#[cfg(test)]
mod tests;
