#![no_main]
//! cargo-fuzz target `model_file`: see [`mirage_fuzz::model_file`].

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mirage_fuzz::model_file::run(data));
