//! Fuzz target: the roster's wire forms (signed roster, conflict, member record, key change,
//! sealed secret, announcements) must decode and verify without panicking, and re-encode to
//! themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    crossmatch_protocol_fuzz::roster(bytes);
});
