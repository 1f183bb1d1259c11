// Tangent (forward-mode JVP) of one MLP layer over a chunk of tangent rows (papers.md §9 D12):
//   dst[r, o] (=|+=) Σ_k W[o, k] · pre'(primal[n, k], src[r, k]),   n = r mod primal_rows
// (tangent row r is direction p = r div primal_rows of sample n). No bias and no time bias: both
// are constant in x, so their tangent is 0. pre' is the tangent of linear.wgsl's prologue at the
// primal input row n:
//   LayerNorm:  m = mean x, s = 1/√(var x + eps), n_k = (x_k − m)·s, ṁ = mean ẋ,
//               c = mean_k n_k·(ẋ_k − ṁ),  ẏ_k = γ_k·((ẋ_k − ṁ) − n_k·c)·s
//   LeakyReLU:  ẏ ← ẏ where the primal pre-activation (γ n + β, as linear.wgsl forms it) is
//               > 0, slope·ẏ elsewhere.
// Same tiling as linear.wgsl: a 64×64 output tile per workgroup of 16×16 threads, K in chunks
// of 16; the row statistics (primal mean/rstd, tangent ṁ and c) of the tile's 64 rows first.

struct JvpLayer {
    rows: u32,
    fan_in: u32,
    fan_out: u32,
    w_off: u32,
    gamma_off: u32,
    beta_off: u32,
    primal_rows: u32,
    flags: u32,
}

const FLAG_LN: u32 = 1u;
const FLAG_LRELU: u32 = 2u;
const FLAG_ACCUMULATE: u32 = 16u;

const LN_EPS: f32 = 1e-5;
const SLOPE: f32 = 0.02;

@group(0) @binding(0) var<uniform> layer: JvpLayer;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> primal: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

var<workgroup> row_mean: array<f32, 64>;
var<workgroup> row_rstd: array<f32, 64>;
var<workgroup> row_tmean: array<f32, 64>;
var<workgroup> row_tcov: array<f32, 64>;

fn tangent_prologue(t: f32, k: u32, r: u32, row: u32) -> f32 {
    var y = t;
    var pre = primal[(row % layer.primal_rows) * layer.fan_in + k];
    if ((layer.flags & FLAG_LN) != 0u) {
        let normed = (pre - row_mean[r]) * row_rstd[r];
        let g = params[layer.gamma_off + k];
        y = g * ((t - row_tmean[r]) - normed * row_tcov[r]) * row_rstd[r];
        pre = (pre - row_mean[r]) * row_rstd[r] * g + params[layer.beta_off + k];
    }
    if ((layer.flags & FLAG_LRELU) != 0u) {
        y = select(y * SLOPE, y, pre > 0.0);
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
            var tmean = 0.0;
            var tcov = 0.0;
            if (row < layer.rows) {
                let base = (row % layer.primal_rows) * k_len;
                let tbase = row * k_len;
                var sum = 0.0;
                var tsum = 0.0;
                for (var k = 0u; k < k_len; k = k + 1u) {
                    sum = sum + primal[base + k];
                    tsum = tsum + src[tbase + k];
                }
                mean = sum / f32(k_len);
                tmean = tsum / f32(k_len);
                var sq = 0.0;
                for (var k = 0u; k < k_len; k = k + 1u) {
                    let d = primal[base + k] - mean;
                    sq = sq + d * d;
                }
                rstd = 1.0 / sqrt(sq / f32(k_len) + LN_EPS);
                var acc = 0.0;
                for (var k = 0u; k < k_len; k = k + 1u) {
                    acc = acc + (primal[base + k] - mean) * rstd * (src[tbase + k] - tmean);
                }
                tcov = acc / f32(k_len);
            }
            row_mean[tid] = mean;
            row_rstd[tid] = rstd;
            row_tmean[tid] = tmean;
            row_tcov[tid] = tcov;
        }
        workgroupBarrier();
    }

    var acc: array<f32, 16>;
    for (var q = 0u; q < 16u; q = q + 1u) {
        acc[q] = 0.0;
    }

    for (var k0 = 0u; k0 < k_len; k0 = k0 + KC) {
        for (var q = 0u; q < 4u; q = q + 1u) {
            let e = tid + q * 256u;
            let r = e / KC;
            let kk = e % KC;
            let row = row0 + r;
            let k = k0 + kk;
            var v = 0.0;
            if (row < layer.rows && k < k_len) {
                v = tangent_prologue(src[row * k_len + k], k, r, row);
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
            let idx = row * layer.fan_out + col;
            if ((layer.flags & FLAG_ACCUMULATE) != 0u) {
                dst[idx] = dst[idx] + acc[i * 4u + j];
            } else {
                dst[idx] = acc[i * 4u + j];
            }
        }
    }
}
