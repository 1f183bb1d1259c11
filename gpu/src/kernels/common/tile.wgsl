// The GEMM tile shared by `linear` and `linear_jvp`: a 64×64 output tile per workgroup of
// 16×16 threads, 4×4 outputs per thread, K in chunks of KC = 16 through workgroup memory.
// The including kernel declares `layer` (rows, fan_out, w_off) and `params`, and fills
// a_tile itself (its prologue differs); the weight tile and the multiply are here.

const TILE: u32 = 64u;
const KC: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [64 rows][16 k]
var<workgroup> b_tile: array<f32, 1024>; // [16 k][64 cols]

// Loads element e (0 … 1023) of the weight tile b_tile[kb][c] = W[col0 + c, k0 + kb].
fn load_weight(e: u32, col0: u32, k0: u32, k_len: u32) {
    let c = e % TILE;
    let kb = e / TILE;
    let col = col0 + c;
    let kw = k0 + kb;
    var w = 0.0;
    if (col < layer.fan_out && kw < k_len) {
        w = params[layer.w_off + col * k_len + kw];
    }
    b_tile[kb * TILE + c] = w;
}

// acc[i][j] += Σ_kk a_tile[lid.y + 16i][kk] · b_tile[kk][lid.x + 16j].
fn mac_tiles(lid: vec3<u32>, acc: ptr<function, array<f32, 16>>) {
    for (var kk = 0u; kk < KC; kk = kk + 1u) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var q = 0u; q < 4u; q = q + 1u) {
            a[q] = a_tile[(lid.y + q * 16u) * KC + kk];
            b[q] = b_tile[kk * TILE + lid.x + q * 16u];
        }
        for (var i = 0u; i < 4u; i = i + 1u) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                (*acc)[i * 4u + j] = (*acc)[i * 4u + j] + a[i] * b[j];
            }
        }
    }
}
