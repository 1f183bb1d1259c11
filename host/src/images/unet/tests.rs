//! Gradient checks: every layer type and the whole net against central finite differences
//! in f64 (h = 1e-6), for the loss L = Σ r ⊙ y with a fixed random r.

use rand_core::Rng;

use super::layers::*;
use super::net::{UnetConfig, UnetLayout};
use super::real::exp_f32;
use mirage_core::noise::chacha_stream;

fn randoms(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = chacha_stream(seed, 99);
    (0..n)
        .map(|_| f64::from(rng.next_u32()) / f64::from(u32::MAX) * 2.0 - 1.0)
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central difference of `f` with respect to `v[i]` for every i in `which`, against `analytic`.
fn check(
    name: &str,
    v: &mut [f64],
    which: impl Iterator<Item = usize>,
    analytic: &[f64],
    mut f: impl FnMut(&[f64]) -> f64,
) {
    const H: f64 = 1e-6;
    let mut worst = 0.0f64;
    let mut checked = 0;
    for i in which {
        let keep = v[i];
        v[i] = keep + H;
        let up = f(v);
        v[i] = keep - H;
        let down = f(v);
        v[i] = keep;
        let numeric = (up - down) / (2.0 * H);
        let err = (numeric - analytic[i]).abs() / (1e-6 + numeric.abs().max(analytic[i].abs()));
        assert!(
            err < 1e-5 || (numeric - analytic[i]).abs() < 1e-8,
            "{name}[{i}]: numeric {numeric} analytic {}",
            analytic[i]
        );
        worst = worst.max(err);
        checked += 1;
    }
    assert!(checked > 0, "{name}: nothing checked");
}

#[test]
fn conv_3x3_and_1x1_gradients() {
    for (k, h, w_) in [(3usize, 5usize, 4usize), (1, 5, 4), (3, 2, 1)] {
        let conv = Conv { cin: 3, cout: 2, k };
        let d = Dims {
            c: 3,
            b: 2,
            h,
            w: w_,
        };
        let mut x = randoms(d.len(), 1);
        let mut w = randoms(conv.weights(), 2);
        let mut bias = randoms(2, 3);
        let r = randoms(2 * d.n(), 4);
        let mut col = Vec::new();
        let loss = |w: &[f64], b: &[f64], x: &[f64]| {
            let mut y = vec![0.0; 2 * d.n()];
            conv.forward(w, b, x, d, &mut Vec::new(), &mut y);
            dot(&y, &r)
        };
        let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; 2], vec![0.0; x.len()]);
        conv.backward(&w, &x, d, &r, &mut col, &mut dw, &mut db, &mut dx);
        let (w0, b0, x0) = (w.clone(), bias.clone(), x.clone());
        check("conv w", &mut w, 0..w0.len(), &dw, |v| loss(v, &b0, &x0));
        check("conv b", &mut bias, 0..2, &db, |v| loss(&w0, v, &x0));
        check("conv x", &mut x, 0..x0.len(), &dx, |v| loss(&w0, &b0, v));
    }
}

#[test]
fn conv_3x3_matches_a_direct_convolution() {
    let conv = Conv {
        cin: 2,
        cout: 3,
        k: 3,
    };
    // (height, width): wide, one column (every shifted row clipped), 2×2.
    for (h, w_) in [(4usize, 5usize), (3, 1), (2, 2)] {
        let d = Dims {
            c: 2,
            b: 2,
            h,
            w: w_,
        };
        let x = randoms(d.len(), 11);
        let w = randoms(conv.weights(), 12);
        let bias = randoms(3, 13);
        let mut y = vec![0.0; 3 * d.n()];
        conv.forward(&w, &bias, &x, d, &mut Vec::new(), &mut y);
        let (hi, wi, hw) = (h as isize, w_ as isize, h * w_);
        for co in 0..3 {
            for b in 0..2 {
                for yy in 0..hi {
                    for xx in 0..wi {
                        let mut want = bias[co];
                        for ci in 0..2 {
                            for ky in 0..3isize {
                                for kx in 0..3isize {
                                    let (sy, sx) = (yy + ky - 1, xx + kx - 1);
                                    if (0..hi).contains(&sy) && (0..wi).contains(&sx) {
                                        want += w[(co * 2 + ci) * 9 + (ky * 3 + kx) as usize]
                                            * x[(ci * 2 + b) * hw + (sy * wi + sx) as usize];
                                    }
                                }
                            }
                        }
                        let got = y[(co * 2 + b) * hw + (yy * wi + xx) as usize];
                        assert!((got - want).abs() < 1e-12, "{h}×{w_}: ({co},{b},{yy},{xx})");
                    }
                }
            }
        }
    }
}

