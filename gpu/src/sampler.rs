//! Batched DDPM/DDIM sampling of the model-file MLP with the Hal detector fused in.
//!
//! Per reverse step i (respaced index, steps−1 down to 0) and chunk of samples:
//! ε̂ = MLP(x_i, τ_i) on the GPU (x path: in_fc, `blocks`× tied residual block, out; papers.md
//! §1.2), with the time branch c_i = W_e·LReLU(W_t·emb(τ_i) + b_t) + b_e computed once per
//! step on the CPU by core ([`Mlp::time_bias`]: WGSL sin/cos are only specified on [−π, π]
//! and τ reaches 999 rad) and uploaded for all steps up front; then core's sampler update
//! (`mirage_core::sampler::step`, same f32 tables, same noise counter
//! normal(seed, STREAM_STEP, sample, i, d)) and the Hal update in one kernel. x_T is
//! normal(seed, STREAM_INIT, sample, 0, d), so a sample's noise equals the CPU path's for the
//! same (seed, sample index). Only the samples and the Hal scores are read back.
//!
//! With [`GpuSampler::with_postvar`], the steps of the posterior variance's step set run the
//! forward pass with its tangent rows beside it and add the score (`crate::postvar`) before
//! the step kernel moves x; the scores are read back with the samples.
//!
//! Batches are cut into chunks that fit the device's storage-binding and dispatch limits
//! (lavapipe: 128 MiB per binding, 65,535 workgroups per dimension).

use bytemuck::{Pod, Zeroable};
use mirage_core::Denoiser;
use mirage_core::mlp::{Mlp, MlpShape};
use mirage_core::noise::STREAM_INIT;
use mirage_core::sampler::{Clip, Method, Prediction, SamplerConfig, Variance};
use mirage_core::schedule::{Schedule, TableSet};

use mirage_core::detector::PostVarConfig;

use crate::kernels::{ELEMENTWISE_WG, Kernels, LINEAR_TILE, linear_flags};
use crate::postvar::{JvpLayerParams, PostVarPlan, PostVarScores};
use crate::{GpuContext, GpuError};

