//! Differential tests of the fixed-point path (core `quant`) against the f32 network it was
//! quantised from (design.md §4: per-layer relative RMS ≤ 1e-2 for int8, ≤ 1e-3 for 16-bit;
//! papers.md §1.3 pitfall 8: quantisation must not move Hal's verdicts; issue 6: on the 2D
//! grid, hallucination rate, flagged-set Jaccard and Hal AUROC against f32).
//!
//! Models: the paper's own trained 1D network (`/work/shared/reference/paper_mlp_1d.safetensors`,
//! trained by the paper's PyTorch code on gauss1d-3) when present, otherwise a small network
//! trained here on gauss1d-3; and a small grid25 network trained here (seeded, so
//! deterministic). Calibration and evaluation use trajectories of different seeds. The
//! full-size comparison (10,000 samples, all T = 1000 steps, a trained `.mrg`) is the ignored
//! test [`full_size_comparison`] (command in its docs).
//!
//! Beside q8 and q16 the comparison reports two yardsticks for the flagged-set Jaccard:
//! f32 with ε̂ perturbed by Gaussian noise of the q8 (and q16) end-to-end error size, which
//! says how much *any* perturbation of that size moves the flagged set; and q8 variants
//! emulated around [`QuantMlp`]: output bias correction (the mean ε̂ shift on the
//! calibration states subtracted) and a 16-bit out_fc.

use mirage_core::format::{ModelFile, full_tables};
use mirage_core::noise::normal;
use mirage_core::quant::QuantKind;
use mirage_core::schedule::{BetaSchedule, Schedule, Spacing, compute_tables, table_len};
use mirage_core::{Denoiser, Error, Hal, Mlp, MlpShape, Prediction, QuantMlp, SamplerConfig, Tap};
use mirage_host::data::{Dataset, Named};
use mirage_host::label::{Labeller, PAPER_K};
use mirage_host::metrics::auroc;
use mirage_host::quant::{
    ErrorMode, States, layer_errors, quantize_file, ranges, trajectory_states,
};
use mirage_host::sample::{BatchDenoiser, SampleOptions, SampleOutput, sample_batch};
use mirage_host::train::export::{AlignedBytes, from_safetensors, to_mrg};
use mirage_host::train::{TrainConfig, Trainer};

const T: usize = 1000;

/// The f32 1D model file: the paper's weights, or a small model trained on gauss1d-3.
fn f32_model_1d() -> AlignedBytes {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference");
    if let Ok(bytes) = std::fs::read(dir.join("paper_mlp_1d.safetensors")) {
        let (shape, params) = from_safetensors(&bytes).unwrap();
        assert_eq!(shape, MlpShape::PAPER_1D);
        let beta = BetaSchedule::PAPER;
        let mut tables = vec![0.0f32; table_len(T)];
        full_tables(&beta, T, &mut tables).unwrap();
        return AlignedBytes::new(&to_mrg(shape, T, beta, &tables, &params).unwrap());
    }
    eprintln!("paper reference weights absent: training a small gauss1d-3 model");
    train_small(Named::Gauss1d3, 1, 600, 2000, 1e-3)
}

/// A small model (W = 32, two blocks) trained on 6,000 points of `named` for `epochs`
/// epochs of `batch` at learning rate `lr`.
fn train_small(named: Named, dim: usize, epochs: u64, batch: usize, lr: f32) -> AlignedBytes {
    let beta = BetaSchedule::PAPER;
    let mut tables = vec![0.0f32; table_len(T)];
    full_tables(&beta, T, &mut tables).unwrap();
    let mixture = named.mixture().unwrap();
    let data = Dataset::generate(mixture, 6000, 1234).into_points();
    let config = TrainConfig {
        width: 32,
        temb_dim: 32,
        blocks: 2,
        batch,
        lr,
        ..TrainConfig::paper(dim)
    };
    let mut trainer = Trainer::new(config.clone(), data, 2).unwrap();
    trainer.run(epochs, None, false).unwrap();
    AlignedBytes::new(&to_mrg(config.shape(), T, beta, &tables, trainer.params()).unwrap())
}

/// A 109-step schedule that keeps the comparison fast while the Hal window is the paper's:
/// every 10th step down to t = 19, then every step t = 9 … 0 (K = 10).
fn respaced() -> Vec<f32> {
    let taus: Vec<u32> = (1..=99)
        .rev()
        .map(|k| 10 * k + 9)
        .chain((0..10).rev())
        .collect();
    let mut tables = vec![0.0f32; table_len(taus.len())];
    compute_tables(
        &BetaSchedule::PAPER,
        T,
        &Spacing::Custom(&taus),
        taus.len(),
        &mut tables,
    )
    .unwrap();
    tables
}

