//! Remote batches in: each copy is counted, recognised if held complete already, verified once,
//! placed in its chain (`protocol::position`) and applied: next (and then whatever was held
//! after it), duplicate (holes filled from a complete copy), gap (held within bounds), fork
//! (handed to `forks.rs`), over quota. Applying a batch indexes its entries, matches them and
//! writes the chain head last, in one atomic write.

use std::collections::BTreeMap;

use crossmatch_protocol::{
    BatchHash, BatchId, ClaimedManifest, EntryProblem, FeedId, Handling, Op, Position,
    RetractReason, VerifiedBatch, claimed_batch, claimed_batch_hash, position, verify_batch,
};

use super::allowance::Charge;
use super::rotation::EpochRole;
use super::{
    AlertEvent, Engine, IngestOutcome, MAX_HELD_PER_ORIGIN, MAX_HELD_TOTAL, RangeOutcome, Result,
    put_stored_batch,
};
use crate::clock::DAY_MS;
use crate::store::{BatchLocation, ChainRecord, OwnAdd, Quota, RemoteAdd, Txn, keys};

/// What applying a batch's entries left to do when the batch is stored.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// Entries to store as `null`.
    pub(super) redact: Vec<usize>,
    /// When to redact the others.
    pub(super) expiries: Expiries,
    /// Alert changes to announce after the commit.
    pub(super) events: Vec<AlertEvent>,
}

/// The entries of one batch grouped by the time they expire: one index key per distinct time,
/// so a batch from one import costs one key, not one per entry.
#[derive(Debug, Default)]
pub(super) struct Expiries(BTreeMap<u64, Vec<u32>>);

/// The way a batch came, which decides what it may carry and what is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// A `range` answer or a direct ingest: redactions allowed.
    Sync,
    /// Gossip: intact batches only.
    Gossip,
    /// Gossip while own-feed recovery runs: as gossip, and the own feed is left to recovery.
    GossipWhileRecovering,
}

impl Expiries {
    fn add(&mut self, at_ms: u64, index: usize) {
        self.0.entry(at_ms).or_default().push(index as u32);
    }

    /// Adds the groups to the batch's expiry keys (merging with groups already there).
    pub(super) fn write(self, txn: &mut Txn<'_>, id: &BatchId) -> Result<()> {
        for (at_ms, mut indices) in self.0 {
            let key = keys::expiry(at_ms, id);
            let mut merged: Vec<u32> = txn.get(&key)?.unwrap_or_default();
            merged.append(&mut indices);
            merged.sort_unstable();
            merged.dedup();
            txn.put(key, &merged);
        }
        Ok(())
    }
}

impl Engine {
    /// Ingests a batch's wire form from the network: verify, place in its chain, apply.
    pub fn ingest(&mut self, wire: &[u8]) -> Result<IngestOutcome> {
        self.ingest_wire(wire, Path::Sync)
    }

    /// Ingests a batch received by gossip: as [`Engine::ingest`], but a batch with a redacted
    /// entry, or an entry that does not match its digest, is refused: gossip carries exactly
    /// what the origin signed (only sync may carry redactions).
    pub fn ingest_gossip(&mut self, wire: &[u8]) -> Result<IngestOutcome> {
        let outcome = self.ingest_wire(wire, Path::Gossip)?;
        if let IngestOutcome::Applied { applied } = outcome {
            self.counters.applied_by_gossip += applied as u64;
        }
        Ok(outcome)
    }

    /// Ingests a batch received by gossip while own-feed recovery runs: as
    /// [`Engine::ingest_gossip`], but a batch of this node's own feed, verified and intact, is
    /// not stored: it is [`IngestOutcome::LeftToRecovery`] (stored now, it would hide from
    /// recovery that own batches were lost).
    pub fn ingest_gossip_while_recovering(&mut self, wire: &[u8]) -> Result<IngestOutcome> {
        let outcome = self.ingest_wire(wire, Path::GossipWhileRecovering)?;
        if let IngestOutcome::Applied { applied } = outcome {
            self.counters.applied_by_gossip += applied as u64;
        }
        Ok(outcome)
    }

