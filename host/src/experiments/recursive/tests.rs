use super::*;
use crate::io::npy::read_npy;

/// Rank of every score by (score, index), computed by counting (O(n²)): an independent
/// path to the Hal filter's order.
fn ranks(scores: &[f32]) -> Vec<usize> {
    let key = |i: usize| (scores[i], i);
    (0..scores.len())
        .map(|i| {
            (0..scores.len())
                .filter(|&j| {
                    let (a, b) = (key(j), key(i));
                    a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
                })
                .count()
        })
        .collect()
}

#[test]
fn hal_filter_keeps_exactly_the_n_lowest_in_ascending_order() {
    let mut rng = chacha_stream(7, 1);
    for (n, keep) in [(1025, 1000), (41, 40), (10, 10), (10, 0), (97, 13)] {
        // Quantised scores so that ties occur; one diverged trajectory (+∞).
        let mut scores: Vec<f32> = (0..n)
            .map(|_| (rng.next_u32() % 50) as f32 * 1e-4)
            .collect();
        scores[n / 2] = f32::INFINITY;
        let kept = keep_indices(Filter::Hal, &scores, keep, 0).unwrap();
        assert_eq!(kept.len(), keep);
        let r = ranks(&scores);
        // Kept position p holds the sample of rank p.
        for (p, &i) in kept.iter().enumerate() {
            assert_eq!(r[i], p, "n {n} keep {keep}: position {p}");
        }
        // Ascending scores, and nothing dropped is lower than anything kept.
        assert!(kept.windows(2).all(|w| scores[w[0]] <= scores[w[1]]));
        if let Some(&last) = kept.last() {
            let dropped_min = (0..n)
                .filter(|i| !kept.contains(i))
                .map(|i| scores[i])
                .fold(f32::INFINITY, f32::min);
            assert!(scores[last] <= dropped_min);
        }
        if keep < n {
            assert!(!kept.contains(&(n / 2)), "the +∞ score must go first");
        }
    }
}

#[test]
fn paper_sizes_keep_100000_of_102500() {
    let cfg = RecursiveConfig {
        dataset: "grid25".into(),
        n: 100_000,
        seed: 1,
        model: ModelSettings::paper(1),
    };
    assert_eq!(cfg.drawn(), 102_500);
    let scores: Vec<f32> = (0..cfg.drawn()).rev().map(|i| i as f32).collect();
    let kept = keep_indices(Filter::Hal, &scores, cfg.n, 0).unwrap();
    // Scores descend with the index, so the kept set is the last 100,000, reversed.
    assert_eq!(kept.len(), 100_000);
    assert_eq!(kept[0], 102_499);
    assert_eq!(kept[99_999], 2_500);
}

#[test]
fn none_keeps_the_first_n_and_random_is_a_uniform_seeded_subset() {
    let scores = vec![0.0f32; 10];
    assert_eq!(
        keep_indices(Filter::None, &scores, 4, 9).unwrap(),
        vec![0, 1, 2, 3]
    );
    assert!(keep_indices(Filter::Hal, &scores, 11, 0).is_err());
    let a = keep_indices(Filter::Random, &scores, 3, 5).unwrap();
    assert_eq!(a, keep_indices(Filter::Random, &scores, 3, 5).unwrap());
    // Inclusion frequency of every index: keep/n = 0.3, binomial sd over T trials.
    let trials = 20_000u64;
    let mut hits = [0u64; 10];
    for seed in 0..trials {
        let k = keep_indices(Filter::Random, &scores, 3, seed).unwrap();
        assert_eq!(k.len(), 3);
        assert!(k.windows(2).all(|w| w[0] < w[1]), "index order, distinct");
        for i in k {
            hits[i] += 1;
        }
    }
    let sd = (trials as f64 * 0.3 * 0.7).sqrt();
    for (i, &h) in hits.iter().enumerate() {
        let z = (h as f64 - 0.3 * trials as f64) / sd;
        assert!(z.abs() < 5.0, "index {i}: {h} hits, z = {z:.2}");
    }
}

#[test]
fn filter_names_parse_and_reject() {
    for name in Filter::NAMES {
        assert_eq!(name.parse::<Filter>().unwrap().name(), name);
    }
    let err = "halx".parse::<Filter>().unwrap_err().to_string();
    assert!(err.contains("hal, random, none"), "{err}");
}

fn tiny() -> RecursiveConfig {
    RecursiveConfig {
        dataset: "grid25".into(),
        n: 200,
        seed: 11,
        model: ModelSettings {
            width: 8,
            blocks: 1,
            batch: 100,
            lr: 1e-3,
            epochs: 2,
            sample_steps: Some(100),
            window: 2,
        },
    }
}

