//! The two-point error-injection toy of the ridge paper (He, Qiu & Tao 2026; papers.md §4.2
//! "Error-injection toy", §4.4), with reach/align/slide phase logging.
//!
//! Training points x_i (default (±3, 0)), smoothed density p̂_t = (1/n)Σ N(a_t x_i, h_t I) with
//! a_t = e^{−t}, h_t = 1 − e^{−2t}; m = Σγ_i a_t x_i and ∇ln p̂_t = (m − y)/h_t. The reverse OU SDE
//! y ← y + (y + 2(m̃ − y)/h_t + 2c)Δ_j + √(2Δ_j) z_j runs on the geometric grid
//! t_j = t_max(t_min/t_max)^{j/N}, j = 0..N (8 → 1e−3, N = 2000), from y ~ N(0, I), where the
//! injected error gives m̃ and c:
//! - tangent: m̃_x = κ m_x;
//! - normal in denoiser space: m̃_y = m_y + δ a_t;
//! - normal in score space: c = offset·e_y (a constant added to the score).
//!
//! For two points the ridge R_t is the whole x-axis (§4.4), so the normal distance is |y| and the
//! tangent coordinate is x. Phases: *reach* (rms |y| falls with √h_t), *align* (|y| ≈ √h_t or the
//! injected normal offset), *slide* (x settles near ±3a_t late).

use anyhow::{Result, ensure};

use crate::analysis::mixture::Mixture;
use crate::analysis::paths::{STREAM_INIT, STREAM_STEP, normals, par_map};

/// An error injected into the exact two-point denoiser.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Injection {
    Exact,
    /// m_x ← κ m_x.
    Tangent {
        kappa: f64,
    },
    /// m_y += δ a_t (denoiser space).
    DenoiserNormal {
        delta: f64,
    },
    /// ∂_y ln p += c (score space).
    ScoreNormal {
        offset: f64,
    },
}

impl Injection {
    /// The rows of the §4.4 table.
    pub const TABLE: [Self; 7] = [
        Self::Exact,
        Self::Tangent { kappa: 0.9 },
        Self::Tangent { kappa: 0.7 },
        Self::DenoiserNormal { delta: 0.2 },
        Self::DenoiserNormal { delta: 0.5 },
        Self::ScoreNormal { offset: 0.5 },
        Self::ScoreNormal { offset: 1.0 },
    ];

    pub fn label(&self) -> String {
        match *self {
            Self::Exact => "exact".into(),
            Self::Tangent { kappa } => format!("m_x <- {kappa} m_x"),
            Self::DenoiserNormal { delta } => format!("m_y += {delta} a_t"),
            Self::ScoreNormal { offset } => format!("score offset {offset}"),
        }
    }
}

/// Toy settings.
#[derive(Clone, Debug)]
pub struct ToyConfig {
    /// Training points (σ = 0 mixture in 2D).
    pub points: Mixture,
    pub t_max: f64,
    pub t_min: f64,
    pub steps: usize,
    pub seed: u64,
    pub threads: usize,
    /// OU times at which the phase statistics are logged (snapped to the nearest grid time).
    pub log_times: Vec<f64>,
}

impl ToyConfig {
    /// The paper setting: points (±3, 0), 8 → 1e−3, 2000 steps.
    ///
    /// # Errors
    /// Never in practice.
    pub fn paper(seed: u64, threads: usize) -> Result<Self> {
        Ok(Self {
            points: Mixture::equal(2, vec![-3.0, 0.0, 3.0, 0.0], 0.0)?,
            t_max: 8.0,
            t_min: 1e-3,
            steps: 2000,
            seed,
            threads,
            log_times: vec![8.0, 4.0, 2.6, 1.0, 0.27, 0.1, 0.029, 0.01, 0.001],
        })
    }

    fn time(&self, j: usize) -> f64 {
        self.t_max * (self.t_min / self.t_max).powf(j as f64 / self.steps as f64)
    }
}

/// Statistics at one logged time.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PhaseRow {
    pub t: f64,
    pub sqrt_h: f64,
    /// rms normal distance (|y|).
    pub rms_normal: f64,
    pub mean_y: f64,
    /// Share of paths with |x ∓ 3a_t| < 0.5 for the nearest point (tangent settled: slide done).
    pub share_near_points: f64,
}

/// The §4.4 table row and the phase log of one injection.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ToyResult {
    pub injection: Injection,
    pub label: String,
    pub final_rms_y: f64,
    pub final_mean_y: f64,
    /// Share within 0.5 of a training point.
    pub within_point: f64,
    /// Share with |x| < 2.5 and |y| < 0.5.
    pub inter_mode: f64,
    /// Mean |x| at the end (tangent shrink κ ends at ±3κ).
    pub final_mean_abs_x: f64,
    pub phases: Vec<PhaseRow>,
}

