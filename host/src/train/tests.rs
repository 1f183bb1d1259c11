//! Trainer tests against independent paths: an f64 per-sample forward written here from
//! papers.md §1.2 (gradient check by central differences), core's per-sample `Mlp`,
//! the paper's own PyTorch outputs, and an uninterrupted run (resume).

use super::draws::init_params;
use super::engine::GradEngine;
use super::export::from_safetensors;
use super::layout::Layout;
use super::net::{Acts, BatchMlp, TimeBranch, TimeRows};
use super::trainer::{CheckpointPolicy, TrainConfig, Trainer, checkpoint_path};
use mirage_core::denoiser::Denoiser;
use mirage_core::mlp::{Mlp, MlpShape};

fn lrelu(v: f64) -> f64 {
    if v > 0.0 { v } else { 0.02 * v }
}

fn ln(x: &[f64], g: &[f64], b: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter()
        .zip(g)
        .zip(b)
        .map(|((v, g), b)| (v - mean) / (var + 1e-5).sqrt() * g + b)
        .collect()
}

fn matvec(m: &[f64], rows: usize, cols: usize, x: &[f64]) -> Vec<f64> {
    (0..rows)
        .map(|i| (0..cols).map(|j| m[i * cols + j] * x[j]).sum())
        .collect()
}

/// ε̂(x, t) in f64, straight from the equations.
fn forward_f64(l: &Layout, p: &[f64], x: &[f64], t: u32) -> Vec<f64> {
    let (d, w, e, blocks) = l.dims();
    let s = |o: usize, n: usize| &p[o..o + n];
    let mut emb32 = vec![0.0f32; e];
    Mlp::time_embedding(e, t, &mut emb32);
    let emb: Vec<f64> = emb32.iter().map(|&v| f64::from(v)).collect();
    let temb: Vec<f64> = matvec(s(l.t_w, w * e), w, e, &emb)
        .iter()
        .zip(s(l.t_b, w))
        .map(|(a, b)| lrelu(a + b))
        .collect();
    let enc: Vec<f64> = matvec(s(l.enc_w, w * w), w, w, &temb)
        .iter()
        .zip(s(l.enc_b, w))
        .map(|(a, b)| a + b)
        .collect();
    let mut h = matvec(s(l.in_w, w * d), w, d, x);
    for _ in 0..blocks {
        let a1: Vec<f64> = ln(&h, s(l.n1_g, w), s(l.n1_b, w))
            .into_iter()
            .map(lrelu)
            .collect();
        let u: Vec<f64> = matvec(s(l.fc1, w * w), w, w, &a1)
            .iter()
            .zip(&enc)
            .map(|(a, b)| a + b)
            .collect();
        let a2: Vec<f64> = ln(&u, s(l.n2_g, w), s(l.n2_b, w))
            .into_iter()
            .map(lrelu)
            .collect();
        let v = matvec(s(l.fc2, w * w), w, w, &a2);
        h.iter_mut().zip(v).for_each(|(h, v)| *h += v);
    }
    let y = ln(&h, s(l.no_g, w), s(l.no_b, w));
    matvec(s(l.out_w, d * w), d, w, &y)
        .iter()
        .zip(s(l.out_b, d))
        .map(|(a, b)| a + b)
        .collect()
}

fn loss_f64(l: &Layout, p: &[f64], x: &[f32], t: &[u32], eps: &[f32]) -> f64 {
    let d = l.shape.dim;
    let mut sum = 0.0;
    for ((xs, &tv), es) in x.chunks_exact(d).zip(t).zip(eps.chunks_exact(d)) {
        let xs: Vec<f64> = xs.iter().map(|&v| f64::from(v)).collect();
        let out = forward_f64(l, p, &xs, tv);
        sum += out
            .iter()
            .zip(es)
            .map(|(o, e)| (o - f64::from(*e)).powi(2))
            .sum::<f64>();
    }
    sum / (t.len() * d) as f64
}

/// Deterministic pseudo-random values in [−1, 1) (an LCG; test inputs only).
fn lcg(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Initialised weights with the biases and LayerNorm affines perturbed away from (0, 1),
/// so that every gradient term is exercised.
fn test_params(l: &Layout, seed: u64) -> Vec<f32> {
    let mut p = init_params(l, seed);
    let noise = lcg(seed + 99, p.len());
    for spec in l.shape.tensors() {
        if spec.name.ends_with("bias") || spec.name.contains("norm") {
            for (v, n) in p[spec.range()].iter_mut().zip(&noise[spec.range()]) {
                *v += 0.3 * n;
            }
        }
    }
    p
}

fn batch(l: &Layout, n: usize, t_max: u32, seed: u64) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let d = l.shape.dim;
    let x: Vec<f32> = lcg(seed, n * d).iter().map(|v| 2.0 * v).collect();
    let t: Vec<u32> = lcg(seed + 1, n)
        .iter()
        .map(|v| ((v + 1.0) * 0.5 * t_max as f32) as u32 % t_max)
        .collect();
    let eps = lcg(seed + 2, n * d);
    (x, t, eps)
}

