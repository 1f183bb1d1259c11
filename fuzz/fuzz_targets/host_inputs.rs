#![no_main]
//! cargo-fuzz target `host_inputs`: see [`mirage_fuzz::host_inputs`].

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mirage_fuzz::host_inputs::run(data));
