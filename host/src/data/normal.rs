//! Seeded standard normals for dataset generation (papers.md §7 D7): Box–Muller on a
//! [`ChaCha8Rng`] stream.
//!
//! z₀ = r·cos θ, z₁ = r·sin θ with r = √(−2 ln u₁), θ = 2π u₂, where u₁ ∈ (0, 1] and
//! u₂ ∈ [0, 1) are built from the top 53 bits of one `next_u64` each. Both values of a
//! pair are used, in that order. Every transcendental goes through `libm` (f64), so the
//! same seed gives the same bits on every platform.

use mirage_core::noise::chacha_stream;
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

/// ChaCha stream id reserved for dataset noise (the other D7 streams — init, t/ε draws,
/// sampling, filters — use other ids).
pub const DATA_STREAM: u64 = 0x6461_7461; // "data"

/// The dataset generator of `master_seed`: core's D7 `chacha_stream` on
/// [`DATA_STREAM`].
#[must_use]
pub fn data_rng(master_seed: u64) -> ChaCha8Rng {
    chacha_stream(master_seed, DATA_STREAM)
}

/// A stream of standard normals drawn by Box–Muller from any [`Rng`].
pub struct NormalStream<R> {
    rng: R,
    spare: Option<f64>,
}

impl<R: Rng> NormalStream<R> {
    /// Wraps `rng`; the first call to [`NormalStream::next_normal`] draws a fresh pair.
    pub fn new(rng: R) -> Self {
        Self { rng, spare: None }
    }

    /// The next N(0, 1) value (f64).
    pub fn next_normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        // u1 ∈ (0, 1] so ln u1 is finite; u2 ∈ [0, 1).
        let u1 = ((self.rng.next_u64() >> 11) + 1) as f64 * SCALE;
        let u2 = (self.rng.next_u64() >> 11) as f64 * SCALE;
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let theta = core::f64::consts::TAU * u2;
        self.spare = Some(r * libm::sin(theta));
        r * libm::cos(theta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_match_standard_normal() {
        let mut s = NormalStream::new(data_rng(7));
        let n = 200_000;
        let (mut m1, mut m2, mut m4, mut tail) = (0.0, 0.0, 0.0, 0usize);
        for _ in 0..n {
            let z = s.next_normal();
            m1 += z;
            m2 += z * z;
            m4 += z * z * z * z;
            if z.abs() > 1.959_964 {
                tail += 1;
            }
        }
        let nf = n as f64;
        // Standard errors: mean 1/√n, E z² √(2/n), E z⁴ √(96/n); P(|z|>1.96) = 0.05.
        assert!((m1 / nf).abs() < 4.0 / nf.sqrt());
        assert!((m2 / nf - 1.0).abs() < 4.0 * (2.0 / nf).sqrt());
        assert!((m4 / nf - 3.0).abs() < 4.0 * (96.0 / nf).sqrt());
        let p = tail as f64 / nf;
        assert!((p - 0.05).abs() < 4.0 * (0.05 * 0.95 / nf).sqrt(), "{p}");
    }

    #[test]
    fn streams_differ_by_seed_and_repeat_by_seed() {
        let a: Vec<f64> = {
            let mut s = NormalStream::new(data_rng(1));
            (0..16).map(|_| s.next_normal()).collect()
        };
        let b: Vec<f64> = {
            let mut s = NormalStream::new(data_rng(1));
            (0..16).map(|_| s.next_normal()).collect()
        };
        let c: Vec<f64> = {
            let mut s = NormalStream::new(data_rng(2));
            (0..16).map(|_| s.next_normal()).collect()
        };
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_ne!(a, c);
    }
}
