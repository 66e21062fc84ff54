//! Fuzz target: the batch wire decoder and verifier must never panic, whatever the bytes, and a
//! batch that verifies re-encodes to its wire form.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    crossmatch_protocol_fuzz::wire(bytes);
});
