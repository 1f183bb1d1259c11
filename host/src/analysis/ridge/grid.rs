//! The ridge of a 2D mode grid and nearest-neighbour interpolation (papers.md §4.4 "Link to §1"):
//! with d* = 1, grid25's ridge segments join nearest neighbours, matching §1's observation that
//! hallucinations lie between *nearest* modes. SCMS ([`super::scms::project`]) maps seed points onto
//! the ridge; each projection is classified by its distance to the nearest segment joining two
//! nearest-neighbour centres (pairs at distance ≤ (1 + 1e−6)·min spacing).

use anyhow::Result;

use super::scms::{Projection, project};
use crate::analysis::mixture::Mixture;
use crate::analysis::paths::par_map;

/// Distance from x to the segment [p, q].
pub fn segment_distance(x: &[f64], p: &[f64], q: &[f64]) -> f64 {
    let pq: Vec<f64> = q.iter().zip(p).map(|(a, b)| a - b).collect();
    let px: Vec<f64> = x.iter().zip(p).map(|(a, b)| a - b).collect();
    let len2: f64 = pq.iter().map(|v| v * v).sum();
    let u = if len2 > 0.0 {
        (px.iter().zip(&pq).map(|(a, b)| a * b).sum::<f64>() / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    px.iter()
        .zip(&pq)
        .map(|(a, b)| (a - u * b).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Pairs (i, j), i < j, of nearest-neighbour means.
pub fn nearest_neighbour_pairs(gmm: &Mixture) -> Vec<(usize, usize)> {
    let spacing = gmm.min_spacing();
    let k = gmm.components();
    let mut pairs = Vec::new();
    for i in 0..k {
        for j in i + 1..k {
            let d: f64 = gmm
                .mean(i)
                .iter()
                .zip(gmm.mean(j))
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            if d <= spacing * (1.0 + 1e-6) {
                pairs.push((i, j));
            }
        }
    }
    pairs
}

/// Distance from x to the nearest nearest-neighbour segment of the (undiffused) means scaled by a.
pub fn nn_segment_distance(gmm: &Mixture, pairs: &[(usize, usize)], a: f64, x: &[f64]) -> f64 {
    pairs
        .iter()
        .map(|&(i, j)| {
            let p: Vec<f64> = gmm.mean(i).iter().map(|m| a * m).collect();
            let q: Vec<f64> = gmm.mean(j).iter().map(|m| a * m).collect();
            segment_distance(x, &p, &q)
        })
        .fold(f64::INFINITY, f64::min)
}

/// SCMS projections of `seeds` (n × dim) in parallel.
///
/// # Errors
/// The first projection error, if any.
pub fn project_all(
    gmm: &Mixture,
    a: f64,
    h: f64,
    seeds: &[f64],
    threads: usize,
    progress: Option<&str>,
) -> Result<Vec<Projection>> {
    let dim = gmm.dim();
    par_map(seeds.len() / dim, threads, progress, |i| {
        project(gmm, a, h, &seeds[i * dim..(i + 1) * dim])
    })
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::es::schedule64::Betas;
    use crate::data::Named;

    #[test]
    fn grid25_ridge_joins_nearest_neighbours() {
        let gmm = Mixture::from_data(&Named::Grid25.mixture().unwrap()).unwrap();
        let pairs = nearest_neighbour_pairs(&gmm);
        assert_eq!(pairs.len(), 40, "5×5 grid: 2·5·4 nearest-neighbour edges");
        // Step τ = 9 of the paper schedule, the start of the Hal window.
        let ab = Betas::PAPER.alpha_bars(1000).unwrap()[9];
        let (a, h) = (ab.sqrt(), 1.0 - ab);
        let mut seeds = Vec::new();
        for i in 0..12 {
            for j in 0..12 {
                // Irrational offsets keep seeds off the symmetry lines (where the eigengap vanishes).
                seeds.push(-1.3 + 2.6 * (i as f64 + 0.37) / 12.0);
                seeds.push(-1.3 + 2.6 * (j as f64 + 0.61) / 12.0);
            }
        }
        let proj = project_all(&gmm, a, h, &seeds, 0, None).unwrap();
        let good: Vec<&Projection> = proj
            .iter()
            .filter(|p| p.converged && !p.stalled && p.curved)
            .collect();
        assert!(
            good.len() * 10 >= proj.len() * 8,
            "{} of {} converged",
            good.len(),
            proj.len()
        );
        for p in good {
            let d = nn_segment_distance(&gmm, &pairs, a, &p.point);
            assert!(
                d < 1e-3,
                "ridge point {:?} is {d} from every nearest-neighbour segment",
                p.point
            );
        }
    }

    #[test]
    fn segment_distance_cases() {
        assert!((segment_distance(&[0.5, 1.0], &[0.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-15);
        assert!((segment_distance(&[2.0, 0.0], &[0.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-15);
        assert!((segment_distance(&[3.0, 4.0], &[0.0, 0.0], &[0.0, 0.0]) - 5.0).abs() < 1e-15);
    }
}
