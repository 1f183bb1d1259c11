//! The log-density ridge and its subspace-constrained mean-shift (SCMS) projection (He, Qiu & Tao
//! 2026, *Diffusion Model's Generalization Can Be Characterized by Inductive Biases toward a
//! Data-Dependent Ridge Manifold*; papers.md §4.2, §6.4, D10).
//!
//! With H = ∇²ln p_t = Σ λ_k v_k v_kᵀ (λ_1 ≥ … ≥ λ_d) and V_⊥ = [v_{d*+1} … v_d], d* = 1:
//! R_t = {x : V_⊥ᵀ∇ln p_t(x) = 0 and λ_{d*+1} < −β}, β = 0 (D10).
//!
//! SCMS: x ← x + V_⊥V_⊥ᵀ ms with ms = v·∇ln p_t(x), v = min_k(a²σ_k² + h). For an empirical
//! density (σ_k = 0) v = h and ms = Σγ_i a x_i − x, the mean shift of §4.2; for σ_k > 0 the same
//! step size keeps the fixed points (V_⊥ᵀ∇ln p = 0). Stop when ‖V_⊥ᵀms‖ < 1e−7·√h, at most 1000
//! iterations; a point is "stalled" when the eigengap λ_{d*} − λ_{d*+1} < 1e−6/h (D10). The
//! normal distance is ‖x − π_R(x)‖ and the tangent coordinate is π_R(x).

use anyhow::{Result, ensure};

use super::eigen::SymmetricEigen;
use crate::analysis::mixture::{Diffused, Mixture};

/// Ridge intrinsic dimension d* (D10).
pub const RIDGE_DIM: usize = 1;
/// Ridge curvature margin β (D10).
pub const RIDGE_BETA: f64 = 0.0;
/// SCMS tolerance factor: ‖V_⊥ᵀms‖ < SCMS_TOL·√h.
pub const SCMS_TOL: f64 = 1e-7;
/// SCMS iteration cap.
pub const SCMS_MAX_ITER: usize = 1000;
/// Stalled if eigengap < STALL_GAP/h.
pub const STALL_GAP: f64 = 1e-6;

/// Local ridge geometry at a point.
#[derive(Clone, Debug)]
pub struct RidgeFrame {
    /// ∇ln p_t(x).
    pub grad: Vec<f64>,
    pub eigen: SymmetricEigen,
}

impl RidgeFrame {
    /// Computes ∇ln p and the eigen-decomposition of ∇²ln p at x.
    ///
    /// # Errors
    /// Fails on a wrong-length x or a non-finite Hessian.
    pub fn at(p: &Diffused<'_>, x: &[f64]) -> Result<Self> {
        let d = x.len();
        let mut grad = vec![0.0; d];
        let mut hess = vec![0.0; d * d];
        p.hessian(x, &mut grad, &mut hess)?;
        Ok(Self {
            grad,
            eigen: SymmetricEigen::new(&hess, d)?,
        })
    }

    /// ‖V_⊥ᵀ∇ln p‖, the ridge residual r(x) of papers.md §4.2.
    pub fn normal_gradient_norm(&self) -> f64 {
        (RIDGE_DIM..self.eigen.dim)
            .map(|k| {
                self.eigen
                    .vector(k)
                    .iter()
                    .zip(&self.grad)
                    .map(|(v, g)| v * g)
                    .sum::<f64>()
                    .powi(2)
            })
            .sum::<f64>()
            .sqrt()
    }

    /// λ_{d*} − λ_{d*+1}.
    pub fn eigengap(&self) -> f64 {
        match (
            self.eigen.values.get(RIDGE_DIM - 1),
            self.eigen.values.get(RIDGE_DIM),
        ) {
            (Some(a), Some(b)) => a - b,
            _ => f64::INFINITY,
        }
    }

    /// λ_{d*+1} < −β.
    pub fn curved(&self) -> bool {
        self.eigen
            .values
            .get(RIDGE_DIM)
            .is_none_or(|&l| l < -RIDGE_BETA)
    }
}

/// The result of projecting one point.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Projection {
    /// π_R(x), the tangent coordinate.
    pub point: Vec<f64>,
    /// ‖x − π_R(x)‖.
    pub normal_distance: f64,
    pub iterations: usize,
    /// ‖V_⊥ᵀms‖ reached the tolerance.
    pub converged: bool,
    /// The eigengap at the last iterate was below 1e−6/h.
    pub stalled: bool,
    /// λ_{d*+1} < −β at the last iterate.
    pub curved: bool,
}

