// The per-step uniform shared by `step` and `postvar`: the step's schedule coefficients
// (mirrors `StepParams` in gpu/src/sampler.rs; cov_factor = (1 − ᾱ_t)/√ᾱ_t, read by postvar).
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
