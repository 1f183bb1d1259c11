//! `mirage windows`: critical windows (Li & Chen 2024; papers.md §3, §6.3, D9).
//!
//! 1. P_stay of N(±μ, I): start in +μ, noise to each t̂, denoise with the exact score by the
//!    reverse SDE and the probability-flow ODE; compare with E_g[σ(2(s²+sg))], the side-label form
//!    and Φ(s); estimate the window edges (where the MC curve crosses 0.99 … 0.6) beside the closed
//!    forms, the paper bounds and the exact-TV window at ε = 0.1.
//! 2. The hierarchy μ1 = (25, 0.5), μ2 = (25, −0.5), μ3 = (−25, 0): P(1)/P(2)/P(3) by t̂.
//! 3. The last-switch table (gauss1d-3, grid25, grid25-rot) on the paper schedule.
//!
//! Writes `windows.json`, `p_stay.csv`, `hierarchy.csv`, `last_switch.csv`, `p_stay.png` and
//! `hierarchy.png` under `--out`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, ensure};
use clap::Args;

use crate::analysis::es::schedule64::Betas;
use crate::analysis::windows::closed_form::{
    Process, exact_window, offset_for, p_stay, p_stay_sde_side, pairwise_window, paper_window,
};
use crate::analysis::windows::experiment::{
    NoiseDenoise, crossing, hierarchy_mixture, symmetric_pair,
};
use crate::analysis::windows::last_switch::{last_switch, paper_sets};
use crate::io::atomic::write_atomic;
use crate::plot::{Series, line_plot};

/// Arguments of `mirage windows`.
#[derive(Args, Debug)]
pub struct WindowsArgs {
    /// Output directory.
    #[arg(long, default_value = "runs/windows")]
    pub out: PathBuf,
    /// ‖μ‖ of the pair ±μ.
    #[arg(long, default_value_t = 4.0)]
    pub mu: f64,
    /// Dimension of the pair experiment (the result does not depend on it).
    #[arg(long, default_value_t = 2)]
    pub dim: usize,
    /// Paths per t̂ and process.
    #[arg(long, default_value_t = 20_000)]
    pub paths: usize,
    /// Euler(–Maruyama) steps per path (papers.md §3.3: ≥ 400).
    #[arg(long, default_value_t = 500)]
    pub steps: usize,
    /// Noise levels t̂ (OU time) of the pair experiment.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.25,0.5,1,1.5,2,2.5,3,4"
    )]
    pub t_hat: Vec<f64>,
    /// Noise levels of the hierarchy experiment (600 steps each as in §3.4 unless --steps is larger).
    #[arg(long, value_delimiter = ',', default_value = "0.001,1.5,2,3,4,5")]
    pub hierarchy_t_hat: Vec<f64>,
    /// Window tolerance ε.
    #[arg(long, default_value_t = 0.1)]
    pub eps: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (0 = all cores; results do not depend on it).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Runs `mirage windows`.
