//! Batched forward-mode JVP of the paper's MLP on the host's GEMM path (papers.md §9 D12),
//! for the posterior-variance detector.
//!
//! Core's [`Mlp::predict_jvp`] runs the primal and the tangent pass sample by sample with
//! matrix–vector products. Here a block of up to [`BLOCK`] samples is stacked with its
//! tangents as extra rows, `S = [x; u]` (`[2m, D]`), and every Linear is one GEMM over all
//! 2m rows (`crate::train::gemm`, the sampler's path). The non-linear layers follow D12:
//!
//! ```text
//! Linear:     ẏ = W·u                       (no bias on tangent rows; e(t) is constant in x)
//! LayerNorm:  ẏ = γ ⊙ (u̇ − x̂·mean(x̂ ⊙ u̇))·(1/σ),  u̇ = u − mean(u)
//!             with x̂ and 1/σ of the PRIMAL row (the statistics are not recomputed)
//! LeakyReLU:  ẏ = u if the primal pre-activation > 0, else 0.02·u
//! ```
//!
//! The primal rows are the batched forward pass of `crate::train::net` (same LayerNorm,
//! same GEMM backends), the time bias e(t) is core's [`Mlp::time_bias`], computed once per
//! call. [`BatchJvpMlp`] implements core's [`Denoiser`], so core's posterior-variance code
//! (probes, the x̂0 conversion, f64 sums, non-finite flags) runs unchanged on top of it;
//! `predict` is core's own per-sample pass.

use crate::train::Layout;
use crate::train::gemm::{Mat, gemm};
use crate::train::net::{SLOPE, lane_sum, layer_norm_rows};
use mirage_core::detector::posterior_variance::BLOCK;
use mirage_core::sampler::Prediction;
use mirage_core::{Denoiser, Error, Mlp};

/// The paper's MLP with a batched JVP: core's [`Mlp`] for the primal and the time branch,
/// the flat parameters and their [`Layout`] for the stacked GEMM passes.
#[derive(Clone, Copy)]
pub struct BatchJvpMlp<'a> {
    mlp: Mlp<'a>,
    layout: &'a Layout,
    params: &'a [f32],
}

impl<'a> BatchJvpMlp<'a> {
    /// Wraps `params` (the flat vector of `layout`) predicting `prediction`.
    ///
    /// # Errors
    /// As [`Mlp::new`] (wrong length, non-finite parameters, invalid shape).
    pub fn new(
        layout: &'a Layout,
        params: &'a [f32],
        prediction: Prediction,
    ) -> Result<Self, Error> {
        let mlp = Mlp::new(layout.shape, params)?.with_prediction(prediction);
        Ok(Self {
            mlp,
            layout,
            params,
        })
    }

    fn p(&self, off: usize, len: usize) -> &'a [f32] {
        &self.params[off..off + len]
    }

    /// f32 count of the stacked buffers for [`BLOCK`] samples.
    fn block_len(&self) -> usize {
        let (d, w, _, _) = self.layout.dims();
        2 * BLOCK * d * 2 + 3 * 2 * BLOCK * w + BLOCK * w + BLOCK
    }

    /// Primal and tangent of `m ≤ BLOCK` samples (`x`, `u`: `[m, D]`) with block bias
    /// `bias`; `buf` is [`BatchJvpMlp::block_len`] long.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        bias: &[f32],
        x: &[f32],
        u: &[f32],
        m: usize,
        out: &mut [f32],
        out_dot: &mut [f32],
        buf: &mut [f32],
    ) {
        let l = self.layout;
        let (d, w, _, blocks) = l.dims();
        let (md, mw, rows) = (m * d, m * w, 2 * m);
        let (xs, rest) = buf.split_at_mut(2 * BLOCK * d);
        let (h, rest) = rest.split_at_mut(2 * BLOCK * w);
        let (v, rest) = rest.split_at_mut(2 * BLOCK * w);
        let (a, rest) = rest.split_at_mut(2 * BLOCK * w);
        let (xhat, rest) = rest.split_at_mut(BLOCK * w);
        let (rstd, os) = rest.split_at_mut(BLOCK);
        let (xs, h, v, a) = (
            &mut xs[..rows * d],
            &mut h[..rows * w],
            &mut v[..rows * w],
            &mut a[..rows * w],
        );
        let (xhat, rstd, os) = (&mut xhat[..mw], &mut rstd[..m], &mut os[..rows * d]);
        xs[..md].copy_from_slice(x);
        xs[md..].copy_from_slice(u);
        let lin =
            |input: &[f32], off: usize, n_out: usize, n_in: usize, beta: f32, c: &mut [f32]| {
                gemm(
                    1.0,
                    Mat::rows(input, rows, n_in),
                    Mat::rows(self.p(off, n_out * n_in), n_out, n_in).t(),
                    beta,
                    c,
                );
            };
        lin(xs, l.in_w, w, d, 0.0, h);
        let norm = |input: &[f32],
                    g: usize,
                    b: usize,
                    leaky: bool,
                    xhat: &mut [f32],
                    rstd: &mut [f32],
                    a: &mut [f32]| {
            let (ip, it) = input.split_at(mw);
            let (ap, at) = a.split_at_mut(mw);
            let gamma = self.p(g, w);
            layer_norm_rows(ip, w, gamma, self.p(b, w), xhat, rstd, ap, leaky);
            layer_norm_tangent_rows(it, xhat, rstd, gamma, w, at);
            if leaky {
                for (t, p) in at.iter_mut().zip(ap.iter()) {
                    if *p <= 0.0 {
                        *t *= SLOPE;
                    }
                }
            }
        };
        for _ in 0..blocks {
            norm(h, l.n1_g, l.n1_b, true, xhat, rstd, a);
            lin(a, l.fc1, w, w, 0.0, v);
            for row in v[..mw].chunks_exact_mut(w) {
                row.iter_mut().zip(bias).for_each(|(r, b)| *r += b);
            }
            norm(v, l.n2_g, l.n2_b, true, xhat, rstd, a);
            lin(a, l.fc2, w, w, 1.0, h);
        }
        norm(h, l.no_g, l.no_b, false, xhat, rstd, a);
        for row in os[..md].chunks_exact_mut(d) {
            row.copy_from_slice(self.p(l.out_b, d));
        }
        os[md..].fill(0.0);
        lin(a, l.out_w, d, w, 1.0, os);
        out.copy_from_slice(&os[..md]);
        out_dot.copy_from_slice(&os[md..]);
    }
}

