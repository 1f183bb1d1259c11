//! The U-Net ε-predictor: configuration, parameter layout, forward with a tape, backward.
//!
//! ```text
//! emb   = sinusoid(t, E)  (mirage_core::Mlp::time_embedding, raw integer t)
//! temb  = SiLU(W_t·emb + b_t)                                    E → Tc
//! Res(x; cin→cout) = conv3(SiLU(GN(h))) + skip(x),   h = conv3(SiLU(GN(x))) + W_p·temb + b_p
//!                    skip = 1×1 conv if cin ≠ cout, else identity
//! h0 = conv3(x)              [C1, S]
//! r1 = Res(h0; C1→C1)        [C1, S]      (skip 1)
//! r2 = Res(pool(r1); C1→C2)  [C2, S/2]    (skip 2)
//! m  = Res(pool(r2); C2→C2)  [C2, S/4]
//! r3 = Res([up(m); r2]; 2C2→C2)  [C2, S/2]
//! r4 = Res([up(r3); r1]; C2+C1→C1) [C1, S]
//! ε̂  = conv3(SiLU(GN(r4)))   [1, S]
//! ```
//! GN has `groups` groups everywhere (channel counts must divide); conv3 is 3×3, pad 1.
//! Initialisation is PyTorch's default for conv and linear layers (U(±1/√fan_in) for
//! weights and biases), GN (γ, β) = (1, 0). Parameters are one flat vector in the order
//! of [`UnetLayout`].

use anyhow::{Result, ensure};
use rand_core::Rng;

use super::layers::{
    Conv, Dims, dense_backward, dense_forward, group_norm_backward, group_norm_forward,
    pool_backward, pool_forward, silu_backward, silu_forward, up_backward, up_forward,
};
use super::real::Real;

/// Images per forward/backward pass in training and sampling: the activations of 8
/// images at 32×32 stay in the caches (one pass over a 32-image batch ran 1.3–1.6× slower).
pub const MICRO_BATCH: usize = 8;

/// Shape of the U-Net.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnetConfig {
    /// Image side S (square, one channel); divisible by 4.
    pub side: usize,
    /// Channels at full resolution.
    pub c1: usize,
    /// Channels at S/2 and S/4.
    pub c2: usize,
    /// Sinusoidal embedding width E (even, ≥ 4).
    pub temb_dim: usize,
    /// Time-branch width Tc.
    pub time_width: usize,
    /// Group-norm groups.
    pub groups: usize,
}

impl UnetConfig {
    /// 32×32 shapes: channels 16/32, E = 32, Tc = 64, 4 groups (≈ 92k parameters).
    pub const SHAPES32: Self = Self {
        side: 32,
        c1: 16,
        c2: 32,
        temb_dim: 32,
        time_width: 64,
        groups: 4,
    };
    /// 8×8 digits: channels 16/32, E = 32, Tc = 64, 4 groups.
    pub const DIGITS8: Self = Self {
        side: 8,
        c1: 16,
        c2: 32,
        temb_dim: 32,
        time_width: 64,
        groups: 4,
    };

    /// Checks every size.
    ///
    /// # Errors
    /// Side not a positive multiple of 4 (or above 256), channels or groups that do not
    /// divide, odd or tiny E.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.side >= 4 && self.side.is_multiple_of(4) && self.side <= 256,
            "U-Net side {} must be a multiple of 4 in 4..=256",
            self.side
        );
        ensure!(self.groups >= 1, "U-Net needs at least 1 group");
        for c in [self.c1, self.c2, 2 * self.c2, self.c1 + self.c2] {
            ensure!(
                (1..=1024).contains(&c) && c.is_multiple_of(self.groups),
                "U-Net channel count {c} must be in 1..=1024 and divisible by {} groups",
                self.groups
            );
        }
        ensure!(
            self.temb_dim >= 4 && self.temb_dim.is_multiple_of(2) && self.temb_dim <= 1024,
            "U-Net time embedding {} must be even in 4..=1024",
            self.temb_dim
        );
        ensure!(
            (1..=1024).contains(&self.time_width),
            "U-Net time width {} must be in 1..=1024",
            self.time_width
        );
        Ok(())
    }

    /// Pixels per image.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.side * self.side
    }
}

