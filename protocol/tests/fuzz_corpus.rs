//! Replays the cargo-fuzz corpora of the protocol's targets (`protocol/fuzz`) on stable Rust, so
//! every input the fuzzer ever kept (crashes fixed included) stays a regression test. The
//! targets' bodies are the fuzz package's own file, included here, so the replay runs exactly
//! what the fuzzer ran.
//!
//! The seeds are made here by the real encoders: each must be accepted by its target. With
//! `CROSSMATCH_WRITE_FUZZ_SEEDS=1` the seeds test also writes them into the corpora
//! (docs/FUZZING.md).

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz_bodies;

use std::path::{Path, PathBuf};

use crossmatch_protocol::{
    Add, BatchHash, BatchPosition, Entry, Evaluation, FederationSecret, FinalHead, Handling,
    KeyChange, Kind, MemberRecord, Op, Token, encode_fork_evidence, encode_roster_announcement,
    encode_roster_conflict_announcement, seal_secret, sign_batch, verify_conflict,
};
use fuzz_bodies::{FEDERATION, IDS, founding_body, key, signed_by_all};

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");

/// A target's body: whether it accepted the input.
type Body = fn(&[u8]) -> bool;

/// Every target with its body and its corpus's floor: at least `inputs` files, of which at
/// least `accepted` are accepted (the valid seeds among them).
const TARGETS: [(&str, Body, usize, usize); 3] = [
    ("wire", fuzz_bodies::wire, 13, 6),
    ("fork", fuzz_bodies::fork, 4, 2),
    ("roster", fuzz_bodies::roster, 8, 6),
];

fn corpus(target: &str) -> PathBuf {
    Path::new(FUZZ_DIR).join("corpus").join(target)
}

/// Runs `body` on every file of the target's corpus: (inputs, accepted).
fn replay(target: &str, body: Body) -> (usize, usize) {
    let dir = corpus(target);
    let files =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut inputs = 0;
    let mut accepted = 0;
    for file in files {
        let path = file.expect("a corpus entry").path();
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        inputs += 1;
        accepted += usize::from(body(&bytes));
    }
    (inputs, accepted)
}

fn assert_replays(target: &str) {
    let (_, body, floor, accepted_floor) =
        TARGETS.into_iter().find(|(name, ..)| *name == target).expect("a target");
    let (inputs, accepted) = replay(target, body);
    assert!(inputs >= floor, "the {target} corpus has {inputs} inputs, fewer than {floor}");
    assert!(
        accepted >= accepted_floor,
        "only {accepted} of the {target} corpus's {inputs} inputs are accepted (at least \
         {accepted_floor} valid seeds are in it)"
    );
}

#[test]
fn wire_corpus_never_panics_and_seeds_still_verify() {
    assert_replays("wire");
}

#[test]
fn fork_corpus_never_panics_and_seeds_still_verify() {
    assert_replays("fork");
}

#[test]
fn roster_corpus_never_panics_and_seeds_still_verify() {
    assert_replays("roster");
}

/// Every `fuzz_targets/*.rs` has a corpus, which this file replays.
#[test]
fn every_fuzz_target_has_a_corpus_replayed_here() {
    let dir = Path::new(FUZZ_DIR).join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the fuzz targets are listed")
        .map(|file| file.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| path.file_stem().expect("a name").to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut replayed: Vec<String> = TARGETS.iter().map(|(name, ..)| (*name).to_owned()).collect();
    replayed.sort();
    assert_eq!(names, replayed, "the fuzz targets and the replayed corpora differ");
    for name in names {
        let files = std::fs::read_dir(corpus(&name)).map(Iterator::count).unwrap_or(0);
        assert!(files > 0, "fuzz target {name} has no corpus");
    }
}

fn entry(token: u8) -> Entry {
    Entry {
        salt: [token; 16],
        op: Op::Add(Add {
            token: Token([token; 32]),
            kind: Kind::Account,
            category: "propaganda".into(),
            handling: Handling::H1,
            evaluation: Evaluation::new('B', 2).expect("B2"),
            activity_per_day: None,
            expires_at_ms: 2_000_000_000_000,
            algorithmic: false,
        }),
    }
}

/// A manifest of key `signer`'s feed at (generation 1, `seq`) after `prev`, holding one entry.
fn manifest(signer: u8, seq: u64, prev: BatchHash, token: u8) -> (Vec<u8>, BatchHash) {
    let position =
        BatchPosition { generation: 1, seq, prev, epoch: 1, created_at_ms: 1_800_000_000_000 };
    let batch = sign_batch(&key(signer), &FEDERATION, position, &[entry(token)]).expect("signs");
    (batch.manifest_bytes().to_vec(), batch.hash())
}

/// Fork evidence of both kinds (accepted), and a pair that is no fork and a lone manifest.
fn fork_seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (one, one_hash) = manifest(1, 3, BatchHash([9; 32]), 1);
    let (two, _) = manifest(1, 3, BatchHash([9; 32]), 2);
    let (bad_successor, _) = manifest(2, 4, BatchHash([8; 32]), 3);
    let (first, _) = manifest(2, 3, BatchHash([9; 32]), 4);
    let (good_successor, _) = manifest(1, 4, one_hash, 5);
    let accepted =
        vec![encode_fork_evidence(&one, &two), encode_fork_evidence(&first, &bad_successor)];
    let refused = vec![encode_fork_evidence(&one, &good_successor), one];
    (accepted, refused)
}

