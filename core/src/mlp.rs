//! The tied residual MLP of Aithal et al. 2024 (papers.md §1.2; the paper's ddpm-torch toy
//! network), in f32, for any data dimension D, width W, block count and embedding size E:
//!
//! ```text
//! emb  = [sin(t·f_k)]_{k<E/2} ++ [cos(t·f_k)]_{k<E/2},  f_k = exp(−k·ln(1e4)/(E/2 − 1))
//! temb = LReLU(W_t·emb + b_t)                      time branch, constant in x
//! c    = W_e·temb + b_e                            block time bias (blocks are tied: one c)
//! h    = W_in·x
//! blocks×:  u = W_1·LReLU(LN₁(h)) + c;  h += W_2·LReLU(LN₂(u))
//! f    = W_o·LN_out(h) + b_o
//! ```
//!
//! LReLU slope 0.02, LayerNorm eps 1e-5 with biased variance and affine (γ, β). Parameters
//! are one flat slice in the contract layout ([`MlpShape::tensors`]: PyTorch `state_dict`
//! names, row-major `[out][in]`, the tied block stored once as `temp_fc.0.*`), so a
//! safetensors import is one copy per tensor.
//!
//! The time branch depends on t only, so batched callers compute it once per step
//! ([`Mlp::time_bias`], [`Mlp::forward_with_bias`]) and trajectory callers may tabulate it
//! per t ([`TimeCachedMlp`]). [`Mlp::forward_jvp_with_bias`] is the forward-mode tangent
//! pass of papers.md §9 D12.

use crate::denoiser::{Denoiser, check_lengths};
use crate::error::Error;
use crate::math;
use crate::sampler::Prediction;

/// Negative slope of every LeakyReLU in the network.
pub const LEAKY_RELU_SLOPE: f32 = 0.02;
/// LayerNorm ε (added to the biased variance).
pub const LAYER_NORM_EPS: f32 = 1e-5;
/// Number of tensors in the flat parameter layout.
pub const TENSOR_COUNT: usize = 15;

/// Lanes of the dot-product accumulators (8 f32 = one AVX register, two SSE registers; 16
/// measured no faster).
const LANES: usize = 8;
/// Rows of W per pass of [`matvec`] (8 measured fastest of 1, 2, 4, 8, 16; it does not
/// change the summation order).
const ROWS: usize = 8;

/// The sizes of a residual MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlpShape {
    /// Data dimension D (input and output width).
    pub dim: usize,
    /// Hidden width W.
    pub width: usize,
    /// How many times the one tied block is applied.
    pub blocks: usize,
    /// Sinusoidal time-embedding size E (even, ≥ 4).
    pub temb_dim: usize,
}

/// One tensor of the flat parameter layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// PyTorch `state_dict` name (the tied block as `temp_fc.0.*`).
    pub name: &'static str,
    /// Rows (output features; the length for vectors).
    pub rows: usize,
    /// Columns (input features; 1 for vectors).
    pub cols: usize,
    /// Offset of the first element in the flat parameter slice.
    pub offset: usize,
}

impl TensorSpec {
    /// Number of elements, `rows · cols`.
    pub fn elements(&self) -> usize {
        self.rows.saturating_mul(self.cols)
    }

    /// The tensor's range in the flat parameter slice.
    pub fn range(&self) -> core::ops::Range<usize> {
        self.offset..self.offset.saturating_add(self.elements())
    }
}

impl MlpShape {
    /// The paper's 2D network: D = 2, W = E = 128, 3 tied blocks (67,074 parameters).
    pub const PAPER_2D: Self = Self {
        dim: 2,
        width: 128,
        blocks: 3,
        temb_dim: 128,
    };
    /// The paper's 1D network: D = 1, W = E = 128, 3 tied blocks (66,817 parameters).
    pub const PAPER_1D: Self = Self {
        dim: 1,
        width: 128,
        blocks: 3,
        temb_dim: 128,
    };
    /// Largest accepted data dimension.
    pub const MAX_DIM: usize = 4096;
    /// Largest accepted width (also bounds `temb_dim`).
    pub const MAX_WIDTH: usize = 2048;
    /// Largest accepted block count.
    pub const MAX_BLOCKS: usize = 64;

    /// Checks every size: `1 ≤ dim ≤ MAX_DIM`, `1 ≤ width ≤ MAX_WIDTH`,
    /// `1 ≤ blocks ≤ MAX_BLOCKS`, `temb_dim` even with `4 ≤ temb_dim ≤ MAX_WIDTH` (the
    /// embedding divides by E/2 − 1).
    ///
    /// # Errors
    /// [`Error::BadDimension`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), Error> {
        if self.dim == 0 || self.dim > Self::MAX_DIM {
            return Err(Error::BadDimension("dim"));
        }
        if self.width == 0 || self.width > Self::MAX_WIDTH {
            return Err(Error::BadDimension("width"));
        }
        if self.blocks == 0 || self.blocks > Self::MAX_BLOCKS {
            return Err(Error::BadDimension("blocks"));
        }
        if self.temb_dim < 4 || !self.temb_dim.is_multiple_of(2) || self.temb_dim > Self::MAX_WIDTH
        {
            return Err(Error::BadDimension("temb_dim"));
        }
        Ok(())
    }

    /// P = 2DW + D + 3W² + EW + 8W (saturating for shapes that fail [`MlpShape::validate`]).
    pub fn param_count(&self) -> usize {
        let [.., last] = self.tensors();
        last.offset.saturating_add(last.elements())
    }

    /// The flat layout, in storage order, with contiguous offsets starting at 0.
    pub fn tensors(&self) -> [TensorSpec; TENSOR_COUNT] {
        let (d, w, e) = (self.dim, self.width, self.temb_dim);
        let sizes: [(&'static str, usize, usize); TENSOR_COUNT] = [
            ("t_proj.0.weight", w, e),
            ("t_proj.0.bias", w, 1),
            ("in_fc.weight", w, d),
            ("temp_fc.0.norm1.weight", w, 1),
            ("temp_fc.0.norm1.bias", w, 1),
            ("temp_fc.0.fc1.weight", w, w),
            ("temp_fc.0.enc.weight", w, w),
            ("temp_fc.0.enc.bias", w, 1),
            ("temp_fc.0.norm2.weight", w, 1),
            ("temp_fc.0.norm2.bias", w, 1),
            ("temp_fc.0.fc2.weight", w, w),
            ("out_norm.weight", w, 1),
            ("out_norm.bias", w, 1),
            ("out_fc.weight", d, w),
            ("out_fc.bias", d, 1),
        ];
        let mut offset = 0usize;
        sizes.map(|(name, rows, cols)| {
            let spec = TensorSpec {
                name,
                rows,
                cols,
                offset,
            };
            offset = offset.saturating_add(spec.elements());
            spec
        })
    }

    /// Scratch (f32 elements) that [`Denoiser::predict`] and [`Denoiser::predict_jvp`] need:
    /// `W + max(W + E, 6W)`. The finer-grained calls need less: [`Mlp::time_branch`] E,
    /// [`Mlp::time_bias`] W + E, [`Mlp::forward_with_bias`] 3W, [`Mlp::forward_with_time`] 4W,
    /// [`Mlp::forward_jvp_with_bias`] 6W.
    pub fn scratch_len(&self) -> usize {
        let w = self.width;
        let time = w.saturating_add(self.temb_dim);
        let body = w.saturating_mul(6);
        w.saturating_add(time.max(body))
    }
}

