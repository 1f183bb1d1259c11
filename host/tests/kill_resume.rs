//! Crash safety of `mirage train`: a run SIGKILLed at seeded random moments and resumed
//! with `--resume` each time ends with the same model bytes as an uninterrupted run; after
//! every kill the checkpoint (and `.prev`) decode and no output file is partial; a corrupt
//! or truncated checkpoint is refused with a clear message and the previous one is kept.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirage_core::ModelFile;
use mirage_host::train::checkpoint::Checkpoint;
use mirage_host::train::{checkpoint_path, previous_checkpoint_path};

/// A tiny run: gauss1d-3, 400 points, batch 20 (20 steps/epoch), width 8, one block.
const TINY: [&str; 14] = [
    "gauss1d-3",
    "--n",
    "400",
    "--batch",
    "20",
    "--width",
    "8",
    "--blocks",
    "1",
    "--threads",
    "1",
    "--checkpoint-every",
    "3",
    "-q",
];
const EPOCHS: &str = "60";

fn train(dir: &Path, resume: bool) -> Command {
    train_epochs(dir, resume, EPOCHS)
}

fn train_epochs(dir: &Path, resume: bool, epochs: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mirage"));
    c.arg("train").args(TINY).args([
        "--epochs",
        epochs,
        "--checkpoint-dir",
        "ck",
        "--out",
        "model.mrg",
    ]);
    if resume {
        c.arg("--resume");
    }
    c.current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// SplitMix64, for the kill moments.
fn mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Every file in `dir` (recursively) is a complete checkpoint, a complete model, or a
/// temporary file of an interrupted atomic write (dot-prefixed, `.tmp`).
fn assert_nothing_partial(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            assert_nothing_partial(&path);
        } else if name == "checkpoint.mckpt" || name == "checkpoint.mckpt.prev" {
            let bytes = std::fs::read(&path).unwrap();
            Checkpoint::decode(&bytes)
                .unwrap_or_else(|e| panic!("{} is partial: {e:#}", path.display()));
        } else if name == "model.mrg" {
            let bytes = std::fs::read(&path).unwrap();
            let words: Vec<u64> = bytes
                .chunks(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    u64::from_le_bytes(w)
                })
                .collect();
            let aligned = &bytemuck::cast_slice::<u64, u8>(&words)[..bytes.len()];
            ModelFile::parse(aligned).unwrap_or_else(|e| panic!("model.mrg is partial: {e}"));
        } else {
            assert!(name.ends_with(".tmp"), "unexpected file {}", path.display());
        }
    }
}

#[test]
fn sigkill_and_resume_gives_the_uninterrupted_model() {
    let reference = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = train(reference.path(), false).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = t0.elapsed();
    let want = std::fs::read(reference.path().join("model.mrg")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut seed = 0x5EED_u64;
    let mut kills = 0;
    for attempt in 0..3 {
        let resume = checkpoint_path(&d.join("ck")).is_file();
        let mut child = train(d, resume).spawn().unwrap();
        // Somewhere in the first 80% of an uninterrupted run's time.
        let wait = full.as_micros() as u64 * 8 / 10;
        let at = Duration::from_micros(mix(&mut seed) % wait.max(1));
        std::thread::sleep(at);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap_or(()); // SIGKILL on unix; a no-op error if it already exited.
        child.wait().unwrap();
        if !finished {
            kills += 1;
        }
        assert_nothing_partial(d);
        eprintln!("attempt {attempt}: killed after {at:?} (resume: {resume})");
    }
    // Finish the run.
    let resume = checkpoint_path(&d.join("ck")).is_file();
    let out = train(d, resume).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_nothing_partial(d);
    let got = std::fs::read(d.join("model.mrg")).unwrap();
    assert!(
        kills >= 1,
        "no run was interrupted (the tiny run is too fast)"
    );
    assert_eq!(
        got, want,
        "resumed model differs from the uninterrupted one after {kills} kills"
    );
}

#[test]
fn corrupt_or_truncated_checkpoint_is_refused_and_the_previous_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = train_epochs(d, false, "2").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ck = checkpoint_path(&d.join("ck"));
    let prev = previous_checkpoint_path(&ck);
    let good = std::fs::read(&ck).unwrap();
    let prev_bytes = std::fs::read(&prev).expect("the previous checkpoint is kept");
    let step = |b: &[u8]| Checkpoint::decode(b).unwrap().step;
    assert!(step(&prev_bytes) < step(&good));

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    for (what, bytes) in [
        ("bit flip", flipped),
        ("truncation", good[..good.len() - 7].to_vec()),
    ] {
        std::fs::write(&ck, &bytes).unwrap();
        let out = train_epochs(d, true, "2").output().unwrap();
        let msg = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {msg}");
        assert!(
            msg.contains("CRC") || msg.contains("truncated"),
            "{what}: {msg}"
        );
        assert!(
            msg.contains("checkpoint.mckpt.prev"),
            "{what}: no hint at the previous one: {msg}"
        );
        assert_eq!(
            std::fs::read(&ck).unwrap(),
            bytes,
            "{what}: the bad checkpoint was overwritten"
        );
        assert_eq!(
            std::fs::read(&prev).unwrap(),
            prev_bytes,
            "{what}: .prev changed"
        );
    }
}
