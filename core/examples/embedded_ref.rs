//! Host reference for the embedded example: runs `core/embedded/src/run.rs` (the same file
//! the Cortex-M4 binary runs) on a model file and prints the same lines.
//!
//! `cargo run -p mirage-core --example embedded_ref -- MODEL.mrg N`

#[path = "../embedded/src/run.rs"]
mod run;

fn fail(msg: &str, code: i32) -> ! {
    eprintln!("{msg}");
    std::process::exit(code);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next()) else {
        fail("usage: embedded_ref MODEL.mrg SAMPLES", 2);
    };
    let Ok(n) = n.parse::<u32>() else {
        fail(
            &format!("SAMPLES must be a non-negative integer, got {n:?}"),
            2,
        );
    };
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| fail(&format!("cannot read {path}: {e}"), 1));
    // The parser needs 8-byte alignment: copy into u64 storage.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    let Some(aligned) = bytemuck::cast_slice_mut::<u64, u8>(&mut words).get_mut(..bytes.len())
    else {
        fail("internal: aligned copy", 1);
    };
    aligned.copy_from_slice(&bytes);
    let mut out = String::new();
    let kinds = run::Kinds {
        f32: true,
        fixed: true,
    };
    let result = run::run(aligned, n, kinds, || None, &mut out);
    print!("{out}");
    if let Err(e) = result {
        fail(&format!("error: {e}"), 1);
    }
}
