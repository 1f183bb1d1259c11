//! Line plot of several named series (e.g. % hallucinated per generation for each
//! filter), optionally with a logarithmic y-axis (then values ≤ 0 are skipped).

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use super::{Figure, builder, finite_range, plot_err, render};

/// One named series of (x, y) points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// Points, drawn in order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

struct Lines<'a> {
    series: &'a [Series],
    x_label: &'a str,
    y_label: &'a str,
    log_y: bool,
    title: &'a str,
}

impl Lines<'_> {
    fn kept(&self, s: &Series) -> Vec<(f64, f64)> {
        s.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
            .collect()
    }
}

impl Figure for Lines<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, text: bool) -> Result<()> {
        root.fill(&WHITE).map_err(plot_err)?;
        let kept: Vec<Vec<(f64, f64)>> = self.series.iter().map(|s| self.kept(s)).collect();
        let x = finite_range(kept.iter().flatten().map(|p| p.0));
        let mut b = builder(root, self.title, text);
        if self.log_y {
            let (lo, hi) = kept
                .iter()
                .flatten()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                    (lo.min(p.1), hi.max(p.1))
                });
            let (lo, hi) = if lo > hi {
                (0.1, 10.0)
            } else {
                (lo / 2.0, hi * 2.0)
            };
            let mut chart = b
                .build_cartesian_2d(x.0..x.1, (lo..hi).log_scale())
                .map_err(plot_err)?;
            draw_lines(&mut chart, self, &kept, text)
        } else {
            let y = finite_range(kept.iter().flatten().map(|p| p.1));
            let mut chart = b.build_cartesian_2d(x.0..x.1, y.0..y.1).map_err(plot_err)?;
            draw_lines(&mut chart, self, &kept, text)
        }
    }
}

fn draw_lines<'a, DB: DrawingBackend + 'a, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    fig: &Lines<'_>,
    kept: &[Vec<(f64, f64)>],
    text: bool,
) -> Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(fig.x_label).y_desc(fig.y_label);
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(plot_err)?;
    for (i, (s, pts)) in fig.series.iter().zip(kept).enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let series = chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(plot_err)?;
        if text {
            series.label(s.name.as_str()).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(plot_err)?;
    }
    if text && !fig.series.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

/// Line plot of `series` with axis labels; `log_y` for a logarithmic y-axis.
///
/// # Errors
/// The file cannot be drawn or written.
pub fn line_plot(
    path: &Path,
    series: &[Series],
    x_label: &str,
    y_label: &str,
    log_y: bool,
    title: &str,
) -> Result<()> {
    render(
        &Lines {
            series,
            x_label,
            y_label,
            log_y,
            title,
        },
        path,
    )
}
