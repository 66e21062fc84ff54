//! What hostile traffic costs the engine: a fork reads only the frozen chain's entries, and
//! batches that would be ignored are refused before any signature is verified.

use std::sync::Arc;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::{Engine, EngineConfig, IngestOutcome};
use crossmatch_node::store::{RemoteAdd, keys};
use crossmatch_node::test_support::{FEDERATION, ManualClock, T0, TempDir, add_entry, key};
use crossmatch_protocol::{
    BatchHash, BatchPosition, Evaluation, Handling, Kind, Token, VerifiedBatch, sign_batch,
};

fn engine(config: EngineConfig, name: &str) -> (Engine, TempDir) {
    let dir = TempDir::new(&format!("costs-{name}"));
    let engine = Engine::open(dir.path(), config, Arc::new(ManualClock::new(T0))).unwrap();
    (engine, dir)
}

/// A batch of `signer`'s feed at (generation, seq) after `prev`, holding adds of `tokens`.
fn batch(signer: u8, generation: u32, seq: u64, prev: BatchHash, tokens: &[u8]) -> VerifiedBatch {
    let position = BatchPosition { generation, seq, prev, epoch: 1, created_at_ms: T0 };
    let entries: Vec<_> = tokens.iter().map(|&t| add_entry(t, T0 + DAY_MS)).collect();
    sign_batch(&key(signer), &FEDERATION, position, &entries).unwrap()
}

/// A remote add as ingest stores it, at (generation, seq, index).
fn remote_add(generation: u32, seq: u64, index: u32) -> RemoteAdd {
    RemoteAdd {
        generation,
        seq,
        index,
        epoch: 1,
        kind: Kind::Account,
        category: "terrorism/propaganda".into(),
        handling: Handling::H0,
        evaluation: Evaluation::new('B', 2).unwrap(),
        activity_per_day: None,
        expires_at_ms: T0 + DAY_MS,
        created_at_ms: T0,
        received_at_ms: T0,
        status: None,
        algorithmic: false,
        touched_at_ms: T0,
    }
}

#[test]
fn a_fork_reads_only_the_frozen_chains_remote_adds() {
    let (mut c, _dir) = engine(EngineConfig::for_test(3), "fork-index");
    // 100,000 live adds from member B, written straight into the store in ten write sets (as
    // ingest would store them, without their batches: no minute spent on signatures in a debug
    // build, and nothing for a read of B's batches to find).
    let b = key(2).public_key().to_bytes();
    for chunk in 0..10u32 {
        let mut txn = c.store().txn();
        for i in 0..10_000u32 {
            let n = chunk * 10_000 + i;
            let mut token = [0xbb; 32];
            token[..4].copy_from_slice(&n.to_be_bytes());
            let seq = u64::from(n / 256) + 1;
            txn.put_remote_add(&Token(token), &b, &remote_add(1, seq, n % 256));
        }
        txn.commit().unwrap();
    }
    // And 20 stored batches of B's second generation, which no fork of A may read.
    let mut prev = BatchHash::ZERO;
    for seq in 1..=20u64 {
        let stored = batch(2, 2, seq, prev, &[250]);
        assert_eq!(c.ingest(&stored.to_wire()).unwrap(), IngestOutcome::Applied { applied: 1 });
        prev = stored.hash();
    }
    // Member A: 50 generations of one batch of two adds each, then a second batch for seq 1 of
    // each generation (a fork), which freezes the generation and withdraws its adds.
    let mut a_adds = 0;
    for generation in 1..=50u32 {
        let prev = if generation == 1 { BatchHash::ZERO } else { BatchHash([9; 32]) };
        let tokens = [generation as u8, 100 + generation as u8];
        let first = batch(1, generation, 1, prev, &tokens);
        assert_eq!(c.ingest(&first.to_wire()).unwrap(), IngestOutcome::Applied { applied: 1 });
        a_adds += tokens.len() as u64;
    }
    let before = c.store().decoded(keys::prefix::REMOTE_ADD);
    let batches_before = c.counters().stored_reverifications;
    for generation in 1..=50u32 {
        let prev = if generation == 1 { BatchHash::ZERO } else { BatchHash([9; 32]) };
        let forked = batch(1, generation, 1, prev, &[200]);
        assert_eq!(c.ingest(&forked.to_wire()).unwrap(), IngestOutcome::Fork { seq: 1 });
    }
    // Each of A's adds is read twice: by the walk of its chain, and with its token's other
    // live adds as its identification source is stored.
    let read = c.store().decoded(keys::prefix::REMOTE_ADD) - before;
    assert!(read <= 2 * a_adds, "50 forks of A decoded {read} remote adds; A had {a_adds} live");
    // Each fork reads its chain's one stored batch twice: as the evidence's other side, and
    // for the adds it withdraws. None of B's.
    let batches = c.counters().stored_reverifications - batches_before;
    assert_eq!(batches, 2 * 50, "50 forks of A read {batches} stored batches");
    assert_eq!(c.remote_holders(&Token([1; 32])).unwrap(), 0, "A's adds are withdrawn");
    let mut b_token = [0xbb; 32];
    b_token[..4].copy_from_slice(&99_999u32.to_be_bytes());
    assert_eq!(c.remote_holders(&Token(b_token)).unwrap(), 1, "B's adds stay");
}