    /// Ingests a `range` answer: batches `from_seq`, `from_seq + 1`, … of `feed`, as sync
    /// (redacted entries allowed). Stops at the first batch that does not verify or is not the
    /// one asked for, and reports it, so the caller penalises the peer that served it. Counts
    /// as served every batch at its asked position, duplicates included (a batch held complete
    /// already is recognised by its hash, without a second signature check).
    pub fn ingest_range(
        &mut self,
        feed: FeedId,
        from_seq: u64,
        wires: &[Vec<u8>],
    ) -> Result<RangeOutcome> {
        let mut outcome = RangeOutcome::default();
        for (offset, wire) in wires.iter().enumerate() {
            let expected = feed.batch(from_seq + offset as u64);
            self.counters.received += 1;
            if let Some(location) = self.held_complete(wire)? {
                if location.id() != expected {
                    outcome.mismatch = true;
                    break;
                }
                self.counters.duplicates += 1;
                outcome.served += 1;
                continue;
            }
            self.counters.verifications += 1;
            let Ok(batch) = verify_batch(wire, &self.config.federation_id, &self.roster) else {
                self.counters.rejected += 1;
                outcome.mismatch = true;
                break;
            };
            if batch.id() != expected {
                outcome.mismatch = true;
                break;
            }
            outcome.served += 1;
            if let IngestOutcome::Applied { applied } = self.ingest_verified(batch)? {
                outcome.applied += applied;
                self.counters.applied_by_sync += applied as u64;
            }
        }
        Ok(outcome)
    }

    /// Ingests a batch that has already been verified; after a `next`, applies the batches
    /// held after it, in order, for as long as each is the chain's next.
    pub fn ingest_verified(&mut self, batch: VerifiedBatch) -> Result<IngestOutcome> {
        let feed = batch.id().feed;
        match self.place(batch)? {
            IngestOutcome::Applied { .. } => {
                let held = self.apply_held(feed)?;
                Ok(IngestOutcome::Applied { applied: 1 + held })
            }
            outcome => Ok(outcome),
        }
    }

    /// Shared by sync and gossip: count, skip what is held complete already, verify once, and
    /// for gossip refuse anything but the intact batch its origin signed.
    fn ingest_wire(&mut self, wire: &[u8], path: Path) -> Result<IngestOutcome> {
        let gossip = path != Path::Sync;
        self.counters.received += 1;
        if let Some((claim, _)) = claimed_batch(wire, &self.config.federation_id) {
            if self.held_complete_by_hash(&claim.hash)?.is_some() {
                // Held complete already: nothing this copy could add, no verification spent.
                self.counters.duplicates += 1;
                return Ok(IngestOutcome::Duplicate { filled: 0 });
            }
            if let Some(refused) = self.refuse_unverified(&claim, wire.len())? {
                return Ok(refused);
            }
        }
        self.counters.verifications += 1;
        match verify_batch(wire, &self.config.federation_id, &self.roster) {
            Ok(batch)
                if path == Path::GossipWhileRecovering
                    && batch.is_intact()
                    && self.is_own(batch.id().origin()) =>
            {
                Ok(IngestOutcome::LeftToRecovery)
            }
            Ok(batch) if !gossip || batch.is_intact() => {
                // Fresh gossip applied here is a clock-skew sample of its origin (takedowns.rs).
                let (origin, created_at_ms) = (*batch.id().origin(), batch.header().created_at_ms);
                let outcome = self.ingest_verified(batch)?;
                if gossip && matches!(outcome, IngestOutcome::Applied { .. }) {
                    self.note_skew(origin, created_at_ms);
                }
                Ok(outcome)
            }
            Ok(_) => {
                self.counters.rejected += 1;
                Ok(IngestOutcome::IncompleteGossip)
            }
            Err(error) => {
                self.counters.rejected += 1;
                Ok(IngestOutcome::Rejected(error))
            }
        }
    }

    /// Where the batch `wire` claims to be is stored, if it is stored complete already: then no
    /// copy can add anything, and no signature verification is spent on it.
    fn held_complete(&self, wire: &[u8]) -> Result<Option<BatchLocation>> {
        let Some(hash) = claimed_batch_hash(wire, &self.config.federation_id) else {
            return Ok(None);
        };
        self.held_complete_by_hash(&hash)
    }

