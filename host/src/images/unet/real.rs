//! The float type of the U-Net: f32 for training and sampling, f64 for the gradient checks
//! (central finite differences need the extra precision). `gemm` calls the `gemm` crate
//! (runtime-dispatched AVX-512 / AVX2+FMA kernels, `Parallelism::None`: the trainer shards
//! the batch over its own threads). Its block sizes come from the detected cache sizes, so
//! the bits are reproducible on one machine, not across CPU models.

use core::fmt::Debug;
use core::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// f32 or f64.
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + Debug
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Rounds an f64.
    fn from_f64(v: f64) -> Self;
    /// Widens to f64.
    fn to_f64(self) -> f64;
    /// √self.
    fn sqrt(self) -> Self;
    /// eˢᵉˡᶠ (f32: [`exp_f32`], branch-free so SiLU's loops vectorise; f64: libm).
    fn exp(self) -> Self;
    /// C ← α·A·B + β·C with A(i,p) = `a[i·rsa + p·csa]`, B(p,j) = `b[p·rsb + j·csb]` and
    /// C(i,j) = `c[i·rsc + j]` (m×n, `rsc` ≥ n).
    ///
    /// # Panics
    /// If a view reaches outside its slice (a caller bug: shapes come from one config).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        rsa: usize,
        csa: usize,
        b: &[Self],
        rsb: usize,
        csb: usize,
        beta: Self,
        c: &mut [Self],
        rsc: usize,
    );
}

fn check_views(
    (m, k, n): (usize, usize, usize),
    a: (usize, usize, usize),
    b: (usize, usize, usize),
    (c, rsc): (usize, usize),
) {
    let fits = |rows: usize, cols: usize, (len, rs, cs): (usize, usize, usize)| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    };
    assert!(
        fits(m, k, a) && fits(k, n, b),
        "gemm: operand view outside its slice"
    );
    assert!(
        rsc >= n && fits(m, n, (c, rsc, 1)),
        "gemm: output of {c} cannot hold {m}×{n} at row stride {rsc}"
    );
}

/// eˣ in f32 without calls or branches (Cephes `expf`): x clamped to [−87, 88],
/// n = round(x·log₂e) by the 1.5·2²³ shift, r = x − n·ln 2 in two parts (|r| ≤ ½ ln 2),
/// eʳ = 1 + r + r²·P(r) with Cephes' degree-5 minimax P, scaled by 2ⁿ built in the exponent
/// bits. Within 2 ulp of the correctly rounded eˣ on [−87, 88] (tested).
#[inline(always)]
#[must_use]
pub fn exp_f32(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * core::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let er = r * r * p + r + 1.0;
    // t lies in [2²³, 2²⁴), where f32 steps by 1: its bits minus SHIFT's are n (two's
    // complement); 2ⁿ has the biased exponent n + 127 (1..=254 after the clamp).
    let scale = f32::from_bits((t.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(127)) << 23);
    er * scale
}

macro_rules! impl_real {
    ($t:ty, $exp:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: &[Self],
                rsa: usize,
                csa: usize,
                b: &[Self],
                rsb: usize,
                csb: usize,
                beta: Self,
                c: &mut [Self],
                rsc: usize,
            ) {
                check_views(
                    (m, k, n),
                    (a.len(), rsa, csa),
                    (b.len(), rsb, csb),
                    (c.len(), rsc),
                );
                if m == 0 || n == 0 {
                    return;
                }
                if k == 0 {
                    for row in c.chunks_mut(rsc).take(m) {
                        row[..n].iter_mut().for_each(|v| *v *= beta);
                    }
                    return;
                }
                // SAFETY: `check_views` keeps every index the kernel forms — A: i·rsa + p·csa
                // (i < m, p < k), B: p·rsb + j·csb, C: i·rsc + j (j < n ≤ rsc) — inside the
                // three slices; C is a unique borrow distinct from A and B; strides fit in
                // isize (slice lengths do). The crate computes dst ← α′·dst + β′·lhs·rhs and
                // reads dst only when told to.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        rsc as isize,
                        beta != 0.0,
                        a.as_ptr(),
                        csa as isize,
                        rsa as isize,
                        b.as_ptr(),
                        csb as isize,
                        rsb as isize,
                        beta,
                        alpha,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        }
    };
}

impl_real!(f32, exp_f32);
impl_real!(f64, f64::exp);
