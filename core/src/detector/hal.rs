//! Hal(x): the variance of the predicted clean sample x̂0 over the last K sampler steps.
//!
//! Hal = (1/D) Σ_d (1/K) Σ_{j<K} (x̂0_{j,d} − mean_d)² (Aithal et al. 2024, papers.md §1.2): the
//! population variance over the window i = K−1 … 0, averaged (not summed) over coordinates.
//!
//! In-support Hal is 1e−6…1e−3 while x̂0 ≈ 1…5, so the naive Σx² − (Σx)²/K in f32 loses every
//! digit, and even plain Welford in f32 (condition number √(1 + mean²/var) ≈ 5000) loses about
//! four (papers.md §1.3.5). Each element therefore keeps three f32: the shift s = the first
//! x̂0 of the window, and Welford's running mean and M2 of y = x̂0 − s (y is exact by Sterbenz
//! whenever x̂0 and s are within a factor two). With n the observations before this one:
//!
//! ```text
//! n = 0:  s ← x,  mean ← 0,  M2 ← 0
//! n > 0:  y = x − s;  δ = y − mean;  mean ← mean + δ/(n+1);  M2 ← M2 + δ·(y − mean)
//! score = (1/D) Σ_d M2_d / K_observed        (sum in f64)
//! ```
//!
//! A non-finite x̂0 (or an M2 that overflows) sets M2 = +∞ for that element; it stays +∞ until
//! [`crate::detector::Detector::reset`], and the sample's score is +∞, which
//! [`crate::detector::flagged`] always flags.
//!
//! # Accuracy
//! Within 1e−6 relative of a two-pass f64 population variance of the same f32 values, for
//! K ≤ 10 and offsets up to 5 ± 1e−3 (tested).

use super::{Detector, WindowCursor, check_batch};
use crate::Error;

/// f32 values of state per element: shift, mean, M2.
const STATE_PER_ELEMENT: usize = 3;

/// The streaming Hal detector for a batch of samples, over caller-provided state.
///
/// The state slice holds three planes of `samples × dim` f32 each (shift, mean, M2); its
/// length fixes the number of samples. Any contents are fine: the first window step
/// overwrites them.
#[derive(Debug)]
pub struct Hal<'s> {
    cursor: WindowCursor,
    dim: usize,
    shift: &'s mut [f32],
    mean: &'s mut [f32],
    m2: &'s mut [f32],
}

impl<'s> Hal<'s> {
    /// The paper's window: the last K = 10 steps (papers.md §1.2).
    pub const PAPER_WINDOW: usize = 10;

    /// The state length (f32 count) for `samples` samples of dimension `dim`: 3·samples·dim.
    pub const fn state_len(samples: usize, dim: usize) -> usize {
        STATE_PER_ELEMENT
            .saturating_mul(samples)
            .saturating_mul(dim)
    }

    /// A Hal detector with window `window` (= K) for samples of dimension `dim`; the number
    /// of samples is `state.len() / (3·dim)` (see [`Hal::state_len`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `window` or `dim` is 0; [`Error::LengthMismatch`] if
    /// `state` is empty or not a multiple of 3·dim.
    pub fn new(window: usize, dim: usize, state: &'s mut [f32]) -> Result<Self, Error> {
        let cursor = WindowCursor::new(window)?;
        if dim == 0 {
            return Err(Error::InvalidParameter("hal dim must be at least 1"));
        }
        let per_sample = STATE_PER_ELEMENT
            .checked_mul(dim)
            .ok_or(Error::LengthMismatch("hal dim too large"))?;
        if state.is_empty() || !state.len().is_multiple_of(per_sample) {
            return Err(Error::LengthMismatch(
                "hal state must be a positive multiple of 3·dim (Hal::state_len)",
            ));
        }
        let plane = state.len() / STATE_PER_ELEMENT;
        let (shift, rest) = state.split_at_mut(plane);
        let (mean, m2) = rest.split_at_mut(plane);
        Ok(Self {
            cursor,
            dim,
            shift,
            mean,
            m2,
        })
    }

    /// The number of samples in the batch.
    pub fn samples(&self) -> usize {
        self.m2.len() / self.dim
    }

