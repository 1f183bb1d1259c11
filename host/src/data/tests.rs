use super::*;

fn per_mode_moments(ds: &Dataset) -> Vec<(usize, Vec<f64>, Vec<f64>)> {
    let k = ds.mixture().components();
    let d = ds.dim();
    let mut n = vec![0usize; k];
    let mut s1 = vec![0.0f64; k * d];
    let mut s2 = vec![0.0f64; k * d];
    for (i, c) in ds.components().into_iter().enumerate() {
        n[c] += 1;
        for (j, &x) in ds.point(i).iter().enumerate() {
            s1[c * d + j] += f64::from(x);
            s2[c * d + j] += f64::from(x) * f64::from(x);
        }
    }
    (0..k)
        .map(|c| {
            let nc = n[c] as f64;
            let mean: Vec<f64> = (0..d).map(|j| s1[c * d + j] / nc).collect();
            let std: Vec<f64> = (0..d)
                .map(|j| ((s2[c * d + j] - nc * mean[j] * mean[j]) / (nc - 1.0)).sqrt())
                .collect();
            (n[c], mean, std)
        })
        .collect()
}

#[test]
fn samples_are_balanced_i_mod_k_and_lie_at_their_mode() {
    for named in Named::ALL {
        let mix = named.mixture().unwrap();
        let k = mix.components();
        let ds = Dataset::generate(mix, 10 * k + 3, 99);
        assert_eq!(ds.len(), 10 * k + 3);
        for i in 0..ds.len() {
            // The nearest centre of each generated point must be mode i mod K (σ ≪ gap).
            let x = ds.point(i);
            let nearest = (0..k)
                .min_by(|&a, &b| {
                    let da: f32 = x
                        .iter()
                        .zip(ds.mixture().mean(a))
                        .map(|(p, m)| (p - m) * (p - m))
                        .sum();
                    let db: f32 = x
                        .iter()
                        .zip(ds.mixture().mean(b))
                        .map(|(p, m)| (p - m) * (p - m))
                        .sum();
                    da.total_cmp(&db)
                })
                .unwrap();
            assert_eq!(nearest, i % k, "{named} sample {i}");
        }
    }
}

#[test]
fn per_mode_mean_and_std_within_three_standard_errors() {
    for named in Named::ALL {
        let mix = named.mixture().unwrap();
        let k = mix.components();
        let per_mode = 2000;
        let ds = Dataset::generate(mix.clone(), per_mode * k, 1234);
        for (c, (n, mean, std)) in per_mode_moments(&ds).into_iter().enumerate() {
            assert_eq!(n, per_mode);
            for j in 0..ds.dim() {
                let mu = f64::from(mix.mean(c)[j]);
                let sigma = f64::from(mix.std(c)[j]);
                let se_mean = sigma / (n as f64).sqrt();
                let se_std = sigma / (2.0 * (n as f64 - 1.0)).sqrt();
                assert!(
                    (mean[j] - mu).abs() < 3.0 * se_mean,
                    "{named} mode {c} dim {j}: mean {} vs {mu}",
                    mean[j]
                );
                assert!(
                    (std[j] - sigma).abs() < 3.0 * se_std,
                    "{named} mode {c} dim {j}: std {} vs {sigma}",
                    std[j]
                );
            }
        }
    }
}

#[test]
fn grid_divisor_gives_the_papers_spacing_and_sigma() {
    let grid = Named::Grid25.mixture().unwrap();
    assert_eq!(grid.components(), 25);
    // Outer loop i: component 1 is (i, j) = (−2, −1) → 2(i, j) = (−4, −2).
    assert!((f64::from(grid.mean(1)[0]) - -4.0 / GRID_DIVISOR).abs() < 1e-6);
    assert!((f64::from(grid.mean(1)[1]) - -2.0 / GRID_DIVISOR).abs() < 1e-6);
    let spacing = f64::from(grid.mean(5)[0] - grid.mean(0)[0]);
    assert!((spacing - 0.707_000).abs() < 5e-6, "spacing {spacing}");
    assert!((f64::from(grid.std(0)[0]) - 0.017_674_9).abs() < 1e-7);
    assert!((GRID_DIVISOR - (PAPER_SIGMA * PAPER_SIGMA + 8.0).sqrt()).abs() < 1e-6);

    let rot = Named::Grid25Rot.mixture().unwrap();
    // Outer loop j: component 1 is (i, j) = (−1, −2) → (i+j, i−j) = (−3, 1).
    assert!((f64::from(rot.mean(1)[0]) - -3.0 / GRID_DIVISOR).abs() < 1e-6);
    assert!((f64::from(rot.mean(1)[1]) - 1.0 / GRID_DIVISOR).abs() < 1e-6);
    let mut nn = f64::INFINITY;
    for a in 0..25 {
        for b in 0..25 {
            if a != b {
                let d: f64 = rot
                    .mean(a)
                    .iter()
                    .zip(rot.mean(b))
                    .map(|(p, q)| f64::from(p - q).powi(2))
                    .sum::<f64>()
                    .sqrt();
                nn = nn.min(d);
            }
        }
    }
    // √2 / 2.828869 = 0.499922; papers.md quotes 0.49995 (4 significant digits).
    assert!((nn - 2f64.sqrt() / GRID_DIVISOR).abs() < 1e-6, "nn {nn}");
    assert!((nn - 0.499_95).abs() < 5e-5, "nn {nn}");
}

#[test]
fn same_seed_same_bits_other_seed_other_bits() {
    let mix = Named::Grid25.mixture().unwrap();
    let a = Dataset::generate(mix.clone(), 1000, 42);
    let b = Dataset::generate(mix.clone(), 1000, 42);
    let c = Dataset::generate(mix, 1000, 43);
    let bits = |d: &Dataset| d.points().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&c));
    // A prefix of a longer draw is the shorter draw.
    let long = Dataset::generate(a.mixture().clone(), 1500, 42);
    assert_eq!(
        bits(&a),
        long.points()[..2000]
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    );
}