#[test]
fn two_generations_run_resume_and_reproduce() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let cfg = tiny();
    let chains = [Filter::Hal, Filter::None];
    let first = run_recursive(&cfg, 2, &chains, out, 2).unwrap();
    assert_eq!(first.rows.len(), 4);
    let json1 = std::fs::read(out.join("summary.json")).unwrap();
    let csv1 = std::fs::read(out.join("summary.csv")).unwrap();
    for f in [
        "g0/model.mrg",
        "hal/g1/model.mrg",
        "none/g1/samples.npy",
        "hal/scatter_g1.png",
        "hallucination_rate.png",
        "modes.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Generation 0 is shared: both chains report the same draws.
    assert_eq!(first.rows[0].hallucinated, first.rows[2].hallucinated);
    assert_eq!(first.rows[0].per_mode, first.rows[2].per_mode);
    for r in &first.rows {
        assert_eq!((r.drawn, r.kept, r.trained_on), (205, 200, 200));
    }

    // The Hal chain's kept set is the 200 lowest-Hal draws of g0 in ascending order.
    let samples = read_npy(&out.join("g0/samples.npy"), NonFinite::Allow)
        .unwrap()
        .matrix;
    let hal = read_npy(&out.join("g0/hal.npy"), NonFinite::Allow)
        .unwrap()
        .matrix;
    let kept = read_npy(&out.join("hal/g0/kept.npy"), NonFinite::Reject)
        .unwrap()
        .matrix;
    let r = ranks(hal.data());
    for (i, &rank) in r.iter().enumerate() {
        if rank < 200 {
            assert_eq!(kept.row(rank), samples.row(i));
        }
    }
    // The unfiltered chain keeps the first 200 draws.
    let kept_none = read_npy(&out.join("none/g0/kept.npy"), NonFinite::Reject)
        .unwrap()
        .matrix;
    assert_eq!(kept_none.data(), &samples.data()[..400]);

    // A second invocation skips everything and writes the identical summary.
    let model_time = std::fs::metadata(out.join("hal/g1/model.mrg"))
        .unwrap()
        .modified()
        .unwrap();
    let second = run_recursive(&cfg, 2, &chains, out, 1).unwrap();
    assert_eq!(second, first);
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), json1);
    assert_eq!(std::fs::read(out.join("summary.csv")).unwrap(), csv1);
    let model_time2 = std::fs::metadata(out.join("hal/g1/model.mrg"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(model_time, model_time2, "a finished model was retrained");

    // Losing a generation's record (an interrupted run) recomputes it to the same bits
    // from the model and draws on disk; losing its model and draws retrains and redraws
    // to the same bits, with one thread instead of two.
    std::fs::remove_file(out.join("hal/g1/row.json")).unwrap();
    std::fs::remove_file(out.join("none/g1/model.mrg")).unwrap();
    std::fs::remove_file(out.join("none/g1/samples.npy")).unwrap();
    std::fs::remove_file(out.join("none/g1/row.json")).unwrap();
    let third = run_recursive(&cfg, 2, &chains, out, 1).unwrap();
    assert_eq!(third, first);
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), json1);

    // Adding detector chains later: generation 0 is redrawn to add the posterior
    // variance (same seed, so the same samples and Hal bits), the finished chains are
    // skipped, and each new chain keeps its detector's 200 lowest in ascending order.
    let hal_before = std::fs::read(out.join("g0/hal.npy")).unwrap();
    let more = [Filter::Hal, Filter::None, Filter::Postvar, Filter::Knn];
    let fourth = run_recursive(&cfg, 2, &more, out, 2).unwrap();
    assert_eq!(&fourth.rows[..4], &first.rows[..]);
    assert_eq!(std::fs::read(out.join("g0/hal.npy")).unwrap(), hal_before);
    assert_eq!(
        read_npy(&out.join("g0/samples.npy"), NonFinite::Allow)
            .unwrap()
            .matrix,
        samples
    );
    let postvar = read_npy(&out.join("g0/postvar.npy"), NonFinite::Allow)
        .unwrap()
        .matrix;
    let knn = crate::detect::knn_distances(samples.data(), 2, crate::detect::DEFAULT_K, 1).unwrap();
    for (chain, scores) in [("postvar", postvar.data()), ("knn", &knn[..])] {
        let kept = read_npy(&out.join(format!("{chain}/g0/kept.npy")), NonFinite::Reject)
            .unwrap()
            .matrix;
        for (i, &rank) in ranks(scores).iter().enumerate() {
            if rank < 200 {
                assert_eq!(kept.row(rank), samples.row(i), "{chain}");
            }
        }
        assert!(out.join(format!("{chain}/g1/row.json")).is_file());
    }

    // Other settings in the same directory are refused, naming the problem.
    let other = RecursiveConfig { seed: 12, ..tiny() };
    let err = run_recursive(&other, 2, &chains, out, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("other settings"), "{err}");
}

#[test]
fn bad_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny();
    let e = |r: Result<RecursiveSummary>| r.unwrap_err().to_string();
    assert!(e(run_recursive(&cfg, 0, &[Filter::Hal], dir.path(), 1)).contains("generations"));
    assert!(e(run_recursive(&cfg, 1, &[], dir.path(), 1)).contains("filter"));
    assert!(
        e(run_recursive(
            &cfg,
            1,
            &[Filter::Hal, Filter::Hal],
            dir.path(),
            1
        ))
        .contains("twice")
    );
    let small = RecursiveConfig { n: 50, ..tiny() };
    assert!(e(run_recursive(&small, 1, &[Filter::Hal], dir.path(), 1)).contains("batch"));
    let one_d = RecursiveConfig {
        dataset: "gauss1d-3".into(),
        ..tiny()
    };
    assert!(e(run_recursive(&one_d, 1, &[Filter::Hal], dir.path(), 1)).contains("2D"));
}
