//! The math facade: every transcendental in core goes through here.
//!
//! libm is pure Rust, so the host, the tests and a Cortex-M4 get identical bits. With the
//! opt-in `fast-math` feature, `exp`, `ln`, `sin` and `cos` (f32 only) use micromath's
//! approximations instead; their error is measured by the tests below.

/// √x (f32), correctly rounded.
#[inline(always)]
pub fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}

/// √x (f64), correctly rounded.
#[inline(always)]
pub fn sqrt_f64(x: f64) -> f64 {
    libm::sqrt(x)
}

/// x rounded to the nearest integer, halves away from zero (f32).
#[inline(always)]
pub fn round(x: f32) -> f32 {
    libm::roundf(x)
}

/// x rounded to the nearest integer, halves away from zero (f64).
#[inline(always)]
pub fn round_f64(x: f64) -> f64 {
    libm::round(x)
}

/// eˣ (f32).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    #[cfg(feature = "fast-math")]
    {
        micromath::F32Ext::exp(x)
    }
    #[cfg(not(feature = "fast-math"))]
    {
        libm::expf(x)
    }
}

/// ln x (f32).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    #[cfg(feature = "fast-math")]
    {
        micromath::F32Ext::ln(x)
    }
    #[cfg(not(feature = "fast-math"))]
    {
        libm::logf(x)
    }
}

/// sin x (f32).
#[inline(always)]
pub fn sin(x: f32) -> f32 {
    #[cfg(feature = "fast-math")]
    {
        micromath::F32Ext::sin(x)
    }
    #[cfg(not(feature = "fast-math"))]
    {
        libm::sinf(x)
    }
}

/// cos x (f32).
#[inline(always)]
pub fn cos(x: f32) -> f32 {
    #[cfg(feature = "fast-math")]
    {
        micromath::F32Ext::cos(x)
    }
    #[cfg(not(feature = "fast-math"))]
    {
        libm::cosf(x)
    }
}

/// eˣ (f64, libm in every build: used where bits must match PyTorch and the f64 references).
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    libm::exp(x)
}

/// ln x (f64, libm in every build).
#[inline(always)]
pub fn ln_f64(x: f64) -> f64 {
    libm::log(x)
}

/// sin x (f64, libm in every build; accurate for large arguments such as a timestep).
#[inline(always)]
pub fn sin_f64(x: f64) -> f64 {
    libm::sin(x)
}

/// cos x (f64, libm in every build; accurate for large arguments such as a timestep).
#[inline(always)]
pub fn cos_f64(x: f64) -> f64 {
    libm::cos(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worst absolute error the active backend may show on the test vectors.
    #[cfg(feature = "fast-math")]
    const MAX_ERROR: f32 = 2e-3;
    #[cfg(not(feature = "fast-math"))]
    const MAX_ERROR: f32 = 1e-6;

    #[test]
    fn transcendentals_match_f64() {
        let xs = [-3.0f32, -1.0, -0.5, 0.0, 0.25, 1.0, 2.5, 3.1];
        for &x in &xs {
            assert!(
                (exp(x) - (x as f64).exp() as f32).abs() / (x as f64).exp() as f32
                    <= MAX_ERROR * 4.0
            );
            assert!((sin(x) - (x as f64).sin() as f32).abs() <= MAX_ERROR);
            assert!((cos(x) - (x as f64).cos() as f32).abs() <= MAX_ERROR);
            if x > 0.0 {
                assert!((ln(x) - (x as f64).ln() as f32).abs() <= MAX_ERROR * 4.0);
            }
        }
        assert_eq!(sqrt(4.0), 2.0);
        assert_eq!(sqrt_f64(2.25), 1.5);
    }
}
