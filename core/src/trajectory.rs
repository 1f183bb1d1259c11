//! A whole reverse trajectory of one sample: x_T ~ N(0, I) from the counter-based noise, then
//! [`step`] for i = steps − 1 … 0, feeding a [`Detector`] after every step (Aithal et al. 2024:
//! Hal(x) is read from the x̂0 of the last steps; `papers.md` §1.2):
//!
//! ```text
//! x ← z(seed, STREAM_INIT, sample, step 0)
//! for i = steps−1 … 0:
//!   out ← f(x, τ_i);  z ← z(seed, STREAM_STEP, sample, step i)  (only where noise is added)
//!   (x_prev, x̂0) ← step(i, x, out, z);  detector.observe(i, x, x̂0);  x ← x_prev
//! ```
//!
//! The detector sees the step's input x_t with its x̂0 (both belong to model time τ_i). The
//! output is the final x_{−1}, which for DDPM and DDIM at i = 0 is the last x̂0 up to rounding.
//! Same seed and sample give the same bits on every run.

use crate::denoiser::Denoiser;
use crate::detector::Detector;
use crate::error::Error;
use crate::noise::{STREAM_INIT, STREAM_STEP, fill_normals};
use crate::sampler::{SamplerConfig, step};
use crate::schedule::Schedule;

/// Scratch [`sample_trajectory`] needs: the denoiser's own scratch plus three vectors of
/// `dim` (model output, noise, x_prev).
pub const fn trajectory_scratch_len(den_scratch: usize, dim: usize) -> usize {
    den_scratch + 3 * dim
}

