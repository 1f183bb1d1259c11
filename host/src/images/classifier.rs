//! A small digit classifier trained once by mirage (papers.md §7 D6): an MLP
//! D → 64 → 32 → 10 with SiLU, softmax cross-entropy, Adam (lr 1e-3), seeded. Its
//! 32-wide penultimate activations are the features of the Fréchet distance, its argmax the
//! class histogram whose entropy tracks mode collapse.

use anyhow::{Result, ensure};
use rand_core::Rng;

use mirage_core::noise::chacha_stream;

use super::unet::layers::{dense_backward, dense_forward, silu_backward, silu_forward};
use crate::train::{Adam, AdamConfig};

/// Hidden widths.
const H1: usize = 64;
/// Penultimate (feature) width.
pub const FEATURES: usize = 32;
const CLASSES: usize = 10;

/// A trained classifier.
#[derive(Clone, Debug)]
pub struct Classifier {
    dim: usize,
    params: Vec<f32>,
}

struct Offsets {
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
    w3: usize,
    b3: usize,
    total: usize,
}

fn offsets(dim: usize) -> Offsets {
    let w1 = 0;
    let b1 = w1 + H1 * dim;
    let w2 = b1 + H1;
    let b2 = w2 + FEATURES * H1;
    let w3 = b2 + FEATURES;
    let b3 = w3 + CLASSES * FEATURES;
    Offsets {
        w1,
        b1,
        w2,
        b2,
        w3,
        b3,
        total: b3 + CLASSES,
    }
}

struct Pass {
    z1: Vec<f32>,
    g1: Vec<f32>,
    a1: Vec<f32>,
    z2: Vec<f32>,
    g2: Vec<f32>,
    a2: Vec<f32>,
    logits: Vec<f32>,
}

impl Classifier {
    fn pass(&self, x: &[f32]) -> Pass {
        let (o, n, p) = (offsets(self.dim), x.len() / self.dim, &self.params);
        let mut z1 = vec![0.0; n * H1];
        dense_forward(&p[o.w1..], &p[o.b1..], x, n, self.dim, H1, &mut z1);
        let mut a1 = vec![0.0; n * H1];
        let mut g1 = vec![0.0; n * H1];
        silu_forward(&z1, &mut a1, &mut g1);
        let mut z2 = vec![0.0; n * FEATURES];
        dense_forward(&p[o.w2..], &p[o.b2..], &a1, n, H1, FEATURES, &mut z2);
        let mut a2 = vec![0.0; n * FEATURES];
        let mut g2 = vec![0.0; n * FEATURES];
        silu_forward(&z2, &mut a2, &mut g2);
        let mut logits = vec![0.0; n * CLASSES];
        dense_forward(
            &p[o.w3..],
            &p[o.b3..],
            &a2,
            n,
            FEATURES,
            CLASSES,
            &mut logits,
        );
        Pass {
            z1,
            g1,
            a1,
            z2,
            g2,
            a2,
            logits,
        }
    }

