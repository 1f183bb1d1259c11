//! Post-training quantisation on the host: calibration states along real trajectories of the
//! f32 model, core's quantiser ([`mirage_core::quant::quantize_into`]), the q8/q16 `.mrg`
//! writer, and the per-layer error report (relative RMS of each fixed-point activation
//! against the f32 network's, design.md §4: ≤ 1e-2 for int8, ≤ 1e-3 for 16-bit).
//!
//! Calibration states are every x_t that core's `sample_trajectory` visits (with its model
//! timestep), so the activation ranges are those the sampler will meet; the error report
//! uses trajectories of another seed, so it is calibration-independent.

use anyhow::{Context, Result, anyhow, ensure};
use mirage_core::format::{ModelFile, ModelHeader, ModelKind, encoded_len, write_quant_model};
use mirage_core::quant::{
    QuantKind, QuantMlp, Ranges, quantize_into, quantize_scratch_len, section_len,
};
use mirage_core::schedule::TableSet;
use mirage_core::{
    Detector, Error, Mlp, SamplerConfig, Schedule, Table, Tap, sample_trajectory,
    trajectory_scratch_len,
};

/// States x_t (with their model timestep) visited by sampled trajectories.
#[derive(Clone, Debug, Default)]
pub struct States {
    /// Data dimension.
    pub dim: usize,
    /// Model timestep of each state.
    pub t: Vec<u32>,
    /// The states back to back (`t.len() · dim` values).
    pub x: Vec<f32>,
}

impl States {
    /// Number of states.
    #[must_use]
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// State i.
    #[must_use]
    pub fn state(&self, i: usize) -> (u32, &[f32]) {
        (self.t[i], &self.x[i * self.dim..(i + 1) * self.dim])
    }
}

/// A detector that records every x_t it is shown (with τ_i from the schedule).
struct Recorder<'a> {
    schedule: &'a Schedule<'a>,
    every: usize,
    states: &'a mut States,
}

impl Detector for Recorder<'_> {
    fn observe(&mut self, i: usize, x_t: &[f32], _x0_hat: &[f32]) -> Result<(), Error> {
        if i.is_multiple_of(self.every) {
            self.states.t.push(self.schedule.coefs(i)?.model_t);
            self.states.x.extend_from_slice(x_t);
        }
        Ok(())
    }

    fn reset(&mut self) {}
}

/// Samples `trajectories` trajectories of `mlp` with the paper's sampler (seed `seed`,
/// samples 0..n) and keeps every `every`-th state x_t.
///
/// # Errors
/// Sampler errors (with the sample index).
pub fn trajectory_states(
    mlp: &Mlp<'_>,
    schedule: &Schedule<'_>,
    trajectories: u32,
    seed: u64,
    every: usize,
) -> Result<States> {
    ensure!(every >= 1, "the state stride must be at least 1");
    let dim = mlp.shape().dim;
    let mut states = States {
        dim,
        ..States::default()
    };
    let mut scratch = vec![0.0f32; trajectory_scratch_len(mlp.shape().scratch_len(), dim)];
    let (mut x, mut x0) = (vec![0.0f32; dim], vec![0.0f32; dim]);
    for sample in 0..trajectories {
        let mut rec = Recorder {
            schedule,
            every,
            states: &mut states,
        };
        sample_trajectory(
            mlp,
            schedule,
            &SamplerConfig::PAPER,
            seed,
            sample,
            &mut x,
            &mut x0,
            &mut rec,
            &mut scratch,
        )
        .map_err(|e| anyhow!("calibration trajectory {sample}: {e}"))?;
    }
    Ok(states)
}

/// Activation ranges of `mlp` over `states`.
///
/// # Errors
/// Core errors (non-finite state).
pub fn ranges(mlp: &Mlp<'_>, states: &States) -> Result<Ranges> {
    let mut ranges = Ranges::default();
    let mut scratch = vec![0.0f32; mlp.shape().scratch_len()];
    for i in 0..states.len() {
        let (t, x) = states.state(i);
        ranges
            .observe(mlp, t, x, &mut scratch)
            .map_err(|e| anyhow!("calibration state {i}: {e}"))?;
    }
    Ok(ranges)
}

