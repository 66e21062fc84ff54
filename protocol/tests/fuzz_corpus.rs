//! Replays the cargo-fuzz corpus of the wire decoder on stable Rust, so every input the fuzzer
//! ever kept (crashes fixed included) stays a regression test.

use crossmatch_protocol::{Entry, FederationId, PublicKey, verify_batch, verify_manifest};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/wire");

#[test]
fn wire_corpus_never_panics_and_seeds_still_verify() {
    let origin: PublicKey =
        "2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12".parse().unwrap();
    let federation = FederationId([0xfe; 32]);
    let roster = [origin];
    let mut inputs = 0;
    let mut verified = 0;
    for file in std::fs::read_dir(CORPUS).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        inputs += 1;
        if let Ok(batch) = verify_batch(&bytes, &federation, &roster[..]) {
            verified += 1;
            assert_eq!(batch.to_wire(), bytes, "a verified batch re-encodes to its wire form");
            for _ in batch.entries() {}
        }
        let _ = verify_manifest(&bytes, &federation, &roster[..]);
        let _ = Entry::decode(&bytes, 0);
    }
    assert!(inputs >= 13, "corpus has {inputs} inputs");
    // The six valid batch vectors are among the seeds.
    assert!(verified >= 6, "only {verified} corpus inputs verify");
}
