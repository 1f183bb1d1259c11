//! # mirage-tests
//!
//! Differential tests across mirage's paths. Every path samples the same model with the
//! same counter-based noise (core `noise`, keyed by seed, sample index, step and
//! dimension), so sample k of one path and sample k of another follow the same
//! trajectory up to rounding. A [`SamplingPath`] is one way to draw those samples:
//!
//! | path | what runs |
//! |---|---|
//! | [`CorePath`] | core's `sample_trajectory` per sample (the microcontroller's code) |
//! | [`HostPath`] | the host's batched GEMM sampler (`mirage sample`) |
//! | [`GpuPath`] | wgpu compute shaders (`mirage sample --backend gpu`) |
//!
//! The fixed-point path is [`CorePath`] over a `QuantMlp` (any core `Denoiser` plugs in).
//! [`agreement`] applies the whole-trajectory criteria of design.md §4.
//! [`CorePath::draw_postvar`] draws the same samples with core's posterior-variance detector
//! (papers.md §9), the reference for the GPU's fused score ([`max_relative_difference`]).

use mirage_core::detector::PostVarConfig;
use mirage_core::detector::posterior_variance::scratch_len;
use mirage_core::schedule::Schedule;
use mirage_core::{
    Denoiser, Detector, Hal, Mlp, PosteriorVariance, SamplerConfig, sample_trajectory,
    trajectory_scratch_len,
};
use mirage_host::sample::{BatchDenoiser, SampleOptions, sample_batch};
use mirage_host::train::Layout;

/// Samples and Hal scores of n trajectories (sample k at `samples[k·dim..]`).
#[derive(Clone, Debug)]
pub struct Drawn {
    /// Data dimension.
    pub dim: usize,
    /// Final samples, back to back.
    pub samples: Vec<f32>,
    /// Hal per sample.
    pub hal: Vec<f32>,
}

/// One way of drawing samples `0..n` of seed `seed`.
pub trait SamplingPath {
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// Draws samples `0..n`.
    ///
    /// # Errors
    /// Whatever the path reports, as text.
    fn draw(&self, seed: u64, n: usize) -> Result<Drawn, String>;
}

/// core's per-sample trajectory (f32 MLP, fixed point, or the exact mixture).
pub struct CorePath<'a, D: Denoiser + Sync> {
    /// The denoiser.
    pub den: &'a D,
    /// Respaced schedule.
    pub schedule: Schedule<'a>,
    /// Sampler configuration.
    pub cfg: SamplerConfig,
    /// Hal window K.
    pub window: usize,
}

impl<D: Denoiser + Sync> CorePath<'_, D> {
    /// Runs sample `index` of seed `seed` through core's `sample_trajectory`, feeding `det`.
    fn trajectory<T: Detector>(
        &self,
        seed: u64,
        index: u32,
        x: &mut [f32],
        x0: &mut [f32],
        det: &mut T,
        scratch: &mut [f32],
    ) -> Result<(), String> {
        sample_trajectory(
            self.den,
            &self.schedule,
            &self.cfg,
            seed,
            index,
            x,
            x0,
            det,
            scratch,
        )
        .map_err(|e| e.to_string())
    }
}

impl<D: Denoiser + Sync> SamplingPath for CorePath<'_, D> {
    fn name(&self) -> &'static str {
        "core"
    }

    fn draw(&self, seed: u64, n: usize) -> Result<Drawn, String> {
        let dim = self.den.dim();
        let mut samples = vec![0.0f32; n * dim];
        let mut hal = vec![0.0f32; n];
        let mut x0 = vec![0.0f32; dim];
        let mut state = vec![0.0f32; Hal::state_len(1, dim)];
        let mut scratch = vec![0.0f32; trajectory_scratch_len(self.den.scratch_len(), dim)];
        for (k, (x, h)) in samples.chunks_exact_mut(dim).zip(&mut hal).enumerate() {
            let mut det = Hal::new(self.window, dim, &mut state).map_err(|e| e.to_string())?;
            let index = u32::try_from(k).map_err(|e| e.to_string())?;
            self.trajectory(seed, index, x, &mut x0, &mut det, &mut scratch)?;
            det.scores(std::slice::from_mut(h))
                .map_err(|e| e.to_string())?;
        }
        Ok(Drawn { dim, samples, hal })
    }
}