/// Runs `n` paths of the toy with one injection.
///
/// # Errors
/// Fails on a non-2D or non-empirical point set, a bad time grid or zero steps.
pub fn run_toy(
    cfg: &ToyConfig,
    injection: Injection,
    n: usize,
    progress: Option<&str>,
) -> Result<ToyResult> {
    ensure!(cfg.points.dim() == 2, "the toy is two-dimensional");
    ensure!(cfg.steps > 0 && n > 0, "need steps > 0 and paths > 0");
    ensure!(
        cfg.t_min > 0.0 && cfg.t_max > cfg.t_min,
        "need 0 < t_min < t_max"
    );
    let log_steps: Vec<usize> = cfg
        .log_times
        .iter()
        .map(|&t| {
            (0..=cfg.steps)
                .min_by(|&a, &b| (cfg.time(a) - t).abs().total_cmp(&(cfg.time(b) - t).abs()))
                .unwrap_or(0)
        })
        .collect();
    // Per-step constants, shared by every path: (a_t, h_t, Δ_j, √(2Δ_j)).
    let grid: Vec<(f64, f64, f64, f64)> = (0..cfg.steps)
        .map(|j| {
            let t = cfg.time(j);
            let dt = t - cfg.time(j + 1);
            ((-t).exp(), -(-2.0 * t).exp_m1(), dt, (2.0 * dt).sqrt())
        })
        .collect();
    let diffused: Vec<_> = grid
        .iter()
        .map(|&(a, h, _, _)| cfg.points.diffused(a, h))
        .collect::<Result<_>>()?;
    let mut snapshot_slot = vec![None; cfg.steps + 1];
    for (s, &j) in log_steps.iter().enumerate() {
        snapshot_slot[j] = Some(s);
    }
    let paths = par_map(n, cfg.threads, progress, |p| -> Result<Vec<[f64; 2]>> {
        let mut y = [0.0; 2];
        normals(cfg.seed, STREAM_INIT, p, 0, &mut y);
        let mut snapshots = vec![[0.0; 2]; log_steps.len() + 1];
        let mut z = [0.0; 2];
        let mut den = [0.0; 2];
        for (j, (&(a, h, dt, diffusion), p_t)) in grid.iter().zip(&diffused).enumerate() {
            if let Some(s) = snapshot_slot[j] {
                snapshots[s] = y;
            }
            p_t.denoise(&y, &mut den)?;
            let mut m = [a * den[0], a * den[1]];
            let mut offset = 0.0;
            match injection {
                Injection::Exact => {}
                Injection::Tangent { kappa } => m[0] *= kappa,
                Injection::DenoiserNormal { delta } => m[1] += delta * a,
                Injection::ScoreNormal { offset: c } => offset = c,
            }
            normals(cfg.seed, STREAM_STEP, p, j, &mut z);
            y[0] += (y[0] + 2.0 * (m[0] - y[0]) / h) * dt + diffusion * z[0];
            y[1] += (y[1] + 2.0 * ((m[1] - y[1]) / h + offset)) * dt + diffusion * z[1];
        }
        if let Some(s) = snapshot_slot[cfg.steps] {
            snapshots[s] = y;
        }
        let last = log_steps.len();
        snapshots[last] = y;
        Ok(snapshots)
    });
    let paths: Vec<Vec<[f64; 2]>> = paths.into_iter().collect::<Result<_>>()?;
    let nf = n as f64;
    let last = log_steps.len();
    let finals: Vec<[f64; 2]> = paths.iter().map(|p| p[last]).collect();
    let near = |y: &[f64; 2]| -> f64 {
        (0..cfg.points.components())
            .map(|k| {
                let c = cfg.points.mean(k);
                ((y[0] - c[0]).powi(2) + (y[1] - c[1]).powi(2)).sqrt()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let phases = log_steps
        .iter()
        .enumerate()
        .map(|(s, &j)| {
            let t = cfg.time(j);
            let a = (-t).exp();
            let ys = paths.iter().map(|p| p[s]);
            let rms = (ys.clone().map(|y| y[1] * y[1]).sum::<f64>() / nf).sqrt();
            let mean_y = ys.clone().map(|y| y[1]).sum::<f64>() / nf;
            let near_points = ys
                .filter(|y| {
                    (0..cfg.points.components())
                        .any(|k| (y[0] - a * cfg.points.mean(k)[0]).abs() < 0.5)
                })
                .count() as f64
                / nf;
            PhaseRow {
                t,
                sqrt_h: (-(-2.0 * t).exp_m1()).sqrt(),
                rms_normal: rms,
                mean_y,
                share_near_points: near_points,
            }
        })
        .collect();
    Ok(ToyResult {
        injection,
        label: injection.label(),
        final_rms_y: (finals.iter().map(|y| y[1] * y[1]).sum::<f64>() / nf).sqrt(),
        final_mean_y: finals.iter().map(|y| y[1]).sum::<f64>() / nf,
        within_point: finals.iter().filter(|y| near(y) < 0.5).count() as f64 / nf,
        inter_mode: finals
            .iter()
            .filter(|y| y[0].abs() < 2.5 && y[1].abs() < 0.5)
            .count() as f64
            / nf,
        final_mean_abs_x: finals.iter().map(|y| y[0].abs()).sum::<f64>() / nf,
        phases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_point_toy_table_of_section_4_4() {
        let cfg = ToyConfig::paper(11, 0).unwrap();
        let n = 2000;
        let sqrt_h_min = (-(-2.0f64 * 1e-3).exp_m1()).sqrt();
        // (rms y, mean y, within, inter) of §4.4; rms to ±6%, shares to ±0.05 (MC SE ≤ 0.01).
        let want = [
            (sqrt_h_min, 0.0, 1.0, 0.0),
            (0.045, 0.0, 1.0, 0.0),
            (0.045, 0.0, 0.0, 1.0),
            (0.205, 0.200, 1.0, 0.0),
            (0.501, 0.499, 0.485, 0.0),
            (0.046, 0.008, 1.0, 0.0),
            (0.047, 0.015, 1.0, 0.0),
        ];
        for (inj, (rms, mean, within, inter)) in Injection::TABLE.into_iter().zip(want) {
            let r = run_toy(&cfg, inj, n, None).unwrap();
            let what = r.label.clone();
            assert!(
                (r.final_rms_y / rms - 1.0).abs() < 0.06,
                "{what}: rms {}",
                r.final_rms_y
            );
            // Mean y: MC SE ≈ 0.045/√n ≈ 0.001.
            assert!(
                (r.final_mean_y - mean).abs() < 0.004,
                "{what}: mean {}",
                r.final_mean_y
            );
            assert!(
                (r.within_point - within).abs() < 0.05,
                "{what}: within {}",
                r.within_point
            );
            assert!(
                (r.inter_mode - inter).abs() < 0.05,
                "{what}: inter {}",
                r.inter_mode
            );
            if let Injection::Tangent { kappa } = inj {
                // A tangent shrink κ ends at ±3κ (3(1 − κ) from the point).
                assert!(
                    (r.final_mean_abs_x - 3.0 * kappa).abs() < 0.02,
                    "{what}: |x| {}",
                    r.final_mean_abs_x
                );
            }
        }
    }

    #[test]
    fn exact_phases_track_sqrt_h_and_slide_late() {
        let cfg = ToyConfig::paper(5, 0).unwrap();
        let r = run_toy(&cfg, Injection::Exact, 2000, None).unwrap();
        let at = |t: f64| {
            r.phases
                .iter()
                .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()))
                .unwrap()
                .clone()
        };
        for (t, want) in [(8.0, 1.00), (0.27, 0.65), (0.029, 0.24), (0.001, 0.045)] {
            let row = at(t);
            assert!(
                (row.rms_normal / want - 1.0).abs() < 0.06,
                "t = {t}: rms {}",
                row.rms_normal
            );
            assert!(
                (row.rms_normal / row.sqrt_h - 1.0).abs() < 0.06,
                "t = {t}: rms/√h {}",
                row.rms_normal / row.sqrt_h
            );
        }
        // The slide is late: the share near ±3a_t grows from ≈0.56 at t = 0.27 to ≈0.96 at t = 0.03.
        assert!(
            (at(0.27).share_near_points - 0.56).abs() < 0.05,
            "{}",
            at(0.27).share_near_points
        );
        assert!(
            (at(0.029).share_near_points - 0.96).abs() < 0.03,
            "{}",
            at(0.029).share_near_points
        );
        // A score offset of 1.0 first pushes paths off the ridge (≈2.2 at t = 2.6), then re-aligns.
        let off = run_toy(&cfg, Injection::ScoreNormal { offset: 1.0 }, 2000, None).unwrap();
        let mid = off
            .phases
            .iter()
            .min_by(|a, b| (a.t - 2.6).abs().total_cmp(&(b.t - 2.6).abs()))
            .unwrap();
        assert!((mid.rms_normal - 2.2).abs() < 0.2, "{}", mid.rms_normal);
        assert!(off.final_rms_y < 0.06);
    }
}
