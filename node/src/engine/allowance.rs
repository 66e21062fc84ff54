//! Allowances past the per-origin daily quota for a feed being republished, and the quota rule
//! that lets them through (docs/PROTOCOL.md §5.4 and §4.5).
//!
//! A batch over its origin's daily quota is refused, and a refused batch stalls the origin's
//! whole chain at this node. Two things make a member republish a whole feed at once: a
//! rotation (its live shares again under the new epoch) and a routine key change (its live
//! shares again under its new node key). So a batch that does not fit the daily quota may draw
//! on a one-off allowance ([`AllowanceFor`]):
//!
//! - **rotation**: of `(origin O, epoch E)`, when `E` is the new epoch of a rotation this node
//!   planned and this node holds live adds of `O` under an older epoch;
//! - **key change**: of `O`, when `O` is a member's current node key, the roster lists earlier
//!   (retired) node keys of that member, and this node holds live adds of those keys.
//!
//! Either is the number of those adds, plus one for each that carries a status, plus the
//! counted origins' live tags, plus [`REPUBLICATION_MARGIN_ENTRIES`], in entries, and that many
//! times [`REPUBLICATION_BYTES_PER_ENTRY`] in bytes. It is written with the first batch charged
//! to it, so the feed being republished bounds it, and a flood beyond it is refused like any
//! batch over quota ([`IngestOutcome::QuotaExceeded`], charged to its sender's budget of
//! ignorable gossip as any batch over quota is, the origin's own too).
//!
//! **Bounded counting.** The adds are counted from the source's stored batches
//! (`live_adds.rs`), at most [`SLICE_ROWS`] entries read per engine call: each quota decision that needs a count not
//! finished yet advances it by one slice, and the daemon's slice worker advances it too
//! ([`Engine::allowance_count_step`]). Until the count is finished, a batch over quota that
//! the allowance may cover is refused as a republication over quota (no relay is charged for
//! it) and taken when offered again. Counts in progress live in memory only (a restart counts
//! again); the allowance, once charged, is stored.

use std::cell::RefCell;
use std::collections::HashMap;

use crossmatch_protocol::VerifiedBatch;
use crossmatch_protocol::limits::{MAX_ENTRIES_PER_BATCH, MAX_ENTRY_BYTES};
use serde::{Deserialize, Serialize};

use super::live_adds::EntryPlace;
use super::rotation::Stage;
use super::{Engine, IngestOutcome, Result, SLICE_ROWS};
use crate::clock::DAY_MS;
use crate::store::{Quota, Txn, keys};

/// Entries an allowance grants beyond the feed it was computed from: one full batch.
pub const REPUBLICATION_MARGIN_ENTRIES: u64 = MAX_ENTRIES_PER_BATCH as u64;
/// Bytes an allowance grants per entry: the largest entry, its digest and its framing.
pub const REPUBLICATION_BYTES_PER_ENTRY: u64 = MAX_ENTRY_BYTES as u64 + 64;

/// An origin's allowance for republishing past its daily quota (stored under `U` for a
/// rotation, under `J` for a key change).
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

/// What an allowance is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowanceFor {
    /// A rotation's republication: `origin`'s batches of `epoch`, the rotation's new epoch.
    Epoch {
        /// The origin.
        origin: [u8; 32],
        /// The new epoch.
        epoch: u32,
    },
    /// A routine key change: the batches of `origin`, a member's current node key.
    KeyChange {
        /// The member's current node key.
        origin: [u8; 32],
    },
}

impl AllowanceFor {
    /// Where it is stored once charged.
    fn store_key(&self) -> Vec<u8> {
        match self {
            Self::Epoch { origin, epoch } => keys::republication_allowance(origin, *epoch),
            Self::KeyChange { origin } => keys::key_change_allowance(origin),
        }
    }
}

/// A count in progress (or finished) of what an allowance covers.
#[derive(Debug, Clone, Default)]
pub(super) struct Counting {
    /// The origins whose live adds are counted: the origin itself (rotation) or the member's
    /// retired keys (key change).
    sources: Vec<[u8; 32]>,
    /// Only adds under an epoch below this one count (rotation); none: every add.
    below_epoch: Option<u32>,
    /// The source being counted.
    next_source: usize,
    /// The next entry of that source to read (`live_adds.rs`).
    from: EntryPlace,
    adds: u64,
    statuses: u64,
    tags: u64,
    /// Set once every source is counted: the allowance (none: nothing to republish).
    result: Option<Option<RepublicationAllowance>>,
}

