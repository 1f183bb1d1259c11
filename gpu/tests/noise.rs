//! GPU normals vs core's `noise::normal` (the contract's noise section).
mod common;

use mirage_core::noise::{STREAM_INIT, STREAM_PROBE, STREAM_STEP, normal, philox4x32_10};
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

/// The radius draw u1 = 1.0 (top 24 bits all ones: 2⁻²⁴ of draws; `uniform_open` rounds
/// 2²⁴ − ½ up) gives r = √(−2 ln 1) = 0 on the CPU. The GPU's Newton-corrected √ once
/// divided by √0 there and returned NaN: about one sample in 10⁴ of a 1000-step batch
/// came back non-finite on an H200. Seed 0, sample 1,205,178, step 0 is such a draw (found
/// by search; the precondition is checked here).
#[test]
fn radius_draw_of_one_gives_zero_not_nan() {
    let Some(ctx) = common::context() else { return };
    let (seed, sample) = (0u64, 1_205_178u32);
    let w = philox4x32_10([0, 0, sample, STREAM_STEP], [0, 0]);
    assert_eq!(
        w[0] >> 8,
        0xFF_FFFF,
        "precondition: u1 = 1.0 for dims 0 and 1"
    );
    let gpu = normals(&ctx, seed, STREAM_STEP, 0, sample, 1, 2).unwrap();
    for (d, &g) in gpu.iter().enumerate() {
        let c = normal(seed, STREAM_STEP, sample, 0, d as u32);
        assert_eq!(c, 0.0, "core: r = 0");
        assert_eq!(g, c, "dim {d}: gpu {g} core {c}");
    }
}