/// Steps recorded into one command buffer before it is submitted.
const STEPS_PER_SUBMIT: usize = 32;
/// Default cap on samples per chunk (bounds device memory: ~2·W·4 bytes per sample).
pub const DEFAULT_MAX_CHUNK: usize = 1 << 18;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct LayerParams {
    rows: u32,
    fan_in: u32,
    fan_out: u32,
    w_off: u32,
    gamma_off: u32,
    beta_off: u32,
    bias_off: u32,
    flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct StepParams {
    step: u32,
    prediction: u32,
    method: u32,
    clip: u32,
    clip_r: f32,
    lambda: f32,
    sigma: f32,
    dir_coef: f32,
    sqrt_alpha_bar: f32,
    sqrt_one_minus_alpha_bar: f32,
    inv_sqrt_alpha_bar: f32,
    sqrt_recip_alpha_bar_minus_one: f32,
    inv_sqrt_alpha: f32,
    eps_coef: f32,
    posterior_c1: f32,
    posterior_c2: f32,
    sqrt_alpha_bar_prev: f32,
    cov_factor: f32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct ChunkParams {
    rows: u32,
    dim: u32,
    sample_base: u32,
    seed_lo: u32,
    seed_hi: u32,
    window: u32,
    flags: u32,
    row_stride: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct NoiseParams {
    pub rows: u32,
    pub dim: u32,
    pub sample_base: u32,
    pub stream: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub step: u32,
    pub row_stride: u32,
}

const CHUNK_FLAG_WRITE_X0: u32 = 1;

/// What [`GpuSampler::sample`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuOutput {
    /// n samples of `dim` values, back to back (sample k at `[k·dim .. (k+1)·dim]`).
    pub samples: Vec<f32>,
    /// Hal score per sample (+∞ when an x̂0 of the window or the sample itself is not finite).
    pub hal: Vec<f32>,
    /// How many samples came back with a non-finite value (their Hal is +∞).
    pub non_finite: usize,
    /// Posterior-variance scores, when the sampler has one ([`GpuSampler::with_postvar`]).
    pub postvar: Option<PostVarScores>,
}

/// x_{i−1} and x̂0 of one debug step ([`GpuSampler::step`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    /// x_{i−1}.
    pub x_prev: Vec<f32>,
    /// x̂0 at step i.
    pub x0_hat: Vec<f32>,
}

/// Byte offsets (in f32 elements) of the tensors the kernels read.
#[derive(Clone, Copy, Debug)]
struct Offsets {
    in_fc: u32,
    norm1_w: u32,
    norm1_b: u32,
    fc1: u32,
    norm2_w: u32,
    norm2_b: u32,
    fc2: u32,
    out_norm_w: u32,
    out_norm_b: u32,
    out_fc: u32,
    out_fc_b: u32,
}

/// A model, schedule and sampler configuration resident on one device.
#[derive(Debug)]
pub struct GpuSampler {
    device: wgpu::Device,
    queue: wgpu::Queue,
    kernels: Kernels,
    shape: MlpShape,
    offsets: Offsets,
    steps: usize,
    window: u32,
    params: wgpu::Buffer,
    step_bias: wgpu::Buffer,
    step_uniforms: wgpu::Buffer,
    step_stride: u64,
    binding_limit: u64,
    max_chunk: usize,
    mlp_params: Vec<f32>,
    postvar: Option<PostVarPlan>,
}

impl GpuSampler {
    /// Uploads `mlp`, the time branch of every step of `schedule` and the per-step
    /// coefficients of `cfg`; `hal_window` is Hal's K (the last K steps, i < K).
    ///
    /// # Errors
    /// [`GpuError::Core`] if `cfg` is invalid, K is 0, the schedule has no steps or lacks a
    /// table (every coefficient is uploaded, so all 18 are needed: `Error::MissingTable`), a
    /// model time does not fit u32, λ_i is not positive or a weight is not finite;
    /// [`GpuError::InvalidInput`] if the model's prediction type differs from `cfg`'s;
    /// [`GpuError::TooLarge`] if the weights or the per-step tables exceed the device's
    /// storage-binding limit.
    pub fn new(
        ctx: &GpuContext,
        mlp: &Mlp,
        schedule: &Schedule,
        cfg: &SamplerConfig,
        hal_window: usize,
    ) -> Result<Self, GpuError> {
        cfg.validate()?;
        schedule.require(TableSet::ALL)?;
        // Re-validate the weights (shape, length, finiteness): a NaN weight is a clear error
        // here rather than NaN samples later.
        let mlp = Mlp::new(mlp.shape(), mlp.params())?.with_prediction(mlp.prediction());
        if mlp.prediction() != cfg.prediction {
            return Err(GpuError::InvalidInput(
                "the sampler config's prediction type differs from the model's",
            ));
        }
        if hal_window == 0 {
            return Err(mirage_core::Error::InvalidParameter(
                "detector window K must be at least 1",
            )
            .into());
        }
        let steps = schedule.steps();
        if steps == 0 {
            return Err(mirage_core::Error::InvalidParameter("schedule has no steps").into());
        }
        let shape = mlp.shape();
        let limits = ctx.limits();
        let binding_limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let params_bytes = (mlp.params().len() * 4) as u64;
        check_size("model weights", params_bytes, binding_limit)?;
        let step_bias_bytes = (steps * shape.width * 4) as u64;
        check_size("per-step time biases", step_bias_bytes, binding_limit)?;
        if shape.param_count() > u32::MAX as usize {
            return Err(GpuError::TooLarge {
                what: "model weights (u32 offsets)",
                bytes: params_bytes,
                limit: u64::from(u32::MAX),
            });
        }

        let mut step_params = Vec::with_capacity(steps);
        let mut biases = vec![0.0f32; steps * shape.width];
        let mut scratch = vec![0.0f32; shape.width + shape.temb_dim];
        for (i, row) in biases.chunks_exact_mut(shape.width).enumerate() {
            let c = schedule.coefs(i)?;
            mlp.time_bias(c.model_t, row, &mut scratch)?;
            step_params.push(step_params_for(cfg, schedule, i)?);
        }
        let step_stride = (std::mem::size_of::<StepParams>() as u64)
            .next_multiple_of(u64::from(limits.min_uniform_buffer_offset_alignment));
        let device = ctx.device().clone();
        let queue = ctx.queue().clone();
        let scope = ErrorScopes::push(&device);
        let kernels = Kernels::new(&device);
        let params = storage_init(&device, "mlp params", bytemuck::cast_slice(mlp.params()));
        let step_bias = storage_init(&device, "step biases", bytemuck::cast_slice(&biases));
        let step_uniforms = uniform_array(&device, &step_params, step_stride);
        scope.pop()?;
        let max_chunk = DEFAULT_MAX_CHUNK.min(chunk_cap(&limits, binding_limit, shape, 0)?);
        Ok(Self {
            device,
            queue,
            kernels,
            shape,
            offsets: offsets(shape),
            steps,
            window: hal_window.min(steps) as u32,
            params,
            step_bias,
            step_uniforms,
            step_stride,
            binding_limit,
            max_chunk,
            mlp_params: mlp.params().to_vec(),
            postvar: None,
        })
    }

    /// Adds the posterior-variance score (core's `PosteriorVariance` with `config`: the same
    /// directions, steps and scale) to [`GpuSampler::sample`]'s output; the chunk size shrinks
    /// so that the tangent rows (passes × samples) fit the device.
    ///
    /// # Errors
    /// [`GpuError::Core`] for 0 probes (`InvalidParameter`), the exact trace above
    /// `MAX_EXACT_DIM` (`CapacityExceeded`) or a step set reaching beyond the schedule
    /// (`StepOutOfRange`); [`GpuError::TooLarge`] if one sample's tangent rows exceed a
    /// storage binding or a dispatch.
    pub fn with_postvar(mut self, config: PostVarConfig) -> Result<Self, GpuError> {
        let plan = PostVarPlan::new(config, self.shape.dim, self.steps)?;
        let limits = self.device.limits();
        let cap = chunk_cap(&limits, self.binding_limit, self.shape, plan.passes)?;
        self.max_chunk = self.max_chunk.min(cap);
        self.postvar = Some(plan);
        Ok(self)
    }

    /// The posterior-variance configuration, if any.
    pub fn postvar(&self) -> Option<PostVarConfig> {
        self.postvar.map(|p| p.config)
    }

    /// One step's uniform inside the per-step array (bound with a dynamic offset).
    fn step_binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: &self.step_uniforms,
            offset: 0,
            size: wgpu::BufferSize::new(std::mem::size_of::<StepParams>() as u64),
        }
    }

    /// The network's sizes.
    pub fn shape(&self) -> MlpShape {
        self.shape
    }

    /// Reverse steps per trajectory.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The largest chunk of samples run at once.
    pub fn max_chunk(&self) -> usize {
        self.max_chunk
    }

    /// Caps the chunk size (at least 1; never above what the device allows).
    pub fn set_max_chunk(&mut self, samples: usize) {
        let passes = self.postvar.map_or(0, |p| p.passes);
        let limits = self.device.limits();
        // Positive: `new` and `with_postvar` checked it for this shape and these passes.
        let cap = chunk_cap(&limits, self.binding_limit, self.shape, passes).unwrap_or(1);
        self.max_chunk = samples.max(1).min(cap);
    }

    /// Samples `n` trajectories with sample indices `first_sample .. first_sample + n` and
    /// returns the samples and their Hal scores.
    ///
    /// # Errors
    /// [`GpuError::EmptyBatch`] for n = 0; [`GpuError::SampleIndexOverflow`] if the indices
    /// exceed u32; [`GpuError::Device`] on a device error.
    pub fn sample(&self, seed: u64, first_sample: u32, n: usize) -> Result<GpuOutput, GpuError> {
        check_batch(first_sample, n)?;
        let dim = self.shape.dim;
        let mut samples = Vec::with_capacity(n * dim);
        let mut hal = Vec::with_capacity(n);
        let mut pv = self.postvar.map(|_| PostVarScores {
            trace: Vec::with_capacity(n),
            frobenius: Vec::with_capacity(n),
        });
        let scope = ErrorScopes::push(&self.device);
        let ws = Workspace::new(self, n.min(self.max_chunk), &self.step_bias, false);
        let mut done = 0usize;
        while done < n {
            let rows = (n - done).min(self.max_chunk);
            let base = first_sample + done as u32;
            self.run_chunk(&ws, seed, base, rows)?;
            let (x, scores) = read_back(&self.device, &self.queue, &ws, rows * dim, rows)?;
            samples.extend_from_slice(&x);
            hal.extend_from_slice(&scores);
            if let (Some(out), Some(buffers)) = (pv.as_mut(), ws.pv.as_ref()) {
                let acc = read_buffer(&self.device, &self.queue, &buffers.acc, 2 * rows)?;
                let (trace, frobenius) = acc.split_at(rows);
                out.trace.extend_from_slice(trace);
                out.frobenius.extend_from_slice(frobenius);
            }
            done += rows;
        }
        scope.pop()?;
        // The GPU may not propagate NaN faithfully: check every value read back.
        let mut non_finite = 0;
        for (score, sample) in hal.iter_mut().zip(samples.chunks_exact(dim)) {
            if !sample.iter().all(|v| v.is_finite()) || score.is_nan() {
                *score = f32::INFINITY;
                non_finite += 1;
            }
        }
        if let Some(out) = pv.as_mut() {
            let rows = out.trace.iter_mut().zip(out.frobenius.iter_mut());
            for ((t, f), sample) in rows.zip(samples.chunks_exact(dim)) {
                if !sample.iter().all(|v| v.is_finite()) || t.is_nan() || f.is_nan() {
                    *t = f32::INFINITY;
                    *f = f32::INFINITY;
                }
            }
        }
        Ok(GpuOutput {
            samples,
            hal,
            non_finite,
            postvar: pv,
        })
    }

    fn run_chunk(&self, ws: &Workspace, seed: u64, base: u32, rows: usize) -> Result<(), GpuError> {
        let dim = self.shape.dim as u32;
        let rows_u = rows as u32;
        let (grid, stride) = self.elementwise_grid(rows * self.shape.dim)?;
        let (score_grid, score_stride) = self.elementwise_grid(rows)?;
        let noise = NoiseParams {
            rows: rows_u,
            dim,
            sample_base: base,
            stream: STREAM_INIT,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            step: 0,
            row_stride: stride,
        };
        self.queue
            .write_buffer(&ws.noise_u, 0, bytemuck::bytes_of(&noise));
        let chunk = ChunkParams {
            rows: rows_u,
            dim,
            sample_base: base,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            window: self.window,
            flags: 0,
            row_stride: stride,
        };
        self.queue
            .write_buffer(&ws.chunk_u, 0, bytemuck::bytes_of(&chunk));
        let score_chunk = ChunkParams {
            row_stride: score_stride,
            ..chunk
        };
        self.queue
            .write_buffer(&ws.score_u, 0, bytemuck::bytes_of(&score_chunk));
        self.write_layers(ws, rows_u);
        let pv_grids = self.write_postvar(ws, base, rows)?;

        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.kernels.noise.pipeline);
            pass.set_bind_group(0, &ws.noise_bg, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        }
        if let (Some(pv), Some(grids)) = (ws.pv.as_ref(), pv_grids) {
            encoder.clear_buffer(&pv.acc, 0, None);
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.encode_probes(&mut pass, pv, grids.probe);
        }
        let mut recorded = 0;
        for i in (0..self.steps).rev() {
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                let offset = (i as u64 * self.step_stride) as u32;
                let read_postvar = self.postvar.is_some_and(|p| p.config.steps.contains(i));
                match (ws.pv.as_ref(), pv_grids) {
                    (Some(pv), Some(grids)) if read_postvar => {
                        self.encode_forward_jvp(&mut pass, ws, pv, rows_u, offset);
                        self.encode_postvar(&mut pass, pv, grids.score, offset);
                    }
                    _ => self.encode_forward(&mut pass, ws, rows_u, offset),
                }
                pass.set_pipeline(&self.kernels.step.pipeline);
                pass.set_bind_group(0, &ws.step_bg, &[offset]);
                pass.dispatch_workgroups(grid.0, grid.1, 1);
            }
            recorded += 1;
            if recorded == STEPS_PER_SUBMIT && i > 0 {
                self.queue.submit([encoder.finish()]);
                encoder = self.device.create_command_encoder(&Default::default());
                recorded = 0;
            }
        }
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.kernels.hal_score.pipeline);
            pass.set_bind_group(0, &ws.score_bg, &[]);
            pass.dispatch_workgroups(score_grid.0, score_grid.1, 1);
        }
        self.queue.submit([encoder.finish()]);
        Ok(())
    }

    /// The x path of one forward pass over `rows` rows of `ws.x`, into `ws.eps`.
    fn encode_forward(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        ws: &Workspace,
        rows: u32,
        step_offset: u32,
    ) {
        let w = self.shape.width as u32;
        let d = self.shape.dim as u32;
        let row_groups = rows.div_ceil(LINEAR_TILE);
        pass.set_pipeline(&self.kernels.linear.pipeline);
        pass.set_bind_group(0, &ws.in_bg, &[step_offset]);
        pass.dispatch_workgroups(w.div_ceil(LINEAR_TILE), row_groups, 1);
        for _ in 0..self.shape.blocks {
            pass.set_bind_group(0, &ws.fc1_bg, &[step_offset]);
            pass.dispatch_workgroups(w.div_ceil(LINEAR_TILE), row_groups, 1);
            pass.set_bind_group(0, &ws.fc2_bg, &[step_offset]);
            pass.dispatch_workgroups(w.div_ceil(LINEAR_TILE), row_groups, 1);
        }
        pass.set_bind_group(0, &ws.out_bg, &[step_offset]);
        pass.dispatch_workgroups(d.div_ceil(LINEAR_TILE), row_groups, 1);
    }

    /// The primal forward of [`GpuSampler::encode_forward`] with the tangent rows of `pv`
    /// beside it, layer by layer: each tangent layer reads the primal input of its layer
    /// (LayerNorm statistics, LeakyReLU signs) before the next primal layer overwrites it.
    fn encode_forward_jvp(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        ws: &Workspace,
        pv: &PostVarBuffers,
        rows: u32,
        step_offset: u32,
    ) {
        let w = self.shape.width as u32;
        let d = self.shape.dim as u32;
        let passes = self.postvar.map_or(0, |p| p.passes) as u32;
        let row_groups = rows.div_ceil(LINEAR_TILE);
        let tangent_groups = (rows * passes).div_ceil(LINEAR_TILE);
        let layers = [
            (&ws.in_bg, &pv.in_bg, w),
            (&ws.fc1_bg, &pv.fc1_bg, w),
            (&ws.fc2_bg, &pv.fc2_bg, w),
        ];
        let blocks = (0..self.shape.blocks).flat_map(|_| [layers[1], layers[2]]);
        let all = std::iter::once(layers[0])
            .chain(blocks)
            .chain([(&ws.out_bg, &pv.out_bg, d)]);
        for (primal, tangent, fan_out) in all {
            pass.set_pipeline(&self.kernels.linear.pipeline);
            pass.set_bind_group(0, primal, &[step_offset]);
            pass.dispatch_workgroups(fan_out.div_ceil(LINEAR_TILE), row_groups, 1);
            pass.set_pipeline(&self.kernels.linear_jvp.pipeline);
            pass.set_bind_group(0, tangent, &[]);
            pass.dispatch_workgroups(fan_out.div_ceil(LINEAR_TILE), tangent_groups, 1);
        }
    }

    fn encode_probes(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        pv: &PostVarBuffers,
        grid: (u32, u32),
    ) {
        pass.set_pipeline(&self.kernels.probe.pipeline);
        pass.set_bind_group(0, &pv.probe_bg, &[]);
        pass.dispatch_workgroups(grid.0, grid.1, 1);
    }

    fn encode_postvar(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        pv: &PostVarBuffers,
        grid: (u32, u32),
        step_offset: u32,
    ) {
        pass.set_pipeline(&self.kernels.postvar.pipeline);
        pass.set_bind_group(0, &pv.score_bg, &[step_offset]);
        pass.dispatch_workgroups(grid.0, grid.1, 1);
    }

    /// Writes the probe and score uniforms of a chunk of `rows` samples from `base` and the
    /// tangent layers; returns the two kernels' grids (None without a posterior variance).
    fn write_postvar(
        &self,
        ws: &Workspace,
        base: u32,
        rows: usize,
    ) -> Result<Option<PostVarGrids>, GpuError> {
        let (Some(plan), Some(pv)) = (self.postvar, ws.pv.as_ref()) else {
            return Ok(None);
        };
        let dim = self.shape.dim;
        let (probe, probe_stride) = self.elementwise_grid(rows * plan.passes * dim)?;
        let (score, score_stride) = self.elementwise_grid(rows)?;
        let probe_params = plan.params(dim, rows, base, probe_stride);
        let score_params = plan.params(dim, rows, base, score_stride);
        self.queue
            .write_buffer(&pv.probe_u, 0, bytemuck::bytes_of(&probe_params));
        self.queue
            .write_buffer(&pv.score_u, 0, bytemuck::bytes_of(&score_params));
        let o = self.offsets;
        let w = self.shape.width as u32;
        let d = dim as u32;
        let ln_lrelu = linear_flags::LAYER_NORM | linear_flags::LEAKY_RELU;
        let layer = |fan_in, fan_out, w_off, gamma_off, beta_off, flags| JvpLayerParams {
            rows: (rows * plan.passes) as u32,
            fan_in,
            fan_out,
            w_off,
            gamma_off,
            beta_off,
            primal_rows: rows as u32,
            flags,
        };
        let layers = [
            layer(d, w, o.in_fc, 0, 0, 0),
            layer(w, w, o.fc1, o.norm1_w, o.norm1_b, ln_lrelu),
            layer(
                w,
                w,
                o.fc2,
                o.norm2_w,
                o.norm2_b,
                ln_lrelu | linear_flags::ACCUMULATE,
            ),
            layer(
                w,
                d,
                o.out_fc,
                o.out_norm_w,
                o.out_norm_b,
                linear_flags::LAYER_NORM,
            ),
        ];
        for (buf, layer) in pv.layer_u.iter().zip(layers) {
            self.queue.write_buffer(buf, 0, bytemuck::bytes_of(&layer));
        }
        Ok(Some(PostVarGrids { probe, score }))
    }

    fn write_layers(&self, ws: &Workspace, rows: u32) {
        let o = self.offsets;
        let w = self.shape.width as u32;
        let d = self.shape.dim as u32;
        let block_prologue = linear_flags::LAYER_NORM | linear_flags::LEAKY_RELU;
        let layers = [
            LayerParams {
                rows,
                fan_in: d,
                fan_out: w,
                w_off: o.in_fc,
                ..Default::default()
            },
            LayerParams {
                rows,
                fan_in: w,
                fan_out: w,
                w_off: o.fc1,
                gamma_off: o.norm1_w,
                beta_off: o.norm1_b,
                bias_off: 0,
                flags: block_prologue | linear_flags::STEP_BIAS,
            },
            LayerParams {
                rows,
                fan_in: w,
                fan_out: w,
                w_off: o.fc2,
                gamma_off: o.norm2_w,
                beta_off: o.norm2_b,
                bias_off: 0,
                flags: block_prologue | linear_flags::ACCUMULATE,
            },
            LayerParams {
                rows,
                fan_in: w,
                fan_out: d,
                w_off: o.out_fc,
                gamma_off: o.out_norm_w,
                beta_off: o.out_norm_b,
                bias_off: o.out_fc_b,
                flags: linear_flags::LAYER_NORM | linear_flags::BIAS,
            },
        ];
        for (buf, layer) in ws.layer_u.iter().zip(layers) {
            self.queue.write_buffer(buf, 0, bytemuck::bytes_of(&layer));
        }
    }

    /// A 2-D grid of 256-thread workgroups covering `elements` threads, and its row stride.
    fn elementwise_grid(&self, elements: usize) -> Result<((u32, u32), u32), GpuError> {
        let max = self.device.limits().max_compute_workgroups_per_dimension as usize;
        let groups = elements.div_ceil(ELEMENTWISE_WG as usize).max(1);
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(GpuError::TooLarge {
                what: "elementwise dispatch (workgroups)",
                bytes: groups as u64,
                limit: (max * max) as u64,
            });
        }
        Ok(((x as u32, y as u32), x as u32 * ELEMENTWISE_WG))
    }

    /// Debug entry point: the network output f(x, model_t) for every sample in `x` (`dim`
    /// values each), through the same kernels as [`GpuSampler::sample`], with the time
    /// branch of `model_t` computed on the CPU by core.
    ///
    /// # Errors
    /// [`GpuError::EmptyBatch`], [`GpuError::InvalidInput`] if `x.len()` is not a multiple
    /// of dim or exceeds one chunk, [`GpuError::NonFinite`] if the output is not finite.
    pub fn forward(&self, model_t: u32, x: &[f32]) -> Result<Vec<f32>, GpuError> {
        let rows = self.debug_rows(x.len())?;
        let mlp = Mlp::new(self.shape, &self.mlp_params)?;
        let mut bias = vec![0.0f32; self.shape.width];
        let mut scratch = vec![0.0f32; self.shape.width + self.shape.temb_dim];
        mlp.time_bias(model_t, &mut bias, &mut scratch)?;
        let scope = ErrorScopes::push(&self.device);
        let bias_buf = storage_init(&self.device, "debug bias", bytemuck::cast_slice(&bias));
        let ws = Workspace::new(self, rows, &bias_buf, true);
        self.queue.write_buffer(&ws.x, 0, bytemuck::cast_slice(x));
        self.write_layers(&ws, rows as u32);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            // Step 0's uniform: the linear kernel reads only its `step` field (0 = bias row 0).
            let zero_offset = 0;
            self.encode_forward(&mut pass, &ws, rows as u32, zero_offset);
        }
        self.queue.submit([encoder.finish()]);
        let out = read_buffer(&self.device, &self.queue, &ws.eps, rows * self.shape.dim)?;
        scope.pop()?;
        check_finite("forward output", &out)?;
        Ok(out)
    }

    /// Debug entry point: one sampler step i on given x_t and network outputs for samples
    /// `first_sample ..` (noise z = normal(seed, STREAM_STEP, sample, i, d), as core's
    /// trajectory draws it), returning x_{i−1} and x̂0. No detector runs.
    ///
    /// # Errors
    /// [`GpuError::EmptyBatch`], [`GpuError::InvalidInput`] (lengths), [`GpuError::Core`]
    /// `StepOutOfRange` if i ≥ steps.
    pub fn step(
        &self,
        i: usize,
        seed: u64,
        first_sample: u32,
        x_t: &[f32],
        model_out: &[f32],
    ) -> Result<StepOutput, GpuError> {
        if i >= self.steps {
            return Err(mirage_core::Error::StepOutOfRange.into());
        }
        if model_out.len() != x_t.len() {
            return Err(GpuError::InvalidInput("model_out and x_t lengths differ"));
        }
        let rows = self.debug_rows(x_t.len())?;
        check_batch(first_sample, rows)?;
        let (grid, stride) = self.elementwise_grid(x_t.len())?;
        let scope = ErrorScopes::push(&self.device);
        let ws = Workspace::new(self, rows, &self.step_bias, true);
        self.queue.write_buffer(&ws.x, 0, bytemuck::cast_slice(x_t));
        self.queue
            .write_buffer(&ws.eps, 0, bytemuck::cast_slice(model_out));
        let chunk = ChunkParams {
            rows: rows as u32,
            dim: self.shape.dim as u32,
            sample_base: first_sample,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            window: 0,
            flags: CHUNK_FLAG_WRITE_X0,
            row_stride: stride,
        };
        self.queue
            .write_buffer(&ws.chunk_u, 0, bytemuck::bytes_of(&chunk));
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.kernels.step.pipeline);
            pass.set_bind_group(0, &ws.step_bg, &[(i as u64 * self.step_stride) as u32]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        }
        self.queue.submit([encoder.finish()]);
        let x_prev = read_buffer(&self.device, &self.queue, &ws.x, x_t.len())?;
        let x0_hat = read_buffer(&self.device, &self.queue, &ws.x0, x_t.len())?;
        scope.pop()?;
        Ok(StepOutput { x_prev, x0_hat })
    }

    /// Debug entry point: the posterior-variance score of each sample of `x_t` at step i
    /// alone (whether or not i is in the configured step set), with the directions of samples
    /// `first_sample ..`, through the same kernels as [`GpuSampler::sample`]: core's
    /// `posterior_variance(den, schedule, i, x_t, estimator, scale, first_sample, ..)`.
    ///
    /// # Errors
    /// [`GpuError::InvalidInput`] without [`GpuSampler::with_postvar`] or for a bad length;
    /// [`GpuError::EmptyBatch`]; [`GpuError::SampleIndexOverflow`]; [`GpuError::Core`]
    /// `StepOutOfRange` if i ≥ steps.
    pub fn posterior_variance(
        &self,
        i: usize,
        first_sample: u32,
        x_t: &[f32],
    ) -> Result<PostVarScores, GpuError> {
        if self.postvar.is_none() {
            return Err(GpuError::InvalidInput(
                "posterior_variance needs a sampler built with with_postvar",
            ));
        }
        if i >= self.steps {
            return Err(mirage_core::Error::StepOutOfRange.into());
        }
        let rows = self.debug_rows(x_t.len())?;
        check_batch(first_sample, rows)?;
        let scope = ErrorScopes::push(&self.device);
        let ws = Workspace::new(self, rows, &self.step_bias, false);
        self.queue.write_buffer(&ws.x, 0, bytemuck::cast_slice(x_t));
        self.write_layers(&ws, rows as u32);
        let grids = self.write_postvar(&ws, first_sample, rows)?;
        let (Some(pv), Some(grids)) = (ws.pv.as_ref(), grids) else {
            return Err(GpuError::InvalidInput("posterior variance buffers missing"));
        };
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(&pv.acc, 0, None);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let offset = (i as u64 * self.step_stride) as u32;
            self.encode_probes(&mut pass, pv, grids.probe);
            self.encode_forward_jvp(&mut pass, &ws, pv, rows as u32, offset);
            self.encode_postvar(&mut pass, pv, grids.score, offset);
        }
        self.queue.submit([encoder.finish()]);
        let acc = read_buffer(&self.device, &self.queue, &pv.acc, 2 * rows)?;
        scope.pop()?;
        let (trace, frobenius) = acc.split_at(rows);
        Ok(PostVarScores {
            trace: trace.to_vec(),
            frobenius: frobenius.to_vec(),
        })
    }

    fn debug_rows(&self, len: usize) -> Result<usize, GpuError> {
        let dim = self.shape.dim;
        if len == 0 {
            return Err(GpuError::EmptyBatch);
        }
        if !len.is_multiple_of(dim) {
            return Err(GpuError::InvalidInput(
                "input length is not a multiple of the model dim",
            ));
        }
        let rows = len / dim;
        if rows > self.max_chunk {
            return Err(GpuError::InvalidInput(
                "debug input larger than one chunk (max_chunk)",
            ));
        }
        Ok(rows)
    }
}

