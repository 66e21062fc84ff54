//! The matching engine driven directly, with no network and an injected clock: ingest in every
//! order, forks, rejections, quotas, matching both ways, alerts, retraction and retention.

use std::sync::Arc;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::{
    AlertEvent, AlertSink, ENTRY_PURGE_SLICE, Engine, EngineConfig, ForkOutcome, IngestOutcome,
    MAX_FORKS_PER_ORIGIN, NewRecord, OwnWitness,
};
use crossmatch_node::store::AlertState;
use crossmatch_node::test_support::{
    FEDERATION, ManualClock, T0, TempDir, account, add_entry, key, record_until,
};
use crossmatch_protocol::{
    Add, BatchHash, BatchId, BatchPosition, Entry, Evaluation, FederationId, FeedId, Handling,
    Kind, Op, RetractReason, SigningKey, Status, Token, VerifiedBatch, sign_batch,
};

struct Node {
    engine: Engine,
    clock: Arc<ManualClock>,
    _dir: TempDir,
}

fn node(n: u8, name: &str) -> Node {
    node_with(EngineConfig::for_test(n), name)
}

fn node_with(config: EngineConfig, name: &str) -> Node {
    let dir = TempDir::new(&format!("engine-{name}"));
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Engine::open(dir.path(), config, clock.clone()).unwrap();
    Node { engine, clock, _dir: dir }
}

fn record(names: &[&str], share: bool, handling: Handling) -> NewRecord {
    NewRecord {
        handling,
        notes: "seen in channel".into(),
        activity_per_day: Some(50),
        ..record_until(names, share, T0 + 90 * DAY_MS)
    }
}

fn wires(node: &mut Node) -> Vec<Vec<u8>> {
    node.engine.publish().unwrap().iter().map(|b| b.to_wire()).collect()
}

/// Alert changes of `engine`, through a channel like the one the daemon gives subscribers.
fn subscribe(engine: &mut Engine) -> tokio::sync::broadcast::Receiver<AlertEvent> {
    let (sender, receiver) =
        tokio::sync::broadcast::channel(crossmatch_node::daemon::ALERT_CHANNEL_CAPACITY);
    engine.set_alert_sink(AlertSink::new(move |event| {
        let _ = sender.send(event);
    }));
    receiver
}

fn seeded_shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
}

#[test]
fn a_shared_add_alerts_both_sides_and_a_late_local_add_is_a_retro_match() {
    let mut a = node(1, "ab-a");
    let mut b = node(2, "ab-b");
    let mut c = node(3, "ab-c");
    let a_record =
        a.engine.add_record(record(&["jihadi_john"], true, Handling::H1), "ana").unwrap();
    let b_record =
        b.engine.add_record(record(&["Jihadi_John"], true, Handling::H0), "ben").unwrap();
    let from_a = wires(&mut a);
    let from_b = wires(&mut b);
    assert_eq!((from_a.len(), from_b.len()), (1, 1));

    b.clock.advance(250);
    assert_eq!(b.engine.ingest(&from_a[0]).unwrap(), IngestOutcome::Applied { applied: 1 });
    let alerts = b.engine.alerts(None, None).unwrap();
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.state, AlertState::Open);
    assert_eq!(alert.records, vec![b_record]);
    assert_eq!(alert.counterparts.len(), 1);
    let counterpart = &alert.counterparts[0];
    assert_eq!(counterpart.origin, key(1).public_key());
    assert_eq!(counterpart.add.handling, Handling::H1);
    assert!(!counterpart.retro);
    assert_eq!(counterpart.add.received_at_ms - counterpart.add.created_at_ms, 250);
    assert_eq!(b.engine.member(&counterpart.origin).unwrap().contact, "desk@A.example");
    let alert_id = alert.id;
    assert!(b.engine.acknowledge(alert_id, "ben").unwrap());
    assert!(!b.engine.acknowledge(alert_id + 100, "ben").unwrap(), "no such alert");
    // Handling an alert is audited under the analyst who did it.
    let audit = std::fs::read_to_string(b._dir.path().join("audit/audit.log")).unwrap();
    let handled = format!("\tben\talert\talert:{alert_id}\t");
    assert_eq!(audit.matches(&handled).count(), 1, "one audit line for the acknowledgement");
    assert!(b.engine.alerts(None, None).unwrap()[0].acknowledged);
    assert!(b.engine.alerts(None, Some(u64::MAX)).unwrap().is_empty(), "filtered by time");

    assert_eq!(a.engine.ingest(&from_b[0]).unwrap(), IngestOutcome::Applied { applied: 1 });
    let alerts = a.engine.alerts(Some(AlertState::Open), None).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].records, vec![a_record]);

    // C learns of A's add first, then adds the same account: a retro-match.
    assert_eq!(c.engine.ingest(&from_a[0]).unwrap(), IngestOutcome::Applied { applied: 1 });
    assert!(c.engine.alerts(None, None).unwrap().is_empty());
    c.engine.add_record(record(&["jihadi_john"], false, Handling::H0), "cat").unwrap();
    let alerts = c.engine.alerts(None, None).unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].counterparts[0].retro);
    assert_eq!(c.engine.outbox_len().unwrap(), 0, "a watch is never shared");
}

#[test]
fn ingest_in_any_order_with_duplicates_and_gaps_converges() {
    let seed = 0x5eed_u64 ^ std::process::id() as u64;
    println!("shuffle seed {seed}");
    let mut a = node(1, "order-a");
    let mut b = node(2, "order-b");
    let mut batches = Vec::new();
    for i in 0..12 {
        a.engine.add_record(record(&[&format!("acct_{i}")], true, Handling::H0), "ana").unwrap();
        batches.extend(wires(&mut a));
    }
    assert_eq!(batches.len(), 12);
    let mut deliveries: Vec<Vec<u8>> =
        batches.iter().chain(batches.iter().take(5)).cloned().collect();
    seeded_shuffle(&mut deliveries, seed);
    let mut gaps = 0;
    let mut duplicates = 0;
    for wire in &deliveries {
        match b.engine.ingest(wire).unwrap() {
            IngestOutcome::Gap { missing_from, missing_to, .. } => {
                assert!(missing_from <= missing_to);
                gaps += 1;
            }
            IngestOutcome::Duplicate { .. } => duplicates += 1,
            IngestOutcome::Applied { .. } => {}
            other => panic!("unexpected {other:?} (seed {seed})"),
        }
    }
    let chain = b.engine.chain(FeedId::of(&key(1).public_key(), 1)).unwrap();
    assert_eq!(chain.seq, 12, "seed {seed}");
    assert_eq!(b.engine.counters().applied, 12);
    assert!(duplicates >= 5 - gaps.min(5), "seed {seed}");
    let counters = b.engine.counters();
    assert_eq!(counters.received, deliveries.len() as u64);
    assert!(counters.verifications >= 12 && counters.verifications <= counters.received);
}

#[test]
fn each_unique_batch_is_verified_once() {
    let mut a = node(1, "verify-once-a");
    let mut b = node(2, "verify-once-b");
    let mut batches = Vec::new();
    for i in 0..6 {
        a.engine.add_record(record(&[&format!("once_{i}")], true, Handling::H0), "ana").unwrap();
        batches.extend(wires(&mut a));
    }
    for _ in 0..3 {
        for wire in &batches {
            b.engine.ingest(wire).unwrap();
        }
    }
    let counters = b.engine.counters();
    assert_eq!((counters.received, counters.applied, counters.duplicates), (18, 6, 12));
    assert_eq!(counters.verifications, 6, "one signature verification per unique batch");
}

