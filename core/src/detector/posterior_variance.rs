//! The Tweedie posterior-variance score (papers.md §9 D11–D14, this project's detector).
//!
//! With x_t = a·x0 + b·ε (a = √ᾱ_t, b² = 1 − ᾱ_t) and x̂0 = E[x0 | x_t], Tweedie's formula
//! gives Cov[x0 | x_t] = (b²/a)·J_t with J_t = ∂x̂0/∂x_t. The score is
//!
//! ```text
//! tr J_t            (Scale::Jacobian)     or   (b²/a)·tr J_t = tr Cov   (Scale::Covariance)
//! ‖J_t‖_F           the Frobenius variant, same scale
//! ```
//!
//! read at a set of final sampler steps ([`StepSet`], default i = 0 only) and summed over
//! them. A mode of variance σ² gives J = (aσ²/v)·I, v = a²σ² + b² (≈ 0.71 per dimension at
//! t = 0 for σ = 0.05); between modes the denoiser is a steep step and tr J is large.
//!
//! J·u comes from one forward-mode tangent pass of the network ([`Denoiser::predict_jvp`]),
//! turned into the x̂0 tangent with the sampler's own tables (papers.md §9 D12):
//!
//! ```text
//! ε-prediction:  ẋ0 = InvSqrtAlphaBar·u − SqrtRecipAlphaBarMinusOne·ε̇       ((u − b·ε̇)/a)
//! v-prediction:  ε̇ = a·v̇ + b·u, then as above
//! x0-prediction: ẋ0 = the tangent itself
//! ```
//!
//! The trace is exact with d passes (u = e_1 … e_d, d ≤ [`MAX_EXACT_DIM`]) or Hutchinson's
//! estimate (1/m) Σ_p z_pᵀ J z_p with m Rademacher probes z_p from core's counter-based noise
//! ([`rademacher`]`(seed, sample, p, dim)`, so every path draws the same probes; the same
//! probes at every step of the set). ‖J‖_F² is Σ_j ‖J e_j‖² (exact) or (1/m) Σ_p ‖J z_p‖²
//! (unbiased, since E[zzᵀ] = I). Per-direction sums are accumulated in f64.
//!
//! Epsilon Scaling (papers.md §2) is not applied: the score is a property of the denoiser,
//! not of the sampler's λ-scaled update.
//!
//! A non-finite x_t, x̂0 or tangent makes the sample's score +∞ (until reset), which
//! [`crate::detector::flagged`] always flags.

use super::{Detector, WindowCursor, check_batch};
use crate::denoiser::Denoiser;
use crate::error::Error;
use crate::math;
use crate::noise::rademacher;
use crate::sampler::Prediction;
use crate::schedule::{Schedule, Table, TableSet};

/// Largest dimension the exact trace handles (d tangent passes per sample and step).
pub const MAX_EXACT_DIM: usize = 64;

/// Samples processed per tangent pass (one `predict_jvp` call over the block); bounds the
/// scratch and the f64 accumulators on the stack.
pub const BLOCK: usize = 64;

/// How tr J (and ‖J‖_F) are obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEstimator {
    /// d passes with the unit vectors: exact up to rounding; d ≤ [`MAX_EXACT_DIM`].
    Exact,
    /// Hutchinson's estimator with `probes` Rademacher probes drawn with `seed`.
    Hutchinson {
        /// Number of probes m (≥ 1).
        probes: u32,
        /// Noise seed of the probes.
        seed: u64,
    },
}

impl TraceEstimator {
    /// Tangent passes per sample and step: d (exact) or m (Hutchinson).
    pub fn passes(&self, dim: usize) -> usize {
        match self {
            Self::Exact => dim,
            Self::Hutchinson { probes, .. } => *probes as usize,
        }
    }

    /// Checks the estimator against the data dimension.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `dim == 0` or 0 probes; [`Error::CapacityExceeded`] for
    /// the exact trace above [`MAX_EXACT_DIM`].
    pub fn validate(&self, dim: usize) -> Result<(), Error> {
        if dim == 0 {
            return Err(Error::InvalidParameter(
                "posterior variance dim must be at least 1",
            ));
        }
        match self {
            Self::Exact if dim > MAX_EXACT_DIM => Err(Error::CapacityExceeded(
                "exact posterior-variance trace: dim above MAX_EXACT_DIM = 64 (use Hutchinson)",
            )),
            Self::Hutchinson { probes: 0, .. } => Err(Error::InvalidParameter(
                "Hutchinson probes must be at least 1",
            )),
            _ => Ok(()),
        }
    }
}

