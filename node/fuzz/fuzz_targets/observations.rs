//! Fuzz target: the hunt's observation lines (a file, and the API's chunked body) must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    crossmatch_node::test_support::fuzz::observations(bytes);
});