/// Samples one trajectory of sample index `sample` into `x` (length `den.dim()`), leaving the
/// last x̂0 in `x0_hat`. The detector is reset first, then observes every step.
///
/// # Errors
/// As [`SamplerConfig::validate`]; [`Error::InvalidParameter`] if `cfg.prediction` differs
/// from `den.prediction()`; [`Error::LengthMismatch`] if `x` or `x0_hat` is not `den.dim()`
/// long; [`Error::BufferTooSmall`] if `scratch` is shorter than
/// [`trajectory_scratch_len`]`(den.scratch_len(), den.dim())`; and whatever the denoiser,
/// [`step`] or the detector return.
#[allow(clippy::too_many_arguments)]
pub fn sample_trajectory<Dn: Denoiser + ?Sized, Dt: Detector + ?Sized>(
    den: &Dn,
    schedule: &Schedule,
    cfg: &SamplerConfig,
    seed: u64,
    sample: u32,
    x: &mut [f32],
    x0_hat: &mut [f32],
    detector: &mut Dt,
    scratch: &mut [f32],
) -> Result<(), Error> {
    cfg.validate()?;
    if cfg.prediction != den.prediction() {
        return Err(Error::InvalidParameter(
            "prediction: the sampler config and the denoiser disagree",
        ));
    }
    let dim = den.dim();
    if x.len() != dim {
        return Err(Error::LengthMismatch("x vs denoiser dim"));
    }
    if x0_hat.len() != dim {
        return Err(Error::LengthMismatch("x0_hat vs denoiser dim"));
    }
    let too_small = Error::BufferTooSmall("trajectory scratch (see trajectory_scratch_len)");
    if scratch.len() < trajectory_scratch_len(den.scratch_len(), dim) {
        return Err(too_small);
    }
    let (model_out, rest) = scratch.split_at_mut_checked(dim).ok_or(too_small)?;
    let (noise, rest) = rest.split_at_mut_checked(dim).ok_or(too_small)?;
    let (x_prev, den_scratch) = rest.split_at_mut_checked(dim).ok_or(too_small)?;

    detector.reset();
    fill_normals(seed, STREAM_INIT, sample, 0, x);
    for i in (0..schedule.steps()).rev() {
        let coefs = schedule.coefs(i)?;
        den.predict(coefs.model_t, x, model_out, den_scratch)?;
        let step_noise: &[f32] = if cfg.needs_noise(i) {
            fill_normals(seed, STREAM_STEP, sample, i as u32, noise);
            noise
        } else {
            &[]
        };
        step(cfg, schedule, i, x, model_out, step_noise, x_prev, x0_hat)?;
        detector.observe(i, x, x0_hat)?;
        for (state, &next) in x.iter_mut().zip(x_prev.iter()) {
            *state = next;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::fill_normals;
    use crate::sampler::{Clip, EpsilonScaling, Method, Prediction, Variance};
    use crate::schedule::{BetaSchedule, Spacing, Table, compute_tables, table_len};
    use std::vec;
    use std::vec::Vec;

    /// Full training tables (T = 1000) for the test denoisers, indexed by model timestep.
    fn full_tables(beta: &BetaSchedule) -> Vec<f32> {
        let mut out = vec![0.0f32; table_len(1000)];
        compute_tables(beta, 1000, &Spacing::Linspace, 1000, &mut out).unwrap();
        out
    }

    /// The exact denoiser of a point mass at `point`: ε* = (x − √ᾱ x0*)/√(1 − ᾱ), or x0* itself.
    struct PointMass<'a> {
        point: &'a [f32],
        train: Schedule<'a>,
        prediction: Prediction,
    }

    impl Denoiser for PointMass<'_> {
        fn dim(&self) -> usize {
            self.point.len()
        }
        fn prediction(&self) -> Prediction {
            self.prediction
        }
        fn scratch_len(&self) -> usize {
            2
        }
        fn predict(
            &self,
            model_t: u32,
            x: &[f32],
            out: &mut [f32],
            scratch: &mut [f32],
        ) -> Result<(), Error> {
            assert!(
                scratch.len() >= 2,
                "the trajectory hands over the denoiser's scratch"
            );
            let c = self.train.coefs(model_t as usize)?;
            for ((o, &x), &p) in out.iter_mut().zip(x).zip(self.point) {
                *o = match self.prediction {
                    Prediction::Epsilon => {
                        ((x as f64 - c.sqrt_alpha_bar as f64 * p as f64)
                            / c.sqrt_one_minus_alpha_bar as f64) as f32
                    }
                    Prediction::Sample => p,
                    Prediction::Velocity => unreachable!(),
                };
            }
            Ok(())
        }
    }

    /// A smooth, non-degenerate ε̂(x, t) so the output depends on the noise.
    struct Shrink;

    impl Denoiser for Shrink {
        fn dim(&self) -> usize {
            3
        }
        fn prediction(&self) -> Prediction {
            Prediction::Epsilon
        }
        fn scratch_len(&self) -> usize {
            0
        }
        fn predict(
            &self,
            model_t: u32,
            x: &[f32],
            out: &mut [f32],
            _: &mut [f32],
        ) -> Result<(), Error> {
            for (o, &x) in out.iter_mut().zip(x) {
                *o = x * (0.3 + model_t as f32 * 1e-3);
            }
            Ok(())
        }
    }

    /// Records the calls the trajectory makes.
    #[derive(Default)]
    struct Recorder {
        resets: usize,
        steps: Vec<usize>,
        last_x0: Vec<f32>,
        last_x: Vec<f32>,
    }

    impl Detector for Recorder {
        fn observe(&mut self, i: usize, x_t: &[f32], x0_hat: &[f32]) -> Result<(), Error> {
            self.steps.push(i);
            self.last_x0 = x0_hat.to_vec();
            self.last_x = x_t.to_vec();
            Ok(())
        }
        fn reset(&mut self) {
            self.resets += 1;
            self.steps.clear();
        }
    }

    fn respaced(beta: &BetaSchedule, spacing: &Spacing, n: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; table_len(n)];
        compute_tables(beta, 1000, spacing, n, &mut out).unwrap();
        out
    }

    const POINT: [f32; 3] = [0.7, -1.3, 2.0];

    #[test]
    fn exact_point_mass_trajectories_land_on_the_point() {
        let cases: &[(BetaSchedule, Spacing, usize, Method, Prediction)] = &[
            (
                BetaSchedule::COSINE,
                Spacing::Linspace,
                20,
                Method::Ddim { eta: 0.0 },
                Prediction::Epsilon,
            ),
            (
                BetaSchedule::PAPER,
                Spacing::Trailing,
                50,
                Method::Ddim { eta: 0.0 },
                Prediction::Epsilon,
            ),
            (
                BetaSchedule::PAPER,
                Spacing::Linspace,
                1000,
                Method::Ddpm(Variance::FixedLarge),
                Prediction::Epsilon,
            ),
            (
                BetaSchedule::DDPM,
                Spacing::Leading,
                100,
                Method::Ddim { eta: 1.0 },
                Prediction::Sample,
            ),
        ];
        for (beta, spacing, n, method, prediction) in cases {
            let train = full_tables(beta);
            let den = PointMass {
                point: &POINT,
                train: Schedule::from_tables(&train, 1000).unwrap(),
                prediction: *prediction,
            };
            let data = respaced(beta, spacing, *n);
            let schedule = Schedule::from_tables(&data, *n).unwrap();
            let cfg = SamplerConfig {
                method: *method,
                prediction: *prediction,
                clip: Clip::None,
                eps_scaling: EpsilonScaling::Off,
            };
            for seed in [0u64, 42, u64::MAX] {
                let (mut x, mut x0) = ([0.0f32; 3], [0.0f32; 3]);
                let mut scratch = vec![0.0f32; trajectory_scratch_len(den.scratch_len(), 3)];
                let mut rec = Recorder::default();
                sample_trajectory(
                    &den,
                    &schedule,
                    &cfg,
                    seed,
                    5,
                    &mut x,
                    &mut x0,
                    &mut rec,
                    &mut scratch,
                )
                .unwrap();
                for d in 0..3 {
                    assert!(
                        (x[d] - POINT[d]).abs() <= 1e-4,
                        "{beta:?} {spacing:?} {method:?} seed {seed}: {x:?}"
                    );
                    assert!((x0[d] - POINT[d]).abs() <= 1e-4);
                }
                assert_eq!(rec.resets, 1);
                assert_eq!(rec.steps, (0..*n).rev().collect::<Vec<_>>());
                assert_eq!(rec.last_x0, x0.to_vec());
            }
        }
    }

    #[test]
    fn trajectory_matches_a_manual_loop_and_is_reproducible() {
        let data = respaced(&BetaSchedule::PAPER, &Spacing::Linspace, 30);
        let schedule = Schedule::from_tables(&data, 30).unwrap();
        for cfg in [
            SamplerConfig::PAPER,
            SamplerConfig {
                method: Method::Ddim { eta: 0.5 },
                ..SamplerConfig::PAPER
            },
        ] {
            let run = |seed, sample| {
                let (mut x, mut x0) = ([0.0f32; 3], [0.0f32; 3]);
                let mut scratch = vec![0.0f32; trajectory_scratch_len(0, 3)];
                sample_trajectory(
                    &Shrink,
                    &schedule,
                    &cfg,
                    seed,
                    sample,
                    &mut x,
                    &mut x0,
                    &mut Recorder::default(),
                    &mut scratch,
                )
                .unwrap();
                (x, x0)
            };
            let (x, x0) = run(7, 3);
            let bits = |v: [f32; 3]| v.map(f32::to_bits);
            assert_eq!(
                (bits(x), bits(x0)),
                (bits(run(7, 3).0), bits(run(7, 3).1)),
                "same seed, same bits"
            );
            assert_ne!(bits(x), bits(run(8, 3).0), "another seed");
            assert_ne!(bits(x), bits(run(7, 4).0), "another sample");
            // The same trajectory by hand: x_T from STREAM_INIT, z_i from STREAM_STEP at step i.
            let mut state = [0.0f32; 3];
            fill_normals(7, crate::noise::STREAM_INIT, 3, 0, &mut state);
            let (mut out, mut z, mut prev, mut hat) =
                ([0.0f32; 3], [0.0f32; 3], [0.0f32; 3], [0.0f32; 3]);
            for i in (0..30).rev() {
                let t = schedule.table(Table::ModelT)[i] as u32;
                Shrink.predict(t, &state, &mut out, &mut []).unwrap();
                fill_normals(7, crate::noise::STREAM_STEP, 3, i as u32, &mut z);
                step(&cfg, &schedule, i, &state, &out, &z, &mut prev, &mut hat).unwrap();
                state = prev;
            }
            assert_eq!((bits(state), bits(hat)), (bits(x), bits(x0)), "{cfg:?}");
        }
    }

    #[test]
    fn bad_buffers_and_configs_are_rejected() {
        let data = respaced(&BetaSchedule::PAPER, &Spacing::Linspace, 10);
        let schedule = Schedule::from_tables(&data, 10).unwrap();
        let train = full_tables(&BetaSchedule::PAPER);
        let den = PointMass {
            point: &POINT,
            train: Schedule::from_tables(&train, 1000).unwrap(),
            prediction: Prediction::Epsilon,
        };
        let need = trajectory_scratch_len(den.scratch_len(), 3);
        assert_eq!(need, 2 + 9);
        let cfg = SamplerConfig::PAPER;
        let mut rec = Recorder::default();
        let (mut x, mut x0, mut short) = ([0.0f32; 3], [0.0f32; 3], [0.0f32; 2]);
        let mut scratch = vec![0.0f32; need];
        assert!(matches!(
            sample_trajectory(
                &den,
                &schedule,
                &cfg,
                1,
                0,
                &mut x,
                &mut x0,
                &mut rec,
                &mut scratch[..need - 1]
            ),
            Err(Error::BufferTooSmall(_))
        ));
        assert!(matches!(
            sample_trajectory(
                &den,
                &schedule,
                &cfg,
                1,
                0,
                &mut short,
                &mut x0,
                &mut rec,
                &mut scratch
            ),
            Err(Error::LengthMismatch(_))
        ));
        assert!(matches!(
            sample_trajectory(
                &den,
                &schedule,
                &cfg,
                1,
                0,
                &mut x,
                &mut short,
                &mut rec,
                &mut scratch
            ),
            Err(Error::LengthMismatch(_))
        ));
        let mismatch = SamplerConfig {
            prediction: Prediction::Sample,
            ..cfg
        };
        assert!(matches!(
            sample_trajectory(
                &den,
                &schedule,
                &mismatch,
                1,
                0,
                &mut x,
                &mut x0,
                &mut rec,
                &mut scratch
            ),
            Err(Error::InvalidParameter(_))
        ));
        let bad_eta = SamplerConfig {
            method: Method::Ddim { eta: 2.0 },
            ..cfg
        };
        assert!(matches!(
            sample_trajectory(
                &den,
                &schedule,
                &bad_eta,
                1,
                0,
                &mut x,
                &mut x0,
                &mut rec,
                &mut scratch
            ),
            Err(Error::InvalidParameter(_))
        ));
        assert!(
            rec.steps.is_empty(),
            "nothing observed after a rejected call"
        );
        // Scratch may be longer than needed.
        let mut long = vec![0.0f32; need + 5];
        assert!(
            sample_trajectory(
                &den, &schedule, &cfg, 1, 0, &mut x, &mut x0, &mut rec, &mut long
            )
            .is_ok()
        );
    }
}
