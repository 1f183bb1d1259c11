//! Puts memory.x on the linker search path, rebuilds when the embedded model changes, and
//! passes the model's kind code to main.rs (`MIRAGE_MODEL_KIND`).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=MIRAGE_MODEL");
    if let Some(model) = env::var_os("MIRAGE_MODEL") {
        println!("cargo:rerun-if-changed={}", PathBuf::from(&model).display());
        // The kind code (u32 LE at offset 12), so main.rs links only that network's code.
        let bytes = fs::read(&model).expect("read MIRAGE_MODEL");
        let kind = bytes
            .get(12..16)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .expect("MIRAGE_MODEL shorter than a model header");
        println!("cargo:rustc-env=MIRAGE_MODEL_KIND={kind}");
    }
}