#[test]
fn weighted_sequence_tracks_weights_in_every_prefix() {
    let mix = Mixture::new("w", 1, &[0.0, 1.0, 2.0], &[0.1, 0.1, 0.1], &[1.0, 2.0, 5.0]).unwrap();
    let seq = mix.component_sequence(800);
    let mut counts = [0usize; 3];
    for (m, &c) in seq.iter().enumerate() {
        counts[c] += 1;
        for (k, &w) in [1.0 / 8.0, 2.0 / 8.0, 5.0 / 8.0].iter().enumerate() {
            let expect = (m + 1) as f64 * w;
            assert!(
                (counts[k] as f64 - expect).abs() <= 1.0 + 1e-9,
                "prefix {m} comp {k}"
            );
        }
    }
    assert_eq!(counts, [100, 200, 500]);
}

#[test]
fn spec_files_parse_in_toml_and_json() {
    let toml = r#"
        name = "blobs"
        [[components]]
        mean = [0.0, 1.0]
        std = 0.05
        weight = 3.0
        [[components]]
        mean = [1.0, 0.0]
        std = [0.05, 0.1]
        weight = 1.0
    "#;
    let m = Mixture::from_spec_str(toml, true, "x").unwrap();
    assert_eq!(m.name(), "blobs");
    assert_eq!(m.dim(), 2);
    assert_eq!(m.means(), &[0.0, 1.0, 1.0, 0.0]);
    assert_eq!(m.stds(), &[0.05, 0.05, 0.05, 0.1]);
    assert_eq!(m.weights(), &[0.75, 0.25]);
    assert!(!m.is_isotropic());

    let json = r#"{"components": [{"mean": [1.5], "std": 0.2}, {"mean": [3.0], "std": 0.1}]}"#;
    let j = Mixture::from_spec_str(json, false, "from-file").unwrap();
    assert_eq!(j.name(), "from-file");
    assert_eq!(j.weights(), &[0.5, 0.5]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.toml");
    std::fs::write(&path, toml).unwrap();
    assert_eq!(parse_mixture(path.to_str().unwrap()).unwrap(), m);
    assert_eq!(
        parse_mixture("grid25-rot").unwrap(),
        Named::Grid25Rot.mixture().unwrap()
    );
}

#[test]
fn spec_errors_name_the_problem() {
    let cases: &[(&str, bool, &str)] = &[
        ("components = []", true, "`components` is empty"),
        (
            "[[components]]\nmean = [1.0]\nstd = 0.1\ncolour = 2",
            true,
            "unknown field",
        ),
        (
            "[[components]]\nmean = [1.0]\nstd = 0.1\n[[components]]\nmean = [1.0, 2.0]\nstd = 0.1",
            true,
            "component 1: `mean` has 2 values",
        ),
        (
            "[[components]]\nmean = [1.0, 2.0]\nstd = [0.1, 0.1, 0.1]",
            true,
            "`std` has 3 values, expected 1 or 2",
        ),
        (
            "[[components]]\nmean = [1.0]\nstd = 0.0",
            true,
            "std[0] = 0 must be finite and > 0",
        ),
        (
            "[[components]]\nmean = [1.0]\nstd = 0.1\nweight = -1.0",
            true,
            "weight -1 must be finite and > 0",
        ),
        (
            "[[components]]\nmean = [1.0]\nstd = 0.1\nweight = 1.0\n[[components]]\nmean = [2.0]\nstd = 0.1",
            true,
            "1 of 2 components have a `weight`",
        ),
        (
            "[[components]]\nmean = []\nstd = 0.1",
            true,
            "`mean` is empty",
        ),
        ("[[components]\nmean = [1.0]", true, "invalid TOML"),
        (
            r#"{"components": [{"mean": [1e40], "std": 0.1}]}"#,
            false,
            "not a finite f32",
        ),
        (
            r#"{"components": [{"mean": [1.0], "std": 0.1}"#,
            false,
            "invalid JSON",
        ),
    ];
    for (text, is_toml, needle) in cases {
        let err = format!(
            "{:#}",
            Mixture::from_spec_str(text, *is_toml, "t").unwrap_err()
        );
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    let err = format!("{:#}", parse_mixture("grid26").unwrap_err());
    assert!(
        err.contains("gauss1d-3, gauss1d-4, grid25, grid25-rot"),
        "{err}"
    );
    let err = format!("{:#}", parse_mixture("/nonexistent/mix.toml").unwrap_err());
    assert!(
        err.contains("cannot read mixture spec /nonexistent/mix.toml"),
        "{err}"
    );
    assert!(Mixture::new("m", 1, &[0.0; 257], &[1.0; 257], &[1.0; 257]).is_err());
}

#[test]
fn mixture_serde_round_trip_is_exact_and_validated() {
    let m = Mixture::new(
        "w",
        2,
        &[0.0, 1.0, 2.0, 3.0],
        &[0.1, 0.2, 0.3, 0.4],
        &[1.0, 2.0],
    )
    .unwrap();
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<Mixture>(&json).unwrap(), m);
    let bad_weights = json.replace("0.33333334", "0.5");
    assert!(
        serde_json::from_str::<Mixture>(&bad_weights)
            .unwrap_err()
            .to_string()
            .contains("sum to")
    );
    let bad_std = json.replace("0.4", "-0.4");
    assert!(
        serde_json::from_str::<Mixture>(&bad_std)
            .unwrap_err()
            .to_string()
            .contains("std[1]")
    );
}