/// The unit of the score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// tr J_t and ‖J_t‖_F (dimensionless; 1 per dimension means "no contraction").
    Jacobian,
    /// tr Cov[x0 | x_t] = (b²/a)·tr J_t and (b²/a)·‖J_t‖_F (data units squared).
    Covariance,
}

/// A set of sampler step indices i ∈ 0..64 (bit i set = read at step i).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepSet(u64);

impl StepSet {
    /// The final step only, i = 0 (the default).
    pub const FINAL: Self = Self(1);

    /// The last `k` steps, i = 0 … k−1 (k ≤ 64).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for k = 0 or k > 64.
    pub fn last(k: usize) -> Result<Self, Error> {
        match k {
            0 => Err(Error::InvalidParameter("step set: k must be at least 1")),
            64 => Ok(Self(u64::MAX)),
            k if k < 64 => Ok(Self((1u64 << k) - 1)),
            _ => Err(Error::InvalidParameter("step set: k must be at most 64")),
        }
    }

    /// The one step i (< 64).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for i ≥ 64.
    pub fn single(i: usize) -> Result<Self, Error> {
        if i >= 64 {
            return Err(Error::InvalidParameter("step set: step index must be < 64"));
        }
        Ok(Self(1u64 << i))
    }

    /// The set from a bit mask (bit i = step i).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for the empty mask.
    pub fn from_mask(mask: u64) -> Result<Self, Error> {
        if mask == 0 {
            return Err(Error::InvalidParameter("step set must not be empty"));
        }
        Ok(Self(mask))
    }

    /// The bit mask.
    pub fn mask(&self) -> u64 {
        self.0
    }

    /// Whether step i is in the set.
    pub fn contains(&self, i: usize) -> bool {
        i < 64 && (self.0 >> i) & 1 == 1
    }

    /// Number of steps in the set.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty (never, for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// One past the largest step in the set (the window the detector must see).
    fn span(&self) -> usize {
        64 - self.0.leading_zeros() as usize
    }
}

/// Everything that fixes the score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostVarConfig {
    /// Exact or Hutchinson.
    pub estimator: TraceEstimator,
    /// tr J or tr Cov.
    pub scale: Scale,
    /// Steps read (summed).
    pub steps: StepSet,
}

impl PostVarConfig {
    /// Exact tr J at the final step.
    pub const EXACT: Self = Self {
        estimator: TraceEstimator::Exact,
        scale: Scale::Jacobian,
        steps: StepSet::FINAL,
    };

    /// Hutchinson tr J with one probe at the final step.
    pub const fn one_probe(seed: u64) -> Self {
        Self {
            estimator: TraceEstimator::Hutchinson { probes: 1, seed },
            scale: Scale::Jacobian,
            steps: StepSet::FINAL,
        }
    }
}

/// The schedule tables the score reads: the x̂0 conversions of every prediction type and
/// the covariance scale (1 − ᾱ)/√ᾱ.
pub const TABLES: TableSet = TableSet::of(&[
    Table::OneMinusAlphaBar,
    Table::SqrtAlphaBar,
    Table::SqrtOneMinusAlphaBar,
    Table::InvSqrtAlphaBar,
    Table::SqrtRecipAlphaBarMinusOne,
]);

/// The scratch (f32 count) [`posterior_variance`] and [`PosteriorVariance`] need for a
/// denoiser with `den_scratch` scratch: four vectors of d per sample of a block of
/// min(samples, [`BLOCK`]) samples, plus the denoiser's own.
pub const fn scratch_len(den_scratch: usize, dim: usize, samples: usize) -> usize {
    let block = if samples < BLOCK { samples } else { BLOCK };
    den_scratch + 4 * dim * block
}

