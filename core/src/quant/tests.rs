//! QuantMlp against the f32 Mlp it was quantised from, the file round trip and corruption.

use super::*;
use crate::denoiser::Denoiser;
use crate::error::Error;
use crate::format::{
    ModelFile, ModelHeader, ModelKind, encoded_len, full_tables, write_quant_model,
};
use crate::mlp::{Mlp, MlpShape, Tap};
use crate::sampler::Prediction;
use crate::schedule::{BetaSchedule, table_len};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::vec;
use std::vec::Vec;

const SHAPE: MlpShape = MlpShape {
    dim: 2,
    width: 32,
    blocks: 2,
    temb_dim: 16,
};
const T: usize = 100;

fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * ((rng.next_u32() >> 8) as f32 / 16_777_216.0)
}

/// Xavier-uniform matrices, LN γ ≈ 1, small biases.
fn random_params(shape: MlpShape, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = vec![0.0f32; shape.param_count()];
    for t in shape.tensors() {
        let dst = &mut p[t.range()];
        if t.cols > 1 || t.name == "in_fc.weight" || t.name == "out_fc.weight" {
            let a = (6.0 / (t.rows + t.cols) as f32).sqrt();
            dst.iter_mut().for_each(|v| *v = uniform(&mut rng, -a, a));
        } else if t.name.ends_with("norm1.weight")
            || t.name.ends_with("norm2.weight")
            || t.name == "out_norm.weight"
        {
            dst.iter_mut()
                .for_each(|v| *v = uniform(&mut rng, 0.7, 1.3));
        } else {
            dst.iter_mut()
                .for_each(|v| *v = uniform(&mut rng, -0.2, 0.2));
        }
    }
    p
}

struct Aligned(Vec<u64>, usize);
impl Aligned {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(8)], len)
    }
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.0)[..self.1]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.1;
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.0)[..n]
    }
}

fn calib_inputs(n: usize, seed: u64) -> Vec<(u32, Vec<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let t = rng.next_u32() % T as u32;
            let x = (0..SHAPE.dim * 8)
                .map(|_| uniform(&mut rng, -3.0, 3.0))
                .collect();
            (t, x)
        })
        .collect()
}

fn quantized_file(params: &[f32], kind: QuantKind) -> Aligned {
    let mlp = Mlp::new(SHAPE, params).unwrap();
    let mut scratch = vec![0.0f32; SHAPE.scratch_len()];
    let mut ranges = Ranges::default();
    for (t, x) in calib_inputs(64, 7) {
        ranges.observe(&mlp, t, &x, &mut scratch).unwrap();
    }
    let mut section = vec![0u8; section_len(&SHAPE, kind)];
    let mut qs = vec![0.0f32; quantize_scratch_len(&SHAPE)];
    let n = quantize_into(&mlp, T, &ranges, kind, &mut section, &mut qs).unwrap();
    assert_eq!(n, section.len());
    let model_kind = match kind {
        QuantKind::Q8 => ModelKind::MlpQ8,
        QuantKind::Q16 => ModelKind::MlpQ16,
    };
    let header = ModelHeader {
        kind: model_kind,
        ..ModelHeader::new(SHAPE, T, BetaSchedule::PAPER, Prediction::Epsilon)
    };
    let mut tables = vec![0.0f32; table_len(T)];
    full_tables(&BetaSchedule::PAPER, T, &mut tables).unwrap();
    let mut file = Aligned::new(encoded_len(&header).unwrap());
    write_quant_model(&header, &tables, &section, file.bytes_mut()).unwrap();
    file
}

