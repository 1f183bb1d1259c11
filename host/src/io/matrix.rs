//! A dense row-major f32 matrix, the unit of CSV and NPY input/output.

use anyhow::{Result, bail, ensure};

/// What a reader does with ±∞ and NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinite {
    /// An error naming the row and column (the default for data files).
    Reject,
    /// Keep the value (detector scores use +∞ for a diverged trajectory).
    Allow,
}

/// `rows` × `cols` f32 values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// Wraps `data` as `rows` × `cols`.
    ///
    /// # Errors
    /// `cols` is 0 or `data.len() != rows·cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        ensure!(cols > 0, "a matrix needs at least one column");
        ensure!(
            rows.checked_mul(cols) == Some(data.len()),
            "{} values do not fill a {rows}×{cols} matrix",
            data.len()
        );
        Ok(Self { rows, cols, data })
    }

    /// One column holding `values`.
    #[must_use]
    pub fn column(values: Vec<f32>) -> Self {
        Self {
            rows: values.len(),
            cols: 1,
            data: values,
        }
    }

    /// Rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns.
    #[must_use]
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// All values, row-major.
    #[must_use]
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// Consumes the matrix, returning its values.
    #[must_use]
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    /// Row `r` (empty if out of range).
    #[must_use]
    pub fn row(&self, r: usize) -> &[f32] {
        self.data
            .get(r * self.cols..(r + 1) * self.cols)
            .unwrap_or(&[])
    }

    /// Applies `policy`: with [`NonFinite::Reject`], the first non-finite value is an
    /// error naming its 0-based row and column.
    ///
    /// # Errors
    /// As above.
    pub fn check_finite(&self, policy: NonFinite) -> Result<()> {
        if policy == NonFinite::Allow {
            return Ok(());
        }
        if let Some(i) = self.data.iter().position(|v| !v.is_finite()) {
            bail!(
                "non-finite value {} at row {}, column {}",
                self.data[i],
                i / self.cols,
                i % self.cols
            );
        }
        Ok(())
    }
}
