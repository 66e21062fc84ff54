//! Fuzz target: the roster file reader (TOML) must never panic, and what it parses renders back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    crossmatch_node::test_support::fuzz::roster_file(bytes);
});
