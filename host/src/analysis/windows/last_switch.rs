//! The link between critical windows and the Hal window (papers.md §3.4 "Link to §1"): the last
//! DDPM step τ at which the exact reverse SDE still keeps a sample against its nearest neighbour
//! with probability at least P.
//!
//! A pair of neighbouring modes N(±Δ, σ²) (Δ = half the nearest-neighbour distance) at step τ of
//! the schedule has whitened half-gap s(τ) = √ᾱ_τ Δ/√(ᾱ_τσ² + 1 − ᾱ_τ) (§3.3) and
//! P_stay(τ) = E_g[σ(2(s² + sg))] (§6.3), decreasing in τ. The table entry is
//! max{τ : P_stay(τ) ≥ P}, reported with t_OU = −½ ln ᾱ_τ.

use anyhow::{Result, ensure};

use super::closed_form::{Process, p_stay, whitened_half_gap};
use crate::analysis::es::schedule64::{Betas, ou_time};
use crate::analysis::mixture::Mixture;
use crate::data::Named;

/// A data set's nearest-neighbour geometry.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PairGeometry {
    pub name: String,
    /// Distance between nearest-neighbour modes.
    pub spacing: f64,
    /// Per-mode standard deviation (of the first component; the sets are equal-σ).
    pub sigma: f64,
}

impl PairGeometry {
    /// The geometry of a dataset mixture: its minimal mean spacing and σ.
    ///
    /// # Errors
    /// Fails for anisotropic or single-component mixtures.
    pub fn of(m: &crate::data::Mixture) -> Result<Self> {
        let gmm = Mixture::from_data(m)?;
        ensure!(
            gmm.components() >= 2,
            "'{}' has a single component: no neighbour to switch to",
            m.name()
        );
        Ok(Self {
            name: m.name().to_string(),
            spacing: gmm.min_spacing(),
            sigma: gmm.std(0),
        })
    }
}

/// gauss1d-3, grid25 and grid25-rot (scaled units), the sets of the §3.4 table.
///
/// # Errors
/// Never in practice (built-in definitions).
pub fn paper_sets() -> Result<Vec<PairGeometry>> {
    [Named::Gauss1d3, Named::Grid25, Named::Grid25Rot]
        .iter()
        .map(|n| PairGeometry::of(&n.mixture()?))
        .collect()
}

/// One entry of the last-switch table.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct LastSwitch {
    pub p: f64,
    /// Largest τ with P_stay(τ) ≥ p (None if even τ = 0 falls short).
    pub tau: Option<usize>,
    pub t_ou: Option<f64>,
}

/// P_stay of the exact SDE started at step τ for `geom` under `alpha_bars` (full schedule).
pub fn p_stay_at(geom: &PairGeometry, alpha_bar: f64) -> f64 {
    p_stay(
        Process::Sde,
        whitened_half_gap(alpha_bar.sqrt(), geom.spacing / 2.0, geom.sigma),
    )
}

/// The last-switch steps of `geom` for each target probability under `betas` with T steps.
///
/// # Errors
/// Fails on an invalid schedule or a target outside (½, 1).
pub fn last_switch(
    geom: &PairGeometry,
    betas: &Betas,
    train_steps: usize,
    targets: &[f64],
) -> Result<Vec<LastSwitch>> {
    ensure!(
        targets.iter().all(|p| *p > 0.5 && *p < 1.0),
        "targets must lie in (½, 1)"
    );
    let alpha_bars = betas.alpha_bars(train_steps)?;
    let stays: Vec<f64> = alpha_bars.iter().map(|&ab| p_stay_at(geom, ab)).collect();
    Ok(targets
        .iter()
        .map(|&p| {
            let tau = stays.iter().rposition(|&s| s >= p);
            LastSwitch {
                p,
                tau,
                t_ou: tau.map(|t| ou_time(alpha_bars[t])),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_switch_table_of_section_3_4() {
        let want = [[14, 27, 45, 78], [9, 18, 31, 58], [5, 11, 21, 42]];
        for (geom, row) in paper_sets().unwrap().iter().zip(want) {
            let got = last_switch(geom, &Betas::PAPER, 1000, &[0.99, 0.9, 0.75, 0.6]).unwrap();
            let taus: Vec<usize> = got.iter().map(|e| e.tau.unwrap()).collect();
            assert_eq!(taus, row, "{}", geom.name);
            // P_stay is monotone, so the entry is a true last crossing.
            let ab = Betas::PAPER.alpha_bars(1000).unwrap();
            for e in &got {
                let t = e.tau.unwrap();
                assert!(p_stay_at(geom, ab[t]) >= e.p && p_stay_at(geom, ab[t + 1]) < e.p);
            }
        }
    }
}
