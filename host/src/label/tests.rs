use super::*;
use crate::data::{GRID_DIVISOR, Mixture, Named};

fn hal(nearest: usize, kind: Kind) -> Label {
    Label::Hallucination { nearest, kind }
}
fn ins(mode: usize) -> Label {
    Label::InSupport { mode }
}

#[test]
fn d1_table_gauss1d_3() {
    let l = LineLabeller::new(&Named::Gauss1d3.mixture().unwrap(), PAPER_K).unwrap();
    let table: &[(f32, Label)] = &[
        (1.0, ins(0)),
        (1.2499, ins(0)),
        (1.2501, hal(0, Kind::Interpolation)),
        (0.7501, ins(0)),
        (0.7499, hal(0, Kind::Extrapolation)),
        (1.5, hal(0, Kind::Interpolation)),
        (1.74, hal(1, Kind::Interpolation)),
        (1.76, ins(1)),
        (2.5, hal(1, Kind::Interpolation)),
        (3.24, ins(2)),
        (3.3, hal(2, Kind::Extrapolation)),
        (-4.0, hal(0, Kind::Extrapolation)),
        (f32::NAN, hal(0, Kind::Extrapolation)),
        (f32::INFINITY, hal(0, Kind::Extrapolation)),
    ];
    for &(x, want) in table {
        assert_eq!(l.label(x), want, "x = {x}");
    }
}

#[test]
fn d1_radius_scales_with_k_and_gauss1d_4_gap() {
    let m3 = Named::Gauss1d3.mixture().unwrap();
    let k4 = LineLabeller::new(&m3, 4.0).unwrap();
    let k6 = LineLabeller::new(&m3, 6.0).unwrap();
    assert!(k4.label(1.22).is_hallucination());
    assert!(!k4.label(1.18).is_hallucination());
    assert!(!k6.label(1.28).is_hallucination());
    assert!(k6.label(1.31).is_hallucination());
    let l4 = LineLabeller::new(&Named::Gauss1d4.mixture().unwrap(), PAPER_K).unwrap();
    let table: &[(f32, Label)] = &[
        (3.0, hal(1, Kind::Interpolation)),
        (3.7, hal(2, Kind::Interpolation)),
        (3.8, ins(2)),
        (4.1, ins(2)),
        (4.5, hal(2, Kind::Interpolation)),
        (5.2, ins(3)),
        (5.3, hal(3, Kind::Extrapolation)),
    ];
    for &(x, want) in table {
        assert_eq!(l4.label(x), want, "x = {x}");
    }
}

#[test]
fn d2_table_grid25() {
    let l = PlaneLabeller::new(&Named::Grid25.mixture().unwrap(), PAPER_K).unwrap();
    assert_eq!(l.segments().len(), 40);
    // Component (i, j) has index 5(i+2) + (j+2) and centre 2(i, j)/2.828869.
    let s = (2.0 / GRID_DIVISOR) as f32;
    let table: &[([f32; 2], Label)] = &[
        ([0.0, 0.0], ins(12)),
        ([0.08, 0.0], ins(12)),
        ([0.0, 0.0883], ins(12)), // 5σ_n = 0.0883745
        ([0.0, 0.0885], hal(12, Kind::Edge)),
        ([0.06, 0.06], ins(12)),
        ([0.07, 0.07], hal(12, Kind::Edge)),
        ([0.3, 0.0], hal(12, Kind::Edge)),
        ([0.3, 0.08], hal(12, Kind::Edge)),
        ([0.3, 0.1], hal(12, Kind::OffEdge)),
        ([0.4, 0.05], hal(17, Kind::Edge)),
        ([0.05, -0.4], hal(11, Kind::Edge)),
        ([0.3, 0.3], hal(12, Kind::OffEdge)),
        ([s, s], ins(18)),
        ([2.0 * s + 0.2, 0.0], hal(22, Kind::OffEdge)),
        ([f32::NAN, 0.0], hal(0, Kind::OffEdge)),
    ];
    for &(x, want) in table {
        assert_eq!(l.label(x), want, "x = {x:?}");
    }
}

#[test]
fn d2_rotated_grid_has_no_edges_along_x() {
    let l = PlaneLabeller::new(&Named::Grid25Rot.mixture().unwrap(), PAPER_K).unwrap();
    assert_eq!(l.segments().len(), 40);
    let h = (0.5 / GRID_DIVISOR) as f32; // half of the raw diagonal step (1, 1)
    // Component (i, j) has index 5(j+2) + (i+2) and centre (i+j, i−j)/2.828869.
    let table: &[([f32; 2], Label)] = &[
        ([0.0, 0.0], ins(12)),
        ([0.9 * h, 0.9 * h], hal(12, Kind::Edge)),
        ([1.1 * h, -1.1 * h], hal(17, Kind::Edge)),
        ([0.35, 0.0], hal(12, Kind::OffEdge)),
        ([0.0, 0.35], hal(12, Kind::OffEdge)),
    ];
    for &(x, want) in table {
        assert_eq!(l.label(x), want, "x = {x:?}");
    }
}

