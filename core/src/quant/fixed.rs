//! Integer primitives of the fixed-point network: dot products, requantisation by an integer
//! multiplier and shift, LeakyReLU by a Q31 slope, and LayerNorm with an integer mean,
//! variance and inverse square root.
//!
//! Every function is exact integer arithmetic (no floats), so the host and a Cortex-M4 give
//! identical bits. Rounding is **round half toward +∞** everywhere: `(v + 2^(k−1)) >> k` with
//! an arithmetic shift (one rounding per requantisation, unlike CMSIS-NN's two-stage
//! "doubling high multiply, then rounding divide by 2^k", whose result can differ by one unit).

use crate::mlp::LEAKY_RELU_SLOPE;

/// Largest magnitude of the i32 residual stream h and block input u (24-bit range): keeps
/// every LayerNorm sum inside i64 and every product inside i128.
pub const STREAM_MAX: i32 = (1 << 23) - 1;
/// Fractional bits of the LayerNorm bias `B` and of the LayerNorm output before its final
/// rounding to i16.
pub const LN_FRAC_BITS: u32 = 16;
/// The LeakyReLU slope 0.02 as a Q31 multiplier: round(0.02·2³¹) = 42,949,673
/// (0.020000000298…; relative error 1.5e-8).
pub const LEAKY_SLOPE_Q31: i64 = 42_949_673;
/// Largest accepted requantisation shift k.
pub const MAX_SHIFT: u32 = 100;
/// Largest accepted LayerNorm ε in squared input units.
pub const MAX_LN_EPS: u64 = 1 << 40;
/// Largest accepted LayerNorm gain shift.
pub const MAX_GAIN_SHIFT: u32 = 62;

// The Q31 constant is the documented slope (checked at compile time to 1e-9).
const _: () = {
    let slope = LEAKY_SLOPE_Q31 as f64 / 2_147_483_648.0;
    let diff = slope - LEAKY_RELU_SLOPE as f64;
    assert!(diff < 1e-9 && diff > -1e-9);
};

/// Integer weights: i8 (kind q8) or i16 (kind q16).
pub trait QuantWeight: Copy + bytemuck::Pod {
    /// The dot product Σ wᵢ·xᵢ of one weight row with an i16 activation vector, exactly.
    fn dot(w: &[Self], x: &[i16]) -> i64;
}

/// Inputs per i32 partial sum of an i8·i16 dot product: 512·127·32767 < 2³¹.
const Q8_CHUNK: usize = 512;

impl QuantWeight for i8 {
    /// i32 accumulation in chunks of 512 products (each ≤ 127·32768 in magnitude), the chunk
    /// sums added in i64: exact for any width.
    fn dot(w: &[i8], x: &[i16]) -> i64 {
        let mut total = 0i64;
        for (wc, xc) in w.chunks(Q8_CHUNK).zip(x.chunks(Q8_CHUNK)) {
            let mut acc = 0i32;
            for (&a, &b) in wc.iter().zip(xc) {
                acc = acc.wrapping_add(i32::from(a) * i32::from(b));
            }
            total += i64::from(acc);
        }
        total
    }
}

impl QuantWeight for i16 {
    /// i64 accumulation of i16·i16 products (each < 2³⁰): exact for any width.
    fn dot(w: &[i16], x: &[i16]) -> i64 {
        w.iter()
            .zip(x)
            .map(|(&a, &b)| i64::from(i32::from(a) * i32::from(b)))
            .sum()
    }
}

/// round(v·2^−k), round half toward +∞; `k` in 1..=126 (clamped). Saturates instead of
/// overflowing for |v| within 2^(k−1) of `i128::MAX` (found by the adversarial tests).
#[inline(always)]
pub fn round_shift(v: i128, k: u32) -> i128 {
    let k = k.clamp(1, 126);
    v.saturating_add(1i128 << (k - 1)) >> k
}

/// Requantises an accumulator: round(acc·m·2^−k) + bias, saturated to ±`limit`.
#[inline(always)]
pub fn requantize(acc: i64, m: i32, k: u32, bias: i32, limit: i32) -> i32 {
    let scaled = round_shift(i128::from(acc) * i128::from(m), k) + i128::from(bias);
    scaled.clamp(-i128::from(limit), i128::from(limit)) as i32
}

/// LeakyReLU with the Q31 slope: v if v > 0, else round(v·slope).
#[inline(always)]
pub fn leaky(v: i64) -> i64 {
    if v > 0 {
        v
    } else {
        round_shift(i128::from(v) * i128::from(LEAKY_SLOPE_Q31), 31) as i64
    }
}