    fn held_complete_by_hash(&self, hash: &BatchHash) -> Result<Option<BatchLocation>> {
        let location: Option<BatchLocation> = self.store.get(&keys::batch_location(hash))?;
        Ok(location.filter(|location| location.complete))
    }

    /// Refuses a batch on what it claims, before its signature is checked, when the verdict
    /// would be Ignore whatever the signature says: an origin outside the roster, a position
    /// past a proved fork, or a new position over the origin's quota. Sound because the
    /// decision reads only the claim and state the claim cannot change, and changes nothing:
    /// nothing of the batch is stored, held, remembered or forwarded. A forged claim costs
    /// only itself (an altered copy has its own gossip id, so it cannot shadow the genuine
    /// batch), and the genuine batch with the same claim would be ignored all the same after
    /// verification.
    fn refuse_unverified(
        &mut self,
        claim: &ClaimedManifest,
        wire_len: usize,
    ) -> Result<Option<IngestOutcome>> {
        if !self.is_member(&claim.origin) {
            self.counters.unknown_origin += 1;
            return Ok(Some(IngestOutcome::UnknownOrigin));
        }
        let header = &claim.header;
        if !self.origins.admits_position(&claim.origin, header.generation, header.seq) {
            // A retired key past its final head: what only a leaked key would sign.
            self.counters.refused_unverified += 1;
            self.counters.past_final_head += 1;
            return Ok(Some(IngestOutcome::Ignored));
        }
        let chain = self.chain(FeedId::new(claim.origin, header.generation))?;
        if chain.limit().is_some_and(|limit| header.seq > limit) {
            self.counters.refused_unverified += 1;
            return Ok(Some(IngestOutcome::Ignored));
        }
        // Only a position beyond the head would count against the quota; a copy of a stored
        // batch (filling its holes) never does.
        let entries = header.entry_digests.len() as u64;
        let bytes = wire_len as u64;
        if header.seq > chain.seq
            && !self.fits_quota(&claim.origin, entries, bytes)?
            && let Some(refused) =
                self.over_quota_on_claim(&claim.origin, header.epoch, entries, bytes)?
        {
            self.counters.refused_unverified += 1;
            self.counters.quota_refused += 1;
            return Ok(Some(refused));
        }
        Ok(None)
    }

    /// Judges one batch against its chain and acts on the verdict; a `next` is applied alone
    /// (the caller applies what was held after it).
    fn place(&mut self, batch: VerifiedBatch) -> Result<IngestOutcome> {
        let id = batch.id();
        if !self.origins.admits(id.origin(), id.feed.generation, id.seq, &batch.hash()) {
            // A retired key's batch past (or beside) its final head.
            self.counters.past_final_head += 1;
            return Ok(IngestOutcome::Ignored);
        }
        let chain = self.chain(id.feed)?;
        if chain.limit().is_some_and(|limit| id.seq > limit) {
            // Past a proved fork of this generation.
            return Ok(IngestOutcome::Ignored);
        }
        let held_at = |seq| -> Option<BatchHash> {
            let bytes = self.store.get_raw(&keys::batch_hash(&id.feed.batch(seq))).ok()??;
            Some(BatchHash(bytes.try_into().ok()?))
        };
        match position(&chain.state(), held_at, batch.header(), batch.hash()) {
            Position::Next => {
                let charge = match self.quota_charge(&batch)? {
                    Ok(charge) => charge,
                    Err(refused) => {
                        self.counters.quota_refused += 1;
                        return Ok(refused);
                    }
                };
                self.apply(&batch, charge)?;
                Ok(IngestOutcome::Applied { applied: 1 })
            }
            Position::Duplicate => {
                self.counters.duplicates += 1;
                let filled = self.fill_holes(&batch)?;
                Ok(IngestOutcome::Duplicate { filled })
            }
            Position::Gap { missing_from, missing_to } => {
                self.hold(batch);
                Ok(IngestOutcome::Gap { feed: id.feed, missing_from, missing_to })
            }
            Position::Fork { seq, ours } => {
                self.record_fork(&batch, seq, ours)?;
                Ok(IngestOutcome::Fork { seq })
            }
            Position::Frozen | Position::Unjudgeable => Ok(IngestOutcome::Ignored),
        }
    }

