//! f64 statistics shared by the analysis tools: the standard normal CDF Φ and its inverse
//! (bisection on erfc, papers.md §3.3: "compute Φ⁻¹ to 1e−10"), a numerically stable logistic
//! sigmoid, Gaussian expectations E_{g~N(0,1)}[f(g)] by composite Simpson quadrature, and the
//! Wasserstein-1 distance between samples (exact in 1D, sliced over evenly spaced directions in
//! 2D) used by the Epsilon Scaling sweep (papers.md §2.4).

use anyhow::{Result, bail};

/// Φ(x), the standard normal CDF, via erfc (accurate in both tails).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / core::f64::consts::SQRT_2)
}

/// Φ⁻¹(p) by bisection on [`normal_cdf`] over [−40, 40].
///
/// # Accuracy
/// The bracket is halved 200 times, so the result is within 1e−12 of the root whenever
/// p ∈ (1e−300, 1 − 1e−16); the tests check Φ(Φ⁻¹(p)) = p to 1e−12.
///
/// # Errors
/// Fails unless 0 < p < 1.
pub fn normal_ppf(p: f64) -> Result<f64> {
    if !(p > 0.0 && p < 1.0) {
        bail!("normal_ppf needs 0 < p < 1, got {p}");
    }
    let (mut lo, mut hi) = (-40.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-14 {
            break;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// σ(x) = 1/(1 + e^{−x}) without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// E_{g~N(0,1)}[f(g)] by composite Simpson quadrature on [−12, 12] with 4800 panels.
///
/// # Accuracy
/// For bounded f with bounded fourth derivative on the grid (the sigmoids and Φ's used here)
/// the error is below 1e−10 (tail mass beyond ±12 is 3.6e−33); the tests check it against
/// E[g²] = 1 and E[Φ(g)] = ½.
pub fn gauss_expect(f: impl Fn(f64) -> f64) -> f64 {
    const PANELS: usize = 4800;
    const HALF_WIDTH: f64 = 12.0;
    let step = 2.0 * HALF_WIDTH / PANELS as f64;
    let inv_sqrt_2pi = 1.0 / (2.0 * core::f64::consts::PI).sqrt();
    let mut acc = 0.0;
    for i in 0..=PANELS {
        let g = -HALF_WIDTH + step * i as f64;
        let weight = if i == 0 || i == PANELS {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        acc += weight * f(g) * (-0.5 * g * g).exp() * inv_sqrt_2pi;
    }
    acc * step / 3.0
}

/// W1 between two 1D empirical distributions: ∫|F_a(x) − F_b(x)| dx, exact for any sizes.
///
/// # Errors
/// Fails if either sample is empty or holds a non-finite value.
pub fn wasserstein1(a: &[f64], b: &[f64]) -> Result<f64> {
    if a.is_empty() || b.is_empty() {
        bail!(
            "wasserstein1 needs two non-empty samples (got {} and {})",
            a.len(),
            b.len()
        );
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        bail!("wasserstein1: a sample holds a non-finite value");
    }
    let mut sa = a.to_vec();
    let mut sb = b.to_vec();
    sa.sort_by(f64::total_cmp);
    sb.sort_by(f64::total_cmp);
    let (na, nb) = (sa.len() as f64, sb.len() as f64);
    let (mut ia, mut ib) = (0usize, 0usize);
    let mut prev = sa[0].min(sb[0]);
    let mut total = 0.0;
    while ia < sa.len() || ib < sb.len() {
        let next = match (sa.get(ia), sb.get(ib)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        total += (ia as f64 / na - ib as f64 / nb).abs() * (next - prev);
        prev = next;
        while sa.get(ia).is_some_and(|&x| x <= next) {
            ia += 1;
        }
        while sb.get(ib).is_some_and(|&y| y <= next) {
            ib += 1;
        }
    }
    Ok(total)
}

/// W1 for `dim`-dimensional samples stored row-major: the exact 1D W1 when dim = 1; in 2D the
/// sliced W1, the mean of the 1D W1 of the projections on `directions` evenly spaced angles
/// θ_j = πj/directions (deterministic, so two runs compare exactly).
///
/// # Errors
/// Fails for dim ∉ {1, 2}, lengths that are not multiples of dim, or empty / non-finite samples.
pub fn sliced_wasserstein1(a: &[f64], b: &[f64], dim: usize, directions: usize) -> Result<f64> {
    match dim {
        1 => wasserstein1(a, b),
        2 => {
            if !a.len().is_multiple_of(2) || !b.len().is_multiple_of(2) {
                bail!("sliced_wasserstein1: sample lengths must be multiples of dim = 2");
            }
            if directions == 0 {
                bail!("sliced_wasserstein1 needs at least one direction");
            }
            let mut total = 0.0;
            for j in 0..directions {
                let theta = core::f64::consts::PI * j as f64 / directions as f64;
                let (s, c) = theta.sin_cos();
                let pa: Vec<f64> = a.chunks_exact(2).map(|p| c * p[0] + s * p[1]).collect();
                let pb: Vec<f64> = b.chunks_exact(2).map(|p| c * p[0] + s * p[1]).collect();
                total += wasserstein1(&pa, &pb)?;
            }
            Ok(total / directions as f64)
        }
        _ => bail!("sliced_wasserstein1 supports dim 1 or 2, got {dim}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppf_inverts_cdf_and_matches_known_quantiles() {
        for &p in &[1e-10, 0.005, 0.1, 0.5, 0.9, 0.995, 1.0 - 1e-10] {
            let x = normal_ppf(p).unwrap();
            assert!((normal_cdf(x) - p).abs() < 1e-12 * p.max(1e-3), "p = {p}");
        }
        // Tabulated: Φ⁻¹(0.975) = 1.959963984540054.
        assert!((normal_ppf(0.975).unwrap() - 1.959_963_984_540_054).abs() < 1e-10);
        assert!(
            normal_ppf(0.0).is_err() && normal_ppf(1.0).is_err() && normal_ppf(f64::NAN).is_err()
        );
    }

    #[test]
    fn gauss_expect_reproduces_moments() {
        assert!((gauss_expect(|g| g * g) - 1.0).abs() < 1e-10);
        assert!((gauss_expect(|g| g.powi(4)) - 3.0).abs() < 1e-9);
        assert!((gauss_expect(normal_cdf) - 0.5).abs() < 1e-12);
        // E[Φ(a + b g)] = Φ(a / √(1 + b²)).
        let direct = gauss_expect(|g| normal_cdf(0.7 + 1.3 * g));
        assert!((direct - normal_cdf(0.7 / (1.0f64 + 1.69).sqrt())).abs() < 1e-10);
    }

    #[test]
    fn sigmoid_is_stable_and_symmetric() {
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(0.3) + sigmoid(-0.3) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn w1_of_shift_is_the_shift_and_matches_sorted_pairing() {
        let a: Vec<f64> = (0..100).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = a.iter().map(|v| v + 0.25).collect();
        assert!((wasserstein1(&a, &b).unwrap() - 0.25).abs() < 1e-12);
        // Equal sizes: W1 = mean |a_(i) − b_(i)| of the order statistics.
        let c: Vec<f64> = (0..100).map(|i| (i as f64 * 1.1).cos() * 2.0).collect();
        let mut sa = a.clone();
        let mut sc = c.clone();
        sa.sort_by(f64::total_cmp);
        sc.sort_by(f64::total_cmp);
        let paired = sa.iter().zip(&sc).map(|(x, y)| (x - y).abs()).sum::<f64>() / 100.0;
        assert!((wasserstein1(&a, &c).unwrap() - paired).abs() < 1e-12);
        assert!(wasserstein1(&[], &c).is_err());
    }

    #[test]
    fn sliced_w1_of_a_2d_shift() {
        // A shift by (δ, 0) projects to δ|cos θ|; mean over evenly spaced θ ∈ [0, π) → 2δ/π.
        let a: Vec<f64> = (0..400)
            .map(|i| ((i * 7919) % 400) as f64 / 400.0)
            .collect();
        let b: Vec<f64> = a.chunks_exact(2).flat_map(|p| [p[0] + 0.1, p[1]]).collect();
        let got = sliced_wasserstein1(&a, &b, 2, 360).unwrap();
        assert!((got - 0.2 / core::f64::consts::PI).abs() < 1e-3, "{got}");
        assert!(sliced_wasserstein1(&a, &b, 3, 10).is_err());
    }
}