    /// The dimension of one sample.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The window K.
    pub fn window(&self) -> usize {
        self.cursor.window
    }

    /// The number of window steps observed so far (K once a full trajectory has run, fewer
    /// when the sampler has fewer than K steps).
    pub fn observed(&self) -> usize {
        self.cursor.observed
    }

    /// Writes each sample's Hal score into `out` (len = samples): the mean over dims of the
    /// population variance of x̂0 over the observed window steps; +∞ if any x̂0 was not finite.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `out.len() != samples`; [`Error::InvalidParameter`] if no
    /// window step has been observed.
    pub fn scores(&self, out: &mut [f32]) -> Result<(), Error> {
        if out.len() != self.samples() {
            return Err(Error::LengthMismatch("hal scores vs samples"));
        }
        let observed = self.cursor.observed_nonzero()?;
        for (score, m2) in out.iter_mut().zip(self.m2.chunks_exact(self.dim)) {
            *score = score_from_m2(m2, observed);
        }
        Ok(())
    }

    /// The filter decision, [`crate::detector::flagged`]: `score > threshold` or not finite.
    pub fn flagged(score: f32, threshold: f32) -> bool {
        super::flagged(score, threshold)
    }
}

impl Detector for Hal<'_> {
    fn observe(&mut self, i: usize, x_t: &[f32], x0_hat: &[f32]) -> Result<(), Error> {
        check_batch(self.m2.len(), x_t, x0_hat)?;
        if let Some(before) = self.cursor.admit(i)? {
            update(before, self.shift, self.mean, self.m2, x0_hat);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.cursor.reset();
    }
}

/// The Hal detector for one sample of dimension `D` with owned O(D) state (12·D bytes):
/// the same arithmetic as [`Hal`], for an embedded target without a heap.
#[derive(Clone, Debug)]
pub struct HalSingle<const D: usize> {
    cursor: WindowCursor,
    shift: [f32; D],
    mean: [f32; D],
    m2: [f32; D],
}

impl<const D: usize> HalSingle<D> {
    /// A single-sample Hal detector with window `window` (= K).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `window` or `D` is 0.
    pub fn new(window: usize) -> Result<Self, Error> {
        let cursor = WindowCursor::new(window)?;
        if D == 0 {
            return Err(Error::InvalidParameter("hal dim must be at least 1"));
        }
        Ok(Self {
            cursor,
            shift: [0.0; D],
            mean: [0.0; D],
            m2: [0.0; D],
        })
    }

    /// The window K.
    pub fn window(&self) -> usize {
        self.cursor.window
    }

    /// The number of window steps observed so far.
    pub fn observed(&self) -> usize {
        self.cursor.observed
    }

    /// The Hal score of the sample (see [`Hal::scores`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if no window step has been observed.
    pub fn score(&self) -> Result<f32, Error> {
        Ok(score_from_m2(&self.m2, self.cursor.observed_nonzero()?))
    }
}

impl<const D: usize> Detector for HalSingle<D> {
    fn observe(&mut self, i: usize, x_t: &[f32], x0_hat: &[f32]) -> Result<(), Error> {
        check_batch(D, x_t, x0_hat)?;
        if let Some(before) = self.cursor.admit(i)? {
            update(
                before,
                &mut self.shift,
                &mut self.mean,
                &mut self.m2,
                x0_hat,
            );
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.cursor.reset();
    }
}

/// One shifted-Welford step for every element (see the module doc); `before` = observations
/// already in the state. All slices have the same length (checked by the callers).
fn update(before: usize, shift: &mut [f32], mean: &mut [f32], m2: &mut [f32], x0_hat: &[f32]) {
    let elements = shift.iter_mut().zip(mean.iter_mut()).zip(m2.iter_mut());
    if before == 0 {
        for (((s, m), q), &x) in elements.zip(x0_hat) {
            *s = x;
            *m = 0.0;
            *q = if x.is_finite() { 0.0 } else { f32::INFINITY };
        }
        return;
    }
    let inv_count = 1.0 / (before + 1) as f32;
    for (((s, m), q), &x) in elements.zip(x0_hat) {
        if !q.is_finite() || !x.is_finite() {
            *q = f32::INFINITY;
            continue;
        }
        let y = x - *s;
        let delta = y - *m;
        *m += delta * inv_count;
        *q += delta * (y - *m);
        if !q.is_finite() {
            *q = f32::INFINITY;
        }
    }
}

/// (1/D) Σ_d M2_d / observed, summed in f64; +∞ if any M2 is not finite.
fn score_from_m2(m2: &[f32], observed: usize) -> f32 {
    let mut sum = 0.0f64;
    for &q in m2 {
        if !q.is_finite() {
            return f32::INFINITY;
        }
        sum += f64::from(q);
    }
    (sum / (observed as f64 * m2.len() as f64)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// SplitMix64 → standard normals (Box–Muller in f64): an RNG independent of the code under test.
    struct TestRng(u64);
    impl TestRng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
        }
    }