#[test]
fn group_norm_gradients_and_statistics() {
    let d = Dims {
        c: 4,
        b: 3,
        h: 3,
        w: 2,
    };
    let groups = 2;
    let mut x = randoms(d.len(), 5);
    let mut gamma = randoms(4, 6);
    let mut beta = randoms(4, 7);
    let r = randoms(d.len(), 8);
    let forward = |x: &[f64], g: &[f64], b: &[f64]| {
        let (mut xhat, mut rstd, mut y) = (
            vec![0.0; d.len()],
            vec![0.0; 3 * groups],
            vec![0.0; d.len()],
        );
        group_norm_forward(x, d, groups, g, b, &mut xhat, &mut rstd, &mut y);
        (xhat, rstd, y)
    };
    let (xhat, rstd, _) = forward(&x, &gamma, &beta);
    // Each (sample, group) of x̂ has mean 0 and variance var/(var + ε).
    for b in 0..3 {
        for g in 0..groups {
            let vals: Vec<f64> = (g * 2..g * 2 + 2)
                .flat_map(|c| xhat[(c * 3 + b) * 6..][..6].to_vec())
                .collect();
            let mean = vals.iter().sum::<f64>() / 12.0;
            assert!(mean.abs() < 1e-12);
            let raw: Vec<f64> = (g * 2..g * 2 + 2)
                .flat_map(|c| x[(c * 3 + b) * 6..][..6].to_vec())
                .collect();
            let rm = raw.iter().sum::<f64>() / 12.0;
            let var = raw.iter().map(|v| (v - rm).powi(2)).sum::<f64>() / 12.0;
            assert!((rstd[b * groups + g] - 1.0 / (var + GN_EPS).sqrt()).abs() < 1e-9);
        }
    }
    let (mut dg, mut dbeta, mut dx) = (vec![0.0; 4], vec![0.0; 4], vec![0.0; d.len()]);
    group_norm_backward(
        &r, d, groups, &gamma, &xhat, &rstd, &mut dg, &mut dbeta, &mut dx,
    );
    let (x0, g0, b0) = (x.clone(), gamma.clone(), beta.clone());
    check("gn x", &mut x, 0..x0.len(), &dx, |v| {
        dot(&forward(v, &g0, &b0).2, &r)
    });
    check("gn gamma", &mut gamma, 0..4, &dg, |v| {
        dot(&forward(&x0, v, &b0).2, &r)
    });
    check("gn beta", &mut beta, 0..4, &dbeta, |v| {
        dot(&forward(&x0, &g0, v).2, &r)
    });
}

#[test]
fn silu_dense_pool_and_up_gradients() {
    let mut x = randoms(30, 9);
    let r = randoms(30, 10);
    let (mut dx, mut y, mut sig) = (vec![0.0; 30], vec![0.0; 30], vec![0.0; 30]);
    silu_forward(&x, &mut y, &mut sig);
    silu_backward(&x, &sig, &r, &mut dx);
    let x0 = x.clone();
    check("silu", &mut x, 0..30, &dx, |v| {
        let (mut y, mut sig) = (vec![0.0; 30], vec![0.0; 30]);
        silu_forward(v, &mut y, &mut sig);
        dot(&y, &r)
    });
    let _ = x0;

    let (rows, inp, out) = (3, 4, 5);
    let mut w = randoms(inp * out, 20);
    let bias = randoms(out, 21);
    let mut xin = randoms(rows * inp, 22);
    let ry = randoms(rows * out, 23);
    let loss = |w: &[f64], x: &[f64]| {
        let mut y = vec![0.0; rows * out];
        dense_forward(w, &bias, x, rows, inp, out, &mut y);
        dot(&y, &ry)
    };
    let (mut dw, mut db, mut dxin) = (vec![0.0; w.len()], vec![0.0; out], vec![0.0; xin.len()]);
    dense_backward(&w, &xin, &ry, rows, inp, out, &mut dw, &mut db, &mut dxin);
    for (k, g) in db.iter().enumerate() {
        assert!((g - (0..rows).map(|i| ry[i * out + k]).sum::<f64>()).abs() < 1e-12);
    }
    let (w0, x0) = (w.clone(), xin.clone());
    check("dense w", &mut w, 0..w0.len(), &dw, |v| loss(v, &x0));
    check("dense x", &mut xin, 0..x0.len(), &dxin, |v| loss(&w0, v));

    let d = Dims {
        c: 2,
        b: 2,
        h: 4,
        w: 6,
    };
    let mut xp = randoms(d.len(), 30);
    let half = Dims { h: 2, w: 3, ..d };
    let rp = randoms(half.len(), 31);
    let mut dxp = vec![0.0; d.len()];
    pool_backward(&rp, d, &mut dxp);
    check("pool", &mut xp, 0..d.len(), &dxp, |v| {
        let mut y = vec![0.0; half.len()];
        pool_forward(v, d, &mut y);
        dot(&y, &rp)
    });
    let mut xu = randoms(half.len(), 32);
    let ru = randoms(d.len(), 33);
    let mut dxu = vec![0.0; half.len()];
    up_backward(&ru, half, &mut dxu);
    check("up", &mut xu, 0..half.len(), &dxu, |v| {
        let mut y = vec![0.0; d.len()];
        up_forward(v, half, &mut y);
        dot(&y, &ru)
    });
}