/// The 15 tensors of a validated network, borrowed from the flat slice.
#[derive(Clone, Copy, Debug)]
struct Weights<'a> {
    t_proj: &'a [f32],
    t_proj_bias: &'a [f32],
    in_fc: &'a [f32],
    norm1_weight: &'a [f32],
    norm1_bias: &'a [f32],
    fc1: &'a [f32],
    enc: &'a [f32],
    enc_bias: &'a [f32],
    norm2_weight: &'a [f32],
    norm2_bias: &'a [f32],
    fc2: &'a [f32],
    out_norm_weight: &'a [f32],
    out_norm_bias: &'a [f32],
    out_fc: &'a [f32],
    out_fc_bias: &'a [f32],
}

/// The paper's tied residual MLP over borrowed f32 parameters.
#[derive(Clone, Copy, Debug)]
pub struct Mlp<'a> {
    shape: MlpShape,
    params: &'a [f32],
    prediction: Prediction,
    w: Weights<'a>,
}

impl<'a> Mlp<'a> {
    /// Borrows `params` (the flat layout of [`MlpShape::tensors`]) as a network predicting ε̂
    /// (use [`Mlp::with_prediction`] for x̂0 or v̂ models).
    ///
    /// # Errors
    /// [`Error::BadDimension`] from [`MlpShape::validate`]; [`Error::ShapeMismatch`]`("params")`
    /// if `params.len() != shape.param_count()`; [`Error::NonFiniteWeight`] naming the first
    /// tensor holding a NaN or ±∞.
    pub fn new(shape: MlpShape, params: &'a [f32]) -> Result<Self, Error> {
        shape.validate()?;
        if params.len() != shape.param_count() {
            return Err(Error::ShapeMismatch("params"));
        }
        let mut slices: [&'a [f32]; TENSOR_COUNT] = [&[]; TENSOR_COUNT];
        for (slot, spec) in slices.iter_mut().zip(shape.tensors()) {
            let tensor = params
                .get(spec.range())
                .ok_or(Error::ShapeMismatch(spec.name))?;
            if !tensor.iter().all(|v| v.is_finite()) {
                return Err(Error::NonFiniteWeight(spec.name));
            }
            *slot = tensor;
        }
        let [
            t_proj,
            t_proj_bias,
            in_fc,
            norm1_weight,
            norm1_bias,
            fc1,
            enc,
            enc_bias,
            norm2_weight,
            norm2_bias,
            fc2,
            out_norm_weight,
            out_norm_bias,
            out_fc,
            out_fc_bias,
        ] = slices;
        Ok(Self {
            shape,
            params,
            prediction: Prediction::Epsilon,
            w: Weights {
                t_proj,
                t_proj_bias,
                in_fc,
                norm1_weight,
                norm1_bias,
                fc1,
                enc,
                enc_bias,
                norm2_weight,
                norm2_bias,
                fc2,
                out_norm_weight,
                out_norm_bias,
                out_fc,
                out_fc_bias,
            },
        })
    }

    /// The same network declaring another output parameterisation (a model file's header).
    pub fn with_prediction(self, prediction: Prediction) -> Self {
        Self { prediction, ..self }
    }

    /// The flat parameter slice.
    pub fn params(&self) -> &'a [f32] {
        self.params
    }

    /// The network's sizes.
    pub fn shape(&self) -> MlpShape {
        self.shape
    }

    /// The sinusoidal embedding of integer timestep `t`, in PyTorch's f32 arithmetic:
    /// half = E/2, c = ln(1e4)/(half − 1) in f64, f_k = f32(exp(f64(−(k·f32(c))))),
    /// arg_k = f32(t)·f_k in f32, `out[k] = sin(arg_k)`, `out[half + k] = cos(arg_k)` (f64
    /// libm, rounded to f32).
    ///
    /// Writes the first `min(temb_dim, out.len())` entries; `temb_dim` should be even and ≥ 4
    /// as [`MlpShape::validate`] demands (for E = 2 the frequencies are NaN, as in PyTorch).
    pub fn time_embedding(temb_dim: usize, t: u32, out: &mut [f32]) {
        let half = temb_dim / 2;
        let c = (math::ln_f64(10_000.0) / (half as f64 - 1.0)) as f32;
        let t = t as f32;
        let arg = |k: usize| {
            let freq = math::exp_f64(f64::from(-((k as f32) * c))) as f32;
            f64::from(t * freq)
        };
        let (sines, cosines) = out.split_at_mut(half.min(out.len()));
        for (k, sin_k) in sines.iter_mut().enumerate() {
            *sin_k = math::sin_f64(arg(k)) as f32;
        }
        for (k, cos_k) in cosines.iter_mut().take(half).enumerate() {
            *cos_k = math::cos_f64(arg(k)) as f32;
        }
    }

    /// temb = LReLU(W_t·emb(t) + b_t), `temb_out.len() == W`, `scratch.len() ≥ E`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]`("temb")`, [`Error::BufferTooSmall`]`("scratch")`.
    pub fn time_branch(
        &self,
        t: u32,
        temb_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        if temb_out.len() != self.shape.width {
            return Err(Error::LengthMismatch("temb"));
        }
        let emb = scratch
            .get_mut(..self.shape.temb_dim)
            .ok_or(Error::BufferTooSmall("scratch"))?;
        Self::time_embedding(self.shape.temb_dim, t, emb);
        matvec(self.w.t_proj, emb, temb_out, Store::Set);
        add_assign(temb_out, self.w.t_proj_bias);
        leaky_relu(temb_out);
        Ok(())
    }

