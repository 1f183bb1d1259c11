//! `fixed_vs_f32`: differential test of the fixed-point network against the f32 network it
//! was quantised from, on arbitrary small valid models, against the error bounds documented
//! in `mirage_core::quant` ("Error bounds").
//!
//! The model: a fuzz-chosen shape, weights drawn from a fuzz-chosen seed (Xavier-uniform
//! matrices times a fuzz-chosen gain, LayerNorm γ around 1, small biases), calibrated with
//! [`Ranges::observe`] on inputs x ~ U(−a, a) at random t. Checked on other inputs from the
//! same range: no panic, finite outputs, and with ε = 1e−2 (q8) or 1e−3 (q16), each error
//! an RMS over all compared values:
//!
//! - isolated (each layer fed the f32 network's input): every LayerNorm output within ε
//!   of f32, relative to its own RMS; every linear layer y = W·a + b (in_fc, fc1 + c(t),
//!   h + fc2, out_fc + b_o) within ε relative to its condition magnitude
//!   m_r = Σ_j |W[r,j]|·|a_j| + |b_r| (f32 values); the time bias c(t) (t_proj then enc)
//!   within 2ε relative to enc's condition magnitude;
//! - end to end: ε̂ within L·ε (L = 2 + 2·blocks matrices on the x path) relative to
//!   out_fc's condition magnitude, plus the f32 network's own error from rounding x to the
//!   fixed-point input grid (measured here by running f32 on the rounded input).
//!
//! The condition magnitude, not |y|, is the reference because a W-term sum can cancel:
//! width-16 nets here reach |ε̂| ≈ ‖m‖/70, where a plain relative RMS of 0.27 is a q8 error
//! of 3.7e−3 of m (tests/regressions/fixed_vs_f32/q8_w16_d1_T1_cancellation). The plain
//! relative errors of trained nets are checked by tests/tests/fixed_vs_f32.rs.
//!
//! Widths are 16 … 64 (the paper's is 128) and Xavier gains 1 … 2.5.

use mirage_core::quant::{Ranges, quantize_into, quantize_scratch_len, section_len};
use mirage_core::{Denoiser, Mlp, MlpShape, Prediction, QuantKind, QuantMlp, Tap};

use super::reader::Reader;
use super::util::Aligned;

/// The documented per-layer relative-RMS bound ε for `kind`.
pub fn bound(kind: QuantKind) -> f64 {
    match kind {
        QuantKind::Q8 => 1e-2,
        QuantKind::Q16 => 1e-3,
    }
}

/// SplitMix64: a tiny independent generator for the weights.
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / 16_777_216.0)
    }
}

/// Σ(error²) and Σ(reference²) of one compared quantity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sums {
    err2: f64,
    ref2: f64,
}

impl Sums {
    fn add(&mut self, got: f64, want: f64, reference: f64) {
        self.err2 += (got - want).powi(2);
        self.ref2 += reference.powi(2);
    }

    /// √(Σ error² / Σ reference²).
    pub fn rel(&self) -> f64 {
        (self.err2 / self.ref2.max(1e-30)).sqrt()
    }
}

/// What one input measures.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Shape, gain, amplitude, steps and kind, for messages.
    pub what: String,
    /// The quantiser's kind.
    pub kind: QuantKind,
    /// Residual blocks.
    pub blocks: usize,
    /// Isolated relative RMS of each hidden tap (forward order), with its name (linear
    /// layers relative to their condition magnitude).
    pub hidden: Vec<(String, f64)>,
    /// Isolated error of c(t) relative to enc's condition magnitude.
    pub time: f64,
    /// Isolated error of ε̂ relative to the condition magnitude.
    pub out_isolated: f64,
    /// End-to-end error of ε̂ relative to the condition magnitude.
    pub out_chained: f64,
    /// End-to-end error of ε̂ relative to |ε̂| (reported, not bounded).
    pub out_plain: f64,
    /// The f32 network's error from rounding its input to the fixed-point input grid,
    /// relative to the condition magnitude (part of the end-to-end bound).
    pub input_rounding: f64,
}

