//! GPU normals vs core's `noise::normal` (the contract's noise section).
mod common;

use mirage_core::noise::{STREAM_INIT, STREAM_PROBE, STREAM_STEP, normal};
use mirage_gpu::noise::normals;

#[test]
fn gpu_normals_match_core() {
    let Some(ctx) = common::context() else { return };
    let mut max_abs = 0.0f32;
    let mut max_ulps = 0.0f32;
    let mut count = 0usize;
    let cases: [(u64, u32, u32, u32, usize, usize); 4] = [
        (0, STREAM_INIT, 0, 0, 4096, 3),
        (0x1234_5678_9ABC_DEF0, STREAM_STEP, 999, 7, 2000, 2),
        (u64::MAX, STREAM_STEP, 3, u32::MAX - 99, 100, 5),
        (42, STREAM_PROBE, 1, 123_456, 512, 8),
    ];
    for (seed, stream, step, first, n, dim) in cases {
        let gpu = normals(&ctx, seed, stream, step, first, n, dim).unwrap();
        assert_eq!(gpu.len(), n * dim);
        for (k, row) in gpu.chunks_exact(dim).enumerate() {
            for (d, &g) in row.iter().enumerate() {
                let c = normal(seed, stream, first + k as u32, step, d as u32);
                let diff = (g - c).abs();
                max_abs = max_abs.max(diff);
                max_ulps = max_ulps.max(diff / common::ulp(c));
                count += 1;
                assert!(
                    diff <= 1e-6,
                    "seed {seed} stream {stream} step {step} sample {} dim {d}: gpu {g} core {c}",
                    first + k as u32
                );
            }
        }
    }
    println!("noise: {count} values, max |gpu - core| = {max_abs:e}, max {max_ulps:.1} ulp");
}

#[test]
fn normals_rejects_empty_and_overflow() {
    let Some(ctx) = common::context() else { return };
    assert_eq!(
        normals(&ctx, 1, 0, 0, 0, 0, 2),
        Err(mirage_gpu::GpuError::EmptyBatch)
    );
    assert!(matches!(
        normals(&ctx, 1, 0, 0, u32::MAX, 2, 2),
        Err(mirage_gpu::GpuError::SampleIndexOverflow { .. })
    ));
}
