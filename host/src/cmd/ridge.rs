//! `mirage ridge`: the log-density ridge (He, Qiu & Tao 2026; papers.md §4, §6.4, D10).
//!
//! 1. The two-point error-injection toy (§4.4): every injection of the table, `--paths`
//!    trajectories each, with reach/align/slide phase logs.
//! 2. The ridge of grid25 at DDPM step `--tau`: SCMS projections of a seed grid, and the share that
//!    lands on segments joining nearest neighbours.
//! 3. With `--model`: sample the trained model (paper sampler), label hallucinations (D2: farther
//!    than 5σ from every mode) and project them with SCMS onto the ridge of the training mixture at
//!    OU time 1e−3 (D10's proxy level); report their normal distances.
//!
//! Writes `ridge.json`, `toy.csv`, `phases.csv`, `grid_ridge.csv`, `ridge_phases.png`,
//! `grid_ridge.png` (and `model_hallucinations.csv`) under `--out`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, anyhow, ensure};
use clap::Args;
use mirage_core::Denoiser;
use mirage_core::sampler::SamplerConfig;
use mirage_core::schedule::{Schedule, Spacing, compute_tables, table_len};

use crate::analysis::es::chain::run_chain;
use crate::analysis::es::schedule64::Betas;
use crate::analysis::mixture::Mixture as Gmm64;
use crate::analysis::ridge::grid::{nearest_neighbour_pairs, nn_segment_distance, project_all};
use crate::analysis::ridge::toy::{Injection, ToyConfig, run_toy};
use crate::data::parse_mixture;
use crate::io::atomic::write_atomic;
use crate::plot::{Series, line_plot, scatter_2d};
use crate::train::export::read_aligned;

/// Arguments of `mirage ridge`.
#[derive(Args, Debug)]
pub struct RidgeArgs {
    /// Output directory.
    #[arg(long, default_value = "runs/ridge")]
    pub out: PathBuf,
    /// Trajectories per injection of the two-point toy.
    #[arg(long, default_value_t = 100_000)]
    pub paths: usize,
    /// Euler–Maruyama steps of the toy (geometric grid 8 → 1e−3).
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Dataset whose ridge is traced (2D).
    #[arg(long, default_value = "grid25")]
    pub dataset: String,
    /// DDPM step τ (paper schedule) at which the grid ridge is traced.
    #[arg(long, default_value_t = 9)]
    pub tau: usize,
    /// Seeds per side of the SCMS seed grid.
    #[arg(long, default_value_t = 40)]
    pub grid: usize,
    /// Trained 2D model (.mrg) whose hallucinations are projected onto the ridge.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Samples drawn from --model.
    #[arg(long, default_value_t = 20_000)]
    pub model_samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (0 = all cores; results do not depend on it).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Runs `mirage ridge`.
///
/// # Errors
/// Bad options, a non-2D dataset, an unreadable model, core or I/O errors, each named.
pub fn run(args: &RidgeArgs) -> Result<()> {
    ensure!(
        args.paths > 0 && args.steps > 0 && args.grid > 0,
        "--paths, --steps and --grid must be positive"
    );
    ensure!(args.tau < 1000, "--tau must be < 1000 (paper schedule)");
    let out = &args.out;
    let start = Instant::now();
    let mut cfg = ToyConfig::paper(args.seed, args.threads)?;
    cfg.steps = args.steps;
    let mut toy = Vec::new();
    let mut csv = String::from(
        "injection,final_rms_y,final_mean_y,within_point,inter_mode,final_mean_abs_x\n",
    );
    let mut phases = String::from("injection,t,sqrt_h,rms_normal,mean_y,share_near_points\n");
    let mut series = Vec::new();
    for inj in Injection::TABLE {
        let r = run_toy(
            &cfg,
            inj,
            args.paths,
            Some(&format!("ridge toy {}", inj.label())),
        )?;
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{}",
            r.label,
            r.final_rms_y,
            r.final_mean_y,
            r.within_point,
            r.inter_mode,
            r.final_mean_abs_x
        );
        for p in &r.phases {
            let _ = writeln!(
                phases,
                "{},{},{},{},{},{}",
                r.label, p.t, p.sqrt_h, p.rms_normal, p.mean_y, p.share_near_points
            );
        }
        series.push(Series {
            name: r.label.clone(),
            points: r
                .phases
                .iter()
                .map(|p| (p.t.log10(), p.rms_normal))
                .collect(),
        });
        println!(
            "{:<22} rms|y| {:.4}  mean y {:+.4}  within {:.3}  inter-mode {:.3}  |x| {:.3}",
            r.label,
            r.final_rms_y,
            r.final_mean_y,
            r.within_point,
            r.inter_mode,
            r.final_mean_abs_x
        );
        toy.push(r);
    }
    let toy_seconds = start.elapsed().as_secs_f64();
    println!(
        "toy: {} injections × {} trajectories × {} steps in {toy_seconds:.1} s",
        Injection::TABLE.len(),
        args.paths,
        args.steps
    );

