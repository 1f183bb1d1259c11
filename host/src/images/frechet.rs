//! Fréchet distance between Gaussians fitted to two feature sets (papers.md §7 D6; the
//! distance behind FID, Heusel et al. 2017):
//!
//! FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}),
//!
//! in f64, the square roots of symmetric positive semi-definite matrices by cyclic Jacobi
//! eigendecomposition (negative round-off eigenvalues clamped to 0). Covariances are the
//! unbiased (n − 1) estimates, as in FID.

use anyhow::{Result, ensure};

/// Eigenvalues and eigenvectors (columns, row-major `n×n`) of a symmetric matrix.
#[must_use]
pub fn jacobi_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let scale: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum::<f64>() + off;
        if off <= 1e-30 * scale.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// The PSD square root V·diag(√max(λ, 0))·Vᵀ of a symmetric matrix.
#[must_use]
pub fn sqrt_psd(a: &[f64], n: usize) -> Vec<f64> {
    let (vals, v) = jacobi_eigen(a, n);
    let mut out = vec![0.0; n * n];
    for (k, &l) in vals.iter().enumerate() {
        let s = l.max(0.0).sqrt();
        for i in 0..n {
            for j in 0..n {
                out[i * n + j] += v[i * n + k] * s * v[j * n + k];
            }
        }
    }
    out
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c
}

/// Mean and unbiased covariance of `n` rows of `dim` features.
///
/// # Errors
/// Fewer than 2 rows or a ragged buffer.
pub fn moments(features: &[f64], dim: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    ensure!(
        dim > 0 && features.len().is_multiple_of(dim) && features.len() / dim >= 2,
        "Fréchet: need ≥ 2 rows of {dim} features"
    );
    let n = features.len() / dim;
    let mut mu = vec![0.0; dim];
    for row in features.chunks_exact(dim) {
        mu.iter_mut()
            .zip(row)
            .for_each(|(m, &x)| *m += x / n as f64);
    }
    let mut cov = vec![0.0; dim * dim];
    for row in features.chunks_exact(dim) {
        for i in 0..dim {
            let di = row[i] - mu[i];
            for j in 0..dim {
                cov[i * dim + j] += di * (row[j] - mu[j]) / (n - 1) as f64;
            }
        }
    }
    Ok((mu, cov))
}

/// FD between N(μ₁, Σ₁) and N(μ₂, Σ₂).
#[must_use]
pub fn frechet_from_moments(mu1: &[f64], cov1: &[f64], mu2: &[f64], cov2: &[f64], n: usize) -> f64 {
    let mean_term: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b).powi(2)).sum();
    let s1 = sqrt_psd(cov1, n);
    let inner = matmul(&matmul(&s1, cov2, n), &s1, n);
    let sym: Vec<f64> = (0..n * n)
        .map(|k| 0.5 * (inner[k] + inner[(k % n) * n + k / n]))
        .collect();
    let cross = sqrt_psd(&sym, n);
    let trace = |m: &[f64]| (0..n).map(|i| m[i * n + i]).sum::<f64>();
    mean_term + trace(cov1) + trace(cov2) - 2.0 * trace(&cross)
}

/// FD between the Gaussians fitted to two feature sets.
///
/// # Errors
/// As [`moments`].
pub fn frechet_distance(a: &[f64], b: &[f64], dim: usize) -> Result<f64> {
    let (m1, c1) = moments(a, dim)?;
    let (m2, c2) = moments(b, dim)?;
    Ok(frechet_from_moments(&m1, &c1, &m2, &c2, dim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_reconstructs_and_sqrt_squares_back() {
        let n = 5;
        let b: Vec<f64> = (0..n * n)
            .map(|k| ((k * 37 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let a = matmul(
            &b,
            &(0..n * n)
                .map(|k| b[(k % n) * n + k / n])
                .collect::<Vec<_>>(),
            n,
        ); // B·Bᵀ
        let s = sqrt_psd(&a, n);
        let back = matmul(&s, &s, n);
        for (x, y) in back.iter().zip(&a) {
            assert!((x - y).abs() < 1e-9 * (1.0 + y.abs()));
        }
    }

    #[test]
    fn closed_forms() {
        // Commuting (diagonal) covariances: FD = ‖Δμ‖² + Σ (σ₁ − σ₂)².
        let n = 3;
        let (s1, s2) = ([1.0, 4.0, 0.25], [9.0, 1.0, 0.25]);
        let diag = |s: &[f64; 3]| {
            (0..9)
                .map(|k| if k % 4 == 0 { s[k / 4] } else { 0.0 })
                .collect::<Vec<_>>()
        };
        let fd = frechet_from_moments(
            &[0.0, 1.0, 2.0],
            &diag(&s1),
            &[1.0, 1.0, 0.0],
            &diag(&s2),
            n,
        );
        let want = 1.0 + 4.0 + (1.0f64 - 3.0).powi(2) + (2.0f64 - 1.0).powi(2);
        assert!((fd - want).abs() < 1e-10, "{fd} vs {want}");
        // A rotated pair: FD is invariant under a common rotation.
        let (c, s) = (0.6f64, 0.8f64);
        let r = [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
        let rt: Vec<f64> = (0..9).map(|k| r[(k % 3) * 3 + k / 3]).collect();
        let rot = |m: &[f64]| matmul(&matmul(&r, m, 3), &rt, 3);
        let fd_rot =
            frechet_from_moments(&[0.0; 3], &rot(&diag(&s1)), &[0.0; 3], &rot(&diag(&s2)), n);
        assert!((fd_rot - (4.0 + 1.0)).abs() < 1e-9, "{fd_rot}");
        let x: Vec<f64> = (0..200).map(|k| ((k * 7919) % 101) as f64 / 10.0).collect();
        assert!(frechet_distance(&x, &x, 2).unwrap().abs() < 1e-9);
        assert!(frechet_distance(&x[..2], &x, 2).is_err());
    }
}
