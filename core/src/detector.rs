//! Hallucination detectors fed step by step by the sampler.
//!
//! After every reverse step i (the respaced index, counting down to 0) the sampler hands each
//! [`Detector`] the batch of x_t and x̂0. A detector keeps O(d) state per sample and looks
//! only at its window, the last K steps i = K−1 … 0 (papers.md §7 D4):
//!
//! - [`Hal`] / [`HalSingle`]: Hal(x) = (1/D) Σ_d (1/K) Σ_j (x̂0_{j,d} − mean_d)², the
//!   population variance of x̂0 over the window averaged over coordinates (Aithal et al.
//!   2024, papers.md §1.2), streamed with a shifted Welford update (§1.3.5);
//! - [`PathLength`]: L = Σ_{t=0}^{K−2} ‖x̂0^{(t)} − x̂0^{(t+1)}‖₂ (papers.md §9 D15);
//! - [`PosteriorVariance`]: the Tweedie posterior-variance score tr ∂x̂0/∂x_t (and ‖J‖_F) at
//!   a set of final steps, from the denoiser's forward-mode JVP (papers.md §9 D11–D14).
//!
//! A sample is flagged when its score exceeds the threshold τ calibrated on the host
//! (papers.md §7 D5) or is not finite: [`flagged`].

mod hal;
mod path_length;
pub mod posterior_variance;

pub use hal::{Hal, HalSingle};
pub use path_length::PathLength;
pub use posterior_variance::{PostVarConfig, PosteriorVariance, Scale, StepSet, TraceEstimator};

use crate::Error;

/// A per-sample score accumulated over the last sampler steps.
///
/// The sampler calls [`Detector::observe`] after every step, in the order it runs them
/// (i = steps − 1 down to 0); the detector decides whether i is inside its window. Between
/// trajectories the caller calls [`Detector::reset`].
pub trait Detector {
    /// Called after every sampler step `i` (respaced index, counting down to 0) with the
    /// batch of x_t and x̂0 (any number of samples back to back, the same layout in both).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the slices do not match the detector's batch;
    /// [`Error::InvalidParameter`] if a window step is observed out of order (not strictly
    /// counting down, e.g. a second trajectory without [`Detector::reset`]).
    fn observe(&mut self, i: usize, x_t: &[f32], x0_hat: &[f32]) -> Result<(), Error>;

    /// Forgets every observation, ready for the next trajectory.
    fn reset(&mut self);
}

/// The filter decision: `true` if `score > threshold` or the score is not finite.
///
/// A NaN `threshold` (no τ calibrated, see [`crate::format::ModelHeader::hal_threshold`])
/// flags only non-finite scores.
pub fn flagged(score: f32, threshold: f32) -> bool {
    !score.is_finite() || score > threshold
}

/// The window bookkeeping shared by every detector: which steps count, and in what order.
#[derive(Clone, Copy, Debug)]
struct WindowCursor {
    window: usize,
    observed: usize,
    last_step: Option<usize>,
}

impl WindowCursor {
    fn new(window: usize) -> Result<Self, Error> {
        if window == 0 {
            return Err(Error::InvalidParameter(
                "detector window K must be at least 1",
            ));
        }
        Ok(Self {
            window,
            observed: 0,
            last_step: None,
        })
    }

    /// For a step inside the window, the number of window steps observed before it;
    /// `None` for a step outside the window (i ≥ K), which the detector ignores.
    fn admit(&mut self, i: usize) -> Result<Option<usize>, Error> {
        if i >= self.window {
            return Ok(None);
        }
        if self.last_step.is_some_and(|last| i >= last) {
            return Err(Error::InvalidParameter(
                "detector steps must count down (reset between trajectories)",
            ));
        }
        let before = self.observed;
        self.observed += 1;
        self.last_step = Some(i);
        Ok(Some(before))
    }

    fn reset(&mut self) {
        self.observed = 0;
        self.last_step = None;
    }

    /// The number of window steps observed, or an error if there are none yet.
    fn observed_nonzero(&self) -> Result<usize, Error> {
        if self.observed == 0 {
            Err(Error::InvalidParameter(
                "detector score read before any step of its window",
            ))
        } else {
            Ok(self.observed)
        }
    }
}

/// Checks the batch slices handed to [`Detector::observe`] against the detector's size.
fn check_batch(expected: usize, x_t: &[f32], x0_hat: &[f32]) -> Result<(), Error> {
    if x0_hat.len() != expected {
        return Err(Error::LengthMismatch(
            "x0_hat vs detector batch (samples × dim)",
        ));
    }
    if x_t.len() != expected {
        return Err(Error::LengthMismatch(
            "x_t vs detector batch (samples × dim)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flagged_decision() {
        assert!(flagged(2.0, 1.0));
        assert!(!flagged(1.0, 1.0));
        assert!(!flagged(0.5, 1.0));
        assert!(flagged(f32::INFINITY, 1.0));
        assert!(flagged(f32::NAN, 1.0));
        assert!(!flagged(1e30, f32::NAN));
        assert!(flagged(f32::INFINITY, f32::NAN));
    }

    #[test]
    fn cursor_window_and_order() {
        assert!(WindowCursor::new(0).is_err());
        let mut c = WindowCursor::new(3).unwrap();
        assert_eq!(
            c.observed_nonzero(),
            Err(Error::InvalidParameter(
                "detector score read before any step of its window"
            ))
        );
        assert_eq!(c.admit(5).unwrap(), None);
        assert_eq!(c.admit(3).unwrap(), None);
        assert_eq!(c.admit(2).unwrap(), Some(0));
        assert!(c.admit(2).is_err());
        assert_eq!(c.admit(0).unwrap(), Some(1));
        assert!(c.admit(1).is_err());
        assert_eq!(c.observed_nonzero().unwrap(), 2);
        c.reset();
        assert_eq!(c.admit(2).unwrap(), Some(0));
    }
}
