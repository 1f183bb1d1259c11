//! 1D histogram with a logarithmic count axis (the paper's 1D figures: 100 bins, log y).

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Figure, builder, finite_range, plot_err, render};

/// Counts of `values` in `bins` equal bins over [lo, hi]; values outside are dropped,
/// hi falls in the last bin.
pub(super) fn bin_counts(
    values: impl Iterator<Item = f64>,
    lo: f64,
    hi: f64,
    bins: usize,
) -> Vec<u64> {
    let mut counts = vec![0u64; bins];
    let width = (hi - lo) / bins as f64;
    for v in values {
        if v.is_finite() && v >= lo && v <= hi && width > 0.0 {
            let b = (((v - lo) / width) as usize).min(bins - 1);
            counts[b] += 1;
        }
    }
    counts
}

struct Histogram<'a> {
    values: &'a [f32],
    bins: usize,
    marks: &'a [f64],
    title: &'a str,
}

impl Figure for Histogram<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, text: bool) -> Result<()> {
        root.fill(&WHITE).map_err(plot_err)?;
        let bins = self.bins.max(1);
        let (lo, hi) = finite_range(self.values.iter().map(|&v| f64::from(v)));
        let counts = bin_counts(self.values.iter().map(|&v| f64::from(v)), lo, hi, bins);
        let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 2.0;
        let mut chart = builder(root, self.title, text)
            .build_cartesian_2d(lo..hi, (0.5f64..top).log_scale())
            .map_err(plot_err)?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.y_desc("count")
                .y_label_formatter(&|v| format!("{v:.0}"));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(plot_err)?;
        let width = (hi - lo) / bins as f64;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(b, &c)| {
                        let x0 = lo + b as f64 * width;
                        Rectangle::new([(x0, 0.5), (x0 + width, c as f64)], BLUE.mix(0.6).filled())
                    }),
            )
            .map_err(plot_err)?;
        for &m in self
            .marks
            .iter()
            .filter(|m| m.is_finite() && **m >= lo && **m <= hi)
        {
            chart
                .draw_series(LineSeries::new([(m, 0.5), (m, top)], RED.stroke_width(1)))
                .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// Histogram of `values` in `bins` equal bins (non-finite values skipped) with a log
/// count axis and vertical lines at `marks` (e.g. the mode means).
///
/// # Errors
/// The file cannot be drawn or written.
pub fn histogram_log_y(
    path: &Path,
    values: &[f32],
    bins: usize,
    marks: &[f64],
    title: &str,
) -> Result<()> {
    render(
        &Histogram {
            values,
            bins,
            marks,
            title,
        },
        path,
    )
}