/// The model kind of a fixed-point weight type.
#[must_use]
pub fn model_kind(kind: QuantKind) -> ModelKind {
    match kind {
        QuantKind::Q8 => ModelKind::MlpQ8,
        QuantKind::Q16 => ModelKind::MlpQ16,
    }
}

/// Quantises the f32 model in `file` with `ranges` into a complete q8/q16 `.mrg` file (same
/// header, schedule tables and Hal threshold; kind 2 or 3).
///
/// # Errors
/// If `file` is not an f32 model, or core's quantiser or writer refuses.
pub fn quantize_file(file: &ModelFile<'_>, ranges: &Ranges, kind: QuantKind) -> Result<Vec<u8>> {
    quantize_file_with_tables(file, ranges, kind, file.header().tables)
}

/// As [`quantize_file`], storing only the schedule tables of `tables` (e.g. those
/// [`SamplerConfig::tables`] names, for a microcontroller's flash).
///
/// # Errors
/// As [`quantize_file`]; if `file` lacks one of `tables`.
pub fn quantize_file_with_tables(
    file: &ModelFile<'_>,
    ranges: &Ranges,
    kind: QuantKind,
    tables: TableSet,
) -> Result<Vec<u8>> {
    let schedule = file.schedule();
    schedule
        .require(tables)
        .map_err(|e| anyhow!("the input model cannot supply the tables asked for: {e}"))?;
    let stored: Vec<f32> = Table::ALL
        .into_iter()
        .filter(|&which| tables.contains(which))
        .flat_map(|which| schedule.table(which).iter().copied())
        .collect();
    let mlp = file
        .mlp()
        .map_err(|e| anyhow!("the input must be an f32 model: {e}"))?;
    let header = file.header();
    let shape = mlp.shape();
    let mut section = vec![0u8; section_len(&shape, kind)];
    let mut scratch = vec![0.0f32; quantize_scratch_len(&shape)];
    quantize_into(
        &mlp,
        header.train_steps,
        ranges,
        kind,
        &mut section,
        &mut scratch,
    )
    .map_err(|e| anyhow!("quantizer: {e}"))?;
    let qheader = ModelHeader {
        kind: model_kind(kind),
        ..*header
    }
    .with_tables(tables);
    let len = encoded_len(&qheader).map_err(|e| anyhow!("header: {e}"))?;
    let mut out = vec![0u8; len];
    let n = write_quant_model(&qheader, &stored, &section, &mut out)
        .map_err(|e| anyhow!("writer: {e}"))?;
    out.truncate(n);
    Ok(out)
}

/// Relative error of one activation: ‖q − f‖ / ‖f‖ over all compared values, and the
/// largest absolute difference.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayerError {
    /// The activation (`in_fc`, `block1.norm1`, …, `out_norm`, `out`, `time_bias`).
    pub name: String,
    /// Relative RMS error against f32.
    pub rel_rms: f64,
    /// Largest absolute error.
    pub max_abs: f64,
}

/// Accumulates Σ(q − f)², Σf², max |q − f|.
#[derive(Clone, Copy, Debug, Default)]
struct Acc {
    err2: f64,
    ref2: f64,
    max: f64,
}

impl Acc {
    fn add(&mut self, q: &[f32], f: &[f32]) {
        for (&a, &b) in q.iter().zip(f) {
            let d = f64::from(a) - f64::from(b);
            self.err2 += d * d;
            self.ref2 += f64::from(b) * f64::from(b);
            self.max = self.max.max(d.abs());
        }
    }
}

