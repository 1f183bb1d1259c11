//! Batched forward and backward pass of the paper's tied residual MLP over a chunk of
//! samples, on row-major `[rows, W]` activations and GEMMs (papers.md §1.2):
//!
//! ```text
//! temb = LReLU(W_t·emb(t) + b_t);  e(t) = W_e·temb + b_e          (once per distinct t)
//! h = W_in·x;  blocks× (tied):  u = W_1·LReLU(LN1(h)) + e(t);  h += W_2·LReLU(LN2(u))
//! ε̂ = W_o·LN_out(h) + b_o
//! ```
//!
//! The blocks share one parameter set and one temb, so `e(t)` is the same for every
//! block: it is computed once per distinct t ([`TimeBranch`]) and its gradient is summed
//! over blocks and over the samples that share t. LReLU slope 0.02; LayerNorm eps 1e-5
//! with the biased variance, in f32 (two passes per row; every row sum in 8 interleaved
//! partial sums, see `lane_sum`).

use super::gemm::{Mat, gemm};
use super::layout::Layout;
use mirage_core::mlp::Mlp;

/// LeakyReLU negative slope of the paper's network.
pub const SLOPE: f32 = 0.02;
/// LayerNorm epsilon.
pub const LN_EPS: f32 = 1e-5;

fn lrelu(v: f32) -> f32 {
    if v > 0.0 { v } else { SLOPE * v }
}

/// dLReLU/dy from the activation's output (same sign as its input since the slope > 0;
/// the derivative at 0 is the slope, as in PyTorch).
fn lrelu_grad_from_out(a: f32) -> f32 {
    if a > 0.0 { 1.0 } else { SLOPE }
}

/// The time branch for a list of distinct timesteps: row u holds emb(tᵤ), the
/// pre-activation W_t·emb + b_t, temb and e = W_e·temb + b_e.
pub struct TimeBranch {
    /// Number of timesteps (rows).
    pub count: usize,
    /// `[count, E]` sinusoidal embeddings.
    pub emb: Vec<f32>,
    /// `[count, W]` LReLU outputs (temb).
    pub temb: Vec<f32>,
    /// `[count, W]` block time projections e(t).
    pub enc: Vec<f32>,
}

impl TimeBranch {
    /// Computes the branch for every t in `ts` (two GEMMs over all of them).
    #[must_use]
    pub fn compute(layout: &Layout, params: &[f32], ts: &[u32]) -> Self {
        let (_, w, e, _) = layout.dims();
        let count = ts.len();
        let mut emb = vec![0.0f32; count * e];
        for (row, &t) in emb.chunks_exact_mut(e).zip(ts) {
            Mlp::time_embedding(e, t, row);
        }
        let mut temb = vec![0.0f32; count * w];
        for row in temb.chunks_exact_mut(w) {
            row.copy_from_slice(&params[layout.t_b..layout.t_b + w]);
        }
        gemm(
            1.0,
            Mat::rows(&emb, count, e),
            Mat::rows(&params[layout.t_w..layout.t_w + w * e], w, e).t(),
            1.0,
            &mut temb,
        );
        temb.iter_mut().for_each(|v| *v = lrelu(*v));
        let mut enc = vec![0.0f32; count * w];
        for row in enc.chunks_exact_mut(w) {
            row.copy_from_slice(&params[layout.enc_b..layout.enc_b + w]);
        }
        gemm(
            1.0,
            Mat::rows(&temb, count, w),
            Mat::rows(&params[layout.enc_w..layout.enc_w + w * w], w, w).t(),
            1.0,
            &mut enc,
        );
        Self {
            count,
            emb,
            temb,
            enc,
        }
    }

