//! Panic-freedom of mirage-core's public API on hostile input: NaN, ±∞, subnormals, zero
//! and huge sizes, empty slices and mismatched lengths. Every call must return an error or
//! a finite, documented result (elementwise maths may propagate a non-finite input into
//! that element's output only, never into another sample's); none may panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mirage_core::crc32::crc32;
use mirage_core::format::full_tables;
use mirage_core::quant::fixed::{
    LnParams, inv_sqrt, isqrt, layer_norm, leaky, requantize, round_shift, sat_i16,
};
use mirage_core::quant::{Ranges, quantize_into, quantize_scratch_len, section, section_len};
use mirage_core::{
    BetaSchedule, Clip, Denoiser, Detector, EpsilonScaling, Error, ExactGmm, Hal, HalSingle,
    Method, Mlp, MlpShape, ModelFile, ModelHeader, PathLength, Prediction, QuantKind, QuantMlp,
    SamplerConfig, Schedule, Spacing, Variance, chacha_stream, compute_tables, encoded_len,
    fill_normals, normal, philox4x32_10, rademacher, sample_trajectory, step, table_len,
    trajectory_scratch_len, write_model,
};

const HOSTILE: [f32; 9] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    1e-45, // subnormal
    -0.0,
    0.0,
    f32::MIN_POSITIVE,
];
const HOSTILE64: [f64; 8] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MAX,
    5e-324,
    -0.0,
    0.0,
    1.0,
];

fn paper_schedule(t: usize) -> Vec<f32> {
    let mut tables = vec![0.0f32; table_len(t)];
    full_tables(&BetaSchedule::PAPER, t, &mut tables).unwrap();
    tables
}

#[test]
fn schedules_reject_hostile_parameters() {
    for &a in &HOSTILE64 {
        for &b in &HOSTILE64 {
            for beta in [
                BetaSchedule::Linear { start: a, end: b },
                BetaSchedule::ScaledLinear { start: a, end: b },
                BetaSchedule::Cosine { max_beta: a },
            ] {
                for t in [0usize, 1, 2, 10] {
                    if let Ok(v) = beta.beta(t.saturating_sub(1), t) {
                        assert!(
                            v.is_finite() && v > 0.0 && v < 1.0,
                            "{beta:?} T={t}: β = {v}"
                        );
                    }
                    let mut out = vec![0.0f32; table_len(t.min(2))];
                    if compute_tables(&beta, t, &Spacing::Linspace, t.min(2), &mut out).is_ok() {
                        assert!(out.iter().all(|v| v.is_finite()));
                    }
                }
            }
        }
    }
    let custom = [0.5, f64::NAN, 0.1];
    assert!(BetaSchedule::Custom(&custom).validate(3).is_err());
    assert!(BetaSchedule::Custom(&[]).validate(0).is_err());
    assert!(BetaSchedule::Custom(&[0.1]).validate(2).is_err());
    // Huge and zero sizes.
    for (t, n) in [
        (0, 0),
        (1, 0),
        (0, 1),
        (usize::MAX, 1),
        ((1 << 24) + 1, 1),
        (5, 6),
        (usize::MAX, usize::MAX),
    ] {
        let mut out = vec![0.0f32; table_len(n.min(8))];
        assert!(
            compute_tables(&BetaSchedule::PAPER, t, &Spacing::Leading, n, &mut out).is_err(),
            "T={t} n={n}"
        );
        let mut ts = vec![0u32; n.min(8)];
        assert!(Spacing::Trailing.timesteps(t, n, &mut ts).is_err());
    }
    // Output buffer of the wrong length; custom spacings that are not strictly descending.
    let mut short = vec![0.0f32; table_len(4) - 1];
    assert!(compute_tables(&BetaSchedule::PAPER, 10, &Spacing::Linspace, 4, &mut short).is_err());
    for list in [&[3u32, 3][..], &[1, 2], &[10, 0], &[]] {
        assert!(Spacing::Custom(list).validate(10, 2).is_err(), "{list:?}");
    }
}