/// Core's per-step scalars for step i, in the layout of `step.wgsl`.
fn step_params_for(
    cfg: &SamplerConfig,
    schedule: &Schedule,
    i: usize,
) -> Result<StepParams, GpuError> {
    let c = schedule.coefs(i)?;
    let lambda = cfg.lambda(i)?;
    let add_noise = cfg.needs_noise(i);
    let sigma = match cfg.method {
        Method::Ddpm(Variance::FixedLarge) => c.sigma_large,
        Method::Ddpm(Variance::FixedSmall) => c.sigma_small,
        Method::Ddim { eta } => eta * c.sigma_small,
    };
    let sigma = if add_noise { sigma } else { 0.0 };
    // Exactly core's DDIM direction coefficient √max(0, 1 − ᾱ_prev − σ²), in f64.
    let sigma_f64 = f64::from(sigma);
    let dir_coef = mirage_core::math::sqrt_f64(
        (f64::from(c.one_minus_alpha_bar_prev) - sigma_f64 * sigma_f64).max(0.0),
    ) as f32;
    let (clip, clip_r) = match cfg.clip {
        Clip::None => (0, 0.0),
        Clip::Symmetric(r) => (1, r),
    };
    Ok(StepParams {
        step: i as u32,
        prediction: match cfg.prediction {
            Prediction::Epsilon => 0,
            Prediction::Sample => 1,
            Prediction::Velocity => 2,
        },
        method: match cfg.method {
            Method::Ddpm(_) => 0,
            Method::Ddim { .. } => 1,
        },
        clip,
        clip_r,
        lambda,
        sigma,
        dir_coef,
        sqrt_alpha_bar: c.sqrt_alpha_bar,
        sqrt_one_minus_alpha_bar: c.sqrt_one_minus_alpha_bar,
        inv_sqrt_alpha_bar: c.inv_sqrt_alpha_bar,
        sqrt_recip_alpha_bar_minus_one: c.sqrt_recip_alpha_bar_minus_one,
        inv_sqrt_alpha: c.inv_sqrt_alpha,
        eps_coef: c.eps_coef,
        posterior_c1: c.posterior_c1,
        posterior_c2: c.posterior_c2,
        sqrt_alpha_bar_prev: c.sqrt_alpha_bar_prev,
        // Scale::Covariance's (1 − ᾱ)/√ᾱ, formed in f64 as core does.
        cov_factor: (f64::from(c.one_minus_alpha_bar) / f64::from(c.sqrt_alpha_bar)) as f32,
        pad: [0; 2],
    })
}

