//! Fuzz target: the batch wire decoder and verifier must never panic, whatever the bytes.
#![no_main]

use crossmatch_protocol::{Entry, FederationId, PublicKey, verify_batch, verify_manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // The key the corpus seeds (the batch test vectors) were signed with.
    let origin: PublicKey =
        "2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12".parse().unwrap();
    let federation = FederationId([0xfe; 32]);
    let roster = [origin];
    if let Ok(batch) = verify_batch(bytes, &federation, &roster[..]) {
        for _ in batch.entries() {}
        let _ = batch.to_wire();
    }
    let _ = verify_manifest(bytes, &federation, &roster[..]);
    let _ = Entry::decode(bytes, 0);
});
