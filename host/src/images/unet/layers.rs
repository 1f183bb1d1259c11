//! The U-Net's layers, forward and backward, on channel-major activations
//! `[C][B][H·W]` (a channel concat is a stack; a convolution's GEMM reads one image's
//! columns at row stride B·H·W and writes its output the same way).
//!
//! Backward functions *add* into the input gradient (callers zero it), so skip connections
//! and concatenations sum their gradients for free; parameter gradients are also added.
//!
//! - conv k×k (k = 3, pad 1; or k = 1): y = W·im2col(x) + b, W `[cout][cin·k·k]` (PyTorch's
//!   `[cout][cin][ky][kx]`); ∂W = ∂y·colᵀ, ∂col = Wᵀ·∂y, ∂x = col2im(∂col); per image.
//! - group norm (Wu & He 2018): x̂ = (x − μ_g)/√(σ²_g + ε) per (sample, group), y = γ_c x̂ + β_c;
//!   ∂x = (1/σ)(g − mean(g) − x̂·mean(g·x̂)) with g = γ·∂y, means over the group.
//! - SiLU: y = x·s(x), s = 1/(1+e⁻ˣ); ∂x = ∂y·s(1 + x(1 − s)).
//! - 2×2 mean pool and nearest 2× upsample (adjoint pair up to the factor 4).
//! - dense rows: y `[B][out]` = x·Wᵀ + b.

use super::real::Real;

/// Group-norm ε (PyTorch's default).
pub const GN_EPS: f64 = 1e-5;

/// Shape of one activation tensor: channels, batch, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Channels.
    pub c: usize,
    /// Batch.
    pub b: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Dims {
    /// Elements per channel over the batch (B·H·W).
    #[must_use]
    pub fn n(&self) -> usize {
        self.b * self.h * self.w
    }
    /// All elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.c * self.n()
    }
    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Same batch and spatial size, `c` channels.
    #[must_use]
    pub fn with_c(&self, c: usize) -> Self {
        Self { c, ..*self }
    }
}

/// Leading dimension of one image's im2col rows: H·W plus one cache line, so the rows of
/// a power-of-two image do not all map to the same cache sets (4K aliasing cut the GEMM
/// rate on 32×32 images five-fold).
#[must_use]
pub fn col_ld(hw: usize) -> usize {
    hw + 16
}

/// One im2col row as a shifted copy of a plane: entry j (pixel (y, x) = (j / W, j mod W))
/// reads plane[j + off] with off = dy·W + dx; `lo..hi` is where that index lies inside the
/// plane, and `edge` the columns whose source wraps into the neighbouring image row
/// (x < −dx or x ≥ W − dx), which are zero.
struct Shift {
    off: isize,
    lo: usize,
    hi: usize,
    edge: core::ops::Range<usize>,
}

impl Shift {
    fn new(d: Dims, dy: isize, dx: isize) -> Self {
        let (hw, w) = ((d.h * d.w) as isize, d.w as isize);
        let off = dy * w + dx;
        let lo = (-off).clamp(0, hw) as usize;
        let hi = (hw - off).clamp(lo as isize, hw) as usize;
        let edge = if dx < 0 {
            0..(-dx).min(w) as usize
        } else {
            (w - dx).max(0) as usize..w as usize
        };
        Self { off, lo, hi, edge }
    }

    /// Zeroes the `edge` columns of every line (strided stores: a `fill` per line would be
    /// a one-element memset call each).
    fn zero_edges<T: Real>(&self, row: &mut [T], w: usize) {
        for x in self.edge.clone() {
            for v in row.iter_mut().skip(x).step_by(w) {
                *v = T::ZERO;
            }
        }
    }
}

