//! The weight section of the fixed-point model kinds (`.mrg` kinds 2 = q8 and 3 = q16).
//!
//! All little-endian; the section starts 4-byte aligned in the file.
//!
//! | part | contents |
//! |---|---|
//! | weights | the six matrices in [`LINEAR_NAMES`] order, row-major `[out][in]`: t_proj W×E, in_fc W×D, fc1 W×W, enc W×W, fc2 W×W, out_fc D×W; i8 in −127..=127 (q8) or i16 in −32767..=32767 (q16); zero-padded to a multiple of 4 bytes |
//! | requant ×5 | for t_proj, in_fc, fc1, enc, fc2: shift k (u32, 1..=[`MAX_SHIFT`]), W multipliers m (i32, 0 ≤ m < 2³¹), W biases (i32, output units; 0 for the bias-free in_fc, fc1, fc2) |
//! | out_fc | D scales (f32, s_w·s_in) and D biases (f32) |
//! | LayerNorm ×3 | for norm1, norm2, out_norm: ε (u64 as two u32, lo first, 1..=[`MAX_LN_EPS`]), gain shift (u32, ≤ [`MAX_GAIN_SHIFT`]), W gains G (i32), W biases B (i32, Q16) |
//! | scales | 7 f32 > 0: s_x, s_temb, s_h, s_u, s_a1, s_a2, s_ao ([`Scales`]), then 1/s_x |
//!
//! [`validate`] checks every value byte-wise (no alignment needed), so a writer can check a
//! section before placing it; [`split`] then borrows the parts zero-copy.

use crate::error::Error;
use crate::mlp::MlpShape;
use crate::quant::fixed::{LnParams, MAX_GAIN_SHIFT, MAX_LN_EPS, MAX_SHIFT};

/// Which integer type the weights use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantKind {
    /// Kind 2: i8 weights (per-output-channel symmetric), i16 activations, i32 partial sums.
    Q8,
    /// Kind 3: i16 weights (per-output-channel symmetric), i16 activations, i64 sums.
    Q16,
}

impl QuantKind {
    /// Bytes per weight.
    pub const fn weight_bytes(self) -> usize {
        match self {
            Self::Q8 => 1,
            Self::Q16 => 2,
        }
    }

    /// Largest weight magnitude (symmetric range).
    pub const fn max_weight(self) -> i32 {
        match self {
            Self::Q8 => 127,
            Self::Q16 => 32767,
        }
    }
}

/// Names of the six linear layers, in storage order.
pub const LINEAR_NAMES: [&str; 6] = [
    "t_proj.0.weight",
    "in_fc.weight",
    "temp_fc.0.fc1.weight",
    "temp_fc.0.enc.weight",
    "temp_fc.0.fc2.weight",
    "out_fc.weight",
];
/// Names of the three LayerNorms, in storage order.
pub const NORM_NAMES: [&str; 3] = ["temp_fc.0.norm1", "temp_fc.0.norm2", "out_norm"];

/// The real-valued scales of the fixed-point activations (value = integer · scale); the
/// integer path only uses 1/s_x, the rest documents the file and dequantises probes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scales {
    /// Network input x (i16).
    pub x: f32,
    /// Time branch output temb (i16).
    pub temb: f32,
    /// Residual stream h (i32, |h| ≤ 2²³).
    pub h: f32,
    /// Block middle u = fc1·a + c (i32, |u| ≤ 2²³).
    pub u: f32,
    /// LReLU(LN₁(h)) (i16).
    pub a1: f32,
    /// LReLU(LN₂(u)) (i16).
    pub a2: f32,
    /// LN_out(h) (i16).
    pub ao: f32,
}

impl Scales {
    fn to_array(self) -> [f32; 7] {
        [self.x, self.temb, self.h, self.u, self.a1, self.a2, self.ao]
    }

    fn from_array(a: [f32; 7]) -> Self {
        let [x, temb, h, u, a1, a2, ao] = a;
        Self {
            x,
            temb,
            h,
            u,
            a1,
            a2,
            ao,
        }
    }
}

/// Shapes (rows, cols) of the six linear layers.
pub fn linear_shapes(shape: &MlpShape) -> [(usize, usize); 6] {
    let (d, w, e) = (shape.dim, shape.width, shape.temb_dim);
    [(w, e), (w, d), (w, w), (w, w), (w, w), (d, w)]
}

