use super::*;
use crate::data::{Dataset, Named};
use crate::train::export::{AlignedBytes, to_mrg};
use crate::train::{TrainConfig, Trainer};
use mirage_core::schedule::BetaSchedule;
use mirage_core::{Denoiser, MlpShape};

const SHAPE: MlpShape = MlpShape {
    dim: 2,
    width: 32,
    blocks: 2,
    temb_dim: 16,
};
const T: usize = 200;

/// A small grid25 model trained for 300 steps (an untrained network's trajectories diverge,
/// which would make every activation range meaningless).
fn f32_model() -> AlignedBytes {
    let data = Dataset::generate(Named::Grid25.mixture().unwrap(), 5000, 1).into_points();
    let config = TrainConfig {
        width: SHAPE.width,
        temb_dim: SHAPE.temb_dim,
        blocks: SHAPE.blocks,
        train_steps: T,
        batch: 500,
        ..TrainConfig::paper(2)
    };
    let mut trainer = Trainer::new(config.clone(), data, 2).unwrap();
    trainer.run(300, None, false).unwrap();
    let tables = config.tables().unwrap();
    AlignedBytes::new(&to_mrg(SHAPE, T, BetaSchedule::PAPER, &tables, trainer.params()).unwrap())
}

#[test]
fn quantized_files_meet_the_per_layer_budget_on_fresh_trajectories() {
    let f = f32_model();
    let file = f.model("f32").unwrap();
    let mlp = file.mlp().unwrap();
    let calib = trajectory_states(&mlp, &file.schedule(), 4, 11, 1).unwrap();
    assert_eq!(calib.len(), 4 * T);
    let r = ranges(&mlp, &calib).unwrap();
    let eval = trajectory_states(&mlp, &file.schedule(), 2, 12, 3).unwrap();
    for (kind, budget) in [(QuantKind::Q8, 1e-2), (QuantKind::Q16, 1e-3)] {
        let bytes = AlignedBytes::new(&quantize_file(&file, &r, kind).unwrap());
        let qfile = bytes.model("q").unwrap();
        assert_eq!(qfile.header().kind, model_kind(kind));
        assert_eq!(qfile.schedule().data(), file.schedule().data());
        let q = qfile.quant_mlp().unwrap();
        let report = layer_errors(&mlp, &q, &eval, ErrorMode::Isolated).unwrap();
        assert_eq!(report.len(), 1 + 4 * SHAPE.blocks + 2 + 1);
        for e in &report {
            assert!(
                e.rel_rms <= budget,
                "{kind:?} {}: {:.2e} > {budget:.0e}",
                e.name,
                e.rel_rms
            );
        }
        // The Denoiser output is the probed path's `out`.
        let mut out = [0.0f32; 2];
        let mut s = vec![0.0f32; q.scratch_len()];
        q.predict(3, &[0.1, -0.2], &mut out, &mut s).unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
    }
    // Quantising a quantised model is refused with a reason.
    let q8 = AlignedBytes::new(&quantize_file(&file, &r, QuantKind::Q8).unwrap());
    let err = quantize_file(&q8.model("q8").unwrap(), &r, QuantKind::Q16).unwrap_err();
    assert!(err.to_string().contains("f32 model"), "{err}");
}

#[test]
fn sampler_table_subset_samples_the_same_bits() {
    use mirage_core::HalSingle;
    let f = f32_model();
    let file = f.model("f32").unwrap();
    let mlp = file.mlp().unwrap();
    let r = ranges(
        &mlp,
        &trajectory_states(&mlp, &file.schedule(), 2, 11, 4).unwrap(),
    )
    .unwrap();
    let needed = SamplerConfig::PAPER.tables();
    let full = AlignedBytes::new(&quantize_file(&file, &r, QuantKind::Q8).unwrap());
    let subset = quantize_file_with_tables(&file, &r, QuantKind::Q8, needed).unwrap();
    assert_eq!(
        full.bytes().len() - subset.len(),
        4 * (18 - needed.len()) * T
    );
    let subset = AlignedBytes::new(&subset);
    assert_eq!(subset.model("q8").unwrap().header().tables, needed);
    let sample = |bytes: &AlignedBytes, i: u32| {
        let file = bytes.model("q8").unwrap();
        let q = file.quant_mlp().unwrap();
        let mut hal = HalSingle::<2>::new(10).unwrap();
        let mut scratch = vec![0.0f32; trajectory_scratch_len(q.scratch_len(), 2)];
        let (mut x, mut x0) = ([0.0f32; 2], [0.0f32; 2]);
        sample_trajectory(
            &q,
            &file.schedule(),
            &SamplerConfig::PAPER,
            5,
            i,
            &mut x,
            &mut x0,
            &mut hal,
            &mut scratch,
        )
        .unwrap();
        (x.map(f32::to_bits), hal.score().unwrap().to_bits())
    };
    for i in 0..3 {
        assert_eq!(sample(&full, i), sample(&subset, i), "sample {i}");
    }
    // A file without all tables cannot supply them again.
    let err = quantize_file_with_tables(
        &subset.model("q8").unwrap(),
        &r,
        QuantKind::Q8,
        TableSet::ALL,
    )
    .unwrap_err();
    assert!(err.to_string().contains("ModelT"), "{err}");
}