#[test]
fn schedule_from_tables_rejects_every_hostile_entry() {
    let good = paper_schedule(5);
    assert!(Schedule::from_tables(&good, 5).is_ok());
    assert!(Schedule::from_tables(&good, 0).is_err());
    assert!(Schedule::from_tables(&good, 4).is_err());
    assert!(Schedule::from_tables(&good, usize::MAX).is_err());
    assert!(Schedule::from_tables(&[], 0).is_err());
    for i in 0..good.len() {
        for &v in &HOSTILE[..3] {
            let mut bad = good.clone();
            bad[i] = v;
            assert!(
                Schedule::from_tables(&bad, 5).is_err(),
                "entry {i} = {v} accepted"
            );
        }
    }
    let s = Schedule::from_tables(&good, 5).unwrap();
    assert_eq!(s.coefs(5).err(), Some(Error::StepOutOfRange));
    assert_eq!(s.coefs(usize::MAX).err(), Some(Error::StepOutOfRange));
}

fn configs() -> Vec<SamplerConfig> {
    let mut v = Vec::new();
    for method in [
        Method::Ddpm(Variance::FixedLarge),
        Method::Ddpm(Variance::FixedSmall),
        Method::Ddim { eta: 0.0 },
        Method::Ddim { eta: 1.0 },
        Method::Ddim { eta: f32::NAN },
        Method::Ddim { eta: -1.0 },
        Method::Ddim { eta: f32::INFINITY },
    ] {
        for prediction in [
            Prediction::Epsilon,
            Prediction::Sample,
            Prediction::Velocity,
        ] {
            for clip in [
                Clip::None,
                Clip::Symmetric(1.0),
                Clip::Symmetric(f32::NAN),
                Clip::Symmetric(0.0),
                Clip::Symmetric(-1.0),
            ] {
                for eps_scaling in [
                    EpsilonScaling::Off,
                    EpsilonScaling::Constant(1.01),
                    EpsilonScaling::Constant(0.0),
                    EpsilonScaling::Constant(f32::NAN),
                    EpsilonScaling::Linear { k: 1e-3, b: 1.0 },
                    EpsilonScaling::Linear { k: -1.0, b: 1.0 },
                    EpsilonScaling::Linear {
                        k: f32::INFINITY,
                        b: 1.0,
                    },
                ] {
                    v.push(SamplerConfig {
                        method,
                        prediction,
                        clip,
                        eps_scaling,
                    });
                }
            }
        }
    }
    v
}

#[test]
fn sampler_step_on_hostile_values_and_lengths() {
    let tables = paper_schedule(20);
    let s = Schedule::from_tables(&tables, 20).unwrap();
    let n = HOSTILE.len();
    for cfg in configs() {
        let valid = cfg.validate().is_ok();
        for i in [0usize, 1, 19, 20, usize::MAX] {
            // Sample 0..n hostile, then a clean sample: the clean one stays finite.
            let mut x = HOSTILE.to_vec();
            x.push(0.5);
            let mut out = HOSTILE.iter().rev().copied().collect::<Vec<_>>();
            out.push(0.25);
            let noise = vec![1.0f32; n + 1];
            let (mut prev, mut x0) = (vec![0.0f32; n + 1], vec![0.0f32; n + 1]);
            let r = step(&cfg, &s, i, &x, &out, &noise, &mut prev, &mut x0);
            if valid && i < 20 && cfg.lambda(i).is_ok() {
                r.unwrap();
                assert!(
                    prev[n].is_finite() && x0[n].is_finite(),
                    "{cfg:?} i={i}: clean element contaminated"
                );
            } else {
                assert!(r.is_err(), "{cfg:?} i={i} accepted");
            }
            // Mismatched lengths and empty slices.
            for (lx, lo, ln, lp, l0) in [
                (3, 2, 3, 3, 3),
                (3, 3, 2, 3, 3),
                (3, 3, 3, 2, 3),
                (3, 3, 3, 3, 4),
                (0, 0, 0, 0, 0),
                (3, 3, 0, 3, 3),
            ] {
                let r = step(
                    &cfg,
                    &s,
                    i,
                    &vec![0.0; lx],
                    &vec![0.0; lo],
                    &vec![0.0; ln],
                    &mut vec![0.0; lp],
                    &mut vec![0.0; l0],
                );
                let lengths_ok = lx == lo
                    && lx == lp
                    && lx == l0
                    && (ln == lx || (ln == 0 && !cfg.needs_noise(i)));
                if !lengths_ok {
                    assert!(
                        r.is_err(),
                        "{cfg:?} i={i} lengths {:?} accepted",
                        (lx, lo, ln, lp, l0)
                    );
                }
            }
        }
    }
}

