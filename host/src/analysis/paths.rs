//! Deterministic parallel Monte Carlo over independent paths.
//!
//! Every path draws its randomness from core's counter-based normals keyed by
//! (seed, stream, path index, step, dimension) (`mirage_core::noise`), so a path's result depends
//! only on its index: the output is bit-identical for any thread count. [`par_map`] splits the
//! index range into contiguous chunks over `std::thread::scope` workers and reports progress on
//! stderr when given a label.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mirage_core::noise;

/// Stream of the first draws of a path (initial point, forward noise, component choice).
pub const STREAM_INIT: u32 = noise::STREAM_INIT;
/// Stream of the per-step noise.
pub const STREAM_STEP: u32 = noise::STREAM_STEP;

/// Fills `out` with standard normals for (seed, stream, path, step), dimension d = index in `out`.
pub fn normals(seed: u64, stream: u32, path: usize, step: usize, out: &mut [f64]) {
    let mut buf = [0.0f32; 64];
    for (chunk_idx, chunk) in out.chunks_mut(64).enumerate() {
        let base = chunk_idx * 64;
        let tmp = &mut buf[..chunk.len()];
        if base == 0 {
            noise::fill_normals(seed, stream, path as u32, step as u32, tmp);
        } else {
            for (d, v) in tmp.iter_mut().enumerate() {
                *v = noise::normal(seed, stream, path as u32, step as u32, (base + d) as u32);
            }
        }
        for (o, v) in chunk.iter_mut().zip(tmp.iter()) {
            *o = f64::from(*v);
        }
    }
}

/// The number of worker threads to use: `requested`, or all available cores when 0.
pub fn thread_count(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Maps `f` over path indices 0..n on `threads` workers (0 = all cores; one runs on the
/// calling thread), keeping index order. With `label`, progress goes to stderr about every 10%.
pub fn par_map<T: Send>(
    n: usize,
    threads: usize,
    label: Option<&str>,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let threads = thread_count(threads).clamp(1, n.max(1));
    let chunk = n.div_ceil(threads);
    let done = AtomicUsize::new(0);
    let start = Instant::now();
    let report_every = (n / 10).max(1);
    let work = |range: std::ops::Range<usize>| -> Vec<T> {
        range
            .map(|i| {
                let out = f(i);
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(label) = label
                    && finished.is_multiple_of(report_every)
                {
                    eprintln!(
                        "{label}: {finished}/{n} paths, {:.1} s",
                        start.elapsed().as_secs_f64()
                    );
                }
                out
            })
            .collect()
    };
    if threads == 1 {
        return work(0..n);
    }
    let mut parts: Vec<Vec<T>> = Vec::with_capacity(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let range = (w * chunk).min(n)..((w + 1) * chunk).min(n);
                let work = &work;
                scope.spawn(move || work(range))
            })
            .collect();
        for h in handles {
            // A worker only panics if `f` does; re-raise it on this thread.
            match h.join() {
                Ok(part) => parts.push(part),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
    });
    parts.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let f = |i: usize| {
            let mut z = [0.0; 70];
            normals(42, STREAM_STEP, i, 3, &mut z);
            z.iter().sum::<f64>()
        };
        let one = par_map(101, 1, None, f);
        let three = par_map(101, 3, None, f);
        assert_eq!(one, three);
        assert_eq!(one.len(), 101);
        assert!(par_map(0, 2, None, f).is_empty());
    }

    #[test]
    fn normals_follow_core_noise_and_look_standard() {
        let mut z = vec![0.0; 130];
        normals(5, STREAM_INIT, 9, 2, &mut z);
        for (d, v) in z.iter().enumerate() {
            assert_eq!(*v, f64::from(noise::normal(5, STREAM_INIT, 9, 2, d as u32)));
        }
        let n = 20_000;
        let draws: Vec<f64> = (0..n)
            .map(|i| {
                let mut one = [0.0];
                normals(1, STREAM_STEP, i, 0, &mut one);
                one[0]
            })
            .collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 4.0 / (n as f64).sqrt()
                && (var - 1.0).abs() < 4.0 * (2.0 / n as f64).sqrt()
        );
    }
}