    let data = parse_mixture(&args.dataset)?;
    ensure!(
        data.dim() == 2,
        "the ridge map needs a 2D dataset; {} has dimension {}",
        data.name(),
        data.dim()
    );
    let gmm = Gmm64::from_data(&data)?;
    let ab = Betas::PAPER.alpha_bars(1000)?[args.tau];
    let (a, h) = (ab.sqrt(), 1.0 - ab);
    let extent = (0..gmm.components())
        .flat_map(|k| gmm.mean(k).to_vec())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        * a
        + 3.0 * h.sqrt();
    let mut seeds = Vec::with_capacity(args.grid * args.grid * 2);
    for i in 0..args.grid {
        for j in 0..args.grid {
            // Offsets of 0.37 / 0.61 of a cell keep seeds off the symmetry lines.
            seeds.push(-extent + 2.0 * extent * (i as f64 + 0.37) / args.grid as f64);
            seeds.push(-extent + 2.0 * extent * (j as f64 + 0.61) / args.grid as f64);
        }
    }
    let proj = project_all(&gmm, a, h, &seeds, args.threads, Some("ridge SCMS"))?;
    let pairs = nearest_neighbour_pairs(&gmm);
    let mut gcsv = String::from(
        "seed_x,seed_y,ridge_x,ridge_y,normal_distance,iterations,converged,stalled,curved,nn_segment_distance\n",
    );
    let mut on_segments = 0usize;
    let mut good = 0usize;
    let mut ridge_points = Vec::new();
    for (seed, p) in seeds.chunks_exact(2).zip(&proj) {
        let seg = nn_segment_distance(&gmm, &pairs, a, &p.point);
        let _ = writeln!(
            gcsv,
            "{},{},{},{},{},{},{},{},{},{seg}",
            seed[0],
            seed[1],
            p.point[0],
            p.point[1],
            p.normal_distance,
            p.iterations,
            p.converged,
            p.stalled,
            p.curved
        );
        if p.converged && !p.stalled && p.curved {
            good += 1;
            on_segments += usize::from(seg < 1e-3);
            ridge_points.extend(p.point.iter().map(|&v| v as f32));
        }
    }
    let centres: Vec<f32> = (0..gmm.components())
        .flat_map(|k| {
            gmm.mean(k)
                .iter()
                .map(|&m| (a * m) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    scatter_2d(
        &out.join("grid_ridge.png"),
        &ridge_points,
        &centres,
        &format!("SCMS ridge of {} at tau = {}", data.name(), args.tau),
    )?;
    println!(
        "{} ridge at τ = {}: {good} of {} seeds converged (not stalled); {on_segments} of them on nearest-neighbour segments",
        data.name(),
        args.tau,
        proj.len()
    );

    let model_report = match &args.model {
        Some(path) => Some(model_hallucinations(args, path, &data, &gmm)?),
        None => None,
    };
    let json = serde_json::json!({
        "toy": toy, "toy_paths": args.paths, "toy_steps": args.steps,
        "grid": {"dataset": data.name(), "tau": args.tau, "seeds": proj.len(), "converged": good, "on_nn_segments": on_segments},
        "model": model_report,
        "wall_seconds": {"toy": toy_seconds, "total": start.elapsed().as_secs_f64()},
    });
    write_atomic(
        &out.join("ridge.json"),
        serde_json::to_vec_pretty(&json)?.as_slice(),
    )?;
    write_atomic(&out.join("toy.csv"), csv.as_bytes())?;
    write_atomic(&out.join("phases.csv"), phases.as_bytes())?;
    write_atomic(&out.join("grid_ridge.csv"), gcsv.as_bytes())?;
    line_plot(
        &out.join("ridge_phases.png"),
        &series,
        "log10 t (OU time)",
        "rms normal distance",
        true,
        "Two-point toy: distance to the ridge",
    )?;
    println!("wrote {}", out.display());
    Ok(())
}

fn model_hallucinations(
    args: &RidgeArgs,
    path: &std::path::Path,
    data: &crate::data::Mixture,
    gmm: &Gmm64,
) -> Result<serde_json::Value> {
    let name = path.display().to_string();
    let bytes = read_aligned(path)?;
    let model = bytes.model(&name)?;
    let header = *model.header();
    let mlp = crate::train::export::f32_mlp(&model, &name)?;
    ensure!(
        mlp.dim() == data.dim(),
        "{name} has dimension {}, dataset {} has {}",
        mlp.dim(),
        data.name(),
        data.dim()
    );
    let steps = header.train_steps;
    let mut tables = vec![0.0f32; table_len(steps)];
    compute_tables(&header.beta, steps, &Spacing::Linspace, steps, &mut tables)
        .map_err(|e| anyhow!("schedule: {e}"))?;
    let sched = Schedule::from_tables(&tables, steps).map_err(|e| anyhow!("schedule: {e}"))?;
    let cfg = SamplerConfig {
        prediction: header.prediction,
        ..SamplerConfig::PAPER
    };
    let mut x = vec![0.0f32; args.model_samples * mlp.dim()];
    eprintln!("ridge: sampling {} points from {name}", args.model_samples);
    run_chain(
        &mlp,
        &sched,
        &cfg,
        args.seed,
        &mut x,
        true,
        args.threads,
        || (),
        |_, _| {},
    )?;
    let hallucinated: Vec<f64> = x
        .chunks_exact(2)
        .filter(|p| {
            let q = [f64::from(p[0]), f64::from(p[1])];
            let k = gmm.nearest(&q);
            let d = gmm
                .mean(k)
                .iter()
                .zip(&q)
                .map(|(m, v)| (v - m) * (v - m))
                .sum::<f64>()
                .sqrt();
            d > 5.0 * gmm.std(k)
        })
        .flat_map(|p| [f64::from(p[0]), f64::from(p[1])])
        .collect();
    let t = 1e-3f64;
    let (a, h) = ((-t).exp(), -(-2.0 * t).exp_m1());
    let proj = project_all(
        gmm,
        a,
        h,
        &hallucinated,
        args.threads,
        Some("ridge SCMS of hallucinations"),
    )?;
    let pairs = nearest_neighbour_pairs(gmm);
    let mut csv =
        String::from("x,y,ridge_x,ridge_y,normal_distance,converged,stalled,nn_segment_distance\n");
    let mut distances = Vec::new();
    let mut on_segment = 0usize;
    for (p0, p) in hallucinated.chunks_exact(2).zip(&proj) {
        let seg = nn_segment_distance(gmm, &pairs, 1.0, p0);
        on_segment += usize::from(seg <= 5.0 * gmm.std(0));
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{seg}",
            p0[0], p0[1], p.point[0], p.point[1], p.normal_distance, p.converged, p.stalled
        );
        if p.converged && !p.stalled {
            distances.push(p.normal_distance);
        }
    }
    distances.sort_by(f64::total_cmp);
    write_atomic(&args.out.join("model_hallucinations.csv"), csv.as_bytes())?;
    let n_hal = hallucinated.len() / 2;
    println!(
        "{name}: {n_hal} of {} samples hallucinated; SCMS normal distance median {:.4}, q90 {:.4} ({} converged); {on_segment} within 5σ of a nearest-neighbour segment",
        args.model_samples,
        quantile(&distances, 0.5),
        quantile(&distances, 0.9),
        distances.len()
    );
    Ok(serde_json::json!({
        "model": name, "samples": args.model_samples, "hallucinated": n_hal, "converged": distances.len(),
        "normal_distance_median": quantile(&distances, 0.5), "normal_distance_q90": quantile(&distances, 0.9),
        "near_nn_segment": on_segment, "ridge_t_ou": t,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_command_with_a_model_writes_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.mrg");
        std::fs::write(&model, crate::cmd::es::tests::tiny_model(2)).unwrap();
        let args = RidgeArgs {
            out: dir.path().join("ridge"),
            paths: 50,
            steps: 100,
            dataset: "grid25".into(),
            tau: 9,
            grid: 6,
            model: Some(model),
            model_samples: 200,
            seed: 2,
            threads: 2,
        };
        run(&args).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(args.out.join("ridge.json")).unwrap()).unwrap();
        assert_eq!(
            json["toy"].as_array().unwrap().len(),
            Injection::TABLE.len()
        );
        assert_eq!(json["grid"]["seeds"], 36);
        assert_eq!(json["model"]["samples"], 200);
        for f in [
            "toy.csv",
            "phases.csv",
            "grid_ridge.csv",
            "ridge_phases.png",
            "grid_ridge.png",
            "model_hallucinations.csv",
        ] {
            assert!(args.out.join(f).exists(), "{f} missing");
        }
        let bad = RidgeArgs {
            dataset: "gauss1d-3".into(),
            model: None,
            ..args
        };
        assert!(format!("{:#}", run(&bad).unwrap_err()).contains("2D"));
    }
}
