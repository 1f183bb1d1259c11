//! Every streaming detector over the batched sampler: Hal at several windows K, path length
//! (D15), the posterior-variance score (D11–D14) in any number of configurations, and
//! optionally each detector read at earlier steps s (`--by-step`).
//!
//! The sampling loop is the one of [`crate::sample`] (same noise streams, same core `step`,
//! the MLP through batched GEMMs with the time branch once per step), so the samples and the
//! Hal scores equal `sample_batch`'s bit for bit; the detectors are core's
//! [`Hal`], [`PathLength`] and [`PosteriorVariance`] fed after every step. The posterior
//! variance of the MLP takes its JVP from [`BatchJvpMlp`] (a block of 64 samples per call,
//! tangents as extra GEMM rows); other denoisers use their own [`Denoiser::predict_jvp`].
//!
//! Timing: each detector's `observe` calls and the sampling work (model + step) are timed
//! separately per chunk and summed over threads (thread-seconds), so overhead ratios do not
//! depend on the thread count.
//!
//! By step s (respaced index, s = 0 is the last step): Hal(s) and path(s) over the K steps
//! s+K−1 … s, computed in f64 from the stored x̂0 history (for s = 0 they are the streamed
//! scores' batch definition), and the posterior variance of the x_t of step s.

use std::time::Instant;

use anyhow::{Result, bail, ensure};

use super::jvp::BatchJvpMlp;
use crate::sample::BatchDenoiser;
use crate::train::net::{Acts, BatchMlp, TimeBranch, TimeRows};
use mirage_core::Denoiser;
use mirage_core::detector::posterior_variance::{
    PostVarConfig, Scale, TraceEstimator, posterior_variance, scratch_len,
};
use mirage_core::detector::{Detector, Hal, PathLength, PosteriorVariance};
use mirage_core::noise::{STREAM_INIT, STREAM_STEP, fill_normals};
use mirage_core::sampler::{SamplerConfig, step};
use mirage_core::schedule::{Schedule, Table};

fn core_err(e: mirage_core::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Which detectors to run.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// Hal windows K (one Hal per K).
    pub hal_windows: Vec<usize>,
    /// Path-length window K (0 = no path length).
    pub path_window: usize,
    /// Posterior-variance configurations.
    pub postvar: Vec<PostVarConfig>,
    /// Steps s at which every detector is also read (empty = none).
    pub by_step: Vec<usize>,
    /// Window K of Hal and path length in the by-step reading.
    pub by_step_window: usize,
}

/// Per-step readings of every detector: `[grid index][sample]`.
#[derive(Clone, Debug, Default)]
pub struct ByStep {
    /// The steps s.
    pub steps: Vec<usize>,
    /// Hal over s+K−1 … s.
    pub hal: Vec<Vec<f32>>,
    /// Path length over s+K−1 … s.
    pub path: Vec<Vec<f32>>,
    /// Exact tr J at step s (Hutchinson with 1 probe above 64 dimensions).
    pub postvar: Vec<Vec<f32>>,
}

/// Thread-seconds spent.
#[derive(Clone, Debug, Default)]
pub struct Timing {
    /// Model evaluations and sampler steps.
    pub sampling_s: f64,
    /// Per Hal window.
    pub hal_s: Vec<f64>,
    /// Path length.
    pub path_s: f64,
    /// Per posterior-variance configuration.
    pub postvar_s: Vec<f64>,
}

/// Samples and every detector's scores.
#[derive(Clone, Debug, Default)]
pub struct DetectOutput {
    /// Data dimension.
    pub dim: usize,
    /// Final samples, `[n, dim]`.
    pub samples: Vec<f32>,
    /// Hal per window (order of [`DetectConfig::hal_windows`]), `[n]` each.
    pub hal: Vec<Vec<f32>>,
    /// Path length `[n]` (empty without a window).
    pub path: Vec<f32>,
    /// Posterior-variance trace per configuration, `[n]` each.
    pub postvar_trace: Vec<Vec<f32>>,
    /// Its Frobenius variant.
    pub postvar_frobenius: Vec<Vec<f32>>,
    /// Per-step readings (when requested).
    pub by_step: Option<ByStep>,
    /// Time spent.
    pub timing: Timing,
}

