//! Rotation and withdrawal benchmark: how long the engine lock is held. A node holding N shared
//! records, each matched by two members' adds, withdraws one member (the roster drops it) and
//! then rotates its secret and epoch through the grace period's purge to the end, driven as
//! the daemon drives them: the slice worker's bounded steps, the publisher's turns, the
//! retention sweep. Every engine call is timed: the longest single call is how long ingest, the
//! API and sync wait at worst.
//!
//! A routine key change is measured too: a node holding N shared records is opened with its
//! new node key and republishes them under it, a slice per call of the slice worker, each
//! slice signed by the publisher.
//!
//! `cargo bench -p crossmatch-node --bench rotation [-- [rotation|key-change] N ...]` (default
//! both cases, N = 10000 100000 for the rotation and 20000 for the key change).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::{Engine, EngineConfig, Rotation, rotation::REPUBLISH_SLICE};
use crossmatch_node::test_support::{
    FEDERATION, ManualClock, SECRET, T0, TempDir, account, key, members, record_until,
};
use crossmatch_protocol::limits::MAX_ENTRIES_PER_BATCH;
use crossmatch_protocol::{
    Add, BatchHash, BatchPosition, Entry, EpochKey, Evaluation, FederationSecret, Handling, Kind,
    Op, SigningKey, Token, VerifiedBatch, sign_batch,
};

const GRACE_MS: u64 = DAY_MS;

/// The engine calls of one operation: how many, the longest, the total.
#[derive(Default)]
struct Calls {
    count: usize,
    longest: Duration,
    total: Duration,
}

impl Calls {
    fn time<T>(&mut self, call: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = call();
        let took = started.elapsed();
        self.count += 1;
        self.longest = self.longest.max(took);
        self.total += took;
        out
    }

    fn report(&self, what: &str, n: usize) {
        println!(
            "{what} of {n}: {} engine calls, longest {:.3} s, total {:.3} s",
            self.count,
            self.longest.as_secs_f64(),
            self.total.as_secs_f64()
        );
    }
}

fn handle(i: usize) -> String {
    format!("acct_{i}")
}

/// Member `signer`'s adds of the first `n` handles' tokens, in full batches.
fn adds(signer: &SigningKey, tokens: &[Token], now: u64) -> Vec<Vec<u8>> {
    let mut prev = BatchHash::ZERO;
    tokens
        .chunks(MAX_ENTRIES_PER_BATCH)
        .enumerate()
        .map(|(b, chunk)| {
            let entries: Vec<Entry> = chunk
                .iter()
                .enumerate()
                .map(|(i, token)| Entry {
                    salt: [(i % 251) as u8; 16],
                    op: Op::Add(Add {
                        token: *token,
                        kind: Kind::Account,
                        category: "terrorism/propaganda".into(),
                        handling: Handling::H1,
                        evaluation: Evaluation::new('B', 2).unwrap(),
                        activity_per_day: Some(40),
                        expires_at_ms: now + 60 * DAY_MS,
                        algorithmic: false,
                    }),
                })
                .collect();
            let position = BatchPosition {
                generation: 1,
                seq: b as u64 + 1,
                prev,
                epoch: 1,
                created_at_ms: now,
            };
            let batch = sign_batch(signer, &FEDERATION, position, &entries).unwrap();
            prev = batch.hash();
            VerifiedBatch::to_wire(&batch)
        })
        .collect()
}