/// im2col of image `b` for a k×k kernel with padding k/2:
/// `col[(ci·k² + ky·k + kx)·ld + y·W + x] = x[ci][b][y + ky − k/2][x + kx − k/2]` (0 outside).
pub fn im2col<T: Real>(x: &[T], d: Dims, b: usize, k: usize, col: &mut [T], ld: usize) {
    let (hw, pad) = (d.h * d.w, (k / 2) as isize);
    for ci in 0..d.c {
        let plane = &x[(ci * d.b + b) * hw..][..hw];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut col[((ci * k + ky) * k + kx) * ld..][..hw];
                let sh = Shift::new(d, ky as isize - pad, kx as isize - pad);
                let s0 = (sh.lo as isize + sh.off) as usize;
                row[..sh.lo].fill(T::ZERO);
                row[sh.lo..sh.hi].copy_from_slice(&plane[s0..s0 + sh.hi - sh.lo]);
                row[sh.hi..].fill(T::ZERO);
                sh.zero_edges(row, d.w);
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds image `b`'s `col` back onto `dx` (zeroing the entries
/// of `col` that had no source pixel).
pub fn col2im_add<T: Real>(col: &mut [T], d: Dims, b: usize, k: usize, dx: &mut [T], ld: usize) {
    let (hw, pad) = (d.h * d.w, (k / 2) as isize);
    for ci in 0..d.c {
        let plane = &mut dx[(ci * d.b + b) * hw..][..hw];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut col[((ci * k + ky) * k + kx) * ld..][..hw];
                let sh = Shift::new(d, ky as isize - pad, kx as isize - pad);
                sh.zero_edges(row, d.w);
                let s0 = (sh.lo as isize + sh.off) as usize;
                let dst = &mut plane[s0..s0 + sh.hi - sh.lo];
                for (o, &g) in dst.iter_mut().zip(&row[sh.lo..sh.hi]) {
                    *o += g;
                }
            }
        }
    }
}

/// A k×k convolution (k = 1 or 3) from `cin` to `cout` channels with bias, run one image
/// at a time so its im2col matrix stays in cache (and an image's output does not depend
/// on the rest of the batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side (1 or 3).
    pub k: usize,
}

impl Conv {
    /// Weight count.
    #[must_use]
    pub fn weights(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }

    /// Scratch (one image's im2col) length for input dims `d` (0 for 1×1).
    #[must_use]
    pub fn col_len(&self, d: Dims) -> usize {
        if self.k == 1 {
            0
        } else {
            self.cin * self.k * self.k * col_ld(d.h * d.w)
        }
    }

    /// y = conv(x) + b (overwrites `y`, `cout × n`).
    pub fn forward<T: Real>(
        &self,
        w: &[T],
        bias: &[T],
        x: &[T],
        d: Dims,
        col: &mut Vec<T>,
        y: &mut [T],
    ) {
        let (n, hw, kk) = (d.n(), d.h * d.w, self.cin * self.k * self.k);
        for (co, row) in y[..self.cout * n].chunks_exact_mut(n).enumerate() {
            row.fill(bias[co]);
        }
        col.resize(self.col_len(d), T::ZERO);
        for b in 0..d.b {
            let (src, ld) = self.columns(x, d, b, col);
            let yb = &mut y[b * hw..];
            T::gemm(
                self.cout,
                kk,
                hw,
                T::ONE,
                w,
                kk,
                1,
                src,
                ld,
                1,
                T::ONE,
                yb,
                n,
            );
        }
    }

    /// Image `b`'s GEMM input and its row stride: `x` itself for 1×1 (rows of B·H·W), else
    /// its im2col in `col` (rows of [`col_ld`]).
    fn columns<'a, T: Real>(
        &self,
        x: &'a [T],
        d: Dims,
        b: usize,
        col: &'a mut [T],
    ) -> (&'a [T], usize) {
        let hw = d.h * d.w;
        if self.k == 1 {
            return (&x[b * hw..], d.n());
        }
        let ld = col_ld(hw);
        im2col(x, d.with_c(self.cin), b, self.k, col, ld);
        (col, ld)
    }

    /// Adds ∂W, ∂b and ∂x for upstream gradient `dy`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real>(
        &self,
        w: &[T],
        x: &[T],
        d: Dims,
        dy: &[T],
        col: &mut Vec<T>,
        dw: &mut [T],
        db: &mut [T],
        dx: &mut [T],
    ) {
        let (n, hw, kk, co) = (d.n(), d.h * d.w, self.cin * self.k * self.k, self.cout);
        for (g, row) in db.iter_mut().zip(dy.chunks_exact(n)) {
            *g += row.iter().fold(T::ZERO, |a, &v| a + v);
        }
        col.resize(self.col_len(d), T::ZERO);
        for b in 0..d.b {
            let dyb = &dy[b * hw..];
            let (src, ld) = self.columns(x, d, b, col);
            T::gemm(co, hw, kk, T::ONE, dyb, n, 1, src, 1, ld, T::ONE, dw, kk);
            if self.k == 1 {
                let dxb = &mut dx[b * hw..];
                T::gemm(kk, co, hw, T::ONE, w, 1, kk, dyb, n, 1, T::ONE, dxb, n);
                continue;
            }
            T::gemm(kk, co, hw, T::ONE, w, 1, kk, dyb, n, 1, T::ZERO, col, ld);
            col2im_add(col, d.with_c(self.cin), b, self.k, dx, ld);
        }
    }
}

/// Partial sums per lane: the loops below vectorise, and each sum has one fixed order.
const LANES: usize = 8;

