//! The republication of this node's own live shares under its new node key after a routine key
//! change: for each shared record made before the change, the add its longest-held token makes
//! and its status, then the live community snapshots' tags, as an epoch's republication does.
//! A slice of [`REPUBLISH_SLICE`] records at a time, put in the outbox only when it is empty
//! (so an analyst's new add is always signed first), in one durable write with the cursor
//! (`K`): a crash between two slices resumes at the next one, and no slice goes out twice.
//! Fed by the publisher when its outbox is empty and by the daemon's slice worker.

use super::{OwnKeys, OwnRepublication};
use crate::engine::rotation::REPUBLISH_SLICE;
use crate::engine::{Engine, Result};
use crate::store::{Record, keys};

impl Engine {
    /// The republication under a new own key, while it is under way.
    pub fn own_republication(&self) -> Result<Option<OwnRepublication>> {
        Ok(self.store.get::<OwnKeys>(&keys::own_keys())?.and_then(|keys| keys.republication))
    }

    /// Puts the next slice of the republication under the new key in the outbox (or, after the
    /// last record, the snapshots' tags, and ends it). Called only when the outbox is empty;
    /// returns whether the republication moved on.
    pub(in crate::engine) fn feed_own_republication(&mut self) -> Result<bool> {
        let Some(mut own_keys) = self.store.get::<OwnKeys>(&keys::own_keys())? else {
            return Ok(false);
        };
        let Some(mut progress) = own_keys.republication else { return Ok(false) };
        let now = self.clock.now_ms();
        let (from, to) = keys::records_after(progress.after);
        let to = to.min(keys::record(progress.through.saturating_add(1))).max(from.clone());
        let store = self.store.clone();
        let record_keys = store.range_keys(&from, &to, REPUBLISH_SLICE)?;
        let mut txn = store.txn();
        match record_keys.last().and_then(|key| keys::parse_record(key)) {
            Some(last) => {
                for key in &record_keys {
                    let Some(record) = txn.get::<Record>(key)? else { continue };
                    if record.shared && record.expires_at_ms > now {
                        progress.republished_records += 1;
                    }
                    self.republish_record(&mut txn, &record, now)?;
                }
                progress.after = last;
                own_keys.republication = Some(progress);
            }
            None => {
                self.republish_snapshots(&mut txn, now)?;
                own_keys.republication = None;
                tracing::info!(
                    republished = progress.republished_records,
                    "own live shares republished under the new node key"
                );
            }
        }
        txn.put(keys::own_keys(), &own_keys);
        txn.commit_durable()?;
        if let Some(change) = &mut self.own_key_change {
            change.republished_records = progress.republished_records;
        }
        Ok(true)
    }

    /// The slice worker's share: one slice, if the outbox is empty (analysts' adds go first).
    /// Returns whether one went in.
    pub(in crate::engine) fn own_republication_step(&mut self) -> Result<bool> {
        if !self.store.scan_first::<crate::store::OutboxItem>(&keys::all_outbox(), 1)?.is_empty() {
            return Ok(false);
        }
        self.feed_own_republication()
    }
}
