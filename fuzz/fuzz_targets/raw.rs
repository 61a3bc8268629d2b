//! Fuzz target: arbitrary bytes (after three config bytes) through both kinds of segmenter, invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = hlss::segmenter::check::raw_case(data) {
        panic!("{e}");
    }
});
