//! The Tweedie posterior-variance score fused into the GPU sampler (papers.md §9 D11–D14;
//! core `detector::posterior_variance`, whose definitions it reproduces).
//!
//! At every step i of the configured [`StepSet`] (default: i = 0 only), the step's forward
//! pass also carries P tangent rows per sample (P = d unit vectors for the exact trace, or m
//! Rademacher probes drawn from core's counter-based noise, stream `STREAM_PROBE`, with the
//! config's seed and the sample's index): row r = p·rows + n of the tangent buffers is
//! direction p of sample n, so the tangents of a chunk are one GEMM of P·rows rows per layer
//! (`linear_jvp.wgsl`, the same weights, no bias; the time branch has tangent 0). Then
//!
//! ```text
//! ε-prediction:  ẋ0 = InvSqrtAlphaBar·u − SqrtRecipAlphaBarMinusOne·ε̇     (v, x0: as core)
//! tr J ≈ Σ_p uᵀ ẋ0 (÷ m),   ‖J‖_F ≈ √(Σ_p ‖ẋ0‖² (÷ m))
//! ```
//!
//! times (1 − ᾱ)/√ᾱ for [`Scale::Covariance`], summed over the steps of the set
//! (`postvar.wgsl`). The directions are the same at every step of the set, as in core. Cost:
//! P extra tangent rows per sample at each step of the set (the primal pass is shared).

use bytemuck::{Pod, Zeroable};
use mirage_core::detector::{PostVarConfig, Scale, StepSet, TraceEstimator};

use crate::GpuError;

/// Posterior-variance scores per sample, as core's `PosteriorVariance::scores` gives them.
#[derive(Clone, Debug, PartialEq)]
pub struct PostVarScores {
    /// tr J_t (or tr Cov), summed over the steps of the set; +∞ if anything was not finite.
    pub trace: Vec<f32>,
    /// ‖J_t‖_F (or its Cov scaling), summed over the steps of the set; +∞ likewise.
    pub frobenius: Vec<f32>,
}

/// The layout of `probe.wgsl`'s and `postvar.wgsl`'s `PostVar` uniform.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct PostVarParams {
    pub rows: u32,
    pub dim: u32,
    pub sample_base: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub passes: u32,
    pub flags: u32,
    pub row_stride: u32,
}

/// The layout of `linear_jvp.wgsl`'s `JvpLayer` uniform.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct JvpLayerParams {
    pub rows: u32,
    pub fan_in: u32,
    pub fan_out: u32,
    pub w_off: u32,
    pub gamma_off: u32,
    pub beta_off: u32,
    pub primal_rows: u32,
    pub flags: u32,
}

const FLAG_HUTCHINSON: u32 = 1;
const FLAG_COVARIANCE: u32 = 2;

/// A validated configuration and its tangent passes per sample and step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PostVarPlan {
    pub config: PostVarConfig,
    pub passes: usize,
}

impl PostVarPlan {
    /// Checks `config` for a model of dimension `dim` sampled in `steps` steps.
    ///
    /// # Errors
    /// As core's `TraceEstimator::validate` (0 probes: `InvalidParameter`; exact above
    /// `MAX_EXACT_DIM`: `CapacityExceeded`), [`mirage_core::Error::StepOutOfRange`] if the
    /// step set reaches step `steps` or beyond (it would never be read), and
    /// [`GpuError::InvalidInput`] if the passes do not fit the u32 row counter.
    pub fn new(config: PostVarConfig, dim: usize, steps: usize) -> Result<Self, GpuError> {
        config.estimator.validate(dim)?;
        if !config.steps.is_empty() && last_step(config.steps) >= steps {
            return Err(mirage_core::Error::StepOutOfRange.into());
        }
        let passes = config.estimator.passes(dim);
        if u32::try_from(passes).is_err() {
            return Err(GpuError::InvalidInput(
                "posterior-variance passes exceed u32",
            ));
        }
        Ok(Self { config, passes })
    }

    /// The uniform for a chunk of `rows` samples from `sample_base` (`row_stride`: threads per
    /// dispatch row of the kernel it feeds).
    pub fn params(
        &self,
        dim: usize,
        rows: usize,
        sample_base: u32,
        row_stride: u32,
    ) -> PostVarParams {
        let (seed, hutchinson) = match self.config.estimator {
            TraceEstimator::Exact => (0, 0),
            TraceEstimator::Hutchinson { seed, .. } => (seed, FLAG_HUTCHINSON),
        };
        let covariance = match self.config.scale {
            Scale::Jacobian => 0,
            Scale::Covariance => FLAG_COVARIANCE,
        };
        PostVarParams {
            rows: rows as u32,
            dim: dim as u32,
            sample_base,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            passes: self.passes as u32,
            flags: hutchinson | covariance,
            row_stride,
        }
    }
}

/// The largest step index of a non-empty set.
fn last_step(steps: StepSet) -> usize {
    63 - steps.mask().leading_zeros() as usize
}
