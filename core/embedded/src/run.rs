//! The sampling loop shared by the Cortex-M4 binary and the host reference
//! (`core/examples/embedded_ref.rs` includes this file), so both print the same lines from the
//! same code: N trajectories of the paper's sampler (DDPM, fixed-large σ, ε-form, all T
//! steps) with Hal over the last K = 10 steps (Aithal et al. 2024; papers.md §1.2), each
//! line the sample, its Hal score and their f32 bit patterns.

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

/// Parses `bytes` and samples trajectories 0..n, writing one line per sample to `out`:
/// `sample <i> x <x0> <x1> hal <score> flagged <0|1> bits <x0 bits> <x1 bits> <hal bits>`.
///
/// # Errors
/// Parse errors, a model of the wrong dimension, too little scratch, sampler errors.
pub fn run<W: Write>(bytes: &[u8], n: u32, out: &mut W) -> Result<(), Error> {
    let file = ModelFile::parse(bytes)?;
    let weights = file.weights();
    let den: &dyn Denoiser = match &weights {
        ModelWeights::MlpF32(mlp) => mlp,
        ModelWeights::MlpQuant(q) => q,
        _ => return Err(Error::Unsupported("model kind in the embedded example")),
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
        let [a, b] = x;
        let flagged = u8::from(!threshold.is_nan() && Hal::flagged(score, threshold));
        // Writing to the semihosting console or a String cannot fail in a way we can act on.
        let _ = writeln!(
            out,
            "sample {sample} x {a:.6} {b:.6} hal {score:.6e} flagged {flagged} bits {:08x} {:08x} {:08x}",
            a.to_bits(),
            b.to_bits(),
            score.to_bits()
        );
    }
    Ok(())
}