/// Offsets of a conv's weight and bias.
#[derive(Clone, Copy, Debug)]
struct ConvP {
    conv: Conv,
    w: usize,
    b: usize,
}

/// Offsets of a group norm's γ and β.
#[derive(Clone, Copy, Debug)]
struct NormP {
    c: usize,
    gamma: usize,
    beta: usize,
}

/// Offsets of a dense layer.
#[derive(Clone, Copy, Debug)]
struct DenseP {
    inp: usize,
    out: usize,
    w: usize,
    b: usize,
}

#[derive(Clone, Copy, Debug)]
struct BlockP {
    cin: usize,
    cout: usize,
    n1: NormP,
    c1: ConvP,
    tp: DenseP,
    n2: NormP,
    c2: ConvP,
    skip: Option<ConvP>,
}

/// Where each tensor sits in the flat parameter vector, and how it is initialised.
#[derive(Clone, Debug)]
pub struct UnetLayout {
    config: UnetConfig,
    time: DenseP,
    conv_in: ConvP,
    blocks: [BlockP; 5],
    n_out: NormP,
    conv_out: ConvP,
    /// (offset, len, init bound; 0 = ones, −1 = zeros) of every tensor.
    inits: Vec<(usize, usize, f64)>,
    total: usize,
}

struct Builder {
    next: usize,
    inits: Vec<(usize, usize, f64)>,
}

impl Builder {
    fn take(&mut self, len: usize, bound: f64) -> usize {
        let off = self.next;
        self.inits.push((off, len, bound));
        self.next += len;
        off
    }
    fn conv(&mut self, cin: usize, cout: usize, k: usize) -> ConvP {
        let conv = Conv { cin, cout, k };
        let bound = 1.0 / ((cin * k * k) as f64).sqrt();
        ConvP {
            conv,
            w: self.take(conv.weights(), bound),
            b: self.take(cout, bound),
        }
    }
    fn norm(&mut self, c: usize) -> NormP {
        NormP {
            c,
            gamma: self.take(c, 0.0),
            beta: self.take(c, -1.0),
        }
    }
    fn dense(&mut self, inp: usize, out: usize) -> DenseP {
        let bound = 1.0 / (inp as f64).sqrt();
        DenseP {
            inp,
            out,
            w: self.take(inp * out, bound),
            b: self.take(out, bound),
        }
    }
    fn block(&mut self, cin: usize, cout: usize, tc: usize) -> BlockP {
        BlockP {
            cin,
            cout,
            n1: self.norm(cin),
            c1: self.conv(cin, cout, 3),
            tp: self.dense(tc, cout),
            n2: self.norm(cout),
            c2: self.conv(cout, cout, 3),
            skip: (cin != cout).then(|| self.conv(cin, cout, 1)),
        }
    }
}

impl UnetLayout {
    /// The layout of `config`.
    ///
    /// # Errors
    /// As [`UnetConfig::validate`].
    pub fn new(config: UnetConfig) -> Result<Self> {
        config.validate()?;
        let UnetConfig {
            c1,
            c2,
            temb_dim,
            time_width: tc,
            ..
        } = config;
        let mut b = Builder {
            next: 0,
            inits: Vec::new(),
        };
        let time = b.dense(temb_dim, tc);
        let conv_in = b.conv(1, c1, 3);
        let blocks = [
            b.block(c1, c1, tc),
            b.block(c1, c2, tc),
            b.block(c2, c2, tc),
            b.block(2 * c2, c2, tc),
            b.block(c2 + c1, c1, tc),
        ];
        let n_out = b.norm(c1);
        let conv_out = b.conv(c1, 1, 3);
        Ok(Self {
            config,
            time,
            conv_in,
            blocks,
            n_out,
            conv_out,
            total: b.next,
            inits: b.inits,
        })
    }

