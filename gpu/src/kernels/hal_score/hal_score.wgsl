// Hal score per sample (core detector/hal.rs): (1/D) Σ_d M2_d / K_observed, +∞ if any M2 is
// not finite. The sum runs in f32 here (core sums in f64): relative difference ≤ D·2^-24.

struct Chunk {
    rows: u32,
    dim: u32,
    sample_base: u32,
    seed_lo: u32,
    seed_hi: u32,
    window: u32,
    flags: u32,
    row_stride: u32,
}

@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read> hal: array<f32>;
@group(0) @binding(2) var<storage, read_write> scores: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.y * chunk.row_stride + gid.x;
    if (n >= chunk.rows) {
        return;
    }
    let total = chunk.rows * chunk.dim;
    var sum = 0.0;
    var finite = true;
    for (var d = 0u; d < chunk.dim; d = d + 1u) {
        let q = hal[2u * total + n * chunk.dim + d];
        if ((bitcast<u32>(q) & 0x7F800000u) == 0x7F800000u) {
            finite = false;
        }
        sum = sum + q;
    }
    let denom = f32(chunk.window) * f32(chunk.dim);
    scores[n] = select(bitcast<f32>(0x7F800000u), sum / denom, finite);
}
