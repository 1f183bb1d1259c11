//! ROC curves of several detectors in one figure, each labelled with its AUROC
//! (trapezoidal area of the curve), and the chance diagonal.

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Figure, builder, plot_err, render};
use crate::metrics::RocCurve;

struct Rocs<'a> {
    curves: &'a [(&'a str, &'a RocCurve)],
    title: &'a str,
}

impl Figure for Rocs<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, text: bool) -> Result<()> {
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = builder(root, self.title, text)
            .build_cartesian_2d(0.0f64..1.0, 0.0f64..1.0)
            .map_err(plot_err)?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("false-positive rate")
                .y_desc("true-positive rate");
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
            .map_err(plot_err)?;
        for (i, (name, curve)) in self.curves.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> = curve
                .points
                .iter()
                .filter(|p| p.fpr.is_finite() && p.tpr.is_finite())
                .map(|p| (p.fpr.clamp(0.0, 1.0), p.tpr.clamp(0.0, 1.0)))
                .collect();
            let series = chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                .map_err(plot_err)?;
            if text {
                series
                    .label(format!("{name} (AUROC {:.4})", curve.area()))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
        }
        if text && !self.curves.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// ROC curves of several detectors: `(name, curve)` pairs.
///
/// # Errors
/// The file cannot be drawn or written.
pub fn roc_curves(path: &Path, curves: &[(&str, &RocCurve)], title: &str) -> Result<()> {
    render(&Rocs { curves, title }, path)
}
