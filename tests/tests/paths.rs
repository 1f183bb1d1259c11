//! Whole-trajectory agreement of the sampling paths on a trained grid25 model
//! (design.md §4: ≥ 99.9% of samples within 1e-3, nearest-mode flips ≤ 0.1%, flagged-set
//! Jaccard ≥ 0.99), with the paper's sampler: T = 1000, ancestral, fixed-large σ, no clip.
//!
//! The GPU run also carries the fused posterior-variance score (exact tr J at t = 0, papers.md
//! §9), compared with core's `PosteriorVariance` on the same trajectories: relative
//! difference ≤ 1e-3 and AUROC (D5 labels, k = 5) within 0.01.
//!
//! Observed maxima are printed (`--nocapture`) so the frozen tolerances can be re-checked.

use mirage_core::detector::PostVarConfig;
use mirage_core::schedule::{BetaSchedule, Schedule, Spacing, compute_tables, table_len};
use mirage_core::{Hal, Mlp, SamplerConfig, TimeCachedMlp};
use mirage_gpu::{GpuContext, GpuError, GpuSampler};
use mirage_host::data::{Dataset, Named};
use mirage_host::label::{Labeller, PAPER_K};
use mirage_host::metrics::{auroc, quantiles};
use mirage_host::train::{TrainConfig, Trainer};
use mirage_tests::{
    CorePath, Drawn, GpuPath, HostPath, PostVarDrawn, SamplingPath, agreement,
    max_relative_difference,
};

const T: usize = 1000;
const SEED: u64 = 77;

/// A small grid25 model (width 32, 2 tied blocks) trained for 2,000 Adam steps: enough
/// for trajectories to settle on modes and to hallucinate between some of them.
fn trained() -> (TrainConfig, Vec<f32>) {
    let data = Dataset::generate(Named::Grid25.mixture().unwrap(), 10_000, 1234).into_points();
    let config = TrainConfig {
        width: 32,
        temb_dim: 32,
        blocks: 2,
        batch: 2_000,
        ..TrainConfig::paper(2)
    };
    let mut trainer = Trainer::new(config.clone(), data, 2).unwrap();
    trainer.run(2_000, None, false).unwrap();
    (config, trainer.params().to_vec())
}

fn paper_tables() -> Vec<f32> {
    let mut tables = vec![0.0f32; table_len(T)];
    compute_tables(&BetaSchedule::PAPER, T, &Spacing::Linspace, T, &mut tables).unwrap();
    tables
}

fn check(name: &str, reference: &Drawn, other: &Drawn, modes: &[f32]) {
    let finite: Vec<f32> = reference
        .hal
        .iter()
        .copied()
        .filter(|h| h.is_finite())
        .collect();
    let threshold = quantiles(&finite, &[0.96]).unwrap()[0] as f32;
    let a = agreement(reference, other, 1e-3, modes, threshold);
    println!(
        "{name}: within 1e-3 {:.5}, max |Δx| {:.3e}, mode flips {:.5}, flagged Jaccard {:.5}",
        a.within, a.max_abs, a.mode_flips, a.jaccard
    );
    assert!(a.within >= 0.999, "{name}: {a:?}");
    assert!(a.mode_flips <= 0.001, "{name}: {a:?}");
    assert!(a.jaccard >= 0.99, "{name}: {a:?}");
}

/// AUROC of `scores` for the hallucination labels of `samples` (None with one class only).
fn postvar_auroc(labeller: &Labeller, drawn: &PostVarDrawn) -> Option<f64> {
    let labels: Vec<bool> = labeller
        .label_all(&drawn.samples)
        .unwrap()
        .iter()
        .map(|l| l.is_hallucination())
        .collect();
    auroc(&drawn.trace, &labels).ok()
}