#[test]
fn a_range_answer_counts_as_served_every_batch_at_its_asked_position_duplicates_included() {
    let mut a = node(1, "served-a");
    let mut b = node(2, "served-b");
    let mut batches = Vec::new();
    for i in 0..4 {
        a.engine.add_record(record(&[&format!("served_{i}")], true, Handling::H0), "ana").unwrap();
        batches.extend(wires(&mut a));
    }
    let feed = FeedId::of(&key(1).public_key(), 1);
    // Another peer's answer to the same range arrived first: everything here is held already.
    let first = b.engine.ingest_range(feed, 1, &batches[..2]).unwrap();
    assert_eq!((first.applied, first.served, first.mismatch), (2, 2, false));
    let again = b.engine.ingest_range(feed, 1, &batches[..2]).unwrap();
    assert_eq!((again.applied, again.served, again.mismatch), (0, 2, false), "{again:?}");
    // Part held, part new.
    let overlap = b.engine.ingest_range(feed, 2, &batches[1..]).unwrap();
    assert_eq!((overlap.applied, overlap.served, overlap.mismatch), (2, 3, false), "{overlap:?}");
    // A batch held, but not at the position asked: nothing served, and a mismatch.
    let misplaced = b.engine.ingest_range(feed, 3, &batches[..1]).unwrap();
    assert_eq!((misplaced.served, misplaced.mismatch), (0, true), "{misplaced:?}");
}

#[test]
fn while_recovering_only_a_genuine_batch_of_the_own_feed_is_left_to_recovery() {
    let mut a = node(1, "recovering-a");
    let mut b = node(2, "recovering-b");
    a.engine.add_record(record(&["own_feed"], true, Handling::H0), "ana").unwrap();
    let batch = wires(&mut a).pop().expect("a batch");
    // The signer holds it: a duplicate, as any copy of a batch held complete.
    let outcome = a.engine.ingest_gossip_while_recovering(&batch).unwrap();
    assert_eq!(outcome, IngestOutcome::Duplicate { filled: 0 });
    // Another member's batch is ingested as any gossip.
    let outcome = b.engine.ingest_gossip_while_recovering(&batch).unwrap();
    assert_eq!(outcome, IngestOutcome::Applied { applied: 1 });
    // The signer wiped (its key, an empty store): the genuine batch is left to recovery and
    // nothing is stored; every copy altered in one byte, in the signed manifest, its signature
    // or an entry, is refused as gossip refuses it, and none is left to recovery or stored.
    let mut wiped = node(1, "recovering-a-wiped");
    let before = wiped.engine.store().dump().unwrap();
    let outcome = wiped.engine.ingest_gossip_while_recovering(&batch).unwrap();
    assert_eq!(outcome, IngestOutcome::LeftToRecovery);
    let mut refused = 0;
    for at in 0..batch.len() {
        let mut altered = batch.clone();
        altered[at] ^= 0x01;
        match wiped.engine.ingest_gossip_while_recovering(&altered).unwrap() {
            IngestOutcome::Rejected(_) | IngestOutcome::IncompleteGossip => refused += 1,
            IngestOutcome::LeftToRecovery | IngestOutcome::Applied { .. } => {
                panic!("a copy altered at byte {at} passes as genuine")
            }
            _ => {}
        }
    }
    assert!(refused > 64, "{refused} of {} altered copies refused", batch.len());
    assert_eq!(wiped.engine.store().dump().unwrap(), before, "nothing stored");
}

#[test]
fn applied_batches_are_counted_by_the_path_they_came_by() {
    let mut a = node(1, "paths-a");
    let mut b = node(2, "paths-b");
    let mut batches = Vec::new();
    for i in 0..6 {
        a.engine.add_record(record(&[&format!("path_{i}")], true, Handling::H0), "ana").unwrap();
        batches.extend(wires(&mut a));
    }
    assert_eq!(batches.len(), 6);
    let feed = FeedId::of(&key(1).public_key(), 1);
    // Gossip: the first; the third (held: its predecessor is missing); the second, which
    // releases the third.
    for (wire, applied) in [(&batches[0], 1), (&batches[2], 0), (&batches[1], 2)] {
        let outcome = b.engine.ingest_gossip(wire).unwrap();
        let counted = match outcome {
            IngestOutcome::Applied { applied } => applied,
            _ => 0,
        };
        assert_eq!(counted, applied, "{outcome:?}");
    }
    // Sync: the fourth and fifth; a duplicate by gossip counts nowhere.
    assert_eq!(b.engine.ingest_range(feed, 4, &batches[3..5]).unwrap().applied, 2);
    b.engine.ingest_gossip(&batches[0]).unwrap();
    // Neither: the sixth through plain `ingest`.
    b.engine.ingest(&batches[5]).unwrap();
    let counters = b.engine.counters();
    assert_eq!((counters.applied, counters.applied_by_sync, counters.applied_by_gossip), (6, 2, 3));
}

#[test]
fn a_redacted_copy_is_refilled_from_a_complete_one_unless_expired_here() {
    let mut a = node(1, "refill-a");
    let mut b = node(2, "refill-b");
    b.engine.add_record(record(&["refill_two"], false, Handling::H0), "ben").unwrap();
    a.engine.add_record(record(&["refill_one", "refill_two"], true, Handling::H0), "ana").unwrap();
    let complete = a.engine.publish().unwrap().remove(0);
    // B first receives a copy whose second entry a relay nulled.
    let nulled = complete.redacted(&[1]).to_wire();
    assert_eq!(b.engine.ingest(&nulled).unwrap(), IngestOutcome::Applied { applied: 1 });
    assert_eq!(
        b.engine.ingest(&complete.to_wire()).unwrap(),
        IngestOutcome::Duplicate { filled: 1 }
    );
    let stored = b.engine.batch(BatchId::of(&key(1).public_key(), 1, 1)).unwrap().unwrap();
    assert_eq!(stored, complete.to_wire(), "the hole was filled from the complete copy");
    let alerts = b.engine.alerts(None, None).unwrap();
    assert_eq!(alerts.len(), 1, "a filled entry is matched like any other");
    // ... and forgotten at its expiry like any other.
    b.clock.set(T0 + 91 * DAY_MS);
    b.engine.expire().unwrap();
    let token = a.engine.token(&account("refill_two"));
    for (key, value) in b.engine.store().dump().unwrap() {
        assert!(!contains(&key, token.as_bytes()) && !contains(&value, token.as_bytes()));
    }
    assert_eq!(b.engine.counters().verifications, 2);
}

#[test]
fn every_refusal_is_typed_counted_and_stores_nothing() {
    let mut a = node(1, "reject-a");
    let mut b = node(2, "reject-b");
    a.engine.add_record(record(&["someone"], true, Handling::H0), "ana").unwrap();
    let good = wires(&mut a).remove(0);
    let before = b.engine.store().dump().unwrap();
    let outsider = SigningKey::from_seed(&[77; 32]);
    let entry = add_entry(3, T0 + DAY_MS);
    let genesis =
        BatchPosition { generation: 1, seq: 1, prev: BatchHash::ZERO, epoch: 1, created_at_ms: T0 };
    let from_outsider = sign_batch(&outsider, &FEDERATION, genesis, std::slice::from_ref(&entry))
        .unwrap()
        .to_wire();
    let other_federation =
        sign_batch(&key(1), &FederationId([1; 32]), genesis, &[entry]).unwrap().to_wire();
    let mut flipped = good.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 0x40;
    let oversized = vec![0u8; 60 * 1024];
    for wire in [b"garbage".to_vec(), other_federation, flipped, oversized] {
        assert!(matches!(b.engine.ingest(&wire).unwrap(), IngestOutcome::Rejected(_)));
    }
    assert_eq!(b.engine.counters().rejected, 4);
    // A key outside the roster may be a member of a newer roster: ignored, not rejected.
    assert_eq!(b.engine.ingest(&from_outsider).unwrap(), IngestOutcome::UnknownOrigin);
    assert_eq!(b.engine.counters().unknown_origin, 1);
    assert_eq!(b.engine.store().dump().unwrap(), before, "a refused batch stores nothing");
}

