//! Path length of x̂0 over the Hal window (papers.md §9 D15, this project's detector).
//!
//! L = Σ_{t=0}^{K−2} ‖x̂0^{(t)} − x̂0^{(t+1)}‖₂ over the window t = K−1 … 0: how far the
//! prediction of the clean sample still travels in the last steps. It streams with O(d) state
//! per sample (the previous x̂0 and the running sum); each step adds √(Σ_d (x − prev)²),
//! computed in f32. A non-finite x̂0 (or an overflowing sum) makes the length +∞ until reset.

use super::{Detector, WindowCursor, check_batch};
use crate::{Error, math};

/// The streaming path-length detector for a batch of samples, over caller-provided state.
///
/// The state slice holds a plane of `samples × dim` f32 (the previous x̂0) followed by
/// `samples` f32 (the running lengths); its length fixes the number of samples.
#[derive(Debug)]
pub struct PathLength<'s> {
    cursor: WindowCursor,
    dim: usize,
    previous: &'s mut [f32],
    length: &'s mut [f32],
}

impl<'s> PathLength<'s> {
    /// The state length (f32 count) for `samples` samples of dimension `dim`: samples·(dim+1).
    pub const fn state_len(samples: usize, dim: usize) -> usize {
        samples.saturating_mul(dim.saturating_add(1))
    }

    /// A path-length detector with window `window` (= K) for samples of dimension `dim`; the
    /// number of samples is `state.len() / (dim + 1)` (see [`PathLength::state_len`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `window` or `dim` is 0; [`Error::LengthMismatch`] if
    /// `state` is empty or not a multiple of dim + 1.
    pub fn new(window: usize, dim: usize, state: &'s mut [f32]) -> Result<Self, Error> {
        let cursor = WindowCursor::new(window)?;
        if dim == 0 {
            return Err(Error::InvalidParameter(
                "path length dim must be at least 1",
            ));
        }
        let per_sample = dim
            .checked_add(1)
            .ok_or(Error::LengthMismatch("path length dim too large"))?;
        if state.is_empty() || !state.len().is_multiple_of(per_sample) {
            return Err(Error::LengthMismatch(
                "path length state must be a positive multiple of dim + 1 (PathLength::state_len)",
            ));
        }
        let samples = state.len() / per_sample;
        let (previous, length) = state.split_at_mut(samples * dim);
        Ok(Self {
            cursor,
            dim,
            previous,
            length,
        })
    }

    /// The number of samples in the batch.
    pub fn samples(&self) -> usize {
        self.length.len()
    }

    /// The number of window steps observed so far.
    pub fn observed(&self) -> usize {
        self.cursor.observed
    }

    /// Writes each sample's path length into `out` (len = samples); +∞ if any x̂0 of the
    /// window was not finite. One observed step gives 0.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `out.len() != samples`; [`Error::InvalidParameter`] if no
    /// window step has been observed.
    pub fn scores(&self, out: &mut [f32]) -> Result<(), Error> {
        if out.len() != self.samples() {
            return Err(Error::LengthMismatch("path length scores vs samples"));
        }
        self.cursor.observed_nonzero()?;
        out.copy_from_slice(self.length);
        Ok(())
    }
}