/// Computes the score of every sample of `x_t` (n·d, back to back) at sampler step `i` of
/// `schedule` and ADDS it to `trace_out[s]` / `frobenius_out[s]` (len n each); a sample whose
/// x_t or tangent is not finite gets +∞. Probes of sample s use sample index
/// `first_sample + s`.
///
/// # Errors
/// As [`TraceEstimator::validate`]; [`Error::LengthMismatch`] if `x_t` is not n·d or the
/// outputs not n; [`Error::BufferTooSmall`] if `scratch` is shorter than
/// [`scratch_len`]`(den.scratch_len(), d, 1)`; [`Error::StepOutOfRange`]; [`Error::MissingTable`]
/// if the schedule lacks one of [`TABLES`]; [`Error::Unsupported`] if the denoiser has no JVP;
/// whatever the denoiser returns.
#[allow(clippy::too_many_arguments)]
pub fn accumulate_posterior_variance<D: Denoiser + ?Sized>(
    den: &D,
    schedule: &Schedule,
    i: usize,
    x_t: &[f32],
    estimator: TraceEstimator,
    scale: Scale,
    first_sample: u32,
    trace_out: &mut [f32],
    frobenius_out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let dim = den.dim();
    estimator.validate(dim)?;
    let samples = trace_out.len();
    if Some(x_t.len()) != samples.checked_mul(dim) {
        return Err(Error::LengthMismatch("x_t vs trace_out (samples × dim)"));
    }
    if frobenius_out.len() != samples {
        return Err(Error::LengthMismatch("frobenius_out vs trace_out"));
    }
    schedule.require(TABLES)?;
    let coefs = schedule.coefs(i)?;
    let conv = Conversion {
        prediction: den.prediction(),
        inv_a: coefs.inv_sqrt_alpha_bar,
        b_over_a: coefs.sqrt_recip_alpha_bar_minus_one,
        a: coefs.sqrt_alpha_bar,
        b: coefs.sqrt_one_minus_alpha_bar,
    };
    let factor = match scale {
        Scale::Jacobian => 1.0,
        Scale::Covariance => f64::from(coefs.one_minus_alpha_bar) / f64::from(coefs.sqrt_alpha_bar),
    };
    let too_small = Error::BufferTooSmall("posterior variance scratch (see scratch_len)");
    let den_len = den.scratch_len();
    let (den_scratch, work) = scratch.split_at_mut_checked(den_len).ok_or(too_small)?;
    let block = (work.len() / (4 * dim)).min(BLOCK);
    if block == 0 {
        return Err(too_small);
    }
    let passes = estimator.passes(dim);
    let blocks = x_t.chunks(block * dim).zip(
        trace_out
            .chunks_mut(block)
            .zip(frobenius_out.chunks_mut(block)),
    );
    let mut first = first_sample;
    for (xs, (traces, frobs)) in blocks {
        let n = traces.len();
        let len = n * dim;
        let (x, rest) = work.split_at_mut(len);
        let (tangent, rest) = rest.split_at_mut(len);
        let (out, rest) = rest.split_at_mut(len);
        let tangent_out = rest.get_mut(..len).ok_or(too_small)?;
        // Non-finite samples are evaluated at 0 (so the denoiser never sees them) and
        // marked +∞ afterwards.
        let mut bad = [false; BLOCK];
        for ((dst, src), flag) in x
            .chunks_exact_mut(dim)
            .zip(xs.chunks_exact(dim))
            .zip(bad.iter_mut())
        {
            if src.iter().all(|v| v.is_finite()) {
                dst.copy_from_slice(src);
            } else {
                dst.fill(0.0);
                *flag = true;
            }
        }
        let mut trace = [0.0f64; BLOCK];
        let mut frob = [0.0f64; BLOCK];
        for p in 0..passes {
            for (s, u) in (first..).zip(tangent.chunks_exact_mut(dim)) {
                fill_direction(estimator, p, s, u);
            }
            den.predict_jvp(coefs.model_t, x, tangent, out, tangent_out, den_scratch)?;
            let rows = tangent
                .chunks_exact(dim)
                .zip(tangent_out.chunks_exact(dim))
                .zip(trace.iter_mut().zip(frob.iter_mut()));
            for ((u, du), (tr, fr)) in rows {
                for (&uk, &duk) in u.iter().zip(du) {
                    let x0_dot = f64::from(conv.x0_tangent(uk, duk));
                    *tr += f64::from(uk) * x0_dot;
                    *fr += x0_dot * x0_dot;
                }
            }
        }
        let m = passes as f64;
        let per_sample = traces
            .iter_mut()
            .zip(frobs.iter_mut())
            .zip(trace.iter().zip(&frob).zip(&bad));
        for ((t_out, f_out), ((&tr, &fr), &is_bad)) in per_sample {
            let (tr, fr) = match estimator {
                TraceEstimator::Exact => (tr, fr),
                TraceEstimator::Hutchinson { .. } => (tr / m, fr / m),
            };
            let tr_score = (factor * tr) as f32;
            let fr_score = (factor * math::sqrt_f64(fr)) as f32;
            if is_bad || !tr_score.is_finite() || !fr_score.is_finite() {
                *t_out = f32::INFINITY;
                *f_out = f32::INFINITY;
            } else {
                *t_out += tr_score;
                *f_out += fr_score;
                if !t_out.is_finite() || !f_out.is_finite() {
                    *t_out = f32::INFINITY;
                    *f_out = f32::INFINITY;
                }
            }
        }
        first = first.wrapping_add(n as u32);
    }
    Ok(())
}

