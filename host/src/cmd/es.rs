//! `mirage es`: exposure bias and Epsilon Scaling (Ning et al. 2024; papers.md §2, §6.2, D8).
//!
//! Writes, under `--out`:
//! - `recursions.json`: Δ entering the last steps (error model) and the perfect-denoiser ES
//!   variance table on N(0, 0.25) (cosine schedule, even respacing, β̃);
//! - `exposure.csv`: δ_t and the ε norms (chain vs q-noised) per step at λ = 1, per step count;
//! - `sweep.csv` / `sweep.json`: W1, hallucination rate and mode coverage for every sampler, step
//!   count and λ schedule, plus the automatic λ pick;
//! - `es_w1.png` (W1 against constant λ) and `exposure.png` (δ_t).
//!
//! Without `--model` the denoiser is the exact posterior mean of `--dataset` (default: the §2.4
//! toy ½N(±0.5, 0.1²)) on the ADM cosine schedule; with `--model` it is the trained MLP with the
//! schedule stored in the file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, ensure};
use clap::Args;
use mirage_core::schedule::{BetaSchedule, Schedule, Spacing, compute_tables, table_len};
use mirage_core::{Clip, Denoiser, ExactGmm, Method, Prediction, SamplerConfig, Variance};

use crate::analysis::es::exposure::{ExposureRow, exposure};
use crate::analysis::es::recursion::{StepVariance, es_variance_trace, excess_entering};
use crate::analysis::es::schedule64::{Betas, Respaced};
use crate::analysis::es::sweep::{LambdaSchedule, SweepConfig, SweepPoint, sweep};
use crate::data::{Dataset, Mixture, parse_mixture};
use crate::io::atomic::write_atomic;
use crate::plot::{Series, line_plot};
use crate::train::export::read_aligned;

/// Arguments of `mirage es`.
#[derive(Args, Debug)]
pub struct EsArgs {
    /// Trained model (.mrg); without it, the exact denoiser of --dataset on the cosine schedule.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Dataset (name or spec file). Default: the §2.4 toy ½N(±0.5, 0.1²), or grid25 with --model.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Output directory.
    #[arg(long, default_value = "runs/es")]
    pub out: PathBuf,
    /// Step counts T′ (ADM even spacing).
    #[arg(long, value_delimiter = ',', default_value = "10,20,50,100")]
    pub steps: Vec<usize>,
    /// Constant λ values to sweep (λ = 1 is the baseline).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,1.005,1.01,1.017,1.03,1.05,1.1,1.2"
    )]
    pub lambdas: Vec<f64>,
    /// Slopes k of linear schedules λ_i = b + k·i (i = respaced index, T′−1 first; D8), each with b = --linear-b.
    #[arg(long, value_delimiter = ',', default_value = "-0.001,0.0005,0.001")]
    pub linear_k: Vec<f64>,
    /// Intercept b of the linear schedules.
    #[arg(long, default_value_t = 1.0)]
    pub linear_b: f64,
    /// Also sweep DDIM (η = 0) besides DDPM with β̃.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ddim: bool,
    /// Clamp x̂0 to [−r, r] (default: 1 for the exact toy, none with --model).
    #[arg(long)]
    pub clip: Option<f32>,
    /// Samples per configuration.
    #[arg(long, default_value_t = 20_000)]
    pub samples: usize,
    /// Fresh data points for W1.
    #[arg(long, default_value_t = 20_000)]
    pub reference: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (0 = all cores; results do not depend on it).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

fn recursions_json() -> Result<serde_json::Value> {
    let mut excess = Vec::new();
    for (steps, phi) in [(20, 0.1), (20, 0.05), (100, 0.1)] {
        let s = Respaced::even(&Betas::COSINE, 1000, steps)?;
        let d = excess_entering(&s, phi)?;
        excess.push(serde_json::json!({"steps": steps, "phi": phi, "delta_entering_1": d[1], "delta_entering_0": d[0]}));
    }
    let mut variance = Vec::new();
    for steps in [20, 100] {
        let s = Respaced::even(&Betas::COSINE, 1000, steps)?;
        for lambda in [1.0, 1.005, 1.017, 1.05] {
            let v = es_variance_trace(&s, lambda, 0.25, StepVariance::FixedSmall)?[0];
            variance
                .push(serde_json::json!({"steps": steps, "lambda": lambda, "final_variance": v}));
        }
    }
    Ok(
        serde_json::json!({"schedule": "cosine T=1000, ADM even spacing, fixed-small", "excess": excess,
        "perfect_denoiser_es_variance_data_var_0_25": variance}),
    )
}

