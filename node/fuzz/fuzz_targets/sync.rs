//! Fuzz target: the sync codec (requests and answers, with the size limits) must never panic, and what it reads it writes back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    crossmatch_node::test_support::fuzz::sync(bytes);
});
