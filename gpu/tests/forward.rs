//! One GPU forward pass vs core's `Mlp` (design.md §4: full ε̂ network, abs ≤ 5e-5 + 5e-4·|ref|).
mod common;

use mirage_core::Denoiser;
use mirage_core::sampler::SamplerConfig;
use mirage_core::schedule::Schedule;
use mirage_gpu::GpuSampler;

#[test]
fn forward_matches_core_mlp() {
    let Some(ctx) = common::context() else { return };
    let tables = common::paper_tables(10);
    let schedule = Schedule::from_tables(&tables, 10).unwrap();
    for (s, shape) in common::SHAPES.into_iter().enumerate() {
        let params = common::random_params(shape, 100 + s as u64);
        let mlp = common::mlp(shape, &params);
        let gpu = GpuSampler::new(&ctx, &mlp, &schedule, &SamplerConfig::PAPER, 10).unwrap();
        let mut rng = common::TestRng(7 + s as u64);
        let n = 197; // not a multiple of the 64-row tile
        let x: Vec<f32> = (0..n * shape.dim).map(|_| 2.0 * rng.normal()).collect();
        let mut scratch = vec![0.0f32; mlp.scratch_len()];
        let mut ratios = Vec::new();
        let mut max_abs = 0.0f64;
        for t in [0u32, 1, 17, 500, 999] {
            let out = gpu.forward(t, &x).unwrap();
            let mut reference = vec![0.0f32; x.len()];
            mlp.predict(t, &x, &mut reference, &mut scratch).unwrap();
            for (k, (&g, &r)) in out.iter().zip(&reference).enumerate() {
                let diff = f64::from((g - r).abs());
                let tol = 5e-5 + 5e-4 * f64::from(r.abs());
                max_abs = max_abs.max(diff);
                ratios.push(diff / tol);
                assert!(
                    diff <= tol,
                    "shape {shape:?} t {t} index {k}: gpu {g} core {r}"
                );
            }
        }
        println!(
            "forward {shape:?}: max |diff| {max_abs:e}, max diff/tol {:.3e}, 99.9th pct diff/tol {:.3e}",
            common::quantile(&ratios, 1.0),
            common::quantile(&ratios, 0.999)
        );
    }
}