fn exposure_csv(rows: &[(usize, Vec<ExposureRow>)]) -> String {
    let mut csv = String::from(
        "steps,i,model_t,sqrt_beta_hat,sqrt_one_minus_alpha_bar_prev,delta,eps_norm_chain,eps_norm_q\n",
    );
    for (steps, rs) in rows {
        for r in rs {
            let _ = writeln!(
                csv,
                "{steps},{},{},{},{},{},{},{}",
                r.i,
                r.model_t,
                r.sqrt_beta_hat,
                r.sqrt_one_minus_alpha_bar_prev,
                r.delta,
                r.eps_norm_chain,
                r.eps_norm_q
            );
        }
    }
    csv
}

fn sweep_csv(points: &[SweepPoint]) -> String {
    let mut csv =
        String::from("method,steps,lambda_k,lambda_b,w1,hallucination_rate,mode_coverage\n");
    for p in points {
        let (k, b) = match p.lambda {
            LambdaSchedule::Constant { b } => (0.0, b),
            LambdaSchedule::Linear { k, b } => (k, b),
        };
        let _ = writeln!(
            csv,
            "{},{},{k},{b},{},{},{}",
            p.method, p.steps, p.w1, p.hallucination_rate, p.mode_coverage
        );
    }
    csv
}

#[allow(clippy::too_many_arguments)]
fn analyse<D: Denoiser + Sync>(
    args: &EsArgs,
    den: &D,
    betas: &BetaSchedule<'_>,
    train_steps: usize,
    data: &Mixture,
    clip: Clip,
) -> Result<()> {
    let threads = args.threads;
    let mut lambdas: Vec<LambdaSchedule> = args
        .lambdas
        .iter()
        .map(|&b| LambdaSchedule::Constant { b })
        .collect();
    lambdas.extend(args.linear_k.iter().map(|&k| LambdaSchedule::Linear {
        k,
        b: args.linear_b,
    }));
    let mut methods = vec![Method::Ddpm(Variance::FixedSmall)];
    if args.ddim {
        methods.push(Method::Ddim { eta: 0.0 });
    }
    let cfg = SweepConfig {
        methods,
        steps: args.steps.clone(),
        lambdas,
        clip,
        samples: args.samples,
        reference: args.reference,
        seed: args.seed,
        threads,
    };
    let (points, picks) = sweep(den, betas, train_steps, data, &cfg, true)?;

    let real = Dataset::generate(data.clone(), args.samples, args.seed ^ 0x4558_504f);
    let mut exposure_rows = Vec::new();
    for &steps in &args.steps {
        let mut tables = vec![0.0f32; table_len(steps)];
        compute_tables(betas, train_steps, &Spacing::Linspace, steps, &mut tables)
            .map_err(|e| anyhow!("schedule: {e}"))?;
        let sched = Schedule::from_tables(&tables, steps).map_err(|e| anyhow!("schedule: {e}"))?;
        let sampler = SamplerConfig {
            method: Method::Ddpm(Variance::FixedSmall),
            prediction: den.prediction(),
            clip,
            eps_scaling: mirage_core::EpsilonScaling::Off,
        };
        eprintln!("es: exposure metric at T'={steps}");
        exposure_rows.push((
            steps,
            exposure(den, &sched, &sampler, real.points(), args.seed, threads)?,
        ));
    }

    let out = &args.out;
    write_atomic(
        &out.join("recursions.json"),
        serde_json::to_vec_pretty(&recursions_json()?)?.as_slice(),
    )?;
    write_atomic(
        &out.join("exposure.csv"),
        exposure_csv(&exposure_rows).as_bytes(),
    )?;
    write_atomic(&out.join("sweep.csv"), sweep_csv(&points).as_bytes())?;
    let summary = serde_json::json!({"dataset": data.name(), "points": points, "picks": picks});
    write_atomic(
        &out.join("sweep.json"),
        serde_json::to_vec_pretty(&summary)?.as_slice(),
    )?;
    plot_w1(&out.join("es_w1.png"), &points)?;
    let series: Vec<Series> = exposure_rows
        .iter()
        .map(|(steps, rs)| Series {
            name: format!("T'={steps}"),
            points: rs.iter().map(|r| (r.i as f64, r.delta)).collect(),
        })
        .collect();
    line_plot(
        &out.join("exposure.png"),
        &series,
        "respaced step i (state after step i)",
        "delta_t",
        true,
        "Exposure metric delta_t (lambda = 1)",
    )?;
    println!("method        T'   best λ            W1        baseline W1");
    for p in &picks {
        println!(
            "{:<13} {:<4} {:<17} {:<9.5} {}",
            p.method,
            p.steps,
            p.best.label(),
            p.w1,
            p.baseline_w1.map_or("-".into(), |w| format!("{w:.5}"))
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn plot_w1(path: &Path, points: &[SweepPoint]) -> Result<()> {
    let mut series: Vec<Series> = Vec::new();
    for p in points {
        let LambdaSchedule::Constant { b } = p.lambda else {
            continue;
        };
        let name = format!("{} T'={}", p.method, p.steps);
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((b, p.w1)),
            None => series.push(Series {
                name,
                points: vec![(b, p.w1)],
            }),
        }
    }
    line_plot(
        path,
        &series,
        "lambda (constant)",
        "W1 to fresh data",
        true,
        "Epsilon Scaling sweep",
    )
}

/// Runs `mirage es`.
///
/// # Errors
/// Bad options, an unreadable model or dataset, a model/dataset dimension mismatch, core errors
/// and unwritable outputs, each named.
pub fn run(args: &EsArgs) -> Result<()> {
    ensure!(
        args.samples >= 2 && args.reference >= 1,
        "--samples must be ≥ 2 and --reference ≥ 1"
    );
    ensure!(
        !args.steps.is_empty() && args.steps.iter().all(|&s| s >= 1),
        "--steps needs positive step counts"
    );
    ensure!(
        args.lambdas
            .iter()
            .chain(&[args.linear_b])
            .all(|l| l.is_finite() && *l > 0.0),
        "λ values must be finite and positive"
    );
    match &args.model {
        Some(path) => {
            let name = path.display().to_string();
            let data = parse_mixture(args.dataset.as_deref().unwrap_or("grid25"))?;
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
            let clip = args.clip.map_or(Clip::None, Clip::Symmetric);
            analyse(args, &mlp, &header.beta, header.train_steps, &data, clip)
        }
        None => {
            let data = match &args.dataset {
                Some(d) => parse_mixture(d)?,
                None => Mixture::isotropic("es-toy", 1, &[-0.5, 0.5], 0.1)?,
            };
            let mut full = vec![0.0f32; table_len(1000)];
            compute_tables(
                &BetaSchedule::COSINE,
                1000,
                &Spacing::Linspace,
                1000,
                &mut full,
            )
            .map_err(|e| anyhow!("schedule: {e}"))?;
            let sched = Schedule::from_tables(&full, 1000).map_err(|e| anyhow!("schedule: {e}"))?;
            let den = ExactGmm::new(
                data.dim(),
                data.means(),
                data.stds(),
                data.weights(),
                sched,
                Prediction::Epsilon,
            )
            .map_err(|e| {
                anyhow!(
                    "dataset {}: cannot build the exact denoiser: {e}",
                    data.name()
                )
            })?;
            let clip = Clip::Symmetric(args.clip.unwrap_or(1.0));
            analyse(args, &den, &BetaSchedule::COSINE, 1000, &data, clip)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::train::export::to_mrg;
    use mirage_core::MlpShape;

    /// A small random ε-MLP on T = 50 steps of the paper's linear schedule, as `.mrg` bytes.
    pub(crate) fn tiny_model(dim: usize) -> Vec<u8> {
        let shape = MlpShape {
            dim,
            width: 8,
            blocks: 1,
            temb_dim: 8,
        };
        let params: Vec<f32> = (0..shape.param_count())
            .map(|i| ((i * 7919 % 200) as f32 - 100.0) * 1e-3)
            .collect();
        let mut tables = vec![0.0f32; table_len(50)];
        compute_tables(
            &BetaSchedule::PAPER,
            50,
            &Spacing::Linspace,
            50,
            &mut tables,
        )
        .unwrap();
        to_mrg(shape, 50, BetaSchedule::PAPER, &tables, &params).unwrap()
    }

    #[test]
    fn model_sweep_writes_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.mrg");
        std::fs::write(&model, tiny_model(1)).unwrap();
        let args = EsArgs {
            model: Some(model),
            dataset: Some("gauss1d-3".into()),
            out: dir.path().join("es"),
            steps: vec![5, 10],
            lambdas: vec![1.0, 1.05],
            linear_k: vec![0.001],
            linear_b: 1.0,
            ddim: true,
            clip: None,
            samples: 300,
            reference: 300,
            seed: 1,
            threads: 2,
        };
        run(&args).unwrap();
        let sweep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(args.out.join("sweep.json")).unwrap()).unwrap();
        // 2 samplers × 2 step counts × 3 λ schedules, and one pick per (sampler, T′).
        assert_eq!(sweep["points"].as_array().unwrap().len(), 12);
        assert_eq!(sweep["picks"].as_array().unwrap().len(), 4);
        let exposure = std::fs::read_to_string(args.out.join("exposure.csv")).unwrap();
        assert_eq!(exposure.lines().count(), 1 + 5 + 10);
        for f in ["recursions.json", "sweep.csv", "es_w1.png", "exposure.png"] {
            assert!(args.out.join(f).exists(), "{f} missing");
        }
        // A 2D dataset against a 1D model is a clear error.
        let bad = EsArgs {
            dataset: Some("grid25".into()),
            ..args
        };
        assert!(format!("{:#}", run(&bad).unwrap_err()).contains("dimension"));
    }
}
