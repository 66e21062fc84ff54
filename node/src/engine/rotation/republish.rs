//! Republication under a new epoch (the quota rule that lets it through at peers is
//! `engine/allowance.rs`).
//!
//! **Pacing.** After the switch, the node's live shares go out again under the new epoch: for
//! each shared record, the add its longest-held token makes (with its activity and algorithmic
//! marker) and its status, then its community snapshots' tags. They are not put in the outbox
//! all at once: the publisher fills the outbox with the next slice of
//! [`REPUBLISH_SLICE`] records only when the outbox is empty, so an analyst's new add is always
//! signed before the next slice, and the outbox never holds the whole feed.

use std::cmp::Reverse;

use crossmatch_protocol::{Op, StatusUpdate, Tag};

use super::Stage;
use crate::engine::{Engine, Result};
use crate::store::{OwnSnapshot, Record, Txn, keys};

/// Records republished per slice.
pub const REPUBLISH_SLICE: usize = 64;
impl Engine {
    /// Puts the next slice of republication in the outbox (or, after the last record, the
    /// snapshots' tags, and then ends republication). Called only when the outbox is empty;
    /// returns whether republication moved on.
    pub(in crate::engine) fn feed_republication(&mut self) -> Result<bool> {
        let Some(plan) = self.rotation.clone() else { return Ok(false) };
        if !plan.republishing {
            return Ok(false);
        }
        let now = self.clock.now_ms();
        let (from, to) = keys::records_after(plan.republish_after.unwrap_or(0));
        let to = to.min(keys::record(plan.republish_through.saturating_add(1)));
        let store = self.store.clone();
        let record_keys = store.range_keys(&from, &to, REPUBLISH_SLICE)?;
        let mut next = plan.clone();
        let mut txn = store.txn();
        match record_keys.last().and_then(|key| keys::parse_record(key)) {
            Some(last) => {
                for key in &record_keys {
                    if let Some(record) = txn.get::<Record>(key)? {
                        self.republish_record(&mut txn, &record, now)?;
                    }
                }
                next.republish_after = Some(last);
            }
            None => {
                self.republish_snapshots(&mut txn, now)?;
                next.republish_after = None;
                next.republishing = false;
            }
        }
        txn.put(keys::rotation_plan(), &next);
        txn.commit_durable()?;
        let finished = !next.republishing && next.stage == Stage::Done;
        self.rotation = Some(next);
        if finished {
            self.rotation_step()?;
        }
        Ok(true)
    }

    /// Republication is under way.
    pub fn republishing(&self) -> bool {
        self.rotation.as_ref().is_some_and(|plan| plan.republishing)
    }

    /// Enqueues a shared record's live share under the current epoch: for each token, its add
    /// if this record is the one that holds it longest, and its status.
    pub(in crate::engine) fn republish_record(
        &self,
        txn: &mut Txn<'_>,
        record: &Record,
        now: u64,
    ) -> Result<()> {
        if !record.shared || record.expires_at_ms <= now {
            return Ok(());
        }
        for identifier in &record.identifiers {
            if identifier.epoch != self.config.epoch {
                continue;
            }
            let token = identifier.token;
            let holders = self.shared_holders(txn, &token)?;
            let longest = holders.iter().max_by_key(|r| (r.expires_at_ms, Reverse(r.id)));
            if longest.is_some_and(|r| r.id == record.id) {
                match self.add_of(record, identifier) {
                    Ok(add) => self.enqueue(txn, Op::Add(add))?,
                    Err(error) => {
                        tracing::error!(%error, record = record.id, "record unreadable: its add is not republished");
                    }
                }
            }
            if let Some((status, at_ms)) = record.status {
                self.enqueue(txn, Op::Status(StatusUpdate { token, status, at_ms }))?;
            }
        }
        Ok(())
    }

    /// Enqueues the tags of the own snapshots still live, under the current epoch.
    pub(in crate::engine) fn republish_snapshots(&self, txn: &mut Txn<'_>, now: u64) -> Result<()> {
        for (_, snapshot) in txn.scan::<OwnSnapshot>(&keys::all_own_snapshots())? {
            if snapshot.expires_at_ms <= now {
                continue;
            }
            for token in &snapshot.tokens {
                let tag = Tag {
                    token: *token,
                    community: snapshot.pseudonym,
                    expires_at_ms: snapshot.expires_at_ms,
                };
                self.enqueue(txn, Op::Tag(tag))?;
            }
        }
        Ok(())
    }
}
