//! One GPU sampler step vs core's `sampler::step` on the same inputs, for every method,
//! prediction type, clipping and Epsilon Scaling (design.md §4: elementwise, abs ≤ 4 ulp +
//! 1e-7, plus σ·1e-6 where noise is added: the GPU's normals differ from libm's by ≤ 1e-6),
//! plus 8 ε_f32 times the element's running-error scale ([`term_scales`]: a fused multiply-add
//! or a 2.5-ulp division on a real GPU rounds at the scale of the terms, not of the result).
mod common;

use mirage_core::mlp::MlpShape;
use mirage_core::noise::{STREAM_STEP, fill_normals};
use mirage_core::sampler::{
    Clip, EpsilonScaling, Method, Prediction, SamplerConfig, Variance, step,
};
use mirage_core::schedule::{Schedule, StepCoefs};
use mirage_gpu::GpuSampler;

fn configs() -> Vec<SamplerConfig> {
    let base = SamplerConfig::PAPER;
    let mut v = vec![
        base,
        SamplerConfig {
            method: Method::Ddpm(Variance::FixedSmall),
            ..base
        },
        SamplerConfig {
            method: Method::Ddim { eta: 0.0 },
            ..base
        },
        SamplerConfig {
            method: Method::Ddim { eta: 0.5 },
            ..base
        },
        SamplerConfig {
            method: Method::Ddim { eta: 1.0 },
            ..base
        },
        SamplerConfig {
            clip: Clip::Symmetric(1.5),
            ..base
        },
        SamplerConfig {
            method: Method::Ddim { eta: 0.3 },
            clip: Clip::Symmetric(2.0),
            ..base
        },
        SamplerConfig {
            eps_scaling: EpsilonScaling::Constant(1.005),
            ..base
        },
        SamplerConfig {
            eps_scaling: EpsilonScaling::Linear { k: 1e-4, b: 1.0 },
            ..base
        },
    ];
    for prediction in [Prediction::Sample, Prediction::Velocity] {
        v.push(SamplerConfig { prediction, ..base });
        v.push(SamplerConfig {
            prediction,
            eps_scaling: EpsilonScaling::Constant(1.01),
            ..base
        });
        v.push(SamplerConfig {
            prediction,
            method: Method::Ddim { eta: 0.5 },
            clip: Clip::Symmetric(1.0),
            ..base
        });
    }
    v
}

/// Running-error scales of one element: the kernel's formulas (step.wgsl) evaluated on
/// absolute values, so each is ≥ the sum of the magnitudes of every term that went into the
/// result. GPU and core may round differently by a few ulp *of these terms* (WGSL lets a
/// compiler fuse `a·x + b·y` into one FMA and NVIDIA's does; SPIR-V division may be off by
/// 2.5 ulp), which cancellation can make many ulp of the result: at the first step of a
/// short paper schedule 1/√ᾱ ≈ 10²² and x̂0 = x/√ᾱ − ε̂·√(1/ᾱ − 1) cancels two such terms.
/// Returns (scale of x_{t−1} before noise, scale of x̂0).
fn term_scales(cfg: &SamplerConfig, c: &StepCoefs, x: f32, m: f32) -> (f32, f32) {
    let (x, m) = (x.abs(), m.abs());
    let (sab, s1ab) = (c.sqrt_alpha_bar, c.sqrt_one_minus_alpha_bar);
    let (mut eps, mut x0) = match cfg.prediction {
        Prediction::Epsilon => (
            m,
            c.inv_sqrt_alpha_bar * x + c.sqrt_recip_alpha_bar_minus_one * m,
        ),
        Prediction::Sample => ((x + sab * m) / s1ab, m),
        Prediction::Velocity => (sab * m + s1ab * x, sab * x + s1ab * m),
    };
    if cfg.prediction != Prediction::Epsilon && cfg.eps_scaling != EpsilonScaling::Off {
        x0 += 2.0 * c.sqrt_recip_alpha_bar_minus_one * eps;
    }
    if cfg.clip != Clip::None {
        eps = (x + sab * x0) / s1ab;
    }
    let mu = match cfg.method {
        Method::Ddpm(_) if cfg.clip != Clip::None => c.posterior_c1 * x0 + c.posterior_c2 * x,
        Method::Ddpm(_) => c.inv_sqrt_alpha * (x + c.eps_coef * eps),
        Method::Ddim { .. } => c.sqrt_alpha_bar_prev * x0 + c.one_minus_alpha_bar_prev.sqrt() * eps,
    };
    (mu, x0)
}

#[test]
fn step_matches_core_step() {
    let Some(ctx) = common::context() else { return };
    let shape = MlpShape {
        dim: 3,
        width: 16,
        blocks: 1,
        temb_dim: 4,
    };
    let params = common::random_params(shape, 5);
    let steps = 50;
    let tables = common::paper_tables(steps);
    let schedule = Schedule::from_tables(&tables, steps).unwrap();
    let (n, seed, first) = (150usize, 0xDEAD_BEEF_u64, 1000u32);
    let mut rng = common::TestRng(11);
    let x_t: Vec<f32> = (0..n * shape.dim).map(|_| 1.5 * rng.normal()).collect();
    let model_out: Vec<f32> = (0..n * shape.dim).map(|_| rng.normal()).collect();
    let mut max_excess = 0.0f32; // max of |diff| / tolerance
    for cfg in configs() {
        let mlp = common::mlp(shape, &params).with_prediction(cfg.prediction);
        let gpu = GpuSampler::new(&ctx, &mlp, &schedule, &cfg, 10).unwrap();
        for i in [steps - 1, 30, 9, 1, 0] {
            let out = gpu.step(i, seed, first, &x_t, &model_out).unwrap();
            let mut noise = vec![0.0f32; x_t.len()];
            if cfg.needs_noise(i) {
                for (k, row) in noise.chunks_exact_mut(shape.dim).enumerate() {
                    fill_normals(seed, STREAM_STEP, first + k as u32, i as u32, row);
                }
            }
            let noise_arg: &[f32] = if cfg.needs_noise(i) { &noise } else { &[] };
            let mut x_prev = vec![0.0f32; x_t.len()];
            let mut x0_hat = vec![0.0f32; x_t.len()];
            step(
                &cfg,
                &schedule,
                i,
                &x_t,
                &model_out,
                noise_arg,
                &mut x_prev,
                &mut x0_hat,
            )
            .unwrap();
            let c = schedule.coefs(i).unwrap();
            let sigma = match cfg.method {
                Method::Ddpm(_) => c.sigma_large.max(c.sigma_small),
                Method::Ddim { eta } => eta * c.sigma_small,
            };
            let noise_tol = if cfg.needs_noise(i) {
                sigma * 1e-6
            } else {
                0.0
            };
            for k in 0..x_t.len() {
                let (mu_scale, x0_scale) = term_scales(&cfg, &c, x_t[k], model_out[k]);
                let rounding = |scale: f32| 8.0 * f32::EPSILON * scale;
                for (what, g, r, extra) in [
                    (
                        "x_prev",
                        out.x_prev[k],
                        x_prev[k],
                        noise_tol + rounding(mu_scale),
                    ),
                    ("x0_hat", out.x0_hat[k], x0_hat[k], rounding(x0_scale)),
                ] {
                    let tol = 4.0 * common::ulp(r) + 1e-7 + extra;
                    let diff = (g - r).abs();
                    max_excess = max_excess.max(diff / tol);
                    assert!(diff <= tol, "{cfg:?} i {i} {what}[{k}]: gpu {g} core {r}");
                }
            }
        }
    }
    println!("step: max |diff| / tolerance = {max_excess:.3}");
}
