//! Post-training quantisation of an f32 [`Mlp`] into a q8/q16 weight section.
//!
//! Weights: per output channel r, s_w[r] = max|W[r,:]| / q_max (q_max = 127 or 32767),
//! q = round(w / s_w) (symmetric, zero point 0). Activations: static per-tensor scales from
//! [`Ranges`], observed on calibration inputs (the host feeds states x_t along real
//! trajectories):
//!
//! | activation | scale |
//! |---|---|
//! | x | max(8, 2·max|x|) / 32767 (input range ≥ ±8, papers.md §1.3 pitfall 7) |
//! | temb | max over ALL t < T of |temb(t)| / 32767 (exact: a finite set) |
//! | h (residual) | 4·max|h| / 2²³ |
//! | u (block middle) | 4·max(max|u|, max_t |c(t)|) / 2²³ |
//! | a1, a2, ao (after LN) | 2·max|a| / 32767 |
//!
//! Requantisation of a layer with input scale s_in and output scale s_out: M_r =
//! s_w[r]·s_in/s_out, one shift k per layer (the largest with max_r M_r·2^k < 2³¹),
//! m_r = round(M_r·2^k). LayerNorm: ε_q = round(1e-5 / s_in²), g_i = γ_i·√n / s_out with one
//! gain shift, B_i = round(β_i / s_out · 2¹⁶).

use super::fixed::{LN_FRAC_BITS, MAX_GAIN_SHIFT, MAX_LN_EPS, MAX_SHIFT, STREAM_MAX};
use super::mlp::EMBEDDING_SCALE;
use super::section::{self, EncodeParts, QuantKind, Scales};
use crate::error::Error;
use crate::math;
use crate::mlp::{LAYER_NORM_EPS, Mlp, MlpShape, Tap};

/// Largest i16 magnitude used for activations.
const I16_MAX: f64 = 32767.0;

/// Largest |value| seen at each activation of the f32 network.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ranges {
    /// Network inputs.
    pub x: f32,
    /// Residual stream h (after in_fc and after every block).
    pub h: f32,
    /// Block middle u.
    pub u: f32,
    /// LReLU(LN₁(h)).
    pub a1: f32,
    /// LReLU(LN₂(u)).
    pub a2: f32,
    /// LN_out(h).
    pub ao: f32,
}

