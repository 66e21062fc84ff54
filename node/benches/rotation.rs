//! Rotation and withdrawal benchmark: how long the engine lock is held. A node holding N shared
//! records, each matched by two members' adds, withdraws one member (the roster drops it) and
//! then rotates its secret and epoch through the grace period's purge to the end, driven as
//! the daemon drives them: the slice worker's bounded steps, the publisher's turns, the
//! retention sweep. Every engine call is timed: the longest single call is how long ingest, the
//! API and sync wait at worst.
//!
//! `cargo bench -p crossmatch-node --bench rotation [-- N ...]` (default 10000 100000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::{Engine, EngineConfig, Rotation};
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
        new_secret: FederationSecret([0x77; 32]),
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

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10_000, 100_000] } else { sizes };
    for n in sizes {
        run(n);
    }
}