fn offsets(shape: MlpShape) -> Offsets {
    let t = shape.tensors();
    let at = |k: usize| t.get(k).map_or(0, |s| s.offset as u32);
    Offsets {
        in_fc: at(2),
        norm1_w: at(3),
        norm1_b: at(4),
        fc1: at(5),
        norm2_w: at(8),
        norm2_b: at(9),
        fc2: at(10),
        out_norm_w: at(11),
        out_norm_b: at(12),
        out_fc: at(13),
        out_fc_b: at(14),
    }
}

/// The most samples one chunk may hold on a device with `limits`: every activation buffer
/// (and, with `passes` > 0, every tangent buffer of passes × samples rows) within one storage
/// binding, and every linear dispatch within the workgroup limit.
///
/// # Errors
/// [`GpuError::TooLarge`] if not even one sample fits.
fn chunk_cap(
    limits: &wgpu::Limits,
    binding_limit: u64,
    shape: MlpShape,
    passes: usize,
) -> Result<usize, GpuError> {
    let rows_per_sample = passes.max(1) as u64;
    let per_sample_bytes = 4 * shape.width.max(3 * shape.dim) as u64 * rows_per_sample;
    let by_binding = binding_limit / per_sample_bytes;
    let by_dispatch = u64::from(limits.max_compute_workgroups_per_dimension)
        * u64::from(LINEAR_TILE)
        / rows_per_sample;
    let cap = by_binding.min(by_dispatch).min(u64::from(u32::MAX));
    if cap == 0 {
        return Err(GpuError::TooLarge {
            what: "one sample's activations (with its tangent rows)",
            bytes: per_sample_bytes,
            limit: binding_limit,
        });
    }
    Ok(cap as usize)
}