#[test]
fn noise_is_finite_for_every_counter() {
    for seed in [0u64, u64::MAX] {
        for v in [0u32, 1, u32::MAX] {
            let z = normal(seed, v, v, v, v);
            assert!(z.is_finite());
            assert!(rademacher(seed, v, v, v).abs() == 1.0);
            let _ = philox4x32_10([v; 4], [v; 2]);
        }
        fill_normals(seed, 0, 0, 0, &mut []);
        let mut many = vec![0.0f32; 4099];
        fill_normals(seed, u32::MAX, u32::MAX, u32::MAX, &mut many);
        assert!(many.iter().all(|z| z.is_finite() && z.abs() < 10.0));
    }
    // uniform_open is documented as (0, 1), but for bits >> 8 = 2²⁴ − 1 the f32 sum
    // 16777215.5 rounds to 2²⁴ and u = 1.0 exactly (reported; the formula is the shared
    // CPU/GPU contract, so it is pinned here rather than changed). u = 1 gives r = 0, z = 0:
    // finite. u is never 0, so ln(u) is never −∞.
    for bits in [0u32, 1, 255, 256, 0xFFFF_FF7F, u32::MAX] {
        let u = mirage_core::noise::uniform_open(bits);
        assert!(u > 0.0 && u <= 1.0, "{bits}: {u}");
    }
    assert_eq!(mirage_core::noise::uniform_open(u32::MAX), 1.0);
    let _ = chacha_stream(u64::MAX, u64::MAX);
}

#[test]
fn mlp_rejects_bad_shapes_and_weights_and_isolates_samples() {
    for shape in [
        MlpShape {
            dim: 0,
            width: 2,
            blocks: 1,
            temb_dim: 4,
        },
        MlpShape {
            dim: 1,
            width: 0,
            blocks: 1,
            temb_dim: 4,
        },
        MlpShape {
            dim: 1,
            width: 2,
            blocks: 0,
            temb_dim: 4,
        },
        MlpShape {
            dim: 1,
            width: 2,
            blocks: 1,
            temb_dim: 2,
        },
        MlpShape {
            dim: 1,
            width: 2,
            blocks: 1,
            temb_dim: 5,
        },
        MlpShape {
            dim: usize::MAX,
            width: usize::MAX,
            blocks: usize::MAX,
            temb_dim: usize::MAX,
        },
        MlpShape {
            dim: MlpShape::MAX_DIM + 1,
            width: 2,
            blocks: 1,
            temb_dim: 4,
        },
    ] {
        assert!(shape.validate().is_err(), "{shape:?}");
        let _ = shape.param_count(); // saturating, no overflow panic
        let _ = shape.scratch_len();
        let _ = quantize_scratch_len(&shape);
        let _ = QuantMlp::scratch_len_for(&shape);
        assert!(Mlp::new(shape, &[]).is_err());
    }
    let shape = MlpShape {
        dim: 2,
        width: 4,
        blocks: 2,
        temb_dim: 4,
    };
    let good: Vec<f32> = (0..shape.param_count())
        .map(|i| ((i % 7) as f32 - 3.0) * 0.1)
        .collect();
    assert!(Mlp::new(shape, &good[1..]).is_err());
    for &v in &HOSTILE[..3] {
        let mut bad = good.clone();
        bad[shape.param_count() / 2] = v;
        assert!(matches!(
            Mlp::new(shape, &bad),
            Err(Error::NonFiniteWeight(_))
        ));
    }
    let mlp = Mlp::new(shape, &good).unwrap();
    let mut scratch = vec![0.0f32; mlp.scratch_len()];
    for t in [0u32, 999, u32::MAX] {
        let mut emb = [0.0f32; 4];
        Mlp::time_embedding(4, t, &mut emb);
        assert!(emb.iter().all(|v| v.is_finite()));
        for &v in &HOSTILE {
            let x = [v, v, 0.5, -0.5];
            let mut out = [0.0f32; 4];
            mlp.predict(t, &x, &mut out, &mut scratch).unwrap();
            assert!(
                out[2..].iter().all(|o| o.is_finite()),
                "t={t} v={v}: clean sample contaminated {out:?}"
            );
            if v.is_finite() && v.abs() < 1e30 {
                assert!(
                    out[..2].iter().all(|o| o.is_finite()),
                    "t={t} v={v}: {out:?}"
                );
            }
        }
    }
    let mut out = [0.0f32; 3];
    assert!(mlp.predict(0, &[0.0; 3], &mut out, &mut scratch).is_err());
    assert!(
        mlp.predict(0, &[0.0; 2], &mut out[..2], &mut scratch[..1])
            .is_err()
    );
    let _ = mlp.predict(0, &[], &mut [], &mut scratch);
}