/// Samples 0..n with Hal (K = 10), seed 4321, through core's per-sample denoiser call.
fn sample<D: Denoiser + Sync>(den: &D, schedule: &Schedule<'_>, n: usize) -> SampleOutput {
    let cfg = SamplerConfig {
        prediction: den.prediction(),
        ..SamplerConfig::PAPER
    };
    sample_batch(
        &BatchDenoiser::PerSample(den),
        schedule,
        &cfg,
        n,
        &SampleOptions::new(4321),
        None,
    )
    .unwrap()
}

/// Hallucination rate, Hal AUROC and the flagged set of one sampled run.
struct Verdicts {
    rate: f64,
    auc: f64,
    flagged: Vec<bool>,
}

impl Verdicts {
    fn new(out: &SampleOutput, labeller: &Labeller, tau: f32) -> Self {
        let labels: Vec<bool> = labeller
            .label_all(&out.samples)
            .unwrap()
            .iter()
            .map(|l| l.is_hallucination())
            .collect();
        let rate = labels.iter().filter(|&&b| b).count() as f64 / labels.len() as f64;
        let auc = auroc(&out.hal, &labels).unwrap();
        let flagged = out.hal.iter().map(|&s| Hal::flagged(s, tau)).collect();
        Self { rate, auc, flagged }
    }

    /// |A ∩ B| / |A ∪ B| of the flagged sets.
    fn jaccard(&self, other: &Self) -> f64 {
        let pairs = || self.flagged.iter().zip(&other.flagged);
        let inter = pairs().filter(|(a, b)| **a && **b).count() as f64;
        let union = pairs().filter(|(a, b)| **a || **b).count() as f64;
        inter / union.max(1.0)
    }
}

/// τ: keep the 96% lowest-Hal samples of the f32 path (the paper's operating point).
fn tau_96(hal: &[f32]) -> f32 {
    let mut sorted = hal.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted[(0.96 * hal.len() as f64) as usize]
}

/// RMS of ε̂_q − ε̂_f per output over `states`, and the plain relative RMS.
fn output_error<D: Denoiser>(mlp: &Mlp<'_>, den: &D, states: &States) -> (Vec<f64>, f64) {
    let d = states.dim;
    let (mut fs, mut qs) = (
        vec![0.0f32; mlp.scratch_len()],
        vec![0.0f32; den.scratch_len()],
    );
    let (mut f, mut q) = (vec![0.0f32; d], vec![0.0f32; d]);
    let (mut err2, mut ref2) = (vec![0.0f64; d], 0.0f64);
    for i in 0..states.len() {
        let (t, x) = states.state(i);
        mlp.predict(t, x, &mut f, &mut fs).unwrap();
        den.predict(t, x, &mut q, &mut qs).unwrap();
        for k in 0..d {
            err2[k] += (f64::from(q[k]) - f64::from(f[k])).powi(2);
            ref2 += f64::from(f[k]).powi(2);
        }
    }
    let total: f64 = err2.iter().sum();
    let n = states.len() as f64;
    (
        err2.iter().map(|e| (e / n).sqrt()).collect(),
        (total / ref2).sqrt(),
    )
}

/// The f32 network with ε̂ perturbed by N(0, σ_k²) per output k: a counter-based draw keyed
/// by (t, the input's bits), so runs are reproducible and independent of batching.
struct Noisy<'a> {
    mlp: Mlp<'a>,
    sigma: Vec<f32>,
}

impl Denoiser for Noisy<'_> {
    fn dim(&self) -> usize {
        self.mlp.dim()
    }
    fn prediction(&self) -> Prediction {
        self.mlp.prediction()
    }
    fn scratch_len(&self) -> usize {
        self.mlp.scratch_len()
    }
    fn predict(&self, t: u32, x: &[f32], out: &mut [f32], s: &mut [f32]) -> Result<(), Error> {
        self.mlp.predict(t, x, out, s)?;
        let d = self.sigma.len();
        for (xs, os) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let key = xs.iter().fold(0x9E37_79B9u32, |h, v| {
                (h ^ v.to_bits()).wrapping_mul(0x0100_0193).rotate_left(13)
            });
            for (k, (o, &sg)) in os.iter_mut().zip(&self.sigma).enumerate() {
                *o += sg * normal(99, 7, key, t, k as u32);
            }
        }
        Ok(())
    }
}