    /// The block time bias c = W_e·temb + b_e that all tied blocks add (`bias_out.len() == W`).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]`("temb")` / `("bias")`.
    pub fn block_bias(&self, temb: &[f32], bias_out: &mut [f32]) -> Result<(), Error> {
        if temb.len() != self.shape.width {
            return Err(Error::LengthMismatch("temb"));
        }
        if bias_out.len() != self.shape.width {
            return Err(Error::LengthMismatch("bias"));
        }
        matvec(self.w.enc, temb, bias_out, Store::Set);
        add_assign(bias_out, self.w.enc_bias);
        Ok(())
    }

    /// The whole time branch at `t`: c = W_e·LReLU(W_t·emb(t) + b_t) + b_e
    /// (`bias_out.len() == W`, `scratch.len() ≥ W + E`).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]`("bias")`, [`Error::BufferTooSmall`]`("scratch")`.
    pub fn time_bias(
        &self,
        t: u32,
        bias_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let (temb, rest) = scratch
            .split_at_mut_checked(self.shape.width)
            .ok_or(Error::BufferTooSmall("scratch"))?;
        self.time_branch(t, temb, rest)?;
        self.block_bias(temb, bias_out)
    }

    /// Tabulates [`Mlp::time_bias`] for t = 0, 1, … into `out` (row t at `out[t·W..]`,
    /// `out.len()` a multiple of W) for [`TimeCachedMlp`]; `scratch.len() ≥ W + E`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]`("time biases")`, [`Error::BufferTooSmall`]`("scratch")`.
    pub fn fill_time_biases(&self, out: &mut [f32], scratch: &mut [f32]) -> Result<(), Error> {
        let w = self.shape.width;
        if !out.len().is_multiple_of(w) || out.len() / w > u32::MAX as usize {
            return Err(Error::LengthMismatch("time biases"));
        }
        for (t, row) in (0u32..).zip(out.chunks_exact_mut(w)) {
            self.time_bias(t, row, scratch)?;
        }
        Ok(())
    }

    /// f(x) for every sample in `x` given the time embedding `temb` of [`Mlp::time_branch`]
    /// (`scratch.len() ≥ 4W`).
    ///
    /// # Errors
    /// As [`Mlp::forward_with_bias`], plus [`Error::LengthMismatch`]`("temb")`.
    pub fn forward_with_time(
        &self,
        temb: &[f32],
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let (bias, rest) = scratch
            .split_at_mut_checked(self.shape.width)
            .ok_or(Error::BufferTooSmall("scratch"))?;
        self.block_bias(temb, bias)?;
        self.forward_with_bias(bias, x, out, rest)
    }

