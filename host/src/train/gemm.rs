//! Safe front end to single-threaded SGEMM: C ← α·op(A)·op(B) + β·C on row-major slices.
//!
//! Each operand is described by a [`Mat`]: its slice plus row and column strides, so a
//! transpose is a view (swap the strides), never a copy. Every call checks that the
//! largest index each operand can touch lies inside its slice before handing the
//! pointers to the kernel.
//!
//! Backends (chosen from k and n only, never from m, so a row of C never depends on how
//! many rows a call holds — the sampler's chunk invariance rests on this):
//! * k ≥ [`WIDE`] and n ≥ [`WIDE`]: the `gemm` crate (runtime-dispatched AVX-512 / AVX2+FMA
//!   microkernels, `Parallelism::None`: the trainer and the sampler run their own worker
//!   threads, one GEMM level only). Calls with fewer than [`MIN_ROWS`] rows are padded to
//!   [`MIN_ROWS`], because the crate takes other code paths (other summation orders) for
//!   very short operands; from [`MIN_ROWS`] rows up, each element of C is summed over k in
//!   one order whatever m is (checked by `rows_do_not_depend_on_the_row_count`).
//!   ≈ 1.2× matrixmultiply's rate on the trainer's 256×128·128×128 shapes on one core.
//! * otherwise (the D-wide input and output layers): a plain loop, element (i, j) summed
//!   over p in [`LANES`] interleaved partial sums combined left to right. matrixmultiply
//!   managed only 3–25 GFLOP/s on these shapes.
//!
//! The `gemm` crate's block sizes come from the detected cache sizes, so the bits are
//! reproducible on one machine (any thread count, any chunking), not across CPU models.

/// Smallest k and n sent to the `gemm` crate.
pub const WIDE: usize = 16;
/// Calls to the `gemm` crate with fewer rows are padded to this many.
pub const MIN_ROWS: usize = 64;
/// Interleaved partial sums of the narrow-shape loop.
const LANES: usize = 8;

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
    let c = &mut c[..m * n];
    if k == 0 {
        c.iter_mut().for_each(|v| *v *= beta);
        return;
    }
    if k < WIDE || n < WIDE {
        narrow(alpha, a, b, beta, c);
    } else if m < MIN_ROWS {
        // Pad A (and C) to MIN_ROWS rows so the crate takes its general path.
        let mut ap = vec![0.0f32; MIN_ROWS * k];
        for (i, row) in ap.chunks_exact_mut(k).take(m).enumerate() {
            for (p, v) in row.iter_mut().enumerate() {
                *v = a.data[i * a.rs + p * a.cs];
            }
        }
        let mut cp = vec![0.0f32; MIN_ROWS * n];
        cp[..m * n].copy_from_slice(c);
        wide(alpha, Mat::rows(&ap, MIN_ROWS, k), b, beta, &mut cp);
        c.copy_from_slice(&cp[..m * n]);
    } else {
        wide(alpha, a, b, beta, c);
    }
}