/// Sampling options (see [`crate::sample::SampleOptions`]).
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Noise seed.
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
    /// Samples per chunk.
    pub chunk: usize,
}

/// Samples `n` trajectories from `den` and runs every detector of `dc` on them.
///
/// # Errors
/// Invalid config (window 0, postvar estimator rejected by core, prediction mismatch),
/// more than 2³² samples, any core error during sampling.
pub fn run_detectors(
    den: &BatchDenoiser<'_>,
    schedule: &Schedule<'_>,
    cfg: &SamplerConfig,
    n: usize,
    dc: &DetectConfig,
    opts: &RunOptions,
) -> Result<DetectOutput> {
    cfg.validate().map_err(core_err)?;
    ensure!(
        cfg.prediction == den.prediction(),
        "the sampler is set for {:?} prediction but the model predicts {:?}",
        cfg.prediction,
        den.prediction()
    );
    ensure!(
        opts.chunk > 0 && opts.threads > 0,
        "chunk and threads must be ≥ 1"
    );
    ensure!(
        n > 0 && n as u64 <= u64::from(u32::MAX),
        "n must be in 1..2^32"
    );
    ensure!(
        dc.hal_windows.iter().all(|&k| k > 0),
        "Hal windows must be ≥ 1"
    );
    ensure!(
        dc.by_step.is_empty() || dc.by_step_window > 0,
        "the by-step window must be ≥ 1"
    );
    let dim = den.dim();
    for pv in &dc.postvar {
        pv.estimator.validate(dim).map_err(core_err)?;
    }
    if let Some(&s) = dc.by_step.iter().max() {
        ensure!(
            s + dc.by_step_window <= schedule.steps(),
            "by-step reading at s = {s} with K = {} needs {} steps, the sampler has {}",
            dc.by_step_window,
            s + dc.by_step_window,
            schedule.steps()
        );
    }
    let model_t: Vec<u32> = schedule
        .table(Table::ModelT)
        .iter()
        .map(|&t| t as u32)
        .collect();
    let (time, jvp_mlp) = match den {
        BatchDenoiser::Mlp {
            layout,
            params,
            prediction,
        } => {
            ensure!(params.len() == layout.len, "parameter vector length");
            let mlp = BatchJvpMlp::new(layout, params, *prediction).map_err(core_err)?;
            (
                Some(TimeBranch::compute(layout, params, &model_t)),
                Some(mlp),
            )
        }
        BatchDenoiser::PerSample(_) => (None, None),
    };
    let jvp_den: &(dyn Denoiser + Sync) = match (den, jvp_mlp.as_ref()) {
        (BatchDenoiser::PerSample(d), _) => *d,
        (BatchDenoiser::Mlp { .. }, Some(m)) => m,
        _ => bail!("internal: no JVP denoiser"),
    };
    let chunk = opts.chunk.min(n);
    let starts: Vec<usize> = (0..n).step_by(chunk).collect();
    let per_thread = starts.len().div_ceil(opts.threads).max(1);
    let ctx = Ctx {
        den,
        jvp_den,
        schedule,
        cfg,
        time: time.as_ref(),
        dc,
        seed: opts.seed,
        dim,
    };
    let results: Vec<Result<Vec<ChunkOut>>> = std::thread::scope(|s| {
        let handles: Vec<_> = starts
            .chunks(per_thread)
            .map(|mine| {
                let ctx = &ctx;
                s.spawn(move || -> Result<Vec<ChunkOut>> {
                    let mut acts = match ctx.den {
                        BatchDenoiser::Mlp { layout, .. } => Some(Acts::new(layout, chunk, false)),
                        BatchDenoiser::PerSample(_) => None,
                    };
                    mine.iter()
                        .map(|&start| run_chunk(ctx, start, (start + chunk).min(n), acts.as_mut()))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a detector thread panicked")))
            })
            .collect()
    });
    let mut out = DetectOutput {
        dim,
        hal: vec![Vec::with_capacity(n); dc.hal_windows.len()],
        postvar_trace: vec![Vec::with_capacity(n); dc.postvar.len()],
        postvar_frobenius: vec![Vec::with_capacity(n); dc.postvar.len()],
        timing: Timing {
            hal_s: vec![0.0; dc.hal_windows.len()],
            postvar_s: vec![0.0; dc.postvar.len()],
            ..Timing::default()
        },
        by_step: (!dc.by_step.is_empty()).then(|| ByStep {
            steps: dc.by_step.clone(),
            hal: vec![Vec::with_capacity(n); dc.by_step.len()],
            path: vec![Vec::with_capacity(n); dc.by_step.len()],
            postvar: vec![Vec::with_capacity(n); dc.by_step.len()],
        }),
        ..DetectOutput::default()
    };
    for r in results {
        for c in r? {
            out.samples.extend_from_slice(&c.samples);
            for (dst, src) in out.hal.iter_mut().zip(&c.hal) {
                dst.extend_from_slice(src);
            }
            out.path.extend_from_slice(&c.path);
            for (dst, src) in out.postvar_trace.iter_mut().zip(&c.postvar_trace) {
                dst.extend_from_slice(src);
            }
            for (dst, src) in out.postvar_frobenius.iter_mut().zip(&c.postvar_frobenius) {
                dst.extend_from_slice(src);
            }
            out.timing.sampling_s += c.timing.sampling_s;
            out.timing.path_s += c.timing.path_s;
            for (dst, src) in out.timing.hal_s.iter_mut().zip(&c.timing.hal_s) {
                *dst += src;
            }
            for (dst, src) in out.timing.postvar_s.iter_mut().zip(&c.timing.postvar_s) {
                *dst += src;
            }
            if let (Some(b), Some(cb)) = (out.by_step.as_mut(), c.by_step.as_ref()) {
                for (dst, src) in b.hal.iter_mut().zip(&cb.hal) {
                    dst.extend_from_slice(src);
                }
                for (dst, src) in b.path.iter_mut().zip(&cb.path) {
                    dst.extend_from_slice(src);
                }
                for (dst, src) in b.postvar.iter_mut().zip(&cb.postvar) {
                    dst.extend_from_slice(src);
                }
            }
        }
    }
    Ok(out)
}

struct Ctx<'a> {
    den: &'a BatchDenoiser<'a>,
    jvp_den: &'a (dyn Denoiser + Sync),
    schedule: &'a Schedule<'a>,
    cfg: &'a SamplerConfig,
    time: Option<&'a TimeBranch>,
    dc: &'a DetectConfig,
    seed: u64,
    dim: usize,
}

type ChunkOut = DetectOutput;

/// One chunk of samples `start..end` through every step.
fn run_chunk(ctx: &Ctx<'_>, start: usize, end: usize, acts: Option<&mut Acts>) -> Result<ChunkOut> {
    let (dim, rows) = (ctx.dim, end - start);
    let len = rows * dim;
    let dc = ctx.dc;
    let schedule = ctx.schedule;
    let first = start as u32;
    let mut x = vec![0.0f32; len];
    let mut x_prev = vec![0.0f32; len];
    let mut x0 = vec![0.0f32; len];
    let mut model_out = vec![0.0f32; len];
    let mut noise = vec![0.0f32; len];
    let mut den_scratch = match ctx.den {
        BatchDenoiser::PerSample(d) => vec![0.0f32; d.scratch_len()],
        BatchDenoiser::Mlp { .. } => Vec::new(),
    };
    let mut acts = acts;
    let mut hal_states: Vec<Vec<f32>> = dc
        .hal_windows
        .iter()
        .map(|_| vec![0.0f32; Hal::state_len(rows, dim)])
        .collect();
    let mut hals = hal_states
        .iter_mut()
        .zip(&dc.hal_windows)
        .map(|(s, &k)| Hal::new(k, dim, s).map_err(core_err))
        .collect::<Result<Vec<_>>>()?;
    let mut path_state = vec![0.0f32; PathLength::state_len(rows, dim)];
    let mut path = if dc.path_window > 0 {
        Some(PathLength::new(dc.path_window, dim, &mut path_state).map_err(core_err)?)
    } else {
        None
    };
    let jvp_scratch_len = scratch_len(ctx.jvp_den.scratch_len(), dim, rows);
    let mut pv_states: Vec<(Vec<f32>, Vec<f32>)> = dc
        .postvar
        .iter()
        .map(|_| {
            (
                vec![0.0f32; PosteriorVariance::<dyn Denoiser + Sync>::state_len(rows)],
                vec![0.0f32; jvp_scratch_len],
            )
        })
        .collect();
    let mut pvs = pv_states
        .iter_mut()
        .zip(&dc.postvar)
        .map(|((state, scratch), &pc)| {
            PosteriorVariance::new(ctx.jvp_den, *schedule, pc, first, state, scratch)
                .map_err(core_err)
        })
        .collect::<Result<Vec<_>>>()?;
    // By-step: x̂0 history of steps 0..S+K−1 and the per-step postvar.
    let history_steps = dc
        .by_step
        .iter()
        .max()
        .map_or(0, |&s| s + dc.by_step_window);
    let mut history = vec![0.0f32; history_steps * len];
    let mut by_postvar: Vec<Vec<f32>> = vec![Vec::new(); dc.by_step.len()];
    let by_estimator = if dim <= mirage_core::detector::posterior_variance::MAX_EXACT_DIM {
        TraceEstimator::Exact
    } else {
        TraceEstimator::Hutchinson {
            probes: 1,
            seed: ctx.seed,
        }
    };
    let mut by_scratch = if dc.by_step.is_empty() {
        Vec::new()
    } else {
        vec![0.0f32; jvp_scratch_len]
    };

    let mut timing = Timing {
        hal_s: vec![0.0; hals.len()],
        postvar_s: vec![0.0; pvs.len()],
        ..Timing::default()
    };
    let t0 = Instant::now();
    for (r, xs) in x.chunks_exact_mut(dim).enumerate() {
        fill_normals(ctx.seed, STREAM_INIT, first + r as u32, 0, xs);
    }
    timing.sampling_s += t0.elapsed().as_secs_f64();
    for i in (0..schedule.steps()).rev() {
        let t0 = Instant::now();
        let model_ti = schedule.coefs(i).map_err(core_err)?.model_t;
        match (ctx.den, ctx.time, acts.as_deref_mut()) {
            (BatchDenoiser::Mlp { layout, params, .. }, Some(time), Some(acts)) => {
                BatchMlp::new(layout, params).forward(
                    &x,
                    rows,
                    time,
                    TimeRows::Shared(i as u32),
                    acts,
                    &mut model_out,
                );
            }
            (BatchDenoiser::PerSample(d), _, _) => {
                for (xs, os) in x.chunks_exact(dim).zip(model_out.chunks_exact_mut(dim)) {
                    d.predict(model_ti, xs, os, &mut den_scratch)
                        .map_err(core_err)?;
                }
            }
            _ => bail!("internal: MLP sampling without its time branch"),
        }
        let step_noise: &[f32] = if ctx.cfg.needs_noise(i) {
            for (r, z) in noise.chunks_exact_mut(dim).enumerate() {
                fill_normals(ctx.seed, STREAM_STEP, first + r as u32, i as u32, z);
            }
            &noise
        } else {
            &[]
        };
        step(
            ctx.cfg,
            schedule,
            i,
            &x,
            &model_out,
            step_noise,
            &mut x_prev,
            &mut x0,
        )
        .map_err(core_err)?;
        timing.sampling_s += t0.elapsed().as_secs_f64();
        for (h, t) in hals.iter_mut().zip(timing.hal_s.iter_mut()) {
            let t0 = Instant::now();
            h.observe(i, &x, &x0).map_err(core_err)?;
            *t += t0.elapsed().as_secs_f64();
        }
        if let Some(p) = path.as_mut() {
            let t0 = Instant::now();
            p.observe(i, &x, &x0).map_err(core_err)?;
            timing.path_s += t0.elapsed().as_secs_f64();
        }
        for (p, t) in pvs.iter_mut().zip(timing.postvar_s.iter_mut()) {
            let t0 = Instant::now();
            p.observe(i, &x, &x0).map_err(core_err)?;
            *t += t0.elapsed().as_secs_f64();
        }
        if i < history_steps {
            history[i * len..(i + 1) * len].copy_from_slice(&x0);
        }
        for (g, &s) in dc.by_step.iter().enumerate() {
            if s == i {
                let mut tr = vec![0.0f32; rows];
                let mut fr = vec![0.0f32; rows];
                posterior_variance(
                    ctx.jvp_den,
                    schedule,
                    i,
                    &x,
                    by_estimator,
                    Scale::Jacobian,
                    first,
                    &mut tr,
                    &mut fr,
                    &mut by_scratch,
                )
                .map_err(core_err)?;
                // A non-finite x̂0 flags the sample, as in the streaming detector.
                for (t, x0s) in tr.iter_mut().zip(x0.chunks_exact(dim)) {
                    if !x0s.iter().all(|v| v.is_finite()) {
                        *t = f32::INFINITY;
                    }
                }
                by_postvar[g] = tr;
            }
        }
        std::mem::swap(&mut x, &mut x_prev);
    }
    let mut out = DetectOutput {
        dim,
        samples: x,
        timing,
        ..DetectOutput::default()
    };
    for h in &hals {
        let mut s = vec![0.0f32; rows];
        h.scores(&mut s).map_err(core_err)?;
        out.hal.push(s);
    }
    if let Some(p) = &path {
        let mut s = vec![0.0f32; rows];
        p.scores(&mut s).map_err(core_err)?;
        out.path = s;
    }
    for p in &pvs {
        let (mut t, mut f) = (vec![0.0f32; rows], vec![0.0f32; rows]);
        p.scores(&mut t, &mut f).map_err(core_err)?;
        out.postvar_trace.push(t);
        out.postvar_frobenius.push(f);
    }
    if !dc.by_step.is_empty() {
        let k = dc.by_step_window;
        let mut b = ByStep {
            steps: dc.by_step.clone(),
            postvar: by_postvar,
            ..ByStep::default()
        };
        for &s in &dc.by_step {
            let (hal, path) = window_scores(&history, len, dim, s, k);
            b.hal.push(hal);
            b.path.push(path);
        }
        out.by_step = Some(b);
    }
    Ok(out)
}

/// Hal and path length over steps s+K−1 … s of the stored x̂0 history (`history[i·len..]`
/// = x̂0 of step i), in f64: Hal = mean over dims of the population variance, path = Σ of the
/// Euclidean distances between consecutive steps. Non-finite ⇒ +∞.
#[must_use]
pub fn window_scores(
    history: &[f32],
    len: usize,
    dim: usize,
    s: usize,
    k: usize,
) -> (Vec<f32>, Vec<f32>) {
    let rows = len / dim;
    let at = |i: usize, r: usize, d: usize| f64::from(history[i * len + r * dim + d]);
    let mut hal = Vec::with_capacity(rows);
    let mut path = Vec::with_capacity(rows);
    for r in 0..rows {
        let mut var_sum = 0.0f64;
        for d in 0..dim {
            let mean = (s..s + k).map(|i| at(i, r, d)).sum::<f64>() / k as f64;
            var_sum += (s..s + k)
                .map(|i| (at(i, r, d) - mean).powi(2))
                .sum::<f64>()
                / k as f64;
        }
        let mut length = 0.0f64;
        for i in s..s + k - 1 {
            length += (0..dim)
                .map(|d| (at(i, r, d) - at(i + 1, r, d)).powi(2))
                .sum::<f64>()
                .sqrt();
        }
        let h = var_sum / dim as f64;
        hal.push(if h.is_finite() {
            h as f32
        } else {
            f32::INFINITY
        });
        path.push(if length.is_finite() {
            length as f32
        } else {
            f32::INFINITY
        });
    }
    (hal, path)
}