pub(crate) fn check_batch(first: u32, n: usize) -> Result<(), GpuError> {
    if n == 0 {
        return Err(GpuError::EmptyBatch);
    }
    if (first as u64) + (n as u64) > u64::from(u32::MAX) + 1 {
        return Err(GpuError::SampleIndexOverflow { first, n });
    }
    Ok(())
}

fn check_size(what: &'static str, bytes: u64, limit: u64) -> Result<(), GpuError> {
    if bytes > limit {
        Err(GpuError::TooLarge { what, bytes, limit })
    } else {
        Ok(())
    }
}

fn check_finite(what: &'static str, values: &[f32]) -> Result<(), GpuError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(GpuError::NonFinite { what, index }),
        None => Ok(()),
    }
}

/// The grids of the probe (passes × rows × dim threads) and score (rows threads) kernels.
#[derive(Clone, Copy, Debug)]
struct PostVarGrids {
    probe: (u32, u32),
    score: (u32, u32),
}

/// The tangent buffers and bind groups of the posterior variance for one chunk (rows
/// p·cap + n), and its per-sample accumulators (trace plane, then Frobenius plane).
struct PostVarBuffers {
    acc: wgpu::Buffer,
    probe_u: wgpu::Buffer,
    score_u: wgpu::Buffer,
    layer_u: [wgpu::Buffer; 4],
    probe_bg: wgpu::BindGroup,
    in_bg: wgpu::BindGroup,
    fc1_bg: wgpu::BindGroup,
    fc2_bg: wgpu::BindGroup,
    out_bg: wgpu::BindGroup,
    score_bg: wgpu::BindGroup,
}