#[test]
fn a_fork_freezes_the_chain_keeps_evidence_and_withdraws_entries() {
    let mut a = node(1, "fork-a");
    let mut b = node(2, "fork-b");
    b.engine.add_record(record(&["target_one"], true, Handling::H0), "ben").unwrap();
    a.engine.add_record(record(&["unrelated"], true, Handling::H0), "ana").unwrap();
    let first = wires(&mut a).remove(0);
    a.engine.add_record(record(&["target_one"], true, Handling::H0), "ana").unwrap();
    let second = wires(&mut a).remove(0);
    assert_eq!(b.engine.ingest(&first).unwrap(), IngestOutcome::Applied { applied: 1 });
    assert_eq!(b.engine.ingest(&second).unwrap(), IngestOutcome::Applied { applied: 1 });
    assert_eq!(b.engine.alerts(Some(AlertState::Open), None).unwrap().len(), 1);

    // A signs a different batch for seq 2: equivocation.
    let first_hash =
        crossmatch_protocol::verify_batch(&first, &FEDERATION, &[key(1).public_key()][..])
            .unwrap()
            .hash();
    let forked = batch_at(1, 1, 2, first_hash, 4).to_wire();
    assert_eq!(b.engine.ingest(&forked).unwrap(), IngestOutcome::Fork { seq: 2 });
    let chain = b.engine.chain(FeedId::of(&key(1).public_key(), 1)).unwrap();
    assert!(chain.frozen);
    assert_eq!(chain.seq, 1);
    let forks = b.engine.forks().unwrap();
    assert_eq!(forks.len(), 1);
    assert_eq!((forks[0].0.generation(), forks[0].0.seq), (1, 2));
    assert!(!forks[0].1.ours.is_empty() && !forks[0].1.theirs.is_empty());
    let alert = &b.engine.alerts(None, None).unwrap()[0];
    assert_eq!(alert.state, AlertState::Closed, "entries at the fork are withdrawn");
    // Nothing beyond the frozen head is accepted.
    a.engine.add_record(record(&["third"], true, Handling::H0), "ana").unwrap();
    let third = wires(&mut a).remove(0);
    assert_eq!(b.engine.ingest(&third).unwrap(), IngestOutcome::Ignored);

    // B forwards the evidence; C, which never saw the second batch, checks it and freezes too.
    let evidence = b.engine.take_fork_evidence();
    assert_eq!(evidence.len(), 1);
    assert!(b.engine.take_fork_evidence().is_empty(), "queued once");
    assert_eq!(b.engine.fork_evidence(1 << 20).unwrap(), evidence, "and served to sync");
    let mut c = node(3, "fork-c");
    c.engine.add_record(record(&["target_one"], false, Handling::H0), "cid").unwrap();
    c.engine.ingest(&first).unwrap();
    c.engine.ingest(&second).unwrap();
    assert_eq!(c.engine.alerts(Some(AlertState::Open), None).unwrap().len(), 1);
    assert_eq!(c.engine.ingest_fork_evidence(&evidence[0]).unwrap(), ForkOutcome::Recorded);
    let chain = c.engine.chain(FeedId::of(&key(1).public_key(), 1)).unwrap();
    assert!(chain.frozen && chain.seq == 1, "{chain:?}");
    assert_eq!(c.engine.alerts(None, None).unwrap()[0].state, AlertState::Closed);
    assert_eq!(c.engine.ingest_fork_evidence(&evidence[0]).unwrap(), ForkOutcome::Known);
    assert!(c.engine.take_fork_evidence().is_empty(), "gossip forwards what was received");
    assert_eq!(c.engine.ingest(&third).unwrap(), IngestOutcome::Ignored);
    // Anything else is refused as evidence.
    for junk in [vec![], first.clone(), crossmatch_protocol::encode_fork_evidence(&[1], &[2])] {
        assert!(matches!(c.engine.ingest_fork_evidence(&junk).unwrap(), ForkOutcome::Invalid(_)));
    }
    // The origin itself, shown its own fork, repairs with a new generation and publishes its
    // adds from the fork on (seqs 2 and 3) again there.
    assert_eq!(a.engine.ingest_fork_evidence(&evidence[0]).unwrap(), ForkOutcome::Recorded);
    assert_eq!(a.engine.own_head().0, 2);
    assert_eq!(a.engine.outbox_len().unwrap(), 2);
    let republished = a.engine.publish().unwrap();
    assert_eq!((republished[0].header().generation, republished[0].header().seq), (2, 1));
    assert_eq!(republished[0].header().entry_digests.len(), 2);

    assert!(b.engine.clear_fork(BatchId::of(&key(1).public_key(), 1, 2)).unwrap());
    assert!(b.engine.forks().unwrap().is_empty());
}

#[test]
fn quota_excess_is_refused_and_counted() {
    let mut a = node(1, "quota-a");
    let mut b = node_with(
        EngineConfig { quota_entries_per_day: 3, ..EngineConfig::for_test(2) },
        "quota-b",
    );
    for i in 0..5 {
        a.engine.add_record(record(&[&format!("q_{i}")], true, Handling::H0), "ana").unwrap();
    }
    let batch = wires(&mut a).remove(0);
    assert_eq!(b.engine.ingest(&batch).unwrap(), IngestOutcome::QuotaExceeded);
    assert_eq!(b.engine.counters().quota_refused, 1);
    assert_eq!(b.engine.chain(FeedId::of(&key(1).public_key(), 1)).unwrap().seq, 0);
}

#[test]
fn retraction_closes_the_alert_and_a_new_counterpart_reopens_it() {
    let mut a = node(1, "retract-a");
    let mut b = node(2, "retract-b");
    let mut c = node(3, "retract-c");
    b.engine.add_record(record(&["shared_target"], false, Handling::H0), "ben").unwrap();
    let a_id = a.engine.add_record(record(&["shared_target"], true, Handling::H0), "ana").unwrap();
    b.engine.ingest(&wires(&mut a)[0]).unwrap();
    let mut events = subscribe(&mut b.engine);
    a.engine.remove_record(a_id, RetractReason::NoLongerHeld, "ana").unwrap();
    let retract = wires(&mut a);
    assert_eq!(retract.len(), 1);
    b.engine.ingest(&retract[0]).unwrap();
    let alert = b.engine.alerts(None, None).unwrap().remove(0);
    assert_eq!(alert.state, AlertState::Closed);
    assert_eq!(events.try_recv().unwrap().alert.state, AlertState::Closed);
    // The add in A's first batch is redacted at B: the stored copy still verifies.
    let stored = b.engine.batch(BatchId::of(&key(1).public_key(), 1, 1)).unwrap().unwrap();
    let stored =
        crossmatch_protocol::verify_batch(&stored, &FEDERATION, &[key(1).public_key()][..])
            .unwrap();
    assert!(!stored.is_complete());

    c.engine.add_record(record(&["shared_target"], true, Handling::H2), "cat").unwrap();
    b.engine.ingest(&wires(&mut c)[0]).unwrap();
    let alert = b.engine.alerts(None, None).unwrap().remove(0);
    assert_eq!(alert.state, AlertState::Reopened);
    assert_eq!(alert.counterparts[0].add.handling, Handling::H2);
}

#[test]
fn h3_records_are_never_shared_but_still_match() {
    let mut a = node(1, "h3-a");
    let mut b = node(2, "h3-b");
    b.engine.add_record(record(&["restricted"], true, Handling::H3), "ben").unwrap();
    assert_eq!(b.engine.outbox_len().unwrap(), 0);
    assert!(wires(&mut b).is_empty());
    a.engine.add_record(record(&["restricted"], true, Handling::H0), "ana").unwrap();
    b.engine.ingest(&wires(&mut a)[0]).unwrap();
    assert_eq!(b.engine.alerts(None, None).unwrap().len(), 1);
}

