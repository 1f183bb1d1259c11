//! Counter-based noise: any (seed, stream, sample, step, dimension) maps to one standard
//! normal, so every path (CPU, fixed point, GPU) can regenerate the noise of any sample at any
//! step without state. The GPU re-implements exactly this.
//!
//! Generator: Philox4x32-10 (Salmon, Moraes, Dror, Shaw 2011, "Parallel random numbers: as
//! easy as 1, 2, 3"; Random123's constants). Normal z of dimension d:
//!
//! ```text
//! w  = philox(counter = [d/4, step, sample, stream], key = [seed lo, seed hi])
//! p  = (d mod 4)/2,  u1 = (w[2p] >> 8 + ½)·2⁻²⁴,  u2 = (w[2p+1] >> 8 + ½)·2⁻²⁴   (in (0, 1])
//! r  = √(−2 ln u1),  θ = 2π·u2 − π   (f32 multiply, then subtract)
//! z  = r cos θ (d even) or r sin θ (d odd)          (Box–Muller, libm f32 functions)
//! ```
//!
//! The transcendentals call libm directly (not [`crate::math`]) so that the optional
//! `fast-math` feature can never change these bits.
//!
//! Host-side streams that need a conventional RNG (data, initialisation, shuffles; `papers.md`
//! D7) come from [`chacha_stream`]: ChaCha8 seeded from the master seed, one stream id each.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// Stream of the per-step noise z at reverse step index i (step = i).
pub const STREAM_STEP: u32 = 0;
/// Stream of the initial x_T (step = 0).
pub const STREAM_INIT: u32 = 1;
/// Stream of Hutchinson probes (step = probe index).
pub const STREAM_PROBE: u32 = 2;

const PHILOX_M0: u32 = 0xD251_1F53;
const PHILOX_M1: u32 = 0xCD9E_8D57;
const PHILOX_W0: u32 = 0x9E37_79B9;
const PHILOX_W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds (Salmon et al. 2011), the Random123 reference: each round
/// multiplies words 0 and 2 by the two constants and mixes the high halves with the key; the
/// key is bumped by the Weyl constants between rounds.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(PHILOX_W0);
            k1 = k1.wrapping_add(PHILOX_W1);
        }
        let p0 = u64::from(PHILOX_M0) * u64::from(c0);
        let p1 = u64::from(PHILOX_M1) * u64::from(c2);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
    }
    [c0, c1, c2, c3]
}