fn check_postvar(core: &PostVarDrawn, gpu: &PostVarDrawn, labeller: &Labeller) {
    let (trace, t_flips) = max_relative_difference(&core.trace, &gpu.trace, 1e-3);
    let (frob, f_flips) = max_relative_difference(&core.frobenius, &gpu.frobenius, 1e-3);
    let (a_core, a_gpu) = (postvar_auroc(labeller, core), postvar_auroc(labeller, gpu));
    println!(
        "postvar gpu vs core: max rel diff trace {trace:.3e}, frobenius {frob:.3e}, \
         finiteness flips {}, AUROC core {a_core:?} gpu {a_gpu:?}",
        t_flips + f_flips
    );
    assert!(trace <= 1e-3 && frob <= 1e-3 && t_flips + f_flips == 0);
    if let (Some(a), Some(b)) = (a_core, a_gpu) {
        assert!((a - b).abs() <= 0.01, "AUROC core {a} vs gpu {b}");
    }
}

#[test]
fn core_host_and_gpu_paths_agree_on_whole_trajectories() {
    let (config, params) = trained();
    let mlp = Mlp::new(config.shape(), &params).unwrap();
    let tables = paper_tables();
    let schedule = Schedule::from_tables(&tables, T).unwrap();
    let cfg = SamplerConfig::PAPER;
    let modes = Named::Grid25.mixture().unwrap().means().to_vec();

    let mut biases = vec![0.0f32; T * config.width];
    let mut scratch = vec![0.0f32; mlp.shape().scratch_len()];
    mlp.fill_time_biases(&mut biases, &mut scratch).unwrap();
    let cached = TimeCachedMlp::new(mlp, &biases).unwrap();
    let core = CorePath {
        den: &cached,
        schedule,
        cfg,
        window: Hal::PAPER_WINDOW,
    };
    let host = HostPath {
        mlp,
        schedule,
        cfg,
        window: Hal::PAPER_WINDOW,
    };

    let n = 2_000;
    let reference = core.draw(SEED, n).unwrap();
    let wild = reference
        .samples
        .iter()
        .filter(|v| v.abs() >= 10.0 || v.is_nan())
        .count();
    println!("core: {wild} coordinates beyond |x| = 10");
    check(
        "host vs core",
        &reference,
        &host.draw(SEED, n).unwrap(),
        &modes,
    );

    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e @ GpuError::NoAdapter { .. }) => {
            let required = std::env::var("MIRAGE_REQUIRE_GPU").is_ok_and(|v| v == "1");
            assert!(!required, "MIRAGE_REQUIRE_GPU=1 but no GPU adapter: {e}");
            eprintln!("skipped: no GPU adapter ({e})");
            return;
        }
        Err(e) => panic!("GPU context failed: {e}"),
    };
    println!("GPU adapter: {}", ctx.describe());
    let sampler = GpuSampler::new(&ctx, &mlp, &schedule, &cfg, Hal::PAPER_WINDOW)
        .unwrap()
        .with_postvar(PostVarConfig::EXACT)
        .unwrap();
    let gpu = GpuPath {
        sampler: &sampler,
        dim: 2,
    };
    // lavapipe runs a few hundred MFLOP/s: a subset keeps the test short there.
    let m = 500;
    let head = Drawn {
        dim: 2,
        samples: reference.samples[..2 * m].to_vec(),
        hal: reference.hal[..m].to_vec(),
    };
    let (gpu_drawn, gpu_pv) = gpu.draw_with_postvar(SEED, m).unwrap();
    check("gpu vs core", &head, &gpu_drawn, &modes);

    let core_pv = core.draw_postvar(SEED, m, PostVarConfig::EXACT).unwrap();
    // The detector only reads: core's samples are those of the Hal run, bit for bit.
    assert_eq!(core_pv.samples, head.samples);
    let labeller = Labeller::for_mixture(&Named::Grid25.mixture().unwrap(), PAPER_K).unwrap();
    check_postvar(&core_pv, &gpu_pv.unwrap(), &labeller);
}