/// Counts by allowance: at most two per member (a rotation's and a key change's), cleared when
/// the epoch changes.
pub(super) type AllowanceMemo = RefCell<HashMap<AllowanceFor, Counting>>;

/// What is known of an allowance.
#[derive(Debug, Clone, Copy)]
enum AllowanceState {
    /// Its count is not finished.
    Unfinished,
    /// Stored or counted; none when nothing is due.
    Known(Option<RepublicationAllowance>),
}
use AllowanceState::{Known, Unfinished};

/// What a batch that fits is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine) enum Charge {
    /// Nothing: the own feed.
    Own,
    /// The origin's daily quota.
    Daily,
    /// An allowance (as it stands before).
    Allowance(AllowanceFor, RepublicationAllowance),
}

impl Engine {
    /// What a verified batch at its chain's next position is charged to, if it fits: the daily
    /// quota, or else an allowance it may draw on (counted a slice further if it is not known
    /// yet). If it fits neither, what it is refused as (`Err`): a republication over quota
    /// (which no relay is charged for) while an allowance it may draw on is still being
    /// counted, else over quota (an allowance used up lets nothing more in).
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
        let candidates = self.allowance_candidates(&origin, batch.header().epoch);
        if candidates.is_empty() {
            return Ok(Err(IngestOutcome::QuotaExceeded));
        }
        let mut counting = false;
        for target in candidates {
            match self.allowance(target)? {
                Known(Some(allowance)) if allowance.fits(entries, bytes) => {
                    return Ok(Ok(Charge::Allowance(target, allowance)));
                }
                Known(_) => {}
                Unfinished => counting = true,
            }
        }
        // Only a count not finished yet defers the decision; an allowance used up (or none
        // due) leaves the batch over quota like any other.
        Ok(Err(if counting {
            IngestOutcome::RepublicationOverQuota
        } else {
            IngestOutcome::QuotaExceeded
        }))
    }

    /// On a batch's claim, before its signature is checked, for a batch over its origin's
    /// daily quota: what it is refused as (over quota), unless an allowance might let it in
    /// (`None`). An allowance stored, or counted after an earlier verified batch (or found
    /// not due), decides; one not known yet defers the decision to after verification
    /// (nothing is counted or stored on a claim).
    pub(in crate::engine) fn over_quota_on_claim(
        &self,
        origin: &[u8; 32],
        epoch: u32,
        entries: u64,
        bytes: u64,
    ) -> Result<Option<IngestOutcome>> {
        let candidates = self.allowance_candidates(origin, epoch);
        if candidates.is_empty() {
            return Ok(Some(IngestOutcome::QuotaExceeded));
        }
        for target in candidates {
            let may_fit = match self.store.get::<RepublicationAllowance>(&target.store_key())? {
                Some(stored) => stored.fits(entries, bytes),
                None => match self.allowances.borrow().get(&target).and_then(|c| c.result) {
                    Some(known) => known.is_some_and(|a| a.fits(entries, bytes)),
                    None => true,
                },
            };
            if may_fit {
                return Ok(None);
            }
        }
        // Every allowance is known and none lets it in: used up, or none due.
        Ok(Some(IngestOutcome::QuotaExceeded))
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
            Charge::Allowance(target, mut allowance) => {
                allowance.used_entries += entries;
                allowance.used_bytes += bytes;
                txn.put(target.store_key(), &allowance);
            }
        }
        Ok(())
    }

    /// The allowances a batch of `origin` under `epoch` may draw on: a key change's when
    /// `origin` is a member's current key with retired keys, and a rotation's when `epoch` is
    /// the new epoch of a rotation this node planned, before its changeover and through its
    /// grace period. Outside those, none: an over-quota batch is refused on its claim as ever,
    /// so no member can lift its quota by claiming an epoch nobody announced.
    fn allowance_candidates(&self, origin: &[u8; 32], epoch: u32) -> Vec<AllowanceFor> {
        let mut candidates = Vec::new();
        let retired = self
            .config
            .members
            .iter()
            .any(|member| member.key.to_bytes() == *origin && !member.retired_keys.is_empty());
        if retired {
            candidates.push(AllowanceFor::KeyChange { origin: *origin });
        }
        if self.republication_epoch(epoch) {
            candidates.push(AllowanceFor::Epoch { origin: *origin, epoch });
        }
        candidates
    }

    /// Whether `epoch` is the new epoch of a rotation under way.
    fn republication_epoch(&self, epoch: u32) -> bool {
        self.republication_checks.set(self.republication_checks.get() + 1);
        self.rotation
            .as_ref()
            .is_some_and(|plan| plan.stage != Stage::Done && plan.new_epoch == epoch)
    }

    /// The allowance of `target`: stored, or counted (none when it is not due); or that its
    /// count is not finished (this call counts one slice further).
    fn allowance(&self, target: AllowanceFor) -> Result<AllowanceState> {
        if let Some(stored) = self.store.get(&target.store_key())? {
            return Ok(Known(Some(stored)));
        }
        let mut memo = self.allowances.borrow_mut();
        let counting = memo.entry(target).or_insert_with(|| self.start_count(target));
        if counting.result.is_none() {
            self.count_slice(counting)?;
        }
        Ok(counting.result.map_or(Unfinished, Known))
    }

    /// A count of what `target` covers, not begun.
    fn start_count(&self, target: AllowanceFor) -> Counting {
        match target {
            AllowanceFor::Epoch { origin, epoch } => {
                Counting { sources: vec![origin], below_epoch: Some(epoch), ..Counting::default() }
            }
            AllowanceFor::KeyChange { origin } => {
                let sources = self
                    .config
                    .members
                    .iter()
                    .find(|member| member.key.to_bytes() == origin)
                    .map(|member| member.retired_keys.iter().map(|key| key.to_bytes()).collect())
                    .unwrap_or_default();
                Counting { sources, ..Counting::default() }
            }
        }
    }

    /// Reads at most [`SLICE_ROWS`] entries of the sources' stored batches further
    /// (`live_adds.rs`); sets the result after the last.
    fn count_slice(&self, counting: &mut Counting) -> Result<()> {
        let mut budget = SLICE_ROWS;
        let txn = self.store.txn();
        while budget > 0 && counting.next_source < counting.sources.len() {
            let source = counting.sources[counting.next_source];
            let slice = self.live_adds_of(&txn, &source, counting.from, budget)?;
            self.allowance_rows.set(self.allowance_rows.get() + slice.read as u64);
            for (_, add) in &slice.adds {
                if counting.below_epoch.is_none_or(|epoch| add.epoch < epoch) {
                    counting.adds += 1;
                    counting.statuses += u64::from(add.status.is_some());
                }
            }
            budget -= slice.read.min(budget);
            match slice.next {
                Some(next) => counting.from = next,
                None => {
                    counting.tags += self.live_tag_count(&source)?;
                    counting.next_source += 1;
                    counting.from = EntryPlace::default();
                }
            }
        }
        if counting.next_source >= counting.sources.len() {
            counting.result = Some((counting.adds > 0).then(|| {
                let entries = counting.adds
                    + counting.statuses
                    + counting.tags
                    + REPUBLICATION_MARGIN_ENTRIES;
                RepublicationAllowance {
                    entries,
                    bytes: entries.saturating_mul(REPUBLICATION_BYTES_PER_ENTRY),
                    used_entries: 0,
                    used_bytes: 0,
                }
            }));
        }
        Ok(())
    }

    /// When the members change: the stored key change allowances of keys that are no longer a
    /// member's current key with retired keys go (at most one row per member then). Counts in
    /// progress are cleared by [`Engine::set_members`] when the accepted origins change.
    pub(super) fn forget_stale_key_change_allowances(&mut self) -> Result<()> {
        let mut txn = self.store.txn();
        for key in self.store.scan_keys(&keys::all_key_change_allowances())? {
            let current = keys::parse_key_change_allowance(&key).is_some_and(|origin| {
                self.config.members.iter().any(|member| {
                    member.key.to_bytes() == origin && !member.retired_keys.is_empty()
                })
            });
            if !current {
                txn.remove(key);
            }
        }
        if !txn.is_empty() {
            txn.commit_durable()?;
        }
        Ok(())
    }

    /// Advances one unfinished allowance count by a slice (the slice worker's share of the
    /// counting); returns whether one was advanced.
    pub(super) fn allowance_count_step(&self) -> Result<bool> {
        let mut memo = self.allowances.borrow_mut();
        let Some(counting) = memo.values_mut().find(|counting| counting.result.is_none()) else {
            return Ok(false);
        };
        self.count_slice(counting)?;
        Ok(true)
    }
}

#[cfg(feature = "test-support")]
impl Engine {
    /// Test-only: how often the engine asked whether an epoch may draw on a republication
    /// allowance (each quota decision asks once).
    pub fn republication_epoch_checks(&self) -> u64 {
        self.republication_checks.get()
    }

    /// Test-only: how many stored entries allowance counts read since open.
    pub fn allowance_rows_counted(&self) -> u64 {
        self.allowance_rows.get()
    }
}
