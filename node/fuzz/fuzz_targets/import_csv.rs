//! Fuzz target: the CSV import reader must never panic, end, and resume from its cursors (at most 16, spread evenly) to the same items.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    crossmatch_node::test_support::fuzz::import_csv(bytes);
});
