use super::*;

/// Deterministic xorshift for test data.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn brute_auroc(scores: &[f32], positive: &[bool]) -> f64 {
    let (mut num, mut pairs) = (0.0, 0.0);
    for (i, &si) in scores.iter().enumerate() {
        for (j, &sj) in scores.iter().enumerate() {
            if positive[i] && !positive[j] {
                pairs += 1.0;
                if si > sj {
                    num += 1.0;
                } else if si == sj {
                    num += 0.5;
                }
            }
        }
    }
    num / pairs
}

fn brute_ap(scores: &[f32], positive: &[bool]) -> f64 {
    let n_pos = positive.iter().filter(|p| **p).count() as f64;
    let mut ap = 0.0;
    for (i, &si) in scores.iter().enumerate() {
        if positive[i] {
            let flagged = scores.iter().filter(|&&s| s >= si).count() as f64;
            let tp = scores
                .iter()
                .zip(positive)
                .filter(|&(&s, &p)| p && s >= si)
                .count() as f64;
            ap += tp / flagged / n_pos;
        }
    }
    ap
}

fn random_case(seed: u64, n: usize, levels: u64) -> (Vec<f32>, Vec<bool>) {
    let mut st = seed;
    let mut scores = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let pos = xorshift(&mut st).is_multiple_of(3);
        // Heavily tied scores, shifted up for positives so AUROC is far from ½.
        let level =
            (xorshift(&mut st) % levels) as f32 + if pos { levels as f32 * 0.3 } else { 0.0 };
        let s = match xorshift(&mut st) % 50 {
            0 => f32::INFINITY,
            1 => f32::NEG_INFINITY,
            _ => level,
        };
        scores.push(s);
        labels.push(pos);
    }
    (scores, labels)
}

#[test]
fn auroc_matches_brute_force_pair_count_with_ties() {
    for (seed, n, levels) in [(1u64, 300, 7u64), (2, 500, 40), (3, 257, 1000), (4, 100, 1)] {
        let (scores, labels) = random_case(seed, n, levels);
        let fast = auroc(&scores, &labels).unwrap();
        let slow = brute_auroc(&scores, &labels);
        assert!((fast - slow).abs() < 1e-12, "seed {seed}: {fast} vs {slow}");
        // The trapezoid under the ROC curve is the same number by another path.
        let curve = roc_curve(&scores, &labels).unwrap();
        assert!(
            (curve.area() - slow).abs() < 1e-12,
            "seed {seed}: area {}",
            curve.area()
        );
        let first = curve.points.first().unwrap();
        let last = curve.points.last().unwrap();
        assert_eq!(
            (first.fpr, first.tpr, last.fpr, last.tpr),
            (0.0, 0.0, 1.0, 1.0)
        );
        assert!(
            curve
                .points
                .windows(2)
                .all(|w| w[0].fpr <= w[1].fpr && w[0].tpr <= w[1].tpr)
        );
        let thin = curve.thinned(9);
        assert!(thin.points.len() <= 9);
        assert_eq!(thin.points.first(), curve.points.first());
        assert_eq!(thin.points.last(), curve.points.last());
    }
    // All tied: ½.
    assert_eq!(
        auroc(&[1.0; 6], &[true, false, true, false, false, true]).unwrap(),
        0.5
    );
    // Perfect and reversed.
    assert_eq!(
        auroc(&[3.0, 2.0, 1.0, 0.0], &[true, true, false, false]).unwrap(),
        1.0
    );
    assert_eq!(
        auroc(&[3.0, 2.0, 1.0, 0.0], &[false, false, true, true]).unwrap(),
        0.0
    );
}

#[test]
fn auprc_matches_per_positive_precision_average() {
    assert!(
        (auprc(&[0.9, 0.8, 0.7, 0.6], &[true, false, true, false]).unwrap()
            - (0.5 + 0.5 * 2.0 / 3.0))
            .abs()
            < 1e-15
    );
    for (seed, n, levels) in [(5u64, 300, 7u64), (6, 400, 1000)] {
        let (scores, labels) = random_case(seed, n, levels);
        let fast = auprc(&scores, &labels).unwrap();
        let slow = brute_ap(&scores, &labels);
        assert!((fast - slow).abs() < 1e-12, "seed {seed}: {fast} vs {slow}");
    }
}

#[test]
fn metric_input_errors() {
    assert!(
        format!("{:#}", auroc(&[1.0, f32::NAN], &[true, false]).unwrap_err())
            .contains("sample 1 is NaN")
    );
    assert!(
        format!("{:#}", auroc(&[1.0, 2.0], &[true]).unwrap_err()).contains("2 scores but 1 labels")
    );
    assert!(
        format!("{:#}", auroc(&[1.0, 2.0], &[true, true]).unwrap_err()).contains("both classes")
    );
    assert!(roc_curve(&[1.0], &[false]).is_err());
    assert!(auprc(&[1.0], &[false]).is_err());
}

#[test]
fn quantiles_interpolate_like_numpy() {
    let q = quantiles(&[4.0, 1.0, 3.0, 2.0], &[0.0, 0.25, 0.5, 1.0]).unwrap();
    assert_eq!(q, vec![1.0, 1.75, 2.5, 4.0]);
    let ten: Vec<f32> = (1..=10).map(|v| v as f32).collect();
    assert!((quantiles(&ten, &[0.9]).unwrap()[0] - 9.1).abs() < 1e-12);
    assert_eq!(
        quantiles(&[1.0, f32::INFINITY], &[0.5]).unwrap()[0],
        f64::INFINITY
    );
    assert!(quantiles(&[], &[0.5]).is_err());
    assert!(quantiles(&[1.0, f32::NAN], &[0.5]).is_err());
    assert!(quantiles(&[1.0], &[1.5]).is_err());
    assert_eq!(kth_smallest(&[5.0, 1.0, 3.0], 2).unwrap(), 3.0);
    assert!(kth_smallest(&[5.0], 0).is_err());
    assert!(kth_smallest(&[5.0], 2).is_err());
}

