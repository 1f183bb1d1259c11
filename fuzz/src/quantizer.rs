//! `quantizer`: the post-training quantiser ([`quantize_into`]) on arbitrary small f32
//! models and arbitrary activation ranges (observed ones, or raw values including NaN/∞).
//!
//! Properties: whatever the quantiser writes, its own validator accepts; the section loads
//! as a [`QuantMlp`], runs on ordinary and saturating inputs without panicking, and round
//! trips through a `.mrg` file.

use mirage_core::format::full_tables;
use mirage_core::quant::{Ranges, quantize_into, quantize_scratch_len, section, section_len};
use mirage_core::{
    BetaSchedule, Denoiser, Mlp, MlpShape, ModelFile, ModelHeader, ModelKind, Prediction,
    QuantKind, QuantMlp, encoded_len, table_len, write_quant_model,
};

use super::reader::Reader;
use super::util::Aligned;

/// A small shape (sometimes invalid).
pub fn small_shape(r: &mut Reader<'_>) -> MlpShape {
    MlpShape {
        dim: r.range(0, 4),
        width: r.range(0, 12),
        blocks: r.range(0, 3),
        temb_dim: 2 * r.range(1, 5),
    }
}

/// The harness.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let shape = small_shape(&mut r);
    let hostile = r.u8() == 0;
    let scale = f32::from(r.u8()) / 16.0;
    let params: Vec<f32> = (0..shape.param_count().min(4096))
        .map(|_| {
            if hostile {
                r.f32()
            } else {
                r.f32_finite() * scale
            }
        })
        .collect();
    let Ok(mlp) = Mlp::new(shape, &params) else {
        return;
    };
    let train_steps = r.range(0, 200);
    let kind = if r.bool() {
        QuantKind::Q16
    } else {
        QuantKind::Q8
    };
    let mut ranges = Ranges::default();
    if r.bool() {
        ranges = Ranges {
            x: r.f32(),
            h: r.f32(),
            u: r.f32(),
            a1: r.f32(),
            a2: r.f32(),
            ao: r.f32(),
        };
    } else {
        let mut scratch = vec![0.0f32; shape.scratch_len() + shape.width + shape.dim];
        for _ in 0..r.range(1, 4) {
            let t = r.u32() % 1000;
            let n = shape.dim * r.range(0, 3);
            let x = r.f32s(n);
            let _ = ranges.observe(&mlp, t, &x, &mut scratch);
        }
    }
    let len = section_len(&shape, kind);
    let mut out = vec![0u8; len];
    let mut scratch = vec![0.0f32; quantize_scratch_len(&shape)];
    // Short buffers are errors.
    let mut short = vec![0u8; len.saturating_sub(1)];
    assert!(
        quantize_into(
            &mlp,
            train_steps.max(1),
            &ranges,
            kind,
            &mut short,
            &mut scratch
        )
        .is_err()
    );
    let Ok(n) = quantize_into(&mlp, train_steps, &ranges, kind, &mut out, &mut scratch) else {
        return;
    };
    assert_eq!(n, len);
    section::validate(&shape, kind, &out).expect("the validator accepts the quantiser's output");
    let aligned = Aligned::from_bytes(&out);
    let q = QuantMlp::new(shape, kind, Prediction::Epsilon, aligned.bytes())
        .expect("the quantiser's output loads");
    let mut qs = vec![0.0f32; q.scratch_len()];
    for v in [0.0f32, 0.5, -3.0, 1e6, -1e38, f32::MIN_POSITIVE / 4.0] {
        let x = vec![v; shape.dim];
        let mut y = vec![0.0f32; shape.dim];
        let t = r.u32() % train_steps as u32;
        q.predict(t, &x, &mut y, &mut qs)
            .expect("finite inputs are accepted");
    }

    // Into a file and back.
    let model_kind = match kind {
        QuantKind::Q8 => ModelKind::MlpQ8,
        QuantKind::Q16 => ModelKind::MlpQ16,
    };
    let header = ModelHeader {
        kind: model_kind,
        ..ModelHeader::new(shape, train_steps, BetaSchedule::PAPER, Prediction::Epsilon)
    };
    let mut tables = vec![0.0f32; table_len(train_steps)];
    if full_tables(&BetaSchedule::PAPER, train_steps, &mut tables).is_err() {
        return;
    }
    let mut file = Aligned::zeroed(encoded_len(&header).expect("valid header"));
    let n = write_quant_model(&header, &tables, &out, file.bytes_mut()).expect("writes");
    let model = ModelFile::parse(&file.bytes()[..n]).expect("a written quantised model parses");
    assert_eq!(model.quant_mlp().map(|m| m.kind()), Ok(kind));
}
