//! Batched ancestral sampling of the U-Net with core's sampler step and Hal detector.
//!
//! The schedule is respaced to `steps` model timesteps (linspace, papers.md §1.2 /
//! contract) from the model's training schedule. For each batch: x_T from
//! `fill_normals(seed, STREAM_INIT, sample, 0)`; for i = steps−1 … 0: ε̂ = U-Net(x_i, τ_i),
//! `mirage_core::step` (elementwise over the batch: x_{i−1} and x̂0), noise from
//! `fill_normals(seed, STREAM_STEP, sample, i)`, then `Hal::observe(i, …)`. Hal(x) is the
//! per-pixel population variance of x̂0 over the last K steps, averaged over pixels (the
//! image reading of papers.md §1.2; D4: recalibrate τ per model, sampler, T′ and K).
//! Sample k's bits depend only on (seed, k), not on the batch size.

use anyhow::{Result, anyhow, ensure};

use mirage_core::noise::{STREAM_INIT, STREAM_STEP, fill_normals};
use mirage_core::{
    BetaSchedule, Detector, Hal, SamplerConfig, Schedule, Spacing, Table, compute_tables, step,
    table_len,
};

use super::file::UnetModel;
use super::net::UnetLayout;

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct UnetSampleConfig {
    /// Respaced reverse steps T′.
    pub steps: usize,
    /// Hal window K (last K steps).
    pub window: usize,
    /// Images per forward pass.
    pub batch: usize,
    /// Noise seed.
    pub seed: u64,
    /// Index of the first sample (keys its noise).
    pub first_sample: u32,
}

/// Generated images `[n][S²]` (the last x̂0, unclipped) and their Hal scores.
#[derive(Clone, Debug, PartialEq)]
pub struct UnetSamples {
    /// Images back to back.
    pub images: Vec<f32>,
    /// Hal score per image (+∞ if x̂0 went non-finite).
    pub hal: Vec<f32>,
}

/// Draws `n` images from `model` with [`SamplerConfig::PAPER`] (DDPM, fixed-large
/// variance, no clipping); `progress(done)` after each batch.
///
/// # Errors
/// Invalid settings (0 steps, window, batch; more steps than T) or a sampler error.
pub fn sample(
    model: &UnetModel,
    n: usize,
    cfg: &UnetSampleConfig,
    mut progress: impl FnMut(usize),
) -> Result<UnetSamples> {
    ensure!(
        cfg.steps >= 1 && cfg.steps <= model.train_steps,
        "sampling steps {} must be in 1..={}",
        cfg.steps,
        model.train_steps
    );
    ensure!(
        cfg.window >= 1 && cfg.batch >= 1,
        "Hal window and batch must be positive"
    );
    ensure!(
        (cfg.first_sample as usize)
            .checked_add(n)
            .is_some_and(|e| e <= u32::MAX as usize),
        "sample indices overflow u32"
    );
    let layout = UnetLayout::new(model.config)?;
    let d = model.config.dim();
    let mut tables = vec![0.0f32; table_len(cfg.steps)];
    compute_tables(
        &BetaSchedule::Linear {
            start: model.beta.0,
            end: model.beta.1,
        },
        model.train_steps,
        &Spacing::Linspace,
        cfg.steps,
        &mut tables,
    )
    .map_err(|e| anyhow!("schedule: {e}"))?;
    let schedule =
        Schedule::from_tables(&tables, cfg.steps).map_err(|e| anyhow!("schedule: {e}"))?;
    let model_t = schedule.table(Table::ModelT);
    let sampler = SamplerConfig::PAPER;
    let mut out = UnetSamples {
        images: Vec::with_capacity(n * d),
        hal: Vec::with_capacity(n),
    };
    let mut start = 0;
    while start < n {
        let b = cfg.batch.min(n - start);
        let first = cfg.first_sample + start as u32;
        let mut x = vec![0.0f32; b * d];
        for (k, row) in x.chunks_exact_mut(d).enumerate() {
            fill_normals(cfg.seed, STREAM_INIT, first + k as u32, 0, row);
        }
        let (mut x_prev, mut x0_hat, mut noise) = (
            vec![0.0f32; b * d],
            vec![0.0f32; b * d],
            vec![0.0f32; b * d],
        );
        let mut state = vec![0.0f32; Hal::state_len(b, d)];
        let mut hal = Hal::new(cfg.window, d, &mut state).map_err(|e| anyhow!("Hal: {e}"))?;
        let mut t = vec![0u32; b];
        for i in (0..cfg.steps).rev() {
            t.fill(model_t[i] as u32);
            let eps = layout.forward(&model.params, &x, &t)?.into_output();
            let noise_slice: &[f32] = if sampler.needs_noise(i) {
                for (k, row) in noise.chunks_exact_mut(d).enumerate() {
                    fill_normals(cfg.seed, STREAM_STEP, first + k as u32, i as u32, row);
                }
                &noise
            } else {
                &[]
            };
            step(
                &sampler,
                &schedule,
                i,
                &x,
                &eps,
                noise_slice,
                &mut x_prev,
                &mut x0_hat,
            )
            .map_err(|e| anyhow!("sampler step {i}: {e}"))?;
            hal.observe(i, &x, &x0_hat)
                .map_err(|e| anyhow!("Hal: {e}"))?;
            std::mem::swap(&mut x, &mut x_prev);
        }
        let mut scores = vec![0.0f32; b];
        hal.scores(&mut scores).map_err(|e| anyhow!("Hal: {e}"))?;
        out.images.extend_from_slice(&x);
        out.hal.extend_from_slice(&scores);
        start += b;
        progress(start);
    }
    Ok(out)
}
