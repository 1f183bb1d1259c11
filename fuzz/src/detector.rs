//! `detector`: [`Hal`], [`HalSingle`] and [`PathLength`] fed arbitrary streams of
//! observations (any step order, lengths, NaN/∞/subnormal values, resets, early reads).
//!
//! Properties: a score that is returned is never NaN and never negative (non-finite input
//! gives +∞); [`flagged`](mirage_core::detector::flagged) flags every non-finite score; Hal agrees with a two-pass
//! f64 population variance of the observed x̂0 when every value is moderate.

use mirage_core::detector::flagged;
use mirage_core::{Detector, Hal, HalSingle, PathLength};

use super::reader::Reader;

fn check_score(s: f32) {
    assert!(!s.is_nan() && s >= 0.0, "score {s}");
    if !s.is_finite() {
        assert!(flagged(s, f32::INFINITY) && flagged(s, f32::NAN));
    }
}

/// The harness.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let window = r.range(0, 12);
    let dim = r.range(0, 4);
    let samples = r.range(0, 3);
    let extra = if r.u8() == 0 { 1 } else { 0 };
    let mut hal_state = vec![0.0f32; Hal::state_len(samples, dim) + extra];
    let mut pl_state = vec![0.0f32; PathLength::state_len(samples, dim) + extra];
    let hal = Hal::new(window, dim, &mut hal_state);
    let pl = PathLength::new(window, dim, &mut pl_state);
    let single = HalSingle::<2>::new(window);
    let (Ok(mut hal), Ok(mut pl)) = (hal, pl) else {
        return;
    };
    let mut single = single.ok();
    let batch = samples * dim;
    // The x̂0 values Hal should have seen in its window, per element, for the f64 check.
    let mut seen: Vec<Vec<f32>> = vec![Vec::new(); batch];
    let mut last: Option<usize> = None;
    let mut valid = true;
    let mut scores = vec![0.0f32; samples];
    while !r.is_empty() {
        match r.u8() % 8 {
            0 => {
                hal.reset();
                pl.reset();
                if let Some(s) = single.as_mut() {
                    s.reset();
                }
                seen.iter_mut().for_each(Vec::clear);
                last = None;
                valid = true;
            }
            1 => {
                let mut out = vec![0.0f32; samples + usize::from(r.bool())];
                if hal.scores(&mut out).is_ok() {
                    out.iter().copied().for_each(check_score);
                }
                if pl.scores(&mut out).is_ok() {
                    out.iter().copied().for_each(check_score);
                }
                if let Some(s) = &single {
                    if let Ok(v) = s.score() {
                        check_score(v);
                    }
                }
            }
            _ => {
                let i = if r.bool() {
                    r.range(0, 12)
                } else {
                    r.u32() as usize
                };
                let n = if r.u8() == 0 { r.range(0, 8) } else { batch };
                let x_t = r.f32s(n);
                let n0 = if r.u8() == 0 { r.range(0, 8) } else { n };
                let x0 = r.f32s(n0);
                let ok = hal.observe(i, &x_t, &x0).is_ok();
                let _ = pl.observe(i, &x_t, &x0);
                if let Some(s) = single.as_mut() {
                    let _ = s.observe(i, &x_t, &x0);
                }
                if ok && i < window {
                    assert!(
                        last.is_none_or(|l| i < l),
                        "Hal accepted step {i} after {last:?}"
                    );
                    last = Some(i);
                    for (e, &v) in seen.iter_mut().zip(&x0) {
                        e.push(v);
                    }
                } else if !ok {
                    // A rejected observation leaves the detector as it was.
                }
                if ok && x0.iter().any(|v| !v.is_finite() || v.abs() > 1e4) {
                    valid = false;
                }
            }
        }
    }
    if hal.scores(&mut scores).is_ok() {
        scores.iter().copied().for_each(check_score);
        if valid && dim > 0 {
            for (s, elems) in scores.iter().zip(seen.chunks(dim)) {
                let mut want = 0.0f64;
                for e in elems {
                    let k = e.len() as f64;
                    let mean = e.iter().map(|&v| f64::from(v)).sum::<f64>() / k;
                    want += e
                        .iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>()
                        / k;
                }
                want /= dim as f64;
                let tol = 1e-4 * want + 1e-6;
                assert!(
                    (f64::from(*s) - want).abs() <= tol,
                    "Hal {s} vs two-pass f64 {want} over {elems:?}"
                );
            }
        }
    }
}
