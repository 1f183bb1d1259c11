// One reverse step for every element of a chunk, with the Hal detector fused in
// (prepended with common/normal.wgsl). Per element, with m the network output:
//   ε̂ = m (ε), (x − √ᾱ m)/√(1−ᾱ) (x0), √ᾱ m + √(1−ᾱ) x (v);  Epsilon Scaling ε̂ ← ε̂/λ_i
//   x̂0 = x/√ᾱ − √(1/ᾱ − 1) ε̂ (ε-models; x0/v-models: see below);  clipping: x̂0 ← clamp(x̂0, −r, r), ε̂ ← (x − √ᾱ x̂0)/√(1−ᾱ)
//   DDPM: μ = (x − β/√(1−ᾱ) ε̂)/√α (unclipped) or c1 x̂0 + c2 x (clipped)
//   DDIM: μ = √ᾱ_prev x̂0 + √(1−ᾱ_prev−σ²) ε̂
//   x_{i−1} = μ + σ z (σ = 0 at i = 0 and for DDIM η = 0; √(1−ᾱ_prev−σ²) comes from the CPU, f64),  z = normal(seed, STREAM_STEP, sample, i, d)
// exactly as mirage_core::sampler::step (the coefficients come from core's f32 tables).
// Hal (papers.md §1.3.5, core detector/hal.rs): shifted Welford over the window i < K:
//   first window step: s ← x̂0, mean ← 0, M2 ← 0 (+∞ if x̂0 is not finite);
//   later: y = x̂0 − s; δ = y − mean; mean += δ/(n+1); M2 += δ (y − mean); non-finite ⇒ +∞.
// Finiteness is tested on the bit pattern, so no driver can optimise it away.

struct Chunk {
    rows: u32,
    dim: u32,
    sample_base: u32,
    seed_lo: u32,
    seed_hi: u32,
    window: u32, // min(K, steps); 0 = no detector
    flags: u32,
    row_stride: u32,
}

const METHOD_DDPM: u32 = 0u;
const FLAG_WRITE_X0: u32 = 1u;
const STREAM_STEP: u32 = 0u;

@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<uniform> sp: StepParams;
@group(0) @binding(2) var<storage, read> model_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> hal: array<f32>; // planes: shift, mean, M2
@group(0) @binding(5) var<storage, read_write> x0_out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let total = chunk.rows * chunk.dim;
    let idx = gid.y * chunk.row_stride + gid.x;
    if (idx >= total) {
        return;
    }
    let xt = x[idx];
    let m = model_out[idx];
    // predict_x0_eps of core's sampler: x0- and v-models take x̂0 from the output directly
    // and shift it by √(1/ᾱ − 1)(ε̂ − ε̂/λ) when λ ≠ 1.
    var eps: f32;
    var x0: f32;
    if (sp.prediction == PRED_EPSILON) {
        eps = m;
        if (sp.lambda != 1.0) {
            eps = m / sp.lambda;
        }
        x0 = sp.inv_sqrt_alpha_bar * xt - sp.sqrt_recip_alpha_bar_minus_one * eps;
    } else {
        if (sp.prediction == PRED_SAMPLE) {
            x0 = m;
            eps = (xt - sp.sqrt_alpha_bar * m) / sp.sqrt_one_minus_alpha_bar;
        } else {
            x0 = sp.sqrt_alpha_bar * xt - sp.sqrt_one_minus_alpha_bar * m;
            eps = sp.sqrt_alpha_bar * m + sp.sqrt_one_minus_alpha_bar * xt;
        }
        if (sp.lambda != 1.0) {
            let scaled = eps / sp.lambda;
            x0 = x0 + sp.sqrt_recip_alpha_bar_minus_one * (eps - scaled);
            eps = scaled;
        }
    }
    if (sp.clip != 0u) {
        x0 = clamp(x0, -sp.clip_r, sp.clip_r);
        eps = (xt - sp.sqrt_alpha_bar * x0) / sp.sqrt_one_minus_alpha_bar;
    }
    var mu: f32;
    if (sp.method == METHOD_DDPM) {
        if (sp.clip != 0u) {
            mu = sp.posterior_c1 * x0 + sp.posterior_c2 * xt;
        } else {
            mu = sp.inv_sqrt_alpha * (xt - sp.eps_coef * eps);
        }
    } else {
        mu = sp.sqrt_alpha_bar_prev * x0 + sp.dir_coef * eps;
    }
    var x_prev = mu;
    if (sp.sigma != 0.0) {
        let n = idx / chunk.dim;
        let d = idx % chunk.dim;
        let z = normal(vec2<u32>(chunk.seed_lo, chunk.seed_hi), STREAM_STEP, chunk.sample_base + n, sp.step, d);
        x_prev = mu + sp.sigma * z;
    }
    x[idx] = x_prev;
    if ((chunk.flags & FLAG_WRITE_X0) != 0u) {
        x0_out[idx] = x0;
    }

    if (sp.step < chunk.window) {
        let before = chunk.window - 1u - sp.step;
        let s_i = idx;
        let m_i = total + idx;
        let q_i = 2u * total + idx;
        if (before == 0u) {
            hal[s_i] = x0;
            hal[m_i] = 0.0;
            hal[q_i] = select(bitcast<f32>(POS_INF_BITS), 0.0, is_finite_f32(x0));
        } else {
            let q_old = hal[q_i];
            if (!is_finite_f32(q_old) || !is_finite_f32(x0)) {
                hal[q_i] = bitcast<f32>(POS_INF_BITS);
            } else {
                let inv_count = 1.0 / f32(before + 1u);
                let y = x0 - hal[s_i];
                let delta = y - hal[m_i];
                let mean = hal[m_i] + delta * inv_count;
                hal[m_i] = mean;
                let q = q_old + delta * (y - mean);
                hal[q_i] = select(bitcast<f32>(POS_INF_BITS), q, is_finite_f32(q));
            }
        }
    }
}
