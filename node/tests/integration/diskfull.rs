//! The store's reserve of free space met by the engine, made to refuse without filling a disk
//! (the test-only stand-in for the file system's figure): nothing a refused write leaves behind
//! breaks the own feed, the audit log's record ids or the next start.

use std::path::Path;
use std::sync::Arc;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::{Engine, EngineConfig, IngestOutcome, NewRecord};
use crossmatch_node::store::space::{RESERVE_BYTES, simulated};
use crossmatch_node::test_support::{ManualClock, T0, TempDir, key, record_until};
use crossmatch_protocol::{BatchId, Handling};

fn open(dir: &Path, n: u8, clock: &Arc<ManualClock>) -> Engine {
    Engine::open(dir, EngineConfig::for_test(n), clock.clone()).expect("engine opens")
}

fn shared(name: &str) -> NewRecord {
    NewRecord { handling: Handling::H1, ..record_until(&[name], true, T0 + 90 * DAY_MS) }
}

fn is_disk_full(error: &crossmatch_node::engine::Error) -> bool {
    let text = error.to_string();
    text.contains("the disk is full")
}

/// How many audit lines name each record id.
fn audited_record_counts(dir: &Path) -> std::collections::HashMap<u64, usize> {
    let log =
        std::fs::read_to_string(dir.join("audit").join(crossmatch_node::audit::LOG_FILE_NAME))
            .expect("audit log");
    let mut counts = std::collections::HashMap::new();
    for id in log
        .lines()
        .flat_map(|line| line.split('\t'))
        .filter_map(|field| field.strip_prefix("record:")?.parse::<u64>().ok())
    {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[test]
fn a_publish_refused_at_its_commit_is_committed_again_before_the_next_batch_is_signed() {
    let dir = TempDir::new("diskfull-publish");
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = open(dir.path(), 1, &clock);
    a.add_record(shared("@first"), "ana").expect("add with room");
    // The disk fills between the check before signing and the commit.
    simulated::set_available_to_commits(dir.path(), Some(0));
    let refused = a.publish().expect_err("the commit of the batch is refused");
    assert!(is_disk_full(&refused), "{refused}");
    simulated::set_available_to_commits(dir.path(), None);

    a.add_record(shared("@second"), "ana").expect("add once space is back");
    let published = a.publish().expect("publish once space is back");
    let seqs: Vec<u64> = published.iter().map(|batch| batch.id().seq).collect();
    assert_eq!(seqs, [1, 2], "the batch committed again is returned too, to be gossiped");
    let origin = key(1).public_key().to_bytes();
    let first = a.batch(BatchId::new(origin, 1, 1)).unwrap().expect("seq 1 is stored");
    let second = published.last().expect("a new batch").to_wire();
    assert_eq!(published.last().unwrap().id().seq, 2, "the new batch follows the logged one");

    // A peer takes the chain with no gap and no fork, before and after A's restart replays
    // its own-feed log.
    let peer_dir = TempDir::new("diskfull-publish-peer");
    let mut peer = open(peer_dir.path(), 2, &clock);
    assert_eq!(peer.ingest(&first).unwrap(), IngestOutcome::Applied { applied: 1 });
    assert_eq!(peer.ingest(&second).unwrap(), IngestOutcome::Applied { applied: 1 });
    drop(a);
    let mut a = open(dir.path(), 1, &clock);
    assert_eq!(a.batch(BatchId::new(origin, 1, 1)).unwrap(), Some(first), "seq 1 was re-signed");
    a.add_record(shared("@third"), "ana").unwrap();
    let third = a.publish().unwrap();
    assert_eq!(third.last().unwrap().id().seq, 3);
    assert_eq!(peer.ingest(&third[0].to_wire()).unwrap(), IngestOutcome::Applied { applied: 1 });
    assert!(peer.forks().unwrap().is_empty(), "a fork of A's feed");
}

#[test]
fn a_publish_short_of_the_reserve_signs_nothing() {
    let dir = TempDir::new("diskfull-sign");
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = open(dir.path(), 1, &clock);
    a.add_record(shared("@first"), "ana").unwrap();
    simulated::set_available(dir.path(), Some(RESERVE_BYTES - 1));
    let refused = a.publish().expect_err("no batch is signed short of the reserve");
    assert!(is_disk_full(&refused), "{refused}");
    simulated::set_available(dir.path(), None);
    let published = a.publish().unwrap();
    assert_eq!(published.first().map(|b| b.id().seq), Some(1));
}

#[test]
fn an_add_refused_for_a_full_disk_leaves_no_audit_line_and_ids_are_issued_once() {
    let dir = TempDir::new("diskfull-audit");
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = open(dir.path(), 1, &clock);
    a.add_record(shared("@before"), "ana").unwrap();
    let before = audited_record_counts(dir.path());
    simulated::set_available(dir.path(), Some(RESERVE_BYTES - 1));
    for n in 0..3 {
        let refused = a.add_record(shared(&format!("@full{n}")), "ana").expect_err("refused");
        assert!(is_disk_full(&refused), "{refused}");
    }
    assert_eq!(audited_record_counts(dir.path()), before, "a refused add left an audit line");
    simulated::set_available(dir.path(), None);
    for n in 0..3 {
        a.add_record(shared(&format!("@after{n}")), "ana").unwrap();
    }
    let twice: Vec<_> =
        audited_record_counts(dir.path()).into_iter().filter(|(_, count)| *count > 1).collect();
    assert!(twice.is_empty(), "record ids the audit log names twice: {twice:?}");
}

#[test]
fn an_add_refused_at_its_commit_never_gives_its_audited_id_to_the_next_add() {
    let dir = TempDir::new("diskfull-commit-id");
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = open(dir.path(), 1, &clock);
    a.add_record(shared("@before"), "ana").unwrap();
    // The disk fills between the check before the audit line and the commit.
    simulated::set_available_to_commits(dir.path(), Some(0));
    let refused = a.add_record(shared("@refused"), "ana").expect_err("the commit is refused");
    assert!(is_disk_full(&refused), "{refused}");
    simulated::set_available_to_commits(dir.path(), None);
    a.add_record(shared("@after"), "ana").unwrap();
    let twice: Vec<_> =
        audited_record_counts(dir.path()).into_iter().filter(|(_, count)| *count > 1).collect();
    assert!(twice.is_empty(), "record ids the audit log names twice: {twice:?}");
}

#[test]
fn a_new_generation_refused_for_a_full_disk_leaves_the_own_feed_where_it_was() {
    let dir = TempDir::new("diskfull-generation");
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = open(dir.path(), 1, &clock);
    a.add_record(shared("@first"), "ana").unwrap();
    assert_eq!(a.publish().unwrap().len(), 1);
    simulated::set_available_to_commits(dir.path(), Some(0));
    let refused = a.start_new_generation().expect_err("the generation's commit is refused");
    assert!(is_disk_full(&refused), "{refused}");
    simulated::set_available_to_commits(dir.path(), None);
    assert_eq!(a.start_new_generation().unwrap(), 2, "the refused generation was taken in memory");
    a.add_record(shared("@second"), "ana").unwrap();
    let batch = a.publish().unwrap().pop().expect("a batch of the new generation");
    assert_eq!((batch.id().generation(), batch.id().seq), (2, 1));
}

#[test]
fn a_node_starts_and_reads_while_the_disk_is_full_and_never_reissues_a_reserved_id() {
    let dir = TempDir::new("diskfull-start");
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = open(dir.path(), 1, &clock);
    let kept = a.add_record(shared("@kept"), "ana").unwrap();
    drop(a);
    let audited = audited_record_counts(dir.path());

    simulated::set_available(dir.path(), Some(0));
    let mut a = Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone())
        .expect("a node starts while the disk is full");
    assert!(a.read_record(kept, "ana").unwrap().is_some(), "a read while full");
    assert!(a.publish().is_err(), "nothing is signed while full");
    simulated::set_available(dir.path(), None);
    let id = a.add_record(shared("@after"), "ana").unwrap();
    assert!(!audited.contains_key(&id), "record id {id} issued again");
    assert!(id > kept + 1, "the reserved ids were skipped (id {id})");
}