    /// Trains on `images` (`[n][dim]`) with `labels` for `epochs` epochs at batch 64.
    ///
    /// # Errors
    /// Empty or mismatched inputs, labels above 9.
    pub fn train(
        images: &[f32],
        labels: &[u8],
        dim: usize,
        epochs: usize,
        seed: u64,
    ) -> Result<Self> {
        let n = labels.len();
        ensure!(
            n > 0 && dim > 0 && images.len() == n * dim,
            "classifier: {} values for {n} labels of dim {dim}",
            images.len()
        );
        ensure!(
            labels.iter().all(|&l| l < 10),
            "classifier: labels must be 0..=9"
        );
        let o = offsets(dim);
        let mut rng = chacha_stream(seed, 0x636c_6173);
        let mut params = vec![0.0f32; o.total];
        for (w, len, fan_in) in [
            (o.w1, H1 * dim, dim),
            (o.w2, FEATURES * H1, H1),
            (o.w3, CLASSES * FEATURES, FEATURES),
        ] {
            let bound = 1.0 / (fan_in as f64).sqrt();
            for p in &mut params[w..w + len] {
                *p = ((f64::from(rng.next_u32()) / f64::from(u32::MAX) * 2.0 - 1.0) * bound) as f32;
            }
        }
        let mut model = Self { dim, params };
        let mut adam = Adam::new(AdamConfig::PAPER, o.total);
        let mut order: Vec<usize> = (0..n).collect();
        let batch = 64.min(n);
        for _ in 0..epochs {
            for i in (1..n).rev() {
                order.swap(
                    i,
                    ((u64::from(rng.next_u32()) * (i as u64 + 1)) >> 32) as usize,
                );
            }
            for chunk in order.chunks(batch) {
                let x: Vec<f32> = chunk
                    .iter()
                    .flat_map(|&i| images[i * dim..][..dim].iter().copied())
                    .collect();
                let b = chunk.len();
                let pass = model.pass(&x);
                let mut dlogits = vec![0.0f32; b * CLASSES];
                for ((row, d), &i) in pass
                    .logits
                    .chunks_exact(CLASSES)
                    .zip(dlogits.chunks_exact_mut(CLASSES))
                    .zip(chunk)
                {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
                    for (k, (g, &v)) in d.iter_mut().zip(row).enumerate() {
                        *g = ((v - max).exp() / sum - f32::from(u8::from(k == labels[i] as usize)))
                            / b as f32;
                    }
                }
                let mut grad = vec![0.0f32; o.total];
                let p = &model.params;
                let (g12, g3) = grad.split_at_mut(o.w3);
                let (gw3, gb3) = g3.split_at_mut(CLASSES * FEATURES);
                let mut da2 = vec![0.0; b * FEATURES];
                dense_backward(
                    &p[o.w3..],
                    &pass.a2,
                    &dlogits,
                    b,
                    FEATURES,
                    CLASSES,
                    gw3,
                    gb3,
                    &mut da2,
                );
                let mut dz2 = vec![0.0; b * FEATURES];
                silu_backward(&pass.z2, &pass.g2, &da2, &mut dz2);
                let (g1, g2) = g12.split_at_mut(o.w2);
                let (gw2, gb2) = g2.split_at_mut(FEATURES * H1);
                let mut da1 = vec![0.0; b * H1];
                dense_backward(
                    &p[o.w2..],
                    &pass.a1,
                    &dz2,
                    b,
                    H1,
                    FEATURES,
                    gw2,
                    gb2,
                    &mut da1,
                );
                let mut dz1 = vec![0.0; b * H1];
                silu_backward(&pass.z1, &pass.g1, &da1, &mut dz1);
                let (gw1, gb1) = g1.split_at_mut(H1 * dim);
                let mut dx = vec![0.0; b * dim];
                dense_backward(&p[o.w1..], &x, &dz1, b, dim, H1, gw1, gb1, &mut dx);
                adam.update(&mut model.params, &grad);
            }
        }
        Ok(model)
    }

    /// Penultimate features (`[n][32]`, f64) and predicted classes of `images`.
    ///
    /// # Errors
    /// A ragged input.
    pub fn features_and_classes(&self, images: &[f32]) -> Result<(Vec<f64>, Vec<u8>)> {
        ensure!(
            images.len().is_multiple_of(self.dim),
            "classifier: {} values is not a whole number of {}-pixel images",
            images.len(),
            self.dim
        );
        let pass = self.pass(images);
        let classes = pass
            .logits
            .chunks_exact(CLASSES)
            .map(|r| {
                r.iter()
                    .enumerate()
                    .fold((0usize, f32::NEG_INFINITY), |b, (k, &v)| {
                        if v > b.1 { (k, v) } else { b }
                    })
                    .0 as u8
            })
            .collect();
        Ok((pass.a2.iter().map(|&v| f64::from(v)).collect(), classes))
    }
}

/// Entropy (nats) of the class histogram; ln 10 ≈ 2.303 when balanced.
#[must_use]
pub fn class_entropy(classes: &[u8]) -> f64 {
    let mut counts = [0usize; CLASSES];
    for &c in classes {
        counts[usize::from(c).min(CLASSES - 1)] += 1;
    }
    let n = classes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64 / n)
        .map(|p| -p * p.ln())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_separable_classes_and_entropy_is_exact() {
        // Class k lights pixel k of a 16-pixel image (plus a fixed pattern of noise).
        let n = 400;
        let dim = 16;
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let images: Vec<f32> = (0..n * dim)
            .map(|j| {
                let (i, d) = (j / dim, j % dim);
                if d == usize::from(labels[i]) {
                    1.0
                } else {
                    ((j * 7919) % 13) as f32 / 13.0 - 0.5
                }
            })
            .collect();
        let c = Classifier::train(&images, &labels, dim, 30, 1).unwrap();
        let (features, classes) = c.features_and_classes(&images).unwrap();
        assert_eq!(features.len(), n * FEATURES);
        let correct = classes.iter().zip(&labels).filter(|(a, b)| a == b).count();
        assert!(correct as f64 > 0.95 * n as f64, "{correct}/{n}");
        assert!((class_entropy(&labels) - 10f64.ln()).abs() < 1e-12);
        assert!((class_entropy(&[1, 1, 2, 2]) - 2f64.ln()).abs() < 1e-12);
        assert_eq!(class_entropy(&[4; 9]), 0.0);
    }
}
