//! [`QuantMlp`]: the paper's tied residual MLP (papers.md §1.2) in fixed point, over a
//! borrowed `.mrg` q8/q16 weight section ([`super::section`]).
//!
//! ```text
//! x_q  = sat16(round(x / s_x))                                     f32 → i16 at the boundary
//! emb  = sinusoid(t) (f32, libm, as Mlp::time_embedding);  e_q = sat16(round(emb·32767))
//! temb = sat16(LReLU(rq(W_t·e_q) + b_t))                           i16 at s_temb
//! c    = rq(W_e·temb) + b_e                                        i32 at s_u
//! h    = rq(W_in·x_q)                                              i32 at s_h, |h| ≤ 2²³
//! blocks×:  a = LNq(h, leaky);  u = rq(W_1·a) + c;  a = LNq(u, leaky);  h += rq(W_2·a)
//! out  = f32(W_o·LNq(h)) · s_o + b_o                               i64 → f32 at the boundary
//! ```
//!
//! rq is [`requantize`] (multiplier + shift, round half up); LNq is [`layer_norm`]. All
//! dot products are exact integer sums, so results are bit-identical on every target.

use super::fixed::{LnParams, QuantWeight, STREAM_MAX, layer_norm, leaky, requantize, sat_i16};
use super::section::{self, Parts, QuantKind, Requant, Scales};
use crate::denoiser::{Denoiser, check_lengths};
use crate::error::Error;
use crate::math;
use crate::mlp::{Mlp, MlpShape, Tap};
use crate::sampler::Prediction;

/// Integer scale of the time embedding: e_q = round(emb·32767) (|emb| ≤ 1).
pub const EMBEDDING_SCALE: f32 = 32767.0;

/// The parsed parts, one variant per weight type.
#[derive(Clone, Copy, Debug)]
enum Net<'a> {
    Q8(Parts<'a, i8>),
    Q16(Parts<'a, i16>),
}

/// The tied residual MLP with i8 or i16 weights and i16/i32 activations.
#[derive(Clone, Copy, Debug)]
pub struct QuantMlp<'a> {
    shape: MlpShape,
    kind: QuantKind,
    prediction: Prediction,
    net: Net<'a>,
}

