//! `sampler_step`: arbitrary β schedules, spacings, sampler configurations, sizes and floats
//! through [`compute_tables`], [`Schedule::from_tables`], [`step`] and a whole
//! [`sample_trajectory`] with the exact mixture denoiser.
//!
//! Properties besides "no panic": tables that `compute_tables` accepted are a valid
//! [`Schedule`]; a step on finite inputs with a finite model output returns finite x̂0
//! whenever its coefficients are finite; the detector score after a trajectory is not NaN.

use mirage_core::{
    BetaSchedule, Clip, EpsilonScaling, ExactGmm, Hal, Method, Prediction, SamplerConfig, Schedule,
    Spacing, Variance, compute_tables, sample_trajectory, step, table_len, trajectory_scratch_len,
};

use super::reader::Reader;

fn prediction(r: &mut Reader<'_>) -> Prediction {
    match r.u8() % 3 {
        0 => Prediction::Epsilon,
        1 => Prediction::Sample,
        _ => Prediction::Velocity,
    }
}

/// An arbitrary configuration (valid most of the time, hostile sometimes).
pub fn config(r: &mut Reader<'_>) -> SamplerConfig {
    let method = match r.u8() % 3 {
        0 => Method::Ddpm(Variance::FixedLarge),
        1 => Method::Ddpm(Variance::FixedSmall),
        _ => Method::Ddim {
            eta: if r.bool() {
                f32::from(r.u8()) / 255.0
            } else {
                r.f32()
            },
        },
    };
    let prediction = prediction(r);
    let clip = if r.bool() {
        Clip::Symmetric(r.f32())
    } else {
        Clip::None
    };
    let eps_scaling = match r.u8() % 3 {
        0 => EpsilonScaling::Off,
        1 => EpsilonScaling::Constant(r.f32()),
        _ => EpsilonScaling::Linear {
            k: r.f32() * 1e-3,
            b: r.f32(),
        },
    };
    SamplerConfig {
        method,
        prediction,
        clip,
        eps_scaling,
    }
}