/// The primal buffers the tangent kernels read.
struct Primal<'a> {
    x: &'a wgpu::Buffer,
    h: &'a wgpu::Buffer,
    u: &'a wgpu::Buffer,
    eps: &'a wgpu::Buffer,
}

impl PostVarBuffers {
    fn new(s: &GpuSampler, cap: usize, passes: usize, primal: &Primal<'_>) -> Self {
        let dev = &s.device;
        let rows = cap * passes;
        let tx = storage(dev, "tangent x", rows * s.shape.dim);
        let th = storage(dev, "tangent h", rows * s.shape.width);
        let tu = storage(dev, "tangent u", rows * s.shape.width);
        let teps = storage(dev, "tangent out", rows * s.shape.dim);
        let acc = storage(dev, "posterior variance", 2 * cap);
        let probe_u = uniform(dev, std::mem::size_of::<crate::postvar::PostVarParams>());
        let score_u = uniform(dev, std::mem::size_of::<crate::postvar::PostVarParams>());
        let layer_u = [0; 4].map(|_| uniform(dev, std::mem::size_of::<JvpLayerParams>()));
        let bind = |layout: &wgpu::BindGroupLayout, resources: Vec<wgpu::BindingResource<'_>>| {
            bind_group(dev, layout, resources)
        };
        let jvp = |lu: &wgpu::Buffer, p: &wgpu::Buffer, src: &wgpu::Buffer, dst: &wgpu::Buffer| {
            bind(
                &s.kernels.linear_jvp.layout,
                vec![
                    lu.as_entire_binding(),
                    s.params.as_entire_binding(),
                    p.as_entire_binding(),
                    src.as_entire_binding(),
                    dst.as_entire_binding(),
                ],
            )
        };
        let [l_in, l_fc1, l_fc2, l_out] = &layer_u;
        let in_bg = jvp(l_in, primal.x, &tx, &th);
        let fc1_bg = jvp(l_fc1, primal.h, &th, &tu);
        let fc2_bg = jvp(l_fc2, primal.u, &tu, &th);
        let out_bg = jvp(l_out, primal.h, &th, &teps);
        let probe_bg = bind(
            &s.kernels.probe.layout,
            vec![probe_u.as_entire_binding(), tx.as_entire_binding()],
        );
        let score_bg = bind(
            &s.kernels.postvar.layout,
            vec![
                score_u.as_entire_binding(),
                wgpu::BindingResource::Buffer(s.step_binding()),
                primal.x.as_entire_binding(),
                primal.eps.as_entire_binding(),
                tx.as_entire_binding(),
                teps.as_entire_binding(),
                acc.as_entire_binding(),
            ],
        );
        Self {
            acc,
            probe_u,
            score_u,
            layer_u,
            probe_bg,
            in_bg,
            fc1_bg,
            fc2_bg,
            out_bg,
            score_bg,
        }
    }
}

