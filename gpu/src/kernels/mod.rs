//! The WGSL kernels, one folder each, compiled into compute pipelines with explicit layouts.
//!
//! - `noise`: counter-based standard normals (x_T and the debug noise entry point);
//! - `linear`: one MLP layer over a chunk (tiled matmul, LayerNorm/LeakyReLU prologue, bias,
//!   time-bias and residual epilogue);
//! - `step`: the sampler update with the Hal detector fused in;
//! - `hal_score`: per-sample Hal score from the detector state;
//! - `probe`, `linear_jvp`, `postvar`: the posterior-variance score (tangent directions, the
//!   tangent of one layer, the per-sample trace and Frobenius norm of ∂x̂0/∂x_t).
//!
//! `common/normal.wgsl` (Philox4x32-10 + Box–Muller) is prepended to the kernels that draw noise,
//! `common/step_params.wgsl` (the per-step coefficients uniform) to `step` and `postvar`, and
//! `common/postvar_params.wgsl` (the posterior-variance uniform) to `probe` and `postvar`,
//! `common/tile.wgsl` (the GEMM tile: weight load and 4×4 register multiply) to `linear` and
//! `linear_jvp`.

use std::borrow::Cow;

/// Threads per workgroup of the elementwise kernels (noise, step, hal_score).
pub(crate) const ELEMENTWISE_WG: u32 = 256;
/// Rows and columns of the output tile of one `linear` workgroup.
pub(crate) const LINEAR_TILE: u32 = 64;

/// Flags of the `linear` kernel's `Layer.flags`.
pub(crate) mod linear_flags {
    pub const LAYER_NORM: u32 = 1;
    pub const LEAKY_RELU: u32 = 2;
    pub const BIAS: u32 = 4;
    pub const STEP_BIAS: u32 = 8;
    pub const ACCUMULATE: u32 = 16;
}

const NORMAL_LIB: &str = include_str!("common/normal.wgsl");
const STEP_PARAMS: &str = include_str!("common/step_params.wgsl");
const TILE_LIB: &str = include_str!("common/tile.wgsl");
const POSTVAR_PARAMS: &str = include_str!("common/postvar_params.wgsl");

/// A pipeline and the layout of its single bind group.
#[derive(Debug)]
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Every pipeline of the GPU path.
#[derive(Debug)]
pub(crate) struct Kernels {
    pub noise: Kernel,
    pub linear: Kernel,
    pub step: Kernel,
    pub hal_score: Kernel,
    pub probe: Kernel,
    pub linear_jvp: Kernel,
    pub postvar: Kernel,
}

#[derive(Clone, Copy)]
enum Slot {
    Uniform,
    DynamicUniform,
    Read,
    ReadWrite,
}

impl Kernels {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        use Slot::{DynamicUniform, Read, ReadWrite, Uniform};
        let with_normals = |src: &str| Cow::Owned(format!("{NORMAL_LIB}\n{src}"));
        let with_step_params = |src: &str| Cow::Owned(format!("{STEP_PARAMS}\n{src}"));
        Self {
            noise: build(
                device,
                "noise",
                with_normals(include_str!("noise/noise.wgsl")),
                &[Uniform, ReadWrite],
            ),
            linear: build(
                device,
                "linear",
                Cow::Owned(format!(
                    "{TILE_LIB}\n{}",
                    include_str!("linear/linear.wgsl")
                )),
                &[Uniform, DynamicUniform, Read, Read, Read, ReadWrite],
            ),
            step: build(
                device,
                "step",
                with_normals(&format!(
                    "{STEP_PARAMS}\n{}",
                    include_str!("step/step.wgsl")
                )),
                &[
                    Uniform,
                    DynamicUniform,
                    Read,
                    ReadWrite,
                    ReadWrite,
                    ReadWrite,
                ],
            ),
            hal_score: build(
                device,
                "hal_score",
                Cow::Borrowed(include_str!("hal_score/hal_score.wgsl")),
                &[Uniform, Read, ReadWrite],
            ),
            probe: build(
                device,
                "probe",
                with_normals(&format!(
                    "{POSTVAR_PARAMS}\n{}",
                    include_str!("probe/probe.wgsl")
                )),
                &[Uniform, ReadWrite],
            ),
            linear_jvp: build(
                device,
                "linear_jvp",
                Cow::Owned(format!(
                    "{TILE_LIB}\n{}",
                    include_str!("linear_jvp/linear_jvp.wgsl")
                )),
                &[Uniform, Read, Read, Read, ReadWrite],
            ),
            postvar: build(
                device,
                "postvar",
                with_step_params(&format!(
                    "{POSTVAR_PARAMS}\n{}",
                    include_str!("postvar/postvar.wgsl")
                )),
                &[Uniform, DynamicUniform, Read, Read, Read, Read, ReadWrite],
            ),
        }
    }
}

fn build(device: &wgpu::Device, name: &str, source: Cow<'static, str>, slots: &[Slot]) -> Kernel {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = (0u32..)
        .zip(slots)
        .map(|(binding, slot)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match slot {
                Slot::Uniform | Slot::DynamicUniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: matches!(slot, Slot::DynamicUniform),
                    min_binding_size: None,
                },
                Slot::Read | Slot::ReadWrite => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: matches!(slot, Slot::Read),
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
            },
            count: None,
        })
        .collect();
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(name),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(name),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(source),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions::default(),
        cache: None,
    });
    Kernel { pipeline, layout }
}