/// Σ f(x) over `xs`, in [`LANES`] interleaved partial sums added left to right, then the
/// tail.
fn lane_sum<T: Real>(xs: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::ZERO; LANES];
    let (chunks, tail) = xs.as_chunks::<LANES>();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let head = acc.iter().fold(T::ZERO, |s, &v| s + v);
    tail.iter().fold(head, |s, &v| s + f(v))
}

/// (Σ g, Σ g·x̂), summed as [`lane_sum`].
fn lane_sums_dy<T: Real>(dy: &[T], xhat: &[T]) -> (T, T) {
    let (mut s, mut sx) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let (dc, dt) = dy.as_chunks::<LANES>();
    let (xc, xt) = xhat.as_chunks::<LANES>();
    for (g, x) in dc.iter().zip(xc) {
        for l in 0..LANES {
            s[l] += g[l];
            sx[l] += g[l] * x[l];
        }
    }
    let fold = |a: [T; LANES]| a.iter().fold(T::ZERO, |t, &v| t + v);
    dt.iter()
        .zip(xt)
        .fold((fold(s), fold(sx)), |(a, b), (&g, &x)| (a + g, b + g * x))
}

/// Group norm over `groups` groups of channels; caches x̂ and 1/σ per (sample, group).
/// Each plane's sums run in [`LANES`] partial sums of `T`; planes are combined in f64.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_forward<T: Real>(
    x: &[T],
    d: Dims,
    groups: usize,
    gamma: &[T],
    beta: &[T],
    xhat: &mut [T],
    rstd: &mut [T],
    y: &mut [T],
) {
    let (cpg, hw) = (d.c / groups, d.h * d.w);
    let count = (cpg * hw) as f64;
    for g in 0..groups {
        for b in 0..d.b {
            let planes = || (g * cpg..(g + 1) * cpg).map(|c| (c, (c * d.b + b) * hw));
            let sum: f64 = planes()
                .map(|(_, o)| lane_sum(&x[o..o + hw], |v| v).to_f64())
                .sum();
            let mean_t = T::from_f64(sum / count);
            let var: f64 = planes()
                .map(|(_, o)| lane_sum(&x[o..o + hw], |v| (v - mean_t) * (v - mean_t)).to_f64())
                .sum();
            let r = 1.0 / (var / count + GN_EPS).sqrt();
            rstd[b * groups + g] = T::from_f64(r);
            let r_t = T::from_f64(r);
            for (c, off) in planes() {
                let (xs, xh) = (&x[off..off + hw], &mut xhat[off..off + hw]);
                for ((o, h), &v) in y[off..off + hw].iter_mut().zip(xh).zip(xs) {
                    *h = (v - mean_t) * r_t;
                    *o = gamma[c] * *h + beta[c];
                }
            }
        }
    }
}

/// Backward of [`group_norm_forward`]: adds ∂γ, ∂β and ∂x.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward<T: Real>(
    dy: &[T],
    d: Dims,
    groups: usize,
    gamma: &[T],
    xhat: &[T],
    rstd: &[T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    dx: &mut [T],
) {
    let (cpg, hw) = (d.c / groups, d.h * d.w);
    let count = (cpg * hw) as f64;
    for g in 0..groups {
        for b in 0..d.b {
            let planes = || (g * cpg..(g + 1) * cpg).map(|c| (c, (c * d.b + b) * hw));
            let (mut mean_g, mut mean_gx) = (0.0f64, 0.0f64);
            for (c, off) in planes() {
                let (sdy, sdyx) = lane_sums_dy(&dy[off..off + hw], &xhat[off..off + hw]);
                dbeta[c] += sdy;
                dgamma[c] += sdyx;
                mean_g += (gamma[c] * sdy).to_f64();
                mean_gx += (gamma[c] * sdyx).to_f64();
            }
            let (mg, mgx) = (T::from_f64(mean_g / count), T::from_f64(mean_gx / count));
            let r = rstd[b * groups + g];
            for (c, off) in planes() {
                let (gs, xs) = (&dy[off..off + hw], &xhat[off..off + hw]);
                for ((o, &u), &h) in dx[off..off + hw].iter_mut().zip(gs).zip(xs) {
                    *o += r * (gamma[c] * u - mg - h * mgx);
                }
            }
        }
    }
}

#[inline(always)]
fn sigmoid<T: Real>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

/// y = x·s(x), keeping s(x) in `sig` for [`silu_backward`].
pub fn silu_forward<T: Real>(x: &[T], y: &mut [T], sig: &mut [T]) {
    for ((o, g), &v) in y.iter_mut().zip(sig.iter_mut()).zip(x) {
        *g = sigmoid(v);
        *o = v * *g;
    }
}