#[test]
fn generic_labeller_agrees_with_d1_and_d2_decisions() {
    // Another path: standardised distance vs plain distance against kσ.
    let mut state = 0x1234_5678_u32;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        f64::from(state) / f64::from(u32::MAX)
    };
    for named in Named::ALL {
        let mix = named.mixture().unwrap();
        let generic = MixtureLabeller::new(&mix, PAPER_K).unwrap();
        let specific = Labeller::for_mixture(&mix, PAPER_K).unwrap();
        assert!(!matches!(specific, Labeller::Mixture(_)));
        let mut disagreements = 0;
        let mut hallucinated = 0;
        for _ in 0..20_000 {
            let x: Vec<f32> = (0..mix.dim())
                .map(|_| (uniform() * 6.0 - 2.0) as f32 * if mix.dim() == 2 { 0.5 } else { 1.0 })
                .collect();
            let a = generic.label(&x).unwrap();
            let b = specific.label(&x).unwrap();
            hallucinated += usize::from(b.is_hallucination());
            if a.is_hallucination() != b.is_hallucination() {
                disagreements += 1;
            }
        }
        assert_eq!(disagreements, 0, "{named}");
        assert!(
            hallucinated > 1000 && hallucinated < 20_000,
            "{named}: {hallucinated}"
        );
    }
}

#[test]
fn generic_labeller_uses_per_axis_sigma() {
    let mix = Mixture::new(
        "aniso",
        2,
        &[0.0, 0.0, 1.0, 0.0],
        &[0.1, 0.2, 0.1, 0.1],
        &[1.0, 1.0],
    )
    .unwrap();
    let l = Labeller::for_mixture(&mix, 3.0).unwrap();
    assert!(matches!(l, Labeller::Mixture(_)));
    let table: &[([f32; 2], Label)] = &[
        ([0.0, 0.5], ins(0)),
        ([0.0, 0.61], hal(0, Kind::Other)),
        ([0.35, 0.0], hal(0, Kind::Other)),
        ([0.75, 0.0], ins(1)),
        ([0.6, 0.0], hal(1, Kind::Other)),
    ];
    for &(x, want) in table {
        assert_eq!(l.label(&x).unwrap(), want, "x = {x:?}");
    }
    assert!(l.label(&[0.0]).is_err());
    assert!(l.label_all(&[0.0, 0.0, 1.0]).is_err());
    assert!(Labeller::for_mixture(&mix, 0.0).is_err());
    assert!(Labeller::for_mixture(&mix, f64::NAN).is_err());
}

#[test]
fn summary_and_coverage_count_labels() {
    let labels = [
        ins(0),
        ins(0),
        ins(2),
        hal(1, Kind::Interpolation),
        hal(0, Kind::Extrapolation),
        hal(2, Kind::Edge),
        ins(7),
    ];
    let s = Summary::of(&labels);
    assert_eq!(
        (
            s.total,
            s.hallucinated,
            s.interpolation,
            s.extrapolation,
            s.edge,
            s.off_edge
        ),
        (7, 3, 1, 1, 1, 0)
    );
    assert!((s.rate - 3.0 / 7.0).abs() < 1e-15);
    let c = mode_coverage(&labels, 3, 1);
    assert_eq!(c.per_mode, vec![2, 0, 1]);
    assert_eq!(c.covered, 2);
    assert_eq!(mode_coverage(&labels, 3, 2).covered, 1);
    assert_eq!(Summary::of(&[]).rate, 0.0);
}

#[test]
fn nearest_mode_table() {
    let means = [0.0f32, 0.0, 1.0, 0.0, 0.0, 2.0];
    let table: &[(&[f32], Option<usize>)] = &[
        (&[0.1, 0.1], Some(0)),
        (&[0.5, 0.0], Some(0)),
        (&[0.6, 0.0], Some(1)),
        (&[0.0, 1.2], Some(2)),
        (&[f32::NAN, 0.0], None),
        (&[0.0], None),
    ];
    for &(x, want) in table {
        assert_eq!(nearest_mode(&means, 2, x), want, "x = {x:?}");
    }
    assert_eq!(nearest_mode(&[], 2, &[0.0, 0.0]), None);
    assert_eq!(nearest_mode(&means[..5], 2, &[0.0, 0.0]), None);
}
