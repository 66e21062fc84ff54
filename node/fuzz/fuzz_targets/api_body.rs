//! Fuzz target: the API's request bodies, through their handlers' checks, must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    crossmatch_node::test_support::fuzz::api_body(bytes);
});