/// q8 variants emulated around a [`QuantMlp`]: `w_in`, `w_out` replace in_fc and out_fc by
/// their 16-bit per-row quantisations (applied in f32 to the quantised x and to the
/// fixed-point LN_out output), `shift` is subtracted from ε̂ (output bias correction).
struct Variant<'a> {
    q: QuantMlp<'a>,
    w_in: Option<Vec<f32>>,
    w_out: Option<(Vec<f32>, &'a [f32])>,
    shift: Vec<f32>,
}

/// A matrix with every row quantised to 16 bits (per-row symmetric scale), in f32.
fn q16_rows(m: &[f32], cols: usize) -> Vec<f32> {
    m.chunks_exact(cols)
        .flat_map(|row| {
            let s = row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 32767.0;
            row.iter()
                .map(move |&v| if s > 0.0 { (v / s).round() * s } else { 0.0 })
        })
        .collect()
}

impl<'a> Variant<'a> {
    /// `io16`: in_fc (its h requantised to the stream) and out_fc with 16-bit weights.
    fn new(q: QuantMlp<'a>, mlp: &Mlp<'a>, io16: bool) -> Self {
        let shape = mlp.shape();
        let tensors = shape.tensors();
        let p = mlp.params();
        let w_in = io16.then(|| q16_rows(&p[tensors[2].range()], shape.dim));
        let w_out = io16.then(|| {
            (
                q16_rows(&p[tensors[13].range()], shape.width),
                &p[tensors[14].range()],
            )
        });
        Self {
            q,
            w_in,
            w_out,
            shift: vec![0.0; shape.dim],
        }
    }

    /// Sets the shift to the mean ε̂ error over `states`.
    fn correct_bias(&mut self, mlp: &Mlp<'_>, states: &States) {
        let d = states.dim;
        let (mut fs, mut qs) = (
            vec![0.0f32; mlp.scratch_len()],
            vec![0.0f32; self.scratch_len()],
        );
        let (mut f, mut q) = (vec![0.0f32; d], vec![0.0f32; d]);
        let mut sum = vec![0.0f64; d];
        for i in 0..states.len() {
            let (t, x) = states.state(i);
            mlp.predict(t, x, &mut f, &mut fs).unwrap();
            self.predict(t, x, &mut q, &mut qs).unwrap();
            for k in 0..d {
                sum[k] += f64::from(q[k]) - f64::from(f[k]);
            }
        }
        self.shift = sum
            .iter()
            .map(|s| (s / states.len() as f64) as f32)
            .collect();
    }
}

impl Denoiser for Variant<'_> {
    fn dim(&self) -> usize {
        self.q.shape().dim
    }
    fn prediction(&self) -> Prediction {
        Prediction::Epsilon
    }
    fn scratch_len(&self) -> usize {
        QuantMlp::scratch_len_for(&self.q.shape())
    }
    fn predict(&self, t: u32, x: &[f32], out: &mut [f32], s: &mut [f32]) -> Result<(), Error> {
        let (d, w) = (self.q.shape().dim, self.q.shape().width);
        let mut c = vec![0i32; w];
        self.q.time_bias(t, &mut c, s)?;
        let mut a = vec![0.0f32; w];
        let s_x = self.q.scales().x;
        for (xs, os) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            self.q
                .forward_probed(&c, xs, os, s, &mut |tap, _, v| match tap {
                    Tap::InFc => match &self.w_in {
                        Some(wi) => {
                            for (o, row) in v.iter_mut().zip(wi.chunks_exact(d)) {
                                *o = row
                                    .iter()
                                    .zip(xs)
                                    .map(|(p, x)| p * ((x / s_x).round() * s_x))
                                    .sum();
                            }
                            true
                        }
                        None => false,
                    },
                    Tap::OutNorm => {
                        a.copy_from_slice(v);
                        false
                    }
                    Tap::Out => {
                        if let Some((wo, bo)) = &self.w_out {
                            for ((o, row), b) in v.iter_mut().zip(wo.chunks_exact(w)).zip(*bo) {
                                *o = row.iter().zip(&a).map(|(p, q)| p * q).sum::<f32>() + b;
                            }
                        }
                        v.iter_mut().zip(&self.shift).for_each(|(o, s)| *o -= s);
                        true
                    }
                    _ => false,
                })?;
        }
        Ok(())
    }
}

/// One row of a comparison against f32.
struct Row {
    name: String,
    /// Plain relative RMS of ε̂ end to end on the evaluation states (NaN for f32).
    err: f64,
    rate: f64,
    auc: f64,
    jaccard: f64,
}

