//! 2D scatter of samples (row-major n×2) with the mixture's mode centres as crosses.

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Figure, builder, finite_range, plot_err, render};

struct Scatter<'a> {
    points: &'a [f32],
    centres: &'a [f32],
    title: &'a str,
}

impl Figure for Scatter<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, text: bool) -> Result<()> {
        root.fill(&WHITE).map_err(plot_err)?;
        let finite = |c: &[f32]| c.iter().all(|v| v.is_finite());
        let pts: Vec<(f64, f64)> = self
            .points
            .chunks_exact(2)
            .filter(|c| finite(c))
            .map(|c| (f64::from(c[0]), f64::from(c[1])))
            .collect();
        let ctr: Vec<(f64, f64)> = self
            .centres
            .chunks_exact(2)
            .filter(|c| finite(c))
            .map(|c| (f64::from(c[0]), f64::from(c[1])))
            .collect();
        let x = finite_range(pts.iter().chain(&ctr).map(|p| p.0));
        let y = finite_range(pts.iter().chain(&ctr).map(|p| p.1));
        let mut chart = builder(root, self.title, text)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)
            .map_err(plot_err)?;
        let mut mesh = chart.configure_mesh();
        if !text {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(plot_err)?;
        let dot = BLUE.mix(0.35).filled();
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 1, dot)))
            .map_err(plot_err)?;
        chart
            .draw_series(ctr.iter().map(|&p| Cross::new(p, 6, RED.stroke_width(2))))
            .map_err(plot_err)?;
        Ok(())
    }
}

/// Scatter of `points` (n×2 row-major) with `centres` (k×2) marked; non-finite points
/// and a trailing odd value are skipped.
///
/// # Errors
/// The file cannot be drawn or written.
pub fn scatter_2d(path: &Path, points: &[f32], centres: &[f32], title: &str) -> Result<()> {
    render(
        &Scatter {
            points,
            centres,
            title,
        },
        path,
    )
}