/// Number of weights in the six matrices: WE + WD + 3W² + DW.
pub fn weight_count(shape: &MlpShape) -> usize {
    linear_shapes(shape).iter().fold(0usize, |acc, &(r, c)| {
        acc.saturating_add(r.saturating_mul(c))
    })
}

/// Bytes of the weights part, padded to 4.
fn weights_part_len(shape: &MlpShape, kind: QuantKind) -> usize {
    let n = weight_count(shape).saturating_mul(kind.weight_bytes());
    n.saturating_add(3) / 4 * 4
}

/// Words (4 bytes) after the weights: 5·(1 + 2W) + 2D + 3·(3 + 2W) + 8.
fn words_len(shape: &MlpShape) -> usize {
    let (d, w) = (shape.dim, shape.width);
    let per_requant = w.saturating_mul(2).saturating_add(1);
    let per_norm = w.saturating_mul(2).saturating_add(3);
    per_requant
        .saturating_mul(5)
        .saturating_add(d.saturating_mul(2))
        .saturating_add(per_norm.saturating_mul(3))
        .saturating_add(8)
}

/// Bytes of the whole section for `shape` (already validated).
pub fn section_len(shape: &MlpShape, kind: QuantKind) -> usize {
    weights_part_len(shape, kind).saturating_add(words_len(shape).saturating_mul(4))
}

/// One requantising layer: y_r = round(acc_r·m_r·2^−k) + bias_r.
#[derive(Clone, Copy, Debug)]
pub struct Requant<'a> {
    /// Shared right shift k.
    pub shift: u32,
    /// Per-output-channel multipliers m_r.
    pub mult: &'a [i32],
    /// Per-output-channel biases in output units.
    pub bias: &'a [i32],
}

/// The parts of a section, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Parts<'a, Wt> {
    /// The six matrices ([`LINEAR_NAMES`] order).
    pub mats: [&'a [Wt]; 6],
    /// Requantisation of t_proj, in_fc, fc1, enc, fc2.
    pub requant: [Requant<'a>; 5],
    /// out_fc per-row f32 scales.
    pub out_scale: &'a [f32],
    /// out_fc f32 biases.
    pub out_bias: &'a [f32],
    /// norm1, norm2, out_norm.
    pub norms: [LnParams<'a>; 3],
    /// Activation scales.
    pub scales: Scales,
    /// 1/s_x.
    pub inv_input_scale: f32,
}

/// Reads little-endian u32 words from a byte slice.
struct Words<'a> {
    bytes: core::slice::ChunksExact<'a, u8>,
}

impl Words<'_> {
    fn next(&mut self) -> Result<u32, Error> {
        let chunk = self.bytes.next().ok_or(Error::Truncated)?;
        let arr: [u8; 4] = chunk.try_into().map_err(|_| Error::Truncated)?;
        Ok(u32::from_le_bytes(arr))
    }

    /// Checks `n` words with `ok`, failing with `err`.
    fn check(&mut self, n: usize, ok: impl Fn(u32) -> bool, err: Error) -> Result<(), Error> {
        for _ in 0..n {
            if !ok(self.next()?) {
                return Err(err);
            }
        }
        Ok(())
    }
}

