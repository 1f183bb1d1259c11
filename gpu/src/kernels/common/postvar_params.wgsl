// The posterior-variance uniform shared by `probe` and `postvar` (mirrors `PostVarParams` in
// gpu/src/postvar.rs).
struct PostVar {
    rows: u32,
    dim: u32,
    sample_base: u32,
    seed_lo: u32,
    seed_hi: u32,
    passes: u32,
    flags: u32,
    row_stride: u32,
}

const FLAG_HUTCHINSON: u32 = 1u;
