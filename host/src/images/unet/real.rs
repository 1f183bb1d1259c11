//! The float type of the U-Net: f32 for training and sampling, f64 for the gradient checks
//! (central finite differences need the extra precision). `gemm` dispatches to
//! matrixmultiply's `sgemm` / `dgemm`; both accumulate each output element over k in one
//! fixed order whatever the thread count.

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
    /// eˢᵉˡᶠ.
    fn exp(self) -> Self;
    /// C (row-major m×n, row stride n) ← α·A·B + β·C with A(i,p) = `a[i·rsa + p·csa]` and
    /// B(p,j) = `b[p·rsb + j·csb]`.
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
    );
}

fn check_views(
    m: usize,
    k: usize,
    n: usize,
    a: (usize, usize, usize),
    b: (usize, usize, usize),
    c: usize,
) {
    let fits = |rows: usize, cols: usize, (len, rs, cs): (usize, usize, usize)| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    };
    assert!(
        fits(m, k, a) && fits(k, n, b),
        "gemm: operand view outside its slice"
    );
    assert!(c >= m * n, "gemm: output holds {c} < {m}×{n}");
}

macro_rules! impl_real {
    ($t:ty, $gemm:ident) => {
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
                <$t>::exp(self)
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
            ) {
                check_views(m, k, n, (a.len(), rsa, csa), (b.len(), rsb, csb), c.len());
                if m == 0 || n == 0 {
                    return;
                }
                if k == 0 {
                    c[..m * n].iter_mut().for_each(|v| *v *= beta);
                    return;
                }
                // SAFETY: `check_views` keeps every index the kernel forms — A: i·rsa + p·csa
                // (i < m, p < k), B: p·rsb + j·csb, C: i·n + j — inside the three slices; C
                // is a unique borrow distinct from A and B; strides fit in isize.
                unsafe {
                    matrixmultiply::$gemm(
                        m,
                        k,
                        n,
                        alpha,
                        a.as_ptr(),
                        rsa as isize,
                        csa as isize,
                        b.as_ptr(),
                        rsb as isize,
                        csb as isize,
                        beta,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            }
        }
    };
}

impl_real!(f32, sgemm);
impl_real!(f64, dgemm);