    /// Backward of the branch: given dL/de per row (`d_enc`, `[count, W]`), adds the
    /// gradients of `t_proj.0.*` and `temp_fc.0.enc.*` into `grad` (parameter layout).
    pub fn backward(&self, layout: &Layout, params: &[f32], d_enc: &[f32], grad: &mut [f32]) {
        let (_, w, e, _) = layout.dims();
        let n = self.count;
        gemm(
            1.0,
            Mat::rows(d_enc, n, w).t(),
            Mat::rows(&self.temb, n, w),
            1.0,
            &mut grad[layout.enc_w..layout.enc_w + w * w],
        );
        col_sum_into(d_enc, w, &mut grad[layout.enc_b..layout.enc_b + w]);
        let mut d_pre = vec![0.0f32; n * w];
        gemm(
            1.0,
            Mat::rows(d_enc, n, w),
            Mat::rows(&params[layout.enc_w..layout.enc_w + w * w], w, w),
            0.0,
            &mut d_pre,
        );
        for (d, a) in d_pre.iter_mut().zip(&self.temb) {
            *d *= lrelu_grad_from_out(*a);
        }
        gemm(
            1.0,
            Mat::rows(&d_pre, n, w).t(),
            Mat::rows(&self.emb, n, e),
            1.0,
            &mut grad[layout.t_w..layout.t_w + w * e],
        );
        col_sum_into(&d_pre, w, &mut grad[layout.t_b..layout.t_b + w]);
    }
}

/// Which row of the time branch each sample of a chunk uses.
#[derive(Clone, Copy)]
pub enum TimeRows<'a> {
    /// Every sample uses this row (sampling: the batch shares t).
    Shared(u32),
    /// Sample r uses row `rows[r]` (training: t per sample).
    PerSample(&'a [u32]),
}

/// Saved activations of one chunk (and scratch for the backward pass), sized for up to
/// `cap` rows. With `keep = false` (inference) the blocks reuse one slot.
pub struct Acts {
    cap: usize,
    keep: bool,
    h: Vec<f32>,
    u: Vec<f32>,
    xhat1: Vec<f32>,
    a1: Vec<f32>,
    rstd1: Vec<f32>,
    xhat2: Vec<f32>,
    a2: Vec<f32>,
    rstd2: Vec<f32>,
    xhat_o: Vec<f32>,
    y_o: Vec<f32>,
    rstd_o: Vec<f32>,
    d_h: Vec<f32>,
    d_a: Vec<f32>,
    d_u: Vec<f32>,
}

impl Acts {
    /// Buffers for chunks of up to `cap` rows; `keep` saves every block for backward.
    #[must_use]
    pub fn new(layout: &Layout, cap: usize, keep: bool) -> Self {
        let (_, w, _, blocks) = layout.dims();
        let slots = if keep { blocks } else { 1 };
        let back = if keep { cap * w } else { 0 };
        Self {
            cap,
            keep,
            h: vec![0.0; cap * w],
            u: vec![0.0; cap * w],
            xhat1: vec![0.0; slots * cap * w],
            a1: vec![0.0; slots * cap * w],
            rstd1: vec![0.0; slots * cap],
            xhat2: vec![0.0; slots * cap * w],
            a2: vec![0.0; slots * cap * w],
            rstd2: vec![0.0; slots * cap],
            xhat_o: vec![0.0; cap * w],
            y_o: vec![0.0; cap * w],
            rstd_o: vec![0.0; cap],
            d_h: vec![0.0; back],
            d_a: vec![0.0; back],
            d_u: vec![0.0; back],
        }
    }

    /// Maximum rows per chunk.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Offsets (activations, per-row stats) of block `block`'s slot.
    fn slot(cap: usize, w: usize, keep: bool, block: usize) -> (usize, usize) {
        let s = if keep { block } else { 0 };
        (s * cap * w, s * cap)
    }
}

/// LayerNorm of each row of `input` (`[rows, w]`), affine (`gamma`, `beta`), optionally
/// followed by LReLU; saves x̂ and 1/σ for the backward pass.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_rows(
    input: &[f32],
    w: usize,
    gamma: &[f32],
    beta: &[f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
    out: &mut [f32],
    leaky: bool,
) {
    let inv_w = 1.0 / w as f32;
    for (((x, xh), r), o) in input
        .chunks_exact(w)
        .zip(xhat.chunks_exact_mut(w))
        .zip(rstd.iter_mut())
        .zip(out.chunks_exact_mut(w))
    {
        let mean = lane_sum(x, |v| v) * inv_w;
        let var = lane_sum(x, |v| (v - mean) * (v - mean)) * inv_w;
        let rs = 1.0 / (var + LN_EPS).sqrt();
        *r = rs;
        for ((((xh, o), xv), g), b) in xh.iter_mut().zip(o.iter_mut()).zip(x).zip(gamma).zip(beta) {
            *xh = (xv - mean) * rs;
            let y = *xh * g + b;
            *o = if leaky { lrelu(y) } else { y };
        }
    }
}