    /// f(x) for every sample in `x` (back to back, `out` the same length) given the block
    /// time bias of [`Mlp::time_bias`] (`scratch.len() ≥ 3W`): the x path only,
    /// 2·(DW + 2·blocks·W² + WD) FLOP per sample plus O(blocks·W).
    ///
    /// # Accuracy
    /// Within abs 5e-5 + 5e-4·|ref| of an f64 evaluation of the same network (tested at
    /// D ∈ {1, 2, 5}, W ∈ {16, 128}, t ∈ [0, 999]; the worst case seen is ~1% of that bound).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"bias"`, `"x (not a multiple of dim)"`, `"out"`),
    /// [`Error::BufferTooSmall`]`("scratch")`.
    pub fn forward_with_bias(
        &self,
        bias: &[f32],
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let (d, w) = (self.shape.dim, self.shape.width);
        if bias.len() != w {
            return Err(Error::LengthMismatch("bias"));
        }
        check_lengths(d, x.len(), out.len(), scratch.len(), w.saturating_mul(3))?;
        let mut bufs = scratch.chunks_exact_mut(w);
        let (Some(h), Some(a), Some(u)) = (bufs.next(), bufs.next(), bufs.next()) else {
            return Err(Error::BufferTooSmall("scratch"));
        };
        for (xs, os) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            self.forward_one(bias, xs, os, h, a, u);
        }
        Ok(())
    }

    /// Forward-mode JVP of [`Mlp::forward_with_bias`] (papers.md §9 D12): `out = f(x)`,
    /// `tangent_out = (∂f/∂x)·tangent`, sample by sample (`scratch.len() ≥ 6W`).
    ///
    /// # Errors
    /// As [`Mlp::forward_with_bias`], plus [`Error::LengthMismatch`]`("tangent")` /
    /// `("tangent_out")`.
    pub fn forward_jvp_with_bias(
        &self,
        bias: &[f32],
        x: &[f32],
        tangent: &[f32],
        out: &mut [f32],
        tangent_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let (d, w) = (self.shape.dim, self.shape.width);
        if bias.len() != w {
            return Err(Error::LengthMismatch("bias"));
        }
        check_lengths(d, x.len(), out.len(), scratch.len(), w.saturating_mul(6))?;
        if tangent.len() != x.len() {
            return Err(Error::LengthMismatch("tangent"));
        }
        if tangent_out.len() != x.len() {
            return Err(Error::LengthMismatch("tangent_out"));
        }
        let mut bufs = scratch.chunks_exact_mut(w);
        let (Some(h), Some(a), Some(u), Some(h_dot), Some(a_dot), Some(u_dot)) = (
            bufs.next(),
            bufs.next(),
            bufs.next(),
            bufs.next(),
            bufs.next(),
            bufs.next(),
        ) else {
            return Err(Error::BufferTooSmall("scratch"));
        };
        let samples = x
            .chunks_exact(d)
            .zip(tangent.chunks_exact(d))
            .zip(out.chunks_exact_mut(d).zip(tangent_out.chunks_exact_mut(d)));
        for ((xs, ts), (os, tos)) in samples {
            let primal = Buffers { h, a, u };
            let dual = Buffers {
                h: h_dot,
                a: a_dot,
                u: u_dot,
            };
            self.jvp_one(bias, (xs, ts), (os, tos), primal, dual);
        }
        Ok(())
    }

    /// [`Mlp::forward_with_bias`] for ONE sample (`x.len() == out.len() == D`), calling
    /// `probe(tap, block, values)` with every intermediate activation (see [`Tap`]); used to
    /// calibrate fixed-point scales and to compare paths layer by layer
    /// (`scratch.len() ≥ 3W`). The arithmetic is exactly that of the unprobed pass.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"bias"`, `"x"`, `"out"`), [`Error::BufferTooSmall`]`("scratch")`.
    pub fn forward_probed<P: FnMut(Tap, usize, &[f32])>(
        &self,
        bias: &[f32],
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
        probe: &mut P,
    ) -> Result<(), Error> {
        let (d, w) = (self.shape.dim, self.shape.width);
        if bias.len() != w {
            return Err(Error::LengthMismatch("bias"));
        }
        if x.len() != d {
            return Err(Error::LengthMismatch("x"));
        }
        if out.len() != d {
            return Err(Error::LengthMismatch("out"));
        }
        let mut bufs = scratch.chunks_exact_mut(w);
        let (Some(h), Some(a), Some(u)) = (bufs.next(), bufs.next(), bufs.next()) else {
            return Err(Error::BufferTooSmall("scratch"));
        };
        self.forward_one_probed(bias, x, out, h, a, u, probe);
        Ok(())
    }

    /// One sample of the forward pass; all buffers have length W.
    fn forward_one(
        &self,
        bias: &[f32],
        x: &[f32],
        out: &mut [f32],
        h: &mut [f32],
        a: &mut [f32],
        u: &mut [f32],
    ) {
        self.forward_one_probed(bias, x, out, h, a, u, &mut |_, _, _| {});
    }

    /// [`Mlp::forward_one`] reporting each intermediate to `probe` (a no-op closure compiles away).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn forward_one_probed<P: FnMut(Tap, usize, &[f32])>(
        &self,
        bias: &[f32],
        x: &[f32],
        out: &mut [f32],
        h: &mut [f32],
        a: &mut [f32],
        u: &mut [f32],
        probe: &mut P,
    ) {
        let w = &self.w;
        matvec(w.in_fc, x, h, Store::Set);
        probe(Tap::InFc, 0, h);
        for block in 0..self.shape.blocks {
            layer_norm(h, w.norm1_weight, w.norm1_bias, a);
            leaky_relu(a);
            probe(Tap::Norm1, block, a);
            matvec(w.fc1, a, u, Store::Set);
            add_assign(u, bias);
            probe(Tap::Fc1, block, u);
            layer_norm(u, w.norm2_weight, w.norm2_bias, a);
            leaky_relu(a);
            probe(Tap::Norm2, block, a);
            matvec(w.fc2, a, h, Store::Add);
            probe(Tap::Residual, block, h);
        }
        layer_norm(h, w.out_norm_weight, w.out_norm_bias, a);
        probe(Tap::OutNorm, 0, a);
        matvec(w.out_fc, a, out, Store::Set);
        add_assign(out, w.out_fc_bias);
        probe(Tap::Out, 0, out);
    }

    /// One sample of the forward pass with its tangent pass beside it (D12's rules).
    fn jvp_one(
        &self,
        bias: &[f32],
        (x, x_dot): (&[f32], &[f32]),
        (out, out_dot): (&mut [f32], &mut [f32]),
        p: Buffers<'_>,
        t: Buffers<'_>,
    ) {
        let w = &self.w;
        matvec(w.in_fc, x, p.h, Store::Set);
        matvec(w.in_fc, x_dot, t.h, Store::Set);
        for _ in 0..self.shape.blocks {
            let stats = layer_norm(p.h, w.norm1_weight, w.norm1_bias, p.a);
            layer_norm_tangent(p.h, t.h, stats, w.norm1_weight, t.a);
            leaky_relu_tangent(p.a, t.a);
            leaky_relu(p.a);
            matvec(w.fc1, p.a, p.u, Store::Set);
            add_assign(p.u, bias);
            matvec(w.fc1, t.a, t.u, Store::Set);
            let stats = layer_norm(p.u, w.norm2_weight, w.norm2_bias, p.a);
            layer_norm_tangent(p.u, t.u, stats, w.norm2_weight, t.a);
            leaky_relu_tangent(p.a, t.a);
            leaky_relu(p.a);
            matvec(w.fc2, p.a, p.h, Store::Add);
            matvec(w.fc2, t.a, t.h, Store::Add);
        }
        let stats = layer_norm(p.h, w.out_norm_weight, w.out_norm_bias, p.a);
        layer_norm_tangent(p.h, t.h, stats, w.out_norm_weight, t.a);
        matvec(w.out_fc, p.a, out, Store::Set);
        add_assign(out, w.out_fc_bias);
        matvec(w.out_fc, t.a, out_dot, Store::Set);
    }
}

/// An intermediate activation of the forward pass, as reported by [`Mlp::forward_probed`]
/// (with the block index for the per-block taps, 0 otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tap {
    /// h = W_in·x (W values).
    InFc,
    /// LReLU(LN₁(h)) in a block.
    Norm1,
    /// u = W_1·LReLU(LN₁(h)) + c in a block.
    Fc1,
    /// LReLU(LN₂(u)) in a block.
    Norm2,
    /// h after the block's residual update h += W_2·LReLU(LN₂(u)).
    Residual,
    /// LN_out(h).
    OutNorm,
    /// The network output (D values).
    Out,
}

/// The three width-W work vectors of one pass (primal or tangent).
struct Buffers<'s> {
    h: &'s mut [f32],
    a: &'s mut [f32],
    u: &'s mut [f32],
}

impl Denoiser for Mlp<'_> {
    fn dim(&self) -> usize {
        self.shape.dim
    }

    fn prediction(&self) -> Prediction {
        self.prediction
    }

    fn scratch_len(&self) -> usize {
        self.shape.scratch_len()
    }

    /// Computes the time branch, then [`Mlp::forward_with_bias`] for every sample.
    fn predict(
        &self,
        model_t: u32,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        check_lengths(
            self.shape.dim,
            x.len(),
            out.len(),
            scratch.len(),
            self.scratch_len(),
        )?;
        let (bias, rest) = scratch
            .split_at_mut_checked(self.shape.width)
            .ok_or(Error::BufferTooSmall("scratch"))?;
        self.time_bias(model_t, bias, rest)?;
        self.forward_with_bias(bias, x, out, rest)
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
        check_lengths(
            self.shape.dim,
            x.len(),
            out.len(),
            scratch.len(),
            self.scratch_len(),
        )?;
        let (bias, rest) = scratch
            .split_at_mut_checked(self.shape.width)
            .ok_or(Error::BufferTooSmall("scratch"))?;
        self.time_bias(model_t, bias, rest)?;
        self.forward_jvp_with_bias(bias, x, tangent, out, tangent_out, rest)
    }
}

/// An [`Mlp`] with its time branch tabulated per model timestep: row t of `biases` is
/// [`Mlp::time_bias`]`(t)` (fill it with [`Mlp::fill_time_biases`]). Each prediction then
/// costs the x path only, which is what a batch-1 trajectory wants.
#[derive(Clone, Copy, Debug)]
pub struct TimeCachedMlp<'a> {
    mlp: Mlp<'a>,
    biases: &'a [f32],
}

