#![no_main]
//! cargo-fuzz target `quantizer`: see [`mirage_fuzz::quantizer`].

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mirage_fuzz::quantizer::run(data));
