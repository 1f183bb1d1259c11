// Counter-based standard normals: Philox4x32-10 (Salmon et al. 2011) + Box–Muller, exactly the
// function `mirage_core::noise::normal` defines (contract, noise section):
//   counter = [dim / 4, step, sample, stream], key = [seed lo, seed hi], w = philox(counter, key);
//   p = (dim % 4) / 2; u1 = uniform_open(w[2p]); u2 = uniform_open(w[2p + 1]);
//   r = sqrt(-2 ln u1); theta = TAU * u2 - PI (f32 product rounded, then subtracted);
//   z = r cos(theta) (even dim) or r sin(theta) (odd dim).
// WGSL's log/sin/cos/sqrt are not specified tightly enough (sin/cos: 2^-11 absolute), so this
// file carries its own f32 versions (Cephes polynomials, Newton-corrected sqrt) and forms
// TAU * u2 with integer arithmetic so that no driver can fuse it into an FMA with the subtraction.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// Full 64-bit product of two u32: returns (hi, lo).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xFFFFu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xFFFFu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
    let lo = (ll & 0xFFFFu) | (mid << 16u);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, lo);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round = round + 1u) {
        if (round > 0u) {
            k = vec2<u32>(k.x + PHILOX_W0, k.y + PHILOX_W1);
        }
        let p0 = mulhilo(PHILOX_M0, c.x);
        let p1 = mulhilo(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// ((bits >> 8) + 0.5) * 2^-24: in (0, 1); the f32 add rounds exactly like the CPU's.
fn uniform_open(bits: u32) -> f32 {
    return (f32(bits >> 8u) + 0.5) * (1.0 / 16777216.0);
}

// Correctly rounded (round-to-nearest-even) product of two positive normal f32 whose product
// is a positive normal f32, in integer arithmetic (immune to FMA contraction).
fn mul_rn_pos(a: f32, b: f32) -> f32 {
    let ab = bitcast<u32>(a);
    let bb = bitcast<u32>(b);
    let ma = (ab & 0x7FFFFFu) | 0x800000u;
    let mb = (bb & 0x7FFFFFu) | 0x800000u;
    var e = i32((ab >> 23u) & 0xFFu) + i32((bb >> 23u) & 0xFFu) - 127;
    // ma * mb = hi * 2^24 + lo, product in [2^46, 2^48).
    let a_h = ma >> 12u;
    let a_l = ma & 0xFFFu;
    let b_h = mb >> 12u;
    let b_l = mb & 0xFFFu;
    let mid = a_h * b_l + a_l * b_h;
    var lo = a_l * b_l + ((mid & 0xFFFu) << 12u);
    let hi = a_h * b_h + (mid >> 12u) + (lo >> 24u);
    lo = lo & 0xFFFFFFu;
    var m: u32;
    var rem: u32;
    var half: u32;
    if (hi >= 0x800000u) {
        // product in [2^47, 2^48): keep hi, round on the 24 low bits.
        m = hi;
        rem = lo;
        half = 0x800000u;
        e = e + 1;
    } else {
        m = (hi << 1u) | (lo >> 23u);
        rem = lo & 0x7FFFFFu;
        half = 0x400000u;
    }
    if (rem > half || (rem == half && (m & 1u) == 1u)) {
        m = m + 1u;
        if (m == 0x1000000u) {
            m = 0x800000u;
            e = e + 1;
        }
    }
    return bitcast<f32>((u32(e) << 23u) | (m & 0x7FFFFFu));
}

// ln x for positive normal x (Cephes logf, relative error ~1e-7).
fn ln_f32(v: f32) -> f32 {
    let bits = bitcast<u32>(v);
    var e = f32(i32((bits >> 23u) & 0xFFu) - 126);
    var m = bitcast<f32>((bits & 0x7FFFFFu) | 0x3F000000u); // [0.5, 1)
    var x: f32;
    if (m < 0.70710677) {
        e = e - 1.0;
        x = m + m - 1.0;
    } else {
        x = m - 1.0;
    }
    let z = x * x;
    var y = 7.0376836292e-2;
    y = y * x - 1.1514610310e-1;
    y = y * x + 1.1676998740e-1;
    y = y * x - 1.2420140846e-1;
    y = y * x + 1.4249322787e-1;
    y = y * x - 1.6668057665e-1;
    y = y * x + 2.0000714765e-1;
    y = y * x - 2.4999993993e-1;
    y = y * x + 3.3333331174e-1;
    y = y * x * z;
    y = y + (-2.12194440e-4) * e;
    y = y - 0.5 * z;
    return (x + y) + 0.693359375 * e;
}

// √a, one Newton correction on top of the hardware result (≈ correctly rounded). √±0 = ±0
// as on the CPU (u1 = 1.0 gives a = −0): the correction would divide by zero there.
fn sqrt_f32(a: f32) -> f32 {
    if (a == 0.0) {
        return a;
    }
    let s = sqrt(a);
    let err = fma(-s, s, a);
    return s + err * (0.5 / s);
}

// Cephes sinf/cosf kernels on |r| ≤ π/4.
fn sin_poly(r: f32) -> f32 {
    let z = r * r;
    return ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
}

fn cos_poly(r: f32) -> f32 {
    let z = r * r;
    return ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
}

// sin (want_sin) or cos of theta, |theta| ≤ π (Cephes octant reduction, 3-part π/4).
fn sin_or_cos(theta: f32, want_sin: bool) -> f32 {
    let x = abs(theta);
    var j = u32(x * 1.27323954473516);
    var y = f32(j);
    if ((j & 1u) == 1u) {
        j = j + 1u;
        y = y + 1.0;
    }
    j = j & 7u;
    let r = ((x - y * 0.78515625) - y * 2.4187564849853515625e-4) - y * 3.77489497744594108e-8;
    var sign = 1.0;
    var use_cos_poly: bool;
    if (want_sin) {
        if (theta < 0.0) {
            sign = -sign;
        }
        if (j > 3u) {
            sign = -sign;
            j = j - 4u;
        }
        use_cos_poly = j == 1u || j == 2u;
    } else {
        if (j > 3u) {
            sign = -sign;
            j = j - 4u;
        }
        if (j > 1u) {
            sign = -sign;
        }
        use_cos_poly = !(j == 1u || j == 2u);
    }
    var v: f32;
    if (use_cos_poly) {
        v = cos_poly(r);
    } else {
        v = sin_poly(r);
    }
    return sign * v;
}

const TAU_F32: f32 = 6.28318548202514648438;
const PI_F32: f32 = 3.14159274101257324219;

fn normal(seed: vec2<u32>, stream: u32, sample: u32, step: u32, dim: u32) -> f32 {
    let w = philox4x32_10(vec4<u32>(dim / 4u, step, sample, stream), seed);
    let p = (dim % 4u) / 2u;
    var b1: u32;
    var b2: u32;
    if (p == 0u) {
        b1 = w.x;
        b2 = w.y;
    } else {
        b1 = w.z;
        b2 = w.w;
    }
    let u1 = uniform_open(b1);
    let u2 = uniform_open(b2);
    let r = sqrt_f32(-2.0 * ln_f32(u1));
    let theta = mul_rn_pos(TAU_F32, u2) - PI_F32;
    return r * sin_or_cos(theta, (dim % 2u) == 1u);
}