fn run(n: usize) {
    let clock = Arc::new(ManualClock::new(T0));
    let dir = TempDir::new("bench-rotation");
    let config = EngineConfig {
        quota_entries_per_day: u64::MAX,
        quota_bytes_per_day: u64::MAX,
        store_cache_bytes: crossmatch_node::store::DEFAULT_CACHE_BYTES,
        ..EngineConfig::for_test(2)
    };
    let mut engine = Engine::open(dir.path(), config, clock.clone()).unwrap();
    let started = Instant::now();
    let handles: Vec<String> = (0..n).map(handle).collect();
    for chunk in handles.chunks(1000) {
        let records = chunk.iter().map(|h| record_until(&[h], true, T0 + 90 * DAY_MS)).collect();
        engine.add_records(records, "bench").unwrap();
    }
    while !engine.publish_batches(64).unwrap().is_empty() {}
    let epoch_key = EpochKey::derive(&FEDERATION, &SECRET, 1);
    let tokens: Vec<Token> = handles.iter().map(|h| epoch_key.token(&account(h))).collect();
    for signer in [key(1), key(3)] {
        for wire in adds(&signer, &tokens, T0) {
            engine.ingest(&wire).unwrap();
        }
    }
    println!(
        "setup: {n} records matched by two members in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Member C leaves: its N adds are withdrawn, a bounded step per call (as the daemon's
    // slice worker calls them).
    let mut withdrawal = Calls::default();
    let change = withdrawal.time(|| engine.set_members(members(2)).unwrap());
    assert_eq!(change.withdrawn_origins, 1);
    let mut withdrawn = 0;
    while let Some((step, more)) = withdrawal.time(|| engine.withdrawal_step().unwrap()) {
        withdrawn += step.withdrawn_adds;
        if !more {
            break;
        }
    }
    assert_eq!(withdrawn, n);
    withdrawal.report("withdrawal", n);

    // The rotation, from the changeover to the end of the purge.
    let mut rotation = Calls::default();
    let new = Rotation {
        new_epoch: 2,
        new_secret: FederationSecret::from_bytes([0x77; 32]),
        changeover_at_ms: T0,
        grace_ms: GRACE_MS,
    };
    rotation.time(|| engine.begin_rotation(new).unwrap());
    while rotation.time(|| engine.background_step().unwrap()) {}
    while engine.rotation_view().is_some_and(|view| view.republishing) {
        rotation.time(|| engine.publish_batches(8).unwrap());
    }
    clock.set(T0 + GRACE_MS + 1);
    rotation.time(|| engine.expire().unwrap());
    while rotation.time(|| engine.background_step().unwrap()) {}
    assert!(engine.rotation_view().is_none());
    assert_eq!(engine.epoch(), 2);
    rotation.report("rotation", n);
}

/// A node of `n` shared records under key 1, opened with its new key 11: the republication
/// under the new key, driven as the daemon drives it.
fn key_change(n: usize) {
    let clock = Arc::new(ManualClock::new(T0));
    let dir = TempDir::new("bench-key-change");
    let mut engine = Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone()).unwrap();
    let handles: Vec<String> = (0..n).map(handle).collect();
    for chunk in handles.chunks(1000) {
        let records = chunk.iter().map(|h| record_until(&[h], true, T0 + 90 * DAY_MS)).collect();
        engine.add_records(records, "bench").unwrap();
    }
    while !engine.publish_batches(64).unwrap().is_empty() {}
    let head = engine.own_final_head();
    drop(engine);
    let mut roster = members(3);
    roster[0].key = key(11).public_key();
    roster[0].retired_keys = vec![key(1).public_key()];
    roster[0].retired_heads = vec![(key(1).public_key(), head)];
    let config = EngineConfig { members: roster, ..EngineConfig::for_test(11) };
    let mut open = Calls::default();
    let mut engine = open.time(|| Engine::open(dir.path(), config, clock).unwrap());
    open.report("open with the new key", n);
    // The slice worker feeds a slice when the outbox is empty; the publisher signs it.
    let (mut slices, mut signing) = (Calls::default(), Calls::default());
    let mut batches = 0;
    while engine.own_republication().unwrap().is_some() {
        slices.time(|| engine.background_step().unwrap());
        loop {
            let signed = signing.time(|| engine.publish_batches(1).unwrap());
            if signed.is_empty() || engine.outbox_len().unwrap() == 0 {
                batches += signed.len();
                break;
            }
            batches += signed.len();
        }
    }
    assert!(slices.count >= n / REPUBLISH_SLICE);
    println!("key change of {n}: {batches} batches signed under the new key");
    slices.report("key-change republication, slices fed", n);
    signing.report("key-change republication, publisher turns", n);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let only = |case: &str| {
        let named: Vec<&String> = args
            .iter()
            .filter(|a| a.as_str() == "rotation" || a.as_str() == "key-change")
            .collect();
        named.is_empty() || named.iter().any(|a| a.as_str() == case)
    };
    if only("rotation") {
        let sizes = if sizes.is_empty() { vec![10_000, 100_000] } else { sizes.clone() };
        for &n in &sizes {
            run(n);
        }
    }
    if only("key-change") {
        let sizes = if sizes.is_empty() { vec![20_000] } else { sizes };
        for n in sizes {
            key_change(n);
        }
    }
}
