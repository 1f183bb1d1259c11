//! Puts memory.x on the linker search path and rebuilds when the embedded model changes.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=MIRAGE_MODEL");
    if let Some(model) = env::var_os("MIRAGE_MODEL") {
        println!("cargo:rerun-if-changed={}", PathBuf::from(model).display());
    }
}
