//! `model_file`: [`ModelFile::parse`] on arbitrary bytes, then everything a parsed file
//! offers: schedule coefficients, the network (f32 or fixed point) on ordinary and hostile
//! inputs, a short respaced trajectory with Hal, and a re-encode that must parse again.
//!
//! Input: one flag byte, then the file. Flag bit 0: rewrite the CRC so mutations reach the
//! section checks; bit 1: parse from a misaligned address as well.

use mirage_core::format::{HEADER_LEN, ModelWeights};
use mirage_core::{
    Denoiser, Error, Hal, ModelFile, SamplerConfig, Spacing, compute_tables, encoded_len,
    sample_trajectory, table_len, trajectory_scratch_len, write_model, write_quant_model,
};

use super::util::{Aligned, fix_mrg_crc};

/// Inputs every network is evaluated on (per dimension).
const PROBES: [f32; 6] = [0.0, 1.0, -2.5, 1e4, -3e38, 1e-40];

/// The harness.
pub fn run(data: &[u8]) {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    let mut buf = Aligned::from_bytes(file);
    if flags & 1 == 1 {
        fix_mrg_crc(buf.bytes_mut());
    }
    if flags & 2 == 2 && buf.bytes().len() > 1 {
        let r = ModelFile::parse(buf.misaligned());
        assert!(
            matches!(
                r,
                Err(Error::Misaligned
                    | Error::BadMagic
                    | Error::Truncated
                    | Error::UnsupportedVersion
                    | Error::UnknownKind)
            ),
            "misaligned buffer parsed as {r:?}"
        );
    }
    let Ok(model) = ModelFile::parse(buf.bytes()) else {
        return;
    };
    exercise(&model, buf.bytes());
}

fn exercise(model: &ModelFile<'_>, bytes: &[u8]) {
    let header = *model.header();
    header.validate().expect("a parsed header validates");
    assert_eq!(encoded_len(&header), Ok(model.file_len()));
    let schedule = model.schedule();
    let t = header.train_steps;
    assert_eq!(schedule.steps(), t);
    for i in [0, 1, t / 2, t - 1] {
        if i < t {
            let c = schedule.coefs(i).expect("coefs inside the schedule");
            assert_eq!(c.model_t as usize, i, "full tables have τ_i = i");
        }
    }
    assert_eq!(schedule.coefs(t).err(), Some(Error::StepOutOfRange));

    let weights = model.weights();
    let den: &dyn Denoiser = match &weights {
        ModelWeights::MlpF32(mlp) => mlp,
        ModelWeights::MlpQuant(q) => q,
        _ => return,
    };
    let mlp = model.mlp();
    let quant = model.quant_mlp();
    assert!(mlp.is_ok() != quant.is_ok());
    let d = den.dim();
    assert_eq!(d, header.shape.dim);
    let mut scratch = vec![0.0f32; den.scratch_len()];
    for (k, &v) in PROBES.iter().enumerate() {
        let x: Vec<f32> = (0..2 * d)
            .map(|j| if j % 2 == 0 { v } else { -v * 0.5 })
            .collect();
        let mut out = vec![0.0f32; x.len()];
        let model_t = [0u32, (t - 1) as u32, t as u32, u32::MAX][k % 4];
        let _ = den.predict(model_t, &x, &mut out, &mut scratch);
    }
    // NaN input, short scratch, wrong lengths: errors, not panics.
    let mut out = vec![0.0f32; d];
    let _ = den.predict(0, &vec![f32::NAN; d], &mut out, &mut scratch);
    let _ = den.predict(0, &vec![0.0; d + 1], &mut out, &mut scratch);
    if !scratch.is_empty() {
        assert!(
            den.predict(0, &vec![0.0; d], &mut out, &mut scratch[1..])
                .is_err()
        );
    }

    // A short respaced trajectory with the file's β schedule and Hal.
    let steps = t.min(3);
    let mut tables = vec![0.0f32; table_len(steps)];
    if compute_tables(&header.beta, t, &Spacing::Linspace, steps, &mut tables).is_ok() {
        let sched = mirage_core::Schedule::from_tables(&tables, steps)
            .expect("compute_tables output is a valid schedule");
        let cfg = SamplerConfig {
            prediction: den.prediction(),
            ..SamplerConfig::PAPER
        };
        let mut state = vec![0.0f32; Hal::state_len(1, d)];
        let mut hal = Hal::new(2, d, &mut state).expect("hal");
        let (mut x, mut x0) = (vec![0.0f32; d], vec![0.0f32; d]);
        let mut scratch = vec![0.0f32; trajectory_scratch_len(den.scratch_len(), d)];
        if sample_trajectory(
            den,
            &sched,
            &cfg,
            7,
            0,
            &mut x,
            &mut x0,
            &mut hal,
            &mut scratch,
        )
        .is_ok()
        {
            let mut score = [0.0f32];
            hal.scores(&mut score).expect("scores after a trajectory");
            assert!(
                !score[0].is_nan() && score[0] >= 0.0,
                "Hal score {}",
                score[0]
            );
        }
    }

    // Re-encoding what parsed gives a file that parses again.
    let mut out = Aligned::zeroed(model.file_len());
    let written = match (mlp, quant) {
        (Ok(m), _) => write_model(&header, schedule.data(), m.params(), out.bytes_mut()),
        (_, Ok(q)) => {
            // The weight section is the last section before the CRC.
            let len = mirage_core::quant::section_len(&header.shape, q.kind());
            let end = model.file_len() - 4;
            write_quant_model(
                &header,
                schedule.data(),
                &bytes[end - len..end],
                out.bytes_mut(),
            )
        }
        _ => unreachable!("exactly one of mlp() and quant_mlp() succeeds"),
    };
    let n = written.expect("a parsed f32 model re-encodes");
    assert_eq!(n, model.file_len());
    let again = ModelFile::parse(&out.bytes()[..n]).expect("a re-encoded model parses");
    assert_eq!(
        again.mlp().map(|m| m.params()),
        mlp.map(|m| m.params()),
        "re-encoded weights differ"
    );
    assert_eq!(
        &out.bytes()[HEADER_LEN..n - 4],
        &bytes[HEADER_LEN..n - 4],
        "re-encoded sections differ"
    );
}
