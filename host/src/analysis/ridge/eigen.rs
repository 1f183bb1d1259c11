//! Symmetric eigen-decomposition by the cyclic Jacobi method (Golub & Van Loan §8.5), f64, for the
//! small Hessians of the ridge tool (papers.md §4.3: "use a symmetric eigen-solver (Jacobi for
//! d ≤ 3)"). Each rotation zeroes one off-diagonal entry a_pq with
//! θ = (a_qq − a_pp)/(2a_pq), t = sign(θ)/(|θ| + √(θ² + 1)), c = 1/√(t²+1), s = tc;
//! sweeps repeat until the off-diagonal Frobenius norm is below 1e−15 of the matrix norm.

use anyhow::{Result, ensure};

/// Eigenvalues in descending order and matching unit eigenvectors.
#[derive(Clone, Debug)]
pub struct SymmetricEigen {
    pub dim: usize,
    /// λ_1 ≥ … ≥ λ_d.
    pub values: Vec<f64>,
    /// Row k (`vectors[k·d..(k+1)·d]`) is the unit eigenvector of `values[k]`.
    pub vectors: Vec<f64>,
}

impl SymmetricEigen {
    /// Decomposes the symmetric d×d row-major matrix `a` (only symmetry up to rounding is assumed;
    /// the upper and lower triangles are averaged).
    ///
    /// # Accuracy
    /// ‖A v_k − λ_k v_k‖ ≤ 1e−12·‖A‖_F for d ≤ 8 in the tests.
    ///
    /// # Errors
    /// Fails if `a` is not d×d, holds a non-finite value, or the sweeps do not converge (100 sweeps).
    pub fn new(a: &[f64], dim: usize) -> Result<Self> {
        ensure!(
            dim > 0 && a.len() == dim * dim,
            "matrix must be {dim}×{dim}"
        );
        ensure!(
            a.iter().all(|v| v.is_finite()),
            "matrix holds a non-finite value"
        );
        let d = dim;
        let mut m: Vec<f64> = (0..d * d)
            .map(|ij| 0.5 * (a[ij] + a[(ij % d) * d + ij / d]))
            .collect();
        let mut v = vec![0.0; d * d];
        for i in 0..d {
            v[i * d + i] = 1.0;
        }
        let norm: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
        let mut converged = false;
        for _ in 0..100 {
            let off: f64 = (0..d)
                .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| m[i * d + j].powi(2))
                .sum::<f64>()
                .sqrt();
            if off <= 1e-15 * norm || off == 0.0 {
                converged = true;
                break;
            }
            for p in 0..d {
                for q in p + 1..d {
                    let apq = m[p * d + q];
                    if apq == 0.0 {
                        continue;
                    }
                    let theta = (m[q * d + q] - m[p * d + p]) / (2.0 * apq);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let t = if theta == 0.0 { 1.0 } else { t };
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    let s = t * c;
                    // M ← Jᵀ M J on columns then rows p, q.
                    for k in 0..d {
                        let (mkp, mkq) = (m[k * d + p], m[k * d + q]);
                        m[k * d + p] = c * mkp - s * mkq;
                        m[k * d + q] = s * mkp + c * mkq;
                    }
                    for k in 0..d {
                        let (mpk, mqk) = (m[p * d + k], m[q * d + k]);
                        m[p * d + k] = c * mpk - s * mqk;
                        m[q * d + k] = s * mpk + c * mqk;
                    }
                    for k in 0..d {
                        let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                        v[k * d + p] = c * vkp - s * vkq;
                        v[k * d + q] = s * vkp + c * vkq;
                    }
                }
            }
        }
        ensure!(
            converged,
            "Jacobi eigen-solver did not converge in 100 sweeps"
        );
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&i, &j| m[j * d + j].total_cmp(&m[i * d + i]));
        let values = order.iter().map(|&i| m[i * d + i]).collect();
        let vectors = order
            .iter()
            .flat_map(|&col| (0..d).map(move |row| (row, col)))
            .map(|(row, col)| v[row * d + col])
            .collect();
        Ok(Self {
            dim,
            values,
            vectors,
        })
    }

    /// The unit eigenvector of the k-th largest eigenvalue.
    pub fn vector(&self, k: usize) -> &[f64] {
        &self.vectors[k * self.dim..(k + 1) * self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconstructs_random_symmetric_matrices() {
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        for d in 1..=8 {
            let mut a = vec![0.0; d * d];
            for i in 0..d {
                for j in i..d {
                    let x = next();
                    a[i * d + j] = x;
                    a[j * d + i] = x;
                }
            }
            let e = SymmetricEigen::new(&a, d).unwrap();
            let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!(e.values.windows(2).all(|w| w[0] >= w[1]));
            for k in 0..d {
                let v = e.vector(k);
                assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
                for i in 0..d {
                    let av: f64 = (0..d).map(|j| a[i * d + j] * v[j]).sum();
                    assert!(
                        (av - e.values[k] * v[i]).abs() < 1e-12 * norm.max(1.0),
                        "d = {d}"
                    );
                }
            }
            // Trace is preserved.
            let trace: f64 = (0..d).map(|i| a[i * d + i]).sum();
            assert!((trace - e.values.iter().sum::<f64>()).abs() < 1e-12 * norm.max(1.0));
        }
    }

    #[test]
    fn known_2x2_and_bad_input() {
        let e = SymmetricEigen::new(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
        assert!((e.values[0] - 3.0).abs() < 1e-14 && (e.values[1] - 1.0).abs() < 1e-14);
        assert!((e.vector(0)[0].abs() - core::f64::consts::FRAC_1_SQRT_2).abs() < 1e-14);
        assert!(SymmetricEigen::new(&[1.0, f64::NAN, 0.0, 1.0], 2).is_err());
        assert!(SymmetricEigen::new(&[1.0, 2.0, 3.0], 2).is_err());
    }
}