#[test]
fn d5_threshold_uses_an_exact_integer_ceiling() {
    // 0.96·25 = 24 exactly, but 0.96_f64 * 25.0 = 24.000000000000004 would round up to 25.
    let v: Vec<f32> = (1..=25).rev().map(|x| x as f32).collect();
    assert_eq!(d5_threshold(&v, 96).unwrap(), (24.0, 24));
    let w: Vec<f32> = (1..=26).map(|x| x as f32).collect();
    assert_eq!(d5_threshold(&w, 96).unwrap(), (25.0, 25)); // ⌈24.96⌉
    assert!(d5_threshold(&[], 96).is_err());
    assert!(d5_threshold(&[1.0], 0).is_err());
}

/// 2000 samples in blocks of 10: indices ≡ 8, 9 (mod 10) hallucinated. Calibration
/// in-support scores 1..800 ⇒ τ = 768; the test half gets 32 in-support scores above τ
/// (TNR 0.96) and 190 of 200 hallucinations above τ (TPR 0.95).
fn d5_case() -> (Vec<f32>, Vec<bool>) {
    let mut scores = vec![0.0f32; 2000];
    let labels: Vec<bool> = (0..2000).map(|i| i % 10 >= 8).collect();
    let (mut cal_in, mut test_in, mut test_hal) = (0u32, 0u32, 0u32);
    for i in 0..2000 {
        scores[i] = match (i % 2 == 0, labels[i]) {
            (true, false) => {
                cal_in += 1;
                cal_in as f32
            }
            (true, true) => 1.0e6, // calibration hallucinations must not move τ
            (false, false) => {
                test_in += 1;
                (test_in - 1) as f32 + 0.5
            }
            (false, true) => {
                test_hal += 1;
                let m = test_hal - 1;
                if m == 0 {
                    f32::INFINITY
                } else if m < 190 {
                    1000.0 + m as f32
                } else {
                    m as f32
                }
            }
        };
    }
    (scores, labels)
}

#[test]
fn d5_scores_a_synthetic_case_with_known_answer() {
    let (scores, labels) = d5_case();
    let r = score_d5(&scores, &labels, &D5Config::PAPER).unwrap();
    assert_eq!(
        (r.n, r.calibration_in, r.calibration_hallucinated),
        (2000, 800, 200)
    );
    assert_eq!((r.threshold, r.threshold_rank), (768.0, 768));
    assert_eq!(
        (
            r.test_in,
            r.test_hallucinated,
            r.true_positives,
            r.false_positives
        ),
        (800, 200, 190, 32)
    );
    assert_eq!(r.tnr, Some(0.96));
    assert_eq!(r.tpr, Some(0.95));
    assert_eq!(r.precision, Some(190.0 / 222.0));
    assert_eq!(r.base_rate, Some(0.2));
    assert_eq!(r.verdict, Verdict::Pass);
    let test_s: Vec<f32> = scores.iter().skip(1).step_by(2).copied().collect();
    let test_l: Vec<bool> = labels.iter().skip(1).step_by(2).copied().collect();
    assert!((r.auroc.unwrap() - brute_auroc(&test_s, &test_l)).abs() < 1e-12);
    assert!((r.auprc.unwrap() - brute_ap(&test_s, &test_l)).abs() < 1e-12);
    let json = serde_json::to_string(&r).unwrap();
    let back: D5Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);

    let strict = D5Config {
        pass_tpr: 0.951,
        ..D5Config::PAPER
    };
    assert_eq!(
        score_d5(&scores, &labels, &strict).unwrap().verdict,
        Verdict::Fail
    );
    let more = D5Config {
        min_test_hallucinations: 201,
        ..D5Config::PAPER
    };
    assert_eq!(
        score_d5(&scores, &labels, &more).unwrap().verdict,
        Verdict::Inconclusive
    );
}

#[test]
fn d5_edge_cases() {
    // No in-support calibration sample.
    assert!(score_d5(&[1.0, 2.0], &[true, false], &D5Config::PAPER).is_err());
    // No test hallucinations: inconclusive, rates that need them are None.
    let r = score_d5(&[1.0, 2.0, 3.0, 4.0], &[false; 4], &D5Config::PAPER).unwrap();
    assert_eq!(
        (r.tpr, r.auroc, r.auprc, r.verdict),
        (None, None, None, Verdict::Inconclusive)
    );
    assert_eq!(r.tnr, Some(0.5));
    // +∞ in-support calibration scores saturate τ; +∞ test scores are still flagged.
    let r = score_d5(
        &[f32::INFINITY, f32::INFINITY, 1.0, 2.0],
        &[false, true, false, false],
        &D5Config::PAPER,
    )
    .unwrap();
    assert_eq!(r.threshold, f32::MAX);
    assert_eq!(r.true_positives, 1);
    assert!(serde_json::to_string(&r).is_ok());
    assert!(score_d5(&[1.0, f32::NAN], &[false, true], &D5Config::PAPER).is_err());
}
