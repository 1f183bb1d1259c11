//! Training the U-Net: ε-prediction MSE with Adam (papers.md §1.2 "Training", applied to
//! images):
//!
//! L = mean over the batch and pixels of (ε − ε_θ(√ᾱ_t x0 + √(1−ᾱ_t) ε, t))²,
//! t uniform on [0, T), ε ~ N(0, I), √ᾱ_t and √(1−ᾱ_t) from core's f64-computed tables.
//!
//! Every stream comes from the master seed via ChaCha (D7): the initialisation, the
//! per-epoch shuffle, and the per-step t and ε draws. Batches are contiguous slices of a
//! permutation reshuffled each epoch.
//!
//! With `threads` = n > 1 each step splits its batch into n contiguous shards, runs forward
//! and backward of each on its own thread into its own gradient (GroupNorm is per image, so
//! the shards are independent) and sums the gradients in shard order: the same seed and
//! thread count give the same bits. Each shard runs [`MICRO_BATCH`] images per pass,
//! adding each pass's gradient into the shard's.

use anyhow::{Result, ensure};
use rand_core::Rng;

use mirage_core::noise::chacha_stream;
use mirage_core::{BetaSchedule, Schedule, Spacing, Table, compute_tables, table_len};

use super::file::UnetModel;
use super::net::{MICRO_BATCH, UnetConfig, UnetLayout};
use crate::analysis::paths::par_map;
use crate::data::NormalStream;
use crate::train::{Adam, AdamConfig};

const STREAM_INIT: u64 = 0x756e_6574_0001;
const STREAM_SHUFFLE: u64 = 0x756e_6574_0002;
const STREAM_DRAWS: u64 = 0x756e_6574_0003;

/// Training settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct UnetTrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Images per step.
    pub batch: usize,
    /// Adam learning rate (β = (0.9, 0.999), eps 1e-8).
    pub lr: f32,
    /// Master seed.
    pub seed: u64,
    /// Diffusion steps T.
    pub train_steps: usize,
    /// Linear β schedule (start, end).
    pub beta: (f64, f64),
    /// Threads, one batch shard each (≥ 1; the bits depend on it, see the module docs).
    pub threads: usize,
}

/// Full-T schedule tables (index = model t) for a linear β schedule.
///
/// # Errors
/// An invalid schedule.
pub fn full_tables(train_steps: usize, beta: (f64, f64)) -> Result<Vec<f32>> {
    let mut tables = vec![0.0f32; table_len(train_steps)];
    compute_tables(
        &BetaSchedule::Linear {
            start: beta.0,
            end: beta.1,
        },
        train_steps,
        &Spacing::Linspace,
        train_steps,
        &mut tables,
    )
    .map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
    Ok(tables)
}

/// The mean-square ε loss of one batch and its gradient (into `grad`, overwritten), the
/// batch split into `threads` contiguous shards as the module docs say.
///
/// # Errors
/// A forward or backward shape error.
pub fn batch_gradient(
    layout: &UnetLayout,
    params: &[f32],
    xt: &[f32],
    t: &[u32],
    eps: &[f32],
    threads: usize,
    grad: &mut [f32],
) -> Result<f64> {
    let (b, d) = (t.len(), layout.config().dim());
    let scale = 2.0 / (b * d) as f32;
    let shard = b.div_ceil(threads.max(1));
    let run = |lo: usize, hi: usize| -> Result<(f64, Vec<f32>)> {
        let mut loss = 0.0f64;
        let mut g = vec![0.0f32; params.len()];
        for mlo in (lo..hi).step_by(MICRO_BATCH) {
            let mhi = (mlo + MICRO_BATCH).min(hi);
            let x = &xt[mlo * d..mhi * d];
            let tape = layout.forward(params, x, &t[mlo..mhi])?;
            let dout: Vec<f32> = tape
                .output()
                .iter()
                .zip(&eps[mlo * d..mhi * d])
                .map(|(&p, &e)| {
                    let r = p - e;
                    loss += f64::from(r) * f64::from(r);
                    scale * r
                })
                .collect();
            layout.backward(params, x, &tape, &dout, &mut g)?;
        }
        Ok((loss, g))
    };
    let bounds: Vec<(usize, usize)> = (0..b)
        .step_by(shard)
        .map(|lo| (lo, (lo + shard).min(b)))
        .collect();
    let parts = par_map(bounds.len(), bounds.len(), None, |i| {
        run(bounds[i].0, bounds[i].1)
    });
    grad.fill(0.0);
    let mut loss = 0.0f64;
    for part in parts {
        let (l, g) = part?;
        loss += l;
        for (dst, v) in grad.iter_mut().zip(&g) {
            *dst += v;
        }
    }
    Ok(loss / (b * d) as f64)
}