/// A founding roster, a successor, a conflict, a member record, a key change, a sealed secret
/// and both announcements (all accepted); an expired-looking body signed by one member only.
fn roster_seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let founding = signed_by_all(founding_body());
    let current = crossmatch_protocol::verify_founding(&founding).expect("founds");
    let successor = |quota| {
        let mut body = founding_body();
        body.version = 2;
        body.quota_entries_per_day = quota;
        signed_by_all(body)
    };
    let (a, b) = (successor(100), successor(200));
    let conflict = verify_conflict(&current, &a, &b).expect("a conflict");
    let record = MemberRecord {
        federation_id: FEDERATION,
        member: IDS[0].to_owned(),
        seq: 1,
        addresses: vec!["/dns4/de.example/tcp/4001".into()],
        contact: "desk@de.example".into(),
    }
    .sign(&key(1))
    .expect("a record signs");
    let head = FinalHead { generation: 1, seq: 2, hash: BatchHash([3; 32]) };
    let change = KeyChange::sign(&FEDERATION, IDS[0], &key(1), &key(51), Some(head));
    let sealed = seal_secret(
        &FederationSecret::from_bytes([5; 32]),
        &FEDERATION,
        1,
        IDS[0],
        &key(1).public_key().to_x25519(),
        &[42; 32],
    )
    .expect("seals");
    let accepted = vec![
        founding.to_wire(),
        a.to_wire(),
        conflict.to_wire(),
        record.to_wire(),
        change.to_wire(),
        sealed.to_wire(),
        encode_roster_announcement(&[1; 32], 2, &[2; 32]),
        encode_roster_conflict_announcement(&[1; 32], 2, &[[2; 32], [3; 32]]),
    ];
    let mut lone = founding_body();
    lone.version = 2;
    let mut one_signature = signed_by_all(lone);
    one_signature.signatures.truncate(1);
    (accepted, vec![one_signature.to_wire()])
}

/// The seeds are what their targets accept (and refuse); with `CROSSMATCH_WRITE_FUZZ_SEEDS=1`
/// they are written into the corpora as `seed-<n>`.
#[test]
fn seeds_made_by_the_encoders_are_accepted_and_edge_cases_refused() {
    let write = std::env::var_os("CROSSMATCH_WRITE_FUZZ_SEEDS").is_some();
    let seeds = [
        ("fork", fuzz_bodies::fork as Body, fork_seeds()),
        ("roster", fuzz_bodies::roster, roster_seeds()),
    ];
    for (target, body, (accepted, refused)) in seeds {
        for (n, seed) in accepted.iter().enumerate() {
            assert!(body(seed), "{target} seed {n} is accepted");
        }
        for (n, seed) in refused.iter().enumerate() {
            assert!(!body(seed), "{target} edge case {n} is refused");
        }
        if write {
            let dir = corpus(target);
            std::fs::create_dir_all(&dir).expect("the corpus directory is made");
            for (n, seed) in accepted.iter().chain(&refused).enumerate() {
                std::fs::write(dir.join(format!("seed-{n}")), seed).expect("a seed is written");
            }
        }
    }
}
