// Posterior-variance score of one step per sample (core detector/posterior_variance.rs,
// papers.md §9 D11–D14), from the directions u (probe.wgsl) and the network tangents ḟ = J_f·u
// (linear_jvp.wgsl), rows r = p·rows + n:
//   ẋ0 = ḟ (x0-model);  inv_a·u − b_over_a·ḟ (ε);  inv_a·u − b_over_a·(a ḟ + b u) (v)
//   tr = Σ_p Σ_k u_k ẋ0_k,  fr = Σ_p Σ_k ẋ0_k²   (÷ passes for Hutchinson)
//   acc_trace[n] += factor·tr,  acc_frob[n] += factor·√fr    (factor = 1, or (1−ᾱ)/√ᾱ for Cov)
// A sample whose x_t or network output is not finite, or whose score is not, gets +∞ in both
// (and keeps it). Sums run in f32 (core: f64).

const FLAG_COVARIANCE: u32 = 2u;

@group(0) @binding(0) var<uniform> pv: PostVar;
@group(0) @binding(1) var<uniform> sp: StepParams;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> model_out: array<f32>;
@group(0) @binding(4) var<storage, read> dirs: array<f32>;
@group(0) @binding(5) var<storage, read> tangents: array<f32>;
@group(0) @binding(6) var<storage, read_write> acc: array<f32>; // planes: trace, frobenius

fn x0_tangent(u: f32, f_dot: f32) -> f32 {
    if (sp.prediction == PRED_EPSILON) {
        return sp.inv_sqrt_alpha_bar * u - sp.sqrt_recip_alpha_bar_minus_one * f_dot;
    }
    if (sp.prediction == PRED_SAMPLE) {
        return f_dot;
    }
    let eps_dot = sp.sqrt_alpha_bar * f_dot + sp.sqrt_one_minus_alpha_bar * u;
    return sp.inv_sqrt_alpha_bar * u - sp.sqrt_recip_alpha_bar_minus_one * eps_dot;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.y * pv.row_stride + gid.x;
    if (n >= pv.rows) {
        return;
    }
    var bad = false;
    for (var k = 0u; k < pv.dim; k = k + 1u) {
        let i = n * pv.dim + k;
        bad = bad || !is_finite_f32(x[i]) || !is_finite_f32(model_out[i]);
    }
    var tr = 0.0;
    var fr = 0.0;
    for (var p = 0u; p < pv.passes; p = p + 1u) {
        let base = (p * pv.rows + n) * pv.dim;
        for (var k = 0u; k < pv.dim; k = k + 1u) {
            let u = dirs[base + k];
            let x0_dot = x0_tangent(u, tangents[base + k]);
            tr = tr + u * x0_dot;
            fr = fr + x0_dot * x0_dot;
        }
    }
    if ((pv.flags & FLAG_HUTCHINSON) != 0u) {
        tr = tr / f32(pv.passes);
        fr = fr / f32(pv.passes);
    }
    let factor = select(1.0, sp.cov_factor, (pv.flags & FLAG_COVARIANCE) != 0u);
    let tr_score = factor * tr;
    let fr_score = factor * sqrt(fr);
    let inf = bitcast<f32>(POS_INF_BITS);
    let t_new = acc[n] + tr_score;
    let f_new = acc[pv.rows + n] + fr_score;
    let ok = !bad && is_finite_f32(tr_score) && is_finite_f32(fr_score) && is_finite_f32(t_new) && is_finite_f32(f_new);
    acc[n] = select(inf, t_new, ok);
    acc[pv.rows + n] = select(inf, f_new, ok);
}