/// Checks a section's length and every value (alignment-independent).
///
/// # Errors
/// [`Error::ShapeMismatch`]`("quantized weight section")` on a wrong length;
/// [`Error::InvalidParameter`] naming the first out-of-range integer (weight −128 / −32768,
/// shift, multiplier, ε, gain shift); [`Error::NonFiniteWeight`] for a NaN/∞ float;
/// [`Error::InvalidParameter`] for a non-positive scale.
pub fn validate(shape: &MlpShape, kind: QuantKind, bytes: &[u8]) -> Result<(), Error> {
    shape.validate()?;
    if bytes.len() != section_len(shape, kind) {
        return Err(Error::ShapeMismatch("quantized weight section"));
    }
    let (weights, words) = bytes
        .split_at_checked(weights_part_len(shape, kind))
        .ok_or(Error::Truncated)?;
    let n = weight_count(shape);
    let bad_weight = Error::InvalidParameter("quantized weight outside the symmetric range");
    match kind {
        QuantKind::Q8 => {
            if weights.iter().take(n).any(|&b| b == 0x80) {
                return Err(bad_weight);
            }
        }
        QuantKind::Q16 => {
            let min = i16::MIN.to_le_bytes();
            if weights.chunks_exact(2).take(n).any(|c| c == min) {
                return Err(bad_weight);
            }
        }
    }
    let pad_start = n.saturating_mul(kind.weight_bytes());
    if weights
        .get(pad_start..)
        .unwrap_or(&[])
        .iter()
        .any(|&b| b != 0)
    {
        return Err(Error::InvalidParameter("weight padding must be 0"));
    }
    let (d, w) = (shape.dim, shape.width);
    let mut it = Words {
        bytes: words.chunks_exact(4),
    };
    for _ in 0..5 {
        let shift = it.next()?;
        if shift == 0 || shift > MAX_SHIFT {
            return Err(Error::InvalidParameter(
                "requantization shift outside 1..=100",
            ));
        }
        it.check(
            w,
            |m| m < 1 << 31,
            Error::InvalidParameter("requantization multiplier must be in 0..2^31"),
        )?;
        it.check(w, |_| true, Error::Truncated)?;
    }
    let finite = |v: u32| f32::from_bits(v).is_finite();
    it.check(2 * d, finite, Error::NonFiniteWeight("out_fc scale/bias"))?;
    for name in NORM_NAMES {
        let eps = u64::from(it.next()?) | (u64::from(it.next()?) << 32);
        if eps == 0 || eps > MAX_LN_EPS {
            return Err(Error::InvalidParameter(
                "LayerNorm epsilon outside 1..=2^40",
            ));
        }
        if it.next()? > MAX_GAIN_SHIFT {
            return Err(Error::InvalidParameter("LayerNorm gain shift above 62"));
        }
        it.check(2 * w, |_| true, Error::NonFiniteWeight(name))?;
    }
    let positive = |v: u32| {
        let f = f32::from_bits(v);
        f.is_finite() && f > 0.0
    };
    it.check(
        8,
        positive,
        Error::InvalidParameter("activation scales must be finite and > 0"),
    )?;
    Ok(())
}

/// Borrows the parts of a section that [`validate`] accepted.
///
/// # Errors
/// As [`validate`]; [`Error::Misaligned`] if the bytes are not 4-byte aligned.
pub fn split<'a, Wt: bytemuck::Pod>(
    shape: &MlpShape,
    kind: QuantKind,
    bytes: &'a [u8],
) -> Result<Parts<'a, Wt>, Error> {
    validate(shape, kind, bytes)?;
    if core::mem::size_of::<Wt>() != kind.weight_bytes() {
        return Err(Error::InvalidParameter(
            "weight type does not match the kind",
        ));
    }
    let (weights, words) = bytes
        .split_at_checked(weights_part_len(shape, kind))
        .ok_or(Error::Truncated)?;
    let weights: &[Wt] = bytemuck::try_cast_slice(weights).map_err(|_| Error::Misaligned)?;
    let words: &[i32] = bytemuck::try_cast_slice(words).map_err(|_| Error::Misaligned)?;
    let mut rest_w = weights;
    let mut mats: [&[Wt]; 6] = [&[]; 6];
    for (slot, (r, c)) in mats.iter_mut().zip(linear_shapes(shape)) {
        let (m, rest) = rest_w.split_at_checked(r * c).ok_or(Error::Truncated)?;
        *slot = m;
        rest_w = rest;
    }
    let (d, w) = (shape.dim, shape.width);
    let mut rest = words;
    let mut take = |n: usize| -> Result<&'a [i32], Error> {
        let (head, tail) = rest.split_at_checked(n).ok_or(Error::Truncated)?;
        rest = tail;
        Ok(head)
    };
    let mut requant = [Requant {
        shift: 1,
        mult: &[],
        bias: &[],
    }; 5];
    for r in &mut requant {
        r.shift = take(1)?.first().map_or(1, |&s| s as u32);
        r.mult = take(w)?;
        r.bias = take(w)?;
    }
    let out_scale: &[f32] = bytemuck::cast_slice(take(d)?);
    let out_bias: &[f32] = bytemuck::cast_slice(take(d)?);
    let mut norms = [LnParams {
        eps: 1,
        gain_shift: 0,
        gain: &[],
        bias: &[],
    }; 3];
    for n in &mut norms {
        let head = take(3)?;
        let word = |i: usize| head.get(i).map_or(0, |&v| v as u32);
        n.eps = u64::from(word(0)) | (u64::from(word(1)) << 32);
        n.gain_shift = word(2);
        n.gain = take(w)?;
        n.bias = take(w)?;
    }
    let tail = take(8)?;
    let f = |i: usize| tail.get(i).map_or(f32::NAN, |&v| f32::from_bits(v as u32));
    let scales = Scales::from_array([f(0), f(1), f(2), f(3), f(4), f(5), f(6)]);
    Ok(Parts {
        mats,
        requant,
        out_scale,
        out_bias,
        norms,
        scales,
        inv_input_scale: f(7),
    })
}

