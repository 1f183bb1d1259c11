//! Quantiles by linear interpolation between order statistics (NumPy's default,
//! Hyndman–Fan type 7): q-quantile of sorted x₀…x_{n−1} is x_⌊h⌋ + (h − ⌊h⌋)(x_⌊h⌋+1 − x_⌊h⌋)
//! with h = (n − 1)q; and the k-th smallest value.

use anyhow::{Result, bail, ensure};

/// The `q`-quantile of ascending `sorted` values; `None` if empty or q ∉ [0, 1].
/// An infinite neighbour gives that infinity (no ∞ − ∞).
#[must_use]
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let frac = h - lo as f64;
    let a = *sorted.get(lo)?;
    if frac == 0.0 {
        return Some(a);
    }
    let b = *sorted.get(lo + 1)?;
    if a == b || b.is_infinite() || a.is_infinite() {
        return Some(if b.is_infinite() { b } else { a });
    }
    Some(a + frac * (b - a))
}

/// Several quantiles of unsorted `values`.
///
/// # Errors
/// Empty input, a NaN value (naming its index), or a q outside [0, 1].
pub fn quantiles(values: &[f32], qs: &[f64]) -> Result<Vec<f64>> {
    ensure!(!values.is_empty(), "quantiles of an empty set");
    if let Some(i) = values.iter().position(|v| v.is_nan()) {
        bail!("value {i} is NaN");
    }
    let mut sorted: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
    sorted.sort_by(f64::total_cmp);
    qs.iter()
        .map(|&q| {
            quantile_sorted(&sorted, q)
                .ok_or_else(|| anyhow::anyhow!("quantile level {q} is not in [0, 1]"))
        })
        .collect()
}

/// The `k`-th smallest value (1-based) of `values`.
///
/// # Errors
/// k = 0 or k > len, or a NaN value.
pub fn kth_smallest(values: &[f32], k: usize) -> Result<f32> {
    ensure!(
        k >= 1 && k <= values.len(),
        "rank {k} is outside 1..={}",
        values.len()
    );
    if let Some(i) = values.iter().position(|v| v.is_nan()) {
        bail!("value {i} is NaN");
    }
    let mut v = values.to_vec();
    let (_, kth, _) = v.select_nth_unstable_by(k - 1, f32::total_cmp);
    Ok(*kth)
}