/// [`accumulate_posterior_variance`] into zeroed outputs: the score of every sample of `x_t`
/// at step `i` alone.
///
/// # Errors
/// As [`accumulate_posterior_variance`].
#[allow(clippy::too_many_arguments)]
pub fn posterior_variance<D: Denoiser + ?Sized>(
    den: &D,
    schedule: &Schedule,
    i: usize,
    x_t: &[f32],
    estimator: TraceEstimator,
    scale: Scale,
    first_sample: u32,
    trace_out: &mut [f32],
    frobenius_out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    trace_out.fill(0.0);
    frobenius_out.fill(0.0);
    accumulate_posterior_variance(
        den,
        schedule,
        i,
        x_t,
        estimator,
        scale,
        first_sample,
        trace_out,
        frobenius_out,
        scratch,
    )
}

/// Direction p of sample s: e_p (exact) or the p-th Rademacher probe.
fn fill_direction(estimator: TraceEstimator, p: usize, sample: u32, u: &mut [f32]) {
    match estimator {
        TraceEstimator::Exact => {
            for (k, v) in u.iter_mut().enumerate() {
                *v = if k == p { 1.0 } else { 0.0 };
            }
        }
        TraceEstimator::Hutchinson { seed, .. } => {
            for (k, v) in (0u32..).zip(u.iter_mut()) {
                *v = rademacher(seed, sample, p as u32, k);
            }
        }
    }
}

/// The map from (u, network tangent) to the x̂0 tangent at one step.
#[derive(Clone, Copy, Debug)]
struct Conversion {
    prediction: Prediction,
    inv_a: f32,
    b_over_a: f32,
    a: f32,
    b: f32,
}

impl Conversion {
    #[inline]
    fn x0_tangent(&self, u: f32, network_dot: f32) -> f32 {
        match self.prediction {
            Prediction::Sample => network_dot,
            Prediction::Epsilon => self.inv_a * u - self.b_over_a * network_dot,
            Prediction::Velocity => {
                let eps_dot = self.a * network_dot + self.b * u;
                self.inv_a * u - self.b_over_a * eps_dot
            }
        }
    }
}

/// The streaming posterior-variance detector for a batch of samples: at every step of its
/// [`StepSet`] it adds the score of the step's x_t (caller-provided state and scratch).
pub struct PosteriorVariance<'d, 's, D: Denoiser + ?Sized> {
    den: &'d D,
    schedule: Schedule<'d>,
    config: PostVarConfig,
    first_sample: u32,
    cursor: WindowCursor,
    read: usize,
    trace: &'s mut [f32],
    frobenius: &'s mut [f32],
    scratch: &'s mut [f32],
}

impl<'d, 's, D: Denoiser + ?Sized> PosteriorVariance<'d, 's, D> {
    /// The state length (f32 count) for `samples` samples: two scores each.
    pub const fn state_len(samples: usize) -> usize {
        2 * samples
    }