#[test]
fn status_updates_reach_the_counterpart_alert() {
    let mut a = node(1, "status-a");
    let mut b = node(2, "status-b");
    b.engine.add_record(record(&["referred_one"], false, Handling::H0), "ben").unwrap();
    let id = a.engine.add_record(record(&["referred_one"], true, Handling::H0), "ana").unwrap();
    a.engine.set_status(id, Status::Referred, "ana").unwrap();
    for wire in wires(&mut a) {
        b.engine.ingest(&wire).unwrap();
    }
    let alert = b.engine.alerts(None, None).unwrap().remove(0);
    assert_eq!(alert.counterparts[0].add.status.as_ref().map(|s| s.0.as_str()), Some("referred"));
}

#[test]
fn expiry_purges_every_byte_of_the_token_from_the_store() {
    let mut a = node(1, "expiry-a");
    let mut b = node(2, "expiry-b");
    b.engine.add_record(record(&["short_lived"], false, Handling::H0), "ben").unwrap();
    a.engine.add_record(record(&["short_lived"], true, Handling::H0), "ana").unwrap();
    b.engine.ingest(&wires(&mut a)[0]).unwrap();
    assert_eq!(b.engine.alerts(None, None).unwrap().len(), 1);
    let token = a.engine.token(&account("short_lived"));
    for n in [&mut a, &mut b] {
        n.clock.set(T0 + 91 * DAY_MS);
        n.engine.expire().unwrap();
        assert!(n.engine.alerts(None, None).unwrap().is_empty());
    }
    drop(a.engine);
    drop(b.engine);
    for (n, dir) in [(1, &a._dir), (2, &b._dir)] {
        let engine = Engine::open(dir.path(), EngineConfig::for_test(n), a.clock.clone()).unwrap();
        for (key, value) in engine.store().dump().unwrap() {
            assert!(
                !contains(&key, token.as_bytes()) && !contains(&value, token.as_bytes()),
                "token bytes left at node {n}"
            );
            assert!(!contains(&value, b"short_lived"), "raw identifier left at node {n}");
        }
    }
}

#[test]
fn a_purge_of_many_groups_goes_in_bounded_slices_and_a_restart_finishes_it() {
    use crossmatch_node::store::keys;
    let mut a = node(1, "purge-slices-a");
    let mut b = node(2, "purge-slices-b");
    b.engine.add_record(record(&["sliced_0"], false, Handling::H0), "ben").unwrap();
    // One batch per record: each is an expiry group of its own at B.
    let groups = 2 * ENTRY_PURGE_SLICE + 22;
    for i in 0..groups {
        a.engine.add_record(record(&[&format!("sliced_{i}")], true, Handling::H0), "ana").unwrap();
        for wire in wires(&mut a) {
            b.engine.ingest(&wire).unwrap();
        }
    }
    assert_eq!(b.engine.alerts(None, None).unwrap().len(), 1);
    let due = |engine: &Engine| {
        let (from, to) = keys::expiries_due(u64::MAX);
        engine.store().range_keys(&from, &to, usize::MAX).unwrap().len()
    };
    assert_eq!(due(&b.engine), groups, "one expiry group per batch");
    b.clock.set(T0 + 91 * DAY_MS);
    // One slice, one durable write set; then the member stops mid-purge.
    assert_eq!(b.engine.expire_entries_step().unwrap(), ENTRY_PURGE_SLICE);
    assert_eq!(due(&b.engine), groups - ENTRY_PURGE_SLICE, "the slice's rows went with it");
    drop(b.engine);
    let mut engine =
        Engine::open(b._dir.path(), EngineConfig::for_test(2), b.clock.clone()).unwrap();
    let (purged, _) = engine.expire().unwrap();
    assert_eq!(purged, groups - ENTRY_PURGE_SLICE, "the restart's purge finished the rest");
    assert_eq!(due(&engine), 0, "no expiry row left");
    assert!(engine.store().scan_keys(&keys::all_remote_adds()).unwrap().is_empty());
    assert!(engine.alerts(None, None).unwrap().is_empty(), "the alert went with its entry");
    assert_eq!(engine.expire_entries_step().unwrap(), 0, "nothing left to purge");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn shares_reads_and_alerts_are_audited_and_the_log_verifies() {
    let mut a = node(1, "audit-a");
    let mut b = node(2, "audit-b");
    let id = b.engine.add_record(record(&["audited_one"], false, Handling::H0), "ben").unwrap();
    a.engine.add_record(record(&["audited_one"], true, Handling::H0), "ana").unwrap();
    b.engine.ingest(&wires(&mut a)[0]).unwrap();
    assert!(b.engine.read_record(id, "ben").unwrap().is_some());
    assert!(b.engine.add_record(record(&["x1"], false, Handling::H0), "bad\tuser").is_err());
    // watch, alert, read: three records at B.
    assert_eq!(b.engine.audit_position().0, 3);
    drop(b.engine);
    let audit_dir = b._dir.path().join("audit");
    let report = crossmatch_node::audit::verify(
        &audit_dir.join(crossmatch_node::audit::LOG_FILE_NAME),
        &audit_dir.join(crossmatch_node::audit::HEAD_FILE_NAME),
        &key(2).public_key(),
    )
    .unwrap();
    assert_eq!(report.last_seq, 3);
    let log =
        std::fs::read_to_string(audit_dir.join(crossmatch_node::audit::LOG_FILE_NAME)).unwrap();
    for action in ["watch", "alert", "read_record"] {
        assert!(log.contains(action), "{action} not audited");
    }
    assert!(!log.contains("audited_one"), "no raw identifier in the audit log");
}

#[test]
fn a_new_generation_starts_at_seq_one_and_links_to_the_last_batch() {
    let mut a = node(1, "gen-a");
    let mut b = node(2, "gen-b");
    a.engine.add_record(record(&["gen_one"], true, Handling::H0), "ana").unwrap();
    let first = wires(&mut a).remove(0);
    assert_eq!(a.engine.start_new_generation().unwrap(), 2);
    a.engine.add_record(record(&["gen_two"], true, Handling::H0), "ana").unwrap();
    let second = a.engine.publish().unwrap().remove(0);
    assert_eq!((second.header().generation, second.header().seq), (2, 1));
    let first_hash = crossmatch_protocol::claimed_batch_hash(&first, &FEDERATION).unwrap();
    assert_eq!(second.header().prev, first_hash);
    assert_eq!(b.engine.ingest(&second.to_wire()).unwrap(), IngestOutcome::Applied { applied: 1 });
    assert_eq!(b.engine.ingest(&first).unwrap(), IngestOutcome::Applied { applied: 1 });
    assert_eq!(b.engine.chain(FeedId::of(&key(1).public_key(), 2)).unwrap().seq, 1);
    assert_eq!(b.engine.chain(FeedId::of(&key(1).public_key(), 1)).unwrap().seq, 1);
}

#[test]
fn an_entry_that_misses_its_digest_is_skipped_and_the_batch_still_advances() {
    let mut a = node(1, "skip-a");
    let mut b = node(2, "skip-b");
    b.engine.add_record(record(&["skip_two"], false, Handling::H0), "ben").unwrap();
    a.engine.add_record(record(&["skip_one", "skip_two"], true, Handling::H0), "ana").unwrap();
    let batch = a.engine.publish().unwrap().remove(0);
    // Re-encode the wire form with entry 0's last byte flipped.
    let mut wire: ciborium::Value = ciborium::de::from_reader(batch.to_wire().as_slice()).unwrap();
    if let ciborium::Value::Array(items) = &mut wire
        && let ciborium::Value::Array(entries) = &mut items[1]
        && let ciborium::Value::Bytes(bytes) = &mut entries[0]
    {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    }
    let mut tampered = Vec::new();
    ciborium::ser::into_writer(&wire, &mut tampered).unwrap();
    assert_eq!(b.engine.ingest(&tampered).unwrap(), IngestOutcome::Applied { applied: 1 });
    assert_eq!(b.engine.counters().skipped_entries, 1);
    assert_eq!(b.engine.chain(FeedId::of(&key(1).public_key(), 1)).unwrap().seq, 1);
    assert_eq!(b.engine.alerts(None, None).unwrap().len(), 1, "the valid entry still matches");
    // The bad entry is stored redacted and refilled from the honest copy.
    assert_eq!(b.engine.ingest(&batch.to_wire()).unwrap(), IngestOutcome::Duplicate { filled: 1 });
}

#[test]
fn a_bulk_import_is_one_write_and_publishes_in_full_batches() {
    let mut a = node(1, "bulk-a");
    let mut b = node(2, "bulk-b");
    b.engine.add_record(record(&["bulk_1999"], false, Handling::H0), "ben").unwrap();
    let records = (0..2000).map(|i| record(&[&format!("bulk_{i}")], true, Handling::H0)).collect();
    let ids = a.engine.add_records(records, "importer").unwrap();
    assert_eq!(ids.len(), 2000);
    assert_eq!(a.engine.outbox_len().unwrap(), 2000);
    let batches = a.engine.publish().unwrap();
    assert_eq!(batches.len(), 2000usize.div_ceil(256));
    assert!(
        batches
            .iter()
            .all(|batch| batch.to_wire().len() <= crossmatch_protocol::limits::MAX_BATCH_BYTES)
    );
    for batch in &batches {
        assert!(matches!(
            b.engine.ingest(&batch.to_wire()).unwrap(),
            IngestOutcome::Applied { .. }
        ));
    }
    assert_eq!(b.engine.alerts(None, None).unwrap().len(), 1);
    let invalid = vec![
        record(&["fine_one"], true, Handling::H0),
        NewRecord { category: "Bad".into(), ..record(&["bad"], true, Handling::H0) },
    ];
    assert!(a.engine.add_records(invalid, "importer").is_err());
    assert_eq!(a.engine.outbox_len().unwrap(), 0, "all or nothing");
}

#[test]
fn a_subscriber_that_falls_behind_is_told_it_lagged() {
    let mut a = node(1, "lag-a");
    let mut b = node(2, "lag-b");
    let count = crossmatch_node::daemon::ALERT_CHANNEL_CAPACITY + 50;
    let watched = (0..count).map(|i| record(&[&format!("lag_{i}")], false, Handling::H0)).collect();
    b.engine.add_records(watched, "ben").unwrap();
    let mut events = subscribe(&mut b.engine);
    let shared = (0..count).map(|i| record(&[&format!("lag_{i}")], true, Handling::H0)).collect();
    a.engine.add_records(shared, "ana").unwrap();
    for wire in wires(&mut a) {
        b.engine.ingest(&wire).unwrap();
    }
    assert_eq!(b.engine.alerts(None, None).unwrap().len(), count);
    match events.try_recv() {
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(missed)) => assert_eq!(missed, 50),
        other => panic!("expected a lag report, got {other:?}"),
    }
}