/// What [`compare`] measures and which rows it adds.
struct Study {
    /// q8 variants and noise yardsticks besides plain q8 and q16.
    extra: bool,
    /// Print the per-layer error table.
    layers: bool,
}

/// Quantises `f` to q8 and q16, samples n trajectories of every path on `schedule`, and
/// returns f32's verdict row first. Asserts the per-layer budget on trained nets.
fn compare(
    f: &ModelFile<'_>,
    named: Named,
    schedule: &Schedule<'_>,
    n: usize,
    study: &Study,
) -> Vec<Row> {
    let mlp = f.mlp().unwrap();
    let full = f.schedule();
    let calib = trajectory_states(&mlp, &full, 6, 1234, 2).unwrap();
    let r = ranges(&mlp, &calib).unwrap();
    let eval = trajectory_states(&mlp, &full, 3, 98_765, 3).unwrap();
    let labeller = Labeller::for_mixture(&named.mixture().unwrap(), PAPER_K).unwrap();
    let out_f = sample(&mlp, schedule, n);
    let tau = tau_96(&out_f.hal);
    let v_f = Verdicts::new(&out_f, &labeller, tau);
    let mut rows = vec![Row {
        name: "f32".into(),
        err: f64::NAN,
        rate: v_f.rate,
        auc: v_f.auc,
        jaccard: 1.0,
    }];
    eprintln!("| path | ε̂ rel. RMS | hallucination rate | Hal AUROC | flagged Jaccard vs f32 |");
    eprintln!("|---|---|---|---|---|");
    eprintln!("| f32 | — | {:.4} | {:.4} | 1 |", v_f.rate, v_f.auc);
    let mut push = |name: String, err: f64, out: &SampleOutput| {
        let v = Verdicts::new(out, &labeller, tau);
        let row = Row {
            name,
            err,
            rate: v.rate,
            auc: v.auc,
            jaccard: v.jaccard(&v_f),
        };
        eprintln!(
            "| {} | {:.2e} | {:.4} | {:.4} | {:.4} |",
            row.name, row.err, row.rate, row.auc, row.jaccard
        );
        rows.push(row);
    };
    let mut sigmas = Vec::new();
    let mut variants = Vec::new();
    let files: Vec<AlignedBytes> = [QuantKind::Q8, QuantKind::Q16]
        .into_iter()
        .map(|kind| AlignedBytes::new(&quantize_file(f, &r, kind).unwrap()))
        .collect();
    for ((kind, budget), bytes) in [(QuantKind::Q8, 1e-2), (QuantKind::Q16, 1e-3)]
        .into_iter()
        .zip(&files)
    {
        let qfile = bytes.model("q").unwrap();
        let q = qfile.quant_mlp().unwrap();
        let isolated = layer_errors(&mlp, &q, &eval, ErrorMode::Isolated).unwrap();
        let chained = layer_errors(&mlp, &q, &eval, ErrorMode::Chained).unwrap();
        for (e, c) in isolated.iter().zip(&chained) {
            if study.layers {
                eprintln!(
                    "{kind:?} {:<24} isolated {:.2e}  chained {:.2e}",
                    e.name, e.rel_rms, c.rel_rms
                );
            }
            assert!(
                e.rel_rms <= budget,
                "{kind:?} {}: relative RMS {:.2e} > {budget:.0e}",
                e.name,
                e.rel_rms
            );
        }
        let (sigma, err) = output_error(&mlp, &q, &eval);
        push(format!("{kind:?}"), err, &sample(&q, schedule, n));
        sigmas.push((kind, sigma));
        variants.push(q);
    }
    if study.extra {
        for (kind, sigma) in sigmas {
            let noisy = Noisy {
                mlp,
                sigma: sigma.iter().map(|&s| s as f32).collect(),
            };
            let err = output_error(&mlp, &noisy, &eval).1;
            push(
                format!("f32 + N(0, {kind:?} error²)"),
                err,
                &sample(&noisy, schedule, n),
            );
        }
        let q = variants[0];
        {
            for (name, out16, corrected) in [
                ("q8 + output bias correction", false, true),
                ("q8 + 16-bit in_fc, out_fc", true, false),
                ("q8 + 16-bit in_fc, out_fc + bias correction", true, true),
            ] {
                let mut v = Variant::new(q, &mlp, out16);
                if corrected {
                    v.correct_bias(&mlp, &calib);
                }
                let err = output_error(&mlp, &v, &eval).1;
                push(name.into(), err, &sample(&v, schedule, n));
            }
        }
    }
    rows
}

