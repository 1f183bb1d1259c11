//! Throughput of the sampler's building blocks, apart from any network: one DDPM / DDIM step
//! over a batch (elementwise, papers.md §1.2 and §2.2), counter-based normals (Philox4x32-10 +
//! Box–Muller) and the f64 schedule build for T = 1000.

// A benchmark, not core: setup failures may abort.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mirage_core::{
    BetaSchedule, Method, SamplerConfig, Schedule, Spacing, compute_tables, fill_normals, step,
    table_len,
};
use std::hint::black_box;

const BATCH: usize = 2 * 10_000;

fn benches(c: &mut Criterion) {
    let mut tables = vec![0.0f32; table_len(1000)];
    compute_tables(
        &BetaSchedule::PAPER,
        1000,
        &Spacing::Linspace,
        1000,
        &mut tables,
    )
    .expect("paper schedule");
    let schedule = Schedule::from_tables(&tables, 1000).expect("valid tables");

    let mut group = c.benchmark_group("sampler");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut x = vec![0.0f32; BATCH];
    fill_normals(1, 1, 0, 0, &mut x);
    let mut model_out = vec![0.0f32; BATCH];
    fill_normals(2, 0, 0, 0, &mut model_out);
    let mut noise = vec![0.0f32; BATCH];
    fill_normals(3, 0, 0, 5, &mut noise);
    let (mut x_prev, mut x0_hat) = (vec![0.0f32; BATCH], vec![0.0f32; BATCH]);
    let ddim = SamplerConfig {
        method: Method::Ddim { eta: 0.0 },
        ..SamplerConfig::PAPER
    };
    for (name, cfg) in [("ddpm_step", SamplerConfig::PAPER), ("ddim_step", ddim)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                step(
                    &cfg,
                    &schedule,
                    5,
                    &x,
                    &model_out,
                    &noise,
                    &mut x_prev,
                    &mut x0_hat,
                )
                .expect("valid step");
                black_box(&x_prev);
            })
        });
    }
    group.bench_function("fill_normals", |b| {
        b.iter(|| fill_normals(black_box(7), 0, 3, 11, &mut noise))
    });
    group.finish();

    c.bench_function("compute_tables_paper_t1000", |b| {
        b.iter(|| {
            compute_tables(
                &BetaSchedule::PAPER,
                1000,
                &Spacing::Linspace,
                1000,
                &mut tables,
            )
            .expect("paper schedule");
            black_box(&tables);
        })
    });
}

criterion_group!(sampler, benches);
criterion_main!(sampler);