#[test]
fn a_store_of_another_schema_version_is_refused() {
    let dir = TempDir::new("engine-schema");
    {
        let store = crossmatch_node::store::Store::open(dir.path()).unwrap();
        let mut txn = store.txn();
        txn.put(crossmatch_node::store::keys::meta("schema"), &99u32);
        txn.commit_durable().unwrap();
    }
    let error = crossmatch_node::store::Store::open(dir.path()).unwrap_err();
    assert!(error.to_string().contains("schema version 99 is not supported"), "{error}");
}

#[test]
fn an_add_and_its_retraction_in_one_batch_leave_no_token_behind() {
    let mut a = node(1, "same-batch-a");
    let mut b = node(2, "same-batch-b");
    let id = a.engine.add_record(record(&["fleeting"], true, Handling::H0), "ana").unwrap();
    a.engine.remove_record(id, RetractReason::Erroneous, "ana").unwrap();
    let batches = a.engine.publish().unwrap();
    assert_eq!(batches.len(), 1);
    assert!(batches[0].is_complete(), "peers get the whole batch");
    b.engine.ingest(&batches[0].to_wire()).unwrap();
    let token = a.engine.token(&account("fleeting"));
    let origin_copy = a.engine.batch(BatchId::of(&key(1).public_key(), 1, 1)).unwrap().unwrap();
    let receiver_copy = b.engine.batch(BatchId::of(&key(1).public_key(), 1, 1)).unwrap().unwrap();
    for (who, copy) in [("origin", origin_copy), ("receiver", receiver_copy)] {
        let batch =
            crossmatch_protocol::verify_batch(&copy, &FEDERATION, &[key(1).public_key()][..])
                .unwrap();
        let first = batch.raw_entries()[0].as_deref();
        assert!(first.is_none(), "the {who} stores the retracted add redacted");
        assert!(!contains(&batch.raw_entries()[1].clone().unwrap_or_default(), b"fleeting"));
    }
    assert!(b.engine.remote_holders(&token).unwrap() == 0);
}

#[test]
fn the_origin_redacts_its_own_copy_when_it_retracts() {
    let mut a = node(1, "own-retract-a");
    let id = a.engine.add_record(record(&["own_gone"], true, Handling::H0), "ana").unwrap();
    wires(&mut a);
    a.engine.remove_record(id, RetractReason::NoLongerHeld, "ana").unwrap();
    wires(&mut a);
    let first = a.engine.batch(BatchId::of(&key(1).public_key(), 1, 1)).unwrap().unwrap();
    let first =
        crossmatch_protocol::verify_batch(&first, &FEDERATION, &[key(1).public_key()][..]).unwrap();
    assert!(!first.is_complete(), "the add is redacted in the origin's own store too");
}

#[test]
fn a_fork_of_its_own_feed_moves_the_node_to_a_new_generation() {
    let mut a = node(1, "own-fork-a");
    a.engine.add_record(record(&["own_fork_1"], true, Handling::H0), "ana").unwrap();
    wires(&mut a);
    // A lost incarnation of A signed another seq 1 (e.g. before a restore from backup).
    let position = BatchPosition {
        generation: 1,
        seq: 1,
        prev: BatchHash::ZERO,
        epoch: 1,
        created_at_ms: T0 + 7,
    };
    let other = Entry {
        salt: [9; 16],
        op: Op::Retract(crossmatch_protocol::Retract {
            token: Token([1; 32]),
            reason: RetractReason::Erroneous,
        }),
    };
    let earlier_self = sign_batch(&key(1), &FEDERATION, position, &[other]).unwrap();
    assert_eq!(a.engine.ingest(&earlier_self.to_wire()).unwrap(), IngestOutcome::Fork { seq: 1 });
    assert_eq!(a.engine.own_head(), (2, 0), "the repair is a new generation");
    a.engine.add_record(record(&["own_fork_2"], true, Handling::H0), "ana").unwrap();
    let next = a.engine.publish().unwrap().remove(0);
    assert_eq!((next.header().generation, next.header().seq), (2, 1));
}

#[test]
fn a_second_record_keeping_a_token_longer_renews_the_shared_add() {
    let mut a = node(1, "renew-a");
    a.engine.add_record(record(&["renewed"], true, Handling::H0), "ana").unwrap();
    wires(&mut a);
    a.engine.add_record(record(&["renewed"], true, Handling::H0), "ana").unwrap();
    assert_eq!(a.engine.outbox_len().unwrap(), 0, "same expiry: nothing new to say");
    let longer =
        NewRecord { expires_at_ms: T0 + 120 * DAY_MS, ..record(&["renewed"], true, Handling::H0) };
    let longer_id = a.engine.add_record(longer, "ana").unwrap();
    assert_eq!(a.engine.outbox_len().unwrap(), 1, "a later expiry is announced");
    wires(&mut a);
    a.engine.remove_record(longer_id, RetractReason::NoLongerHeld, "ana").unwrap();
    assert_eq!(
        a.engine.outbox_len().unwrap(),
        1,
        "the shorter expiry still held is announced again"
    );
}