#[test]
fn whole_net_gradients_in_f64() {
    let cfg = UnetConfig {
        side: 8,
        c1: 4,
        c2: 6,
        temb_dim: 4,
        time_width: 5,
        groups: 2,
    };
    let layout = UnetLayout::new(cfg).unwrap();
    let mut params: Vec<f64> = layout.init(&mut chacha_stream(1, 2));
    // Move the norms off (1, 0) so their gradients are generic.
    let noise = randoms(params.len(), 40);
    for (p, n) in params.iter_mut().zip(&noise) {
        *p += 0.1 * n;
    }
    let b = 2;
    let t = [3u32, 250];
    let mut x = randoms(b * 64, 41);
    let r = randoms(b * 64, 42);
    let tape = layout.forward(&params, &x, &t).unwrap();
    let mut grad = vec![0.0; params.len()];
    let dx = layout.backward(&params, &x, &tape, &r, &mut grad).unwrap();
    let loss = |p: &[f64], x: &[f64]| dot(layout.forward(p, x, &t).unwrap().output(), &r);
    let x0 = x.clone();
    // Every 7th parameter (covers every tensor: the smallest have ≥ 2·... entries and the
    // stride is coprime with the layout), plus the first and last.
    let n = params.len();
    let which: Vec<usize> = (0..n).step_by(7).chain([1, n - 1]).collect();
    check(
        "net params",
        &mut params.clone(),
        which.into_iter(),
        &grad,
        |v| loss(v, &x0),
    );
    check("net x", &mut x, 0..x0.len(), &dx, |v| loss(&params, v));
}

#[test]
fn f32_and_f64_forward_agree() {
    let cfg = UnetConfig {
        side: 8,
        c1: 4,
        c2: 8,
        temb_dim: 8,
        time_width: 8,
        groups: 4,
    };
    let layout = UnetLayout::new(cfg).unwrap();
    let p32: Vec<f32> = layout.init(&mut chacha_stream(3, 2));
    let p64: Vec<f64> = p32.iter().map(|&v| f64::from(v)).collect();
    let x64 = randoms(3 * 64, 50);
    let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
    let t = [0u32, 10, 999];
    let y32 = layout.forward(&p32, &x32, &t).unwrap().into_output();
    let y64 = layout.forward(&p64, &x64, &t).unwrap().into_output();
    for (a, b) in y32.iter().zip(&y64) {
        assert!(
            (f64::from(*a) - b).abs() < 5e-5 + 5e-4 * b.abs(),
            "{a} vs {b}"
        );
    }
    assert!(UnetLayout::new(UnetConfig { side: 6, ..cfg }).is_err());
    assert!(UnetLayout::new(UnetConfig { c1: 6, ..cfg }).is_err());
    assert!(layout.forward(&p32, &x32[..10], &t).is_err());
}

#[test]
fn exp_f32_within_two_ulp_of_exp() {
    // Every 1/64 on [−87, 88] plus the clamp ends and points just inside them.
    let grid = (-87 * 64..=88 * 64).map(|i| i as f32 / 64.0);
    let ends = [-87.0f32, 88.0, -86.99, 87.99, 0.0, -0.0, 1e-8, -1e-8];
    let mut worst = 0.0f64;
    for x in grid.chain(ends) {
        let want = f64::from(x).exp();
        let ulp = f64::from(f32::EPSILON) * want;
        worst = worst.max((f64::from(exp_f32(x)) - want).abs() / ulp);
    }
    assert!(worst <= 2.0, "exp_f32 off by {worst} ulp");
    // Beyond the clamp: finite, no NaN, monotone limits.
    assert_eq!(exp_f32(-200.0), exp_f32(-87.0));
    assert_eq!(exp_f32(200.0), exp_f32(88.0));
    assert!(exp_f32(88.0).is_finite() && exp_f32(-87.0) > 0.0);
}