///
/// # Errors
/// Bad options, core or I/O errors, each named.
pub fn run(args: &WindowsArgs) -> Result<()> {
    ensure!(
        args.paths > 0 && args.steps > 0,
        "--paths and --steps must be positive"
    );
    ensure!(
        args.t_hat
            .iter()
            .chain(&args.hierarchy_t_hat)
            .all(|t| t.is_finite() && *t > 0.0),
        "every t̂ must be positive"
    );
    let mut t_grid = args.t_hat.clone();
    t_grid.sort_by(f64::total_cmp);
    let start = Instant::now();
    let pair = symmetric_pair(args.mu, args.dim)?;
    let mut csv =
        String::from("t_hat,s,mc_sde,mc_ode,exact_sde_posterior,exact_sde_side,exact_ode\n");
    let (mut sde_mc, mut ode_mc) = (Vec::new(), Vec::new());
    let mut rows = Vec::new();
    for &t_hat in &t_grid {
        let mut fr = [0.0; 2];
        for (slot, process) in fr.iter_mut().zip([Process::Sde, Process::Ode]) {
            let run = NoiseDenoise {
                mixture: &pair,
                start: &[0],
                t_hat,
                steps: args.steps,
                process,
                seed: args.seed,
                threads: args.threads,
            };
            let label = format!("windows {process:?} t̂={t_hat}");
            *slot = run.run(args.paths, Some(&label))?.fractions(2)[0];
        }
        let s = args.mu * (-t_hat).exp();
        let (post, side, ode) = (
            p_stay(Process::Sde, s),
            p_stay_sde_side(args.mu, t_hat)?,
            p_stay(Process::Ode, s),
        );
        let _ = writeln!(csv, "{t_hat},{s},{},{},{post},{side},{ode}", fr[0], fr[1]);
        sde_mc.push(fr[0]);
        ode_mc.push(fr[1]);
        rows.push(serde_json::json!({"t_hat": t_hat, "s": s, "mc_sde": fr[0], "mc_ode": fr[1], "exact_sde_posterior": post, "exact_sde_side": side, "exact_ode": ode}));
    }
    let pair_seconds = start.elapsed().as_secs_f64();
    let ln_mu = args.mu.ln();
    let mut estimates = Vec::new();
    for p in [0.99, 0.95, 0.9, 0.75, 0.6] {
        estimates.push(serde_json::json!({
            "p": p,
            "sde_closed_form": ln_mu + offset_for(Process::Sde, p)?,
            "sde_mc": crossing(&t_grid, &sde_mc, p),
            "ode_closed_form": ln_mu + offset_for(Process::Ode, p)?,
            "ode_mc": crossing(&t_grid, &ode_mc, p),
        }));
    }

    let hier = hierarchy_mixture()?;
    let between = (50.0f64 * 50.0 + 0.25).sqrt();
    let (t_lower, t_upper) = pairwise_window(1.0, between, args.eps)?;
    let mut hcsv = String::from("t_hat,p1,p2,p3\n");
    let mut hseries = vec![
        Series {
            name: "P(1)".into(),
            points: vec![],
        },
        Series {
            name: "P(2)".into(),
            points: vec![],
        },
        Series {
            name: "P(3)".into(),
            points: vec![],
        },
    ];
    let mut hrows = Vec::new();
    for &t_hat in &args.hierarchy_t_hat {
        let run = NoiseDenoise {
            mixture: &hier,
            start: &[0],
            t_hat,
            steps: args.steps.max(600),
            process: Process::Sde,
            seed: args.seed,
            threads: args.threads,
        };
        let fr = run
            .run(args.paths, Some(&format!("hierarchy t̂={t_hat}")))?
            .fractions(3);
        let _ = writeln!(hcsv, "{t_hat},{},{},{}", fr[0], fr[1], fr[2]);
        for (s, f) in hseries.iter_mut().zip(&fr) {
            s.points.push((t_hat, *f));
        }
        hrows.push(serde_json::json!({"t_hat": t_hat, "p": fr}));
    }

    let mut lcsv = String::from("set,p,tau,t_ou\n");
    let mut lrows = Vec::new();
    for geom in paper_sets()? {
        for e in last_switch(&geom, &Betas::PAPER, 1000, &[0.99, 0.9, 0.75, 0.6])? {
            let _ = writeln!(
                lcsv,
                "{},{},{},{}",
                geom.name,
                e.p,
                e.tau.map_or(String::new(), |t| t.to_string()),
                e.t_ou.map_or(String::new(), |t| t.to_string())
            );
            lrows.push(
                serde_json::json!({"set": geom.name, "p": e.p, "tau": e.tau, "t_ou": e.t_ou}),
            );
        }
    }
    let total_seconds = start.elapsed().as_secs_f64();
    let json = serde_json::json!({
        "mu": args.mu, "dim": args.dim, "paths": args.paths, "steps": args.steps, "eps": args.eps,
        "p_stay": rows, "window_estimates": estimates,
        "paper_window": paper_window(args.mu, args.eps)?, "exact_window": exact_window(args.mu, args.eps)?,
        "hierarchy": {"pairwise_t_lower": t_lower, "pairwise_t_upper": t_upper, "rows": hrows},
        "last_switch": lrows,
        "wall_seconds": {"pair": pair_seconds, "total": total_seconds},
    });
    let out = &args.out;
    write_atomic(
        &out.join("windows.json"),
        serde_json::to_vec_pretty(&json)?.as_slice(),
    )?;
    write_atomic(&out.join("p_stay.csv"), csv.as_bytes())?;
    write_atomic(&out.join("hierarchy.csv"), hcsv.as_bytes())?;
    write_atomic(&out.join("last_switch.csv"), lcsv.as_bytes())?;
    let dense: Vec<f64> = (0..=100)
        .map(|j| 0.05 * j as f64)
        .filter(|t| *t > 0.0)
        .collect();
    let series = vec![
        Series {
            name: "SDE Monte Carlo".into(),
            points: t_grid.iter().copied().zip(sde_mc.iter().copied()).collect(),
        },
        Series {
            name: "ODE Monte Carlo".into(),
            points: t_grid.iter().copied().zip(ode_mc.iter().copied()).collect(),
        },
        Series {
            name: "SDE exact (side label)".into(),
            points: dense
                .iter()
                .map(|&t| (t, p_stay_sde_side(args.mu, t).unwrap_or(f64::NAN)))
                .collect(),
        },
        Series {
            name: "ODE exact Phi(s)".into(),
            points: dense
                .iter()
                .map(|&t| (t, p_stay(Process::Ode, args.mu * (-t).exp())))
                .collect(),
        },
    ];
    line_plot(
        &out.join("p_stay.png"),
        &series,
        "t_hat (OU time)",
        "P(stay)",
        false,
        &format!("Critical window, |mu| = {}", args.mu),
    )?;
    line_plot(
        &out.join("hierarchy.png"),
        &hseries,
        "t_hat (OU time)",
        "P(label)",
        false,
        "Hierarchy: start in component 1",
    )?;
    println!("t̂      SDE MC  SDE exact  ODE MC  ODE exact");
    for (t, (s, o)) in t_grid.iter().zip(sde_mc.iter().zip(&ode_mc)) {
        let sx = args.mu * (-t).exp();
        println!(
            "{t:<6} {s:.4}  {:.4}     {o:.4}  {:.4}",
            p_stay_sde_side(args.mu, *t)?,
            p_stay(Process::Ode, sx)
        );
    }
    println!(
        "pair experiment: {} paths × {} steps × {} t̂ × 2 processes in {pair_seconds:.1} s; total {total_seconds:.1} s",
        args.paths,
        args.steps,
        t_grid.len()
    );
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_command_writes_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let args = WindowsArgs {
            out: dir.path().join("w"),
            mu: 4.0,
            dim: 2,
            paths: 300,
            steps: 50,
            t_hat: vec![0.5, 2.0],
            hierarchy_t_hat: vec![2.0],
            eps: 0.1,
            seed: 0,
            threads: 2,
        };
        run(&args).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(args.out.join("windows.json")).unwrap()).unwrap();
        assert_eq!(json["p_stay"].as_array().unwrap().len(), 2);
        assert_eq!(json["last_switch"].as_array().unwrap().len(), 12);
        for f in [
            "p_stay.csv",
            "hierarchy.csv",
            "last_switch.csv",
            "p_stay.png",
            "hierarchy.png",
        ] {
            assert!(args.out.join(f).exists(), "{f} missing");
        }
        assert!(
            run(&WindowsArgs {
                t_hat: vec![0.0],
                ..args
            })
            .is_err()
        );
    }
}
