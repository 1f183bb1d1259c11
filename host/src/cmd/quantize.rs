//! `mirage quantize`: post-training quantisation of an f32 `.mrg` into a q8 or q16 `.mrg`
//! (kinds 2 and 3; fixed-point network in `mirage_core::quant`), with a per-layer error
//! report against the f32 network on calibration-independent trajectories. `--tables sampler`
//! keeps only the schedule tables the paper's sampler reads (the int8 2D model then fits a
//! 128 KB flash).

use std::path::PathBuf;

use anyhow::{Result, anyhow, ensure};
use clap::{Args, ValueEnum};

use crate::io::atomic::write_atomic;
use crate::quant::{
    ErrorMode, LayerError, layer_errors, quantize_file_with_tables, ranges, read_model,
    trajectory_states,
};
use mirage_core::SamplerConfig;
use mirage_core::format::ModelFile;
use mirage_core::quant::QuantKind;

/// Fixed-point formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    /// Kind 2: i8 weights (per-channel), i16 activations.
    Q8,
    /// Kind 3: i16 weights (per-channel), i16 activations.
    Q16,
}

/// Which schedule tables the written model stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TablesArg {
    /// All 18 tables of the input (any sampler configuration works).
    All,
    /// Only the tables the paper's sampler reads (DDPM, fixed-large σ, no clipping, no
    /// Epsilon Scaling, the model's prediction type; Hal reads none): five tables, 20 KB
    /// instead of 72 KB at T = 1000, for a microcontroller's flash. Other samplers refuse
    /// such a file with a missing-table error.
    Sampler,
}

/// Arguments of `mirage quantize`.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The f32 model (.mrg, kind 1).
    pub input: PathBuf,
    /// Where to write the fixed-point model (written atomically).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Fixed-point format.
    #[arg(long, value_enum, default_value_t = KindArg::Q8)]
    pub kind: KindArg,
    /// Calibration trajectories (each contributes its states x_t, one per --stride steps).
    #[arg(long, default_value_t = 8)]
    pub calib_trajectories: u32,
    /// Keep every n-th state of a trajectory for calibration and evaluation.
    #[arg(long, default_value_t = 2)]
    pub stride: usize,
    /// Evaluation trajectories for the error report (drawn with seed + 1: independent of
    /// the calibration states).
    #[arg(long, default_value_t = 4)]
    pub eval_trajectories: u32,
    /// Schedule tables to store.
    #[arg(long, value_enum, default_value_t = TablesArg::All)]
    pub tables: TablesArg,
    /// Seed of the calibration trajectories.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Print the error report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `mirage quantize`.
///
/// # Errors
/// Unreadable or non-f32 input, quantiser refusals, unwritable output.
pub fn run(args: &QuantizeArgs) -> Result<()> {
    ensure!(
        args.calib_trajectories >= 1,
        "--calib-trajectories must be at least 1"
    );
    let kind = match args.kind {
        KindArg::Q8 => QuantKind::Q8,
        KindArg::Q16 => QuantKind::Q16,
    };
    let bytes = read_model(&args.input)?;
    let file = bytes.model(&args.input.display().to_string())?;
    let mlp = crate::train::export::f32_mlp(&file, &args.input.display().to_string())?;
    let schedule = file.schedule();
    let calib = trajectory_states(
        &mlp,
        &schedule,
        args.calib_trajectories,
        args.seed,
        args.stride,
    )?;
    let r = ranges(&mlp, &calib)?;
    let tables = match args.tables {
        TablesArg::All => file.header().tables,
        TablesArg::Sampler => SamplerConfig {
            prediction: file.header().prediction,
            ..SamplerConfig::PAPER
        }
        .tables(),
    };
    let out = quantize_file_with_tables(&file, &r, kind, tables)?;
    let eval_seed = args.seed.wrapping_add(1);
    let eval = trajectory_states(
        &mlp,
        &schedule,
        args.eval_trajectories,
        eval_seed,
        args.stride,
    )?;
    let aligned = crate::train::export::AlignedBytes::new(&out);
    let qfile = ModelFile::parse(aligned.bytes())
        .map_err(|e| anyhow!("internal: written model does not parse: {e}"))?;
    let q = qfile.quant_mlp().map_err(|e| anyhow!("internal: {e}"))?;
    let report = |mode| {
        if eval.is_empty() {
            Ok(Vec::new())
        } else {
            layer_errors(&mlp, &q, &eval, mode)
        }
    };
    let (isolated, chained) = (report(ErrorMode::Isolated)?, report(ErrorMode::Chained)?);
    write_atomic(&args.out, &out)?;
    eprintln!(
        "{}: {:?} model, {} bytes ({} f32 bytes before); calibrated on {} states, errors on {} states (seed {eval_seed})",
        args.out.display(),
        kind,
        out.len(),
        file.file_len(),
        calib.len(),
        eval.len()
    );
    if args.json {
        let json = serde_json::json!({ "isolated": isolated, "chained": chained });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_report(&isolated, &chained);
    }
    Ok(())
}

/// Relative RMS per activation: isolated (each layer fed the f32 input: its own error) and
/// chained (the fixed-point path end to end).
fn print_report(isolated: &[LayerError], chained: &[LayerError]) {
    println!(
        "{:<24} {:>14} {:>14} {:>12}",
        "activation", "isolated RMS", "chained RMS", "chained max"
    );
    for (i, c) in isolated.iter().zip(chained) {
        println!(
            "{:<24} {:>14.3e} {:>14.3e} {:>12.3e}",
            i.name, i.rel_rms, c.rel_rms, c.max_abs
        );
    }
}