/// Samples and posterior-variance scores of n trajectories.
#[derive(Clone, Debug)]
pub struct PostVarDrawn {
    /// Final samples, back to back.
    pub samples: Vec<f32>,
    /// tr J (or tr Cov) per sample.
    pub trace: Vec<f32>,
    /// ‖J‖_F (or its Cov scaling) per sample.
    pub frobenius: Vec<f32>,
}

impl<D: Denoiser + Sync> CorePath<'_, D> {
    /// Draws samples `0..n` of seed `seed` with core's `PosteriorVariance` (configured by
    /// `config`, probe indices = sample indices) fed by the sampler.
    ///
    /// # Errors
    /// Whatever core reports, as text.
    pub fn draw_postvar(
        &self,
        seed: u64,
        n: usize,
        config: PostVarConfig,
    ) -> Result<PostVarDrawn, String> {
        let dim = self.den.dim();
        let mut out = PostVarDrawn {
            samples: vec![0.0f32; n * dim],
            trace: vec![0.0f32; n],
            frobenius: vec![0.0f32; n],
        };
        let mut x0 = vec![0.0f32; dim];
        let mut scratch = vec![0.0f32; trajectory_scratch_len(self.den.scratch_len(), dim)];
        let mut pv_scratch = vec![0.0f32; scratch_len(self.den.scratch_len(), dim, 1)];
        let rows = out
            .samples
            .chunks_exact_mut(dim)
            .zip(out.trace.iter_mut().zip(out.frobenius.iter_mut()));
        for (k, (x, (t, f))) in rows.enumerate() {
            let index = u32::try_from(k).map_err(|e| e.to_string())?;
            let mut state = [0.0f32; 2];
            let mut det = PosteriorVariance::new(
                self.den,
                self.schedule,
                config,
                index,
                &mut state,
                &mut pv_scratch,
            )
            .map_err(|e| e.to_string())?;
            self.trajectory(seed, index, x, &mut x0, &mut det, &mut scratch)?;
            det.scores(std::slice::from_mut(t), std::slice::from_mut(f))
                .map_err(|e| e.to_string())?;
        }
        Ok(out)
    }
}

/// max_k |b_k − a_k| / max(|a_k|, floor) over the entries finite in `a` (reference), and the
/// number of entries where exactly one of the two is finite.
#[must_use]
pub fn max_relative_difference(a: &[f32], b: &[f32], floor: f32) -> (f64, usize) {
    let mut worst = 0.0f64;
    let mut finiteness = 0usize;
    for (&p, &q) in a.iter().zip(b) {
        if p.is_finite() != q.is_finite() {
            finiteness += 1;
        } else if p.is_finite() {
            let scale = f64::from(p.abs().max(floor));
            worst = worst.max(f64::from((q - p).abs()) / scale);
        }
    }
    (worst, finiteness)
}

/// The host's batched GEMM sampler.
pub struct HostPath<'a> {
    /// The f32 network.
    pub mlp: Mlp<'a>,
    /// Respaced schedule.
    pub schedule: Schedule<'a>,
    /// Sampler configuration.
    pub cfg: SamplerConfig,
    /// Hal window K.
    pub window: usize,
}

impl SamplingPath for HostPath<'_> {
    fn name(&self) -> &'static str {
        "host"
    }

    fn draw(&self, seed: u64, n: usize) -> Result<Drawn, String> {
        let layout = Layout::new(self.mlp.shape()).map_err(|e| e.to_string())?;
        let den = BatchDenoiser::Mlp {
            layout: &layout,
            params: self.mlp.params(),
            prediction: self.cfg.prediction,
        };
        let opts = SampleOptions {
            hal_window: self.window,
            ..SampleOptions::new(seed)
        };
        let out = sample_batch(&den, &self.schedule, &self.cfg, n, &opts, None)
            .map_err(|e| format!("{e:#}"))?;
        Ok(Drawn {
            dim: out.dim,
            samples: out.samples,
            hal: out.hal,
        })
    }
}

