//! Retention: entries whose time has come are redacted in their stored batches and forgotten by
//! the indexes and alerts; local records past their expiry are deleted. Purged means the
//! token's bytes are nowhere in the store.

use std::collections::BTreeMap;

use crossmatch_protocol::{BatchId, Entry, Op};

use super::{Engine, Result, put_stored_batch};
use crate::store::{self, OwnAdd, OwnSnapshot, Record, RemoteAdd, keys};

/// Expired records purged per durable write set: a long expiry is written in slices, so no
/// write set outgrows the store's reserve of free space (`store/space.rs`).
const PURGE_SLICE: usize = 1_000;
/// Expiry rows purged per durable write set. Each may rewrite a stored batch (at most 56 KiB,
/// the batch limit): 8 of them stay under 512 KiB, well within what a commit may use of the
/// reserve. sled keeps every leaf a write set replaces until the set ends, so the slice sets the
/// purge's memory: at a million entries, 8 left the member 761 MB resident after the purge
/// where 64 left 830 MB, in the same time (docs/BENCHMARKS.md).
pub const ENTRY_PURGE_SLICE: usize = 8;

impl Engine {
    /// Enforces retention at `now`: entries whose time has come are redacted in their stored
    /// batches and forgotten by indexes and alerts; local records past expiry are deleted.
    /// Returns how many expiry groups (one per batch and expiry time) and records were purged.
    /// Everything goes in bounded slices, each its own durable write set read from the store
    /// afresh, so the purge's memory does not grow with what is due, and a purge stopped
    /// anywhere (a crash) is finished by the next.
    pub fn expire(&mut self) -> Result<(usize, usize)> {
        // A rotation's grace period may have ended: its purge is retention's too (one bounded
        // step here; the daemon's slice worker carries the rest).
        self.rotation_step()?;
        let mut groups = 0;
        loop {
            let purged = self.expire_entries_step()?;
            groups += purged;
            if purged < ENTRY_PURGE_SLICE {
                break;
            }
        }
        let now = self.clock.now_ms();
        let (from, to) = keys::record_expiries_due(now);
        let mut records = 0;
        loop {
            let due = self.store.range_keys(&from, &to, PURGE_SLICE)?;
            // The own community snapshots past their expiry go with the first slice.
            self.expire_records(&due, now, records == 0)?;
            records += due.len();
            if due.len() < PURGE_SLICE {
                break;
            }
        }
        self.compact_own_log()?;
        // Files sled created since (its snapshots) get the process's umask: make them private.
        store::make_private(&self.dir)?;
        Ok((groups, records))
    }

    /// Purges one slice of the entries due now (at most [`ENTRY_PURGE_SLICE`] expiry groups) in
    /// one durable write set; returns how many groups it purged, 0 when none is due.
    pub fn expire_entries_step(&mut self) -> Result<usize> {
        let now = self.clock.now_ms();
        let (from, to) = keys::expiries_due(now);
        let due = self.store.range_keys(&from, &to, ENTRY_PURGE_SLICE)?;
        if !due.is_empty() {
            self.expire_entries(&due, now)?;
        }
        Ok(due.len())
    }

    /// Purges the entries named by the expiry rows `due` in one durable write set: a slice,
    /// so a long expiry never builds one write as large as everything due (each slice is
    /// whole: its rows go with what they purge).
    fn expire_entries(&mut self, due: &[Vec<u8>], now: u64) -> Result<()> {
        let mut txn = self.store.txn();
        let mut events = Vec::new();
        let mut by_batch: BTreeMap<BatchId, Vec<usize>> = BTreeMap::new();
        for key in due {
            let parsed = keys::parse_expiry(key);
            let indices: Vec<u32> = txn.get(key)?.unwrap_or_default();
            txn.remove(key.clone());
            let Some((_, id)) = parsed else { continue };
            txn.put_tombstones(&id, indices.iter().copied())?;
            by_batch.entry(id).or_default().extend(indices.iter().map(|&index| index as usize));
        }
        for (id, indices) in &by_batch {
            let Some(batch) = self.stored_batch(&txn, id)? else {
                continue;
            };
            let origin = *id.origin();
            for (index, entry) in batch.entries().enumerate() {
                if !indices.contains(&index) {
                    continue;
                }
                let here = (*id, index as u32);
                if let Ok(Entry { op: Op::Tag(tag), .. }) = &entry {
                    if !self.is_own(&origin) {
                        self.expire_remote_tag(&mut txn, here, tag)?;
                    }
                    continue;
                }
                let Ok(Entry { op: Op::Add(add), .. }) = entry else { continue };
                if self.is_own(&origin) {
                    let key = keys::own_add(&add.token);
                    if txn.get::<OwnAdd>(&key)?.is_some_and(|a| a.place(origin) == here) {
                        txn.remove(key);
                    }
                    continue;
                }
                let key = keys::remote_add(&add.token, &origin);
                if let Some(live) = txn.get::<RemoteAdd>(&key)?.filter(|a| a.place(origin) == here)
                {
                    self.retire_remote_add(&mut txn, &add.token, &origin, &live)?;
                    events.extend(self.refresh_alert(&mut txn, &add.token, now, false)?);
                }
            }
            put_stored_batch(&mut txn, &batch.redacted(indices));
        }
        txn.commit_durable()?;
        self.announce(events);
        Ok(())
    }

    /// Deletes the local records named by the expiry rows `due` in one durable write set (a
    /// slice), with the own community snapshots past their expiry when `snapshots` is set.
    fn expire_records(&mut self, due: &[Vec<u8>], now: u64, snapshots: bool) -> Result<()> {
        let mut txn = self.store.txn();
        let mut events = Vec::new();
        // Own community snapshots past their expiry: their token lists go.
        if snapshots {
            for (key, snapshot) in txn.scan::<OwnSnapshot>(&keys::all_own_snapshots())? {
                if snapshot.expires_at_ms <= now {
                    txn.remove(key);
                }
            }
        }
        for key in due {
            txn.remove(key.clone());
            let Some((_, id)) = keys::parse_record_expiry(key) else { continue };
            if let Some(record) = txn.get::<Record>(&keys::record(id))? {
                txn.remove(keys::record(id));
                self.forget_import_rows(&mut txn, &record)?;
                for identifier in &record.identifiers {
                    txn.remove(keys::holding(&identifier.token, id));
                    events.extend(self.refresh_alert(&mut txn, &identifier.token, now, false)?);
                }
            }
        }
        txn.commit_durable()?;
        self.announce(events);
        Ok(())
    }
}
