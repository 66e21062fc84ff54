//! The end of a grace period: every stored entry of an epoch older than the new one is
//! redacted in its stored batch (with a tombstone, so no copy refills it) and forgotten by the
//! indexes (`t`, `w`, `G`), the way retention forgets an expired entry, a slice of stored
//! batches per step (at most [`PURGE_SLICE`] batches and about [`SLICE_ROWS`] entries), each
//! one durable write with its cursor; the alerts those entries counted for are computed again.

use std::collections::BTreeSet;

use crossmatch_protocol::{FederationSecret, Op, Token, claimed_batch};

use super::{RotationPlan, Stage};
use crate::engine::{Engine, Result, SLICE_ROWS, put_stored_batch};
use crate::store::{OwnAdd, RemoteAdd, keys};

/// Stored batches looked at per step at most; a step also ends once it has looked at
/// [`SLICE_ROWS`] entries (a batch is not split).
pub const PURGE_SLICE: usize = 128;

impl Engine {
    /// Purges the old epoch's entries from the next slice of stored batches (from the key
    /// `from` on); when none is left, the plan forgets both secrets and only republication is
    /// left.
    pub(super) fn purge_slice(&mut self, plan: &RotationPlan, from: &[u8]) -> Result<()> {
        let (start, end) = keys::batches_from(from);
        let store = self.store.clone();
        let batch_keys = store.range_keys(&start, &end, PURGE_SLICE)?;
        if batch_keys.is_empty() {
            let mut done = plan.clone();
            done.stage = Stage::Done;
            done.old_secret = FederationSecret::from_bytes([0; 32]);
            done.new_secret = FederationSecret::from_bytes([0; 32]);
            let mut txn = store.txn();
            txn.put(keys::rotation_plan(), &done);
            txn.commit_durable()?;
            self.rotation = Some(done);
            tracing::info!(old_epoch = plan.old_epoch, "rotation: old epoch purged");
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut txn = store.txn();
        let mut touched: BTreeSet<Token> = BTreeSet::new();
        let mut last = Vec::new();
        let mut entries_seen = 0;
        for key in &batch_keys {
            if entries_seen >= SLICE_ROWS {
                break;
            }
            last.clone_from(key);
            let Some(id) = keys::parse_batch(key) else { continue };
            let Some(wire) = txn.get_raw(key)? else { continue };
            let older = claimed_batch(&wire, &self.config.federation_id)
                .is_some_and(|(claim, _)| claim.header.epoch < plan.new_epoch);
            if !older {
                continue;
            }
            let Some(batch) = self.stored_batch(&txn, &id)? else { continue };
            entries_seen += batch.header().entry_digests.len();
            let origin = *id.origin();
            let own = self.is_own(&origin);
            let mut indices = Vec::new();
            for (index, entry) in batch.entries().enumerate() {
                // Redacted already (expired, retracted, or purged before a crash): nothing left.
                let Ok(entry) = entry else { continue };
                let here = (id, index as u32);
                indices.push(index);
                txn.put_tombstone(&id, index as u32)?;
                match entry.op {
                    Op::Add(add) if own => {
                        let key = keys::own_add(&add.token);
                        if txn.get::<OwnAdd>(&key)?.is_some_and(|a| a.place(origin) == here) {
                            txn.remove(key);
                        }
                    }
                    Op::Add(add) => {
                        let key = keys::remote_add(&add.token, &origin);
                        if let Some(live) =
                            txn.get::<RemoteAdd>(&key)?.filter(|a| a.place(origin) == here)
                        {
                            self.retire_remote_add(&mut txn, &add.token, &origin, &live)?;
                            touched.insert(add.token);
                        }
                    }
                    Op::Tag(tag) if !own => self.expire_remote_tag(&mut txn, here, &tag)?,
                    _ => {}
                }
            }
            if !indices.is_empty() {
                put_stored_batch(&mut txn, &batch.redacted(&indices));
            }
        }
        let mut events = Vec::new();
        for token in &touched {
            events.extend(self.refresh_alert(&mut txn, token, now, false)?);
        }
        let mut next = plan.clone();
        let mut from = last;
        from.push(0);
        next.stage = Stage::Purging { from };
        txn.put(keys::rotation_plan(), &next);
        txn.commit_durable()?;
        self.rotation = Some(next);
        self.announce(events);
        Ok(())
    }
}