#[test]
fn subscribers_see_an_alert_close_when_its_last_local_record_goes() {
    let mut a = node(1, "close-a");
    let mut b = node(2, "close-b");
    let id = b.engine.add_record(record(&["closing"], false, Handling::H0), "ben").unwrap();
    a.engine.add_record(record(&["closing"], true, Handling::H0), "ana").unwrap();
    b.engine.ingest(&wires(&mut a)[0]).unwrap();
    let mut events = subscribe(&mut b.engine);
    b.engine.remove_record(id, RetractReason::NoLongerHeld, "ben").unwrap();
    assert_eq!(events.try_recv().unwrap().alert.state, AlertState::Closed);
    assert!(b.engine.alerts(None, None).unwrap().is_empty());
}

#[test]
fn fork_evidence_of_two_full_batches_fits_in_one_gossip_message() {
    let full = |salt: u8| -> Vec<u8> {
        let entries: Vec<Entry> = (0..crossmatch_protocol::limits::MAX_ENTRIES_PER_BATCH)
            .map(|i| Entry {
                salt: [salt; 16],
                op: Op::Add(Add {
                    token: Token([i as u8; 32]),
                    kind: Kind::Account,
                    category: "c".repeat(crossmatch_protocol::limits::MAX_CATEGORY_BYTES),
                    handling: Handling::H0,
                    evaluation: Evaluation::new('B', 2).unwrap(),
                    activity_per_day: Some(u64::MAX),
                    expires_at_ms: u64::MAX,
                    algorithmic: false,
                }),
            })
            .collect();
        let position = BatchPosition {
            generation: u32::MAX,
            seq: u64::MAX,
            prev: BatchHash([0xff; 32]),
            epoch: u32::MAX,
            created_at_ms: u64::MAX,
        };
        sign_batch(&key(1), &FEDERATION, position, &entries).unwrap().manifest_bytes().to_vec()
    };
    let evidence = crossmatch_protocol::encode_fork_evidence(&full(1), &full(2));
    assert!(evidence.len() <= crossmatch_node::mesh::MAX_GOSSIP_BYTES, "{}", evidence.len());
    assert!(evidence.len() <= crossmatch_protocol::MAX_FORK_EVIDENCE_BYTES);
}

/// A batch of `signer`'s feed at (generation, seq) after `prev`, holding one add of `token`.
fn batch_at(signer: u8, generation: u32, seq: u64, prev: BatchHash, token: u8) -> VerifiedBatch {
    let position = BatchPosition { generation, seq, prev, epoch: 1, created_at_ms: T0 };
    sign_batch(&key(signer), &FEDERATION, position, &[add_entry(token, T0 + DAY_MS)]).unwrap()
}

#[test]
fn a_node_that_holds_less_of_a_forked_chain_still_fetches_up_to_the_fork() {
    let mut c = node(3, "fork-behind");
    let one = batch_at(1, 1, 1, BatchHash::ZERO, 1);
    let two = batch_at(1, 1, 2, one.hash(), 2);
    let three = batch_at(1, 1, 3, two.hash(), 3);
    let other_three = batch_at(1, 1, 3, two.hash(), 4);
    c.engine.ingest(&one.to_wire()).unwrap();
    let evidence = crossmatch_protocol::encode_fork_evidence(
        three.manifest_bytes(),
        other_three.manifest_bytes(),
    );
    assert_eq!(c.engine.ingest_fork_evidence(&evidence).unwrap(), ForkOutcome::Recorded);
    let chain = c.engine.chain(FeedId::of(&key(1).public_key(), 1)).unwrap();
    assert_eq!((chain.seq, chain.frozen, chain.freeze_at), (1, false, Some(2)));
    // Sync asks for the rest by name (no head will name a generation its origin left).
    let unfinished = c.engine.unfinished_forked_chains().unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(
        (unfinished[0].feed.generation, unfinished[0].from_seq, unfinished[0].to_seq),
        (1, 2, 2)
    );
    // Seq 2 is before the fork: applied, and the chain freezes there.
    assert_eq!(c.engine.ingest(&two.to_wire()).unwrap(), IngestOutcome::Applied { applied: 1 });
    let chain = c.engine.chain(FeedId::of(&key(1).public_key(), 1)).unwrap();
    assert_eq!((chain.seq, chain.frozen), (2, true));
    assert!(c.engine.unfinished_forked_chains().unwrap().is_empty());
    assert_eq!(c.engine.ingest(&three.to_wire()).unwrap(), IngestOutcome::Ignored);
    assert_eq!(c.engine.ingest(&other_three.to_wire()).unwrap(), IngestOutcome::Ignored);
}

#[test]
fn one_member_cannot_fill_the_fork_evidence_store() {
    let mut c = node(3, "fork-flood");
    // Member A forks generation after generation, in generations C holds nothing of.
    for generation in 1..=(MAX_FORKS_PER_ORIGIN as u32 + 3) {
        let prev = if generation == 1 { BatchHash::ZERO } else { BatchHash([9; 32]) };
        let one = batch_at(1, generation, 1, prev, 1);
        let other = batch_at(1, generation, 1, prev, 2);
        let evidence =
            crossmatch_protocol::encode_fork_evidence(one.manifest_bytes(), other.manifest_bytes());
        // Kept (and forwarded) up to the per-origin limit, freezing the generation; past it,
        // neither kept nor frozen: a generation C holds nothing of gets no state at all.
        let within = generation as usize <= MAX_FORKS_PER_ORIGIN;
        let expected = if within {
            ForkOutcome::Recorded
        } else {
            ForkOutcome::OverLimit { penalise: Some(key(1).public_key().to_bytes()) }
        };
        assert_eq!(c.engine.ingest_fork_evidence(&evidence).unwrap(), expected);
        assert_eq!(c.engine.ingest_fork_evidence(&evidence).unwrap(), ForkOutcome::Known);
        let chain = c.engine.chain(FeedId::of(&key(1).public_key(), generation)).unwrap();
        assert_eq!(chain.frozen, within);
        assert_eq!(chain.freeze_at.is_some(), within);
    }
    assert_eq!(c.engine.fork_count().unwrap(), MAX_FORKS_PER_ORIGIN);
    // Evidence against another member is still kept.
    let one = batch_at(2, 1, 1, BatchHash::ZERO, 1);
    let other = batch_at(2, 1, 1, BatchHash::ZERO, 2);
    let evidence =
        crossmatch_protocol::encode_fork_evidence(one.manifest_bytes(), other.manifest_bytes());
    assert_eq!(c.engine.ingest_fork_evidence(&evidence).unwrap(), ForkOutcome::Recorded);
    assert_eq!(c.engine.fork_count().unwrap(), MAX_FORKS_PER_ORIGIN + 1);
}

#[test]
fn an_own_fork_republishes_the_retractions_and_statuses_it_withdrew() {
    let mut a = node(1, "own-fork-retract");
    let kept = a.engine.add_record(record(&["kept_one"], true, Handling::H0), "ana").unwrap();
    let gone = a.engine.add_record(record(&["gone_one"], true, Handling::H0), "ana").unwrap();
    let first = a.engine.publish().unwrap().remove(0);
    a.engine.set_status(kept, Status::Referred, "ana").unwrap();
    a.engine.remove_record(gone, RetractReason::Erroneous, "ana").unwrap();
    let second = a.engine.publish().unwrap().remove(0);
    assert_eq!(second.header().seq, 2);
    // Another seq 2 of A's feed surfaces (a lost incarnation signed it).
    let other = batch_at(1, 1, 2, first.hash(), 7);
    let evidence =
        crossmatch_protocol::encode_fork_evidence(second.manifest_bytes(), other.manifest_bytes());
    assert_eq!(a.engine.ingest_fork_evidence(&evidence).unwrap(), ForkOutcome::Recorded);
    // The status and the retraction of seq 2 go out again in generation 2.
    let again = a.engine.publish().unwrap().remove(0);
    assert_eq!((again.header().generation, again.header().seq), (2, 1));
    let ops: Vec<Op> = again.entries().map(|entry| entry.unwrap().op).collect();
    let token = |name: &str| a.engine.token(&account(name));
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(ops.iter().any(|op| matches!(op, Op::Retract(r) if r.token == token("gone_one"))));
    assert!(ops.iter().any(
        |op| matches!(op, Op::Status(s) if s.token == token("kept_one") && s.status == Status::Referred)
    ));
}