fn bind_group(
    dev: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    resources: Vec<wgpu::BindingResource<'_>>,
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = (0u32..)
        .zip(resources)
        .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource })
        .collect();
    dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout,
        entries: &entries,
    })
}

/// Device buffers and bind groups for one chunk of up to `cap` samples.
struct Workspace {
    x: wgpu::Buffer,
    eps: wgpu::Buffer,
    x0: wgpu::Buffer,
    scores: wgpu::Buffer,
    noise_u: wgpu::Buffer,
    chunk_u: wgpu::Buffer,
    score_u: wgpu::Buffer,
    layer_u: [wgpu::Buffer; 4],
    noise_bg: wgpu::BindGroup,
    in_bg: wgpu::BindGroup,
    fc1_bg: wgpu::BindGroup,
    fc2_bg: wgpu::BindGroup,
    out_bg: wgpu::BindGroup,
    step_bg: wgpu::BindGroup,
    score_bg: wgpu::BindGroup,
    pv: Option<PostVarBuffers>,
}

impl Workspace {
    fn new(s: &GpuSampler, cap: usize, step_bias: &wgpu::Buffer, with_x0: bool) -> Self {
        let dev = &s.device;
        let d = s.shape.dim;
        let w = s.shape.width;
        let x = storage(dev, "x", cap * d);
        let eps = storage(dev, "model out", cap * d);
        let h = storage(dev, "h", cap * w);
        let u = storage(dev, "u", cap * w);
        let hal = storage(dev, "hal state", 3 * cap * d);
        let x0 = storage(dev, "x0 debug", if with_x0 { cap * d } else { 1 });
        let scores = storage(dev, "hal scores", cap);
        let noise_u = uniform(dev, std::mem::size_of::<NoiseParams>());
        let chunk_u = uniform(dev, std::mem::size_of::<ChunkParams>());
        let score_u = uniform(dev, std::mem::size_of::<ChunkParams>());
        let layer_u = [0; 4].map(|_| uniform(dev, std::mem::size_of::<LayerParams>()));
        let step_binding = s.step_binding();
        let bind = |layout: &wgpu::BindGroupLayout, resources: Vec<wgpu::BindingResource<'_>>| {
            bind_group(dev, layout, resources)
        };
        let linear = |lu: &wgpu::Buffer, src: &wgpu::Buffer, dst: &wgpu::Buffer| {
            bind(
                &s.kernels.linear.layout,
                vec![
                    lu.as_entire_binding(),
                    wgpu::BindingResource::Buffer(step_binding.clone()),
                    s.params.as_entire_binding(),
                    step_bias.as_entire_binding(),
                    src.as_entire_binding(),
                    dst.as_entire_binding(),
                ],
            )
        };
        let [l_in, l_fc1, l_fc2, l_out] = &layer_u;
        let in_bg = linear(l_in, &x, &h);
        let fc1_bg = linear(l_fc1, &h, &u);
        let fc2_bg = linear(l_fc2, &u, &h);
        let out_bg = linear(l_out, &h, &eps);
        let noise_bg = bind(
            &s.kernels.noise.layout,
            vec![noise_u.as_entire_binding(), x.as_entire_binding()],
        );
        let step_bg = bind(
            &s.kernels.step.layout,
            vec![
                chunk_u.as_entire_binding(),
                wgpu::BindingResource::Buffer(step_binding.clone()),
                eps.as_entire_binding(),
                x.as_entire_binding(),
                hal.as_entire_binding(),
                x0.as_entire_binding(),
            ],
        );
        let score_bg = bind(
            &s.kernels.hal_score.layout,
            vec![
                score_u.as_entire_binding(),
                hal.as_entire_binding(),
                scores.as_entire_binding(),
            ],
        );
        let pv = s.postvar.map(|plan| {
            let primal = Primal {
                x: &x,
                h: &h,
                u: &u,
                eps: &eps,
            };
            PostVarBuffers::new(s, cap, plan.passes, &primal)
        });
        Self {
            x,
            eps,
            x0,
            scores,
            noise_u,
            chunk_u,
            score_u,
            layer_u,
            noise_bg,
            in_bg,
            fc1_bg,
            fc2_bg,
            out_bg,
            step_bg,
            score_bg,
            pv,
        }
    }
}