/// The harness.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    // β schedule over T training steps (T ≤ 2000 keeps an iteration fast; the size limits
    // themselves are covered by the adversarial tests).
    let train_steps = if r.u8() == 255 {
        // The size limits, without paying O(T) for a huge accepted T.
        [0, (1 << 24) + 1, u32::MAX as usize, usize::MAX][r.range(0, 3)]
    } else {
        r.range(0, 2000)
    };
    let custom_betas: Vec<f64> = (0..r.range(0, 64)).map(|_| r.f64()).collect();
    let beta = match r.u8() % 5 {
        0 => BetaSchedule::PAPER,
        1 => BetaSchedule::Linear {
            start: r.f64(),
            end: r.f64(),
        },
        2 => BetaSchedule::ScaledLinear {
            start: r.f64(),
            end: r.f64(),
        },
        3 => BetaSchedule::Cosine { max_beta: r.f64() },
        _ => BetaSchedule::Custom(&custom_betas),
    };
    let steps = r.range(0, 40);
    let custom_ts: Vec<u32> = (0..r.range(0, 40)).map(|_| r.u32() % 2048).collect();
    let spacing = match r.u8() % 4 {
        0 => Spacing::Leading,
        1 => Spacing::Trailing,
        2 => Spacing::Linspace,
        _ => Spacing::Custom(&custom_ts),
    };
    let mut tables = vec![0.0f32; table_len(steps)];
    let mut short = vec![0.0f32; table_len(steps).saturating_sub(1)];
    let _ = compute_tables(&beta, train_steps, &spacing, steps, &mut short);
    if compute_tables(&beta, train_steps, &spacing, steps, &mut tables).is_err() {
        // Arbitrary tables straight into the schedule validator instead.
        let n = r.range(0, 4);
        let raw = r.f32s(table_len(n));
        let _ = Schedule::from_tables(&raw, n);
        return;
    }
    let schedule = Schedule::from_tables(&tables, steps).expect("compute_tables output validates");
    let _ = Schedule::from_tables(&tables, steps + 1);

    // Single steps on arbitrary batches.
    let cfg = config(&mut r);
    let n = r.range(0, 8);
    let i = if r.bool() {
        r.range(0, steps + 1)
    } else {
        r.u32() as usize
    };
    let x_t = r.f32s(n);
    let n_out = if r.u8() == 0 { n + 1 } else { n };
    let out = r.f32s(n_out);
    let n_noise = match r.u8() % 4 {
        0 => 0,
        1 => n.saturating_sub(1),
        _ => n,
    };
    let noise = r.f32s(n_noise);
    let (mut x_prev, mut x0) = (vec![0.0f32; n], vec![0.0f32; n]);
    let res = step(&cfg, &schedule, i, &x_t, &out, &noise, &mut x_prev, &mut x0);
    if res.is_ok() {
        let inputs_finite = x_t.iter().chain(&out).chain(&noise).all(|v| v.is_finite())
            && x_t.iter().chain(&out).all(|v| v.abs() < 1e3);
        let c = schedule.coefs(i).expect("step accepted i");
        let coefs_moderate = c.inv_sqrt_alpha_bar < 1e3 && c.sqrt_recip_alpha_bar_minus_one < 1e3;
        if inputs_finite && coefs_moderate && cfg.lambda(i).is_ok_and(|l| l > 1e-3) {
            assert!(
                x0.iter().all(|v| v.is_finite()),
                "non-finite x̂0 {x0:?} from finite inputs, cfg {cfg:?}, coefs {c:?}"
            );
        }
    }

    // A trajectory with the exact GMM over the full schedule (T ≤ 64).
    let t_full = r.range(1, 64);
    let mut full = vec![0.0f32; table_len(t_full)];
    if compute_tables(
        &BetaSchedule::PAPER,
        t_full,
        &Spacing::Linspace,
        t_full,
        &mut full,
    )
    .is_err()
    {
        return;
    }
    let full = Schedule::from_tables(&full, t_full).expect("valid");
    let dim = r.range(0, 4);
    let k = r.range(0, 4);
    let means = r.f32s(k * dim);
    let n_stds = if r.bool() { k } else { k * dim };
    let stds = r.f32s(n_stds);
    let weights = r.f32s(k);
    let Ok(gmm) = ExactGmm::new(dim, &means, &stds, &weights, full, prediction(&mut r)) else {
        return;
    };
    let traj_steps = r.range(1, t_full);
    let mut tables = vec![0.0f32; table_len(traj_steps)];
    if compute_tables(
        &BetaSchedule::PAPER,
        t_full,
        &spacing,
        traj_steps,
        &mut tables,
    )
    .is_err()
    {
        return;
    }
    let sched = Schedule::from_tables(&tables, traj_steps).expect("valid");
    let cfg = config(&mut r);
    let mut state = vec![0.0f32; Hal::state_len(1, dim)];
    let Ok(mut hal) = Hal::new(r.range(1, 12), dim, &mut state) else {
        return;
    };
    let (mut x, mut x0) = (vec![0.0f32; dim], vec![0.0f32; dim]);
    let scratch_len = trajectory_scratch_len(mirage_core::Denoiser::scratch_len(&gmm), dim);
    let mut scratch = vec![0.0f32; scratch_len.saturating_sub(r.range(0, 1))];
    if sample_trajectory(
        &gmm,
        &sched,
        &cfg,
        r.u64(),
        r.u32(),
        &mut x,
        &mut x0,
        &mut hal,
        &mut scratch,
    )
    .is_ok()
    {
        let mut s = [0.0f32];
        if hal.scores(&mut s).is_ok() {
            assert!(!s[0].is_nan() && s[0] >= 0.0, "Hal score {}", s[0]);
        }
    }
}