impl Ranges {
    /// Runs the f32 network on every sample of `x` at time `t` and widens the ranges
    /// (`scratch.len() ≥` [`MlpShape::scratch_len`]).
    ///
    /// # Errors
    /// As [`Mlp::time_bias`] and [`Mlp::forward_probed`]; [`Error::NonFinite`]`("x")`.
    pub fn observe(
        &mut self,
        mlp: &Mlp<'_>,
        t: u32,
        x: &[f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let shape = mlp.shape();
        let (d, w) = (shape.dim, shape.width);
        let (bias, rest) = scratch
            .split_at_mut_checked(w)
            .ok_or(Error::BufferTooSmall("scratch"))?;
        mlp.time_bias(t, bias, rest)?;
        let (out_buf, rest) = rest
            .split_at_mut_checked(d)
            .ok_or(Error::BufferTooSmall("scratch"))?;
        for xs in x.chunks_exact(d) {
            if !xs.iter().all(|v| v.is_finite()) {
                return Err(Error::NonFinite("x"));
            }
            self.x = self.x.max(max_abs(xs));
            mlp.forward_probed(bias, xs, out_buf, rest, &mut |tap, _, v| {
                let m = max_abs(v);
                let slot = match tap {
                    Tap::InFc | Tap::Residual => &mut self.h,
                    Tap::Fc1 => &mut self.u,
                    Tap::Norm1 => &mut self.a1,
                    Tap::Norm2 => &mut self.a2,
                    Tap::OutNorm => &mut self.ao,
                    Tap::Out => return,
                };
                *slot = slot.max(m);
            })?;
        }
        Ok(())
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, &x| m.max(x.abs()))
}

/// A positive scale for a range (a zero range gets scale 1 / `q_max`).
fn scale_for(range: f64, q_max: f64) -> f64 {
    if range > 0.0 && range.is_finite() {
        range / q_max
    } else {
        1.0 / q_max
    }
}

/// Scratch (f32 elements) [`quantize_into`] needs: `2W + E + P_int` where P_int holds the
/// integer weights and per-row parameters, i.e. [`quantize_scratch_len`].
pub fn quantize_scratch_len(shape: &MlpShape) -> usize {
    let w = shape.width;
    section::weight_count(shape)
        .saturating_add(w.saturating_mul(16))
        .saturating_add(shape.dim.saturating_mul(2))
        .saturating_add(shape.scratch_len())
}

/// Quantises `mlp` (trained with `train_steps` steps) with activation `ranges` into a
/// section of `kind` in `out` (length [`section::section_len`]), returning its length.
/// `scratch` holds the integer staging area (f32 words reinterpreted,
/// [`quantize_scratch_len`]).
///
/// # Errors
/// [`Error::BufferTooSmall`]; [`Error::InvalidParameter`] if a scale ratio cannot be
/// represented (M ≥ 2³⁰); [`Error::BadDimension`]`("train_steps")` for 0 or more than
/// 2³²; whatever [`section::encode`] rejects.
pub fn quantize_into(
    mlp: &Mlp<'_>,
    train_steps: usize,
    ranges: &Ranges,
    kind: QuantKind,
    out: &mut [u8],
    scratch: &mut [f32],
) -> Result<usize, Error> {
    let shape = mlp.shape();
    let (d, w) = (shape.dim, shape.width);
    if train_steps == 0 || u32::try_from(train_steps).is_err() {
        return Err(Error::BadDimension("train_steps"));
    }
    let too_small = Error::BufferTooSmall("quantize scratch (see quantize_scratch_len)");
    let (weights, rest) = scratch
        .split_at_mut_checked(section::weight_count(&shape))
        .ok_or(too_small)?;
    let (rows, rest) = rest.split_at_mut_checked(w * 16).ok_or(too_small)?;
    let (outs, mlp_scratch) = rest.split_at_mut_checked(d * 2).ok_or(too_small)?;

    // The time branch's exact ranges over every timestep.
    let (mut temb_max, mut c_max) = (0.0f32, 0.0f32);
    {
        let (temb, rest) = mlp_scratch.split_at_mut_checked(w).ok_or(too_small)?;
        let (c, rest) = rest.split_at_mut_checked(w).ok_or(too_small)?;
        for t in 0..train_steps as u32 {
            mlp.time_branch(t, temb, rest)?;
            mlp.block_bias(temb, c)?;
            temb_max = temb_max.max(max_abs(temb));
            c_max = c_max.max(max_abs(c));
        }
    }
    let stream = f64::from(STREAM_MAX);
    let scales = Scales {
        x: scale_for((2.0 * f64::from(ranges.x)).max(8.0), I16_MAX) as f32,
        temb: scale_for(f64::from(temb_max), I16_MAX) as f32,
        h: scale_for(4.0 * f64::from(ranges.h), stream) as f32,
        u: scale_for(4.0 * f64::from(ranges.u.max(c_max)), stream) as f32,
        a1: scale_for(2.0 * f64::from(ranges.a1), I16_MAX) as f32,
        a2: scale_for(2.0 * f64::from(ranges.a2), I16_MAX) as f32,
        ao: scale_for(2.0 * f64::from(ranges.ao), I16_MAX) as f32,
    };
    let s = |v: f32| f64::from(v);
    let q_max = f64::from(kind.max_weight());
    let params = mlp.params();
    let tensors = shape.tensors();
    let tensor = |i: usize| -> &[f32] {
        tensors
            .get(i)
            .and_then(|t| params.get(t.range()))
            .unwrap_or(&[])
    };
    // Flat indices of the tensors in MlpShape::tensors order.
    let mat_index = [0usize, 2, 5, 6, 10, 13];
    let io_scales = [
        (1.0 / f64::from(EMBEDDING_SCALE), s(scales.temb)),
        (s(scales.x), s(scales.h)),
        (s(scales.a1), s(scales.u)),
        (s(scales.temb), s(scales.u)),
        (s(scales.a2), s(scales.h)),
        (s(scales.ao), 1.0),
    ];
    let biases: [Option<usize>; 5] = [Some(1), None, None, Some(7), None];
    let wq: &mut [i32] = bytemuck::cast_slice_mut(weights);
    let rows: &mut [i32] = bytemuck::cast_slice_mut(rows);
    let (mults, rest) = rows.split_at_mut(w * 5);
    let (bias_q, rest) = rest.split_at_mut(w * 5);
    let (gains, norm_bias) = rest.split_at_mut(w * 3);
    let (out_scale, out_bias) = outs.split_at_mut(d);
    let mut shifts = [1u32; 5];
    let mut cursor = 0usize;
    for (layer, ((&ti, &(s_in, s_out)), (r, c))) in mat_index
        .iter()
        .zip(&io_scales)
        .zip(section::linear_shapes(&shape))
        .enumerate()
    {
        let mat = tensor(ti);
        let dst = wq.get_mut(cursor..cursor + r * c).ok_or(too_small)?;
        cursor += r * c;
        // Per-row weight scales, kept in f64 (out_fc: written straight to out_scale).
        let mut max_m = 0.0f64;
        for (row, (src, q)) in mat.chunks_exact(c).zip(dst.chunks_exact_mut(c)).enumerate() {
            let s_w = scale_for(f64::from(max_abs(src)), q_max);
            for (qv, &v) in q.iter_mut().zip(src) {
                *qv = math::round_f64(f64::from(v) / s_w) as i32;
            }
            if layer == 5 {
                if let Some(o) = out_scale.get_mut(row) {
                    *o = (s_w * s_in) as f32;
                }
            } else {
                max_m = max_m.max(s_w * s_in / s_out);
            }
        }
        if layer == 5 {
            out_bias.copy_from_slice(tensor(14).get(..d).ok_or(too_small)?);
            continue;
        }
        // Second pass for the multipliers, now that the layer's shift is known.
        let two31 = 2_147_483_648.0f64;
        if max_m * 2.0 >= two31 {
            return Err(Error::InvalidParameter(
                "requantization scale ratio too large",
            ));
        }
        let mut k = 1u32;
        while k < MAX_SHIFT && max_m * pow2(k + 1) < two31 - 1.0 {
            k += 1;
        }
        if let Some(slot) = shifts.get_mut(layer) {
            *slot = k;
        }
        let lm = mults.get_mut(layer * w..layer * w + w).ok_or(too_small)?;
        for (m, src) in lm.iter_mut().zip(mat.chunks_exact(c)) {
            let s_w = scale_for(f64::from(max_abs(src)), q_max);
            *m = math::round_f64(s_w * s_in / s_out * pow2(k)).min(two31 - 1.0) as i32;
        }
        let lb = bias_q.get_mut(layer * w..layer * w + w).ok_or(too_small)?;
        match biases.get(layer).copied().flatten() {
            Some(bi) => {
                for (q, &b) in lb.iter_mut().zip(tensor(bi)) {
                    *q = clamp_i32(math::round_f64(f64::from(b) / s_out));
                }
            }
            None => lb.fill(0),
        }
    }
    // LayerNorms: (γ index, β index, input scale, output scale).
    let norms = [
        (3usize, 4usize, s(scales.h), s(scales.a1)),
        (8, 9, s(scales.u), s(scales.a2)),
        (11, 12, s(scales.h), s(scales.ao)),
    ];
    let mut norm_meta = [(1u64, 0u32); 3];
    let sqrt_n = math::sqrt_f64(w as f64);
    for (i, &(gi, bi, s_in, s_out)) in norms.iter().enumerate() {
        let eps = math::round_f64(f64::from(LAYER_NORM_EPS) / (s_in * s_in));
        let eps = eps.clamp(1.0, MAX_LN_EPS as f64) as u64;
        let max_g = tensor(gi)
            .iter()
            .fold(0.0f64, |m, &g| m.max((f64::from(g) * sqrt_n / s_out).abs()));
        let mut gs = 0u32;
        while gs < MAX_GAIN_SHIFT && max_g * pow2(gs + 1) < 2_147_483_647.0 {
            gs += 1;
        }
        if max_g * pow2(gs) >= 2_147_483_648.0 {
            return Err(Error::InvalidParameter(
                "LayerNorm gain too large for its output scale",
            ));
        }
        if let Some(slot) = norm_meta.get_mut(i) {
            *slot = (eps, gs);
        }
        let g_out = gains.get_mut(i * w..i * w + w).ok_or(too_small)?;
        for (q, &g) in g_out.iter_mut().zip(tensor(gi)) {
            *q = clamp_i32(math::round_f64(f64::from(g) * sqrt_n / s_out * pow2(gs)));
        }
        let b_out = norm_bias.get_mut(i * w..i * w + w).ok_or(too_small)?;
        for (q, &b) in b_out.iter_mut().zip(tensor(bi)) {
            *q = clamp_i32(math::round_f64(f64::from(b) / s_out * pow2(LN_FRAC_BITS)));
        }
    }
    let (mults, bias_q, gains, norm_bias) = (&*mults, &*bias_q, &*gains, &*norm_bias);
    let requant: [(u32, &[i32], &[i32]); 5] = core::array::from_fn(|i| {
        (
            shifts.get(i).copied().unwrap_or(1),
            row_block(mults, i, w),
            row_block(bias_q, i, w),
        )
    });
    let norms_enc: [(u64, u32, &[i32], &[i32]); 3] = core::array::from_fn(|i| {
        let (eps, gs) = norm_meta.get(i).copied().unwrap_or((1, 0));
        (eps, gs, row_block(gains, i, w), row_block(norm_bias, i, w))
    });
    let parts = EncodeParts {
        weights: wq,
        requant,
        out_scale,
        out_bias,
        norms: norms_enc,
        scales,
    };
    section::encode(&shape, kind, &parts, out)
}

/// Block i of w values.
fn row_block(v: &[i32], i: usize, w: usize) -> &[i32] {
    v.get(i * w..i * w + w).unwrap_or(&[])
}

/// 2^k as f64.
fn pow2(k: u32) -> f64 {
    f64::from_bits((1023u64 + u64::from(k.min(1000))) << 52)
}

fn clamp_i32(v: f64) -> i32 {
    v.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}