#[test]
fn gradient_matches_f64_central_differences() {
    let layout = Layout::new(MlpShape {
        dim: 2,
        width: 8,
        blocks: 3,
        temb_dim: 8,
    })
    .unwrap();
    let params = test_params(&layout, 5);
    // 300 rows: two chunks, and t values shared by several samples.
    let (x, t, eps) = batch(&layout, 300, 40, 11);
    let mut grad = vec![0.0f32; layout.len];
    let loss = GradEngine::new(layout, 2).loss_grad(&params, &x, &t, &eps, &mut grad);
    let p64: Vec<f64> = params.iter().map(|&v| f64::from(v)).collect();
    let l64 = loss_f64(&layout, &p64, &x, &t, &eps);
    assert!((loss - l64).abs() <= 1e-5 * l64, "loss {loss} vs f64 {l64}");
    let mut fd = vec![0.0f64; layout.len];
    let h = 1e-6;
    for (i, g) in fd.iter_mut().enumerate() {
        let mut pp = p64.clone();
        pp[i] += h;
        let up = loss_f64(&layout, &pp, &x, &t, &eps);
        pp[i] -= 2.0 * h;
        let down = loss_f64(&layout, &pp, &x, &t, &eps);
        *g = (up - down) / (2.0 * h);
    }
    let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = 0.0f64;
    for spec in layout.shape.tensors() {
        for i in spec.range() {
            let err = (f64::from(grad[i]) - fd[i]).abs();
            let tol = 1e-4 * scale + 1e-3 * fd[i].abs();
            worst = worst.max(err / tol);
            assert!(
                err <= tol,
                "{}[{}]: analytic {} vs fd {} (scale {scale})",
                spec.name,
                i - spec.offset,
                grad[i],
                fd[i]
            );
        }
    }
    assert!(scale > 1e-3, "gradient suspiciously small: {scale}");
    eprintln!("worst gradient error / tolerance = {worst:.3}");
}

#[test]
fn gradient_is_bit_identical_for_any_thread_count() {
    let layout = Layout::new(MlpShape {
        dim: 2,
        width: 16,
        blocks: 3,
        temb_dim: 16,
    })
    .unwrap();
    let params = test_params(&layout, 8);
    let (x, t, eps) = batch(&layout, 1100, 100, 3);
    let mut reference = vec![0.0f32; layout.len];
    let l1 = GradEngine::new(layout, 1).loss_grad(&params, &x, &t, &eps, &mut reference);
    for threads in [2, 3, 7] {
        let mut g = vec![0.0f32; layout.len];
        let l = GradEngine::new(layout, threads).loss_grad(&params, &x, &t, &eps, &mut g);
        assert_eq!(l.to_bits(), l1.to_bits());
        assert!(
            g.iter()
                .zip(&reference)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{threads} threads"
        );
    }
}