/// Builds, quantises and compares one fuzz-chosen model (see the module docs).
pub fn measure(data: &[u8]) -> Measured {
    let mut r = Reader::new(data);
    let shape = MlpShape {
        dim: r.range(1, 4),
        width: r.range(16, 64),
        blocks: r.range(1, 4),
        temb_dim: 2 * r.range(2, 16),
    };
    let mut g = Mix(r.u64());
    // Xavier gain 1 … 2.5.
    let gain = 1.0 + f32::from(r.u8()) / 170.0;
    let amp = 0.5 + f32::from(r.u8()) / 64.0; // input range ±0.5 … ±4.5
    let train_steps = r.range(1, 100);
    let kind = if r.bool() {
        QuantKind::Q16
    } else {
        QuantKind::Q8
    };

    let mut params = vec![0.0f32; shape.param_count()];
    let tensors = shape.tensors();
    for t in &tensors {
        let dst = &mut params[t.range()];
        if t.name.ends_with("norm1.weight")
            || t.name.ends_with("norm2.weight")
            || t.name == "out_norm.weight"
        {
            dst.iter_mut().for_each(|v| *v = g.uniform(0.7, 1.3));
        } else if t.name.ends_with(".weight") {
            let a = gain * (6.0 / (t.rows + t.cols) as f32).sqrt();
            dst.iter_mut().for_each(|v| *v = g.uniform(-a, a));
        } else {
            dst.iter_mut().for_each(|v| *v = g.uniform(-0.2, 0.2));
        }
    }
    let mlp = Mlp::new(shape, &params).expect("finite weights of a valid shape");
    let draw = |g: &mut Mix, n: usize| -> Vec<(u32, Vec<f32>)> {
        (0..n)
            .map(|_| {
                let t = (g.next() % train_steps as u64) as u32;
                (
                    t,
                    (0..shape.dim * 4).map(|_| g.uniform(-amp, amp)).collect(),
                )
            })
            .collect()
    };
    let mut scratch = vec![0.0f32; shape.scratch_len()];
    let mut ranges = Ranges::default();
    for (t, x) in draw(&mut g, 16) {
        ranges
            .observe(&mlp, t, &x, &mut scratch)
            .expect("calibration");
    }
    let mut section = vec![0u8; section_len(&shape, kind)];
    let mut qs = vec![0.0f32; quantize_scratch_len(&shape)];
    if let Err(e) = quantize_into(&mlp, train_steps, &ranges, kind, &mut section, &mut qs) {
        panic!("quantising a well-scaled model failed: {e:?} ({shape:?})");
    }
    let section = Aligned::from_bytes(&section);
    let q = QuantMlp::new(shape, kind, Prediction::Epsilon, section.bytes()).expect("loads");
    let tensor = |i: usize| &params[tensors[i].range()];
    let (d, w) = (shape.dim, shape.width);
    let mut qscratch = vec![0.0f32; q.scratch_len()];
    let (mut bias, mut c, mut temb) = (vec![0.0f32; w], vec![0i32; w], vec![0.0f32; w]);
    let (mut want, mut got) = (vec![0.0f32; d], vec![0.0f32; d]);
    let mut hidden: Vec<(String, Sums)> = Vec::new();
    let (mut time, mut iso, mut chained, mut plain, mut input) = Default::default();
    let (time, iso, chained, plain, input): (
        &mut Sums,
        &mut Sums,
        &mut Sums,
        &mut Sums,
        &mut Sums,
    ) = (&mut time, &mut iso, &mut chained, &mut plain, &mut input);
    let s_x = q.scales().x;
    let mut rounded_out = vec![0.0f32; d];
    for (t, x) in draw(&mut g, 8) {
        mlp.time_bias(t, &mut bias, &mut scratch).expect("f32 c(t)");
        mlp.time_branch(t, &mut temb, &mut scratch)
            .expect("f32 temb");
        q.time_bias(t, &mut c, &mut qscratch).expect("fixed c(t)");
        let s_u = f64::from(q.scales().u);
        let m_c = condition(tensor(6), &temb, tensor(7));
        for ((&cq, &cf), &m) in c.iter().zip(&bias).zip(&m_c) {
            time.add(f64::from(cq) * s_u, f64::from(cf), m);
        }
        for xs in x.chunks_exact(d) {
            let mut taps: Vec<(Tap, Vec<f32>)> = Vec::new();
            mlp.forward_probed(&bias, xs, &mut want, &mut scratch, &mut |tap, _, v| {
                taps.push((tap, v.to_vec()))
            })
            .expect("f32 forward");
            // The condition magnitude of each linear tap (empty for LayerNorm outputs).
            let refs: Vec<Vec<f64>> = (0..taps.len())
                .map(|k| {
                    let input = |back: usize| taps[k - back].1.as_slice();
                    match taps[k].0 {
                        Tap::InFc => condition(tensor(2), xs, &[]),
                        Tap::Fc1 => condition(tensor(5), input(1), &bias),
                        Tap::Residual => condition(tensor(10), input(1), input(4)),
                        Tap::Out => condition(tensor(13), input(1), tensor(14)),
                        _ => Vec::new(),
                    }
                })
                .collect();
            // Isolated: every tap is compared, then overwritten by the f32 value.
            let mut k = 0;
            q.forward_probed(&c, xs, &mut got, &mut qscratch, &mut |tap, block, v| {
                let f = &taps[k].1;
                let sums = if tap == Tap::Out {
                    &mut *iso
                } else {
                    if hidden.len() <= k {
                        hidden.push((format!("{tap:?}[{block}]"), Sums::default()));
                    }
                    &mut hidden[k].1
                };
                for (i, (&gv, &fv)) in v.iter().zip(f).enumerate() {
                    let r = refs[k].get(i).copied().unwrap_or(f64::from(fv));
                    sums.add(f64::from(gv), f64::from(fv), r);
                }
                v.copy_from_slice(f);
                k += 1;
                true
            })
            .expect("fixed-point forward, isolated");
            q.predict(t, xs, &mut got, &mut qscratch)
                .expect("fixed-point forward");
            assert!(
                got.iter().all(|v| v.is_finite()),
                "non-finite fixed-point output {got:?}"
            );
            let m_out = &refs[refs.len() - 1];
            for ((&gv, &fv), &m) in got.iter().zip(&want).zip(m_out) {
                chained.add(f64::from(gv), f64::from(fv), m);
                plain.add(f64::from(gv), f64::from(fv), f64::from(fv));
            }
            // The f32 network's own response to the input's rounding to the i16 grid of
            // step s_x: an error of the input format that no weight quantisation can avoid.
            let rounded: Vec<f32> = xs.iter().map(|&v| (v / s_x).round() * s_x).collect();
            mlp.forward_with_bias(&bias, &rounded, &mut rounded_out, &mut scratch)
                .expect("f32 forward on the rounded input");
            for ((&rv, &fv), &m) in rounded_out.iter().zip(&want).zip(m_out) {
                input.add(f64::from(rv), f64::from(fv), m);
            }
        }
    }
    Measured {
        what: format!("{kind:?} {shape:?}, gain {gain}, amp {amp}, T {train_steps}"),
        kind,
        blocks: shape.blocks,
        hidden: hidden.into_iter().map(|(n, s)| (n, s.rel())).collect(),
        time: time.rel(),
        out_isolated: iso.rel(),
        out_chained: chained.rel(),
        out_plain: plain.rel(),
        input_rounding: input.rel(),
    }
}

