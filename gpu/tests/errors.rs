//! Clear errors, never panics: no adapter, model too large, batch 0, index overflow, bad
//! configuration, NaN weights, wrong debug lengths, a schedule lacking tables.
mod common;

use mirage_core::mlp::{Mlp, MlpShape};
use mirage_core::sampler::{Prediction, SamplerConfig};
use mirage_core::schedule::{Schedule, Table};
use mirage_gpu::{GpuContext, GpuError, GpuSampler};

#[test]
fn unmatched_adapter_filter_is_a_clear_error() {
    let err = GpuContext::with_filter(Some("no-such-adapter-zzz")).unwrap_err();
    match &err {
        GpuError::NoAdapter { requested, .. } => {
            assert_eq!(requested.as_deref(), Some("no-such-adapter-zzz"))
        }
        other => panic!("expected NoAdapter, got {other:?}"),
    }
    assert!(err.to_string().contains("MIRAGE_GPU_ADAPTER"));
}

#[test]
fn bad_calls_are_errors() {
    let Some(ctx) = common::context() else { return };
    let shape = MlpShape {
        dim: 2,
        width: 8,
        blocks: 1,
        temb_dim: 4,
    };
    let params = common::random_params(shape, 1);
    let mlp = common::mlp(shape, &params);
    let tables = common::paper_tables(5);
    let schedule = Schedule::from_tables(&tables, 5).unwrap();
    let cfg = SamplerConfig::PAPER;
    let gpu = GpuSampler::new(&ctx, &mlp, &schedule, &cfg, 10).unwrap();

    assert_eq!(gpu.sample(1, 0, 0), Err(GpuError::EmptyBatch));
    assert!(matches!(
        gpu.sample(1, u32::MAX, 2),
        Err(GpuError::SampleIndexOverflow { .. })
    ));
    assert!(gpu.sample(1, u32::MAX, 1).is_ok());
    assert_eq!(gpu.forward(3, &[]), Err(GpuError::EmptyBatch));
    assert!(matches!(
        gpu.forward(3, &[1.0, 2.0, 3.0]),
        Err(GpuError::InvalidInput(_))
    ));
    assert!(matches!(
        gpu.step(5, 0, 0, &[1.0, 2.0], &[0.0, 0.0]),
        Err(GpuError::Core(_))
    ));
    assert!(matches!(
        gpu.step(0, 0, 0, &[1.0, 2.0], &[0.0]),
        Err(GpuError::InvalidInput(_))
    ));

    assert!(matches!(
        GpuSampler::new(&ctx, &mlp, &schedule, &cfg, 0),
        Err(GpuError::Core(_))
    ));
    let x0_cfg = SamplerConfig {
        prediction: Prediction::Sample,
        ..cfg
    };
    assert!(matches!(
        GpuSampler::new(&ctx, &mlp, &schedule, &x0_cfg, 10),
        Err(GpuError::InvalidInput(_))
    ));
    // A schedule holding only the sampler's tables (as a `--tables sampler` file) is
    // refused: the device gets every coefficient.
    let needed = cfg.tables();
    let subset: Vec<f32> = Table::ALL
        .iter()
        .zip(tables.chunks_exact(5))
        .filter(|(t, _)| needed.contains(**t))
        .flat_map(|(_, table)| table.iter().copied())
        .collect();
    let partial = Schedule::from_table_subset(&subset, 5, needed).unwrap();
    assert_eq!(
        GpuSampler::new(&ctx, &mlp, &partial, &cfg, 10).unwrap_err(),
        GpuError::Core(mirage_core::Error::MissingTable(Table::ModelT.name()))
    );

    // A NaN weight never reaches the device: the model is rejected by name.
    let mut bad = params.clone();
    bad[shape.tensors()[5].offset + 3] = f32::NAN;
    assert_eq!(
        Mlp::new(shape, &bad).unwrap_err(),
        mirage_core::Error::NonFiniteWeight("temp_fc.0.fc1.weight")
    );
}

#[test]
fn model_too_large_for_device_is_an_error() {
    let Some(probe) = common::context() else {
        return;
    };
    // Re-open the same adapter with a 64 KiB storage-binding limit (injected device).
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let adapter = adapters
        .into_iter()
        .find(|a| a.get_info().name == probe.adapter_info().name)
        .expect("the probed adapter");
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 64 * 1024,
        ..adapter.limits()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap();
    let ctx = GpuContext::from_device(device, queue, adapter.get_info());
    let params = common::random_params(MlpShape::PAPER_2D, 2); // 268 KB of weights
    let mlp = common::mlp(MlpShape::PAPER_2D, &params);
    let tables = common::paper_tables(5);
    let schedule = Schedule::from_tables(&tables, 5).unwrap();
    let err = GpuSampler::new(&ctx, &mlp, &schedule, &SamplerConfig::PAPER, 10).unwrap_err();
    assert!(
        matches!(
            err,
            GpuError::TooLarge {
                what: "model weights",
                ..
            }
        ),
        "{err:?}"
    );
    println!("{err}");
}
