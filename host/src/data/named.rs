//! The paper's synthetic datasets (papers.md §1.2 "Datasets", *paper's code*).
//!
//! | name | components (in mode order) | σ | scaling |
//! |---|---|---|---|
//! | gauss1d-3 | means 1, 2, 3 | 0.05 | none |
//! | gauss1d-4 | means 1, 2, 4, 5 | 0.05 | none |
//! | grid25 | centres 2(i, j), i, j ∈ {−2..2}, outer loop i | 0.05 | ÷ 2.828869 |
//! | grid25-rot | centres (i+j, i−j), outer loop j | 0.05 | ÷ 2.828869 |
//!
//! The divisor √(σ² + 8) ≈ 2.828869 turns the grid spacing 2 into 0.706996 and σ into
//! σ_n = 0.0176749; the rotated grid's nearest-neighbour distance √2 becomes 0.499922.
//! The mixture stores the *scaled* centres and σ, so samples are (raw + σz)/2.828869.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

use super::Mixture;

/// σ of every mode of the paper's synthetic sets, in raw units.
pub const PAPER_SIGMA: f64 = 0.05;
/// The paper's grid divisor √(σ² + 8), rounded as in its code.
pub const GRID_DIVISOR: f64 = 2.828869;

/// One of the built-in datasets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// Three 1D modes at 1, 2, 3.
    Gauss1d3,
    /// Four 1D modes at 1, 2, 4, 5.
    Gauss1d4,
    /// 5×5 grid, spacing 2 raw, scaled.
    Grid25,
    /// The grid turned 45° (and shrunk by 1/√2), scaled.
    Grid25Rot,
}

impl Named {
    /// Every built-in dataset, in the order of [`Named::NAMES`].
    pub const ALL: [Self; 4] = [
        Self::Gauss1d3,
        Self::Gauss1d4,
        Self::Grid25,
        Self::Grid25Rot,
    ];
    /// The names accepted by [`Named::from_str`].
    pub const NAMES: [&'static str; 4] = ["gauss1d-3", "gauss1d-4", "grid25", "grid25-rot"];

    /// The name used on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Gauss1d3 => Self::NAMES[0],
            Self::Gauss1d4 => Self::NAMES[1],
            Self::Grid25 => Self::NAMES[2],
            Self::Grid25Rot => Self::NAMES[3],
        }
    }

    /// The dataset's mixture (scaled units for the grids), components in mode order.
    ///
    /// # Errors
    /// None in practice; the definitions are fixed and valid.
    pub fn mixture(self) -> Result<Mixture> {
        let name = self.name();
        match self {
            Self::Gauss1d3 => Mixture::isotropic(name, 1, &[1.0, 2.0, 3.0], PAPER_SIGMA),
            Self::Gauss1d4 => Mixture::isotropic(name, 1, &[1.0, 2.0, 4.0, 5.0], PAPER_SIGMA),
            Self::Grid25 => {
                let mut means = Vec::with_capacity(50);
                for i in -2i32..=2 {
                    for j in -2i32..=2 {
                        means.push(f64::from(2 * i) / GRID_DIVISOR);
                        means.push(f64::from(2 * j) / GRID_DIVISOR);
                    }
                }
                Mixture::isotropic(name, 2, &means, PAPER_SIGMA / GRID_DIVISOR)
            }
            Self::Grid25Rot => {
                let mut means = Vec::with_capacity(50);
                for j in -2i32..=2 {
                    for i in -2i32..=2 {
                        means.push(f64::from(i + j) / GRID_DIVISOR);
                        means.push(f64::from(i - j) / GRID_DIVISOR);
                    }
                }
                Mixture::isotropic(name, 2, &means, PAPER_SIGMA / GRID_DIVISOR)
            }
        }
    }
}

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Named {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|n| n.name() == s) {
            Some(n) => Ok(n),
            None => bail!(
                "unknown dataset '{s}': expected one of {}",
                Self::NAMES.join(", ")
            ),
        }
    }
}