/// Maps 32 random bits to a uniform in (0, 1]: the top 24 bits k plus ½, times 2⁻²⁴
/// (bit-identical in WGSL). k + ½ is exact in f32 only for k < 2²³; above, f32 rounds it to
/// the even neighbour, so the largest k (256 of 2³² inputs) gives exactly 1.0. That is
/// harmless here (ln 1 = 0 gives r = 0; θ = π is fine) and kept because every path must
/// reproduce these bits. The smallest value is 2⁻²⁵, so ln never sees 0.
#[inline(always)]
pub fn uniform_open(bits: u32) -> f32 {
    ((bits >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

/// The Philox key of a 64-bit seed: [low word, high word].
#[inline(always)]
fn key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The Box–Muller pair (r cos θ, r sin θ) of two random words.
#[inline(always)]
fn box_muller(bits_radius: u32, bits_angle: u32) -> (f32, f32) {
    let u1 = uniform_open(bits_radius);
    let u2 = uniform_open(bits_angle);
    let r = libm::sqrtf(-2.0 * libm::logf(u1));
    let scaled = core::f32::consts::TAU * u2;
    let theta = scaled - core::f32::consts::PI;
    (r * libm::cosf(theta), r * libm::sinf(theta))
}

/// The standard normal of (seed, stream, sample, step, dim); see the module docs.
pub fn normal(seed: u64, stream: u32, sample: u32, step: u32, dim: u32) -> f32 {
    let [w0, w1, w2, w3] = philox4x32_10([dim / 4, step, sample, stream], key(seed));
    let (a, b) = if dim % 4 < 2 { (w0, w1) } else { (w2, w3) };
    let (cos, sin) = box_muller(a, b);
    if dim & 1 == 0 { cos } else { sin }
}

/// Fills `out` with the normals of dimensions 0..len: `out[d] == normal(seed, stream, sample,
/// step, d)` bit for bit, at one Philox call per four dimensions. Dimensions are 32-bit: a
/// slice longer than 2³² wraps around.
pub fn fill_normals(seed: u64, stream: u32, sample: u32, step: u32, out: &mut [f32]) {
    let key = key(seed);
    for (block, chunk) in out.chunks_mut(4).enumerate() {
        let [w0, w1, w2, w3] = philox4x32_10([block as u32, step, sample, stream], key);
        let (z0, z1) = box_muller(w0, w1);
        let (z2, z3) = box_muller(w2, w3);
        for (slot, z) in chunk.iter_mut().zip([z0, z1, z2, z3]) {
            *slot = z;
        }
    }
}

/// A Rademacher probe entry, ±1.0 with equal probability: −1 where bit 31 of w[dim mod 4] is
/// set, w = philox([dim/4, probe, sample, STREAM_PROBE], key(seed)).
pub fn rademacher(seed: u64, sample: u32, probe: u32, dim: u32) -> f32 {
    let w = philox4x32_10([dim / 4, probe, sample, STREAM_PROBE], key(seed));
    let word = match dim % 4 {
        0 => w[0],
        1 => w[1],
        2 => w[2],
        _ => w[3],
    };
    if word >> 31 == 1 { -1.0 } else { 1.0 }
}

/// A ChaCha8 generator for host stream `stream` of the master seed (`papers.md` D7):
/// `ChaCha8Rng::seed_from_u64(master_seed)` with its stream (nonce) set to `stream`.
pub fn chacha_stream(master_seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(master_seed);
    rng.set_stream(stream);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;
    use std::vec;
    use std::vec::Vec;

    /// Random123 `kat_vectors` (philox4x32 10): counter, key → output.
    const KNOWN_ANSWERS: &[([u32; 4], [u32; 2], [u32; 4])] = &[
        (
            [0, 0, 0, 0],
            [0, 0],
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
        ),
        (
            [0xffff_ffff; 4],
            [0xffff_ffff; 2],
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
        ),
        (
            [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
            [0xa409_3822, 0x299f_31d0],
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
        ),
    ];

    #[test]
    fn philox_matches_random123_known_answers() {
        for &(counter, key, want) in KNOWN_ANSWERS {
            assert_eq!(
                philox4x32_10(counter, key),
                want,
                "counter {counter:x?} key {key:x?}"
            );
        }
    }

    /// Φ(x) via erf, in f64.
    fn std_normal_cdf(x: f64) -> f64 {
        0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    #[test]
    fn normals_pass_moments_and_kolmogorov_smirnov() {
        // 10^6 draws over 1000 samples × 1000 dims, so every counter word varies.
        let (samples, dims) = (1000u32, 1000usize);
        let mut draws: Vec<f64> = Vec::with_capacity(samples as usize * dims);
        let mut row = vec![0.0f32; dims];
        for sample in 0..samples {
            fill_normals(0x5eed_0000_0000_0042, STREAM_STEP, sample, 17, &mut row);
            draws.extend(row.iter().map(|&z| z as f64));
        }
        let n = draws.len() as f64;
        let mean = draws.iter().sum::<f64>() / n;
        let var = draws.iter().map(|z| (z - mean) * (z - mean)).sum::<f64>() / n;
        assert!(mean.abs() < 5.0 / n.sqrt(), "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * (2.0 / n).sqrt(), "variance {var}");
        // The cos and sin halves of each Box–Muller pair are uncorrelated.
        let pairs = draws.chunks_exact(2);
        let corr = pairs.map(|p| p[0] * p[1]).sum::<f64>() / (n / 2.0);
        assert!(
            corr.abs() < 5.0 / (n / 2.0).sqrt(),
            "pair correlation {corr}"
        );
        draws.sort_by(f64::total_cmp);
        let ks = draws
            .iter()
            .enumerate()
            .map(|(i, &z)| {
                let cdf = std_normal_cdf(z);
                ((i + 1) as f64 / n - cdf).max(cdf - i as f64 / n)
            })
            .fold(0.0f64, f64::max);
        let critical = 1.95 / n.sqrt(); // α = 0.001
        assert!(ks < critical, "KS statistic {ks} ≥ {critical}");
    }

    #[test]
    fn regeneration_is_bit_identical() {
        let mut out = vec![0.0f32; 37];
        for (seed, stream, sample, step) in [
            (0u64, STREAM_STEP, 0u32, 0u32),
            (u64::MAX, STREAM_INIT, 9, 0),
            (1 << 40, STREAM_STEP, 123_456, 999),
        ] {
            fill_normals(seed, stream, sample, step, &mut out);
            for (d, &z) in out.iter().enumerate() {
                assert_eq!(
                    z.to_bits(),
                    normal(seed, stream, sample, step, d as u32).to_bits()
                );
                assert!(z.is_finite());
            }
            let mut again = vec![0.0f32; 37];
            fill_normals(seed, stream, sample, step, &mut again);
            assert_eq!(out, again);
        }
        // Each coordinate of the key and counter changes the draw.
        let base = normal(7, STREAM_STEP, 3, 5, 2);
        for other in [
            normal(8, STREAM_STEP, 3, 5, 2),
            normal(7 | 1 << 33, STREAM_STEP, 3, 5, 2),
            normal(7, STREAM_INIT, 3, 5, 2),
            normal(7, STREAM_STEP, 4, 5, 2),
            normal(7, STREAM_STEP, 3, 6, 2),
            normal(7, STREAM_STEP, 3, 5, 6),
        ] {
            assert_ne!(base.to_bits(), other.to_bits());
        }
    }

    #[test]
    fn normal_follows_the_documented_recipe() {
        // Recompute dims 0..8 from the Philox words with f64 Box–Muller: f32 libm agrees to 1e-5.
        let (seed, sample, step) = (0x0123_4567_89ab_cdef_u64, 11u32, 3u32);
        for dim in 0..8u32 {
            let w = philox4x32_10(
                [dim / 4, step, sample, STREAM_STEP],
                [0x89ab_cdef, 0x0123_4567],
            );
            let p = ((dim % 4) / 2) as usize;
            let u1 = ((w[2 * p] >> 8) as f64 + 0.5) / 16_777_216.0;
            let u2 = ((w[2 * p + 1] >> 8) as f64 + 0.5) / 16_777_216.0;
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = 2.0 * std::f64::consts::PI * u2 - std::f64::consts::PI;
            let want = if dim % 2 == 0 {
                r * theta.cos()
            } else {
                r * theta.sin()
            };
            let got = normal(seed, STREAM_STEP, sample, step, dim) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "dim {dim}: {got} vs {want}"
            );
        }
        // uniform_open at the extremes: 2⁻²⁵ at the bottom, and f32 rounding of k + ½ reaches
        // exactly 1.0 at the top; the normals there stay finite.
        assert_eq!(uniform_open(0), 0.5 / 16_777_216.0);
        assert_eq!(uniform_open(0x0000_01ff), 1.5 / 16_777_216.0);
        assert_eq!(uniform_open(u32::MAX), 1.0);
        assert!(uniform_open(0xffff_feff) < 1.0);
        for (a, b) in [
            (0u32, 0u32),
            (0, u32::MAX),
            (u32::MAX, 0),
            (u32::MAX, u32::MAX),
        ] {
            let (c, s) = box_muller(a, b);
            assert!(c.is_finite() && s.is_finite() && c.abs() < 6.0 && s.abs() < 6.0);
        }
    }

    #[test]
    fn rademacher_is_balanced_plus_minus_one() {
        let mut sum = 0.0f64;
        let n = 100_000u32;
        for k in 0..n {
            let z = rademacher(99, k / 1000, k % 7, k % 1000);
            assert!(z == 1.0 || z == -1.0);
            sum += z as f64;
        }
        assert!(
            (sum / n as f64).abs() < 5.0 / (n as f64).sqrt(),
            "mean {}",
            sum / n as f64
        );
        // It reads bit 31 of the documented word.
        for dim in 0..8u32 {
            let w = philox4x32_10([dim / 4, 5, 3, STREAM_PROBE], [42, 0]);
            let want = if w[(dim % 4) as usize] & 0x8000_0000 != 0 {
                -1.0
            } else {
                1.0
            };
            assert_eq!(rademacher(42, 3, 5, dim), want);
        }
    }

    #[test]
    fn chacha_streams_are_reproducible_and_distinct() {
        let draw = |seed, stream| {
            let mut rng = chacha_stream(seed, stream);
            [rng.next_u64(), rng.next_u64()]
        };
        assert_eq!(draw(1234, 3), draw(1234, 3));
        assert_ne!(draw(1234, 3), draw(1234, 4));
        assert_ne!(draw(1234, 3), draw(1235, 3));
    }
}