    /// Two-pass f64 population variance over the window, averaged over dims, per sample.
    /// `window_values[j]` is the batch x̂0 at the j-th observed window step.
    fn reference_scores(window_values: &[Vec<f32>], samples: usize, dim: usize) -> Vec<f64> {
        let k = window_values.len() as f64;
        (0..samples)
            .map(|s| {
                let mut total = 0.0;
                for d in 0..dim {
                    let idx = s * dim + d;
                    let mean = window_values.iter().map(|v| f64::from(v[idx])).sum::<f64>() / k;
                    let var = window_values
                        .iter()
                        .map(|v| (f64::from(v[idx]) - mean).powi(2))
                        .sum::<f64>()
                        / k;
                    total += var;
                }
                total / dim as f64
            })
            .collect()
    }

    /// Runs a full trajectory of `steps` sampler steps through `det`, returning the x̂0 of the
    /// window steps (i < window) in observation order.
    fn run_stream(
        det: &mut dyn Detector,
        rng: &mut TestRng,
        steps: usize,
        window: usize,
        len: usize,
        offset: f64,
        spread: f64,
    ) -> Vec<Vec<f32>> {
        let x_t = vec![0.0f32; len];
        let mut seen = Vec::new();
        for i in (0..steps).rev() {
            // Outside the window the values are wild, so ignoring them is tested too.
            let x0: Vec<f32> = (0..len)
                .map(|_| {
                    if i < window {
                        (offset + spread * rng.normal()) as f32
                    } else {
                        (1e3 * rng.normal()) as f32
                    }
                })
                .collect();
            det.observe(i, &x_t, &x0).unwrap();
            if i < window {
                seen.push(x0);
            }
        }
        seen
    }

    #[test]
    fn equals_two_pass_f64_variance() {
        let mut rng = TestRng(0x5EED);
        let mut worst = 0.0f64;
        for &(offset, spread) in &[
            (0.0, 1.0),
            (5.0, 1e-3),
            (-3.0, 1e-2),
            (1.0, 1e-4),
            (5.0, 0.3),
        ] {
            for &window in &[1usize, 2, 10] {
                for &(samples, dim) in &[(1usize, 1usize), (7, 2), (3, 5)] {
                    for _trial in 0..20 {
                        let mut state = vec![f32::NAN; Hal::state_len(samples, dim)];
                        let mut hal = Hal::new(window, dim, &mut state).unwrap();
                        let steps = window + 5;
                        let seen = run_stream(
                            &mut hal,
                            &mut rng,
                            steps,
                            window,
                            samples * dim,
                            offset,
                            spread,
                        );
                        assert_eq!(hal.observed(), window);
                        let mut scores = vec![0.0f32; samples];
                        hal.scores(&mut scores).unwrap();
                        let reference = reference_scores(&seen, samples, dim);
                        for (&got, &want) in scores.iter().zip(&reference) {
                            if window == 1 {
                                assert_eq!(got, 0.0);
                                continue;
                            }
                            let rel = (f64::from(got) - want).abs() / want;
                            worst = worst.max(rel);
                            assert!(
                                rel <= 1e-6,
                                "offset {offset} spread {spread} K {window}: got {got} want {want} rel {rel:e}"
                            );
                        }
                    }
                }
            }
        }
        std::println!("worst relative error {worst:e}");
    }

