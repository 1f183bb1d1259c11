//! `mirage`: find and filter hallucinations of diffusion models.
//!
//! Results go to stdout, progress to stderr; usage errors exit with code 2, runtime
//! errors with code 1 and a message that says what was wrong.

use clap::{Parser, Subcommand};
use mirage_host::cmd;

#[derive(Parser)]
#[command(name = "mirage", version, about = "Find and filter hallucinations of diffusion models", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the paper's ε-prediction MLP on a dataset (resumable; .mrg / safetensors out).
    Train(cmd::train::TrainArgs),
    /// Sample with Hal scores from the exact mixture denoiser or a .mrg model.
    Sample(cmd::sample::SampleArgs),
    /// Throughput benchmarks against the machine's sgemm rate.
    Bench(cmd::bench::BenchArgs),
    /// Image experiments (Simple Shapes, digits) with a CPU U-Net: hallucination, filter, recursive.
    Images(cmd::images::ImagesArgs),
    /// Exposure bias and Epsilon Scaling: error recursions, δ_t, ε norms and the λ sweep.
    Es(cmd::es::EsArgs),
    /// Critical windows: noise-then-denoise P(stay) vs closed forms, hierarchy, last-switch table.
    Windows(cmd::windows::WindowsArgs),
    /// Log-density ridge: error-injection toy phases, SCMS ridge of a grid, model hallucinations.
    Ridge(cmd::ridge::RidgeArgs),
    /// Post-training quantisation of an f32 .mrg to q8/q16 fixed point, with a per-layer error report.
    Quantize(cmd::quantize::QuantizeArgs),
    /// Hallucination rate (D1/D2) vs training-set size and training steps, against the exact denoiser.
    Hallucination(cmd::hallucination::HallucinationArgs),
    /// Every detector (Hal, path length, posterior variance, k-NN) scored by D5: table, ROC, by-step AUROC.
    Filter(cmd::filter::FilterArgs),
    /// Self-consuming training for several generations: Hal filter vs random vs none (resumable).
    Recursive(cmd::recursive::RecursiveArgs),
    /// The newcomer's tour: train a small grid25 model, sample, label, score and filter (minutes).
    Demo(cmd::demo::DemoArgs),
}

/// Keeps freed memory in glibc's heap instead of returning it to the kernel: the U-Net
/// allocates and frees megabytes of activations per pass, and with glibc's defaults
/// (mmap above 128 KiB, heap trimmed above 128 KiB free) page faults and page clearing
/// took 15% of a training profile. Thresholds: mmap above 64 MiB, trim above 256 MiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets two allocator parameters; it runs before any other thread
    // exists and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() {
    keep_freed_memory();
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Train(args) => cmd::train::run(&args),
        Command::Sample(args) => cmd::sample::run(&args),
        Command::Bench(args) => cmd::bench::run(&args),
        Command::Images(args) => cmd::images::run(&args),
        Command::Es(args) => cmd::es::run(&args),
        Command::Windows(args) => cmd::windows::run(&args),
        Command::Ridge(args) => cmd::ridge::run(&args),
        Command::Quantize(args) => cmd::quantize::run(&args),
        Command::Hallucination(args) => cmd::hallucination::run(&args),
        Command::Filter(args) => cmd::filter::run(&args),
        Command::Recursive(args) => cmd::recursive::run(&args),
        Command::Demo(args) => cmd::demo::run(&args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