/// ∂x += ∂y·s(x)(1 + x(1 − s(x))), with s(x) = `sig` from [`silu_forward`].
pub fn silu_backward<T: Real>(x: &[T], sig: &[T], dy: &[T], dx: &mut [T]) {
    for (((g, &v), &s), &u) in dx.iter_mut().zip(x).zip(sig).zip(dy) {
        *g += u * s * (T::ONE + v * (T::ONE - s));
    }
}

/// 2×2 mean pool: `d` is the input (even H, W); y has dims (c, b, h/2, w/2).
pub fn pool_forward<T: Real>(x: &[T], d: Dims, y: &mut [T]) {
    let (h2, w2) = (d.h / 2, d.w / 2);
    let quarter = T::from_f64(0.25);
    for (src, dst) in x.chunks_exact(d.h * d.w).zip(y.chunks_exact_mut(h2 * w2)) {
        for yy in 0..h2 {
            for xx in 0..w2 {
                let i = 2 * yy * d.w + 2 * xx;
                dst[yy * w2 + xx] =
                    (src[i] + src[i + 1] + src[i + d.w] + src[i + d.w + 1]) * quarter;
            }
        }
    }
}

/// Backward of [`pool_forward`]: ∂x += ∂y/4 on each of the four.
pub fn pool_backward<T: Real>(dy: &[T], d: Dims, dx: &mut [T]) {
    let (h2, w2) = (d.h / 2, d.w / 2);
    let quarter = T::from_f64(0.25);
    for (src, dst) in dy.chunks_exact(h2 * w2).zip(dx.chunks_exact_mut(d.h * d.w)) {
        for yy in 0..h2 {
            for xx in 0..w2 {
                let g = src[yy * w2 + xx] * quarter;
                let i = 2 * yy * d.w + 2 * xx;
                for j in [i, i + 1, i + d.w, i + d.w + 1] {
                    dst[j] += g;
                }
            }
        }
    }
}

/// Nearest 2× upsample: `d` is the input; y has dims (c, b, 2h, 2w).
pub fn up_forward<T: Real>(x: &[T], d: Dims, y: &mut [T]) {
    let w2 = 2 * d.w;
    for (src, dst) in x
        .chunks_exact(d.h * d.w)
        .zip(y.chunks_exact_mut(4 * d.h * d.w))
    {
        for yy in 0..2 * d.h {
            for xx in 0..w2 {
                dst[yy * w2 + xx] = src[(yy / 2) * d.w + xx / 2];
            }
        }
    }
}

/// Backward of [`up_forward`]: ∂x += the sum of the four ∂y.
pub fn up_backward<T: Real>(dy: &[T], d: Dims, dx: &mut [T]) {
    let w2 = 2 * d.w;
    for (src, dst) in dy
        .chunks_exact(4 * d.h * d.w)
        .zip(dx.chunks_exact_mut(d.h * d.w))
    {
        for yy in 0..2 * d.h {
            for xx in 0..w2 {
                dst[(yy / 2) * d.w + xx / 2] += src[yy * w2 + xx];
            }
        }
    }
}

/// Dense rows: y `[rows][out]` = x `[rows][inp]`·Wᵀ + b, W `[out][inp]`.
pub fn dense_forward<T: Real>(
    w: &[T],
    bias: &[T],
    x: &[T],
    rows: usize,
    inp: usize,
    out: usize,
    y: &mut [T],
) {
    for row in y[..rows * out].chunks_exact_mut(out) {
        row.copy_from_slice(&bias[..out]);
    }
    T::gemm(rows, inp, out, T::ONE, x, inp, 1, w, 1, inp, T::ONE, y, out);
}

/// Backward of [`dense_forward`]: adds ∂W = ∂yᵀx, ∂b, ∂x = ∂y·W.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward<T: Real>(
    w: &[T],
    x: &[T],
    dy: &[T],
    rows: usize,
    inp: usize,
    out: usize,
    dw: &mut [T],
    db: &mut [T],
    dx: &mut [T],
) {
    for row in dy.chunks_exact(out) {
        for (g, &v) in db.iter_mut().zip(row) {
            *g += v;
        }
    }
    T::gemm(
        out,
        rows,
        inp,
        T::ONE,
        dy,
        1,
        out,
        x,
        inp,
        1,
        T::ONE,
        dw,
        inp,
    );
    T::gemm(
        rows,
        out,
        inp,
        T::ONE,
        dy,
        out,
        1,
        w,
        inp,
        1,
        T::ONE,
        dx,
        inp,
    );
}