    /// Keeps a batch that arrived before its predecessor, within the per-origin and total
    /// bounds; beyond them it is dropped (and counted) and left to sync.
    fn hold(&mut self, batch: VerifiedBatch) {
        let id = batch.id();
        if self.held.contains_key(&id) {
            return;
        }
        let per_origin = self.held.keys().filter(|held| held.origin() == id.origin()).count();
        if per_origin >= MAX_HELD_PER_ORIGIN || self.held.len() >= MAX_HELD_TOTAL {
            self.counters.held_dropped += 1;
            return;
        }
        self.held.insert(id, batch);
    }

    /// Applies the held successors of `feed`'s head one after another, stopping at the first
    /// that is missing or not applied; then drops held batches the chain has moved past.
    fn apply_held(&mut self, feed: FeedId) -> Result<usize> {
        let mut applied = 0;
        // At most MAX_HELD_PER_ORIGIN rounds: each one removes a held batch of this origin.
        loop {
            let head = self.chain(feed)?.seq;
            let Some(next) = self.held.remove(&feed.batch(head + 1)) else { break };
            match self.place(next)? {
                IngestOutcome::Applied { .. } => applied += 1,
                _ => break,
            }
        }
        let head = self.chain(feed)?.seq;
        self.held.retain(|id, _| !(id.feed == feed && id.seq <= head));
        Ok(applied)
    }

    /// Whether `entries` more entries in `bytes` more bytes fit `origin`'s quota of today.
    pub(super) fn fits_quota(&self, origin: &[u8; 32], entries: u64, bytes: u64) -> Result<bool> {
        if self.is_own(origin) {
            return Ok(true);
        }
        let day = (self.clock.now_ms() / DAY_MS) as u32;
        let used: Quota = self.store.get(&keys::quota(origin, day))?.unwrap_or_default();
        Ok(used.entries + entries <= self.config.quota_entries_per_day
            && used.bytes + bytes <= self.config.quota_bytes_per_day)
    }

    /// Applies a `next` batch: entries, indexes, alerts, what it is charged to, then the head,
    /// in one atomic write.
    fn apply(&mut self, batch: &VerifiedBatch, charge: Charge) -> Result<()> {
        let now = self.clock.now_ms();
        let id = batch.id();
        let origin = *id.origin();
        let header = batch.header();
        let store = self.store.clone();
        let mut txn = store.txn();
        let freeze_at = self.chain_in(&txn, &id.feed)?.freeze_at;
        let all: Vec<usize> = (0..header.entry_digests.len()).collect();
        let Applied { redact, expiries, events } =
            self.apply_entries(&mut txn, batch, &all, now)?;
        expiries.write(&mut txn, &id)?;
        let own = self.is_own(&origin);
        put_stored_batch(&mut txn, &batch.redacted(&redact));
        self.charge(&mut txn, batch, charge, now)?;
        let restored = if own && self.ahead_of_own(&id.feed, id.seq) {
            // A batch of our own feed that we had lost, restored from a peer.
            Some(self.restore_own_batch(&mut txn, batch)?)
        } else {
            None
        };
        // The head last: a crash before this commit replays the batch as `next`.
        txn.put(
            keys::chain(&id.feed),
            &ChainRecord {
                seq: id.seq,
                hash: batch.hash(),
                frozen: freeze_at == Some(id.seq),
                freeze_at,
            },
        );
        txn.commit()?;
        if let Some(restored) = restored {
            self.own = restored;
            // What a start could not replay still lies past the head.
            self.logged_ahead = !self.unreplayed.is_empty();
        }
        self.counters.applied += 1;
        self.announce(events);
        Ok(())
    }

