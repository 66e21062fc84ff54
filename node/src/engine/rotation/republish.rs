//! Republication under a new epoch, and the quota rule that lets it through.
//!
//! **Pacing.** After the switch, the node's live shares go out again under the new epoch: for
//! each shared record, the add its longest-held token makes (with its activity and algorithmic
//! marker) and its status, then its community snapshots' tags. They are not put in the outbox
//! all at once: the publisher fills the outbox with the next slice of
//! [`REPUBLISH_SLICE`] records only when the outbox is empty, so an analyst's new add is always
//! signed before the next slice, and the outbox never holds the whole feed.
//!
//! **Quota.** A batch over its origin's daily quota is refused, and a refused batch stalls the
//! origin's whole chain at this node. So a batch of epoch `E` from origin `O` that does not fit
//! the daily quota may draw on a one-off allowance of `(O, E)`, when `E` is this node's epoch or
//! the next one and this node holds live adds of `O` under an older epoch: the allowance is
//! the number of those adds, plus one for each that carries a status, plus `O`'s live tags,
//! plus [`REPUBLICATION_MARGIN_ENTRIES`], in entries, and that many times
//! [`REPUBLICATION_BYTES_PER_ENTRY`] in bytes. It is computed from what the node holds when it
//! is first needed and written with the first batch charged to it, so the feed being
//! republished bounds it, and a flood beyond it is refused like any batch over quota.

use std::cmp::Reverse;

use crossmatch_protocol::limits::{MAX_ENTRIES_PER_BATCH, MAX_ENTRY_BYTES};
use crossmatch_protocol::{Op, StatusUpdate, Tag, VerifiedBatch};
use serde::{Deserialize, Serialize};

use super::{Stage, TokenPair};
use crate::clock::DAY_MS;
use crate::engine::{Engine, IngestOutcome, Result};
use crate::store::{OwnSnapshot, Quota, Record, RemoteAdd, Txn, keys};

/// Records republished per slice.
pub const REPUBLISH_SLICE: usize = 64;
/// Entries an allowance grants beyond the feed it was computed from: one full batch.
pub const REPUBLICATION_MARGIN_ENTRIES: u64 = MAX_ENTRIES_PER_BATCH as u64;
/// Bytes an allowance grants per entry: the largest entry, its digest and its framing.
pub const REPUBLICATION_BYTES_PER_ENTRY: u64 = MAX_ENTRY_BYTES as u64 + 64;

/// An origin's allowance for republishing under one epoch past its daily quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RepublicationAllowance {
    /// Entries granted.
    pub entries: u64,
    /// Bytes granted.
    pub bytes: u64,
    /// Entries used.
    pub used_entries: u64,
    /// Bytes used.
    pub used_bytes: u64,
}

impl RepublicationAllowance {
    fn fits(&self, entries: u64, bytes: u64) -> bool {
        self.used_entries + entries <= self.entries && self.used_bytes + bytes <= self.bytes
    }
}