    /// Number of parameters.
    #[must_use]
    pub fn param_count(&self) -> usize {
        self.total
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> UnetConfig {
        self.config
    }

    /// Fresh parameters from `rng` (PyTorch default initialisation, see the module docs).
    pub fn init<T: Real>(&self, rng: &mut impl Rng) -> Vec<T> {
        let mut p = vec![T::ZERO; self.total];
        for &(off, len, bound) in &self.inits {
            for v in &mut p[off..off + len] {
                *v = if bound == 0.0 {
                    T::ONE
                } else if bound < 0.0 {
                    T::ZERO
                } else {
                    let u = f64::from(rng.next_u32() >> 8) / 16_777_216.0;
                    T::from_f64(f64::from(((2.0 * u - 1.0) * bound) as f32))
                };
            }
        }
        p
    }

    /// ε̂ for `x` (`[B][S²]`) at per-sample steps `t`, computed [`MICRO_BATCH`] images at a
    /// time (no tape kept).
    ///
    /// # Errors
    /// As [`Self::forward`].
    pub fn predict<T: Real>(&self, params: &[T], x: &[T], t: &[u32]) -> Result<Vec<T>> {
        let d = self.config.dim();
        ensure!(
            x.len() == t.len() * d,
            "U-Net: input holds {} values, expected {} images of {d}",
            x.len(),
            t.len()
        );
        let mut out = Vec::with_capacity(x.len());
        for (xs, ts) in x.chunks(MICRO_BATCH * d).zip(t.chunks(MICRO_BATCH)) {
            out.extend_from_slice(self.forward(params, xs, ts)?.output());
        }
        Ok(out)
    }

    /// Runs the net on `x` (`[B][S²]`) at per-sample steps `t`, keeping what backward needs.
    ///
    /// # Errors
    /// Wrong parameter count, or `x` not `t.len()` images.
    pub fn forward<T: Real>(&self, params: &[T], x: &[T], t: &[u32]) -> Result<Tape<T>> {
        let cfg = self.config;
        ensure!(
            params.len() == self.total,
            "U-Net: {} parameters given, layout has {}",
            params.len(),
            self.total
        );
        let b = t.len();
        ensure!(
            b > 0 && x.len() == b * cfg.dim(),
            "U-Net: input holds {} values, expected {b} images of {}",
            x.len(),
            cfg.dim()
        );
        let s = cfg.side;
        let d_full = Dims {
            c: 1,
            b,
            h: s,
            w: s,
        };
        let d_half = Dims {
            c: 1,
            b,
            h: s / 2,
            w: s / 2,
        };
        let d_quarter = Dims {
            c: 1,
            b,
            h: s / 4,
            w: s / 4,
        };
        let (e, tc) = (cfg.temb_dim, cfg.time_width);
        let mut emb32 = vec![0.0f32; e];
        let mut emb = vec![T::ZERO; b * e];
        for (row, &ti) in emb.chunks_exact_mut(e).zip(t) {
            mirage_core::Mlp::time_embedding(e, ti, &mut emb32);
            for (o, &v) in row.iter_mut().zip(&emb32) {
                *o = T::from_f64(f64::from(v));
            }
        }
        let mut tpre = vec![T::ZERO; b * tc];
        dense_forward(
            &params[self.time.w..],
            &params[self.time.b..],
            &emb,
            b,
            e,
            tc,
            &mut tpre,
        );
        let mut temb = vec![T::ZERO; b * tc];
        let mut tsig = vec![T::ZERO; b * tc];
        silu_forward(&tpre, &mut temb, &mut tsig);

        let mut col = Vec::new();
        let mut h0 = vec![T::ZERO; d_full.with_c(cfg.c1).len()];
        let ci = self.conv_in;
        ci.conv.forward(
            &params[ci.w..],
            &params[ci.b..],
            x,
            d_full,
            &mut col,
            &mut h0,
        );
        let b0 = self.block_forward(params, &self.blocks[0], &h0, d_full, &temb, &mut col);
        let mut p1 = vec![T::ZERO; d_half.with_c(cfg.c1).len()];
        pool_forward(&b0.out, d_full.with_c(cfg.c1), &mut p1);
        let b1 = self.block_forward(params, &self.blocks[1], &p1, d_half, &temb, &mut col);
        let mut p2 = vec![T::ZERO; d_quarter.with_c(cfg.c2).len()];
        pool_forward(&b1.out, d_half.with_c(cfg.c2), &mut p2);
        let b2 = self.block_forward(params, &self.blocks[2], &p2, d_quarter, &temb, &mut col);
        let mut cat2 = vec![T::ZERO; d_half.with_c(2 * cfg.c2).len()];
        let split2 = d_half.with_c(cfg.c2).len();
        up_forward(&b2.out, d_quarter.with_c(cfg.c2), &mut cat2[..split2]);
        cat2[split2..].copy_from_slice(&b1.out);
        let b3 = self.block_forward(params, &self.blocks[3], &cat2, d_half, &temb, &mut col);
        let mut cat1 = vec![T::ZERO; d_full.with_c(cfg.c1 + cfg.c2).len()];
        let split1 = d_full.with_c(cfg.c2).len();
        up_forward(&b3.out, d_half.with_c(cfg.c2), &mut cat1[..split1]);
        cat1[split1..].copy_from_slice(&b0.out);
        let b4 = self.block_forward(params, &self.blocks[4], &cat1, d_full, &temb, &mut col);

        let dn = d_full.with_c(cfg.c1);
        let mut out_xhat = vec![T::ZERO; dn.len()];
        let mut out_rstd = vec![T::ZERO; b * cfg.groups];
        let mut out_a = vec![T::ZERO; dn.len()];
        let no = self.n_out;
        group_norm_forward(
            &b4.out,
            dn,
            cfg.groups,
            &params[no.gamma..],
            &params[no.beta..],
            &mut out_xhat,
            &mut out_rstd,
            &mut out_a,
        );
        let mut out_s = vec![T::ZERO; dn.len()];
        let mut out_sig = vec![T::ZERO; dn.len()];
        silu_forward(&out_a, &mut out_s, &mut out_sig);
        let mut out = vec![T::ZERO; d_full.len()];
        let co = self.conv_out;
        co.conv.forward(
            &params[co.w..],
            &params[co.b..],
            &out_s,
            dn,
            &mut col,
            &mut out,
        );
        Ok(Tape {
            b,
            emb,
            tpre,
            tsig,
            temb,
            h0,
            p1,
            p2,
            cat2,
            cat1,
            blocks: [b0, b1, b2, b3, b4],
            out_xhat,
            out_rstd,
            out_a,
            out_sig,
            out_s,
            out,
        })
    }

    fn block_forward<T: Real>(
        &self,
        p: &[T],
        bp: &BlockP,
        x: &[T],
        d: Dims,
        temb: &[T],
        col: &mut Vec<T>,
    ) -> BlockTape<T> {
        let g = self.config.groups;
        let (din, dout) = (d.with_c(bp.cin), d.with_c(bp.cout));
        let mut xhat1 = vec![T::ZERO; din.len()];
        let mut rstd1 = vec![T::ZERO; d.b * g];
        let mut a1 = vec![T::ZERO; din.len()];
        group_norm_forward(
            x,
            din,
            g,
            &p[bp.n1.gamma..],
            &p[bp.n1.beta..],
            &mut xhat1,
            &mut rstd1,
            &mut a1,
        );
        let mut s1 = vec![T::ZERO; din.len()];
        let mut sig1 = vec![T::ZERO; din.len()];
        silu_forward(&a1, &mut s1, &mut sig1);
        let mut c1 = vec![T::ZERO; dout.len()];
        bp.c1
            .conv
            .forward(&p[bp.c1.w..], &p[bp.c1.b..], &s1, din, col, &mut c1);
        let mut proj = vec![T::ZERO; d.b * bp.cout];
        dense_forward(
            &p[bp.tp.w..],
            &p[bp.tp.b..],
            temb,
            d.b,
            bp.tp.inp,
            bp.tp.out,
            &mut proj,
        );
        let hw = d.h * d.w;
        for co in 0..bp.cout {
            for b in 0..d.b {
                let add = proj[b * bp.cout + co];
                c1[(co * d.b + b) * hw..][..hw]
                    .iter_mut()
                    .for_each(|v| *v += add);
            }
        }
        let mut xhat2 = vec![T::ZERO; dout.len()];
        let mut rstd2 = vec![T::ZERO; d.b * g];
        let mut a2 = vec![T::ZERO; dout.len()];
        group_norm_forward(
            &c1,
            dout,
            g,
            &p[bp.n2.gamma..],
            &p[bp.n2.beta..],
            &mut xhat2,
            &mut rstd2,
            &mut a2,
        );
        let mut s2 = vec![T::ZERO; dout.len()];
        let mut sig2 = vec![T::ZERO; dout.len()];
        silu_forward(&a2, &mut s2, &mut sig2);
        let mut out = vec![T::ZERO; dout.len()];
        bp.c2
            .conv
            .forward(&p[bp.c2.w..], &p[bp.c2.b..], &s2, dout, col, &mut out);
        match bp.skip {
            Some(sk) => {
                let mut skip = vec![T::ZERO; dout.len()];
                sk.conv
                    .forward(&p[sk.w..], &p[sk.b..], x, din, col, &mut skip);
                out.iter_mut().zip(&skip).for_each(|(o, &v)| *o += v);
            }
            None => out.iter_mut().zip(x).for_each(|(o, &v)| *o += v),
        }
        BlockTape {
            d,
            xhat1,
            rstd1,
            a1,
            sig1,
            s1,
            xhat2,
            rstd2,
            a2,
            sig2,
            s2,
            out,
        }
    }

    /// Adds ∂L/∂θ into `grad` for upstream gradient `dout` (`[B][S²]`, ∂L/∂ε̂) and returns
    /// ∂L/∂x.
    ///
    /// # Errors
    /// Length mismatches.
    pub fn backward<T: Real>(
        &self,
        params: &[T],
        x: &[T],
        tape: &Tape<T>,
        dout: &[T],
        grad: &mut [T],
    ) -> Result<Vec<T>> {
        let cfg = self.config;
        ensure!(
            params.len() == self.total && grad.len() == self.total,
            "U-Net backward: parameter/gradient length mismatch"
        );
        ensure!(
            dout.len() == tape.out.len() && x.len() == tape.out.len(),
            "U-Net backward: output gradient length mismatch"
        );
        let (b, s) = (tape.b, cfg.side);
        let d_full = Dims {
            c: 1,
            b,
            h: s,
            w: s,
        };
        let d_half = Dims {
            c: 1,
            b,
            h: s / 2,
            w: s / 2,
        };
        let d_quarter = Dims {
            c: 1,
            b,
            h: s / 4,
            w: s / 4,
        };
        let mut col = Vec::new();
        let mut dtemb = vec![T::ZERO; b * cfg.time_width];

        let dn = d_full.with_c(cfg.c1);
        let co = self.conv_out;
        let mut ds = vec![T::ZERO; dn.len()];
        {
            let (gw, gb) = split_wb(grad, co.w, co.conv.weights(), co.b, co.conv.cout);
            co.conv.backward(
                &params[co.w..],
                &tape.out_s,
                dn,
                dout,
                &mut col,
                gw,
                gb,
                &mut ds,
            );
        }
        let mut da = vec![T::ZERO; dn.len()];
        silu_backward(&tape.out_a, &tape.out_sig, &ds, &mut da);
        let mut dr4 = vec![T::ZERO; dn.len()];
        {
            let no = self.n_out;
            let (gg, gbeta) = split_wb(grad, no.gamma, no.c, no.beta, no.c);
            group_norm_backward(
                &da,
                dn,
                cfg.groups,
                &params[no.gamma..],
                &tape.out_xhat,
                &tape.out_rstd,
                gg,
                gbeta,
                &mut dr4,
            );
        }
        let mut dcat1 = vec![T::ZERO; tape.cat1.len()];
        self.block_backward(
            params,
            &self.blocks[4],
            &tape.cat1,
            &tape.blocks[4],
            &tape.temb,
            &dr4,
            &mut col,
            grad,
            &mut dtemb,
            &mut dcat1,
        );
        let split1 = d_full.with_c(cfg.c2).len();
        let mut dr3 = vec![T::ZERO; d_half.with_c(cfg.c2).len()];
        up_backward(&dcat1[..split1], d_half.with_c(cfg.c2), &mut dr3);
        let mut dr1 = dcat1[split1..].to_vec();
        let mut dcat2 = vec![T::ZERO; tape.cat2.len()];
        self.block_backward(
            params,
            &self.blocks[3],
            &tape.cat2,
            &tape.blocks[3],
            &tape.temb,
            &dr3,
            &mut col,
            grad,
            &mut dtemb,
            &mut dcat2,
        );
        let split2 = d_half.with_c(cfg.c2).len();
        let mut dm = vec![T::ZERO; d_quarter.with_c(cfg.c2).len()];
        up_backward(&dcat2[..split2], d_quarter.with_c(cfg.c2), &mut dm);
        let mut dr2 = dcat2[split2..].to_vec();
        let mut dp2 = vec![T::ZERO; tape.p2.len()];
        self.block_backward(
            params,
            &self.blocks[2],
            &tape.p2,
            &tape.blocks[2],
            &tape.temb,
            &dm,
            &mut col,
            grad,
            &mut dtemb,
            &mut dp2,
        );
        pool_backward(&dp2, d_half.with_c(cfg.c2), &mut dr2);
        let mut dp1 = vec![T::ZERO; tape.p1.len()];
        self.block_backward(
            params,
            &self.blocks[1],
            &tape.p1,
            &tape.blocks[1],
            &tape.temb,
            &dr2,
            &mut col,
            grad,
            &mut dtemb,
            &mut dp1,
        );
        pool_backward(&dp1, d_full.with_c(cfg.c1), &mut dr1);
        let mut dh0 = vec![T::ZERO; tape.h0.len()];
        self.block_backward(
            params,
            &self.blocks[0],
            &tape.h0,
            &tape.blocks[0],
            &tape.temb,
            &dr1,
            &mut col,
            grad,
            &mut dtemb,
            &mut dh0,
        );
        let mut dx = vec![T::ZERO; x.len()];
        {
            let ci = self.conv_in;
            let (gw, gb) = split_wb(grad, ci.w, ci.conv.weights(), ci.b, ci.conv.cout);
            ci.conv
                .backward(&params[ci.w..], x, d_full, &dh0, &mut col, gw, gb, &mut dx);
        }
        let mut dtpre = vec![T::ZERO; dtemb.len()];
        silu_backward(&tape.tpre, &tape.tsig, &dtemb, &mut dtpre);
        let tp = self.time;
        let mut demb = vec![T::ZERO; tape.emb.len()];
        let (gw, gb) = split_wb(grad, tp.w, tp.inp * tp.out, tp.b, tp.out);
        dense_backward(
            &params[tp.w..],
            &tape.emb,
            &dtpre,
            b,
            tp.inp,
            tp.out,
            gw,
            gb,
            &mut demb,
        );
        Ok(dx)
    }

    #[allow(clippy::too_many_arguments)]
    fn block_backward<T: Real>(
        &self,
        p: &[T],
        bp: &BlockP,
        x: &[T],
        bt: &BlockTape<T>,
        temb: &[T],
        dout: &[T],
        col: &mut Vec<T>,
        grad: &mut [T],
        dtemb: &mut [T],
        dx: &mut [T],
    ) {
        let g = self.config.groups;
        let d = bt.d;
        let (din, dcout) = (d.with_c(bp.cin), d.with_c(bp.cout));
        match bp.skip {
            Some(sk) => {
                let (gw, gb) = split_wb(grad, sk.w, sk.conv.weights(), sk.b, sk.conv.cout);
                sk.conv.backward(&p[sk.w..], x, din, dout, col, gw, gb, dx);
            }
            None => dx.iter_mut().zip(dout).for_each(|(o, &v)| *o += v),
        }
        let mut ds2 = vec![T::ZERO; dcout.len()];
        {
            let (gw, gb) = split_wb(grad, bp.c2.w, bp.c2.conv.weights(), bp.c2.b, bp.cout);
            bp.c2
                .conv
                .backward(&p[bp.c2.w..], &bt.s2, dcout, dout, col, gw, gb, &mut ds2);
        }
        let mut da2 = vec![T::ZERO; dcout.len()];
        silu_backward(&bt.a2, &bt.sig2, &ds2, &mut da2);
        let mut dc1 = vec![T::ZERO; dcout.len()];
        {
            let (gg, gbeta) = split_wb(grad, bp.n2.gamma, bp.cout, bp.n2.beta, bp.cout);
            group_norm_backward(
                &da2,
                dcout,
                g,
                &p[bp.n2.gamma..],
                &bt.xhat2,
                &bt.rstd2,
                gg,
                gbeta,
                &mut dc1,
            );
        }
        let hw = d.h * d.w;
        let mut dproj = vec![T::ZERO; d.b * bp.cout];
        for co in 0..bp.cout {
            for b in 0..d.b {
                dproj[b * bp.cout + co] = dc1[(co * d.b + b) * hw..][..hw]
                    .iter()
                    .fold(T::ZERO, |a, &v| a + v);
            }
        }
        {
            let (gw, gb) = split_wb(grad, bp.tp.w, bp.tp.inp * bp.tp.out, bp.tp.b, bp.tp.out);
            dense_backward(
                &p[bp.tp.w..],
                temb,
                &dproj,
                d.b,
                bp.tp.inp,
                bp.tp.out,
                gw,
                gb,
                dtemb,
            );
        }
        let mut ds1 = vec![T::ZERO; din.len()];
        {
            let (gw, gb) = split_wb(grad, bp.c1.w, bp.c1.conv.weights(), bp.c1.b, bp.cout);
            bp.c1
                .conv
                .backward(&p[bp.c1.w..], &bt.s1, din, &dc1, col, gw, gb, &mut ds1);
        }
        let mut da1 = vec![T::ZERO; din.len()];
        silu_backward(&bt.a1, &bt.sig1, &ds1, &mut da1);
        let (gg, gbeta) = split_wb(grad, bp.n1.gamma, bp.cin, bp.n1.beta, bp.cin);
        group_norm_backward(
            &da1,
            din,
            g,
            &p[bp.n1.gamma..],
            &bt.xhat1,
            &bt.rstd1,
            gg,
            gbeta,
            dx,
        );
    }
}

/// Two disjoint mutable windows of `grad` (the first must lie before the second).
fn split_wb<T>(
    grad: &mut [T],
    w: usize,
    wlen: usize,
    b: usize,
    blen: usize,
) -> (&mut [T], &mut [T]) {
    debug_assert!(w + wlen <= b);
    let (head, tail) = grad.split_at_mut(b);
    (&mut head[w..w + wlen], &mut tail[..blen])
}

/// What one residual block keeps for backward.
#[derive(Clone, Debug)]
struct BlockTape<T> {
    d: Dims,
    xhat1: Vec<T>,
    rstd1: Vec<T>,
    a1: Vec<T>,
    sig1: Vec<T>,
    s1: Vec<T>,
    xhat2: Vec<T>,
    rstd2: Vec<T>,
    a2: Vec<T>,
    sig2: Vec<T>,
    s2: Vec<T>,
    out: Vec<T>,
}

/// Activations of one forward pass, kept for backward; [`Tape::output`] is ε̂.
#[derive(Clone, Debug)]
pub struct Tape<T> {
    b: usize,
    emb: Vec<T>,
    tpre: Vec<T>,
    tsig: Vec<T>,
    temb: Vec<T>,
    h0: Vec<T>,
    p1: Vec<T>,
    p2: Vec<T>,
    cat2: Vec<T>,
    cat1: Vec<T>,
    blocks: [BlockTape<T>; 5],
    out_xhat: Vec<T>,
    out_rstd: Vec<T>,
    out_a: Vec<T>,
    out_sig: Vec<T>,
    out_s: Vec<T>,
    out: Vec<T>,
}

impl<T> Tape<T> {
    /// ε̂, `[B][S²]`.
    #[must_use]
    pub fn output(&self) -> &[T] {
        &self.out
    }