impl<'a> TimeCachedMlp<'a> {
    /// Pairs `mlp` with its bias table (`biases.len()` a non-zero multiple of W, all finite).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]`("time biases")`, [`Error::NonFinite`]`("time biases")`.
    pub fn new(mlp: Mlp<'a>, biases: &'a [f32]) -> Result<Self, Error> {
        let w = mlp.shape.width;
        if biases.is_empty() || !biases.len().is_multiple_of(w) {
            return Err(Error::LengthMismatch("time biases"));
        }
        if !biases.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite("time biases"));
        }
        Ok(Self { mlp, biases })
    }

    /// The wrapped network.
    pub fn mlp(&self) -> Mlp<'a> {
        self.mlp
    }

    /// Number of tabulated timesteps (valid `model_t` are `0..timesteps()`).
    pub fn timesteps(&self) -> usize {
        self.biases.len() / self.mlp.shape.width
    }

    fn bias(&self, model_t: u32) -> Result<&'a [f32], Error> {
        self.biases
            .chunks_exact(self.mlp.shape.width)
            .nth(model_t as usize)
            .ok_or(Error::StepOutOfRange)
    }
}

impl Denoiser for TimeCachedMlp<'_> {
    fn dim(&self) -> usize {
        self.mlp.shape.dim
    }

    fn prediction(&self) -> Prediction {
        self.mlp.prediction
    }

    fn scratch_len(&self) -> usize {
        self.mlp.shape.width.saturating_mul(6)
    }

    fn predict(
        &self,
        model_t: u32,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.mlp
            .forward_with_bias(self.bias(model_t)?, x, out, scratch)
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
        self.mlp
            .forward_jvp_with_bias(self.bias(model_t)?, x, tangent, out, tangent_out, scratch)
    }
}

/// Whether [`matvec`] overwrites or accumulates into its output.
#[derive(Clone, Copy)]
enum Store {
    Set,
    Add,
}

impl Store {
    #[inline(always)]
    fn apply(self, dst: &mut f32, value: f32) {
        match self {
            Self::Set => *dst = value,
            Self::Add => *dst += value,
        }
    }
}

/// `out (=|+=) W·x` for row-major `W` with `out.len()` rows of `x.len()` columns.
///
/// Summation order (fixed, the same on every target): row r's dot product keeps LANES
/// accumulators, lane j summing w[r][k]·x[k] for k ≡ j (mod LANES) in increasing k; the lanes
/// are combined by [`horizontal_sum`]'s fixed tree, then the `cols % LANES` tail products
/// (summed left to right) are added. The kernel walks ROWS rows per pass so each chunk of x
/// is loaded once for ROWS rows (≈ 1.6× faster on SSE2, ≈ 2.9× with AVX2 than one row at a
/// time); the pass count changes no sum, so results are bit-identical to a row-by-row loop.
#[inline]
fn matvec(w: &[f32], x: &[f32], out: &mut [f32], store: Store) {
    let cols = x.len();
    if cols == 0 {
        out.iter_mut().for_each(|o| store.apply(o, 0.0));
        return;
    }
    let rows = out.len().min(w.len() / cols);
    let (Some(w), Some(out)) = (w.get(..rows * cols), out.get_mut(..rows)) else {
        return;
    };
    let mut out_blocks = out.chunks_exact_mut(ROWS);
    let mut w_blocks = w.chunks_exact(cols * ROWS);
    for (o, block) in (&mut out_blocks).zip(&mut w_blocks) {
        let mut block_rows: [&[f32]; ROWS] = [&[]; ROWS];
        for (r, row) in block_rows.iter_mut().zip(block.chunks_exact(cols)) {
            *r = row;
        }
        for (dst, value) in o.iter_mut().zip(dots(block_rows, x)) {
            store.apply(dst, value);
        }
    }
    let rest = w_blocks.remainder().chunks_exact(cols);
    for (dst, row) in out_blocks.into_remainder().iter_mut().zip(rest) {
        let [value] = dots([row], x);
        store.apply(dst, value);
    }
}

/// The R dot products `rows[r]·x` (each row as long as x), in [`matvec`]'s order.
#[inline(always)]
fn dots<const R: usize>(rows: [&[f32]; R], x: &[f32]) -> [f32; R] {
    let (x_chunks, x_tail) = x.as_chunks::<LANES>();
    let w_chunks: [&[[f32; LANES]]; R] = rows.map(|r| r.as_chunks::<LANES>().0);
    let mut acc = [[0.0f32; LANES]; R];
    for (c, xv) in x_chunks.iter().enumerate() {
        for (a, wc) in acc.iter_mut().zip(w_chunks.iter()) {
            if let Some(wv) = wc.get(c) {
                for ((s, &p), &q) in a.iter_mut().zip(wv).zip(xv) {
                    *s += p * q;
                }
            }
        }
    }
    let mut out = [0.0f32; R];
    for ((o, a), row) in out.iter_mut().zip(acc.iter()).zip(rows.iter()) {
        let tail: f32 = row
            .as_chunks::<LANES>()
            .1
            .iter()
            .zip(x_tail)
            .map(|(&p, &q)| p * q)
            .sum();
        *o = horizontal_sum(*a) + tail;
    }
    out
}

/// Σᵢ f(xᵢ) with LANES independent accumulators.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (chunks, rest) = x.as_chunks::<LANES>();
    let tail: f32 = rest.iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (s, &v) in acc.iter_mut().zip(c) {
            *s += f(v);
        }
    }
    horizontal_sum(acc) + tail
}

/// Pairwise sum of the lanes.
#[inline(always)]
fn horizontal_sum(acc: [f32; LANES]) -> f32 {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))
}

