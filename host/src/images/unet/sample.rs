//! Batched ancestral sampling of the U-Net with core's sampler step and Hal detector.
//!
//! The schedule is respaced to `steps` model timesteps (linspace, papers.md §1.2 /
//! contract) from the model's training schedule. For each batch: x_T from
//! `fill_normals(seed, STREAM_INIT, sample, 0)`; for i = steps−1 … 0: ε̂ = U-Net(x_i, τ_i),
//! `mirage_core::step` (elementwise over the batch: x_{i−1} and x̂0), noise from
//! `fill_normals(seed, STREAM_STEP, sample, i)`, then `Hal::observe(i, …)` once per
//! requested window. Hal(x) is the per-pixel population variance of x̂0 over the last K
//! steps, averaged over pixels (the image reading of papers.md §1.2; D4: recalibrate τ per
//! model, sampler, T′ and K). The image window is not published, so a run may ask for
//! several K at once and choose one on calibration samples (`mirage images filter`).
//!
//! The step is the paper's DDPM (fixed-large variance, ε-prediction) with x̂0 clamped to
//! the data range [−1, 1], as in DDPM's image sampler (Ho et al. 2020): μ = c1·x̂0 + c2·x.
//! Unclipped, an undertrained U-Net's x̂0 at large t blows up to images far outside the
//! data range that dominate every variance score.
//! Sample k's bits depend only on (seed, k), not on the batch size.

use anyhow::{Result, anyhow, ensure};

use mirage_core::noise::{STREAM_INIT, STREAM_STEP, fill_normals};
use mirage_core::{
    BetaSchedule, Clip, Detector, Hal, SamplerConfig, Schedule, Spacing, Table, compute_tables,
    step, table_len,
};

use super::file::UnetModel;
use super::net::UnetLayout;

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct UnetSampleConfig {
    /// Respaced reverse steps T′.
    pub steps: usize,
    /// Hal window K (last K steps) that filters read.
    pub window: usize,
    /// Images per forward pass.
    pub batch: usize,
    /// Noise seed.
    pub seed: u64,
    /// Index of the first sample (keys its noise).
    pub first_sample: u32,
}

/// Generated images `[n][S²]` (the last x̂0, in [−1, 1]) and their Hal scores.
#[derive(Clone, Debug, PartialEq)]
pub struct UnetSamples {
    /// Images back to back.
    pub images: Vec<f32>,
    /// Hal score per image at the configured window K (+∞ if x̂0 went non-finite).
    pub hal: Vec<f32>,
    /// Hal per image at each extra window asked of [`sample_windows`], in that order.
    pub hal_extra: Vec<Vec<f32>>,
}

/// The image sampler: [`SamplerConfig::PAPER`] with x̂0 clamped to [−1, 1].
pub const IMAGE_SAMPLER: SamplerConfig = SamplerConfig {
    clip: Clip::Symmetric(1.0),
    ..SamplerConfig::PAPER
};

/// Draws `n` images from `model` with [`IMAGE_SAMPLER`], scoring Hal at `cfg.window`;
/// `progress(done)` after each batch.
///
/// # Errors
/// Invalid settings (0 steps, window, batch; more steps than T) or a sampler error.
pub fn sample(
    model: &UnetModel,
    n: usize,
    cfg: &UnetSampleConfig,
    progress: impl FnMut(usize),
) -> Result<UnetSamples> {
    sample_windows(model, n, cfg, &[], progress)
}

