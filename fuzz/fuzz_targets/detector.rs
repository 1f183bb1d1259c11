#![no_main]
//! cargo-fuzz target `detector`: see [`mirage_fuzz::detector`].

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mirage_fuzz::detector::run(data));
