//! Fuzz target: fork evidence must split and verify without panicking, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    crossmatch_protocol_fuzz::fork(bytes);
});
