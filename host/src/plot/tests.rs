use std::path::{Path, PathBuf};

use super::*;
use crate::metrics::{RocCurve, roc_curve};

/// Checks a PNG of the figure size (IHDR width/height) or an SVG document, and that no
/// temporary file is left beside it.
fn check_output(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().unwrap() == "svg" {
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("<svg") && text.contains("</svg>"),
            "{}",
            path.display()
        );
    } else {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), SIZE);
    }
    let leftovers = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .count();
    assert_eq!(leftovers, 0);
}

fn outputs(dir: &Path, stem: &str) -> [PathBuf; 2] {
    [
        dir.join(format!("{stem}.png")),
        dir.join(format!("{stem}.svg")),
    ]
}

#[test]
fn every_figure_draws_normal_empty_and_non_finite_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let pts: Vec<f32> = (0..2000)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let bad = [f32::NAN, 1.0, f32::INFINITY, 0.5, 0.2];
    let centres = [0.0f32, 0.0, 0.5, 0.5];
    let scores_in: Vec<f32> = (1..500).map(|i| 1e-6 * i as f32).collect();
    let scores_hal: Vec<f32> = (1..50)
        .map(|i| 1e-3 * i as f32)
        .chain([0.0, f32::INFINITY, f32::NAN])
        .collect();
    let labels: Vec<bool> = (0..60).map(|i| i % 3 == 0).collect();
    let sc: Vec<f32> = (0..60).map(|i| (i % 7) as f32).collect();
    let curve = roc_curve(&sc, &labels).unwrap();
    let series = vec![
        Series {
            name: "hal filter".into(),
            points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 4.0)],
        },
        Series {
            name: "random".into(),
            points: vec![(0.0, 1.0), (1.0, 0.0), (2.0, 9.0)],
        },
    ];
    for (stem, pts_case, hist_case) in [
        ("normal", &pts[..], &pts[..]),
        ("empty", &[][..], &[][..]),
        ("bad", &bad[..], &bad[..]),
    ] {
        for path in outputs(dir.path(), &format!("scatter-{stem}")) {
            scatter_2d(&path, pts_case, &centres, "scatter").unwrap();
            check_output(&path);
        }
        for path in outputs(dir.path(), &format!("hist-{stem}")) {
            histogram_log_y(&path, hist_case, 100, &[1.0, 2.0, f64::NAN], "hist").unwrap();
            check_output(&path);
        }
    }
    for (stem, a, b) in [
        ("normal", &scores_in[..], &scores_hal[..]),
        ("empty", &[][..], &[][..]),
        ("bad", &bad[..], &[0.0f32; 3][..]),
    ] {
        for path in outputs(dir.path(), &format!("scores-{stem}")) {
            score_histograms(&path, a, b, 60, Some(2e-4), "scores").unwrap();
            check_output(&path);
        }
    }
    for path in outputs(dir.path(), "roc") {
        roc_curves(
            &path,
            &[("hal", &curve), ("empty", &RocCurve::default())],
            "roc",
        )
        .unwrap();
        check_output(&path);
        roc_curves(&path, &[], "none").unwrap();
        check_output(&path);
    }
    for (log_y, stem) in [(false, "lin"), (true, "log")] {
        for path in outputs(dir.path(), &format!("lines-{stem}")) {
            line_plot(
                &path,
                &series,
                "generation",
                "% hallucinated",
                log_y,
                "lines",
            )
            .unwrap();
            check_output(&path);
            line_plot(&path, &[], "x", "y", log_y, "empty").unwrap();
            check_output(&path);
        }
    }
}

#[test]
fn unwritable_target_is_an_error_not_a_panic() {
    let err = format!(
        "{:#}",
        scatter_2d(
            Path::new("/proc/definitely/not/here.png"),
            &[0.0, 0.0],
            &[],
            "x"
        )
        .unwrap_err()
    );
    assert!(err.contains("/proc/definitely"), "{err}");
    let err = format!(
        "{:#}",
        line_plot(
            Path::new("/proc/definitely/not/here.svg"),
            &[],
            "x",
            "y",
            false,
            "t"
        )
        .unwrap_err()
    );
    assert!(err.contains("/proc/definitely"), "{err}");
}