    /// Applies the entries at `indices` of a batch being stored: indexes, alerts, expiry and
    /// redaction. Used for a new batch (all entries) and for entries filled into a stored one.
    pub(super) fn apply_entries(
        &mut self,
        txn: &mut Txn<'_>,
        batch: &VerifiedBatch,
        indices: &[usize],
        now: u64,
    ) -> Result<Applied> {
        let id = batch.id();
        let origin = *id.origin();
        let header = batch.header();
        let own = self.is_own(&origin);
        let retention_end = header
            .created_at_ms
            .saturating_add(self.config.max_retention_ms)
            .min(now + self.config.max_retention_ms);
        let mut applied = Applied::default();
        let entries: Vec<_> = batch.entries().collect();
        for &index in indices {
            let Some(entry) = entries.get(index) else { continue };
            let index32 = index as u32;
            let entry = match entry {
                // The current epoch's entries are matched; a newer epoch's are kept until this
                // node adopts it, and the old epoch's during a rotation's grace period
                // (`rotation.rs`).
                Ok(entry) if self.epoch_role(header.epoch, now) != EpochRole::Foreign => {
                    entry.clone()
                }
                Ok(_) => {
                    // Another epoch's token: not matched here, forgotten at retention's end.
                    self.counters.skipped_entries += 1;
                    applied.expiries.add(retention_end, index);
                    continue;
                }
                Err(EntryProblem::Redacted) => continue,
                Err(EntryProblem::DigestMismatch | EntryProblem::TooLarge) => {
                    // Altered in transit: dropped, and refillable from a genuine copy.
                    self.counters.skipped_entries += 1;
                    applied.redact.push(index);
                    continue;
                }
                Err(_) => {
                    // Signed as it is but unusable here: dropped for good.
                    self.counters.skipped_entries += 1;
                    applied.redact.push(index);
                    txn.put_tombstone(&id, index32)?;
                    continue;
                }
            };
            let expires = match &entry.op {
                Op::Add(add) => add.expires_at_ms.min(now + self.config.max_retention_ms),
                Op::Tag(tag) => tag.expires_at_ms.min(now + self.config.max_retention_ms),
                _ => retention_end,
            };
            if expires <= now {
                applied.redact.push(index);
                txn.put_tombstone(&id, index32)?;
                continue;
            }
            applied.expiries.add(expires, index);
            let token = *entry.op.token();
            match entry.op {
                Op::Add(_) if own => {
                    let place = OwnAdd { generation: id.generation(), seq: id.seq, index: index32 };
                    txn.put(keys::own_add(&token), &place);
                }
                Op::Add(add) => {
                    let previous: Option<RemoteAdd> =
                        txn.get(&keys::remote_add(&token, &origin))?;
                    // An add keeps when it was first made and received while it stays on
                    // its side of H2; one that crosses it counts as made and received anew,
                    // so an export's sighting never carries the times of an H2 add.
                    let same_side = previous
                        .as_ref()
                        .filter(|p| (p.handling == Handling::H2) == (add.handling == Handling::H2));
                    // The latest receipt never goes back, even if the clock does.
                    let touched = previous.as_ref().map_or(now, |p| p.touched_at_ms.max(now));
                    if let Some(previous) = &previous
                        && same_side.is_none()
                    {
                        // Learned anew from here on: when it was first learned stays known.
                        self.keep_source(txn, &token, &origin, previous)?;
                    }
                    txn.put_remote_add(
                        &token,
                        &origin,
                        &RemoteAdd {
                            generation: id.generation(),
                            seq: id.seq,
                            index: index32,
                            epoch: header.epoch,
                            kind: add.kind,
                            category: add.category,
                            handling: add.handling,
                            evaluation: add.evaluation,
                            activity_per_day: add.activity_per_day,
                            expires_at_ms: expires,
                            created_at_ms: same_side
                                .map_or(header.created_at_ms, |p| p.created_at_ms),
                            received_at_ms: same_side.map_or(now, |p| p.received_at_ms),
                            status: previous.and_then(|p| p.status),
                            algorithmic: add.algorithmic,
                            touched_at_ms: touched,
                        },
                    );
                    self.touch_identification(txn, &token, now)?;
                }
                Op::Retract(retract) => {
                    if !own && retract.reason == RetractReason::Erroneous {
                        self.void_identification(txn, &token, &origin)?;
                    }
                    let place = if own {
                        let key = keys::own_add(&token);
                        let place = txn.get::<OwnAdd>(&key)?.map(|add| add.place(origin));
                        if place.is_some() {
                            txn.remove(key);
                        }
                        place
                    } else {
                        self.drop_remote_tags(txn, &origin, &token, &id, &mut applied.redact)?;
                        let removed = txn.remove_remote_add(&token, &origin)?;
                        if let Some(add) = &removed
                            && retract.reason != RetractReason::Erroneous
                        {
                            self.keep_source(txn, &token, &origin, add)?;
                        }
                        removed.map(|add| add.place(origin))
                    };
                    if let Some((add_batch, add_index)) = place {
                        if add_batch == id {
                            // Added and retracted in this very batch: stored redacted at once.
                            applied.redact.push(add_index as usize);
                            txn.put_tombstone(&id, add_index)?;
                        } else {
                            self.redact_stored(txn, &add_batch, &[add_index as usize])?;
                        }
                    }
                }
                Op::Tag(_) if own => continue,
                Op::Tag(tag) => {
                    self.keep_remote_tag(txn, (id, index32), &tag, expires, now)?;
                    continue;
                }
                Op::Status(_) if own => {}
                Op::Status(status) => {
                    self.note_status(txn, &token, origin, status.status, status.at_ms, now)?;
                    let key = keys::remote_add(&token, &origin);
                    if let Some(mut add) = txn.get::<RemoteAdd>(&key)? {
                        // A time later than the receipt is a claim: it counts as the receipt,
                        // so a member's clock (or a lie) cannot put its status ahead of others'.
                        add.status = Some((status.status, status.at_ms.min(now)));
                        txn.put_remote_add(&token, &origin, &add);
                    }
                }
            }
            if !own {
                applied.events.extend(self.refresh_alert(txn, &token, now, false)?);
            }
        }
        Ok(applied)
    }