/// [`sample`], also scoring Hal at every window in `extra` (each in 1..=steps) from the
/// same trajectories.
///
/// # Errors
/// As [`sample`], or an extra window of 0 or past the steps.
pub fn sample_windows(
    model: &UnetModel,
    n: usize,
    cfg: &UnetSampleConfig,
    extra: &[usize],
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
        extra.iter().all(|&k| (1..=cfg.steps).contains(&k)),
        "Hal windows {extra:?} must each be in 1..={}",
        cfg.steps
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
    let sampler = IMAGE_SAMPLER;
    let windows: Vec<usize> = core::iter::once(cfg.window)
        .chain(extra.iter().copied())
        .collect();
    let mut scores: Vec<Vec<f32>> = vec![Vec::with_capacity(n); windows.len()];
    let mut images = Vec::with_capacity(n * d);
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
        let mut states: Vec<Vec<f32>> = windows
            .iter()
            .map(|_| vec![0.0f32; Hal::state_len(b, d)])
            .collect();
        let mut hals = windows
            .iter()
            .zip(&mut states)
            .map(|(&k, st)| Hal::new(k, d, st).map_err(|e| anyhow!("Hal K={k}: {e}")))
            .collect::<Result<Vec<_>>>()?;
        let mut t = vec![0u32; b];
        for i in (0..cfg.steps).rev() {
            t.fill(model_t[i] as u32);
            let eps = layout.predict(&model.params, &x, &t)?;
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
            for hal in &mut hals {
                hal.observe(i, &x, &x0_hat)
                    .map_err(|e| anyhow!("Hal: {e}"))?;
            }
            std::mem::swap(&mut x, &mut x_prev);
        }
        for (hal, dst) in hals.iter().zip(&mut scores) {
            let mut batch_scores = vec![0.0f32; b];
            hal.scores(&mut batch_scores)
                .map_err(|e| anyhow!("Hal: {e}"))?;
            dst.extend_from_slice(&batch_scores);
        }
        images.extend_from_slice(&x);
        start += b;
        progress(start);
    }
    let mut scores = scores.into_iter();
    Ok(UnetSamples {
        images,
        hal: scores.next().unwrap_or_default(),
        hal_extra: scores.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(window: usize, batch: usize) -> UnetSampleConfig {
        UnetSampleConfig {
            steps: 12,
            window,
            batch,
            seed: 5,
            first_sample: 0,
        }
    }

    #[test]
    fn extra_windows_match_separate_runs_and_images_stay_in_range() {
        let model = UnetModel::tiny();
        let all = sample_windows(&model, 5, &cfg(3, 2), &[2, 12], |_| {}).unwrap();
        // An untrained net's x̂0 is far outside the data range; the clamp keeps every image,
        // the last x̂0, within [−1, 1] — and some pixels reach the bound.
        assert!(all.images.iter().all(|v| v.abs() <= 1.0));
        assert!(all.images.iter().any(|v| v.abs() == 1.0));
        for (k, extra) in [(2, &all.hal_extra[0]), (12, &all.hal_extra[1])] {
            let alone = sample(&model, 5, &cfg(k, 5), |_| {}).unwrap();
            assert_eq!(alone.images, all.images, "K = {k}: same trajectories");
            assert_eq!(&alone.hal, extra, "K = {k}");
        }
        assert_eq!(sample(&model, 5, &cfg(3, 5), |_| {}).unwrap().hal, all.hal);
        assert!(all.hal.iter().all(|h| h.is_finite() && *h > 0.0));
    }

    #[test]
    fn samples_do_not_depend_on_the_batch_or_micro_batch_split() {
        // 19 images: batches of 19 (micro-batches 8 + 8 + 3) and of 3 (3 + … + 1).
        let model = UnetModel::tiny();
        let big = sample(&model, 19, &cfg(3, 19), |_| {}).unwrap();
        let small = sample(&model, 19, &cfg(3, 3), |_| {}).unwrap();
        assert_eq!(big.images, small.images);
        assert_eq!(big.hal, small.hal);
    }

    #[test]
    fn windows_outside_the_steps_are_refused() {
        let model = UnetModel::tiny();
        for bad in [0, 13] {
            let err = sample_windows(&model, 1, &cfg(3, 1), &[bad], |_| {}).unwrap_err();
            assert!(err.to_string().contains("Hal windows"), "{err}");
        }
    }
}