#[test]
fn an_outbox_entry_under_a_damaged_key_is_dropped_not_spun_on() {
    let mut a = node(1, "damaged-outbox");
    let damaged = [&b"o"[..], &[0xff; 10]].concat();
    let item = crossmatch_node::store::OutboxItem { epoch: 1, entry: vec![0xa0] };
    let store = a.engine.store().clone();
    let mut txn = store.txn();
    txn.put(damaged, &item);
    txn.commit_durable().unwrap();
    assert_eq!(a.engine.outbox_len().unwrap(), 1);
    // On a thread with a deadline: the fault this guards against was a loop that never ends.
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let published = a.engine.publish_batches(1).map(|batches| batches.len());
        let _ = done.send((published.map_err(|error| error.to_string()), a));
    });
    let (published, mut a) =
        finished.recv_timeout(std::time::Duration::from_secs(30)).expect("publishing returns");
    assert_eq!(published, Ok(0));
    assert_eq!(a.engine.outbox_len().unwrap(), 0, "the damaged entry is gone");
    assert_eq!(a.engine.counters().outbox_dropped, 1, "and counted");
    // What is added afterwards is published as usual.
    a.engine.add_record(record(&["after_damage"], true, Handling::H0), "ana").unwrap();
    assert_eq!(a.engine.publish().unwrap().len(), 1);
}

#[test]
fn a_stream_of_fork_evidence_leaves_bounded_chain_state() {
    let mut c = node(3, "fork-chains");
    // A member signs two batches at seq 1000 of generation after generation: each pair is
    // valid evidence of a fork in a chain C holds nothing of.
    for generation in 2..=201 {
        let one = batch_at(1, generation, 1000, BatchHash([9; 32]), 1);
        let other = batch_at(1, generation, 1000, BatchHash([9; 32]), 2);
        let evidence =
            crossmatch_protocol::encode_fork_evidence(one.manifest_bytes(), other.manifest_bytes());
        c.engine.ingest_fork_evidence(&evidence).unwrap();
    }
    let origin = key(1).public_key().to_bytes();
    let unfinished = c.engine.unfinished_forked_chains().unwrap();
    assert!(unfinished.len() <= MAX_FORKS_PER_ORIGIN, "{} chains to fetch", unfinished.len());
    let chains = c
        .engine
        .store()
        .scan_keys(&crossmatch_node::store::keys::all_chains())
        .unwrap()
        .into_iter()
        .filter(|key| {
            crossmatch_node::store::keys::parse_chain(key).is_some_and(|feed| feed.origin == origin)
        })
        .count();
    assert!(chains <= MAX_FORKS_PER_ORIGIN, "{chains} chain records for one origin");
}

#[test]
fn a_member_removed_from_the_roster_leaves_data_that_expires_without_error() {
    let dir = TempDir::new("engine-removed-member");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let mut b = Engine::open(dir.path(), EngineConfig::for_test(2), clock.clone()).unwrap();
        ingest_from_member_one(&mut b);
    }
    // The roster moves on without member 1 (key 1).
    let mut config = EngineConfig::for_test(2);
    config.members.retain(|member| member.key != key(1).public_key());
    let mut b = Engine::open(dir.path(), config, clock.clone()).unwrap();
    let heads = b.heads(1 << 20, 0).unwrap();
    assert!(heads.is_empty(), "a removed member's head is not offered");
    let origin = key(1).public_key().to_bytes();
    assert!(b.range(FeedId::new(origin, 1), 1, 64, 1 << 20).unwrap().is_empty());
    assert!(b.fork_evidence(1 << 20).unwrap().is_empty(), "nor is evidence against it");
    clock.set(T0 + 2 * DAY_MS);
    let (entries, _) = b.expire().unwrap();
    assert!(entries > 0, "its entries expire as any other");
    assert_eq!(b.remote_holders(&Token([1; 32])).unwrap(), 0);
    // Purged: the token's bytes are nowhere in the store.
    let token = [1u8; 32];
    let dump = b.store().dump().unwrap();
    let found = dump.iter().any(|(key, value)| {
        key.windows(32).any(|w| w == token) || value.windows(32).any(|w| w == token)
    });
    assert!(!found, "a removed member's expired token is purged");
}

/// Member 1's seqs 1 to 3 (tokens 1 to 3, expiring after a day), and a fork of its seq 3.
fn ingest_from_member_one(engine: &mut Engine) {
    {
        let this = engine;
        let one = batch_at(1, 1, 1, BatchHash::ZERO, 1);
        let two = batch_at(1, 1, 2, one.hash(), 2);
        for batch in [&one, &two] {
            assert!(matches!(
                this.ingest(&batch.to_wire()).unwrap(),
                IngestOutcome::Applied { .. }
            ));
        }
        assert_eq!(this.remote_holders(&Token([1; 32])).unwrap(), 1);
        let three = batch_at(1, 1, 3, two.hash(), 3);
        let other = batch_at(1, 1, 3, two.hash(), 4);
        assert_eq!(this.ingest(&three.to_wire()).unwrap(), IngestOutcome::Applied { applied: 1 });
        assert_eq!(this.ingest(&other.to_wire()).unwrap(), IngestOutcome::Fork { seq: 3 });
        assert_eq!(this.fork_evidence(1 << 20).unwrap().len(), 1);
    }
}

#[test]
fn a_node_refuses_to_start_under_a_new_epoch_with_records_of_the_old_one() {
    let dir = TempDir::new("engine-epoch");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let mut a = Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone()).unwrap();
        a.add_record(record(&["old_epoch"], true, Handling::H0), "ana").unwrap();
    }
    let mut config = EngineConfig::for_test(1);
    config.epoch = 2;
    let error = Engine::open(dir.path(), config, clock.clone()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("epoch 1") && message.contains("epoch 2"), "{message}");
    // The old epoch still opens; a store without records opens under any epoch.
    Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone()).unwrap();
    let empty = TempDir::new("engine-epoch-empty");
    Engine::open(empty.path(), EngineConfig::for_test(1), clock.clone()).unwrap();
    let mut config = EngineConfig::for_test(1);
    config.epoch = 2;
    Engine::open(empty.path(), config, clock).unwrap();
}

#[test]
fn activity_beyond_what_an_entry_may_state_is_refused_when_the_record_is_added() {
    let mut a = node(1, "activity-limit");
    let limit = crossmatch_protocol::limits::MAX_ACTIVITY_PER_DAY;
    let over = NewRecord {
        activity_per_day: Some(limit + 1),
        ..record(&["very_busy"], true, Handling::H0)
    };
    let error = a.engine.add_record(over, "ana").unwrap_err();
    assert!(error.to_string().contains("activity_per_day is at most"), "{error}");
    assert_eq!(a.engine.outbox_len().unwrap(), 0);
    let at_limit =
        NewRecord { activity_per_day: Some(limit), ..record(&["very_busy"], true, Handling::H0) };
    a.engine.add_record(at_limit, "ana").unwrap();
    assert_eq!(a.engine.publish().unwrap().len(), 1, "the share is published");
    assert_eq!(a.engine.counters().outbox_dropped, 0);
}

