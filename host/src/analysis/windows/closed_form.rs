//! Critical-window closed forms (Li & Chen 2024, *Critical windows: non-asymptotic theory for
//! feature emergence in diffusion models*; papers.md §3.2, §3.4, §6.3), in OU time
//! (X_t = e^{−t}X_0 + √(1−e^{−2t})Z; a DDPM step τ sits at t_OU = −½ ln ᾱ_τ).
//!
//! Two components N(±μ, σ²I), start in +, noise to t̂, denoise with the full mixture. With the
//! whitened half-gap s = a‖μ‖/√(a²σ² + 1 − a²) (a = e^{−t̂}; s = ‖μ‖e^{−t̂} when σ = 1):
//!
//! - reverse SDE, posterior-component label: P_stay = E_g[σ(2(s² + s g))];
//! - reverse SDE, final-sample side label (σ = 1):
//!   E_{y~N(s,1)}[σ(2sy)Φ(((1−a²)‖μ‖ + ay)/√(1−a²)) + (1−σ(2sy))Φ((−(1−a²)‖μ‖ + ay)/√(1−a²))];
//! - probability-flow ODE: P_stay = Φ(s) (the flow never crosses ⟨x, μ⟩ = 0).
//!
//! Windows at tolerance ε for ±μ with unit covariance:
//! - paper bounds: [ln‖μ‖ − ln ln(1/(2ε²)), ln‖μ‖ + ln 2 + ln(1/ε)];
//! - exact TV: [ln‖μ‖ − ln Φ⁻¹(1 − ε²/2), ln‖μ‖ − ln Φ⁻¹(½ + ε)];
//! - pairwise TV of two unit-variance components at distance D: 2Φ(e^{−t}D/2) − 1;
//! - K random means: [min_j ln‖μ_i−μ_j‖ − ½ ln(8 ln(K/ε)), max_j ln‖μ_i−μ_j‖ + ln(1/ε)].

use anyhow::{Result, ensure};

use crate::analysis::stats::{gauss_expect, normal_cdf, normal_ppf, sigmoid};

/// Which reverse process denoises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// Reverse SDE (ancestral sampling), probability that the posterior component stays +.
    Sde,
    /// Probability-flow ODE.
    Ode,
}

/// Whitened half-gap s = a·half_gap/√(a²σ² + 1 − a²) at signal scale a.
pub fn whitened_half_gap(a: f64, half_gap: f64, sigma: f64) -> f64 {
    a * half_gap / (a * a * sigma * sigma + 1.0 - a * a).sqrt()
}

/// P_stay as a function of the whitened half-gap s.
pub fn p_stay(process: Process, s: f64) -> f64 {
    match process {
        Process::Sde => gauss_expect(|g| sigmoid(2.0 * (s * s + s * g))),
        Process::Ode => normal_cdf(s),
    }
}

/// P(final sample on the + side) for the exact reverse SDE, N(±μ, I), noised to t̂ (papers.md §6.3).
///
/// # Errors
/// Fails unless ‖μ‖ > 0 and t̂ > 0 are finite.
pub fn p_stay_sde_side(mu_norm: f64, t_hat: f64) -> Result<f64> {
    ensure!(
        mu_norm.is_finite() && mu_norm > 0.0,
        "‖μ‖ must be positive, got {mu_norm}"
    );
    ensure!(
        t_hat.is_finite() && t_hat > 0.0,
        "t̂ must be positive, got {t_hat}"
    );
    let a = (-t_hat).exp();
    let s = mu_norm * a;
    let one_minus = 1.0 - a * a;
    let root = one_minus.sqrt();
    Ok(gauss_expect(|g| {
        let y = s + g;
        let r = sigmoid(2.0 * s * y);
        r * normal_cdf((one_minus * mu_norm + a * y) / root)
            + (1.0 - r) * normal_cdf((-one_minus * mu_norm + a * y) / root)
    }))
}