    /// Takes ε̂ out of the tape.
    #[must_use]
    pub fn into_output(self) -> Vec<T> {
        self.out
    }
}

/// FLOPs of one forward pass per image (multiply-adds × 2 of the convolutions and the
/// per-sample time projections; elementwise work not counted).
#[must_use]
pub fn forward_flops(config: &UnetConfig) -> f64 {
    let s2 = config.dim() as f64;
    let conv = |cin: usize, cout: usize, k: usize, px: f64| 2.0 * (cin * cout * k * k) as f64 * px;
    let block = |cin: usize, cout: usize, px: f64| {
        conv(cin, cout, 3, px)
            + conv(cout, cout, 3, px)
            + if cin != cout {
                conv(cin, cout, 1, px)
            } else {
                0.0
            }
            + 2.0 * (config.time_width * cout) as f64
    };
    let (c1, c2) = (config.c1, config.c2);
    2.0 * (config.temb_dim * config.time_width) as f64
        + conv(1, c1, 3, s2)
        + block(c1, c1, s2)
        + block(c1, c2, s2 / 4.0)
        + block(c2, c2, s2 / 16.0)
        + block(2 * c2, c2, s2 / 4.0)
        + block(c2 + c1, c1, s2)
        + conv(c1, 1, 3, s2)
}