/// An activation vector handed to the internal probe (mutable: a probe may overwrite it).
enum View<'s> {
    I32(&'s mut [i32]),
    I16(&'s mut [i16]),
    F32(&'s mut [f32]),
}

impl<'a> QuantMlp<'a> {
    /// Borrows a validated weight section ([`section::validate`]) of `kind` for `shape`.
    ///
    /// # Errors
    /// As [`section::validate`]; [`Error::Misaligned`] if `bytes` is not 4-byte aligned.
    pub fn new(
        shape: MlpShape,
        kind: QuantKind,
        prediction: Prediction,
        bytes: &'a [u8],
    ) -> Result<Self, Error> {
        let net = match kind {
            QuantKind::Q8 => Net::Q8(section::split(&shape, kind, bytes)?),
            QuantKind::Q16 => Net::Q16(section::split(&shape, kind, bytes)?),
        };
        Ok(Self {
            shape,
            kind,
            prediction,
            net,
        })
    }

    /// The network's sizes.
    pub fn shape(&self) -> MlpShape {
        self.shape
    }

    /// q8 or q16.
    pub fn kind(&self) -> QuantKind {
        self.kind
    }

    /// The real-valued activation scales stored in the file.
    pub fn scales(&self) -> Scales {
        match &self.net {
            Net::Q8(p) => p.scales,
            Net::Q16(p) => p.scales,
        }
    }

    /// Scratch (f32 elements, reinterpreted as integers) for [`Denoiser::predict`] and
    /// [`QuantMlp::forward_probed`]: `W + max(2E + W, D + 4W)`.
    pub fn scratch_len_for(shape: &MlpShape) -> usize {
        let (d, w, e) = (shape.dim, shape.width, shape.temb_dim);
        let time = e.saturating_mul(2).saturating_add(w);
        let body = w.saturating_mul(4).saturating_add(d);
        w.saturating_add(time.max(body))
    }

    /// The block time bias c(t) (i32 at scale s_u, `c_out.len() == W`;
    /// `scratch.len() ≥ 2E + W`).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]`("c")`, [`Error::BufferTooSmall`]`("scratch")`.
    pub fn time_bias(&self, t: u32, c_out: &mut [i32], scratch: &mut [f32]) -> Result<(), Error> {
        if c_out.len() != self.shape.width {
            return Err(Error::LengthMismatch("c"));
        }
        match &self.net {
            Net::Q8(p) => time_bias(&self.shape, p, t, c_out, scratch),
            Net::Q16(p) => time_bias(&self.shape, p, t, c_out, scratch),
        }
    }

    /// One sample (`x.len() == out.len() == D`) given c from [`QuantMlp::time_bias`], calling
    /// `probe(tap, block, values)` with every intermediate dequantised to f32 (value ·
    /// scale), at the same taps as [`Mlp::forward_probed`] (`scratch.len() ≥ D + 4W`).
    ///
    /// If the probe returns `true`, the (possibly overwritten) values are quantised back
    /// (round to nearest, saturating) and the pass continues from them: writing the f32
    /// network's activation there isolates each layer's own error ("teacher forcing").
    ///
    /// # Errors
    /// [`Error::LengthMismatch`], [`Error::BufferTooSmall`]`("scratch")`,
    /// [`Error::NonFinite`]`("x")`.
    pub fn forward_probed<P: FnMut(Tap, usize, &mut [f32]) -> bool>(
        &self,
        c: &[i32],
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
        probe: &mut P,
    ) -> Result<(), Error> {
        let (d, w) = (self.shape.dim, self.shape.width);
        if c.len() != w || x.len() != d || out.len() != d {
            return Err(Error::LengthMismatch("c, x or out"));
        }
        let (deq, rest) = scratch
            .split_at_mut_checked(w)
            .ok_or(Error::BufferTooSmall("scratch"))?;
        let scales = self.scales();
        let mut inner = |tap: Tap, block: usize, view: View<'_>| {
            let scale = match tap {
                Tap::InFc | Tap::Residual => scales.h,
                Tap::Fc1 => scales.u,
                Tap::Norm1 => scales.a1,
                Tap::Norm2 => scales.a2,
                Tap::OutNorm => scales.ao,
                Tap::Out => 1.0,
            };
            let n = match &view {
                View::I32(v) => fill(deq, v.iter().map(|&q| q as f32 * scale)),
                View::I16(v) => fill(deq, v.iter().map(|&q| f32::from(q) * scale)),
                View::F32(v) => fill(deq, v.iter().copied()),
            };
            let values = deq.get_mut(..n).unwrap_or(&mut []);
            if !probe(tap, block, values) {
                return;
            }
            let q = |v: f32| math::round(v / scale) as i64;
            match view {
                View::I32(dst) => dst.iter_mut().zip(values.iter()).for_each(|(o, &v)| {
                    *o = q(v).clamp(-i64::from(STREAM_MAX), i64::from(STREAM_MAX)) as i32;
                }),
                View::I16(dst) => dst
                    .iter_mut()
                    .zip(values.iter())
                    .for_each(|(o, &v)| *o = sat_i16(q(v))),
                View::F32(dst) => dst.iter_mut().zip(values.iter()).for_each(|(o, &v)| *o = v),
            }
        };
        match &self.net {
            Net::Q8(p) => forward_one(&self.shape, p, c, x, out, rest, &mut inner),
            Net::Q16(p) => forward_one(&self.shape, p, c, x, out, rest, &mut inner),
        }
    }
}

/// Copies an iterator into the front of `dst`, returning how many were written.
fn fill(dst: &mut [f32], src: impl Iterator<Item = f32>) -> usize {
    dst.iter_mut().zip(src).map(|(d, s)| *d = s).count()
}

/// Views the front of an f32 scratch slice as `n` elements of an integer type.
fn ints<T: bytemuck::Pod>(scratch: &mut [f32], n: usize) -> Result<&mut [T], Error> {
    let per = core::mem::size_of::<f32>() / core::mem::size_of::<T>();
    let words = n.div_ceil(per.max(1));
    let chunk = scratch
        .get_mut(..words)
        .ok_or(Error::BufferTooSmall("scratch"))?;
    bytemuck::cast_slice_mut::<f32, T>(chunk)
        .get_mut(..n)
        .ok_or(Error::BufferTooSmall("scratch"))
}

/// `out[r] = f(r, Σ_j W[r, j]·x_j)` for every row.
#[inline(always)]
fn matvec<Wt: QuantWeight, O>(
    w: &[Wt],
    x: &[i16],
    out: &mut [O],
    mut f: impl FnMut(usize, i64) -> O,
) {
    if x.is_empty() {
        return;
    }
    for (r, (o, row)) in out.iter_mut().zip(w.chunks_exact(x.len())).enumerate() {
        *o = f(r, Wt::dot(row, x));
    }
}

/// Requantises row r of a layer (bias added; `extra` is a second i32 bias such as c).
#[inline(always)]
fn rq(l: &Requant<'_>, r: usize, acc: i64, extra: i32, limit: i32) -> i32 {
    let m = l.mult.get(r).copied().unwrap_or(0);
    let b = l.bias.get(r).copied().unwrap_or(0);
    let bias = (i64::from(b) + i64::from(extra)).clamp(i64::from(-limit), i64::from(limit)) as i32;
    requantize(acc, m, l.shift, bias, limit)
}

fn time_bias<Wt: QuantWeight>(
    shape: &MlpShape,
    p: &Parts<'_, Wt>,
    t: u32,
    c_out: &mut [i32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let (w, e) = (shape.width, shape.temb_dim);
    let (emb, rest) = scratch
        .split_at_mut_checked(e)
        .ok_or(Error::BufferTooSmall("scratch"))?;
    Mlp::time_embedding(e, t, emb);
    let (eq_words, rest) = rest
        .split_at_mut_checked(e)
        .ok_or(Error::BufferTooSmall("scratch"))?;
    let emb_q = ints::<i16>(eq_words, e)?;
    for (q, &v) in emb_q.iter_mut().zip(emb.iter()) {
        *q = sat_i16(math::round(v * EMBEDDING_SCALE) as i64);
    }
    let temb = ints::<i16>(rest, w)?;
    let [t_proj, _, _, enc, _, _] = &p.mats;
    let [l_t, _, _, l_e, _] = &p.requant;
    matvec(t_proj, emb_q, temb, |r, acc| {
        sat_i16(leaky(i64::from(rq(l_t, r, acc, 0, i32::MAX / 2))))
    });
    matvec(enc, temb, c_out, |r, acc| rq(l_e, r, acc, 0, STREAM_MAX));
    Ok(())
}

/// One sample of the integer forward pass (see the module docs); `scratch.len() ≥ D + 3W`.
fn forward_one<Wt: QuantWeight, P: FnMut(Tap, usize, View<'_>)>(
    shape: &MlpShape,
    p: &Parts<'_, Wt>,
    c: &[i32],
    x: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    probe: &mut P,
) -> Result<(), Error> {
    let (d, w) = (shape.dim, shape.width);
    let too_small = Error::BufferTooSmall("scratch");
    let (xq_words, rest) = scratch.split_at_mut_checked(d).ok_or(too_small)?;
    let (h_words, rest) = rest.split_at_mut_checked(w).ok_or(too_small)?;
    let (u_words, a_words) = rest.split_at_mut_checked(w).ok_or(too_small)?;
    let x_q = ints::<i16>(xq_words, d)?;
    let h = ints::<i32>(h_words, w)?;
    let u = ints::<i32>(u_words, w)?;
    let a = ints::<i16>(a_words, w)?;
    for (q, &v) in x_q.iter_mut().zip(x) {
        if !v.is_finite() {
            return Err(Error::NonFinite("x"));
        }
        *q = sat_i16(math::round(v * p.inv_input_scale) as i64);
    }
    let [_, in_fc, fc1, _, fc2, out_fc] = &p.mats;
    let [_, l_in, l_1, _, l_2] = &p.requant;
    let [norm1, norm2, out_norm]: &[LnParams<'_>; 3] = &p.norms;
    matvec(in_fc, x_q, h, |r, acc| rq(l_in, r, acc, 0, STREAM_MAX));
    probe(Tap::InFc, 0, View::I32(&mut *h));
    for block in 0..shape.blocks {
        layer_norm(h, norm1, true, a);
        probe(Tap::Norm1, block, View::I16(&mut *a));
        matvec(fc1, a, u, |r, acc| {
            rq(l_1, r, acc, c.get(r).copied().unwrap_or(0), STREAM_MAX)
        });
        probe(Tap::Fc1, block, View::I32(&mut *u));
        layer_norm(u, norm2, true, a);
        probe(Tap::Norm2, block, View::I16(&mut *a));
        for (r, (hv, row)) in h.iter_mut().zip(fc2.chunks_exact(w)).enumerate() {
            let delta = rq(l_2, r, Wt::dot(row, a), 0, STREAM_MAX);
            *hv = hv.saturating_add(delta).clamp(-STREAM_MAX, STREAM_MAX);
        }
        probe(Tap::Residual, block, View::I32(&mut *h));
    }
    layer_norm(h, out_norm, false, a);
    probe(Tap::OutNorm, 0, View::I16(&mut *a));
    matvec(out_fc, a, out, |r, acc| {
        let s = p.out_scale.get(r).copied().unwrap_or(0.0);
        let b = p.out_bias.get(r).copied().unwrap_or(0.0);
        acc as f32 * s + b
    });
    probe(Tap::Out, 0, View::F32(&mut *out));
    Ok(())
}

impl Denoiser for QuantMlp<'_> {
    fn dim(&self) -> usize {
        self.shape.dim
    }

    fn prediction(&self) -> Prediction {
        self.prediction
    }

    fn scratch_len(&self) -> usize {
        Self::scratch_len_for(&self.shape)
    }

    /// Computes c(t) once, then the integer forward pass for every sample. Inputs beyond the
    /// input range (±32767·s_x, at least ±8) saturate.
    ///
    /// # Errors
    /// As [`Denoiser::predict`], plus [`Error::NonFinite`]`("x")` for a NaN or ±∞ input.
    fn predict(
        &self,
        model_t: u32,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let (d, w) = (self.shape.dim, self.shape.width);
        check_lengths(d, x.len(), out.len(), scratch.len(), self.scratch_len())?;
        let (c_words, rest) = scratch
            .split_at_mut_checked(w)
            .ok_or(Error::BufferTooSmall("scratch"))?;
        let c = ints::<i32>(c_words, w)?;
        self.time_bias(model_t, c, rest)?;
        let c: &[i32] = c;
        for (xs, os) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            match &self.net {
                Net::Q8(p) => forward_one(&self.shape, p, c, xs, os, rest, &mut |_, _, _| {})?,
                Net::Q16(p) => forward_one(&self.shape, p, c, xs, os, rest, &mut |_, _, _| {})?,
            }
        }
        Ok(())
    }
}
