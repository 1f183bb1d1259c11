//! GPU counter-based normals: the WGSL twin of `mirage_core::noise::normal`
//! (Philox4x32-10, Salmon et al. 2011, then Box–Muller; see `kernels/common/normal.wgsl`).
//!
//! # Accuracy
//! The Philox words and uniforms are bit-identical; log, sin, cos and sqrt are the kernel's
//! own f32 polynomials instead of libm's, so z differs from core by at most ~1e-6 absolute
//! (tested against core in `tests/noise.rs`, which reports the maximum).

use crate::kernels::{ELEMENTWISE_WG, Kernels};
use crate::sampler::{ErrorScopes, NoiseParams, check_batch, read_buffer, storage, uniform};
use crate::{GpuContext, GpuError};

/// `out[k·dim + d] = normal(seed, stream, first_sample + k, step, d)` for k < n, d < dim,
/// computed on the GPU.
///
/// # Errors
/// [`GpuError::EmptyBatch`] if n or dim is 0; [`GpuError::SampleIndexOverflow`];
/// [`GpuError::TooLarge`] if the output exceeds one storage binding or dispatch;
/// [`GpuError::Device`].
pub fn normals(
    ctx: &GpuContext,
    seed: u64,
    stream: u32,
    step: u32,
    first_sample: u32,
    n: usize,
    dim: usize,
) -> Result<Vec<f32>, GpuError> {
    check_batch(first_sample, n)?;
    if dim == 0 {
        return Err(GpuError::EmptyBatch);
    }
    let device = ctx.device();
    let limits = ctx.limits();
    let total = n * dim;
    let bytes = (total * 4) as u64;
    let limit = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    if bytes > limit || u32::try_from(total).is_err() {
        return Err(GpuError::TooLarge {
            what: "noise output",
            bytes,
            limit,
        });
    }
    let max = limits.max_compute_workgroups_per_dimension as usize;
    let groups = total.div_ceil(ELEMENTWISE_WG as usize);
    let gx = groups.min(max);
    let gy = groups.div_ceil(gx);
    let scope = ErrorScopes::push(device);
    let kernels = Kernels::new(device);
    let out = storage(device, "normals", total);
    let params = NoiseParams {
        rows: n as u32,
        dim: dim as u32,
        sample_base: first_sample,
        stream,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        step,
        row_stride: gx as u32 * ELEMENTWISE_WG,
    };
    let params_buf = uniform(device, std::mem::size_of::<NoiseParams>());
    ctx.queue()
        .write_buffer(&params_buf, 0, bytemuck::bytes_of(&params));
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("normals"),
        layout: &kernels.noise.layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: params_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: out.as_entire_binding(),
            },
        ],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&kernels.noise.pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(gx as u32, gy as u32, 1);
    }
    ctx.queue().submit([encoder.finish()]);
    let values = read_buffer(device, ctx.queue(), &out, total)?;
    scope.pop()?;
    Ok(values)
}