/// LayerNorm tangent of each row of `x_dot` (`[m, w]`) at the primal row's x̂ and 1/σ:
/// out = γ ⊙ (u̇ − x̂·mean(x̂ ⊙ u̇))·(1/σ), u̇ = ẋ − mean(ẋ) (core's `layer_norm_tangent`).
fn layer_norm_tangent_rows(
    x_dot: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    w: usize,
    out: &mut [f32],
) {
    let inv_w = 1.0 / w as f32;
    let rows = x_dot
        .chunks_exact(w)
        .zip(xhat.chunks_exact(w))
        .zip(rstd)
        .zip(out.chunks_exact_mut(w));
    for (((xd, xh), &rs), o) in rows {
        let mean_dot = lane_sum(xd, |v| v) * inv_w;
        let mean_n_u = xd
            .iter()
            .zip(xh)
            .map(|(&vd, &n)| n * (vd - mean_dot))
            .sum::<f32>()
            * inv_w;
        for (((o, &vd), &n), &g) in o.iter_mut().zip(xd).zip(xh).zip(gamma) {
            *o = g * ((vd - mean_dot) - n * mean_n_u) * rs;
        }
    }
}

impl Denoiser for BatchJvpMlp<'_> {
    fn dim(&self) -> usize {
        self.mlp.dim()
    }

    fn prediction(&self) -> Prediction {
        self.mlp.prediction()
    }

    /// The bias (W), core's scratch (for the time branch and `predict`) and the stacked
    /// buffers of one block.
    fn scratch_len(&self) -> usize {
        self.layout.shape.width + self.mlp.scratch_len() + self.block_len()
    }

    fn predict(
        &self,
        model_t: u32,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.mlp.predict(model_t, x, out, scratch)
    }

    fn predict_jvp(
        &self,
        model_t: u32,
        x: &[f32],
        tangent: &[f32],
        out: &mut [f32],
        tangent_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let d = self.dim();
        if !x.len().is_multiple_of(d) || out.len() != x.len() {
            return Err(Error::LengthMismatch("x / out (samples × dim)"));
        }
        if tangent.len() != x.len() {
            return Err(Error::LengthMismatch("tangent"));
        }
        if tangent_out.len() != x.len() {
            return Err(Error::LengthMismatch("tangent_out"));
        }
        if scratch.len() < self.scratch_len() {
            return Err(Error::BufferTooSmall("scratch"));
        }
        let (bias, rest) = scratch.split_at_mut(self.layout.shape.width);
        let (core_scratch, buf) = rest.split_at_mut(self.mlp.scratch_len());
        self.mlp.time_bias(model_t, bias, core_scratch)?;
        let step = BLOCK * d;
        let blocks = x
            .chunks(step)
            .zip(tangent.chunks(step))
            .zip(out.chunks_mut(step).zip(tangent_out.chunks_mut(step)));
        for ((xs, us), (os, tos)) in blocks {
            self.block(bias, xs, us, xs.len() / d, os, tos, buf);
        }
        Ok(())
    }
}
