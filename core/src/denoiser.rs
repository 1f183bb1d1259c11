//! The denoiser interface every sampler path calls: a network (or closed form) f(x_t, t)
//! whose output is ε̂, x̂0 or v̂ as [`Denoiser::prediction`] says (Ho et al. 2020 ε-form;
//! Aithal et al. 2024 train the ε-form).
//!
//! Besides the plain prediction, a denoiser may offer a forward-mode Jacobian–vector product
//! (papers.md §9 D12): `tangent_out = (∂f/∂x)·tangent`, one tangent pass per direction. The
//! posterior-variance detector (D11) turns it into J_t·u = (u − b·(∂ε̂/∂x)·u)/a.
//!
//! Slices may hold several samples back to back: `x.len()` is a multiple of [`Denoiser::dim`]
//! and every output has the same length; the time branch (shared by all samples at one `t`)
//! is computed once per call.

use crate::error::Error;
use crate::sampler::Prediction;

/// A denoising model f(x_t, t) evaluated without allocation.
///
/// Implementations must be deterministic: the same inputs give the same bits.
pub trait Denoiser {
    /// Data dimension d of one sample.
    fn dim(&self) -> usize;

    /// What [`Denoiser::predict`] returns: ε̂, x̂0 or v̂.
    fn prediction(&self) -> Prediction;

    /// Number of `f32` scratch elements [`Denoiser::predict`] and [`Denoiser::predict_jvp`] need.
    fn scratch_len(&self) -> usize;

    /// Writes f(x, model_t) into `out`.
    ///
    /// `model_t` is the model's own (training) timestep, `x` holds one or more samples back to
    /// back and `out` has the same length.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `x.len()` is not a multiple of [`Denoiser::dim`] or `out`
    /// differs in length, [`Error::BufferTooSmall`] if `scratch` is shorter than
    /// [`Denoiser::scratch_len`], [`Error::StepOutOfRange`] if `model_t` is outside what the
    /// denoiser knows; implementations may add their own.
    fn predict(
        &self,
        model_t: u32,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error>;

    /// Forward-mode JVP (papers.md §9 D12): `out = f(x)`, `tangent_out = (∂f/∂x)·tangent`,
    /// sample by sample (the Jacobian is block-diagonal over samples).
    ///
    /// # Errors
    /// As [`Denoiser::predict`], plus [`Error::LengthMismatch`] if `tangent` or `tangent_out`
    /// differ in length from `x`. The default returns [`Error::Unsupported`]`("jvp")`.
    fn predict_jvp(
        &self,
        model_t: u32,
        x: &[f32],
        tangent: &[f32],
        out: &mut [f32],
        tangent_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let _ = (model_t, x, tangent, out, tangent_out, scratch);
        Err(Error::Unsupported("jvp"))
    }
}

/// Checks the common slice contract of [`Denoiser::predict`]: `x.len()` a multiple of `dim`,
/// `out.len() == x.len()`, `scratch.len() >= scratch_len`.
///
/// # Errors
/// [`Error::LengthMismatch`] / [`Error::BufferTooSmall`] naming the slice at fault.
pub(crate) fn check_lengths(
    dim: usize,
    x: usize,
    out: usize,
    scratch: usize,
    scratch_len: usize,
) -> Result<(), Error> {
    if dim == 0 || !x.is_multiple_of(dim) {
        return Err(Error::LengthMismatch("x (not a multiple of dim)"));
    }
    if out != x {
        return Err(Error::LengthMismatch("out"));
    }
    if scratch < scratch_len {
        return Err(Error::BufferTooSmall("scratch"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A denoiser that only implements the required methods.
    struct Identity;

    impl Denoiser for Identity {
        fn dim(&self) -> usize {
            1
        }
        fn prediction(&self) -> Prediction {
            Prediction::Sample
        }
        fn scratch_len(&self) -> usize {
            0
        }
        fn predict(&self, _: u32, x: &[f32], out: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
            check_lengths(1, x.len(), out.len(), 0, 0)?;
            out.copy_from_slice(x);
            Ok(())
        }
    }

    #[test]
    fn default_jvp_is_unsupported() {
        let mut out = [0.0];
        let mut tan = [0.0];
        let r = Identity.predict_jvp(0, &[1.0], &[1.0], &mut out, &mut tan, &mut []);
        assert_eq!(r, Err(Error::Unsupported("jvp")));
    }

    #[test]
    fn length_checks_name_the_slice() {
        assert_eq!(
            check_lengths(2, 3, 3, 0, 0),
            Err(Error::LengthMismatch("x (not a multiple of dim)"))
        );
        assert_eq!(
            check_lengths(2, 4, 2, 0, 0),
            Err(Error::LengthMismatch("out"))
        );
        assert_eq!(
            check_lengths(2, 4, 4, 1, 2),
            Err(Error::BufferTooSmall("scratch"))
        );
        assert_eq!(check_lengths(2, 4, 4, 2, 2), Ok(()));
        assert_eq!(
            check_lengths(0, 0, 0, 0, 0),
            Err(Error::LengthMismatch("x (not a multiple of dim)"))
        );
    }
}