    /// Plain f32 Welford without the shift fails the bound on the offset case, so the test
    /// above can tell the two apart (this guards the claim in the module doc).
    #[test]
    fn unshifted_f32_welford_would_fail_the_offset_case() {
        let mut rng = TestRng(7);
        let mut worst = 0.0f64;
        for _ in 0..200 {
            let xs: Vec<f32> = (0..10)
                .map(|_| (5.0 + 1e-3 * rng.normal()) as f32)
                .collect();
            let (mut mean, mut m2) = (0.0f32, 0.0f32);
            for (n, &x) in xs.iter().enumerate() {
                let delta = x - mean;
                mean += delta / (n + 1) as f32;
                m2 += delta * (x - mean);
            }
            let want = reference_scores(&xs.iter().map(|&x| vec![x]).collect::<Vec<_>>(), 1, 1)[0];
            worst = worst.max((f64::from(m2 / 10.0) - want).abs() / want);
        }
        assert!(
            worst > 1e-5,
            "unshifted welford unexpectedly accurate: {worst:e}"
        );
    }

    #[test]
    fn fewer_steps_than_window_uses_what_was_observed() {
        let mut rng = TestRng(11);
        let mut state = vec![0.0f32; Hal::state_len(4, 3)];
        let mut hal = Hal::new(10, 3, &mut state).unwrap();
        let seen = run_stream(&mut hal, &mut rng, 4, 10, 12, 2.0, 0.1);
        assert_eq!(hal.observed(), 4);
        let mut scores = [0.0f32; 4];
        hal.scores(&mut scores).unwrap();
        for (&got, want) in scores.iter().zip(reference_scores(&seen, 4, 3)) {
            assert!((f64::from(got) - want).abs() <= 1e-6 * want);
        }
    }

    #[test]
    fn reset_starts_a_new_trajectory() {
        let mut rng = TestRng(3);
        let mut state = vec![0.0f32; Hal::state_len(2, 2)];
        let mut hal = Hal::new(3, 2, &mut state).unwrap();
        run_stream(&mut hal, &mut rng, 5, 3, 4, 0.0, 100.0);
        // Without reset the next trajectory is refused (steps no longer count down).
        assert!(hal.observe(2, &[0.0; 4], &[0.0; 4]).is_err());
        hal.reset();
        let seen = run_stream(&mut hal, &mut rng, 5, 3, 4, 1.0, 0.01);
        let mut scores = [0.0f32; 2];
        hal.scores(&mut scores).unwrap();
        for (&got, want) in scores.iter().zip(reference_scores(&seen, 2, 2)) {
            assert!((f64::from(got) - want).abs() <= 1e-6 * want);
        }
    }

