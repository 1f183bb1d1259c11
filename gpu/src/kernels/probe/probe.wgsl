// The tangent directions of the posterior-variance score (core detector/posterior_variance.rs,
// fill_direction), one row per (direction p, sample n), row r = p·rows + n:
//   exact:       u = e_p                                   (p < dim)
//   Hutchinson:  u_k = rademacher(seed, sample_base + n, p, k): −1 where bit 31 of word k mod 4
//                of philox([k/4, p, sample, STREAM_PROBE], [seed lo, seed hi]) is set, else +1
// (core noise.rs). Prepended with common/normal.wgsl for philox4x32_10.

const STREAM_PROBE: u32 = 2u;

@group(0) @binding(0) var<uniform> pv: PostVar;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * pv.row_stride + gid.x;
    if (idx >= pv.rows * pv.passes * pv.dim) {
        return;
    }
    let r = idx / pv.dim;
    let k = idx % pv.dim;
    let p = r / pv.rows;
    let n = r % pv.rows;
    var u = select(0.0, 1.0, k == p);
    if ((pv.flags & FLAG_HUTCHINSON) != 0u) {
        let w = philox4x32_10(vec4<u32>(k / 4u, p, pv.sample_base + n, STREAM_PROBE), vec2<u32>(pv.seed_lo, pv.seed_hi));
        u = select(1.0, -1.0, (w[k % 4u] >> 31u) == 1u);
    }
    out[idx] = u;
}