/// SCMS projection onto the ridge of `gmm` diffused to (a, h).
///
/// # Errors
/// Fails on invalid (a, h), a wrong-length x or a non-finite Hessian along the way.
pub fn project(gmm: &Mixture, a: f64, h: f64, x: &[f64]) -> Result<Projection> {
    ensure!(h > 0.0, "the ridge needs h > 0 (got {h})");
    let p = gmm.diffused(a, h)?;
    let step = (0..gmm.components())
        .map(|k| a * a * gmm.std(k).powi(2) + h)
        .fold(f64::INFINITY, f64::min);
    let tol = SCMS_TOL * h.sqrt();
    let d = x.len();
    let mut y = x.to_vec();
    let mut iterations = 0;
    let mut converged = false;
    let mut frame = RidgeFrame::at(&p, &y)?;
    while iterations < SCMS_MAX_ITER {
        let mut shift = vec![0.0; d];
        let mut residual = 0.0;
        for k in RIDGE_DIM..d {
            let v = frame.eigen.vector(k);
            let c = step * v.iter().zip(&frame.grad).map(|(vi, g)| vi * g).sum::<f64>();
            residual += c * c;
            for (s, vi) in shift.iter_mut().zip(v) {
                *s += c * vi;
            }
        }
        if residual.sqrt() < tol {
            converged = true;
            break;
        }
        for (yi, s) in y.iter_mut().zip(&shift) {
            *yi += s;
        }
        iterations += 1;
        frame = RidgeFrame::at(&p, &y)?;
    }
    let normal_distance = y
        .iter()
        .zip(x)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    Ok(Projection {
        normal_distance,
        iterations,
        converged,
        stalled: frame.eigengap() < STALL_GAP / h,
        curved: frame.curved(),
        point: y,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_point_ridge_is_the_axis() {
        // §4.4: for two points the normal is always e_y with λ_y = −1/h.
        let gmm = Mixture::equal(2, vec![-3.0, 0.0, 3.0, 0.0], 0.0).unwrap();
        for t in [0.03f64, 0.27, 1.0, 3.0] {
            let (a, h) = ((-t).exp(), -(-2.0 * t).exp_m1());
            let p = gmm.diffused(a, h).unwrap();
            for x in [[0.4, 0.7], [-2.5, -1.3], [2.9, 0.02]] {
                let f = RidgeFrame::at(&p, &x).unwrap();
                assert!((f.eigen.values[1] + 1.0 / h).abs() < 1e-9 / h);
                if f.eigengap() < STALL_GAP / h {
                    // Next to a point the Hessian is ≈ −I/h: no defined normal (D10 "stalled").
                    assert!(project(&gmm, a, h, &x).unwrap().stalled);
                    continue;
                }
                assert!(f.eigen.vector(1)[0].abs() < 1e-9);
                let proj = project(&gmm, a, h, &x).unwrap();
                assert!(proj.converged && proj.curved && !proj.stalled);
                assert!((proj.point[0] - x[0]).abs() < 1e-9 && proj.point[1].abs() < 1e-9);
                assert!((proj.normal_distance - x[1].abs()).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn scms_fixed_points_satisfy_the_ridge_condition() {
        let gmm = Mixture::new(
            2,
            vec![0.0, 0.0, 1.0, 0.3, 2.1, -0.4, 0.5, 1.6],
            vec![0.1, 0.2, 0.05, 0.15],
            &[1.0, 2.0, 1.0, 0.5],
        )
        .unwrap();
        let (a, h) = (0.95f64, 0.0975f64);
        let p = gmm.diffused(a, h).unwrap();
        let mut checked = 0;
        for i in 0..25 {
            let x = [-0.3 + 0.1 * i as f64, 0.4 + 0.05 * (i % 5) as f64];
            let proj = project(&gmm, a, h, &x).unwrap();
            if !proj.converged || proj.stalled {
                continue;
            }
            let f = RidgeFrame::at(&p, &proj.point).unwrap();
            assert!(
                f.normal_gradient_norm() * h < 1e-6 * h.sqrt(),
                "residual {} at {:?}",
                f.normal_gradient_norm(),
                proj.point
            );
            // Projecting a ridge point is a no-op.
            let again = project(&gmm, a, h, &proj.point).unwrap();
            assert!(again.normal_distance < 1e-6, "{}", again.normal_distance);
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} points converged");
    }
}