    #[test]
    fn non_finite_x0_gives_infinite_score_and_is_flagged() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for bad_step in 0..3usize {
                let mut state = vec![0.0f32; Hal::state_len(3, 2)];
                let mut hal = Hal::new(3, 2, &mut state).unwrap();
                for i in (0..3).rev() {
                    let mut x0 = [1.0f32, 2.0, 1.5 + i as f32 * 1e-3, 4.0, 5.0, 6.0];
                    if i == bad_step {
                        x0[3] = bad; // sample 1, dim 1
                    }
                    hal.observe(i, &[0.0; 6], &x0).unwrap();
                }
                let mut scores = [0.0f32; 3];
                hal.scores(&mut scores).unwrap();
                assert_eq!(scores[0], 0.0);
                assert_eq!(scores[1], f32::INFINITY, "bad {bad} at step {bad_step}");
                assert_eq!(scores[2], 0.0);
                assert!(Hal::flagged(scores[1], 1e9));
                assert!(Hal::flagged(scores[1], f32::NAN));
                assert!(!Hal::flagged(scores[2], 0.0));
            }
        }
    }

    #[test]
    fn overflowing_m2_is_infinite() {
        let mut state = vec![0.0f32; Hal::state_len(1, 1)];
        let mut hal = Hal::new(2, 1, &mut state).unwrap();
        hal.observe(1, &[0.0], &[3e38]).unwrap();
        hal.observe(0, &[0.0], &[-3e38]).unwrap();
        let mut score = [0.0f32];
        hal.scores(&mut score).unwrap();
        assert_eq!(score[0], f32::INFINITY);
    }

    #[test]
    fn threshold_decision_filters_by_score() {
        // Two samples: one settled (tiny spread), one moving (large spread).
        let mut state = vec![0.0f32; Hal::state_len(2, 1)];
        let mut hal = Hal::new(4, 1, &mut state).unwrap();
        for (i, (a, b)) in [(1.0, 1.0), (1.001, 1.5), (0.999, 2.0), (1.0, 2.5)]
            .iter()
            .enumerate()
        {
            hal.observe(3 - i, &[0.0; 2], &[*a, *b]).unwrap();
        }
        let mut scores = [0.0f32; 2];
        hal.scores(&mut scores).unwrap();
        let tau = 1e-3;
        assert!(!Hal::flagged(scores[0], tau));
        assert!(Hal::flagged(scores[1], tau));
        // Var{1, 1.5, 2, 2.5} = 0.3125 exactly.
        assert!((scores[1] - 0.3125).abs() < 1e-6);
    }

    #[test]
    fn bad_lengths_and_parameters_are_errors() {
        let mut state = vec![0.0f32; 12];
        assert!(matches!(
            Hal::new(0, 2, &mut state),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            Hal::new(3, 0, &mut state),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            Hal::new(3, 5, &mut state),
            Err(Error::LengthMismatch(_))
        ));
        assert!(matches!(
            Hal::new(3, 2, &mut []),
            Err(Error::LengthMismatch(_))
        ));
        let mut hal = Hal::new(3, 2, &mut state).unwrap();
        assert_eq!(hal.samples(), 2);
        assert_eq!(hal.dim(), 2);
        assert_eq!(hal.window(), 3);
        assert!(matches!(
            hal.observe(0, &[0.0; 4], &[0.0; 3]),
            Err(Error::LengthMismatch(_))
        ));
        assert!(matches!(
            hal.observe(0, &[0.0; 5], &[0.0; 4]),
            Err(Error::LengthMismatch(_))
        ));
        // Lengths are checked even for steps outside the window.
        assert!(matches!(
            hal.observe(9, &[0.0; 4], &[0.0; 5]),
            Err(Error::LengthMismatch(_))
        ));
        let mut scores = [0.0f32; 2];
        assert!(matches!(
            hal.scores(&mut scores),
            Err(Error::InvalidParameter(_))
        ));
        hal.observe(0, &[0.0; 4], &[0.0; 4]).unwrap();
        assert!(matches!(
            hal.scores(&mut [0.0; 3]),
            Err(Error::LengthMismatch(_))
        ));
        assert!(hal.scores(&mut scores).is_ok());
        assert!(matches!(
            HalSingle::<0>::new(3),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            HalSingle::<2>::new(0),
            Err(Error::InvalidParameter(_))
        ));
        let mut single = HalSingle::<2>::new(3).unwrap();
        assert!(matches!(single.score(), Err(Error::InvalidParameter(_))));
        assert!(matches!(
            single.observe(0, &[0.0; 2], &[0.0; 3]),
            Err(Error::LengthMismatch(_))
        ));
    }

    #[test]
    fn single_equals_batch_on_one_sample() {
        let mut rng = TestRng(99);
        for &window in &[1usize, 2, 10] {
            let mut state = vec![0.0f32; Hal::state_len(1, 3)];
            let mut hal = Hal::new(window, 3, &mut state).unwrap();
            let mut single = HalSingle::<3>::new(window).unwrap();
            for i in (0..window + 3).rev() {
                let x0: Vec<f32> = (0..3).map(|_| (5.0 + 1e-3 * rng.normal()) as f32).collect();
                hal.observe(i, &[0.0; 3], &x0).unwrap();
                single.observe(i, &[0.0; 3], &x0).unwrap();
            }
            let mut score = [0.0f32];
            hal.scores(&mut score).unwrap();
            assert_eq!(score[0].to_bits(), single.score().unwrap().to_bits());
            assert_eq!(single.observed(), window);
            assert_eq!(single.window(), window);
        }
    }
}
