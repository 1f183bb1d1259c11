//! Batched reverse chains on core's sampler, for the exposure-bias tools (papers.md §2.2).
//!
//! A chain runs core's `sampler::step` over a respaced schedule for n samples, split into
//! contiguous blocks over `std::thread::scope` workers. Noise follows core's trajectory
//! convention exactly — step i of sample s uses `fill_normals(seed, STREAM_STEP, s, i, ·)` and
//! x_T comes from `fill_normals(seed, STREAM_INIT, s, 0, ·)` — so a chain started from pure noise
//! reproduces `mirage_core::sample_trajectory` bit for bit, for any thread count. An observer sees
//! every step (i, x_t, ε_θ, x_{i−1}, x̂0) block by block.

use anyhow::{Result, anyhow, ensure};
use mirage_core::noise::{STREAM_INIT, STREAM_STEP, fill_normals};
use mirage_core::sampler::{Prediction, SamplerConfig, step};
use mirage_core::schedule::Schedule;
use mirage_core::{Denoiser, Error};

use crate::analysis::paths::thread_count;

/// One step of a block of samples, as seen by an observer.
pub struct StepView<'a> {
    /// Respaced step index (counting down to 0).
    pub i: usize,
    /// Global index of the block's first sample.
    pub first_sample: usize,
    pub x_t: &'a [f32],
    /// The denoiser's raw output (ε̂, x̂0 or v̂ per its prediction).
    pub model_out: &'a [f32],
    pub x_prev: &'a [f32],
    pub x0_hat: &'a [f32],
}

/// Converts a core error into an anyhow error naming the context.
pub fn core_err(context: &'static str) -> impl Fn(Error) -> anyhow::Error {
    move |e| anyhow!("{context}: {e}")
}

/// Runs the reverse chain for the samples in `x` (n × dim, overwritten with the outputs). With
/// `x_init = None`, x_T is drawn from core's init stream; otherwise `x` already holds x_T.
/// `observe` is called for every block and step; its per-block accumulators are returned in
/// block order (one per worker).
///
/// # Errors
/// Fails on a config/denoiser mismatch, wrong lengths, or any core error.
#[allow(clippy::too_many_arguments)]
pub fn run_chain<D, A, F>(
    den: &D,
    schedule: &Schedule<'_>,
    cfg: &SamplerConfig,
    seed: u64,
    x: &mut [f32],
    draw_init: bool,
    threads: usize,
    init: impl Fn() -> A + Sync,
    observe: F,
) -> Result<Vec<A>>
where
    D: Denoiser + Sync + ?Sized,
    A: Send,
    F: Fn(&mut A, &StepView<'_>) + Sync,
{
    cfg.validate().map_err(core_err("sampler config"))?;
    ensure!(
        cfg.prediction == den.prediction(),
        "the sampler's prediction type differs from the model's"
    );
    let dim = den.dim();
    ensure!(
        dim > 0 && x.len().is_multiple_of(dim),
        "sample buffer is not a whole number of {dim}-d samples"
    );
    let n = x.len() / dim;
    let threads = thread_count(threads).clamp(1, n.max(1));
    let per = n.div_ceil(threads).max(1);
    let results: Vec<Result<A>> = std::thread::scope(|scope| {
        let handles: Vec<_> = x
            .chunks_mut(per * dim)
            .enumerate()
            .map(|(b, block)| {
                let (init, observe) = (&init, &observe);
                scope.spawn(move || -> Result<A> {
                    let first = b * per;
                    let m = block.len() / dim;
                    let mut acc = init();
                    let mut out = vec![0.0f32; block.len()];
                    let mut noise = vec![0.0f32; block.len()];
                    let mut x_prev = vec![0.0f32; block.len()];
                    let mut x0_hat = vec![0.0f32; block.len()];
                    let mut scratch = vec![0.0f32; den.scratch_len()];
                    if draw_init {
                        for (s, row) in block.chunks_exact_mut(dim).enumerate() {
                            fill_normals(seed, STREAM_INIT, (first + s) as u32, 0, row);
                        }
                    }
                    for i in (0..schedule.steps()).rev() {
                        let coefs = schedule.coefs(i).map_err(core_err("schedule"))?;
                        den.predict(coefs.model_t, block, &mut out, &mut scratch)
                            .map_err(core_err("denoiser"))?;
                        let noise_slice: &[f32] = if cfg.needs_noise(i) {
                            for (s, row) in noise.chunks_exact_mut(dim).enumerate().take(m) {
                                fill_normals(seed, STREAM_STEP, (first + s) as u32, i as u32, row);
                            }
                            &noise
                        } else {
                            &[]
                        };
                        step(
                            cfg,
                            schedule,
                            i,
                            block,
                            &out,
                            noise_slice,
                            &mut x_prev,
                            &mut x0_hat,
                        )
                        .map_err(core_err("sampler step"))?;
                        observe(
                            &mut acc,
                            &StepView {
                                i,
                                first_sample: first,
                                x_t: block,
                                model_out: &out,
                                x_prev: &x_prev,
                                x0_hat: &x0_hat,
                            },
                        );
                        block.copy_from_slice(&x_prev);
                    }
                    Ok(acc)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.into_iter().collect()
}

/// ε̂ in f64 from any prediction type at signal a = √ᾱ, noise b = √(1−ᾱ) (papers.md §1.3.2 /
/// contract): ε itself; x0: (x − a x̂0)/b; v: a v + b x.
pub fn epsilon_of(prediction: Prediction, a: f64, b: f64, x: f64, out: f64) -> f64 {
    match prediction {
        Prediction::Epsilon => out,
        Prediction::Sample => (x - a * out) / b,
        Prediction::Velocity => a * out + b * x,
    }
}
