#![no_main]
//! cargo-fuzz target `fixed_vs_f32`: see [`mirage_fuzz::fixed_vs_f32`].

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mirage_fuzz::fixed_vs_f32::run(data));
