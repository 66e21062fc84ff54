//! Fork evidence: both kinds of fork are recognised, signatures are checked, and pairs that do
//! not contradict each other, or are not a pair at all, are refused.

use crossmatch_protocol::{
    Add, BatchHash, BatchPosition, Entry, Evaluation, FederationId, ForkError, Handling, Kind, Op,
    PublicKey, SigningKey, Token, encode_fork_evidence, sign_batch, verify_fork_evidence,
};
use proptest::prelude::*;

const FEDERATION: FederationId = FederationId([7; 32]);

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32])
}

fn roster() -> Vec<PublicKey> {
    vec![key(1).public_key(), key(2).public_key()]
}

fn entry(token: u8) -> Entry {
    Entry {
        salt: [token; 16],
        op: Op::Add(Add {
            token: Token([token; 32]),
            kind: Kind::Account,
            category: "propaganda".into(),
            handling: Handling::H1,
            evaluation: Evaluation::new('B', 2).unwrap(),
            activity_per_day: None,
            expires_at_ms: 2_000_000_000_000,
            algorithmic: false,
        }),
    }
}

/// A manifest of `signer`'s feed at (generation, seq) after `prev`, holding one entry.
fn manifest(
    signer: u8,
    generation: u32,
    seq: u64,
    prev: BatchHash,
    token: u8,
) -> (Vec<u8>, BatchHash) {
    let position =
        BatchPosition { generation, seq, prev, epoch: 1, created_at_ms: 1_800_000_000_000 };
    let batch = sign_batch(&key(signer), &FEDERATION, position, &[entry(token)]).unwrap();
    (batch.manifest_bytes().to_vec(), batch.hash())
}

#[test]
fn two_batches_at_one_seq_are_a_fork() {
    let (one, one_hash) = manifest(1, 1, 3, BatchHash([9; 32]), 1);
    let (two, two_hash) = manifest(1, 1, 3, BatchHash([9; 32]), 2);
    let fork = verify_fork_evidence(&encode_fork_evidence(&one, &two), &FEDERATION, &roster()[..])
        .unwrap();
    assert_eq!((fork.origin, fork.generation, fork.seq), (key(1).public_key(), 1, 3));
    assert_eq!((fork.first, fork.second), (one_hash, two_hash));
}

#[test]
fn a_successor_of_another_batch_is_a_fork_at_the_first_seq() {
    let (one, _) = manifest(1, 2, 5, BatchHash([9; 32]), 1);
    let (two, _) = manifest(1, 2, 6, BatchHash([8; 32]), 2);
    let fork = verify_fork_evidence(&encode_fork_evidence(&one, &two), &FEDERATION, &roster()[..])
        .unwrap();
    assert_eq!((fork.generation, fork.seq), (2, 5));
}

#[test]
fn pairs_that_agree_are_not_forks() {
    let (one, one_hash) = manifest(1, 1, 3, BatchHash([9; 32]), 1);
    let (successor, _) = manifest(1, 1, 4, one_hash, 2);
    let (later, _) = manifest(1, 1, 5, BatchHash([8; 32]), 2);
    let (other_generation, _) = manifest(1, 2, 3, BatchHash([9; 32]), 2);
    let (other_origin, _) = manifest(2, 1, 3, BatchHash([9; 32]), 2);
    for (what, second) in [
        ("the same batch twice", &one),
        ("a true successor", &successor),
        ("a batch two seqs on", &later),
        ("another generation", &other_generation),
        ("another origin", &other_origin),
    ] {
        let result =
            verify_fork_evidence(&encode_fork_evidence(&one, second), &FEDERATION, &roster()[..]);
        assert_eq!(result, Err(ForkError::NotAFork), "{what}");
    }
}

#[test]
fn signatures_and_form_are_checked() {
    let (one, _) = manifest(1, 1, 3, BatchHash([9; 32]), 1);
    let (two, _) = manifest(1, 1, 3, BatchHash([9; 32]), 2);
    // An origin outside the roster.
    let outsider = [key(2).public_key()];
    assert!(matches!(
        verify_fork_evidence(&encode_fork_evidence(&one, &two), &FEDERATION, &outsider[..]),
        Err(ForkError::Manifest(_))
    ));
    // Another federation.
    assert!(matches!(
        verify_fork_evidence(
            &encode_fork_evidence(&one, &two),
            &FederationId([8; 32]),
            &roster()[..]
        ),
        Err(ForkError::Manifest(_))
    ));
    // A flipped signature byte.
    let mut forged = two.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        verify_fork_evidence(&encode_fork_evidence(&one, &forged), &FEDERATION, &roster()[..]),
        Err(ForkError::Manifest(_))
    ));
    // Not a pair.
    let mut three = encode_fork_evidence(&one, &two);
    three[0] = 0x83;
    assert_eq!(
        verify_fork_evidence(&three, &FEDERATION, &roster()[..]),
        Err(ForkError::BadWireForm)
    );
    let huge = vec![0u8; crossmatch_protocol::MAX_FORK_EVIDENCE_BYTES + 1];
    assert_eq!(verify_fork_evidence(&huge, &FEDERATION, &roster()[..]), Err(ForkError::TooLarge));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = verify_fork_evidence(&bytes, &FEDERATION, &roster()[..]);
    }
}
