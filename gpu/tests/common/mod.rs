//! Shared helpers of the GPU tests: the adapter gate, seeded random models and inputs,
//! schedules, and the tolerance bookkeeping.
#![allow(dead_code)]

use mirage_core::mlp::{Mlp, MlpShape};
use mirage_core::schedule::{BetaSchedule, Spacing, compute_tables, table_len};
use mirage_gpu::{GpuContext, GpuError};

/// The device under test, or `None` (and "skipped: no GPU adapter") when there is none;
/// with `MIRAGE_REQUIRE_GPU=1` a missing adapter fails the test instead.
pub fn context() -> Option<GpuContext> {
    match GpuContext::new() {
        Ok(ctx) => Some(ctx),
        Err(e @ GpuError::NoAdapter { .. }) => {
            if std::env::var("MIRAGE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("MIRAGE_REQUIRE_GPU=1 but no GPU adapter: {e}");
            }
            eprintln!("skipped: no GPU adapter ({e})");
            None
        }
        Err(e) => panic!("GPU context failed: {e}"),
    }
}

/// SplitMix64, an RNG independent of the code under test.
pub struct TestRng(pub u64);

impl TestRng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f64 / (1u64 << 23) as f64 - 1.0) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// Xavier-uniform weights, LayerNorm γ = 1 ± 0.2, β and biases ±0.1: a random but
/// well-conditioned network of the paper's architecture.
pub fn random_params(shape: MlpShape, seed: u64) -> Vec<f32> {
    let mut rng = TestRng(seed);
    let mut params = vec![0.0f32; shape.param_count()];
    for spec in shape.tensors() {
        let slice = &mut params[spec.offset..spec.offset + spec.rows * spec.cols];
        let is_norm_weight = spec.name.contains("norm") && spec.name.ends_with("weight");
        for v in slice.iter_mut() {
            *v = if spec.cols > 1 {
                let bound = (6.0 / (spec.rows + spec.cols) as f32).sqrt();
                bound * rng.symmetric()
            } else if is_norm_weight {
                1.0 + 0.2 * rng.symmetric()
            } else {
                0.1 * rng.symmetric()
            };
        }
    }
    params
}

/// The paper's β schedule (linspace 1e-3..0.2, T = 1000) respaced to `steps` (linspace).
pub fn paper_tables(steps: usize) -> Vec<f32> {
    let mut tables = vec![0.0f32; table_len(steps)];
    compute_tables(
        &BetaSchedule::PAPER,
        1000,
        &Spacing::Linspace,
        steps,
        &mut tables,
    )
    .unwrap();
    tables
}

pub fn mlp(shape: MlpShape, params: &[f32]) -> Mlp<'_> {
    Mlp::new(shape, params).unwrap()
}

/// Small shapes that exercise tile edges (width not a multiple of 64, dim 1–3).
pub const SHAPES: [MlpShape; 3] = [
    MlpShape::PAPER_2D,
    MlpShape {
        dim: 3,
        width: 40,
        blocks: 2,
        temb_dim: 8,
    },
    MlpShape {
        dim: 1,
        width: 70,
        blocks: 1,
        temb_dim: 6,
    },
];

/// The distance from `x` to the next f32 away from zero.
pub fn ulp(x: f32) -> f32 {
    let a = x.abs();
    if a == 0.0 {
        f32::from_bits(1)
    } else {
        f32::from_bits(a.to_bits() + 1) - a
    }
}

/// The q-quantile (0..=1) of `values` (sorted copy).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() - 1) as f64 * q).round() as usize;
    v[idx]
}