#[test]
fn the_heads_answer_fits_a_response_however_many_members_hold_full_batches() {
    let members = 130u8;
    let mut config = EngineConfig::for_test(1);
    config.members = crossmatch_node::test_support::members(members + 1);
    let mut a = node_with(config, "heads-many");
    let entries: Vec<Entry> = (0..=255u8).map(|n| add_entry(n, T0 + DAY_MS)).collect();
    for member in 2..=members + 1 {
        let position = BatchPosition {
            generation: 1,
            seq: 1,
            prev: BatchHash::ZERO,
            epoch: 1,
            created_at_ms: T0,
        };
        let batch = sign_batch(&key(member), &FEDERATION, position, &entries).unwrap();
        let outcome = a.engine.ingest(&batch.to_wire()).unwrap();
        assert_eq!(outcome, IngestOutcome::Applied { applied: 1 });
    }
    let limit = crossmatch_protocol::MAX_SYNC_RESPONSE_BYTES as usize - 1024;
    let mut seen = std::collections::HashSet::new();
    for rotation in 0..8 {
        let heads = a.engine.heads(limit, rotation * 17).unwrap();
        let answer = crossmatch_protocol::SyncResponse::Heads(heads.clone());
        let mut encoded = Vec::new();
        ciborium::ser::into_writer(&answer, &mut encoded).unwrap();
        assert!(encoded.len() as u64 <= crossmatch_protocol::MAX_SYNC_RESPONSE_BYTES);
        assert!(heads.len() > 64, "as many heads as fit: {}", heads.len());
        seen.extend(heads);
    }
    assert_eq!(seen.len(), members as usize, "rotating answers cover every member's head");
}

/// Every path under `dir` whose mode lets group or others in.
fn open_paths(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut open = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            open.push(format!("{} {mode:o}", entry.path().display()));
        }
        if entry.file_type().unwrap().is_dir() {
            open.extend(open_paths(&entry.path()));
        }
    }
    open
}

#[test]
fn a_new_node_keeps_everything_it_writes_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = TempDir::new("engine-private");
    let data = root.path().join("data");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let mut a = Engine::open(&data, EngineConfig::for_test(1), clock.clone()).unwrap();
        a.add_record(record(&["private_one"], true, Handling::H0), "ana").unwrap();
        a.publish().unwrap();
        a.expire().unwrap();
    }
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(open_paths(&data), Vec::<String>::new());
    // A data directory others can read is refused, saying what to do.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let error = Engine::open(&data, EngineConfig::for_test(1), clock).unwrap_err();
    assert!(error.to_string().contains("chmod 700"), "{error}");
}

#[test]
fn a_heads_answer_is_judged_within_one_head_per_member() {
    let a = node(1, "heads-bound");
    // 100 heads of member 2's generations; the roster has 3 members.
    let manifests: Vec<Vec<u8>> = (1..=100)
        .map(|generation| {
            batch_at(2, generation, 1000, BatchHash([9; 32]), 1).manifest_bytes().to_vec()
        })
        .collect();
    let judgement = a.engine.judge_heads(&manifests).unwrap();
    assert_eq!(judgement.excess, 99, "97 past the roster's size, 2 more of one origin");
    assert_eq!(judgement.claims.len(), 1, "one head of member 2 looked at");
    assert_eq!((judgement.claims[0].feed.generation, judgement.claims[0].to_seq), (1, 1000));
    assert_eq!(judgement.own, OwnWitness::Nothing);
}

#[test]
fn only_a_head_of_the_own_feed_that_proves_it_confirms_it() {
    let mut a = node(1, "own-witness");
    let judge = |a: &Node, manifests: &[&VerifiedBatch]| {
        let manifests: Vec<Vec<u8>> =
            manifests.iter().map(|batch| batch.manifest_bytes().to_vec()).collect();
        a.engine.judge_heads(&manifests).unwrap().own
    };
    let other_member = batch_at(2, 1, 1, BatchHash::ZERO, 1);
    assert_eq!(judge(&a, &[]), OwnWitness::Nothing, "an empty answer proves nothing");
    assert_eq!(judge(&a, &[&other_member]), OwnWitness::Nothing, "nor one without the feed");
    a.engine.add_record(record(&["own_1"], true, Handling::H1), "ana").unwrap();
    let first = a.engine.publish().unwrap().remove(0);
    assert_eq!(judge(&a, &[&other_member, &first]), OwnWitness::Confirms, "the own head");
    let other_first = batch_at(1, 1, 1, BatchHash::ZERO, 7);
    assert_eq!(judge(&a, &[&other_first]), OwnWitness::Contradicts, "another batch there");
    let further = batch_at(1, 1, 5, BatchHash([9; 32]), 7);
    assert_eq!(judge(&a, &[&further]), OwnWitness::Ahead(1, 5));
    a.engine.add_record(record(&["own_2"], true, Handling::H1), "ana").unwrap();
    a.engine.publish().unwrap();
    assert_eq!(judge(&a, &[&first]), OwnWitness::Nothing, "a head behind the own head");
    // A new generation with nothing in it yet: a peer that holds an earlier generation and
    // nothing of this one proves the node's state.
    assert_eq!(a.engine.start_new_generation().unwrap(), 2);
    assert_eq!(judge(&a, &[&first]), OwnWitness::Confirms, "an earlier generation held");
}

/// The record ids the audit log of the node in `dir` names.
pub(crate) fn audited_record_ids(dir: &std::path::Path) -> std::collections::HashSet<u64> {
    let log =
        std::fs::read_to_string(dir.join("audit").join(crossmatch_node::audit::LOG_FILE_NAME))
            .unwrap();
    log.lines()
        .flat_map(|line| line.split('\t'))
        .filter_map(|field| field.strip_prefix("record:")?.parse().ok())
        .collect()
}

#[test]
fn a_record_id_the_audit_log_names_is_never_issued_again_after_a_lost_write() {
    let dir = TempDir::new("engine-lost-write");
    let clock = Arc::new(ManualClock::new(T0));
    let open = || Engine::open(dir.path(), EngineConfig::for_test(0), clock.clone()).unwrap();
    let mut engine = open();
    engine.store().keep_last_batch();
    let kept = engine.add_record(record(&["@kept"], true, Handling::H1), "ana").unwrap();
    let lost = engine.add_record(record(&["@lost"], true, Handling::H1), "ana").unwrap();
    // A crash after the audit line of the second add and before its store write reached the
    // disk: the write is gone, its audit line is not.
    engine.store().drop_last_batch().unwrap();
    drop(engine);
    let audited = audited_record_ids(dir.path());
    assert!(audited.contains(&kept) && audited.contains(&lost), "{audited:?}");

    let mut engine = open();
    assert!(engine.read_record(kept, "ana").unwrap().is_some());
    assert!(engine.read_record(lost, "ana").unwrap().is_none(), "the hook lost nothing");
    for n in 0..3 {
        let handle = format!("@after{n}");
        let id = engine.add_record(record(&[&handle], true, Handling::H1), "ana").unwrap();
        assert!(!audited.contains(&id), "record id {id} issued again; the audit log names it");
    }
}

#[test]
fn an_added_record_is_synced_to_the_disk_before_add_returns() {
    // The engine alone, with no publisher or other task that could sync the store meanwhile:
    // the sync counted is the add's own.
    let mut a = node(1, "synced-add");
    let before = a.engine.store().syncs();
    a.engine.add_record(record(&["@synced"], true, Handling::H1), "ana").unwrap();
    assert!(a.engine.store().syncs() > before, "add_record returned before the store was synced");
    let before = a.engine.store().syncs();
    a.engine.add_records(vec![record(&["@bulk"], false, Handling::H1)], "ana").unwrap();
    assert!(a.engine.store().syncs() > before, "add_records returned before the store was synced");
}