/// m_r = Σ_j |W[r,j]|·|a_j| + |b_r| for a row-major `[rows][a.len()]` matrix (`b` empty
/// for none).
fn condition(w: &[f32], a: &[f32], b: &[f32]) -> Vec<f64> {
    w.chunks_exact(a.len())
        .enumerate()
        .map(|(r, row)| {
            let dot: f64 = row
                .iter()
                .zip(a)
                .map(|(wv, av)| f64::from(wv.abs()) * f64::from(av.abs()))
                .sum();
            dot + b.get(r).map_or(0.0, |v| f64::from(v.abs()))
        })
        .collect()
}

/// The harness: [`measure`], then the documented bounds.
pub fn run(data: &[u8]) {
    let m = measure(data);
    let eps = bound(m.kind);
    for (name, rel) in &m.hidden {
        assert!(
            *rel <= eps,
            "{name}: isolated relative error {rel:.3e} > {eps:.0e} ({})",
            m.what
        );
    }
    assert!(
        m.time <= 2.0 * eps,
        "c(t): isolated error {:.3e} of the condition magnitude > 2ε ({})",
        m.time,
        m.what
    );
    assert!(
        m.out_isolated <= eps,
        "ε̂ isolated: {:.3e} of the condition magnitude > {eps:.0e} ({})",
        m.out_isolated,
        m.what
    );
    let l = (2 + 2 * m.blocks) as f64;
    let end_to_end = l * eps + m.input_rounding;
    assert!(
        m.out_chained <= end_to_end,
        "ε̂ end to end: {:.3e} of the condition magnitude > Lε + input rounding = {:.3e} (plain relative RMS {:.3e}; {})",
        m.out_chained,
        end_to_end,
        m.out_plain,
        m.what
    );
}