/// The `gemm` crate on checked views (`c.len() == a.rows·b.cols`).
fn wide(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert!(a.fits() && b.fits() && c.len() == m * n && k == b.rows);
    // SAFETY: the caller checked that every index the kernel forms — A: i·rs + p·cs for
    // i < m, p < k; B: p·rs + j·cs; C: i·n + j — lies inside the three slices; C is a
    // unique borrow distinct from A and B; all strides fit in isize (slice lengths do).
    // The crate computes dst ← α′·dst + β′·lhs·rhs, reading dst only when told to.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Plain loop for thin shapes: c[i][j] = α·s + β·c[i][j], s = (…(q₀ + q₁) + …) + q₇ with
/// q_l = Σ_{p ≡ l (mod LANES)} a[i][p]·b[p][j] in increasing p (β = 0 ignores C). When
/// row i of A and column j of B are both contiguous (the forward input and output layers)
/// the same sums run on LANES-wide chunks.
fn narrow(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32]) {
    let (k, n) = (a.cols, b.cols);
    let contiguous = a.cs == 1 && b.rs == 1;
    for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
        let a_row = &a.data[i * a.rs..];
        for (j, cv) in c_row.iter_mut().enumerate() {
            let b_col = &b.data[j * b.cs..];
            let mut acc = [0.0f32; LANES];
            if contiguous {
                let (ac, at) = a_row[..k].as_chunks::<LANES>();
                let (bc, bt) = b_col[..k].as_chunks::<LANES>();
                for (x, y) in ac.iter().zip(bc) {
                    for ((s, &p), &q) in acc.iter_mut().zip(x).zip(y) {
                        *s += p * q;
                    }
                }
                for ((s, &p), &q) in acc.iter_mut().zip(at).zip(bt) {
                    *s += p * q;
                }
            } else {
                for p in 0..k {
                    acc[p % LANES] += a_row[p * a.cs] * b_col[p * b.rs];
                }
            }
            let s = acc.iter().fold(0.0f32, |t, v| t + v);
            *cv = if beta == 0.0 {
                alpha * s
            } else {
                alpha * s + beta * *cv
            };
        }
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
    fn wide_and_padded_paths_match_naive_product() {
        for (m, k, n) in [(3, 20, 17), (70, 33, 16), (64, 128, 128)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 13) % 7) as f32 * 0.5 - 1.0)
                .collect();
            let (av, bv) = (Mat::rows(&a, m, k), Mat::rows(&b, n, k).t());
            let want = naive(av, bv);
            let mut c = vec![1.0f32; m * n];
            gemm(2.0, av, bv, 1.0, &mut c);
            for (got, w) in c.iter().zip(&want) {
                assert_eq!(f64::from(*got), 2.0 * w + 1.0);
            }
        }
    }

    /// Every row of C is the same bits whether it is computed alone, in a short call or in
    /// a long one, for the trainer's and sampler's shape classes (wide, thin n, thin k).
    #[test]
    fn rows_do_not_depend_on_the_row_count() {
        let total = 300;
        for (k, n, b_t, beta) in [
            (128, 128, true, 0.0f32),
            (128, 128, false, 1.0),
            (2, 128, true, 0.0),
            (128, 2, true, 1.0),
            (16, 16, true, 1.0),
            (20, 5, true, 0.0),
        ] {
            let a: Vec<f32> = (0..total * k)
                .map(|i| (((i * 7919) % 1000) as f32 * 1e-3 - 0.5) * 1.37)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| (((i * 31) % 997) as f32 * 1e-3 - 0.5) * 0.71)
                .collect();
            let c0: Vec<f32> = (0..total * n)
                .map(|i| ((i * 13) % 101) as f32 * 1e-2)
                .collect();
            let bv = if b_t {
                Mat::rows(&b, n, k).t()
            } else {
                Mat::rows(&b, k, n)
            };
            let mut full = c0.clone();
            gemm(1.0, Mat::rows(&a, total, k), bv, beta, &mut full);
            for m in [1, 2, 3, 7, 63, 64, 65, 130] {
                for start in [0, 5, 101] {
                    let mut part = c0[start * n..(start + m) * n].to_vec();
                    let av = Mat::rows(&a[start * k..(start + m) * k], m, k);
                    gemm(1.0, av, bv, beta, &mut part);
                    let same = part
                        .iter()
                        .zip(&full[start * n..])
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "k {k} n {n} m {m} start {start}");
                }
            }
        }
    }

    /// The contiguous fast path of the thin-shape loop sums in the strided loop's order.
    #[test]
    fn thin_contiguous_and_strided_paths_agree_bitwise() {
        let (m, k, n) = (9, 21, 3);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 31) % 997) as f32 * 1e-3 - 0.5)
            .collect();
        let mut fast = vec![0.0f32; m * n];
        gemm(
            1.0,
            Mat::rows(&a, m, k),
            Mat::rows(&b, n, k).t(),
            0.0,
            &mut fast,
        );
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f32> = (0..k * n).map(|i| b[(i % n) * k + i / n]).collect();
        let mut slow = vec![0.0f32; m * n];
        gemm(
            1.0,
            Mat::rows(&at, k, m).t(),
            Mat::rows(&bt, k, n),
            0.0,
            &mut slow,
        );
        assert!(
            fast.iter()
                .zip(&slow)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn mismatched_shapes_are_refused() {
        let a = [0.0f32; 6];
        let mut c = [0.0f32; 4];
        gemm(1.0, Mat::rows(&a, 2, 3), Mat::rows(&a, 2, 3), 0.0, &mut c);
    }
}