#[test]
fn batched_forward_agrees_with_core_mlp() {
    let layout = Layout::new(MlpShape {
        dim: 2,
        width: 32,
        blocks: 3,
        temb_dim: 32,
    })
    .unwrap();
    let params = test_params(&layout, 21);
    let (x, t, _) = batch(&layout, 300, 1000, 4);
    let mut distinct = t.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let rows: Vec<u32> = t
        .iter()
        .map(|v| distinct.binary_search(v).unwrap() as u32)
        .collect();
    let time = TimeBranch::compute(&layout, &params, &distinct);
    let mut acts = Acts::new(&layout, 300, false);
    let mut out = vec![0.0f32; 600];
    BatchMlp::new(&layout, &params).forward(
        &x,
        300,
        &time,
        TimeRows::PerSample(&rows),
        &mut acts,
        &mut out,
    );
    let mlp = Mlp::new(layout.shape, &params).unwrap();
    let mut scratch = vec![0.0f32; mlp.scratch_len()];
    let mut want = vec![0.0f32; 600];
    for ((xs, &tv), w) in x.chunks_exact(2).zip(&t).zip(want.chunks_exact_mut(2)) {
        mlp.predict(tv, xs, w, &mut scratch).unwrap();
    }
    // Relative to max(|reference|, RMS of all reference outputs): near-zero outputs only
    // carry the absolute rounding of the O(1) terms they are the difference of.
    let rms = (want.iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
    let worst = out
        .iter()
        .zip(&want)
        .fold(0.0f32, |m, (g, w)| m.max((g - w).abs() / w.abs().max(rms)));
    assert!(worst <= 1e-5, "worst relative difference {worst}");
}

#[test]
fn paper_pytorch_weights_reproduce_the_probe_outputs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference");
    let Ok(bytes) = std::fs::read(dir.join("paper_mlp_1d.safetensors")) else {
        eprintln!("reference weights not present; skipped");
        return;
    };
    let (shape, params) = from_safetensors(&bytes).unwrap();
    assert_eq!(shape, MlpShape::PAPER_1D);
    let probes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("paper_mlp_1d_probes.json")).unwrap())
            .unwrap();
    let xs: Vec<f32> = probes["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_f64().unwrap() as f32)
        .collect();
    let ts: Vec<u32> = probes["t"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let eps: Vec<f64> = probes["eps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_f64().unwrap())
        .collect();
    assert!(xs.len() == ts.len() && ts.len() == eps.len() && !ts.is_empty());
    let layout = Layout::new(shape).unwrap();
    let mut distinct = ts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let rows: Vec<u32> = ts
        .iter()
        .map(|v| distinct.binary_search(v).unwrap() as u32)
        .collect();
    let time = TimeBranch::compute(&layout, &params, &distinct);
    let mut acts = Acts::new(&layout, xs.len(), false);
    let mut out = vec![0.0f32; xs.len()];
    BatchMlp::new(&layout, &params).forward(
        &xs,
        xs.len(),
        &time,
        TimeRows::PerSample(&rows),
        &mut acts,
        &mut out,
    );
    let worst = out
        .iter()
        .zip(&eps)
        .fold(0.0f64, |m, (o, w)| m.max((f64::from(*o) - w).abs()));
    assert!(worst <= 5e-5, "max |ε̂ − PyTorch| = {worst}");
}

fn tiny_config() -> TrainConfig {
    TrainConfig {
        width: 16,
        temb_dim: 16,
        blocks: 2,
        train_steps: 100,
        batch: 300,
        ..TrainConfig::paper(2)
    }
}

fn tiny_data(n: usize) -> Vec<f32> {
    lcg(77, n * 2)
}

#[test]
fn resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    for shuffle in [false, true] {
        let config = TrainConfig {
            shuffle,
            ..tiny_config()
        };
        let data = tiny_data(700); // 2 steps per epoch, remainder dropped
        let mut full = Trainer::new(config.clone(), data.clone(), 2).unwrap();
        full.run(7, None, false).unwrap();

        let policy = CheckpointPolicy {
            path: checkpoint_path(dir.path()),
            every: 2,
        };
        let mut killed = Trainer::new(config.clone(), data.clone(), 1).unwrap();
        killed.run(3, Some(&policy), false).unwrap();
        // "Killed" after step 3 was checkpointed; continue with another thread count.
        let bytes = std::fs::read(&policy.path).unwrap();
        let mut resumed = Trainer::resume(config.clone(), data.clone(), 3, &bytes).unwrap();
        assert_eq!(resumed.step(), 3);
        resumed.run(7, Some(&policy), false).unwrap();
        assert!(
            full.params()
                .iter()
                .zip(resumed.params())
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        assert_eq!(full.adam(), resumed.adam());
        assert_eq!(full.last_loss().to_bits(), resumed.last_loss().to_bits());

        // Other data or config ⇒ refused with a reason.
        let mut other = data.clone();
        other[0] += 1.0;
        let err = Trainer::resume(config.clone(), other, 1, &bytes)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("different dataset"), "{err}");
        let err = Trainer::resume(TrainConfig { seed: 9, ..config }, data, 1, &bytes)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("different configuration"), "{err}");
    }
}

#[test]
fn corrupt_checkpoints_are_clear_errors() {
    let config = tiny_config();
    let mut tr = Trainer::new(config.clone(), tiny_data(300), 1).unwrap();
    tr.run(1, None, false).unwrap();
    let bytes = tr.checkpoint().unwrap();
    let err = Trainer::resume(config.clone(), tiny_data(300), 1, &bytes[..bytes.len() / 2])
        .err()
        .unwrap();
    assert!(err.to_string().contains("truncated"), "{err}");
    let mut flipped = bytes.clone();
    flipped[100] ^= 1;
    let err = Trainer::resume(config, tiny_data(300), 1, &flipped)
        .err()
        .unwrap();
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn training_reduces_the_loss() {
    // 1D data at 1, 2, 3: a few dozen Adam steps must cut the ε-MSE well below its
    // starting value (≈ 1 for an untrained network).
    let config = TrainConfig {
        dim: 1,
        batch: 600,
        ..tiny_config()
    };
    let data: Vec<f32> = (0..1200)
        .map(|i| (i % 3 + 1) as f32 + 0.05 * lcg(i as u64, 1)[0])
        .collect();
    let mut tr = Trainer::new(config, data, 2).unwrap();
    tr.run(1, None, false).unwrap();
    let first = tr.last_loss();
    tr.run(60, None, false).unwrap();
    assert!(
        tr.last_loss() < 0.6 * first,
        "loss {first} → {}",
        tr.last_loss()
    );
}