#[test]
fn gmm_rejects_bad_mixtures_and_hostile_states() {
    let tables = paper_schedule(10);
    let s = Schedule::from_tables(&tables, 10).unwrap();
    let m = [0.0f32, 1.0];
    for (dim, means, stds, weights) in [
        (0usize, &m[..], &[1.0f32][..], &[1.0f32][..]),
        (2, &m[..], &[1.0][..], &[][..]),
        (2, &m[..], &[f32::NAN][..], &[1.0][..]),
        (2, &m[..], &[-1.0][..], &[1.0][..]),
        (2, &[f32::INFINITY, 0.0][..], &[1.0][..], &[1.0][..]),
        (2, &m[..], &[1.0][..], &[0.0][..]),
        (2, &m[..], &[1.0][..], &[f32::NAN][..]),
        (2, &m[..1], &[1.0][..], &[1.0][..]),
        (2, &m[..], &[1.0, 1.0, 1.0][..], &[1.0][..]),
    ] {
        assert!(
            ExactGmm::new(dim, means, stds, weights, s, Prediction::Epsilon).is_err(),
            "{dim} {means:?} {stds:?} {weights:?}"
        );
    }
    let many = vec![1.0f32; 257];
    assert!(matches!(
        ExactGmm::new(1, &many, &many, &many, s, Prediction::Epsilon),
        Err(Error::CapacityExceeded(_))
    ));
    // Zero σ (a point mass) and hostile x: error or finite.
    let stds = [0.0f32];
    for prediction in [
        Prediction::Epsilon,
        Prediction::Sample,
        Prediction::Velocity,
    ] {
        let g = ExactGmm::new(2, &m, &stds, &[1.0], s, prediction).unwrap();
        let mut scratch = vec![0.0f32; g.scratch_len()];
        for t in [0u32, 9, 10, u32::MAX] {
            for &v in &HOSTILE {
                let mut out = [0.0f32; 2];
                if g.predict(t, &[v, 0.5], &mut out, &mut scratch).is_ok() {
                    assert!(
                        out.iter().all(|o| o.is_finite()),
                        "{prediction:?} t={t} x={v}: {out:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn detectors_on_hostile_streams() {
    assert!(Hal::new(0, 1, &mut [0.0; 3]).is_err());
    assert!(Hal::new(1, 0, &mut [0.0; 3]).is_err());
    assert!(Hal::new(1, 1, &mut []).is_err());
    assert!(Hal::new(1, 2, &mut [0.0; 7]).is_err());
    assert!(Hal::new(usize::MAX, usize::MAX, &mut [0.0; 3]).is_err());
    assert!(PathLength::new(1, usize::MAX, &mut [0.0; 3]).is_err());
    assert!(HalSingle::<0>::new(1).is_err());
    for &v in &HOSTILE {
        let mut state = vec![0.0f32; Hal::state_len(2, 1)];
        let mut hal = Hal::new(3, 1, &mut state).unwrap();
        let mut pstate = vec![0.0f32; PathLength::state_len(2, 1)];
        let mut pl = PathLength::new(3, 1, &mut pstate).unwrap();
        let mut single = HalSingle::<1>::new(3).unwrap();
        let mut scores = [0.0f32; 2];
        assert!(hal.scores(&mut scores).is_err(), "score before any step");
        for i in (0..5).rev() {
            let x0 = [if i == 1 { v } else { 1.0 + i as f32 }, 2.0];
            hal.observe(i, &x0, &x0).unwrap();
            pl.observe(i, &x0, &x0).unwrap();
            single.observe(i, &x0[..1], &x0[..1]).unwrap();
            assert!(
                hal.observe(i, &x0, &x0).is_err() || i >= 3,
                "repeated step accepted"
            );
            assert!(hal.observe(0, &x0[..1], &x0).is_err());
        }
        hal.scores(&mut scores).unwrap();
        let want_inf = !v.is_finite();
        assert!(!scores[0].is_nan() && scores[0] >= 0.0, "{v}: {scores:?}");
        assert_eq!(
            scores[0].is_infinite(),
            want_inf || v.abs() > 1e19,
            "{v}: {scores:?}"
        );
        assert!(
            scores[1] == 0.0,
            "the other sample is untouched: {scores:?}"
        );
        let s1 = single.score().unwrap();
        assert!(
            s1.to_bits() == scores[0].to_bits(),
            "HalSingle {s1} vs Hal {}",
            scores[0]
        );
        pl.scores(&mut scores).unwrap();
        assert!(
            !scores[0].is_nan() && scores[0] >= 0.0 && scores[1] == 0.0,
            "{v}: {scores:?}"
        );
        assert!(pl.scores(&mut [0.0; 3]).is_err());
    }
}

#[test]
fn trajectory_rejects_mismatches() {
    let tables = paper_schedule(10);
    let s = Schedule::from_tables(&tables, 10).unwrap();
    let g = ExactGmm::new(1, &[1.0], &[0.1], &[1.0], s, Prediction::Epsilon).unwrap();
    let mut st = vec![0.0f32; Hal::state_len(1, 1)];
    let mut hal = Hal::new(2, 1, &mut st).unwrap();
    let need = trajectory_scratch_len(g.scratch_len(), 1);
    let cfg = SamplerConfig::PAPER;
    let wrong_pred = SamplerConfig {
        prediction: Prediction::Sample,
        ..cfg
    };
    let mut scratch = vec![0.0f32; need];
    let (mut x, mut x0) = ([0.0f32; 1], [0.0f32; 1]);
    assert!(
        sample_trajectory(
            &g,
            &s,
            &wrong_pred,
            0,
            0,
            &mut x,
            &mut x0,
            &mut hal,
            &mut scratch
        )
        .is_err()
    );
    assert!(
        sample_trajectory(
            &g,
            &s,
            &cfg,
            0,
            0,
            &mut [0.0; 2],
            &mut x0,
            &mut hal,
            &mut scratch
        )
        .is_err()
    );
    assert!(
        sample_trajectory(&g, &s, &cfg, 0, 0, &mut x, &mut [], &mut hal, &mut scratch).is_err()
    );
    assert!(
        sample_trajectory(
            &g,
            &s,
            &cfg,
            0,
            0,
            &mut x,
            &mut x0,
            &mut hal,
            &mut scratch[..need - 1]
        )
        .is_err()
    );
    sample_trajectory(
        &g,
        &s,
        &cfg,
        u64::MAX,
        u32::MAX,
        &mut x,
        &mut x0,
        &mut hal,
        &mut scratch,
    )
    .unwrap();
    assert!(x[0].is_finite() && x0[0].is_finite());
}

#[test]
fn model_files_every_prefix_and_hostile_header() {
    let shape = MlpShape {
        dim: 1,
        width: 2,
        blocks: 1,
        temb_dim: 4,
    };
    let header = ModelHeader::new(shape, 3, BetaSchedule::PAPER, Prediction::Epsilon);
    let params = vec![0.1f32; shape.param_count()];
    let tables = paper_schedule(3);
    let n = encoded_len(&header).unwrap();
    let mut storage = Aligned::new(n);
    let buf = storage.get();
    assert!(write_model(&header, &tables, &params, &mut buf[..n - 1]).is_err());
    assert!(write_model(&header, &tables[1..], &params, buf).is_err());
    let mut nan_params = params.clone();
    nan_params[0] = f32::NAN;
    assert!(matches!(
        write_model(&header, &tables, &nan_params, buf),
        Err(Error::NonFiniteWeight(_))
    ));
    write_model(&header, &tables, &params, buf).unwrap();
    for cut in 0..n {
        assert!(
            ModelFile::parse(&buf[..cut]).is_err(),
            "prefix {cut} parsed"
        );
    }
    assert!(ModelFile::parse(&buf[..n]).is_ok());
    // Hostile headers: sizes, T, τ.
    for (shape2, t, tau, k) in [
        (
            MlpShape {
                dim: usize::MAX,
                ..shape
            },
            3,
            f32::NAN,
            0,
        ),
        (shape, 0, f32::NAN, 0),
        (shape, usize::MAX, f32::NAN, 0),
        (shape, 3, f32::INFINITY, 1),
        (shape, 3, -1.0, 1),
        (shape, 3, 0.5, 0),
        (shape, 3, f32::NAN, 3),
    ] {
        let h = ModelHeader::new(shape2, t, BetaSchedule::PAPER, Prediction::Epsilon)
            .with_hal_threshold(tau, k);
        assert!(encoded_len(&h).is_err(), "{h:?}");
    }
    assert_eq!(crc32(&[]), 0);
}

/// `n` zero bytes starting 8-byte aligned (model files and sections are borrowed as f32).
struct Aligned(Vec<u8>, usize, usize);
impl Aligned {
    fn new(n: usize) -> Self {
        let v = vec![0u8; n + 8];
        let o = v.as_ptr().align_offset(8);
        Self(v, o, n)
    }
    fn get(&mut self) -> &mut [u8] {
        &mut self.0[self.1..self.1 + self.2]
    }
}

#[test]
fn fixed_point_primitives_saturate() {
    for v in [i128::MAX, i128::MIN, 0, -1, 1] {
        for k in [0u32, 1, 31, 126, 127, u32::MAX] {
            let _ = round_shift(v, k);
        }
    }
    for (acc, m) in [
        (i64::MAX, i32::MAX),
        (i64::MIN, i32::MIN),
        (i64::MIN, i32::MAX),
    ] {
        for k in [0u32, 1, 62, u32::MAX] {
            let y = requantize(acc, m, k, i32::MAX, i32::MAX);
            assert!(y.unsigned_abs() <= i32::MAX as u32);
            let _ = requantize(acc, m, k, i32::MIN, 0);
        }
    }
    assert_eq!(sat_i16(i64::MIN), i16::MIN);
    let _ = leaky(i64::MIN);
    assert_eq!(isqrt(u64::MAX), u64::from(u32::MAX));
    let _ = inv_sqrt(0);
    let _ = inv_sqrt(u64::MAX);
    let p = LnParams {
        eps: u64::MAX,
        gain_shift: u32::MAX,
        gain: &[i32::MAX, i32::MIN],
        bias: &[i32::MIN],
    };
    let mut out = [0i16; 3];
    layer_norm(&[i32::MAX, i32::MIN, 0], &p, true, &mut out);
    layer_norm(&[], &p, false, &mut out);
    layer_norm(&[1, 2, 3], &p, false, &mut []);
}

#[test]
fn quantiser_and_quant_mlp_on_hostile_input() {
    let shape = MlpShape {
        dim: 1,
        width: 2,
        blocks: 1,
        temb_dim: 4,
    };
    let params = vec![0.25f32; shape.param_count()];
    let mlp = Mlp::new(shape, &params).unwrap();
    let mut ranges = Ranges::default();
    let mut scratch = vec![0.0f32; shape.scratch_len()];
    assert_eq!(
        ranges.observe(&mlp, 0, &[f32::NAN], &mut scratch),
        Err(Error::NonFinite("x"))
    );
    assert!(ranges.observe(&mlp, 0, &[0.5], &mut scratch[..1]).is_err());
    for kind in [QuantKind::Q8, QuantKind::Q16] {
        for &v in &HOSTILE {
            let r = Ranges {
                x: v,
                h: v,
                u: v,
                a1: v,
                a2: v,
                ao: v,
            };
            let mut out = vec![0u8; section_len(&shape, kind)];
            let mut qs = vec![0.0f32; quantize_scratch_len(&shape)];
            for t in [0usize, 1, 1 << 33] {
                if quantize_into(&mlp, t, &r, kind, &mut out, &mut qs).is_ok() {
                    section::validate(&shape, kind, &out).unwrap();
                    let mut storage = Aligned::new(out.len());
                    let b = storage.get();
                    b.copy_from_slice(&out);
                    let q = QuantMlp::new(shape, kind, Prediction::Epsilon, b).unwrap();
                    let mut y = [0.0f32];
                    let mut s = vec![0.0f32; q.scratch_len()];
                    for &x in &HOSTILE {
                        if q.predict(0, &[x], &mut y, &mut s).is_ok() {
                            assert!(y[0].is_finite(), "{kind:?} ranges {v} x {x}: {y:?}");
                        }
                    }
                }
            }
            assert!(quantize_into(&mlp, 1, &r, kind, &mut out[1..], &mut qs).is_err());
            assert!(quantize_into(&mlp, 1, &r, kind, &mut out, &mut []).is_err());
        }
        // Garbage sections: rejected or usable, never a panic.
        for fill in [0u8, 0x80, 0xFF, 0x7F] {
            let mut storage = Aligned::new(section_len(&shape, kind));
            let b = storage.get();
            b.fill(fill);
            if let Ok(q) = QuantMlp::new(shape, kind, Prediction::Epsilon, b) {
                let mut y = [0.0f32];
                let mut s = vec![0.0f32; q.scratch_len()];
                let _ = q.predict(3, &[1.0], &mut y, &mut s);
            }
            assert!(QuantMlp::new(shape, kind, Prediction::Epsilon, &b[1..]).is_err());
        }
    }
}
