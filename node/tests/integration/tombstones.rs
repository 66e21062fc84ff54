//! Tombstones, a row per batch: what retention and a relay's redaction leave behind, and the
//! migration that folds schema 4's row per entry into them.

use std::sync::Arc;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::{Engine, EngineConfig, IngestOutcome};
use crossmatch_node::store::{SCHEMA_VERSION, Store, keys};
use crossmatch_node::test_support::{FEDERATION, ManualClock, T0, TempDir, add_entry, key};
use crossmatch_protocol::{BatchHash, BatchId, BatchPosition, Token, VerifiedBatch, sign_batch};

/// Member 1's first batch, holding adds of `tokens` that expire a day after `T0`.
fn first_batch(tokens: &[u8]) -> VerifiedBatch {
    let position =
        BatchPosition { generation: 1, seq: 1, prev: BatchHash::ZERO, epoch: 1, created_at_ms: T0 };
    let entries: Vec<_> = tokens.iter().map(|&t| add_entry(t, T0 + DAY_MS)).collect();
    sign_batch(&key(1), &FEDERATION, position, &entries).unwrap()
}

fn open(dir: &TempDir, clock: &Arc<ManualClock>) -> Engine {
    Engine::open(dir.path(), EngineConfig::for_test(3), clock.clone()).unwrap()
}

#[test]
fn retention_leaves_one_tombstone_row_per_batch_and_no_copy_refills_what_it_purged() {
    let dir = TempDir::new("tombstones-retention");
    let clock = Arc::new(ManualClock::new(T0));
    let mut c = open(&dir, &clock);
    let complete = first_batch(&[1, 2, 3]);
    assert_eq!(c.ingest(&complete.to_wire()).unwrap(), IngestOutcome::Applied { applied: 1 });
    clock.set(T0 + 2 * DAY_MS);
    assert_eq!(c.expire().unwrap().0, 1, "one expiry group");
    let store = c.store();
    let rows = store.scan_keys(&[keys::prefix::TOMBSTONES]).unwrap();
    assert_eq!(rows, [keys::tombstones(&complete.id())], "one row for the batch");
    assert!(store.scan_keys(&keys::all_entry_tombstones()).unwrap().is_empty(), "none per entry");
    let tombstones = store.tombstones(&complete.id()).unwrap();
    assert_eq!((0..256).filter(|&i| tombstones.contains(i)).collect::<Vec<_>>(), [0, 1, 2]);
    // A peer's complete copy refills nothing that retention purged.
    let outcome = c.ingest(&complete.to_wire()).unwrap();
    assert_eq!(outcome, IngestOutcome::Duplicate { filled: 0 });
    assert_eq!(c.remote_holders(&Token([2; 32])).unwrap(), 0);
}

#[test]
fn a_schema_4_store_has_its_tombstones_folded_at_open_and_they_still_refuse_refilling() {
    let complete = first_batch(&[1, 2, 3]);
    let id = complete.id();
    // Two stores hold the batch with entries 1 and 2 nulled by a relay; in one, this node had
    // redacted entry 1 for good (its schema 4 row).
    for tombstoned in [false, true] {
        let dir = TempDir::new(&format!("tombstones-schema-4-{tombstoned}"));
        let clock = Arc::new(ManualClock::new(T0));
        {
            let mut c = open(&dir, &clock);
            let nulled = complete.redacted(&[1, 2]).to_wire();
            assert_eq!(c.ingest(&nulled).unwrap(), IngestOutcome::Applied { applied: 1 });
            let mut txn = c.store().txn();
            if tombstoned {
                txn.put(keys::entry_tombstone(&id, 1), &());
            }
            txn.put(keys::meta("schema"), &4u32);
            txn.commit_durable().unwrap();
        }
        let mut c = open(&dir, &clock);
        let store = c.store();
        assert_eq!(store.get::<u32>(&keys::meta("schema")).unwrap(), Some(SCHEMA_VERSION));
        assert!(store.scan_keys(&keys::all_entry_tombstones()).unwrap().is_empty());
        let tombstones = store.tombstones(&id).unwrap();
        assert_eq!(
            (tombstones.contains(1), tombstones.len()),
            (tombstoned, usize::from(tombstoned))
        );
        // The complete copy fills both holes, or only the one not redacted for good.
        let filled = if tombstoned { 1 } else { 2 };
        assert_eq!(c.ingest(&complete.to_wire()).unwrap(), IngestOutcome::Duplicate { filled });
        assert_eq!(c.remote_holders(&Token([2; 32])).unwrap(), usize::from(!tombstoned));
        assert_eq!(c.remote_holders(&Token([3; 32])).unwrap(), 1);
    }
}

#[test]
fn the_fold_spans_its_slices_and_keeps_the_bits_a_row_per_batch_held_already() {
    let dir = TempDir::new("tombstones-fold");
    // Ten batches with 251 schema 4 rows each: the migration's slices of 1,000 rows end within
    // batches 4 and 8 (counting from 1), whose second slice reads back the row the first wrote.
    // The first batch's row per batch holds entry 0 already (a copy cut short, then a
    // schema 4 build ran the store and wrote more rows).
    let ids: Vec<BatchId> = (1..=10).map(|seq| BatchId::new([7; 32], 1, seq)).collect();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut txn = store.txn();
        for id in &ids {
            for index in 5..256 {
                txn.put(keys::entry_tombstone(id, index), &());
            }
        }
        txn.put_tombstone(&ids[0], 0).unwrap();
        txn.put(keys::meta("schema"), &4u32);
        txn.commit_durable().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get::<u32>(&keys::meta("schema")).unwrap(), Some(SCHEMA_VERSION));
    assert!(store.scan_keys(&keys::all_entry_tombstones()).unwrap().is_empty());
    for (n, id) in ids.iter().enumerate() {
        let tombstones = store.tombstones(id).unwrap();
        let marked: Vec<usize> = (0..256).filter(|&i| tombstones.contains(i)).collect();
        let expected: Vec<usize> = (n == 0).then_some(0).into_iter().chain(5..256).collect();
        assert_eq!(marked, expected, "batch {n}");
    }
}

#[test]
fn rows_per_entry_left_after_the_version_was_written_are_deleted_and_the_bits_kept() {
    let dir = TempDir::new("tombstones-leftover");
    let id = BatchId::new([7; 32], 1, 1);
    {
        // A fold that wrote its rows and version 5, then stopped before deleting every `z` row.
        let store = Store::open(dir.path()).unwrap();
        let mut txn = store.txn();
        txn.put_tombstones(&id, [3, 4]).unwrap();
        txn.put(keys::entry_tombstone(&id, 3), &());
        txn.put(keys::entry_tombstone(&id, 4), &());
        txn.commit_durable().unwrap();
        assert_eq!(store.scan_keys(&keys::all_entry_tombstones()).unwrap().len(), 2);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get::<u32>(&keys::meta("schema")).unwrap(), Some(SCHEMA_VERSION));
    assert!(store.scan_keys(&keys::all_entry_tombstones()).unwrap().is_empty());
    let tombstones = store.tombstones(&id).unwrap();
    assert_eq!((0..256).filter(|&i| tombstones.contains(i)).collect::<Vec<_>>(), [3, 4]);
}