/// The offset t̂ − ln‖μ‖ at which P_stay (unit covariance) equals `p`: −ln s* with P_stay(s*) = p.
///
/// # Errors
/// Fails unless ½ < p < 1.
pub fn offset_for(process: Process, p: f64) -> Result<f64> {
    ensure!(
        p > 0.5 && p < 1.0,
        "P_stay target must lie in (½, 1), got {p}"
    );
    let s = match process {
        Process::Ode => normal_ppf(p)?,
        Process::Sde => {
            // P_stay is increasing in s from ½ at s = 0.
            let (mut lo, mut hi) = (0.0f64, 40.0f64);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if p_stay(Process::Sde, mid) < p {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            0.5 * (lo + hi)
        }
    };
    Ok(-s.ln())
}

/// A critical window [t_after, t_before] in OU time.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Window {
    pub t_after: f64,
    pub t_before: f64,
}

/// The paper's bounds for ±μ with unit covariance.
///
/// # Errors
/// Fails unless 0 < ε < 1/√2 and ‖μ‖ > 0.
pub fn paper_window(mu_norm: f64, eps: f64) -> Result<Window> {
    ensure!(
        mu_norm > 0.0 && eps > 0.0 && eps < core::f64::consts::FRAC_1_SQRT_2,
        "need ‖μ‖ > 0 and 0 < ε < 1/√2"
    );
    Ok(Window {
        t_after: mu_norm.ln() - (1.0 / (2.0 * eps * eps)).ln().ln(),
        t_before: mu_norm.ln() + 2.0f64.ln() + (1.0 / eps).ln(),
    })
}

/// The exact-TV window for ±μ with unit covariance.
///
/// # Errors
/// Fails unless 0 < ε < ½ and ‖μ‖ > 0.
pub fn exact_window(mu_norm: f64, eps: f64) -> Result<Window> {
    ensure!(
        mu_norm > 0.0 && eps > 0.0 && eps < 0.5,
        "need ‖μ‖ > 0 and 0 < ε < ½"
    );
    Ok(Window {
        t_after: mu_norm.ln() - normal_ppf(1.0 - eps * eps / 2.0)?.ln(),
        t_before: mu_norm.ln() - normal_ppf(0.5 + eps)?.ln(),
    })
}

/// TV between two unit-variance components at distance `dist`, both diffused to OU time t.
pub fn pairwise_tv(dist: f64, t: f64) -> f64 {
    2.0 * normal_cdf((-t).exp() * dist / 2.0) - 1.0
}

/// Pairwise-TV window of a two-level hierarchy: T_lower = first time the within-group pair's TV
/// drops to ε, T_upper = last time the between-group pair's TV is ≥ 1 − ε².
///
/// # Errors
/// Fails unless the distances are positive and 0 < ε < 1.
pub fn pairwise_window(within: f64, between: f64, eps: f64) -> Result<(f64, f64)> {
    ensure!(
        within > 0.0 && between > 0.0 && eps > 0.0 && eps < 1.0,
        "need positive distances and 0 < ε < 1"
    );
    let lower = (within / (2.0 * normal_ppf((1.0 + eps) / 2.0)?)).ln();
    let upper = (between / (2.0 * normal_ppf(1.0 - eps * eps / 2.0)?)).ln();
    Ok((lower, upper))
}

