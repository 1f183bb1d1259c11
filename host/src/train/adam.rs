//! Adam (Kingma & Ba 2015) exactly as PyTorch's single-tensor `torch.optim.Adam` does it,
//! with the paper's settings (papers.md §1.2): lr 1e-3, β = (0.9, 0.999), eps 1e-8, no
//! weight decay.
//!
//! ```text
//! m ← m + (1−β₁)(g − m);   v ← β₂ v + (1−β₂) g²
//! θ ← θ − (lr / (1−β₁ˢ)) · m / (√v / √(1−β₂ˢ) + eps)      (s = step, from 1)
//! ```
//! Bias corrections in f64, moments and update in f32.

/// Adam hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay β₁.
    pub beta1: f32,
    /// Second-moment decay β₂.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
}

impl AdamConfig {
    /// The paper's optimiser: lr 1e-3, β (0.9, 0.999), eps 1e-8.
    pub const PAPER: Self = Self {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
}

/// Adam state: first and second moments, and the number of steps taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Hyper-parameters.
    pub config: AdamConfig,
    /// First moments (one per parameter).
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
    /// Steps taken so far.
    pub step: u64,
}

impl Adam {
    /// Zeroed state for `len` parameters.
    #[must_use]
    pub fn new(config: AdamConfig, len: usize) -> Self {
        Self {
            config,
            m: vec![0.0; len],
            v: vec![0.0; len],
            step: 0,
        }
    }

    /// One update of `params` with gradient `grad`.
    ///
    /// # Panics
    /// If the lengths of `params`, `grad` and the state differ.
    pub fn update(&mut self, params: &mut [f32], grad: &[f32]) {
        assert!(
            params.len() == self.m.len() && grad.len() == self.m.len(),
            "Adam: length mismatch"
        );
        self.step += 1;
        let c = self.config;
        let s = i32::try_from(self.step).unwrap_or(i32::MAX);
        let bc1 = 1.0 - f64::from(c.beta1).powi(s);
        let bc2_sqrt = (1.0 - f64::from(c.beta2).powi(s)).sqrt() as f32;
        let step_size = (f64::from(c.lr) / bc1) as f32;
        let (w1, w2) = (1.0 - c.beta1, 1.0 - c.beta2);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            *m += w1 * (g - *m);
            *v = *v * c.beta2 + w2 * g * g;
            let denom = v.sqrt() / bc2_sqrt + c.eps;
            *p -= step_size * (*m / denom);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adam on f(θ) = ½θ² against the recursion in f64.
    #[test]
    fn follows_the_f64_recursion_on_a_quadratic() {
        let c = AdamConfig::PAPER;
        let mut adam = Adam::new(c, 1);
        let mut theta = [2.0f32];
        let (mut t64, mut m, mut v) = (2.0f64, 0.0f64, 0.0f64);
        for s in 1..=200 {
            let g = theta[0];
            adam.update(&mut theta, &[g]);
            let g64 = t64;
            m = 0.9 * m + 0.1 * g64;
            v = 0.999 * v + 0.001 * g64 * g64;
            let mh = m / (1.0 - 0.9f64.powi(s));
            let vh = v / (1.0 - 0.999f64.powi(s));
            t64 -= 1e-3 * mh / (vh.sqrt() + 1e-8);
            assert!(
                (f64::from(theta[0]) - t64).abs() < 1e-5,
                "step {s}: {} vs {t64}",
                theta[0]
            );
        }
        // The first step moves by lr exactly (m̂/√v̂ = ±1).
        assert!(t64 < 2.0 - 0.19);
    }
}