/// Trains a fresh U-Net of shape `config` on `data` (images `[N][S²]` on [−1, 1]);
/// `progress(step, loss)` is called after every step.
///
/// # Errors
/// Empty or ragged data, a zero batch or step count, an invalid shape or schedule, or a
/// non-finite loss (divergence).
pub fn train(
    config: UnetConfig,
    data: &[f32],
    tc: &UnetTrainConfig,
    mut progress: impl FnMut(usize, f64),
) -> Result<UnetModel> {
    let layout = UnetLayout::new(config)?;
    let d = config.dim();
    ensure!(
        !data.is_empty() && data.len().is_multiple_of(d),
        "training data holds {} values, not a whole number of {d}-pixel images",
        data.len()
    );
    ensure!(
        tc.batch > 0 && tc.steps > 0,
        "batch and step count must be positive"
    );
    ensure!(
        (1..=tc.batch).contains(&tc.threads),
        "threads must be in 1..={} (the batch), not {}",
        tc.batch,
        tc.threads
    );
    let n = data.len() / d;
    let tables = full_tables(tc.train_steps, tc.beta)?;
    let schedule = Schedule::from_tables(&tables, tc.train_steps)
        .map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
    let (sqrt_ab, sqrt_1mab) = (
        schedule.table(Table::SqrtAlphaBar),
        schedule.table(Table::SqrtOneMinusAlphaBar),
    );

    let mut params: Vec<f32> = layout.init(&mut chacha_stream(tc.seed, STREAM_INIT));
    let mut adam = Adam::new(
        AdamConfig {
            lr: tc.lr,
            ..AdamConfig::PAPER
        },
        params.len(),
    );
    let mut shuffle = chacha_stream(tc.seed, STREAM_SHUFFLE);
    let mut draws = chacha_stream(tc.seed, STREAM_DRAWS);
    let mut normals = NormalStream::new(chacha_stream(tc.seed, STREAM_DRAWS + 1));
    let mut order: Vec<usize> = (0..n).collect();
    let mut cursor = n; // forces a shuffle before the first batch
    let b = tc.batch;
    let (mut x0, mut xt, mut eps) = (
        vec![0.0f32; b * d],
        vec![0.0f32; b * d],
        vec![0.0f32; b * d],
    );
    let mut t = vec![0u32; b];
    let mut grad = vec![0.0f32; params.len()];
    for step in 0..tc.steps {
        for row in x0.chunks_exact_mut(d) {
            if cursor == n {
                for i in (1..n).rev() {
                    let j = ((u64::from(shuffle.next_u32()) * (i as u64 + 1)) >> 32) as usize;
                    order.swap(i, j);
                }
                cursor = 0;
            }
            row.copy_from_slice(&data[order[cursor] * d..][..d]);
            cursor += 1;
        }
        for ti in &mut t {
            *ti = ((u64::from(draws.next_u32()) * tc.train_steps as u64) >> 32) as u32;
        }
        for e in &mut eps {
            *e = normals.next_normal() as f32;
        }
        for (((row_t, row0), row_e), &ti) in xt
            .chunks_exact_mut(d)
            .zip(x0.chunks_exact(d))
            .zip(eps.chunks_exact(d))
            .zip(&t)
        {
            let (a, s) = (sqrt_ab[ti as usize], sqrt_1mab[ti as usize]);
            for ((o, &x), &e) in row_t.iter_mut().zip(row0).zip(row_e) {
                *o = a * x + s * e;
            }
        }
        let loss = batch_gradient(&layout, &params, &xt, &t, &eps, tc.threads, &mut grad)?;
        ensure!(
            loss.is_finite(),
            "U-Net training diverged at step {step} (loss {loss})"
        );
        adam.update(&mut params, &grad);
        progress(step, loss);
    }
    Ok(UnetModel {
        config,
        train_steps: tc.train_steps,
        beta: tc.beta,
        hal_threshold: f32::NAN,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_gradients_sum_to_the_whole_batch_gradient() {
        let model = UnetModel::tiny();
        let (config, params) = (model.config, model.params);
        let layout = UnetLayout::new(config).unwrap();
        // 11 images: one thread runs micro-batches of 8 + 3, shards split them otherwise.
        let (b, d) = (11, config.dim());
        let mut rng = NormalStream::new(chacha_stream(3, 2));
        let xt: Vec<f32> = (0..b * d).map(|_| rng.next_normal() as f32).collect();
        let eps: Vec<f32> = (0..b * d).map(|_| rng.next_normal() as f32).collect();
        let t = [3u32, 500, 999, 0, 42, 7, 250, 998, 1, 600, 77];
        let mut whole = vec![0.0f32; params.len()];
        let loss = batch_gradient(&layout, &params, &xt, &t, &eps, 1, &mut whole).unwrap();
        let norm = whole.iter().map(|g| g.abs()).fold(0.0f32, f32::max);
        for threads in [2, 3, 5] {
            let mut grad = vec![7.0f32; params.len()];
            let l = batch_gradient(&layout, &params, &xt, &t, &eps, threads, &mut grad).unwrap();
            assert!((l - loss).abs() <= 1e-12 * loss, "{threads}: {l} vs {loss}");
            let worst = grad
                .iter()
                .zip(&whole)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 1e-5 * norm,
                "{threads} shards: {worst} vs max |g| {norm}"
            );
            let mut again = vec![0.0f32; params.len()];
            batch_gradient(&layout, &params, &xt, &t, &eps, threads, &mut again).unwrap();
            assert_eq!(again, grad, "same thread count, same bits");
        }
    }

    #[test]
    fn sharded_training_is_reproducible_and_bad_thread_counts_are_refused() {
        let config = UnetModel::tiny().config;
        let data: Vec<f32> = (0..6 * 64).map(|i| (i % 13) as f32 / 6.5 - 1.0).collect();
        let tc = UnetTrainConfig {
            steps: 3,
            batch: 4,
            lr: 1e-3,
            seed: 9,
            train_steps: 100,
            beta: (1e-4, 0.02),
            threads: 2,
        };
        let two = train(config, &data, &tc, |_, _| {}).unwrap();
        let again = train(config, &data, &tc, |_, _| {}).unwrap();
        assert_eq!(two.params, again.params);
        for threads in [0, 5] {
            let err = train(config, &data, &UnetTrainConfig { threads, ..tc }, |_, _| {});
            assert!(err.unwrap_err().to_string().contains("threads"));
        }
    }
}