/// Saturates to i16.
#[inline(always)]
pub fn sat_i16(v: i64) -> i16 {
    v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

/// ⌊√v⌋ for u64, by the bit-by-bit (digit) method: exact, 32 iterations, no division.
pub fn isqrt(v: u64) -> u64 {
    let mut rem = v;
    let mut root = 0u64;
    let mut bit = 1u64 << 62;
    while bit > rem {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// 1/√d as `(inv, s)` with 1/√d ≈ inv·2^(s−62), `inv` in (2³¹, 2³²] and 31+ significant bits:
/// d is normalised by 4^s into [2⁶⁰, 2⁶²), q = ⌊√(d·4^s)⌋ ∈ [2³⁰, 2³¹), inv = round(2⁶²/q).
/// `d` must be ≥ 1 (0 is treated as 1).
///
/// # Accuracy
/// Relative error ≤ 2⁻²⁹ (q is floored: ≤ 2⁻³⁰; the division rounds: ≤ 2⁻³²).
pub fn inv_sqrt(d: u64) -> (u64, u32) {
    let d = d.max(1);
    let s = d.leading_zeros().saturating_sub(2) / 2;
    let q = isqrt(d << (2 * s)).max(1);
    let inv = ((1u64 << 62) + q / 2) / q;
    (inv, s)
}

/// The integer parameters of one LayerNorm (see [`layer_norm`]).
#[derive(Clone, Copy, Debug)]
pub struct LnParams<'a> {
    /// ε in squared input units, ≥ 1.
    pub eps: u64,
    /// Shift of the gains: gᵢ = Gᵢ·2^−gain_shift.
    pub gain_shift: u32,
    /// Gᵢ = round(γᵢ·√n / s_out · 2^gain_shift).
    pub gain: &'a [i32],
    /// Bᵢ = round(βᵢ / s_out · 2^16).
    pub bias: &'a [i32],
}

/// LayerNorm of an i32 vector (|vᵢ| ≤ [`STREAM_MAX`]) into i16 at the output scale,
/// optionally followed by LeakyReLU:
///
/// ```text
/// mean = round(Σv / n);  dᵢ = vᵢ − mean;  D = Σdᵢ² + n·ε          (i64, exact)
/// 1/√D ≈ inv·2^(s−62)                                              (inv_sqrt)
/// zᵢ = round(dᵢ·inv·Gᵢ·2^(s−62−gain_shift+16)) + Bᵢ                 (i128, Q16 output units)
/// yᵢ = sat16(round(LReLU(zᵢ)·2^−16))
/// ```
///
/// since γ(v − mean)/√(var + ε) = γ·d·√n/√D with var = Σd²/n. `out.len() == v.len()`;
/// inputs are clamped to ±[`STREAM_MAX`].
///
/// # Accuracy
/// Against exact arithmetic on the integer inputs: ≤ 0.5 output unit (final rounding) +
/// |γᵢ|·0.5·s_in/σ (the rounded mean, σ the input's standard deviation) + 2⁻²⁹ relative
/// (inverse square root), plus the ≤ 2⁻¹⁷-unit roundings of G and B.
pub fn layer_norm(v: &[i32], p: &LnParams<'_>, leaky_relu: bool, out: &mut [i16]) {
    let n = v.len().max(1) as i64;
    let clamp = |x: i32| i64::from(x.clamp(-STREAM_MAX, STREAM_MAX));
    let sum: i64 = v.iter().map(|&x| clamp(x)).sum();
    let mean = round_div(sum, n);
    let sq: u64 = v
        .iter()
        .map(|&x| {
            let d = clamp(x) - mean;
            (d * d) as u64
        })
        .fold(0u64, u64::saturating_add);
    let denom = sq.saturating_add((n as u64).saturating_mul(p.eps));
    let (inv, s) = inv_sqrt(denom);
    let shift = 62u32
        .saturating_add(p.gain_shift)
        .saturating_sub(s + LN_FRAC_BITS);
    for (((o, &x), &g), &b) in out.iter_mut().zip(v).zip(p.gain).zip(p.bias) {
        let d = i128::from(clamp(x) - mean);
        let z = (round_shift(d * i128::from(inv) * i128::from(g), shift) + i128::from(b))
            .clamp(-(1i128 << 62), 1i128 << 62) as i64;
        let z = if leaky_relu { leaky(z) } else { z };
        *o = sat_i16(round_shift(i128::from(z), LN_FRAC_BITS) as i64);
    }
}

/// round(a / b) for b > 0, round half toward +∞.
fn round_div(a: i64, b: i64) -> i64 {
    (a + b / 2).div_euclid(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_is_the_floor_of_the_root() {
        let mut v = 1u64;
        for _ in 0..2000 {
            let r = isqrt(v);
            assert!(u128::from(r) * u128::from(r) <= u128::from(v));
            assert!(u128::from(r + 1) * u128::from(r + 1) > u128::from(v));
            v = v
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407)
                >> (v % 40);
            v = v.max(1);
        }
        assert_eq!(isqrt(0), 0);
        assert_eq!(isqrt(u64::MAX), u32::MAX as u64);
        assert_eq!(isqrt(1 << 62), 1 << 31);
    }

    #[test]
    fn inv_sqrt_matches_f64() {
        for &d in &[
            1u64,
            2,
            3,
            1000,
            123_456_789,
            1 << 40,
            (1 << 61) + 12345,
            (1 << 62) - 1,
        ] {
            let (inv, s) = inv_sqrt(d);
            let got = inv as f64 * 2f64.powi(s as i32 - 62);
            let want = 1.0 / (d as f64).sqrt();
            assert!(
                ((got - want) / want).abs() < 2f64.powi(-29),
                "d={d}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn requantize_rounds_half_up_and_saturates() {
        // m·2^−k = 0.5: 3·0.5 = 1.5 → 2; −3·0.5 = −1.5 → −1.
        assert_eq!(requantize(3, 1 << 30, 31, 0, 100), 2);
        assert_eq!(requantize(-3, 1 << 30, 31, 0, 100), -1);
        assert_eq!(requantize(1000, 1 << 30, 31, 7, 100), 100);
        assert_eq!(requantize(-1000, 1 << 30, 31, 0, 100), -100);
    }

    #[test]
    fn dot_products_are_exact() {
        let w8: std::vec::Vec<i8> = (0..1500).map(|i| ((i * 37) % 255 - 127) as i8).collect();
        let w16: std::vec::Vec<i16> = (0..1500)
            .map(|i| ((i * 7919) % 65535 - 32767) as i16)
            .collect();
        let x: std::vec::Vec<i16> = (0..1500)
            .map(|i| ((i * 104_729) % 65535 - 32767) as i16)
            .collect();
        let want8: i64 = w8.iter().zip(&x).map(|(&a, &b)| a as i64 * b as i64).sum();
        let want16: i64 = w16.iter().zip(&x).map(|(&a, &b)| a as i64 * b as i64).sum();
        assert_eq!(i8::dot(&w8, &x), want8);
        assert_eq!(i16::dot(&w16, &x), want16);
        // Worst case: every product at its extreme.
        let big = std::vec![127i8; 2048];
        let xs = std::vec![i16::MIN; 2048];
        assert_eq!(i8::dot(&big, &xs), 127 * -32768 * 2048);
    }

    #[test]
    fn leaky_uses_the_slope() {
        assert_eq!(leaky(1000), 1000);
        assert_eq!(leaky(-1_000_000), -20_000);
        assert_eq!(leaky(0), 0);
    }

    #[test]
    fn layer_norm_matches_f64() {
        let n = 64usize;
        let v: std::vec::Vec<i32> = (0..n)
            .map(|i| ((i * i * 7919) % 200_001) as i32 - 100_000)
            .collect();
        let gamma: std::vec::Vec<f64> = (0..n).map(|i| 0.5 + (i % 5) as f64 * 0.2).collect();
        let beta: std::vec::Vec<f64> = (0..n).map(|i| (i % 3) as f64 * 0.1 - 0.1).collect();
        let (s_in, s_out, eps) = (1e-5f64, 1e-4f64, 1e-5f64);
        let gs = 12u32;
        let gain: std::vec::Vec<i32> = gamma
            .iter()
            .map(|g| (g * (n as f64).sqrt() / s_out * 2f64.powi(gs as i32)).round() as i32)
            .collect();
        let bias: std::vec::Vec<i32> = beta
            .iter()
            .map(|b| (b / s_out * 65536.0).round() as i32)
            .collect();
        let p = LnParams {
            eps: (eps / (s_in * s_in)).round() as u64,
            gain_shift: gs,
            gain: &gain,
            bias: &bias,
        };
        for leaky_relu in [false, true] {
            let mut out = std::vec![0i16; n];
            layer_norm(&v, &p, leaky_relu, &mut out);
            let x: std::vec::Vec<f64> = v.iter().map(|&q| q as f64 * s_in).collect();
            let mean = x.iter().sum::<f64>() / n as f64;
            let var = x.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n as f64;
            for i in 0..n {
                let mut y = (x[i] - mean) / (var + eps).sqrt() * gamma[i] + beta[i];
                if leaky_relu && y <= 0.0 {
                    y *= 0.02;
                }
                let got = out[i] as f64 * s_out;
                let tol = 0.5 * s_out + gamma[i] * 0.5 * s_in / var.sqrt() + 1e-6 * y.abs();
                assert!((got - y).abs() <= tol, "{i}: {got} vs {y}");
            }
        }
    }
}