    /// A detector reading `config` with `den` on the sampler's `schedule`; `state` (len
    /// [`PosteriorVariance::state_len`]) fixes the number of samples, whose probe indices are
    /// `first_sample…`; `scratch` must hold [`scratch_len`]`(den.scratch_len(), d, 1)` or more
    /// (more lets it batch up to [`BLOCK`] samples per tangent pass).
    ///
    /// # Errors
    /// As [`TraceEstimator::validate`]; [`Error::LengthMismatch`] for an empty or odd `state`;
    /// [`Error::BufferTooSmall`] for a short `scratch`.
    pub fn new(
        den: &'d D,
        schedule: Schedule<'d>,
        config: PostVarConfig,
        first_sample: u32,
        state: &'s mut [f32],
        scratch: &'s mut [f32],
    ) -> Result<Self, Error> {
        let dim = den.dim();
        config.estimator.validate(dim)?;
        let cursor = WindowCursor::new(config.steps.span())?;
        if state.is_empty() || !state.len().is_multiple_of(2) {
            return Err(Error::LengthMismatch(
                "posterior variance state must be 2·samples (PosteriorVariance::state_len)",
            ));
        }
        if scratch.len() < scratch_len(den.scratch_len(), dim, 1) {
            return Err(Error::BufferTooSmall(
                "posterior variance scratch (see scratch_len)",
            ));
        }
        let samples = state.len() / 2;
        let (trace, frobenius) = state.split_at_mut(samples);
        trace.fill(0.0);
        frobenius.fill(0.0);
        Ok(Self {
            den,
            schedule,
            config,
            first_sample,
            cursor,
            read: 0,
            trace,
            frobenius,
            scratch,
        })
    }

    /// The number of samples in the batch.
    pub fn samples(&self) -> usize {
        self.trace.len()
    }

    /// The number of steps of the set read so far.
    pub fn read_steps(&self) -> usize {
        self.read
    }

    /// The configuration.
    pub fn config(&self) -> PostVarConfig {
        self.config
    }

    /// Writes each sample's score (tr, summed over the steps read) into `trace_out` and its
    /// Frobenius variant into `frobenius_out` (len = samples each); +∞ if anything was not
    /// finite.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] for outputs of the wrong length; [`Error::InvalidParameter`]
    /// if no step of the set has been observed.
    pub fn scores(&self, trace_out: &mut [f32], frobenius_out: &mut [f32]) -> Result<(), Error> {
        if trace_out.len() != self.samples() || frobenius_out.len() != self.samples() {
            return Err(Error::LengthMismatch(
                "posterior variance scores vs samples",
            ));
        }
        if self.read == 0 {
            return Err(Error::InvalidParameter(
                "posterior variance read before any step of its set",
            ));
        }
        trace_out.copy_from_slice(self.trace);
        frobenius_out.copy_from_slice(self.frobenius);
        Ok(())
    }
}

impl<D: Denoiser + ?Sized> Detector for PosteriorVariance<'_, '_, D> {
    fn observe(&mut self, i: usize, x_t: &[f32], x0_hat: &[f32]) -> Result<(), Error> {
        let dim = self.den.dim();
        check_batch(self.trace.len() * dim, x_t, x0_hat)?;
        if self.cursor.admit(i)?.is_none() || !self.config.steps.contains(i) {
            return Ok(());
        }
        if self.read == 0 {
            self.trace.fill(0.0);
            self.frobenius.fill(0.0);
        }
        accumulate_posterior_variance(
            self.den,
            &self.schedule,
            i,
            x_t,
            self.config.estimator,
            self.config.scale,
            self.first_sample,
            self.trace,
            self.frobenius,
            self.scratch,
        )?;
        for ((t, f), x0) in self
            .trace
            .iter_mut()
            .zip(self.frobenius.iter_mut())
            .zip(x0_hat.chunks_exact(dim))
        {
            if !x0.iter().all(|v| v.is_finite()) {
                *t = f32::INFINITY;
                *f = f32::INFINITY;
            }
        }
        self.read += 1;
        Ok(())
    }

    fn reset(&mut self) {
        self.cursor.reset();
        self.read = 0;
    }
}

#[cfg(test)]
mod tests;