#[test]
fn over_quota_and_frozen_chain_batches_are_refused_before_their_signature_is_checked() {
    let quota = EngineConfig { quota_entries_per_day: 3, ..EngineConfig::for_test(3) };
    let (mut c, _dir) = engine(quota, "ignorable");
    let first = batch(1, 1, 1, BatchHash::ZERO, &[1, 2]);
    assert_eq!(c.ingest_gossip(&first.to_wire()).unwrap(), IngestOutcome::Applied { applied: 1 });
    // 200 different batches for seq 2, each of two adds: past the quota of three entries.
    let over: Vec<Vec<u8>> =
        (0..200u8).map(|i| batch(1, 1, 2, first.hash(), &[3, 10 + i]).to_wire()).collect();
    let before = c.counters();
    for wire in &over {
        assert_eq!(c.ingest_gossip(wire).unwrap(), IngestOutcome::QuotaExceeded);
    }
    let after = c.counters();
    assert_eq!(after.quota_refused - before.quota_refused, 200);
    assert_eq!(after.verifications, before.verifications, "no signature checked: {after:?}");
    let feed = crossmatch_protocol::FeedId::of(&key(1).public_key(), 1);
    assert_eq!(c.chain(feed).unwrap().seq, 1, "nothing of them applied");
    assert_eq!(c.remote_holders(&Token([3; 32])).unwrap(), 0, "nor stored");

    // Member B forks generation 1 at seq 1; its batches past the fork cost no signature either.
    let (mut d, _dir_d) = engine(EngineConfig::for_test(3), "ignorable-frozen");
    let one = batch(2, 1, 1, BatchHash::ZERO, &[1]);
    let other = batch(2, 1, 1, BatchHash::ZERO, &[2]);
    d.ingest_gossip(&one.to_wire()).unwrap();
    assert_eq!(d.ingest_gossip(&other.to_wire()).unwrap(), IngestOutcome::Fork { seq: 1 });
    let past: Vec<Vec<u8>> =
        (0..200u8).map(|i| batch(2, 1, 2, one.hash(), &[10 + i]).to_wire()).collect();
    let before = d.counters().verifications;
    for wire in &past {
        assert_eq!(d.ingest_gossip(wire).unwrap(), IngestOutcome::Ignored);
    }
    assert_eq!(d.counters().verifications, before, "no signature checked past the fork");
    // Evidence of that fork again, in the other order: known by its claim, not verified.
    let again =
        crossmatch_protocol::encode_fork_evidence(other.manifest_bytes(), one.manifest_bytes());
    assert_eq!(
        d.ingest_fork_evidence(&again).unwrap(),
        crossmatch_node::engine::ForkOutcome::Known
    );
}

