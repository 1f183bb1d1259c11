// One linear layer of the residual MLP over a chunk of samples (papers.md §1.2):
//   dst[n, o] (=|+=) Σ_k W[o, k] · pre(src[n, k]) + bias[o] + step_bias[i, o]
// pre = identity, or LayerNorm (eps 1e-5, biased variance, affine γ/β) optionally followed by
// LeakyReLU(0.02). W is row-major [out][in] inside the flat parameter buffer.
// Tiled: a 64×64 output tile per workgroup of 16×16 threads, 4×4 outputs per thread, K in
// chunks of 16 through workgroup memory. LayerNorm statistics of the tile's 64 rows are
// computed first (two passes, sequential, like the CPU).

struct Layer {
    rows: u32,
    fan_in: u32,
    fan_out: u32,
    w_off: u32,
    gamma_off: u32,
    beta_off: u32,
    bias_off: u32,
    flags: u32,
}

struct StepParams {
    step: u32,
}

const FLAG_LN: u32 = 1u;
const FLAG_LRELU: u32 = 2u;
const FLAG_BIAS: u32 = 4u;
const FLAG_STEP_BIAS: u32 = 8u;
const FLAG_ACCUMULATE: u32 = 16u;

const LN_EPS: f32 = 1e-5;
const SLOPE: f32 = 0.02;

@group(0) @binding(0) var<uniform> layer: Layer;
@group(0) @binding(1) var<uniform> step_params: StepParams;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> step_bias: array<f32>;
@group(0) @binding(4) var<storage, read> src: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;

var<workgroup> row_mean: array<f32, 64>;
var<workgroup> row_rstd: array<f32, 64>;

fn prologue(v: f32, k: u32, r: u32) -> f32 {
    var y = v;
    if ((layer.flags & FLAG_LN) != 0u) {
        y = (y - row_mean[r]) * row_rstd[r] * params[layer.gamma_off + k] + params[layer.beta_off + k];
    }
    if ((layer.flags & FLAG_LRELU) != 0u) {
        y = select(y * SLOPE, y, y > 0.0);
    }
    return y;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tid = lid.y * 16u + lid.x;
    let k_len = layer.fan_in;

    if ((layer.flags & FLAG_LN) != 0u) {
        if (tid < TILE) {
            let row = row0 + tid;
            var mean = 0.0;
            var rstd = 0.0;
            if (row < layer.rows) {
                let base = row * k_len;
                var sum = 0.0;
                for (var k = 0u; k < k_len; k = k + 1u) {
                    sum = sum + src[base + k];
                }
                mean = sum / f32(k_len);
                var sq = 0.0;
                for (var k = 0u; k < k_len; k = k + 1u) {
                    let d = src[base + k] - mean;
                    sq = sq + d * d;
                }
                rstd = 1.0 / sqrt(sq / f32(k_len) + LN_EPS);
            }
            row_mean[tid] = mean;
            row_rstd[tid] = rstd;
        }
        workgroupBarrier();
    }

    var acc: array<f32, 16>;
    for (var q = 0u; q < 16u; q = q + 1u) {
        acc[q] = 0.0;
    }

    for (var k0 = 0u; k0 < k_len; k0 = k0 + KC) {
        // a_tile[r][kk] and b_tile[kk][c]: 1024 elements each, 4 per thread.
        for (var q = 0u; q < 4u; q = q + 1u) {
            let e = tid + q * 256u;
            let r = e / KC;
            let kk = e % KC;
            let row = row0 + r;
            let k = k0 + kk;
            var v = 0.0;
            if (row < layer.rows && k < k_len) {
                v = prologue(src[row * k_len + k], k, r);
            }
            a_tile[e] = v;
            load_weight(e, col0, k0, k_len);
        }
        workgroupBarrier();
        mac_tiles(lid, &acc);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + lid.y + i * 16u;
        if (row >= layer.rows) {
            continue;
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + lid.x + j * 16u;
            if (col >= layer.fan_out) {
                continue;
            }
            var v = acc[i * 4u + j];
            if ((layer.flags & FLAG_BIAS) != 0u) {
                v = v + params[layer.bias_off + col];
            }
            if ((layer.flags & FLAG_STEP_BIAS) != 0u) {
                v = v + step_bias[step_params.step * layer.fan_out + col];
            }
            let idx = row * layer.fan_out + col;
            if ((layer.flags & FLAG_ACCUMULATE) != 0u) {
                dst[idx] = dst[idx] + v;
            } else {
                dst[idx] = v;
            }
        }
    }
}