/// The wgpu path.
pub struct GpuPath<'a> {
    /// A sampler built on the adapter under test.
    pub sampler: &'a mirage_gpu::GpuSampler,
    /// Data dimension.
    pub dim: usize,
}

impl SamplingPath for GpuPath<'_> {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn draw(&self, seed: u64, n: usize) -> Result<Drawn, String> {
        self.draw_with_postvar(seed, n).map(|(drawn, _)| drawn)
    }
}

impl GpuPath<'_> {
    /// [`SamplingPath::draw`], plus the fused posterior-variance scores when the sampler
    /// has them (`GpuSampler::with_postvar`).
    ///
    /// # Errors
    /// Whatever the GPU path reports, as text.
    pub fn draw_with_postvar(
        &self,
        seed: u64,
        n: usize,
    ) -> Result<(Drawn, Option<PostVarDrawn>), String> {
        let out = self.sampler.sample(seed, 0, n).map_err(|e| e.to_string())?;
        let postvar = out.postvar.map(|pv| PostVarDrawn {
            samples: out.samples.clone(),
            trace: pv.trace,
            frobenius: pv.frobenius,
        });
        let drawn = Drawn {
            dim: self.dim,
            samples: out.samples,
            hal: out.hal,
        };
        Ok((drawn, postvar))
    }
}

/// How two draws of the same samples agree (design.md §4, whole trajectories).
#[derive(Clone, Copy, Debug)]
pub struct Agreement {
    /// Fraction of samples whose coordinates all differ by at most `tol`.
    pub within: f64,
    /// Largest coordinate difference.
    pub max_abs: f32,
    /// Fraction of samples whose nearest mode differs.
    pub mode_flips: f64,
    /// Jaccard index of the flagged sets (Hal above the threshold, or non-finite).
    pub jaccard: f64,
}

/// Compares draw `b` against reference `a`: `tol` for coordinates, `modes` (k×dim) for
/// nearest-mode flips, `threshold` for the flagged sets.
#[must_use]
pub fn agreement(a: &Drawn, b: &Drawn, tol: f32, modes: &[f32], threshold: f32) -> Agreement {
    let d = a.dim;
    let n = a.hal.len().max(1);
    let mut within = 0usize;
    let mut flips = 0usize;
    let mut max_abs = 0.0f32;
    for (xa, xb) in a.samples.chunks_exact(d).zip(b.samples.chunks_exact(d)) {
        let diff = xa
            .iter()
            .zip(xb)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        max_abs = max_abs.max(diff);
        within += usize::from(diff <= tol);
        flips += usize::from(nearest(modes, d, xa) != nearest(modes, d, xb));
    }
    // Flagged: above the threshold, or not finite (NaN compares false).
    let flag = |h: f32| h > threshold || !h.is_finite();
    let (mut both, mut either) = (0usize, 0usize);
    for (&ha, &hb) in a.hal.iter().zip(&b.hal) {
        both += usize::from(flag(ha) && flag(hb));
        either += usize::from(flag(ha) || flag(hb));
    }
    Agreement {
        within: within as f64 / n as f64,
        max_abs,
        mode_flips: flips as f64 / n as f64,
        jaccard: if either == 0 {
            1.0
        } else {
            both as f64 / either as f64
        },
    }
}

/// Index of the mode (rows of `modes`, `d` wide) nearest to `x`.
#[must_use]
pub fn nearest(modes: &[f32], d: usize, x: &[f32]) -> usize {
    modes
        .chunks_exact(d)
        .map(|m| m.iter().zip(x).map(|(p, q)| (p - q) * (p - q)).sum::<f32>())
        .enumerate()
        .fold(
            (0, f32::INFINITY),
            |best, (k, v)| if v < best.1 { (k, v) } else { best },
        )
        .0
}
