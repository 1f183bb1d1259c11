//! Batch k-NN detector (papers.md §9 D16): for N generated samples, the Euclidean distance
//! from each to its k-th nearest *other* generated sample (default k = 50). Hallucinations
//! sit in sparse regions between modes, so their k-th neighbour is far.
//!
//! The tree (kiddo's immutable k-d tree, squared Euclidean in f64) holds the finite samples;
//! each sample asks for its k + 1 nearest, which include itself at distance 0, so the
//! (k+1)-th smallest distance is the k-th among the others (as a value, whatever the order of
//! ties). The result depends only on the point set: it is deterministic and the same for any
//! thread count. A non-finite sample scores +∞ and is not in the tree. Dimensions 1–4 use
//! the tree; higher ones a brute-force scan (O(N²), meant for small N).

use std::num::NonZero;

use anyhow::{Result, bail, ensure};
use kiddo::{ImmutableKdTree, SquaredEuclidean};

/// The default k (papers.md §9 D16).
pub const DEFAULT_K: usize = 50;

/// The k-th nearest other sample's distance for every sample of `points` (`n × dim`,
/// row-major), computed on `threads` threads.
///
/// # Errors
/// `dim` = 0 or not dividing the length, k = 0, or fewer than k + 1 finite samples.
pub fn knn_distances(points: &[f32], dim: usize, k: usize, threads: usize) -> Result<Vec<f32>> {
    ensure!(dim > 0, "k-NN: dimension must be at least 1");
    ensure!(
        points.len().is_multiple_of(dim),
        "k-NN: {} values are not a whole number of {dim}-dimensional samples",
        points.len()
    );
    ensure!(k > 0, "k-NN: k must be at least 1");
    let n = points.len() / dim;
    let finite: Vec<usize> = (0..n)
        .filter(|&i| points[i * dim..(i + 1) * dim].iter().all(|v| v.is_finite()))
        .collect();
    ensure!(
        finite.len() > k,
        "k-NN with k = {k} needs at least {} finite samples, got {}",
        k + 1,
        finite.len()
    );
    let mut out = vec![f32::INFINITY; n];
    let kth = match dim {
        1 => tree_kth::<1>(points, &finite, k, threads)?,
        2 => tree_kth::<2>(points, &finite, k, threads)?,
        3 => tree_kth::<3>(points, &finite, k, threads)?,
        4 => tree_kth::<4>(points, &finite, k, threads)?,
        _ => brute_kth(points, dim, &finite, k),
    };
    for (&i, d) in finite.iter().zip(kth) {
        out[i] = d;
    }
    Ok(out)
}

fn row<const D: usize>(points: &[f32], i: usize) -> [f64; D] {
    std::array::from_fn(|j| f64::from(points[i * D + j]))
}

fn tree_kth<const D: usize>(
    points: &[f32],
    finite: &[usize],
    k: usize,
    threads: usize,
) -> Result<Vec<f32>> {
    let rows: Vec<[f64; D]> = finite.iter().map(|&i| row::<D>(points, i)).collect();
    let tree: ImmutableKdTree<f64, D> = match ImmutableKdTree::new_from_slice(&rows) {
        Ok(t) => t,
        Err(e) => bail!("k-NN: cannot build the k-d tree: {e:?}"),
    };
    let want = NonZero::new(k + 1).unwrap_or(NonZero::<usize>::MIN);
    let mut out = vec![0.0f32; rows.len()];
    let per = rows.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (qs, os) in rows.chunks(per).zip(out.chunks_mut(per)) {
            let tree = &tree;
            s.spawn(move || {
                for (q, o) in qs.iter().zip(os.iter_mut()) {
                    let found = tree
                        .query(q)
                        .nearest_n::<SquaredEuclidean<f64>>(want)
                        .execute();
                    let d2 = found.iter().map(|r| r.distance).fold(0.0f64, f64::max);
                    *o = d2.sqrt() as f32;
                }
            });
        }
    });
    Ok(out)
}

/// O(N²) reference: the (k+1)-th smallest distance including the sample itself.
pub(crate) fn brute_kth(points: &[f32], dim: usize, finite: &[usize], k: usize) -> Vec<f32> {
    finite
        .iter()
        .map(|&i| {
            let xi = &points[i * dim..(i + 1) * dim];
            let mut d2: Vec<f64> = finite
                .iter()
                .map(|&j| {
                    points[j * dim..(j + 1) * dim]
                        .iter()
                        .zip(xi)
                        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                        .sum()
                })
                .collect();
            let (_, kth, _) = d2.select_nth_unstable_by(k, f64::total_cmp);
            kth.sqrt() as f32
        })
        .collect()
}