#[test]
fn a_batch_from_an_origin_outside_the_roster_costs_nothing() {
    let (mut c, _dir) = engine(EngineConfig::for_test(3), "unknown-origin");
    // Member 4 is on a newer roster than this node's three members.
    let newcomer = batch(4, 1, 1, BatchHash::ZERO, &[1]);
    let outcome = c.ingest_gossip(&newcomer.to_wire()).unwrap();
    assert!(!matches!(outcome, IngestOutcome::Rejected(_)), "not the relay's fault: {outcome:?}");
    let counters = c.counters();
    assert_eq!((counters.verifications, counters.rejected), (0, 0), "{counters:?}");
    let feed = crossmatch_protocol::FeedId::of(&key(4).public_key(), 1);
    assert_eq!(c.chain(feed).unwrap().seq, 0);
    assert_eq!(c.remote_holders(&Token([1; 32])).unwrap(), 0);
    assert!(c.take_fork_evidence().is_empty());
    // Nor is evidence of a fork by it the relay's fault.
    let other = batch(4, 1, 1, BatchHash::ZERO, &[2]);
    let evidence = crossmatch_protocol::encode_fork_evidence(
        newcomer.manifest_bytes(),
        other.manifest_bytes(),
    );
    let outcome = c.ingest_fork_evidence(&evidence).unwrap();
    assert!(
        !matches!(outcome, crossmatch_node::engine::ForkOutcome::Invalid(_)),
        "not the relay's fault: {outcome:?}"
    );
    assert_eq!(c.fork_count().unwrap(), 0);
}

#[test]
fn a_store_of_schema_1_or_3_is_migrated_at_open_and_a_fork_still_withdraws_its_adds() {
    for version in [1u32, 3] {
        let dir = TempDir::new(&format!("costs-migrate-{version}"));
        let first = batch(1, 1, 1, BatchHash::ZERO, &[1, 2]);
        let index = vec![keys::prefix::REMOTE_ADD_PLACE];
        {
            // A store as that schema wrote it: A's two adds under `t`, indexed by chain under
            // `p` in schema 3 (not in schema 1).
            let clock = Arc::new(ManualClock::new(T0));
            let mut c = Engine::open(dir.path(), EngineConfig::for_test(3), clock).unwrap();
            assert_eq!(c.ingest(&first.to_wire()).unwrap(), IngestOutcome::Applied { applied: 1 });
            let origin = key(1).public_key().to_bytes();
            let mut txn = c.store().txn();
            if version == 3 {
                for token in [1u8, 2] {
                    txn.put(keys::remote_add_place(&origin, 1, 1, &Token([token; 32])), &());
                }
            }
            txn.put(keys::meta("schema"), &version);
            txn.commit_durable().unwrap();
        }
        let clock = Arc::new(ManualClock::new(T0));
        let mut c = Engine::open(dir.path(), EngineConfig::for_test(3), clock).unwrap();
        assert_eq!(
            c.store().get::<u32>(&keys::meta("schema")).unwrap(),
            Some(crossmatch_node::store::SCHEMA_VERSION)
        );
        assert!(c.store().scan_keys(&index).unwrap().is_empty(), "schema {version}: no index left");
        assert_eq!(c.remote_holders(&Token([1; 32])).unwrap(), 1);
        let forked = batch(1, 1, 1, BatchHash::ZERO, &[3]);
        assert_eq!(c.ingest(&forked.to_wire()).unwrap(), IngestOutcome::Fork { seq: 1 });
        assert_eq!(c.remote_holders(&Token([1; 32])).unwrap(), 0, "withdrawn from its batch");
        assert_eq!(c.remote_holders(&Token([2; 32])).unwrap(), 0);
    }
}
