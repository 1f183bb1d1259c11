//! Replays every fuzz seed (fuzz/seeds/<target>/) and every crash input kept as a
//! regression (tests/regressions/<target>/) through the fuzz harnesses, which are included
//! from the fuzz crate so the suite runs exactly the code `cargo fuzz` runs. Also checks the
//! seeds on disk are the ones [`seeds`] generates (`MIRAGE_WRITE_SEEDS=1` rewrites them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code, clippy::all)]
mod harness;

use std::path::{Path, PathBuf};

use mirage_core::format::full_tables;
use mirage_core::quant::{Ranges, quantize_into, quantize_scratch_len, section_len};
use mirage_core::{
    BetaSchedule, Mlp, MlpShape, ModelHeader, ModelKind, Prediction, QuantKind, encoded_len,
    table_len, write_model, write_quant_model,
};
use mirage_host::io::matrix::Matrix;
use mirage_host::io::npy::encode_npy;

const TARGETS: [&str; 6] = [
    "model_file",
    "sampler_step",
    "detector",
    "quantizer",
    "fixed_vs_f32",
    "host_inputs",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run_target(target: &str, data: &[u8]) {
    match target {
        "model_file" => harness::model_file::run(data),
        "sampler_step" => harness::sampler_step::run(data),
        "detector" => harness::detector::run(data),
        "quantizer" => harness::quantizer::run(data),
        "fixed_vs_f32" => harness::fixed_vs_f32::run(data),
        "host_inputs" => harness::host_inputs::run(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// Little-endian encoder mirroring `harness::reader::Reader`.
#[derive(Default)]
struct Writer(Vec<u8>);
impl Writer {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// `Reader::range(lo, hi)` returning `v`.
    fn range(self, v: usize, lo: usize) -> Self {
        self.u32((v - lo) as u32)
    }
    /// `Reader::f32` / `f32_finite` returning `v` (a multiple of 1/1024 in ±32).
    fn f32(self, v: f32) -> Self {
        self.u8(1).fin(v)
    }
    fn fin(mut self, v: f32) -> Self {
        self.0
            .extend_from_slice(&(((v * 1024.0) as i16) as u16).to_le_bytes());
        self
    }
    /// `Reader::f64` returning `v` in [0, 1).
    fn f64(self, v: f64) -> Self {
        self.u8(1).u32((v * 4_294_967_296.0) as u32)
    }
}

fn tiny_params(shape: MlpShape) -> Vec<f32> {
    (0..shape.param_count())
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 16.0 + if i % 5 == 0 { 1.0 } else { 0.0 })
        .collect()
}

fn mrg(header: &ModelHeader, params: &[f32]) -> Vec<u8> {
    let mut tables = vec![0.0f32; table_len(header.train_steps)];
    full_tables(&header.beta, header.train_steps, &mut tables).unwrap();
    let mut out = vec![0u8; encoded_len(header).unwrap()];
    write_model(header, &tables, params, &mut out).unwrap();
    out
}

fn mrg_quant(shape: MlpShape, t: usize, kind: QuantKind) -> Vec<u8> {
    let params = tiny_params(shape);
    let mlp = Mlp::new(shape, &params).unwrap();
    let mut scratch = vec![0.0f32; shape.scratch_len()];
    let mut ranges = Ranges::default();
    ranges.observe(&mlp, 1, &[0.5, -1.0], &mut scratch).unwrap();
    let mut section = vec![0u8; section_len(&shape, kind)];
    let mut qs = vec![0.0f32; quantize_scratch_len(&shape)];
    quantize_into(&mlp, t, &ranges, kind, &mut section, &mut qs).unwrap();
    let model_kind = if kind == QuantKind::Q8 {
        ModelKind::MlpQ8
    } else {
        ModelKind::MlpQ16
    };
    let header = ModelHeader {
        kind: model_kind,
        ..ModelHeader::new(shape, t, BetaSchedule::PAPER, Prediction::Epsilon)
    };
    let mut tables = vec![0.0f32; table_len(t)];
    full_tables(&header.beta, t, &mut tables).unwrap();
    let mut out = vec![0u8; encoded_len(&header).unwrap()];
    write_quant_model(&header, &tables, &section, &mut out).unwrap();
    out
}

fn flagged(flags: u8, file: Vec<u8>) -> Vec<u8> {
    let mut v = vec![flags];
    v.extend(file);
    v
}

/// The seed corpus: (target, file name, bytes). Small valid inputs reaching each
/// harness's main paths.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let tiny = MlpShape {
        dim: 1,
        width: 2,
        blocks: 1,
        temb_dim: 4,
    };
    let tiny2 = MlpShape {
        dim: 2,
        width: 3,
        blocks: 2,
        temb_dim: 4,
    };
    let custom = [0.01, 0.02, 0.05];
    let f32_file = mrg(
        &ModelHeader::new(tiny, 4, BetaSchedule::PAPER, Prediction::Epsilon),
        &tiny_params(tiny),
    );
    let custom_file = mrg(
        &ModelHeader::new(tiny2, 3, BetaSchedule::Custom(&custom), Prediction::Sample)
            .with_hal_threshold(0.01, 2),
        &tiny_params(tiny2),
    );
    let cosine_file = mrg(
        &ModelHeader::new(tiny, 5, BetaSchedule::COSINE, Prediction::Velocity),
        &tiny_params(tiny),
    );
    let q8 = mrg_quant(tiny2, 4, QuantKind::Q8);
    let q16 = mrg_quant(tiny2, 4, QuantKind::Q16);

    // sampler_step: T = 100 PAPER, Linspace 10 steps, DDPM paper config, 4 elements,
    // then a 2-component 1-D GMM trajectory over T = 20 with Hal K = 3.
    let step_seed = |beta_sel: u8, spacing: u8, method: u8, pred: u8| {
        let mut w = Writer::default()
            .u8(0)
            .range(100, 0)
            .range(0, 0)
            .u8(beta_sel);
        if beta_sel == 1 {
            w = w.f64(1e-3).f64(0.2);
        }
        w = w.range(10, 0).range(0, 0).u8(spacing);
        w = w.u8(method);
        if method == 2 {
            w = w.u8(1).u8(128);
        }
        w = w.u8(pred).u8(0).u8(0).range(4, 0).u8(1).range(9, 0);
        for v in [0.5, -1.0, 2.0, 0.0] {
            w = w.f32(v);
        }
        w = w.u8(1);
        for v in [0.1, 0.2, -0.3, 0.4] {
            w = w.f32(v);
        }
        w = w.u8(2);
        for v in [1.0, -1.0, 0.5, -0.5] {
            w = w.f32(v);
        }
        w = w
            .range(20, 1)
            .range(1, 0)
            .range(2, 0)
            .f32(-1.0)
            .f32(1.0)
            .u8(1)
            .f32(0.1)
            .f32(0.1);
        w = w
            .f32(1.0)
            .f32(1.0)
            .u8(pred)
            .range(10, 1)
            .u8(0)
            .u8(pred)
            .u8(0)
            .u8(0)
            .range(3, 1);
        w.range(0, 0).u64(42).u32(3).0
    };

    // detector: K = 3, dim 2, 2 samples, a full trajectory of 5 steps, then a read.
    let det = {
        let mut w = Writer::default().range(3, 0).range(2, 0).range(2, 0).u8(1);
        for i in (0..5usize).rev() {
            w = w.u8(2).u8(1).range(i, 0).u8(1);
            for j in 0..4 {
                w = w.f32(j as f32 * 0.25 - 0.5);
            }
            w = w.u8(1);
            for j in 0..4 {
                w = w.f32(1.0 + (i * 4 + j) as f32 / 64.0);
            }
        }
        w.u8(1).u8(0).0
    };

    // quantizer: dim 2, width 3, blocks 1, E = 4, finite weights; observed ranges; T = 10.
    let quant = |kind_bit: u8| {
        let mut w = Writer::default()
            .range(2, 0)
            .range(3, 0)
            .range(1, 0)
            .range(2, 1)
            .u8(1)
            .u8(16);
        let shape = MlpShape {
            dim: 2,
            width: 3,
            blocks: 1,
            temb_dim: 4,
        };
        for p in tiny_params(shape) {
            w = w.fin(p);
        }
        w = w
            .range(10, 0)
            .u8(kind_bit)
            .u8(0)
            .range(1, 1)
            .u32(5)
            .range(1, 0)
            .f32(0.5)
            .f32(-0.5);
        for t in 0..6 {
            w = w.u32(t);
        }
        w.0
    };

    // fixed_vs_f32: a few shapes and seeds.
    let fixed = |dim: usize, width: usize, kind_bit: u8, seed: u64| {
        Writer::default()
            .range(dim, 1)
            .range(width, 16)
            .range(2, 1)
            .range(8, 2)
            .u64(seed)
            .u8(96)
            .u8(96)
            .range(50, 1)
            .u8(kind_bit)
            .0
    };

    let npy = encode_npy(&Matrix::new(3, 2, vec![1.0, 2.0, -3.5, 4.0, 0.0, 1e-3]).unwrap());
    let toml = b"\x00name = \"pair\"\n[[components]]\nmean = [0.0, 1.0]\nstd = 0.1\n[[components]]\nmean = [2.0, -1.0]\nstd = [0.1, 0.2]\n".to_vec();
    let json = b"\x01{\"components\": [{\"mean\": [1.0], \"std\": 0.5, \"weight\": 2.0}, {\"mean\": [3.0], \"std\": 0.5, \"weight\": 1.0}]}".to_vec();
    let csv = b"\x02x,y,score\n1.0,2.0,0.5\n-1e-3,3,inf\n".to_vec();

    vec![
        ("model_file", "f32_paper_t4", flagged(1, f32_file)),
        ("model_file", "f32_custom_beta_tau", flagged(3, custom_file)),
        ("model_file", "f32_cosine_v", flagged(1, cosine_file)),
        ("model_file", "q8", flagged(1, q8)),
        ("model_file", "q16", flagged(3, q16)),
        ("sampler_step", "ddpm_eps", step_seed(0, 2, 0, 0)),
        ("sampler_step", "ddim_x0_linear", step_seed(1, 0, 2, 1)),
        (
            "sampler_step",
            "ddpm_small_v_trailing",
            step_seed(0, 1, 1, 2),
        ),
        ("detector", "window3_batch2", det),
        ("quantizer", "q8", quant(0)),
        ("quantizer", "q16", quant(1)),
        ("fixed_vs_f32", "q8_d2_w16", fixed(2, 16, 0, 1)),
        ("fixed_vs_f32", "q16_d1_w24", fixed(1, 24, 1, 2)),
        ("fixed_vs_f32", "q8_d4_w32", fixed(4, 32, 0, 3)),
        ("host_inputs", "spec.toml", toml),
        ("host_inputs", "spec.json", json),
        ("host_inputs", "scores.csv", csv),
        ("host_inputs", "matrix.npy", [&[3u8][..], &npy].concat()),
        (
            "host_inputs",
            "matrix_allow.npy",
            [&[0x83u8][..], &npy].concat(),
        ),
    ]
}

#[test]
fn seeds_on_disk_match_the_generator() {
    let write = std::env::var_os("MIRAGE_WRITE_SEEDS").is_some();
    let dir = root().join("fuzz/seeds");
    for (target, name, bytes) in seeds() {
        let path = dir.join(target).join(name);
        if write {
            mirage_host::io::atomic::write_atomic(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with MIRAGE_WRITE_SEEDS=1)", path.display()));
        assert_eq!(
            on_disk,
            bytes,
            "{} is stale (run with MIRAGE_WRITE_SEEDS=1)",
            path.display()
        );
    }
    for target in TARGETS {
        let total: u64 = std::fs::read_dir(dir.join(target))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total < 50_000, "{target} seeds take {total} bytes");
    }
}

#[test]
fn seeds_and_regressions_replay_cleanly() {
    let mut replayed = 0;
    for target in TARGETS {
        for base in [root().join("fuzz/seeds"), root().join("tests/regressions")] {
            let Ok(entries) = std::fs::read_dir(base.join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                let r = std::panic::catch_unwind(|| run_target(target, &bytes));
                assert!(r.is_ok(), "{target} panicked on {}", path.display());
                replayed += 1;
            }
        }
    }
    assert!(replayed >= TARGETS.len(), "only {replayed} inputs replayed");
}

/// The seeds reach the harnesses' deep paths: the valid model files parse, so the
/// harness is not just bouncing off the first check.
#[test]
fn model_seeds_parse() {
    for (target, name, bytes) in seeds() {
        if target == "model_file" {
            let buf = harness::util::Aligned::from_bytes(&bytes[1..]);
            assert!(mirage_core::ModelFile::parse(buf.bytes()).is_ok(), "{name}");
        }
    }
}
