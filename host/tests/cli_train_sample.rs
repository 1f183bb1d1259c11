//! End-to-end checks of `mirage train` and `mirage sample`: outputs exist and parse,
//! usage errors exit 2, missing or corrupt files exit 1 naming the file, and a failed
//! run leaves no output behind.

use std::path::Path;
use std::process::{Command, Output};

fn mirage(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirage"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn train_then_sample_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tiny = [
        "--n", "400", "--batch", "200", "--width", "8", "--epochs", "2", "-q",
    ];
    let mut args = vec!["train", "gauss1d-3"];
    args.extend(tiny);
    args.extend([
        "--out",
        "m.mrg",
        "--safetensors",
        "m.safetensors",
        "--checkpoint-dir",
        "ck",
    ]);
    let o = mirage(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        d.join("m.mrg").is_file()
            && d.join("m.safetensors").is_file()
            && d.join("ck/checkpoint.mckpt").is_file()
    );

    // Resuming a finished run changes nothing and rewrites the same model.
    let before = std::fs::read(d.join("m.mrg")).unwrap();
    let mut resume = args.clone();
    resume.push("--resume");
    let o = mirage(&resume, d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(d.join("m.mrg")).unwrap(), before);

    let o = mirage(
        &[
            "sample",
            "--model",
            "m.mrg",
            "--dataset",
            "gauss1d-3",
            "-n",
            "20",
            "--steps",
            "50",
            "-o",
            "s.csv",
            "-q",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(d.join("s.csv")).unwrap();
    assert_eq!(csv.lines().count(), 21);
    assert_eq!(csv.lines().next(), Some("x0,hal"));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("samples      20") && stdout.contains("Hal"),
        "{stdout}"
    );

    // A fixed-point file is for the device: the host samplers say so, naming the file.
    let o = mirage(&["quantize", "m.mrg", "-o", "q.mrg", "--kind", "q8"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = mirage(
        &[
            "sample",
            "--model",
            "q.mrg",
            "--dataset",
            "gauss1d-3",
            "-n",
            "2",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("q.mrg is a fixed-point (MlpQ8) model") && err.contains("f32 model"),
        "{err}"
    );
}

#[test]
fn exact_gmm_sampling_of_grid25() {
    let dir = tempfile::tempdir().unwrap();
    let o = mirage(
        &["sample", "-n", "64", "--steps", "100", "-o", "g.csv", "-q"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(dir.path().join("g.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("x0,x1,hal"));
    assert_eq!(csv.lines().count(), 65);
}

#[test]
fn usage_errors_exit_2_and_file_errors_exit_1_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        mirage(&["sample", "--no-such-flag"], d).status.code(),
        Some(2)
    );
    assert_eq!(mirage(&["train"], d).status.code(), Some(2));

    let o = mirage(&["sample", "--model", "missing.mrg", "-o", "out.csv"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.mrg"), "{}", stderr(&o));

    std::fs::write(
        d.join("bad.mrg"),
        b"definitely not a model file, just some bytes to parse",
    )
    .unwrap();
    let o = mirage(&["sample", "--model", "bad.mrg", "-o", "out.csv"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.mrg"), "{}", stderr(&o));
    assert!(!d.join("out.csv").exists(), "a failed run left an output");

    std::fs::create_dir(d.join("ck")).unwrap();
    std::fs::write(d.join("ck/checkpoint.mckpt"), b"MIRGCKPT garbage").unwrap();
    let o = mirage(
        &[
            "train",
            "gauss1d-3",
            "--n",
            "400",
            "--batch",
            "200",
            "--width",
            "8",
            "--checkpoint-dir",
            "ck",
            "--resume",
            "-o",
            "m.mrg",
            "-q",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("checkpoint.mckpt") && stderr(&o).contains("truncated"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("m.mrg").exists());

    // Hal windows past the sampling steps are refused before any training starts.
    let o = mirage(
        &["images", "filter", "--sample-steps", "30", "--out", "img"],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--windows 40 must lie in 1..=30"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("img").exists());
}