pub(crate) fn storage(device: &wgpu::Device, label: &str, floats: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (floats.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

fn storage_init(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    })
}

pub(crate) fn uniform(device: &wgpu::Device, bytes: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

fn uniform_array(device: &wgpu::Device, items: &[StepParams], stride: u64) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let stride = stride as usize;
    let mut bytes = vec![0u8; items.len() * stride];
    for (slot, item) in bytes.chunks_exact_mut(stride).zip(items) {
        let src = bytemuck::bytes_of(item);
        slot[..src.len()].copy_from_slice(src);
    }
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("step params"),
        contents: &bytes,
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

/// Reads the chunk's samples and scores back (one staging buffer, one map).
fn read_back(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    ws: &Workspace,
    x_len: usize,
    rows: usize,
) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
    let x = read_buffer(device, queue, &ws.x, x_len)?;
    let scores = read_buffer(device, queue, &ws.scores, rows)?;
    Ok((x, scores))
}

/// Copies the first `floats` f32 of `src` to a staging buffer, maps it and returns them.
pub(crate) fn read_buffer(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    src: &wgpu::Buffer,
    floats: usize,
) -> Result<Vec<f32>, GpuError> {
    let bytes = (floats * 4) as u64;
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read back"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(src, 0, &staging, 0, bytes);
    queue.submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Device(e.to_string()))?;
    rx.recv()
        .map_err(|e| GpuError::Device(e.to_string()))?
        .map_err(|e| GpuError::Device(e.to_string()))?;
    let view = staging
        .get_mapped_range(..)
        .map_err(|e| GpuError::Device(e.to_string()))?;
    let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
    drop(view);
    staging.unmap();
    Ok(out)
}

/// Validation and out-of-memory error scopes around a group of device calls, turned into
/// [`GpuError::Device`] instead of wgpu's default panic.
pub(crate) struct ErrorScopes {
    validation: wgpu::ErrorScopeGuard,
    memory: wgpu::ErrorScopeGuard,
}

impl ErrorScopes {
    pub(crate) fn push(device: &wgpu::Device) -> Self {
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        Self { validation, memory }
    }

    pub(crate) fn pop(self) -> Result<(), GpuError> {
        let memory = pollster::block_on(self.memory.pop());
        let validation = pollster::block_on(self.validation.pop());
        match memory.or(validation) {
            Some(e) => Err(GpuError::Device(e.to_string())),
            None => Ok(()),
        }
    }
}
