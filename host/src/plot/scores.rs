//! Overlaid histograms of a detector's scores for in-support and hallucinated samples,
//! in logarithmic bins (Hal spans decades), each normalised to its class size, with the
//! threshold τ as a vertical line. Scores ≤ 0 go to the first bin and +∞ to the last;
//! NaN is skipped.

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Figure, builder, plot_err, render};

struct Scores<'a> {
    in_support: &'a [f32],
    hallucinated: &'a [f32],
    bins: usize,
    threshold: Option<f64>,
    title: &'a str,
}

/// Geometric edges (lo, hi) over the positive finite values; (1e−6, 1) if there are none.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (1e-6, 1.0)
    } else if hi / lo < 1.0001 {
        (lo / 10.0, hi * 10.0)
    } else {
        (lo, hi)
    }
}

/// Fraction of `values` in each of `bins` log-spaced bins over [lo, hi].
fn fractions(values: &[f32], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut counts = vec![0u64; bins];
    let span = (hi / lo).ln();
    let mut total = 0u64;
    for &v in values {
        let v = f64::from(v);
        if v.is_nan() {
            continue;
        }
        let b = if v <= lo {
            0
        } else if v >= hi {
            bins - 1
        } else {
            (((v / lo).ln() / span * bins as f64) as usize).min(bins - 1)
        };
        counts[b] += 1;
        total += 1;
    }
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

impl Figure for Scores<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, text: bool) -> Result<()> {
        root.fill(&WHITE).map_err(plot_err)?;
        let bins = self.bins.max(1);
        let (lo, hi) = log_range(
            self.in_support
                .iter()
                .chain(self.hallucinated)
                .map(|&v| f64::from(v)),
        );
        let a = fractions(self.in_support, lo, hi, bins);
        let b = fractions(self.hallucinated, lo, hi, bins);
        let top = a.iter().chain(&b).copied().fold(0.0f64, f64::max).max(1e-3) * 1.1;
        let mut chart = builder(root, self.title, text)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..top)
            .map_err(plot_err)?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("score")
                .y_desc("fraction of class")
                .x_labels(8)
                .x_label_formatter(&|v| format!("{v:.0e}"));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(plot_err)?;
        let ratio = (hi / lo).powf(1.0 / bins as f64);
        let classes = [("in-support", &a, BLUE), ("hallucinated", &b, RED)];
        for (name, fr, colour) in classes {
            let series = chart
                .draw_series(
                    fr.iter()
                        .enumerate()
                        .filter(|(_, f)| **f > 0.0)
                        .map(|(i, &f)| {
                            let x0 = lo * ratio.powi(i as i32);
                            Rectangle::new([(x0, 0.0), (x0 * ratio, f)], colour.mix(0.4).filled())
                        }),
                )
                .map_err(plot_err)?;
            if text {
                series.label(name).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.mix(0.4).filled())
                });
            }
        }
        if let Some(t) = self
            .threshold
            .filter(|t| t.is_finite() && *t > lo && *t < hi)
        {
            chart
                .draw_series(LineSeries::new([(t, 0.0), (t, top)], BLACK.stroke_width(2)))
                .map_err(plot_err)?;
        }
        if text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// Overlaid score histograms of the two classes in `bins` log-spaced bins, with the
/// threshold (if finite and in range) marked.
///
/// # Errors
/// The file cannot be drawn or written.
pub fn score_histograms(
    path: &Path,
    in_support: &[f32],
    hallucinated: &[f32],
    bins: usize,
    threshold: Option<f64>,
    title: &str,
) -> Result<()> {
    render(
        &Scores {
            in_support,
            hallucinated,
            bins,
            threshold,
            title,
        },
        path,
    )
}
