//! The ε-prediction loss and its gradient over a batch (papers.md §1.2 "Training"):
//!
//! ```text
//! L = (1/(N·D)) Σₙ ‖εₙ − ε_θ(x_tₙ, tₙ)‖²,   dL/dε̂ₙ = 2(ε̂ₙ − εₙ)/(N·D)
//! ```
//!
//! The batch is cut into fixed chunks of [`TRAIN_CHUNK`] rows; each chunk runs forward
//! and backward into its own gradient slot, the worker threads take contiguous runs of
//! chunks, and the slots are summed in chunk order. The time branch runs once per
//! distinct t before the chunks and its backward once after them, with dL/de(t)
//! accumulated in sample order. Every sum therefore has a fixed order: the result is
//! bit-identical for any thread count.

use super::layout::Layout;
use super::net::{Acts, BatchMlp, TimeBranch, TimeRows};

/// Rows per chunk (fixed: it sets the summation order of the gradient).
pub const TRAIN_CHUNK: usize = 256;

struct Worker {
    acts: Acts,
    out: Vec<f32>,
    d_out: Vec<f32>,
}

/// Reusable buffers for [`GradEngine::loss_grad`].
pub struct GradEngine {
    layout: Layout,
    workers: Vec<Worker>,
    slots: Vec<f32>,
    d_enc: Vec<f32>,
}

impl GradEngine {
    /// An engine for `layout` running on `threads` threads (≥ 1).
    #[must_use]
    pub fn new(layout: Layout, threads: usize) -> Self {
        let d = layout.shape.dim;
        let workers = (0..threads.max(1))
            .map(|_| Worker {
                acts: Acts::new(&layout, TRAIN_CHUNK, true),
                out: vec![0.0; TRAIN_CHUNK * d],
                d_out: vec![0.0; TRAIN_CHUNK * d],
            })
            .collect();
        Self {
            layout,
            workers,
            slots: Vec::new(),
            d_enc: Vec::new(),
        }
    }

    /// Number of worker threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Loss of `params` on noisy inputs `x_t` (`[N, D]`) at timesteps `t` (each < the
    /// time branch's range) with target noise `eps`; writes dL/dθ into `grad`.
    ///
    /// # Panics
    /// If the slice lengths disagree with `t.len()` and the layout.
    pub fn loss_grad(
        &mut self,
        params: &[f32],
        x_t: &[f32],
        t: &[u32],
        eps: &[f32],
        grad: &mut [f32],
    ) -> f64 {
        let layout = self.layout;
        let (d, w, _, _) = layout.dims();
        let n = t.len();
        assert!(
            x_t.len() == n * d && eps.len() == n * d && grad.len() == layout.len,
            "loss_grad: lengths"
        );
        let mut distinct = t.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let max_t = distinct.last().map_or(0, |&v| v as usize);
        let mut row_of = vec![0u32; max_t + 1];
        for (u, &tv) in distinct.iter().enumerate() {
            row_of[tv as usize] = u as u32;
        }
        let trow: Vec<u32> = t.iter().map(|&tv| row_of[tv as usize]).collect();
        let time = TimeBranch::compute(&layout, params, &distinct);
        let net = BatchMlp::new(&layout, params);

        let chunks = n.div_ceil(TRAIN_CHUNK);
        let p = layout.len;
        self.slots.clear();
        self.slots.resize(chunks * p, 0.0);
        self.d_enc.clear();
        self.d_enc.resize(n * w, 0.0);
        let mut losses = vec![0.0f64; chunks];
        let scale = 2.0 / (n * d) as f32;

        struct Job<'j> {
            start: usize,
            slot: &'j mut [f32],
            d_enc: &'j mut [f32],
            loss: &'j mut f64,
        }
        let mut jobs: Vec<Job<'_>> = self
            .slots
            .chunks_mut(p)
            .zip(self.d_enc.chunks_mut(TRAIN_CHUNK * w))
            .zip(losses.iter_mut())
            .enumerate()
            .map(|(c, ((slot, d_enc), loss))| Job {
                start: c * TRAIN_CHUNK,
                slot,
                d_enc,
                loss,
            })
            .collect();
        let per = chunks.div_ceil(self.workers.len()).max(1);
        let run = &|worker: &mut Worker, group: &mut [Job<'_>]| {
            for job in group {
                let rows = (n - job.start).min(TRAIN_CHUNK);
                let x = &x_t[job.start * d..(job.start + rows) * d];
                let e = &eps[job.start * d..(job.start + rows) * d];
                let tr = TimeRows::PerSample(&trow[job.start..job.start + rows]);
                net.forward(x, rows, &time, tr, &mut worker.acts, &mut worker.out);
                let mut sum = 0.0f64;
                for ((g, o), ev) in worker.d_out.iter_mut().zip(&worker.out[..rows * d]).zip(e) {
                    let diff = o - ev;
                    sum += f64::from(diff) * f64::from(diff);
                    *g = scale * diff;
                }
                *job.loss = sum;
                net.backward(
                    x,
                    rows,
                    &worker.d_out,
                    &mut worker.acts,
                    job.slot,
                    job.d_enc,
                );
            }
        };
        std::thread::scope(|s| {
            let mut groups = jobs.chunks_mut(per).zip(self.workers.iter_mut());
            let first = groups.next();
            for (group, worker) in groups {
                s.spawn(move || run(worker, group));
            }
            if let Some((group, worker)) = first {
                run(worker, group);
            }
        });

        grad.fill(0.0);
        for slot in self.slots.chunks_exact(p) {
            grad.iter_mut().zip(slot).for_each(|(g, s)| *g += s);
        }
        let mut d_time = vec![0.0f32; distinct.len() * w];
        for (row, &u) in self.d_enc.chunks_exact(w).zip(&trow) {
            let acc = &mut d_time[u as usize * w..(u as usize + 1) * w];
            acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
        }
        time.backward(&layout, params, &d_time, grad);
        losses.iter().sum::<f64>() / (n * d) as f64
    }
}