    /// Redacts entries of a stored batch for good (their tombstones keep them from being
    /// refilled).
    pub(super) fn redact_stored(
        &self,
        txn: &mut Txn<'_>,
        id: &BatchId,
        indices: &[usize],
    ) -> Result<()> {
        txn.put_tombstones(id, indices.iter().map(|&index| index as u32))?;
        if let Some(batch) = self.stored_batch(txn, id)? {
            put_stored_batch(txn, &batch.redacted(indices));
        }
        Ok(())
    }

    /// Restores redacted entries of a stored batch from a copy that carries them, unless this
    /// node expired or retracted them; restored entries are applied like any other.
    fn fill_holes(&mut self, copy: &VerifiedBatch) -> Result<usize> {
        let id = copy.id();
        let Some(mut stored) = self.stored_batch(&self.store.txn(), &id)? else {
            return Ok(0);
        };
        let chain = self.chain(id.feed)?;
        if stored.is_complete() || id.seq > chain.seq {
            // Nothing missing, or a batch a fork withdrew: nothing to fill.
            return Ok(0);
        }
        let n_entries = copy.header().entry_digests.len();
        // An entry may be filled unless this node expired or retracted it (its tombstone).
        let dead = self.store.tombstones(&id)?;
        let holes: Vec<usize> = (0..n_entries)
            .filter(|&index| stored.raw_entries().get(index).is_some_and(Option::is_none))
            .collect();
        let filled = stored.fill_holes(copy, |index| index < n_entries && !dead.contains(index));
        if filled == 0 {
            return Ok(0);
        }
        // Filled entries are applied like any entry: matched, indexed for expiry, or dropped.
        let now = self.clock.now_ms();
        let filled_indices: Vec<usize> = holes
            .into_iter()
            .filter(|&index| stored.raw_entries().get(index).is_some_and(Option::is_some))
            .collect();
        let store = self.store.clone();
        let mut txn = store.txn();
        let Applied { redact, expiries, events } =
            self.apply_entries(&mut txn, &stored, &filled_indices, now)?;
        expiries.write(&mut txn, &id)?;
        put_stored_batch(&mut txn, &stored.redacted(&redact));
        txn.commit()?;
        self.announce(events);
        Ok(filled)
    }
}
