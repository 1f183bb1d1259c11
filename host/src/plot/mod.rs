//! Figures with plotters: PNG, or SVG when the path ends in `.svg`.
//!
//! Every figure is written atomically: a PNG is drawn to a temporary file in the target
//! directory (plotters writes files itself), synced and renamed over the target; an SVG
//! is rendered to a string and written with [`crate::io::atomic::write_atomic`].
//! Inputs are never trusted: non-finite values are skipped, empty inputs give empty
//! axes, degenerate ranges are padded. If text cannot be drawn (no system font), the
//! figure is drawn again without captions, labels and legends, with a warning on stderr.
//! A panic inside plotters is caught and reported as an error.

mod histogram;
mod lines;
mod roc;
mod scatter;
mod scores;

pub use histogram::histogram_log_y;
pub use lines::{Series, line_plot};
pub use roc::roc_curves;
pub use scatter::scatter_2d;
pub use scores::score_histograms;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::io::atomic::{write_atomic, write_atomic_with};

/// Figure size in pixels.
pub const SIZE: (u32, u32) = (900, 700);
/// Caption font.
const CAPTION: (&str, u32) = ("sans-serif", 22);

/// Something that can draw itself on any plotters backend.
trait Figure {
    /// Draws on `root`; `text` false means draw no text at all.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, text: bool) -> Result<()>;
}

/// Converts a plotters error.
fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e}")
}

fn render_once<F: Figure>(figure: &F, path: &Path, svg: bool, text: bool) -> Result<()> {
    if svg {
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
            figure.draw(&root, text)?;
            root.present().map_err(plot_err)?;
        }
        return write_atomic(path, buf.as_bytes());
    }
    write_atomic_with(path, ".tmp.png", |tmp| {
        let root = BitMapBackend::new(tmp, SIZE).into_drawing_area();
        figure.draw(&root, text)?;
        root.present().map_err(plot_err)
    })
}

fn render_guarded<F: Figure>(figure: &F, path: &Path, svg: bool, text: bool) -> Result<()> {
    match catch_unwind(AssertUnwindSafe(|| render_once(figure, path, svg, text))) {
        Ok(r) => r,
        Err(_) => bail!("plotters panicked while drawing {}", path.display()),
    }
}

/// Writes `figure` to `path` (`.svg` → SVG, anything else → PNG).
fn render<F: Figure>(figure: &F, path: &Path) -> Result<()> {
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    match render_guarded(figure, path, svg, true) {
        Ok(()) => Ok(()),
        Err(first) => match render_guarded(figure, path, svg, false) {
            Ok(()) => {
                eprintln!("warning: {} drawn without text ({first:#})", path.display());
                Ok(())
            }
            Err(_) => Err(first.context(format!("cannot draw {}", path.display()))),
        },
    }
}

/// A chart builder with the caption and label areas `text` allows.
fn builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &'b str,
    text: bool,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.margin(12);
    if text {
        b.caption(title, CAPTION)
            .x_label_area_size(40)
            .y_label_area_size(64);
    }
    b
}

/// (min, max) of the finite values, padded so the range is never empty; (0, 1) if none.
fn finite_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        0.04 * (hi - lo)
    } else {
        0.5f64.max(0.1 * lo.abs())
    };
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests;
