#![no_main]
//! cargo-fuzz target `sampler_step`: see [`mirage_fuzz::sampler_step`].

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mirage_fuzz::sampler_step::run(data));
