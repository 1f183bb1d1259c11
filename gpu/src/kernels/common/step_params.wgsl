// The per-step uniform shared by `step` and `postvar`: the step's schedule coefficients
// (mirrors `StepParams` in gpu/src/sampler.rs; cov_factor = (1 − ᾱ_t)/√ᾱ_t, read by postvar),
// with the prediction codes and the finiteness test both kernels use.
struct StepParams {
    step: u32,
    prediction: u32,
    method: u32,
    clip: u32,
    clip_r: f32,
    lambda: f32,
    sigma: f32,
    dir_coef: f32,
    sqrt_alpha_bar: f32,
    sqrt_one_minus_alpha_bar: f32,
    inv_sqrt_alpha_bar: f32,
    sqrt_recip_alpha_bar_minus_one: f32,
    inv_sqrt_alpha: f32,
    eps_coef: f32,
    posterior_c1: f32,
    posterior_c2: f32,
    sqrt_alpha_bar_prev: f32,
    cov_factor: f32,
    pad0: u32,
    pad1: u32,
}

// StepParams.prediction values.
const PRED_EPSILON: u32 = 0u;
const PRED_SAMPLE: u32 = 1u;
// +∞, and the exponent mask that tells finite from non-finite.
const POS_INF_BITS: u32 = 0x7F800000u;

fn is_finite_f32(v: f32) -> bool {
    return (bitcast<u32>(v) & POS_INF_BITS) != POS_INF_BITS;
}
