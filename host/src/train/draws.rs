//! The trainer's seeded random draws (papers.md §7 D7): every stream comes from the one
//! master seed through `mirage_core::noise::chacha_stream(seed, stream)`.
//!
//! * initial weights: stream [`STREAM_INIT`]; Xavier-uniform U(±√(6/(fan_in+fan_out)))
//!   for every Linear weight in layout order, zero biases, LayerNorm (1, 0);
//! * step s: stream [`STREAM_STEP_BASE`] + s; first t₀…t_{N−1} ~ U{0..T−1}, then ε for
//!   the whole batch (N·D normals by Box–Muller, [`NormalStream`]);
//! * epoch e (with `--shuffle`): stream [`STREAM_SHUFFLE_BASE`] + e; Fisher–Yates.
//!
//! Keying the streams by step and epoch makes the step number the whole RNG position: a
//! resumed run draws exactly what the uninterrupted run would have drawn.
//!
//! Integers below n come from the top of a 64×64-bit product, ⌊u·n / 2⁶⁴⌋ (bias < n/2⁶⁴).

use rand_core::Rng;

use super::layout::Layout;
use crate::data::NormalStream;
use mirage_core::noise::chacha_stream;

/// Stream of the initial weights ("init").
pub const STREAM_INIT: u64 = 0x696e_6974;
/// Base of the per-step streams of t and ε ("tr" << 48, plus the step).
pub const STREAM_STEP_BASE: u64 = 0x7472 << 48;
/// Base of the per-epoch shuffle streams ("sh" << 48, plus the epoch).
pub const STREAM_SHUFFLE_BASE: u64 = 0x7368 << 48;

fn below(rng: &mut impl Rng, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// Initial parameters for `layout` from `seed`.
#[must_use]
pub fn init_params(layout: &Layout, seed: u64) -> Vec<f32> {
    let mut rng = chacha_stream(seed, STREAM_INIT);
    let mut params = vec![0.0f32; layout.len];
    for spec in layout.shape.tensors() {
        let range = spec.range();
        let out = &mut params[range];
        if !spec.name.ends_with("weight") {
            continue; // biases start at 0
        }
        if spec.name.contains("norm") {
            out.fill(1.0);
        } else {
            let bound = (6.0 / (spec.rows + spec.cols) as f64).sqrt();
            for v in out.iter_mut() {
                let u = f64::from(rng.next_u32() >> 8) * (1.0 / 16_777_216.0);
                *v = (bound * (2.0 * u - 1.0)) as f32;
            }
        }
    }
    params
}

/// The timesteps (`t`, length n) and noise (`eps`, length n·dim) of training step `step`.
pub fn step_draws(
    seed: u64,
    step: u64,
    train_steps: usize,
    dim: usize,
    t: &mut Vec<u32>,
    eps: &mut Vec<f32>,
    n: usize,
) {
    let mut rng = chacha_stream(seed, STREAM_STEP_BASE.wrapping_add(step));
    t.clear();
    t.extend((0..n).map(|_| below(&mut rng, train_steps) as u32));
    let mut normals = NormalStream::new(rng);
    eps.clear();
    eps.extend((0..n * dim).map(|_| normals.next_normal() as f32));
}

/// The sample order of epoch `epoch`: identity without shuffling, else a seeded
/// Fisher–Yates permutation of 0..n.
#[must_use]
pub fn epoch_order(seed: u64, epoch: u64, n: usize, shuffle: bool) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    if shuffle {
        let mut rng = chacha_stream(seed, STREAM_SHUFFLE_BASE.wrapping_add(epoch));
        for i in (1..n).rev() {
            order.swap(i, below(&mut rng, i + 1));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirage_core::mlp::MlpShape;

    #[test]
    fn init_follows_xavier_bounds_and_layer_norm_identity() {
        let layout = Layout::new(MlpShape {
            dim: 2,
            width: 16,
            blocks: 2,
            temb_dim: 8,
        })
        .unwrap();
        let p = init_params(&layout, 3);
        assert_eq!(p, init_params(&layout, 3));
        for spec in layout.shape.tensors() {
            let v = &p[spec.range()];
            if spec.name.contains("norm") && spec.name.ends_with("weight") {
                assert!(v.iter().all(|&x| x == 1.0), "{}", spec.name);
            } else if spec.name.ends_with("bias") {
                assert!(v.iter().all(|&x| x == 0.0), "{}", spec.name);
            } else {
                let bound = (6.0 / (spec.rows + spec.cols) as f32).sqrt();
                assert!(v.iter().all(|x| x.abs() <= bound), "{}", spec.name);
                // Uniform on ±b has variance b²/3.
                let var = v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32;
                assert!(
                    (var / (bound * bound / 3.0) - 1.0).abs() < 0.5,
                    "{}: {var}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn draws_are_keyed_by_step_and_uniform_in_t() {
        let (mut t, mut e) = (Vec::new(), Vec::new());
        step_draws(1, 5, 1000, 2, &mut t, &mut e, 20_000);
        let (t5, e5) = (t.clone(), e.clone());
        step_draws(1, 6, 1000, 2, &mut t, &mut e, 20_000);
        assert_ne!(t, t5);
        step_draws(1, 5, 1000, 2, &mut t, &mut e, 20_000);
        assert_eq!((t.clone(), e.clone()), (t5, e5));
        assert!(t.iter().all(|&v| v < 1000));
        let mean = t.iter().map(|&v| f64::from(v)).sum::<f64>() / 20_000.0;
        // U{0..999}: mean 499.5, sd 288.7/√n ≈ 2.04.
        assert!((mean - 499.5).abs() < 10.0, "{mean}");
        let m2 = e.iter().map(|&v| f64::from(v * v)).sum::<f64>() / e.len() as f64;
        assert!((m2 - 1.0).abs() < 0.05, "{m2}");
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        assert_eq!(epoch_order(1, 0, 5, false), vec![0, 1, 2, 3, 4]);
        let a = epoch_order(1, 0, 1000, true);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_ne!(a, s);
        assert_ne!(a, epoch_order(1, 1, 1000, true));
        assert_eq!(a, epoch_order(1, 0, 1000, true));
    }
}