impl Detector for PathLength<'_> {
    fn observe(&mut self, i: usize, x_t: &[f32], x0_hat: &[f32]) -> Result<(), Error> {
        check_batch(self.previous.len(), x_t, x0_hat)?;
        let Some(before) = self.cursor.admit(i)? else {
            return Ok(());
        };
        let samples = self
            .previous
            .chunks_exact_mut(self.dim)
            .zip(x0_hat.chunks_exact(self.dim))
            .zip(self.length.iter_mut());
        for ((previous, x0), length) in samples {
            let finite = x0.iter().all(|x| x.is_finite());
            if before == 0 {
                *length = if finite { 0.0 } else { f32::INFINITY };
            } else if finite && length.is_finite() {
                let squared: f32 = previous
                    .iter()
                    .zip(x0)
                    .map(|(&p, &x)| (x - p) * (x - p))
                    .sum();
                *length += math::sqrt(squared);
                if !length.is_finite() {
                    *length = f32::INFINITY;
                }
            } else {
                *length = f32::INFINITY;
            }
            previous.copy_from_slice(x0);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.cursor.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn lcg_uniform(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((*state >> 11) as f64) / (1u64 << 53) as f64
    }

    /// The batch definition: stored trajectory x̂0[step][sample·dim + d], step = K−1 … 0 in
    /// order; L = Σ over consecutive pairs of the Euclidean distance, in f64.
    fn reference(trajectory: &[Vec<f32>], samples: usize, dim: usize) -> Vec<f64> {
        (0..samples)
            .map(|s| {
                trajectory
                    .windows(2)
                    .map(|pair| {
                        (0..dim)
                            .map(|d| {
                                let idx = s * dim + d;
                                (f64::from(pair[1][idx]) - f64::from(pair[0][idx])).powi(2)
                            })
                            .sum::<f64>()
                            .sqrt()
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn equals_batch_definition_on_stored_trajectories() {
        let mut seed = 42u64;
        for &window in &[1usize, 2, 10] {
            for &(samples, dim) in &[(1usize, 1usize), (5, 2), (3, 7)] {
                for &(offset, spread) in &[(0.0, 1.0), (5.0, 1e-3)] {
                    let steps = window + 4;
                    let mut state = vec![f32::NAN; PathLength::state_len(samples, dim)];
                    let mut det = PathLength::new(window, dim, &mut state).unwrap();
                    let x_t = vec![0.0f32; samples * dim];
                    let mut stored = Vec::new();
                    for i in (0..steps).rev() {
                        let x0: Vec<f32> = (0..samples * dim)
                            .map(|_| {
                                (offset + spread * (2.0 * lcg_uniform(&mut seed) - 1.0)) as f32
                            })
                            .collect();
                        det.observe(i, &x_t, &x0).unwrap();
                        if i < window {
                            stored.push(x0);
                        }
                    }
                    assert_eq!(det.observed(), window);
                    let mut got = vec![0.0f32; samples];
                    det.scores(&mut got).unwrap();
                    for (&g, want) in got.iter().zip(reference(&stored, samples, dim)) {
                        if window == 1 {
                            assert_eq!(g, 0.0);
                        } else {
                            let rel = (f64::from(g) - want).abs() / want;
                            assert!(rel < 1e-5, "K {window} got {g} want {want}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn non_finite_and_bad_lengths() {
        let mut state = vec![0.0f32; PathLength::state_len(2, 2)];
        assert!(matches!(
            PathLength::new(0, 2, &mut state),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            PathLength::new(2, 0, &mut state),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            PathLength::new(2, 3, &mut state),
            Err(Error::LengthMismatch(_))
        ));
        let mut det = PathLength::new(3, 2, &mut state).unwrap();
        assert_eq!(det.samples(), 2);
        assert!(matches!(
            det.scores(&mut [0.0; 2]),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            det.observe(1, &[0.0; 4], &[0.0; 3]),
            Err(Error::LengthMismatch(_))
        ));
        det.observe(2, &[0.0; 4], &[0.0, 0.0, 1.0, 1.0]).unwrap();
        det.observe(1, &[0.0; 4], &[3.0, 4.0, f32::NAN, 1.0])
            .unwrap();
        det.observe(0, &[0.0; 4], &[3.0, 4.0, 1.0, 1.0]).unwrap();
        let mut out = [0.0f32; 2];
        det.scores(&mut out).unwrap();
        assert_eq!(out, [5.0, f32::INFINITY]);
        assert!(matches!(
            det.scores(&mut [0.0; 3]),
            Err(Error::LengthMismatch(_))
        ));
        det.reset();
        det.observe(0, &[0.0; 4], &[1.0; 4]).unwrap();
        det.scores(&mut out).unwrap();
        assert_eq!(out, [0.0, 0.0]);
    }
}