/// Owned-by-reference inputs of [`encode`]: the integer weights as i32 (in range for the
/// kind), the requantisation parameters and the rest, in section order.
#[derive(Clone, Copy, Debug)]
pub struct EncodeParts<'a> {
    /// All weights in [`LINEAR_NAMES`] order (length [`weight_count`]).
    pub weights: &'a [i32],
    /// (shift, multipliers, biases) for t_proj, in_fc, fc1, enc, fc2.
    pub requant: [(u32, &'a [i32], &'a [i32]); 5],
    /// out_fc scales.
    pub out_scale: &'a [f32],
    /// out_fc biases.
    pub out_bias: &'a [f32],
    /// (ε, gain shift, gains, biases) for norm1, norm2, out_norm.
    pub norms: [(u64, u32, &'a [i32], &'a [i32]); 3],
    /// Activation scales.
    pub scales: Scales,
}

/// Writes a section into `out` (length [`section_len`]) and validates it.
///
/// # Errors
/// [`Error::LengthMismatch`] naming a part of the wrong length; [`Error::BufferTooSmall`];
/// anything [`validate`] rejects.
pub fn encode(
    shape: &MlpShape,
    kind: QuantKind,
    parts: &EncodeParts<'_>,
    out: &mut [u8],
) -> Result<usize, Error> {
    shape.validate()?;
    let len = section_len(shape, kind);
    let out = out
        .get_mut(..len)
        .ok_or(Error::BufferTooSmall("quantized weight section"))?;
    out.fill(0);
    if parts.weights.len() != weight_count(shape) {
        return Err(Error::LengthMismatch("quantized weights"));
    }
    let (wpart, words) = out
        .split_at_mut_checked(weights_part_len(shape, kind))
        .ok_or(Error::BufferTooSmall("quantized weight section"))?;
    match kind {
        QuantKind::Q8 => {
            for (o, &v) in wpart.iter_mut().zip(parts.weights) {
                *o = (v.clamp(-127, 127) as i8) as u8;
            }
        }
        QuantKind::Q16 => {
            for (o, &v) in wpart.chunks_exact_mut(2).zip(parts.weights) {
                o.copy_from_slice(&(v.clamp(-32767, 32767) as i16).to_le_bytes());
            }
        }
    }
    let (d, w) = (shape.dim, shape.width);
    let mut cursor = words.chunks_exact_mut(4);
    let mut put = |v: u32| -> Result<(), Error> {
        cursor
            .next()
            .ok_or(Error::BufferTooSmall("quantized weight section"))?
            .copy_from_slice(&v.to_le_bytes());
        Ok(())
    };
    let put_all = |put: &mut dyn FnMut(u32) -> Result<(), Error>,
                   vals: &[i32],
                   n: usize,
                   name: &'static str|
     -> Result<(), Error> {
        if vals.len() != n {
            return Err(Error::LengthMismatch(name));
        }
        vals.iter().try_for_each(|&v| put(v as u32))
    };
    for (shift, mult, bias) in parts.requant {
        put(shift)?;
        put_all(&mut put, mult, w, "requantization multipliers")?;
        put_all(&mut put, bias, w, "requantization biases")?;
    }
    for vals in [parts.out_scale, parts.out_bias] {
        if vals.len() != d {
            return Err(Error::LengthMismatch("out_fc scale/bias"));
        }
        vals.iter().try_for_each(|&v| put(v.to_bits()))?;
    }
    for (eps, gain_shift, gain, bias) in parts.norms {
        put(eps as u32)?;
        put((eps >> 32) as u32)?;
        put(gain_shift)?;
        put_all(&mut put, gain, w, "LayerNorm gains")?;
        put_all(&mut put, bias, w, "LayerNorm biases")?;
    }
    for s in parts.scales.to_array() {
        put(s.to_bits())?;
    }
    put((1.0 / parts.scales.x).to_bits())?;
    validate(shape, kind, out)?;
    Ok(len)
}
