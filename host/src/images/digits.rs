//! A small real digit set that works on a fresh machine: the UCI optical-recognition
//! handwritten digits (Alpaydin & Kaynak 1998), 1,797 images of 8×8 with values 0–16, as
//! scikit-learn ships them (`sklearn/datasets/data/digits.csv.gz`, BSD-3-Clause).
//!
//! Why this set: MNIST has no stable, license-clear mirror reachable from a plain machine,
//! while PyPI is reachable wherever pip is; the file is 60 kB, and 8×8 images make CPU
//! training and sampling of a U-Net take minutes, not hours. (MNIST itself is readable
//! with [`super::idx`] when its IDX files are at hand.)
//!
//! `mirage images fetch-digits` runs `python3 -m pip download scikit-learn --no-deps
//! --only-binary=:all:` into a temporary directory, extracts that one member from the wheel
//! (a zip) and gunzips it with Python's standard library (so mirage needs no zip or gzip
//! code), then parses and validates the CSV here (exactly 1,797 rows of 64 integer pixels
//! in 0..=16 and a label in 0..=9) before writing it atomically to the cache
//! (`$MIRAGE_CACHE`, else `$XDG_CACHE_HOME/mirage`, else `~/.cache/mirage`) as
//! `digits.csv`. Pixels map to [−1, 1] as v/8 − 1.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::io::atomic::write_atomic;

/// Images in the UCI set as scikit-learn ships it.
pub const DIGITS_COUNT: usize = 1_797;
/// Image side.
pub const DIGITS_SIDE: usize = 8;

/// Images `[n][64]` on [−1, 1] and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct DigitSet {
    /// Images back to back.
    pub images: Vec<f32>,
    /// Class labels 0–9.
    pub labels: Vec<u8>,
}

/// Parses scikit-learn's `digits.csv` text: rows of 65 comma-separated numbers (64 pixels
/// 0–16, then the label 0–9), any float spelling of an integer accepted.
///
/// # Errors
/// Names the line and column of any non-numeric, non-integral or out-of-range value, a row
/// with the wrong number of columns, or an empty file.
pub fn parse_digits_csv(text: &str) -> Result<DigitSet> {
    let mut set = DigitSet {
        images: Vec::new(),
        labels: Vec::new(),
    };
    for (line_no, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split(',').collect();
        ensure!(
            fields.len() == 65,
            "digits.csv line {}: {} columns, expected 65 (64 pixels and a label)",
            line_no + 1,
            fields.len()
        );
        for (col, f) in fields.iter().enumerate() {
            let v: f64 = f.trim().parse().with_context(|| {
                format!(
                    "digits.csv line {} column {}: {f:?} is not a number",
                    line_no + 1,
                    col + 1
                )
            })?;
            let max = if col == 64 { 9.0 } else { 16.0 };
            ensure!(
                v.fract() == 0.0 && (0.0..=max).contains(&v),
                "digits.csv line {} column {}: {v} is not an integer in 0..={max}",
                line_no + 1,
                col + 1
            );
            if col == 64 {
                set.labels.push(v as u8);
            } else {
                set.images.push((v / 8.0 - 1.0) as f32);
            }
        }
    }
    ensure!(!set.labels.is_empty(), "digits.csv holds no rows");
    Ok(set)
}

/// The cache directory (see the module docs).
///
/// # Errors
/// No `MIRAGE_CACHE`, `XDG_CACHE_HOME` or `HOME`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("MIRAGE_CACHE") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("mirage"));
    }
    let home = std::env::var_os("HOME")
        .context("no MIRAGE_CACHE, XDG_CACHE_HOME or HOME to put the digit cache in")?;
    Ok(PathBuf::from(home).join(".cache").join("mirage"))
}

/// Path of the cached `digits.csv`.
///
/// # Errors
/// As [`cache_dir`].
pub fn cache_path() -> Result<PathBuf> {
    Ok(cache_dir()?.join("digits.csv"))
}

const FETCH_PY: &str = r#"
import glob, gzip, subprocess, sys, tempfile, zipfile
with tempfile.TemporaryDirectory() as tmp:
    subprocess.check_call([sys.executable, "-m", "pip", "download", "scikit-learn", "--no-deps",
                           "--only-binary=:all:", "--quiet", "--dest", tmp], stdout=sys.stderr)
    wheels = glob.glob(tmp + "/scikit_learn-*.whl")
    if not wheels:
        sys.exit("pip downloaded no scikit-learn wheel")
    with zipfile.ZipFile(wheels[0]) as z:
        data = gzip.decompress(z.read("sklearn/datasets/data/digits.csv.gz"))
    sys.stdout.buffer.write(data)
"#;

/// Downloads, validates and caches the digits (see the module docs); returns the path.
///
/// # Errors
/// python3 or pip missing or failing (with their message), or a file that does not hold
/// exactly [`DIGITS_COUNT`] valid rows.
pub fn fetch_digits() -> Result<PathBuf> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(FETCH_PY)
        .output()
        .context("cannot run python3 (needed once, with pip, to fetch the digits)")?;
    if !out.status.success() {
        bail!(
            "fetching scikit-learn's digits failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8(out.stdout).context("digits.csv is not UTF-8")?;
    let set = parse_digits_csv(&text)?;
    ensure!(
        set.labels.len() == DIGITS_COUNT,
        "digits.csv holds {} rows, expected {DIGITS_COUNT}",
        set.labels.len()
    );
    let path = cache_path()?;
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Loads the cached digits.
///
/// # Errors
/// No cache yet (says to run `mirage images fetch-digits`), or an invalid file.
pub fn load_digits() -> Result<DigitSet> {
    let path = cache_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "the digit set is not cached at {}: run `mirage images fetch-digits` once (needs python3 with pip and network)",
                path.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let set = parse_digits_csv(&text).with_context(|| format!("in {}", path.display()))?;
    ensure!(
        set.labels.len() == DIGITS_COUNT,
        "{} holds {} rows, expected {DIGITS_COUNT}: delete it and fetch again",
        path.display(),
        set.labels.len()
    );
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pixel: u32, label: u32) -> String {
        let mut v: Vec<String> = (0..64)
            .map(|k| format!("{}.000000000000000000e+00", (pixel + k) % 17))
            .collect();
        v.push(format!("{label}"));
        v.join(",")
    }

    #[test]
    fn parses_rows_and_scales_to_unit() {
        let text = format!("{}\n{}\n\n", row(0, 3), row(5, 9));
        let set = parse_digits_csv(&text).unwrap();
        assert_eq!(set.labels, vec![3, 9]);
        assert_eq!(set.images.len(), 128);
        assert_eq!(set.images[0], -1.0);
        assert_eq!(set.images[16], 1.0);
        assert_eq!(set.images[8], 0.0);
    }

    #[test]
    fn bad_values_are_named() {
        let err = |t: &str| parse_digits_csv(t).unwrap_err().to_string();
        assert!(err("").contains("no rows"));
        assert!(err("1,2,3").contains("3 columns"));
        assert!(err(&row(0, 10)).contains("column 65"));
        assert!(err(&row(0, 3).replacen("0.000000000000000000e+00", "17", 1)).contains("column 1"));
        assert!(
            err(&row(0, 3).replacen("0.000000000000000000e+00", "0.5", 1))
                .contains("not an integer")
        );
        assert!(
            err(&row(0, 3).replacen("0.000000000000000000e+00", "x", 1)).contains("not a number")
        );
    }
}