/// What a batch that fits is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine) enum Charge {
    /// Nothing: the own feed.
    Own,
    /// The origin's daily quota.
    Daily,
    /// The origin's republication allowance of the batch's epoch (as it stands before).
    Allowance(RepublicationAllowance),
}

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

    /// Moves the own community snapshots' token lists to the new tokens (at the switch): a
    /// token with no pair is no longer held and leaves the list.
    pub(super) fn retag_own_snapshots(&self, txn: &mut Txn<'_>) -> Result<()> {
        for (key, mut snapshot) in txn.scan::<OwnSnapshot>(&keys::all_own_snapshots())? {
            let mut tokens = Vec::with_capacity(snapshot.tokens.len());
            for token in &snapshot.tokens {
                if let Some(pair) = txn.get::<TokenPair>(&keys::token_pair(token))? {
                    tokens.push(pair.new);
                }
            }
            snapshot.tokens = tokens;
            txn.put(key, &snapshot);
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

    /// What a verified batch at its chain's next position is charged to, if it fits: the daily
    /// quota, or else the republication allowance of its epoch (computed if it is the first).
    /// If it fits neither, what it is refused as (`Err`): over quota, or, in a republication
    /// epoch, a republication over quota (which no relay is charged for).
    pub(in crate::engine) fn quota_charge(
        &self,
        batch: &VerifiedBatch,
    ) -> Result<std::result::Result<Charge, IngestOutcome>> {
        let origin = batch.origin().to_bytes();
        if self.is_own(&origin) {
            return Ok(Ok(Charge::Own));
        }
        let entries = batch.header().entry_digests.len() as u64;
        let bytes = batch.to_wire().len() as u64;
        if self.fits_quota(&origin, entries, bytes)? {
            return Ok(Ok(Charge::Daily));
        }
        let epoch = batch.header().epoch;
        // The one check of the epoch on this path: the helpers below take it as given.
        if !self.republication_epoch(epoch) {
            return Ok(Err(IngestOutcome::QuotaExceeded));
        }
        let allowance = match self.stored_allowance(&origin, epoch)? {
            Some(allowance) => Some(allowance),
            None => {
                let known = self.allowances.borrow().get(&(origin, epoch)).copied();
                match known {
                    Some(known) => known,
                    None => {
                        // Computed once per (origin, epoch): the scan is not repeated for
                        // every batch a flooding origin sends.
                        let computed = self.compute_allowance(&origin, epoch)?;
                        self.allowances.borrow_mut().insert((origin, epoch), computed);
                        computed
                    }
                }
            }
        };
        Ok(allowance
            .filter(|a| a.fits(entries, bytes))
            .map(Charge::Allowance)
            .ok_or(IngestOutcome::RepublicationOverQuota))
    }

    /// On a batch's claim, before its signature is checked, for a batch over its origin's
    /// daily quota: what it is refused as, unless the allowance of its epoch might let it in
    /// (`None`). An allowance stored, or computed after an earlier verified batch (or found not
    /// due), decides; none known yet defers the decision to after verification (nothing is
    /// computed or stored on a claim).
    pub(in crate::engine) fn over_quota_on_claim(
        &self,
        origin: &[u8; 32],
        epoch: u32,
        entries: u64,
        bytes: u64,
    ) -> Result<Option<IngestOutcome>> {
        // The one check of the epoch on this path.
        if !self.republication_epoch(epoch) {
            return Ok(Some(IngestOutcome::QuotaExceeded));
        }
        let may_fit = match self.stored_allowance(origin, epoch)? {
            Some(stored) => stored.fits(entries, bytes),
            // Computed after an earlier verified batch: decides on the claim too (none: not
            // due).
            None => match self.allowances.borrow().get(&(*origin, epoch)) {
                Some(known) => known.is_some_and(|a| a.fits(entries, bytes)),
                None => true,
            },
        };
        Ok((!may_fit).then_some(IngestOutcome::RepublicationOverQuota))
    }

    /// Writes what an applied batch used: of the daily quota or of the allowance.
    pub(in crate::engine) fn charge(
        &self,
        txn: &mut Txn<'_>,
        batch: &VerifiedBatch,
        charge: Charge,
        now: u64,
    ) -> Result<()> {
        let origin = batch.origin().to_bytes();
        let entries = batch.header().entry_digests.len() as u64;
        let bytes = batch.to_wire().len() as u64;
        match charge {
            Charge::Own => {}
            Charge::Daily => {
                let day = (now / DAY_MS) as u32;
                let mut quota: Quota = txn.get(&keys::quota(&origin, day))?.unwrap_or_default();
                quota.entries += entries;
                quota.bytes += bytes;
                txn.put(keys::quota(&origin, day), &quota);
            }
            Charge::Allowance(mut allowance) => {
                allowance.used_entries += entries;
                allowance.used_bytes += bytes;
                let key = keys::republication_allowance(&origin, batch.header().epoch);
                txn.put(key, &allowance);
            }
        }
        Ok(())
    }

    /// An epoch republication may be charged to: the new epoch of a rotation this node has
    /// planned, before its changeover and through its grace period (outside a rotation, no
    /// origin may claim an allowance: an over-quota batch is refused on its claim as ever, so
    /// no member can lift its quota by claiming an epoch nobody announced).
    fn republication_epoch(&self, epoch: u32) -> bool {
        self.republication_checks.set(self.republication_checks.get() + 1);
        self.rotation
            .as_ref()
            .is_some_and(|plan| plan.stage != Stage::Done && plan.new_epoch == epoch)
    }

    /// The allowance stored for `(origin, epoch)`; the caller checked that `epoch` is a
    /// [`Engine::republication_epoch`].
    fn stored_allowance(
        &self,
        origin: &[u8; 32],
        epoch: u32,
    ) -> Result<Option<RepublicationAllowance>> {
        Ok(self.store.get(&keys::republication_allowance(origin, epoch))?)
    }

    /// The allowance `origin` gets under `epoch`, from its live adds (and their statuses) under
    /// older epochs and its live tags; none when it holds no add here under an older epoch.
    /// The caller checked that `epoch` is a [`Engine::republication_epoch`].
    fn compute_allowance(
        &self,
        origin: &[u8; 32],
        epoch: u32,
    ) -> Result<Option<RepublicationAllowance>> {
        let mut adds = 0u64;
        let mut statuses = 0u64;
        for key in self.store.scan_keys(&keys::remote_add_places_of(origin).0)? {
            let Some((_, token)) = keys::parse_remote_add_place(&key) else { continue };
            let add: Option<RemoteAdd> = self.store.get(&keys::remote_add(&token, origin))?;
            if let Some(add) = add.filter(|add| add.epoch < epoch) {
                adds += 1;
                statuses += u64::from(add.status.is_some());
            }
        }
        if adds == 0 {
            return Ok(None);
        }
        let tags = self.live_tag_count(origin)?;
        let entries = adds + statuses + tags + REPUBLICATION_MARGIN_ENTRIES;
        Ok(Some(RepublicationAllowance {
            entries,
            bytes: entries.saturating_mul(REPUBLICATION_BYTES_PER_ENTRY),
            used_entries: 0,
            used_bytes: 0,
        }))
    }
}

#[cfg(feature = "test-support")]
impl Engine {
    /// Test-only: how often the engine asked whether an epoch may draw on a republication
    /// allowance (each quota decision asks once).
    pub fn republication_epoch_checks(&self) -> u64 {
        self.republication_checks.get()
    }
}