/// The issue's agreement checks: hallucination rate (and, where `auc_tol` is given, Hal
/// AUROC) within 0.01 of f32 for q8 and q16; the flagged-set Jaccard above frozen floors
/// (q16 keeps the set, q8 does not: see the Jaccard study in the README).
fn check(rows: &[Row], floors: [f64; 2], auc_tol: Option<f64>) {
    let f = &rows[0];
    for (row, floor) in rows[1..3].iter().zip(floors) {
        assert!(
            (row.rate - f.rate).abs() <= 0.01,
            "{}: hallucination rate {} vs f32 {}",
            row.name,
            row.rate,
            f.rate
        );
        assert!(
            auc_tol.is_none_or(|tol| (row.auc - f.auc).abs() <= tol),
            "{}: AUROC {} vs f32 {}",
            row.name,
            row.auc,
            f.auc
        );
        assert!(
            row.jaccard >= floor,
            "{}: flagged-set Jaccard {} < {floor}",
            row.name,
            row.jaccard
        );
    }
}

#[test]
fn gauss1d_per_layer_error_within_budget_and_hal_verdicts_unchanged() {
    let f = f32_model_1d();
    let tables = respaced();
    let schedule = Schedule::from_tables(&tables, tables.len() / 18).unwrap();
    let study = Study {
        extra: false,
        layers: true,
    };
    let rows = compare(
        &f.model("f32").unwrap(),
        Named::Gauss1d3,
        &schedule,
        1200,
        &study,
    );
    // Measured (paper 1D model, n = 1200): q8 0.71, q16 1.0. Floors frozen below.
    check(&rows, [0.6, 0.95], Some(0.01));
}

#[test]
fn grid25_hal_verdicts_unchanged() {
    // 12,000 Adam steps of a W = 32 net: cheap, but far from the paper's 2D model: about
    // 95% of its samples are hallucinations and Hal's AUROC is near chance (0.55 with ~60
    // in-support samples; 0.46 at lr 1e-3, where q8 moved it by 0.04), so AUROC is
    // not compared here; rate and flagged set are. The paper-size figures, AUROC
    // included, come from `full_size_comparison`.
    let f = train_small(Named::Grid25, 2, 1000, 500, 3e-3);
    let tables = respaced();
    let schedule = Schedule::from_tables(&tables, tables.len() / 18).unwrap();
    let study = Study {
        extra: false,
        layers: false,
    };
    let model = f.model("f32").unwrap();
    let rows = compare(&model, Named::Grid25, &schedule, 1200, &study);
    // Measured: q8 0.98, q16 1.0 (0.90 and 0.96 for the same net trained at lr 1e-3).
    check(&rows, [0.6, 0.9], None);
}

/// The full-size comparison, offline:
///
/// ```sh
/// MIRAGE_QUANT_MODEL=/work/det/grid25_e700.mrg MIRAGE_QUANT_DATASET=grid25 MIRAGE_QUANT_N=10000 \
///   cargo test --release -p mirage-tests --test fixed_vs_f32 -- --ignored --nocapture
/// ```
///
/// All T steps of the file's schedule (`MIRAGE_QUANT_RESPACED=1`: the CI tests' 109 steps),
/// q8, q16, the q8 variants and the noise yardsticks.
#[test]
#[ignore = "offline: minutes; set MIRAGE_QUANT_MODEL"]
fn full_size_comparison() {
    let path = std::env::var("MIRAGE_QUANT_MODEL").unwrap_or("/work/det/grid25_e700.mrg".into());
    let dataset = std::env::var("MIRAGE_QUANT_DATASET").unwrap_or("grid25".into());
    let n: usize = std::env::var("MIRAGE_QUANT_N")
        .ok()
        .map_or(10_000, |v| v.parse().unwrap());
    let named = Named::ALL
        .into_iter()
        .find(|m| m.name() == dataset)
        .unwrap();
    let bytes = mirage_host::train::export::read_aligned(std::path::Path::new(&path)).unwrap();
    let f = bytes.model(&path).unwrap();
    eprintln!(
        "{path} ({dataset}), n = {n}, T = {}",
        f.header().train_steps
    );
    let study = Study {
        extra: true,
        layers: true,
    };
    if std::env::var("MIRAGE_QUANT_RESPACED").is_ok() {
        let tables = respaced();
        let schedule = Schedule::from_tables(&tables, tables.len() / 18).unwrap();
        compare(&f, named, &schedule, n, &study);
    } else {
        compare(&f, named, &f.schedule(), n, &study);
    }
}