/// Window of component `i` among K means (follow-up paper's dimension-free form).
///
/// # Errors
/// Fails if fewer than two means, i ≥ K, lengths are inconsistent or two means coincide.
pub fn random_means_window(means: &[f64], dim: usize, i: usize, eps: f64) -> Result<Window> {
    ensure!(
        dim > 0 && means.len().is_multiple_of(dim),
        "means length must be a multiple of dim"
    );
    let k = means.len() / dim;
    ensure!(k >= 2 && i < k, "need ≥ 2 means and i < K");
    ensure!(eps > 0.0 && eps < 1.0, "need 0 < ε < 1");
    let mi = &means[i * dim..(i + 1) * dim];
    let mut dmin = f64::INFINITY;
    let mut dmax: f64 = 0.0;
    for j in (0..k).filter(|&j| j != i) {
        let d = means[j * dim..(j + 1) * dim]
            .iter()
            .zip(mi)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        ensure!(d > 0.0, "means {i} and {j} coincide");
        dmin = dmin.min(d);
        dmax = dmax.max(d);
    }
    Ok(Window {
        t_after: dmin.ln() - 0.5 * (8.0 * (k as f64 / eps).ln()).ln(),
        t_before: dmax.ln() + (1.0 / eps).ln(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_table_of_section_3_4() {
        let ps = [0.99, 0.95, 0.90, 0.75, 0.60];
        let sde = [-0.909, -0.606, -0.401, 0.081, 0.705];
        let ode = [-0.844, -0.498, -0.248, 0.394, 1.373];
        for ((p, s), o) in ps.iter().zip(sde).zip(ode) {
            assert!(
                (offset_for(Process::Sde, *p).unwrap() - s).abs() < 1.5e-3,
                "SDE {p}"
            );
            assert!(
                (offset_for(Process::Ode, *p).unwrap() - o).abs() < 1.5e-3,
                "ODE {p}"
            );
        }
        assert!(offset_for(Process::Sde, 0.4).is_err());
    }

    #[test]
    fn exact_p_stay_row_at_mu_4() {
        let sde = [0.988, 0.896, 0.740, 0.616, 0.519];
        let ode = [0.992, 0.929, 0.814, 0.706, 0.579];
        for ((t, s), o) in [0.5f64, 1.0, 1.5, 2.0, 3.0].iter().zip(sde).zip(ode) {
            let sg = 4.0 * (-t).exp();
            assert!((p_stay(Process::Sde, sg) - s).abs() < 1e-3, "SDE t̂ = {t}");
            assert!((p_stay(Process::Ode, sg) - o).abs() < 1e-3, "ODE t̂ = {t}");
            // §6.3: posterior-component and side labels agree to < 2e−5 at ‖μ‖ = 4.
            assert!((p_stay_sde_side(4.0, *t).unwrap() - p_stay(Process::Sde, sg)).abs() < 2e-5);
        }
        // … but differ by up to ≈ 0.012 at ‖μ‖ = 2, and the side label → Φ(‖μ‖) as t̂ → 0.
        let gap = (1..60)
            .map(|j| {
                let t = 0.05 * j as f64;
                (p_stay_sde_side(2.0, t).unwrap() - p_stay(Process::Sde, 2.0 * (-t).exp())).abs()
            })
            .fold(0.0, f64::max);
        assert!(gap > 0.008 && gap < 0.016, "max gap {gap}");
        assert!((p_stay_sde_side(2.0, 1e-6).unwrap() - normal_cdf(2.0)).abs() < 1e-4);
    }

    #[test]
    fn window_constants() {
        let w = paper_window(1.0, 0.1).unwrap();
        assert!((w.t_after + 1.364).abs() < 1e-3 && (w.t_before - 2.996).abs() < 1e-3);
        let w = exact_window(1.0, 0.1).unwrap();
        assert!((w.t_after + 0.946).abs() < 1e-3 && (w.t_before - 1.373).abs() < 1e-3);
        // Exact TV at the window edges: TV(+, −) = 1 − ε² at t_after; TV(+, ±) = ε at t_before.
        let mu: f64 = 7.0;
        let w = exact_window(mu, 0.1).unwrap();
        assert!((pairwise_tv(2.0 * mu, w.t_after) - 0.99).abs() < 1e-10);
        assert!((pairwise_tv(2.0 * mu, w.t_before) / 2.0 - 0.1).abs() < 1e-10);
        // Hierarchy numbers of §3.4: T_lower ≈ 1.38, T_upper ≈ 2.27.
        let between = (50.0f64 * 50.0 + 0.25).sqrt();
        let (lo, hi) = pairwise_window(1.0, between, 0.1).unwrap();
        assert!(
            (lo - 1.38).abs() < 5e-3 && (hi - 2.27).abs() < 5e-3,
            "{lo} {hi}"
        );
        let rw = random_means_window(&[0.0, 0.0, 3.0, 0.0, 0.0, 4.0], 2, 0, 0.1).unwrap();
        assert!((rw.t_before - (4.0f64.ln() + 10.0f64.ln())).abs() < 1e-12);
        assert!((rw.t_after - (3.0f64.ln() - 0.5 * (8.0 * 30.0f64.ln()).ln())).abs() < 1e-12);
    }
}
