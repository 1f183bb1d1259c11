//! Fixed-point vs f32 forward pass of the paper's 2D network (W = E = 128, 3 tied blocks),
//! per sample, with the time bias computed once (as a batch sharing t does): the x path only.
//! Also the time branch of each path (once per step on a microcontroller, batch 1).

// A benchmark, not core: setup failures may abort, and slices are indexed freely.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use criterion::{Criterion, criterion_group, criterion_main};
use mirage_core::quant::{
    QuantKind, QuantMlp, Ranges, quantize_into, quantize_scratch_len, section_len,
};
use mirage_core::{Mlp, MlpShape, Prediction};
use std::hint::black_box;

const SHAPE: MlpShape = MlpShape::PAPER_2D;
const T: usize = 1000;

/// Deterministic Xavier-like weights (LCG), LN γ = 1.
fn params() -> Vec<f32> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f32 / 16_777_216.0) * 2.0 - 1.0
    };
    let mut p = vec![0.0f32; SHAPE.param_count()];
    for t in SHAPE.tensors() {
        let bound = (6.0 / (t.rows + t.cols) as f32).sqrt();
        for v in &mut p[t.range()] {
            *v = if t.name.contains("norm") && t.name.ends_with("weight") {
                1.0
            } else {
                bound * next()
            };
        }
    }
    p
}

fn benches(c: &mut Criterion) {
    let p = params();
    let mlp = Mlp::new(SHAPE, &p).expect("valid");
    let xs: Vec<f32> = (0..2 * 256)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let mut scratch = vec![0.0f32; SHAPE.scratch_len()];
    let mut ranges = Ranges::default();
    for t in (0..T as u32).step_by(50) {
        ranges.observe(&mlp, t, &xs, &mut scratch).expect("ranges");
    }
    let mut group = c.benchmark_group("forward_per_sample");
    let mut bias = vec![0.0f32; SHAPE.width];
    mlp.time_bias(10, &mut bias, &mut scratch).expect("bias");
    let mut out = [0.0f32; 2];
    group.bench_function("f32", |b| {
        b.iter(|| {
            mlp.forward_with_bias(&bias, black_box(&xs[..2]), &mut out, &mut scratch)
                .expect("ok")
        });
    });
    group.bench_function("f32 time branch", |b| {
        b.iter(|| {
            mlp.time_bias(black_box(10), &mut bias, &mut scratch)
                .expect("ok")
        });
    });
    for kind in [QuantKind::Q8, QuantKind::Q16] {
        let mut section = vec![0u64; section_len(&SHAPE, kind).div_ceil(8)];
        let bytes =
            &mut bytemuck::cast_slice_mut::<u64, u8>(&mut section)[..section_len(&SHAPE, kind)];
        let mut qs = vec![0.0f32; quantize_scratch_len(&SHAPE)];
        quantize_into(&mlp, T, &ranges, kind, bytes, &mut qs).expect("quantize");
        let q = QuantMlp::new(SHAPE, kind, Prediction::Epsilon, bytes).expect("parse");
        let mut qscratch = vec![0.0f32; QuantMlp::scratch_len_for(&SHAPE)];
        let mut c_bias = vec![0i32; SHAPE.width];
        q.time_bias(10, &mut c_bias, &mut qscratch).expect("bias");
        group.bench_function(format!("{kind:?}"), |b| {
            b.iter(|| {
                q.forward_probed(
                    &c_bias,
                    black_box(&xs[..2]),
                    &mut out,
                    &mut qscratch,
                    &mut |_, _, _| false,
                )
                .expect("ok")
            });
        });
        group.bench_function(format!("{kind:?} time branch"), |b| {
            b.iter(|| {
                q.time_bias(black_box(10), &mut c_bias, &mut qscratch)
                    .expect("ok")
            });
        });
    }
    group.finish();
}

criterion_group!(quant, benches);
criterion_main!(quant);
