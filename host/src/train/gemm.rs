//! Safe front end to `matrixmultiply::sgemm`: C ← α·op(A)·op(B) + β·C on row-major slices.
//!
//! Each operand is described by a [`Mat`]: its slice plus row and column strides, so a
//! transpose is a view (swap the strides), never a copy. Every call checks that the
//! largest index each operand can touch lies inside its slice before handing the
//! pointers to the kernel.
//!
//! matrixmultiply accumulates every element of C over k in one fixed order whatever its
//! internal thread count, so results do not depend on `MATMUL_NUM_THREADS`.

/// A read-only m×n matrix view: element (i, j) is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows × cols` view of `data` (row stride `cols`).
    #[must_use]
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of this view (no copy).
    #[must_use]
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// C (row-major `a.rows × b.cols`, row stride `b.cols`) ← `alpha`·A·B + `beta`·C.
///
/// # Panics
/// If the inner dimensions disagree or a view reaches outside its slice (a bug in the
/// caller: every caller sizes its buffers from the same shape).
pub fn gemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: inner dimensions {k} vs {}", b.rows);
    assert!(a.fits() && b.fits(), "gemm: operand view outside its slice");
    assert!(c.len() >= m * n, "gemm: output holds {} < {m}×{n}", c.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].iter_mut().for_each(|v| *v *= beta);
        return;
    }
    // SAFETY: the asserts above keep every index the kernel forms — A: i·rsa + p·csa for
    // i < m, p < k; B: p·rsb + j·csb; C: i·n + j — inside the three slices, C is a unique
    // borrow distinct from A and B, and all strides fit in isize (slice lengths do).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat<'_>, b: Mat<'_>) -> Vec<f64> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    c[i * b.cols + j] += f64::from(a.data[i * a.rs + p * a.cs])
                        * f64::from(b.data[p * b.rs + j * b.cs]);
                }
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_with_transposes_and_accumulation() {
        let a: Vec<f32> = (0..7 * 5).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..5 * 3)
            .map(|i| ((i * 13) % 7) as f32 * 0.5 - 1.0)
            .collect();
        for (av, bv) in [
            (Mat::rows(&a, 7, 5), Mat::rows(&b, 5, 3)),
            (Mat::rows(&a, 5, 7).t(), Mat::rows(&b, 3, 5).t()),
        ] {
            let want = naive(av, bv);
            let mut c = vec![1.0f32; 21];
            gemm(2.0, av, bv, 1.0, &mut c);
            for (got, w) in c.iter().zip(&want) {
                assert_eq!(f64::from(*got), 2.0 * w + 1.0);
            }
        }
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn mismatched_shapes_are_refused() {
        let a = [0.0f32; 6];
        let mut c = [0.0f32; 4];
        gemm(1.0, Mat::rows(&a, 2, 3), Mat::rows(&a, 2, 3), 0.0, &mut c);
    }
}