fn tap_name(tap: Tap, block: usize) -> String {
    match tap {
        Tap::InFc => "in_fc".into(),
        Tap::Norm1 => format!("block{block}.norm1+lrelu"),
        Tap::Fc1 => format!("block{block}.fc1+c"),
        Tap::Norm2 => format!("block{block}.norm2+lrelu"),
        Tap::Residual => format!("block{block}.residual"),
        Tap::OutNorm => "out_norm".into(),
        Tap::Out => "out (eps_hat)".into(),
    }
}

/// How [`layer_errors`] feeds each fixed-point layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorMode {
    /// Each layer gets the f32 network's input (quantised): the layer's own error, the
    /// "per layer" figure of design.md §4.
    Isolated,
    /// Each layer gets the fixed-point path's own input: errors accumulate as in use.
    Chained,
}

/// Per-layer errors of `q` against `mlp` on `states`: every tap of the forward pass and the
/// block time bias c(t), in forward order.
///
/// # Errors
/// Shape mismatch or core errors.
pub fn layer_errors(
    mlp: &Mlp<'_>,
    q: &QuantMlp<'_>,
    states: &States,
    mode: ErrorMode,
) -> Result<Vec<LayerError>> {
    let shape = mlp.shape();
    ensure!(
        shape == q.shape(),
        "the f32 and fixed-point models differ in shape"
    );
    let (d, w) = (shape.dim, shape.width);
    let mut names: Vec<String> = Vec::new();
    let mut accs: Vec<Acc> = Vec::new();
    let mut fs = vec![0.0f32; shape.scratch_len()];
    let mut qs = vec![0.0f32; QuantMlp::scratch_len_for(&shape)];
    let (mut bias, mut c, mut cq) = (vec![0.0f32; w], vec![0i32; w], vec![0.0f32; w]);
    let mut ftaps: Vec<Vec<f32>> = Vec::new();
    let (mut out, mut qout) = (vec![0.0f32; d], vec![0.0f32; d]);
    let mut time = Acc::default();
    let mut last_t = None;
    for i in 0..states.len() {
        let (t, x) = states.state(i);
        if last_t != Some(t) {
            mlp.time_bias(t, &mut bias, &mut fs)
                .map_err(|e| anyhow!("{e}"))?;
            q.time_bias(t, &mut c, &mut qs)
                .map_err(|e| anyhow!("{e}"))?;
            let s_u = q.scales().u;
            cq.iter_mut()
                .zip(&c)
                .for_each(|(o, &v)| *o = v as f32 * s_u);
            time.add(&cq, &bias);
            last_t = Some(t);
        }
        ftaps.clear();
        mlp.forward_probed(&bias, x, &mut out, &mut fs, &mut |_, _, v| {
            ftaps.push(v.to_vec())
        })
        .map_err(|e| anyhow!("{e}"))?;
        let mut k = 0usize;
        q.forward_probed(&c, x, &mut qout, &mut qs, &mut |tap, block, v| {
            if accs.len() <= k {
                accs.push(Acc::default());
                names.push(tap_name(tap, block));
            }
            let mut forced = false;
            if let (Some(acc), Some(f)) = (accs.get_mut(k), ftaps.get(k)) {
                acc.add(v, f);
                if mode == ErrorMode::Isolated {
                    v.copy_from_slice(f);
                    forced = true;
                }
            }
            k += 1;
            forced
        })
        .map_err(|e| anyhow!("{e}"))?;
    }
    names.push("time_bias c(t)".into());
    accs.push(time);
    Ok(names
        .into_iter()
        .zip(accs)
        .map(|(name, a)| LayerError {
            name,
            rel_rms: (a.err2 / a.ref2.max(1e-300)).sqrt(),
            max_abs: a.max,
        })
        .collect())
}

/// Reads an `.mrg` file for quantisation, naming it in errors.
///
/// # Errors
/// Unreadable or invalid file.
pub fn read_model(path: &std::path::Path) -> Result<crate::train::export::AlignedBytes> {
    crate::train::export::read_aligned(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests;