fn rel_rms(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

#[test]
fn fixed_point_tracks_f32_per_tap_and_at_the_output() {
    let params = random_params(SHAPE, 1);
    let mlp = Mlp::new(SHAPE, &params).unwrap();
    for (kind, tol) in [(QuantKind::Q8, 1e-2), (QuantKind::Q16, 1e-3)] {
        let file = quantized_file(&params, kind);
        let model = ModelFile::parse(file.bytes()).unwrap();
        assert_eq!(model.header().kind.quant_kind(), Some(kind));
        assert!(model.mlp().is_err());
        let q = model.quant_mlp().unwrap();
        // Calibration-independent inputs: other seed, other t.
        let mut f_taps: Vec<Vec<f32>> = vec![Vec::new(); 16];
        let mut q_taps: Vec<Vec<f32>> = vec![Vec::new(); 16];
        let mut iso_taps: Vec<Vec<f32>> = vec![Vec::new(); 16];
        let slot = |tap: Tap, block: usize| match tap {
            Tap::InFc => 0,
            Tap::Norm1 => 1 + 4 * block,
            Tap::Fc1 => 2 + 4 * block,
            Tap::Norm2 => 3 + 4 * block,
            Tap::Residual => 4 + 4 * block,
            Tap::OutNorm => 13,
            Tap::Out => 14,
        };
        let mut fs = vec![0.0f32; SHAPE.scratch_len()];
        let mut qs = vec![0.0f32; q.scratch_len()];
        for (t, x) in calib_inputs(40, 99) {
            let mut bias = vec![0.0f32; SHAPE.width];
            mlp.time_bias(t, &mut bias, &mut fs).unwrap();
            let mut c = vec![0i32; SHAPE.width];
            q.time_bias(t, &mut c, &mut qs).unwrap();
            let deq: Vec<f32> = c.iter().map(|&v| v as f32 * q.scales().u).collect();
            f_taps[15].extend_from_slice(&bias);
            q_taps[15].extend_from_slice(&deq);
            for xs in x.chunks_exact(SHAPE.dim) {
                let mut out = [0.0f32; 2];
                mlp.forward_probed(&bias, xs, &mut out, &mut fs, &mut |tap, b, v| {
                    f_taps[slot(tap, b)].extend_from_slice(v)
                })
                .unwrap();
                let mut qout = [0.0f32; 2];
                q.forward_probed(&c, xs, &mut qout, &mut qs, &mut |tap, b, v| {
                    q_taps[slot(tap, b)].extend_from_slice(v);
                    false
                })
                .unwrap();
                // The Denoiser path gives the same bits as the probed path.
                let mut dout = [0.0f32; 2];
                q.predict(t, xs, &mut dout, &mut qs).unwrap();
                assert_eq!(dout, qout);
                // Teacher forcing: each tap fed the f32 value isolates that layer's error.
                let mut fvals: Vec<Vec<f32>> = Vec::new();
                mlp.forward_probed(&bias, xs, &mut out, &mut fs, &mut |_, _, v| {
                    fvals.push(v.to_vec())
                })
                .unwrap();
                let mut k = 0;
                q.forward_probed(&c, xs, &mut qout, &mut qs, &mut |tap, b, v| {
                    iso_taps[slot(tap, b)].extend_from_slice(v);
                    v.copy_from_slice(&fvals[k]);
                    k += 1;
                    true
                })
                .unwrap();
                assert_eq!(qout, out, "forcing the last tap returns the f32 output");
            }
        }
        for (i, (f, g)) in f_taps.iter().zip(&q_taps).enumerate() {
            if f.is_empty() {
                continue;
            }
            let e = rel_rms(g, f);
            assert!(
                e <= tol,
                "{kind:?} tap {i}: relative RMS {e:.2e} > {tol:.0e}"
            );
            if i < 15 {
                let iso = rel_rms(&iso_taps[i], f);
                assert!(
                    iso <= tol,
                    "{kind:?} tap {i}: isolated relative RMS {iso:.2e} > {tol:.0e}"
                );
            }
        }
    }
}

#[test]
fn corrupt_sections_are_named_errors() {
    let params = random_params(SHAPE, 2);
    for kind in [QuantKind::Q8, QuantKind::Q16] {
        let file = quantized_file(&params, kind);
        let model = ModelFile::parse(file.bytes()).unwrap();
        let start = file.bytes().len() - 4 - section_len(&SHAPE, kind);
        let section = &file.bytes()[start..file.bytes().len() - 4];
        assert_eq!(section::validate(&SHAPE, kind, section), Ok(()));
        // A weight of −128 / −32768.
        let mut bad = section.to_vec();
        bad[0] = 0x00;
        bad[kind.weight_bytes() - 1] = 0x80;
        assert!(matches!(
            section::validate(&SHAPE, kind, &bad),
            Err(Error::InvalidParameter(_))
        ));
        // Truncated section.
        assert_eq!(
            section::validate(&SHAPE, kind, &section[..section.len() - 4]),
            Err(Error::ShapeMismatch("quantized weight section"))
        );
        // Last word (1/s_x) = NaN.
        let mut bad = section.to_vec();
        let n = bad.len();
        bad[n - 4..].copy_from_slice(&f32::NAN.to_bits().to_le_bytes());
        assert!(matches!(
            section::validate(&SHAPE, kind, &bad),
            Err(Error::InvalidParameter(_))
        ));
        // Every single-byte flip is either rejected or parses without panicking.
        for i in (0..section.len()).step_by(7) {
            let mut bad = section.to_vec();
            bad[i] ^= 0xA5;
            let mut buf = Aligned::new(bad.len());
            buf.bytes_mut().copy_from_slice(&bad);
            if let Ok(q) = QuantMlp::new(SHAPE, kind, Prediction::Epsilon, buf.bytes()) {
                let mut out = [0.0f32; 2];
                let mut s = vec![0.0f32; q.scratch_len()];
                q.predict(5, &[0.5, -40.0], &mut out, &mut s).unwrap();
            }
        }
        let q = model.quant_mlp().unwrap();
        let mut out = [0.0f32; 2];
        let mut s = vec![0.0f32; q.scratch_len()];
        assert_eq!(
            q.predict(0, &[f32::NAN, 0.0], &mut out, &mut s),
            Err(Error::NonFinite("x"))
        );
        assert_eq!(
            q.predict(0, &[1.0, 0.0], &mut out, &mut s[..1]),
            Err(Error::BufferTooSmall("scratch"))
        );
        // Inputs far beyond the range saturate instead of wrapping.
        q.predict(T as u32 + 7, &[1e30, -1e30], &mut out, &mut s)
            .unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn quantised_weights_reproduce_the_f32_weights() {
    // Independent check of the weight quantiser: dequantised weights within half a step.
    let params = random_params(SHAPE, 3);
    let file = quantized_file(&params, QuantKind::Q8);
    let n = section_len(&SHAPE, QuantKind::Q8);
    let bytes = file.bytes();
    let sec = &bytes[bytes.len() - 4 - n..bytes.len() - 4];
    let spec = SHAPE.tensors()[2]; // in_fc [W, D], second matrix in the section
    let off = SHAPE.width * SHAPE.temb_dim;
    for r in 0..spec.rows {
        let row = &params[spec.offset + r * spec.cols..spec.offset + (r + 1) * spec.cols];
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let step = max / 127.0;
        for (c, &w) in row.iter().enumerate() {
            let q = sec[off + r * spec.cols + c] as i8;
            assert!((q as f32 * step - w).abs() <= 0.5 * step + 1e-7);
        }
    }
}
