//! The sampling loop shared by the Cortex-M4 binary and the host reference
//! (`core/examples/embedded_ref.rs` includes this file), so both print the same lines from the
//! same code: N trajectories of the paper's sampler (DDPM, fixed-large σ, ε-form, all T
//! steps) with Hal over the last K = 10 steps (Aithal et al. 2024; papers.md §1.2), each
//! line the sample's and the Hal score's f32 bit patterns (exact, and without core's float
//! formatting, which would take 13 KB of flash).

use core::fmt::Write;

use mirage_core::detector::HalSingle;
use mirage_core::format::{ModelFile, ModelWeights};
use mirage_core::{Denoiser, Error, Hal, SamplerConfig, sample_trajectory, trajectory_scratch_len};

/// Data dimension the example is built for (the paper's 2D grid).
pub const DIM: usize = 2;
/// f32 scratch the trajectory may use (the f32 W = 128 MLP needs 902, the fixed one 648).
pub const SCRATCH: usize = 1024;
/// Master seed of the noise (papers.md §7 D7).
pub const SEED: u64 = 1234;

/// The weight formats a build accepts. The Cortex-M4 binary accepts only its embedded
/// model's, so the other network's code is not linked into its flash; the host accepts both.
#[derive(Clone, Copy, Debug)]
pub struct Kinds {
    /// f32 MLP files (kind 1).
    pub f32: bool,
    /// q8 / q16 MLP files (kinds 2, 3).
    pub fixed: bool,
}

/// Parses `bytes` and samples trajectories 0..n, writing one line per sample to `out`:
/// `sample <i> x <x0 bits> <x1 bits> hal <score bits> flagged <0|1>` (hex f32 bits). If
/// `clock` gives counts, each line is followed by `cost <i> <count>`: the clock's advance over
/// the trajectory and its Hal score.
///
/// # Errors
/// Parse errors, a model kind outside `kinds` or of the wrong dimension, too little
/// scratch, sampler errors (a missing schedule table among them).
pub fn run<W: Write>(
    bytes: &[u8],
    n: u32,
    kinds: Kinds,
    clock: fn() -> Option<u64>,
    out: &mut W,
) -> Result<(), Error> {
    let file = ModelFile::parse(bytes)?;
    let weights = file.weights();
    let den: &dyn Denoiser = match &weights {
        ModelWeights::MlpF32(mlp) if kinds.f32 => mlp,
        ModelWeights::MlpQuant(q) if kinds.fixed => q,
        _ => return Err(Error::Unsupported("model kind in this build")),
    };
    if den.dim() != DIM {
        return Err(Error::BadDimension(
            "the embedded example is built for dim 2",
        ));
    }
    if trajectory_scratch_len(den.scratch_len(), DIM) > SCRATCH {
        return Err(Error::BufferTooSmall("embedded scratch"));
    }
    let schedule = file.schedule();
    let cfg = SamplerConfig::PAPER;
    let threshold = file.header().hal_threshold;
    let mut scratch = [0.0f32; SCRATCH];
    let mut hal = HalSingle::<DIM>::new(Hal::PAPER_WINDOW)?;
    for sample in 0..n {
        let (mut x, mut x0) = ([0.0f32; DIM], [0.0f32; DIM]);
        let start = clock();
        sample_trajectory(
            den,
            &schedule,
            &cfg,
            SEED,
            sample,
            &mut x,
            &mut x0,
            &mut hal,
            &mut scratch,
        )?;
        let score = hal.score()?;
        let cost = clock()
            .zip(start)
            .map(|(end, start)| end.wrapping_sub(start));
        let [a, b] = x.map(f32::to_bits);
        let flagged = u8::from(!threshold.is_nan() && Hal::flagged(score, threshold));
        // Writing to the semihosting console or a String cannot fail in a way we can act on.
        let _ = writeln!(
            out,
            "sample {sample} x {a:08x} {b:08x} hal {:08x} flagged {flagged}",
            score.to_bits()
        );
        if let Some(cost) = cost {
            // Printed as u32 (saturating; 2³² ticks are far beyond any run): u64 formatting
            // would add 1 KB of flash.
            let cost = u32::try_from(cost).unwrap_or(u32::MAX);
            let _ = writeln!(out, "cost {sample} {cost}");
        }
    }
    Ok(())
}