/// `dst += src` elementwise.
#[inline(always)]
fn add_assign(dst: &mut [f32], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// LeakyReLU in place: v if v > 0, else slope·v.
#[inline(always)]
fn leaky_relu(v: &mut [f32]) {
    for e in v {
        *e = if *e > 0.0 { *e } else { *e * LEAKY_RELU_SLOPE };
    }
}

/// Tangent of LeakyReLU at pre-activation `pre`: ẏ = ẋ where pre > 0, slope·ẋ elsewhere.
#[inline(always)]
fn leaky_relu_tangent(pre: &[f32], v_dot: &mut [f32]) {
    for (d, &p) in v_dot.iter_mut().zip(pre) {
        *d = if p > 0.0 { *d } else { *d * LEAKY_RELU_SLOPE };
    }
}

/// Mean and 1/√(var + eps) of a LayerNorm input.
#[derive(Clone, Copy)]
struct NormStats {
    mean: f32,
    inv_std: f32,
}

/// `out = γ ⊙ (x − mean)/√(var + eps) + β` with the biased variance; returns the statistics.
#[inline(always)]
fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], out: &mut [f32]) -> NormStats {
    let n = x.len() as f32;
    let mean = lane_sum(x, |v| v) / n;
    let var = lane_sum(x, |v| (v - mean) * (v - mean)) / n;
    let inv_std = 1.0 / math::sqrt(var + LAYER_NORM_EPS);
    for (((o, &v), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
        *o = (v - mean) * inv_std * g + b;
    }
    NormStats { mean, inv_std }
}

/// LayerNorm tangent (D12): u̇ = ẋ − mean ẋ, n = (x − mean)/s, ṅ = (u̇ − n·mean(n ⊙ u̇))/s,
/// ẏ = γ ⊙ ṅ.
#[inline(always)]
fn layer_norm_tangent(
    x: &[f32],
    x_dot: &[f32],
    stats: NormStats,
    gamma: &[f32],
    out_dot: &mut [f32],
) {
    let n = x.len() as f32;
    let NormStats { mean, inv_std } = stats;
    let mean_dot = lane_sum(x_dot, |v| v) / n;
    let mut acc = 0.0f32;
    for (&v, &vd) in x.iter().zip(x_dot) {
        acc += (v - mean) * inv_std * (vd - mean_dot);
    }
    let mean_n_u = acc / n;
    for (((o, &v), &vd), &g) in out_dot.iter_mut().zip(x).zip(x_dot).zip(gamma) {
        let normed = (v - mean) * inv_std;
        *o = g * ((vd - mean_dot) - normed * mean_n_u) * inv_std;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};
    use std::vec;
    use std::vec::Vec;

    fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((rng.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0))
    }

    /// The contract's layout written out independently: (rows, cols) in storage order.
    fn layout(s: MlpShape) -> [(usize, usize); 15] {
        let (d, w, e) = (s.dim, s.width, s.temb_dim);
        [
            (w, e),
            (w, 1),
            (w, d),
            (w, 1),
            (w, 1),
            (w, w),
            (w, w),
            (w, 1),
            (w, 1),
            (w, 1),
            (w, w),
            (w, 1),
            (w, 1),
            (d, w),
            (d, 1),
        ]
    }

    /// Random parameters: Xavier-uniform matrices, non-trivial LayerNorm affines and biases.
    fn random_params(s: MlpShape, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = Vec::new();
        for (i, (rows, cols)) in layout(s).into_iter().enumerate() {
            for _ in 0..rows * cols {
                let v = match i {
                    3 | 8 | 11 => uniform(&mut rng, 0.5, 1.5), // LayerNorm γ
                    _ if cols > 1 || i == 2 => {
                        let a = (6.0 / (rows + cols) as f64).sqrt();
                        uniform(&mut rng, -a, a)
                    }
                    _ => uniform(&mut rng, -0.3, 0.3), // biases and LayerNorm β
                };
                p.push(v as f32);
            }
        }
        p
    }

    /// An independent f64 implementation of the network, reading the flat f32 parameters.
    struct Reference {
        s: MlpShape,
        tensors: Vec<Vec<f64>>,
    }

    impl Reference {
        fn new(s: MlpShape, params: &[f32]) -> Self {
            let mut tensors = Vec::new();
            let mut at = 0;
            for (rows, cols) in layout(s) {
                tensors.push(
                    params[at..at + rows * cols]
                        .iter()
                        .map(|&v| v as f64)
                        .collect(),
                );
                at += rows * cols;
            }
            assert_eq!(at, params.len());
            Self { s, tensors }
        }

        fn linear(&self, i: usize, x: &[f64]) -> Vec<f64> {
            let w = &self.tensors[i];
            (0..w.len() / x.len())
                .map(|o| (0..x.len()).map(|j| w[o * x.len() + j] * x[j]).sum())
                .collect()
        }

        fn layer_norm(&self, gi: usize, x: &[f64]) -> Vec<f64> {
            let n = x.len() as f64;
            let mean = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let (g, b) = (&self.tensors[gi], &self.tensors[gi + 1]);
            (0..x.len())
                .map(|j| (x[j] - mean) / (var + 1e-5).sqrt() * g[j] + b[j])
                .collect()
        }

        fn lrelu(x: Vec<f64>) -> Vec<f64> {
            x.into_iter()
                .map(|v| if v > 0.0 { v } else { 0.02 * v })
                .collect()
        }

        /// emb as the contract defines it (f32 frequency and argument, f64 sin/cos).
        fn embedding(&self, t: u32) -> Vec<f64> {
            let half = self.s.temb_dim / 2;
            let c = ((10000f64).ln() / (half - 1) as f64) as f32;
            let args: Vec<f32> = (0..half)
                .map(|k| t as f32 * ((-(k as f32 * c)) as f64).exp() as f32)
                .collect();
            let mut e: Vec<f64> = args
                .iter()
                .map(|&a| ((a as f64).sin() as f32) as f64)
                .collect();
            e.extend(args.iter().map(|&a| ((a as f64).cos() as f32) as f64));
            e
        }

        fn forward(&self, t: u32, x: &[f64]) -> Vec<f64> {
            let add = |a: Vec<f64>, b: &[f64]| -> Vec<f64> {
                a.iter().zip(b).map(|(p, q)| p + q).collect()
            };
            let temb = Self::lrelu(add(self.linear(0, &self.embedding(t)), &self.tensors[1]));
            let mut h = self.linear(2, x);
            for _ in 0..self.s.blocks {
                let a = Self::lrelu(self.layer_norm(3, &h));
                let mut u = self.linear(5, &a);
                u = add(u, &self.linear(6, &temb));
                u = add(u, &self.tensors[7]);
                let a = Self::lrelu(self.layer_norm(8, &u));
                h = add(h, &self.linear(10, &a));
            }
            let n = self.layer_norm(11, &h);
            add(self.linear(13, &n), &self.tensors[14])
        }
    }

    fn random_x(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| uniform(rng, -3.0, 3.0) as f32).collect()
    }

    #[test]
    fn paper_parameter_counts_and_contiguous_offsets() {
        assert_eq!(MlpShape::PAPER_2D.param_count(), 67_074);
        assert_eq!(MlpShape::PAPER_1D.param_count(), 66_817);
        let shapes = [
            MlpShape::PAPER_2D,
            MlpShape::PAPER_1D,
            MlpShape {
                dim: 5,
                width: 16,
                blocks: 2,
                temb_dim: 32,
            },
            MlpShape {
                dim: 784,
                width: 512,
                blocks: 4,
                temb_dim: 64,
            },
        ];
        for s in shapes {
            let (d, w, e) = (s.dim, s.width, s.temb_dim);
            let closed_form = 2 * d * w + d + 3 * w * w + e * w + 8 * w;
            assert_eq!(s.param_count(), closed_form, "{s:?}");
            let specs = s.tensors();
            assert_eq!(specs[0].offset, 0);
            for (pair, (rows, cols)) in specs.windows(2).zip(layout(s).into_iter().skip(1)) {
                assert_eq!(pair[1].offset, pair[0].offset + pair[0].elements());
                assert_eq!(
                    (pair[1].rows, pair[1].cols),
                    (rows, cols),
                    "{}",
                    pair[1].name
                );
            }
            assert_eq!(specs[14].range().end, closed_form);
            let mut names: Vec<&str> = specs.iter().map(|t| t.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), 15);
        }
        assert_eq!(MlpShape::PAPER_2D.tensors()[5].name, "temp_fc.0.fc1.weight");
    }

    #[test]
    fn shape_validation_rejects_absurd_sizes() {
        let ok = MlpShape::PAPER_2D;
        assert_eq!(ok.validate(), Ok(()));
        let cases = [
            (MlpShape { dim: 0, ..ok }, "dim"),
            (
                MlpShape {
                    dim: MlpShape::MAX_DIM + 1,
                    ..ok
                },
                "dim",
            ),
            (MlpShape { width: 0, ..ok }, "width"),
            (
                MlpShape {
                    width: usize::MAX,
                    ..ok
                },
                "width",
            ),
            (MlpShape { blocks: 0, ..ok }, "blocks"),
            (MlpShape { blocks: 65, ..ok }, "blocks"),
            (MlpShape { temb_dim: 2, ..ok }, "temb_dim"),
            (
                MlpShape {
                    temb_dim: 127,
                    ..ok
                },
                "temb_dim",
            ),
            (
                MlpShape {
                    temb_dim: 1 << 40,
                    ..ok
                },
                "temb_dim",
            ),
        ];
        for (shape, field) in cases {
            assert_eq!(
                shape.validate(),
                Err(Error::BadDimension(field)),
                "{shape:?}"
            );
            assert_eq!(Mlp::new(shape, &[]).err(), Some(Error::BadDimension(field)));
        }
        // Absurd shapes never overflow while being described.
        let huge = MlpShape {
            dim: usize::MAX,
            width: usize::MAX,
            blocks: 1,
            temb_dim: usize::MAX,
        };
        assert_eq!(huge.param_count(), usize::MAX);
        let _ = huge.scratch_len();
    }

    #[test]
    fn new_names_the_bad_tensor_and_checks_length() {
        let s = MlpShape {
            dim: 3,
            width: 8,
            blocks: 2,
            temb_dim: 6,
        };
        let good = random_params(s, 1);
        assert!(Mlp::new(s, &good).is_ok());
        assert_eq!(
            Mlp::new(s, &good[1..]).err(),
            Some(Error::ShapeMismatch("params"))
        );
        let mut long = good.clone();
        long.push(0.0);
        assert_eq!(
            Mlp::new(s, &long).err(),
            Some(Error::ShapeMismatch("params"))
        );
        for spec in s.tensors() {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut p = good.clone();
                p[spec.offset + spec.elements() - 1] = bad;
                assert_eq!(
                    Mlp::new(s, &p).err(),
                    Some(Error::NonFiniteWeight(spec.name))
                );
            }
        }
    }

    #[test]
    fn time_embedding_is_the_sinusoid() {
        for e in [4usize, 16, 128] {
            let half = e / 2;
            for t in [0u32, 1, 17, 500, 999] {
                let mut out = vec![f32::NAN; e];
                Mlp::time_embedding(e, t, &mut out);
                for k in 0..half {
                    let f = (-(k as f64) * 10000f64.ln() / (half - 1) as f64).exp();
                    let arg = t as f64 * f;
                    // f32 frequency and argument (as PyTorch) cost up to ~1e-4 at t = 999.
                    assert!(
                        (out[k] as f64 - arg.sin()).abs() < 2e-4,
                        "e {e} t {t} k {k}"
                    );
                    assert!(
                        (out[half + k] as f64 - arg.cos()).abs() < 2e-4,
                        "e {e} t {t} k {k}"
                    );
                }
                if t == 0 {
                    assert!(
                        out[..half].iter().all(|&v| v == 0.0)
                            && out[half..].iter().all(|&v| v == 1.0)
                    );
                }
            }
        }
        // A short buffer is filled as far as it goes, never past its end.
        let mut full = [0.0f32; 8];
        Mlp::time_embedding(8, 3, &mut full);
        let mut short = [7.0f32; 3];
        Mlp::time_embedding(8, 3, &mut short);
        assert_eq!(short, full[..3]);
    }

    #[test]
    fn forward_matches_f64_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut worst = 0.0f64;
        for (i, &(dim, width, blocks, temb_dim)) in [
            (1, 16, 1, 32),
            (2, 16, 3, 16),
            (5, 16, 2, 8),
            (1, 128, 3, 128),
            (2, 128, 3, 128),
            (5, 128, 2, 64),
        ]
        .iter()
        .enumerate()
        {
            let s = MlpShape {
                dim,
                width,
                blocks,
                temb_dim,
            };
            let params = random_params(s, 100 + i as u64);
            let mlp = Mlp::new(s, &params).unwrap();
            let reference = Reference::new(s, &params);
            let mut scratch = vec![0.0f32; s.scratch_len()];
            for t in [0u32, 1, 9, 250, 998, 999] {
                let x = random_x(&mut rng, 4 * dim);
                let mut out = vec![0.0f32; x.len()];
                mlp.predict(t, &x, &mut out, &mut scratch).unwrap();
                for (xs, os) in x.chunks(dim).zip(out.chunks(dim)) {
                    let xr: Vec<f64> = xs.iter().map(|&v| v as f64).collect();
                    let r = reference.forward(t, &xr);
                    for (&o, &r) in os.iter().zip(&r) {
                        let err = (o as f64 - r).abs();
                        worst = worst.max(err / (5e-5 + 5e-4 * r.abs()));
                        assert!(err <= 5e-5 + 5e-4 * r.abs(), "{s:?} t {t}: {o} vs {r}");
                    }
                }
            }
        }
        std::println!("worst error / tolerance: {worst:.3}");
    }

    #[test]
    fn batched_and_split_paths_agree_bitwise() {
        let s = MlpShape::PAPER_2D;
        let params = random_params(s, 3);
        let mlp = Mlp::new(s, &params).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x = random_x(&mut rng, 2 * 5);
        let mut scratch = vec![0.0f32; s.scratch_len()];
        let t = 321;
        let mut batched = vec![0.0f32; x.len()];
        mlp.predict(t, &x, &mut batched, &mut scratch).unwrap();
        let mut temb = vec![0.0f32; s.width];
        mlp.time_branch(t, &mut temb, &mut scratch).unwrap();
        let mut via_temb = vec![0.0f32; x.len()];
        mlp.forward_with_time(&temb, &x, &mut via_temb, &mut scratch)
            .unwrap();
        assert_eq!(batched, via_temb);
        for (xs, bs) in x.chunks(2).zip(batched.chunks(2)) {
            let mut one = [0.0f32; 2];
            mlp.predict(t, xs, &mut one, &mut scratch).unwrap();
            assert_eq!(&one, bs);
        }
        let mut table = vec![0.0f32; 400 * s.width];
        mlp.fill_time_biases(&mut table, &mut scratch).unwrap();
        let cached = TimeCachedMlp::new(mlp, &table).unwrap();
        assert_eq!(cached.timesteps(), 400);
        let mut via_cache = vec![0.0f32; x.len()];
        cached.predict(t, &x, &mut via_cache, &mut scratch).unwrap();
        assert_eq!(batched, via_cache);
        assert_eq!(
            cached.predict(400, &x, &mut via_cache, &mut scratch),
            Err(Error::StepOutOfRange)
        );
        assert_eq!(
            TimeCachedMlp::new(mlp, &table[1..]).err(),
            Some(Error::LengthMismatch("time biases"))
        );
        let mut bad = table.clone();
        bad[5] = f32::NAN;
        assert_eq!(
            TimeCachedMlp::new(mlp, &bad).err(),
            Some(Error::NonFinite("time biases"))
        );
    }

    #[test]
    fn bad_buffers_are_errors() {
        let s = MlpShape {
            dim: 2,
            width: 8,
            blocks: 1,
            temb_dim: 8,
        };
        let params = random_params(s, 5);
        let mlp = Mlp::new(s, &params).unwrap();
        let mut scratch = vec![0.0f32; s.scratch_len()];
        let mut out = [0.0f32; 4];
        assert_eq!(
            mlp.predict(0, &[1.0; 3], &mut out[..3], &mut scratch),
            Err(Error::LengthMismatch("x (not a multiple of dim)"))
        );
        assert_eq!(
            mlp.predict(0, &[1.0; 4], &mut out[..2], &mut scratch),
            Err(Error::LengthMismatch("out"))
        );
        assert_eq!(
            mlp.predict(0, &[1.0; 4], &mut out, &mut scratch[1..]),
            Err(Error::BufferTooSmall("scratch"))
        );
        let mut tan = [0.0f32; 2];
        assert_eq!(
            mlp.predict_jvp(0, &[1.0; 4], &[1.0; 4], &mut out, &mut tan, &mut scratch),
            Err(Error::LengthMismatch("tangent_out"))
        );
        assert_eq!(
            mlp.predict_jvp(
                0,
                &[1.0; 4],
                &[1.0; 2],
                &mut out,
                &mut [0.0; 4],
                &mut scratch
            ),
            Err(Error::LengthMismatch("tangent"))
        );
        assert_eq!(
            mlp.time_branch(0, &mut [0.0; 7], &mut scratch),
            Err(Error::LengthMismatch("temb"))
        );
        assert_eq!(
            mlp.time_branch(0, &mut [0.0; 8], &mut [0.0; 7]),
            Err(Error::BufferTooSmall("scratch"))
        );
        assert_eq!(
            mlp.fill_time_biases(&mut [0.0; 9], &mut scratch),
            Err(Error::LengthMismatch("time biases"))
        );
        assert_eq!(
            mlp.with_prediction(Prediction::Sample).prediction(),
            Prediction::Sample
        );
        assert_eq!(mlp.prediction(), Prediction::Epsilon);
    }

    #[test]
    fn jvp_matches_central_differences_of_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let shapes = [
            MlpShape::PAPER_1D,
            MlpShape::PAPER_2D,
            MlpShape {
                dim: 7,
                width: 32,
                blocks: 2,
                temb_dim: 16,
            },
        ];
        for (i, s) in shapes.into_iter().enumerate() {
            let params = random_params(s, 200 + i as u64);
            let mlp = Mlp::new(s, &params).unwrap();
            let reference = Reference::new(s, &params);
            let mut scratch = vec![0.0f32; s.scratch_len()];
            for t in [0u32, 10, 600, 999] {
                let x = random_x(&mut rng, 3 * s.dim);
                let u = random_x(&mut rng, 3 * s.dim);
                let mut out = vec![0.0f32; x.len()];
                let mut tangent_out = vec![0.0f32; x.len()];
                mlp.predict_jvp(t, &x, &u, &mut out, &mut tangent_out, &mut scratch)
                    .unwrap();
                let mut plain = vec![0.0f32; x.len()];
                mlp.predict(t, &x, &mut plain, &mut scratch).unwrap();
                assert_eq!(out, plain, "the JVP's primal is the forward pass");
                let h = 1e-6;
                for ((xs, us), ts) in x
                    .chunks(s.dim)
                    .zip(u.chunks(s.dim))
                    .zip(tangent_out.chunks(s.dim))
                {
                    let shifted = |sign: f64| -> Vec<f64> {
                        let xp: Vec<f64> = xs
                            .iter()
                            .zip(us)
                            .map(|(&a, &b)| a as f64 + sign * h * b as f64)
                            .collect();
                        reference.forward(t, &xp)
                    };
                    let (plus, minus) = (shifted(1.0), shifted(-1.0));
                    let scale = ts.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
                    for (j, &tj) in ts.iter().enumerate() {
                        let fd = (plus[j] - minus[j]) / (2.0 * h);
                        assert!(
                            (tj as f64 - fd).abs() <= 1e-4 + 1e-3 * scale,
                            "{s:?} t {t} j {j}: jvp {tj} vs fd {fd}"
                        );
                    }
                }
            }
        }
    }
}
