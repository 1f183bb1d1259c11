// Fills out[n * dim + d] = normal(seed, stream, sample_base + n, step, d) for n < rows
// (x_T when stream = STREAM_INIT, step = 0). Prepended with common/normal.wgsl.

struct NoiseParams {
    rows: u32,
    dim: u32,
    sample_base: u32,
    stream: u32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    row_stride: u32, // threads per dispatch row: workgroups_x * 256
}

@group(0) @binding(0) var<uniform> np: NoiseParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * np.row_stride + gid.x;
    if (idx >= np.rows * np.dim) {
        return;
    }
    let n = idx / np.dim;
    let d = idx % np.dim;
    out[idx] = normal(vec2<u32>(np.seed_lo, np.seed_hi), np.stream, np.sample_base + n, np.step, d);
}