/// Σᵢ f(xᵢ) in 8 interleaved partial sums (lane l takes i ≡ l mod 8, in order), combined
/// ((s₀+s₄)+(s₂+s₆))+((s₁+s₅)+(s₃+s₇)), then the tail: a fixed order LLVM can vectorise
/// (a single running sum is a 128-long chain of dependent adds per row).
#[inline(always)]
pub(crate) fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let (chunks, rest) = x.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for c in chunks {
        for (s, &v) in acc.iter_mut().zip(c) {
            *s += f(v);
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    let tail: f32 = rest.iter().map(|&v| f(v)).sum();
    (((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))) + tail
}

/// Σᵢ f(aᵢ, bᵢ, cᵢ) over equal-length slices, in [`lane_sum`]'s order.
#[inline(always)]
fn lane_sum3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    let (cc, rc) = c.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for ((x, y), z) in ca.iter().zip(cb).zip(cc) {
        for (((s, &p), &q), &r) in acc.iter_mut().zip(x).zip(y).zip(z) {
            *s += f(p, q, r);
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    let tail: f32 = ra
        .iter()
        .zip(rb)
        .zip(rc)
        .map(|((&p, &q), &r)| f(p, q, r))
        .sum();
    (((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))) + tail
}

/// Backward of an affine LayerNorm: `dy` is dL/dy for y = γ·x̂ + β. Adds dL/dγ and dL/dβ
/// into `g_gamma`, `g_beta`; writes (or adds, with `accumulate`) dL/dx into `dx`:
/// dx = (1/σ)·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = γ·dy.
#[allow(clippy::too_many_arguments)]
fn layer_norm_backward(
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    w: usize,
    g_gamma: &mut [f32],
    g_beta: &mut [f32],
    dx: &mut [f32],
    accumulate: bool,
) {
    let inv_w = 1.0 / w as f32;
    for (((dyr, xh), rs), dxr) in dy
        .chunks_exact(w)
        .zip(xhat.chunks_exact(w))
        .zip(rstd)
        .zip(dx.chunks_exact_mut(w))
    {
        for ((d, x), (gg, gb)) in dyr
            .iter()
            .zip(xh)
            .zip(g_gamma.iter_mut().zip(g_beta.iter_mut()))
        {
            *gg += d * x;
            *gb += d;
        }
        let m1 = lane_sum3(dyr, gamma, xh, |d, g, _| d * g) * inv_w;
        let m2 = lane_sum3(dyr, gamma, xh, |d, g, x| d * g * x) * inv_w;
        for (((o, d), x), g) in dxr.iter_mut().zip(dyr).zip(xh).zip(gamma) {
            let v = rs * (d * g - m1 - x * m2);
            if accumulate { *o += v } else { *o = v }
        }
    }
}

/// Adds the column sums of `m` (`[rows, w]`) into `acc` (rows in order).
fn col_sum_into(m: &[f32], w: usize, acc: &mut [f32]) {
    for row in m.chunks_exact(w) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
}

/// Two disjoint mutable ranges of `buf`, each `len` long, at `a` < `b`.
fn two_mut(buf: &mut [f32], a: usize, b: usize, len: usize) -> (&mut [f32], &mut [f32]) {
    assert!(a + len <= b, "two_mut: ranges overlap");
    let (lo, hi) = buf.split_at_mut(b);
    (&mut lo[a..a + len], &mut hi[..len])
}

/// The batched network: a layout plus a borrowed flat parameter vector.
#[derive(Clone, Copy)]
pub struct BatchMlp<'a> {
    layout: &'a Layout,
    params: &'a [f32],
}

impl<'a> BatchMlp<'a> {
    /// Wraps `params`.
    ///
    /// # Panics
    /// If `params.len()` differs from the layout's parameter count.
    #[must_use]
    pub fn new(layout: &'a Layout, params: &'a [f32]) -> Self {
        assert_eq!(params.len(), layout.len, "parameter vector length");
        Self { layout, params }
    }

    fn p(&self, off: usize, len: usize) -> &'a [f32] {
        &self.params[off..off + len]
    }

    /// Forward pass of `rows` samples `x` (`[rows, D]`) into `out` (`[rows, D]`), using
    /// `time.enc` rows chosen by `trows`. Saves activations into `acts` (capacity ≥ rows).
    ///
    /// # Panics
    /// If `rows` exceeds the capacity of `acts` or a slice is shorter than its shape.
    pub fn forward(
        &self,
        x: &[f32],
        rows: usize,
        time: &TimeBranch,
        trows: TimeRows<'_>,
        acts: &mut Acts,
        out: &mut [f32],
    ) {
        let l = self.layout;
        let (d, w, _, blocks) = l.dims();
        assert!(
            rows <= acts.cap,
            "chunk of {rows} rows exceeds capacity {}",
            acts.cap
        );
        let rw = rows * w;
        let h = &mut acts.h[..rw];
        gemm(
            1.0,
            Mat::rows(&x[..rows * d], rows, d),
            Mat::rows(self.p(l.in_w, w * d), w, d).t(),
            0.0,
            h,
        );
        for b in 0..blocks {
            let (s, sr) = Acts::slot(acts.cap, w, acts.keep, b);
            let (xhat1, a1, rstd1) = (
                &mut acts.xhat1[s..s + rw],
                &mut acts.a1[s..s + rw],
                &mut acts.rstd1[sr..sr + rows],
            );
            layer_norm_rows(
                h,
                w,
                self.p(l.n1_g, w),
                self.p(l.n1_b, w),
                xhat1,
                rstd1,
                a1,
                true,
            );
            let u = &mut acts.u[..rw];
            gemm(
                1.0,
                Mat::rows(a1, rows, w),
                Mat::rows(self.p(l.fc1, w * w), w, w).t(),
                0.0,
                u,
            );
            match trows {
                TimeRows::Shared(k) => {
                    let e = &time.enc[k as usize * w..(k as usize + 1) * w];
                    for row in u.chunks_exact_mut(w) {
                        row.iter_mut().zip(e).for_each(|(v, ev)| *v += ev);
                    }
                }
                TimeRows::PerSample(idx) => {
                    for (row, &k) in u.chunks_exact_mut(w).zip(idx) {
                        let e = &time.enc[k as usize * w..(k as usize + 1) * w];
                        row.iter_mut().zip(e).for_each(|(v, ev)| *v += ev);
                    }
                }
            }
            let (xhat2, a2, rstd2) = (
                &mut acts.xhat2[s..s + rw],
                &mut acts.a2[s..s + rw],
                &mut acts.rstd2[sr..sr + rows],
            );
            layer_norm_rows(
                u,
                w,
                self.p(l.n2_g, w),
                self.p(l.n2_b, w),
                xhat2,
                rstd2,
                a2,
                true,
            );
            gemm(
                1.0,
                Mat::rows(a2, rows, w),
                Mat::rows(self.p(l.fc2, w * w), w, w).t(),
                1.0,
                h,
            );
        }
        let (xhat_o, y_o) = (&mut acts.xhat_o[..rw], &mut acts.y_o[..rw]);
        layer_norm_rows(
            h,
            w,
            self.p(l.no_g, w),
            self.p(l.no_b, w),
            xhat_o,
            &mut acts.rstd_o[..rows],
            y_o,
            false,
        );
        let out = &mut out[..rows * d];
        for row in out.chunks_exact_mut(d) {
            row.copy_from_slice(self.p(l.out_b, d));
        }
        gemm(
            1.0,
            Mat::rows(y_o, rows, w),
            Mat::rows(self.p(l.out_w, d * w), d, w).t(),
            1.0,
            out,
        );
    }

    /// Backward pass after [`BatchMlp::forward`] on the same `x` and `acts` (built with
    /// `keep = true`): given dL/dε̂ (`d_out`, `[rows, D]`), adds the gradients of every
    /// x-path tensor into `grad` (parameter layout) and writes dL/de(t) of each sample —
    /// summed over the blocks — into `d_enc` (`[rows, W]`).
    ///
    /// # Panics
    /// If `acts` was built without `keep`, or a slice is shorter than its shape.
    pub fn backward(
        &self,
        x: &[f32],
        rows: usize,
        d_out: &[f32],
        acts: &mut Acts,
        grad: &mut [f32],
        d_enc: &mut [f32],
    ) {
        let l = self.layout;
        let (d, w, _, blocks) = l.dims();
        assert!(
            acts.keep,
            "backward needs activations saved with keep = true"
        );
        let rw = rows * w;
        let d_out = &d_out[..rows * d];
        // Output layer.
        gemm(
            1.0,
            Mat::rows(d_out, rows, d).t(),
            Mat::rows(&acts.y_o[..rw], rows, w),
            1.0,
            &mut grad[l.out_w..l.out_w + d * w],
        );
        col_sum_into(d_out, d, &mut grad[l.out_b..l.out_b + d]);
        let d_y = &mut acts.d_a[..rw];
        gemm(
            1.0,
            Mat::rows(d_out, rows, d),
            Mat::rows(self.p(l.out_w, d * w), d, w),
            0.0,
            d_y,
        );
        let d_h = &mut acts.d_h[..rw];
        {
            let (gg, gb) = two_mut(grad, l.no_g, l.no_b, w);
            layer_norm_backward(
                d_y,
                &acts.xhat_o[..rw],
                &acts.rstd_o[..rows],
                self.p(l.no_g, w),
                w,
                gg,
                gb,
                d_h,
                false,
            );
        }
        let d_enc = &mut d_enc[..rw];
        d_enc.iter_mut().for_each(|v| *v = 0.0);
        for b in (0..blocks).rev() {
            let (s, sr) = Acts::slot(acts.cap, w, acts.keep, b);
            let (xhat1, a1, rstd1) = (
                &acts.xhat1[s..s + rw],
                &acts.a1[s..s + rw],
                &acts.rstd1[sr..sr + rows],
            );
            let (xhat2, a2, rstd2) = (
                &acts.xhat2[s..s + rw],
                &acts.a2[s..s + rw],
                &acts.rstd2[sr..sr + rows],
            );
            // h_{b+1} = h_b + W_2·a2: the residual passes d_h through unchanged.
            gemm(
                1.0,
                Mat::rows(d_h, rows, w).t(),
                Mat::rows(a2, rows, w),
                1.0,
                &mut grad[l.fc2..l.fc2 + w * w],
            );
            let d_a = &mut acts.d_a[..rw];
            gemm(
                1.0,
                Mat::rows(d_h, rows, w),
                Mat::rows(self.p(l.fc2, w * w), w, w),
                0.0,
                d_a,
            );
            d_a.iter_mut()
                .zip(a2)
                .for_each(|(g, a)| *g *= lrelu_grad_from_out(*a));
            let d_u = &mut acts.d_u[..rw];
            {
                let (gg, gb) = two_mut(grad, l.n2_g, l.n2_b, w);
                layer_norm_backward(d_a, xhat2, rstd2, self.p(l.n2_g, w), w, gg, gb, d_u, false);
            }
            d_enc.iter_mut().zip(d_u.iter()).for_each(|(e, g)| *e += g);
            gemm(
                1.0,
                Mat::rows(d_u, rows, w).t(),
                Mat::rows(a1, rows, w),
                1.0,
                &mut grad[l.fc1..l.fc1 + w * w],
            );
            gemm(
                1.0,
                Mat::rows(d_u, rows, w),
                Mat::rows(self.p(l.fc1, w * w), w, w),
                0.0,
                d_a,
            );
            d_a.iter_mut()
                .zip(a1)
                .for_each(|(g, a)| *g *= lrelu_grad_from_out(*a));
            let (gg, gb) = two_mut(grad, l.n1_g, l.n1_b, w);
            layer_norm_backward(d_a, xhat1, rstd1, self.p(l.n1_g, w), w, gg, gb, d_h, true);
        }
        gemm(
            1.0,
            Mat::rows(d_h, rows, w).t(),
            Mat::rows(&x[..rows * d], rows, d),
            1.0,
            &mut grad[l.in_w..l.in_w + w * d],
        );
    }
}
