//! Forks: an origin that signed two batches for one position. Evidence found here or forwarded
//! by a peer freezes the generation just before the contested seq on this node, withdraws the
//! entries at or after it from matching, and is kept (within bounds) and forwarded. A fork of
//! the own feed is repaired by a new generation that publishes again what the fork withdrew.

use std::collections::BTreeMap;

use crossmatch_protocol::{
    BatchHash, BatchId, Op, StatusUpdate, VerifiedBatch, claimed_manifest, encode_fork_evidence,
    fork_evidence_manifests, verify_fork_evidence,
};

use super::rotation::EpochRole;
use super::{
    Engine, ForkOutcome, HeadClaim, MAX_FORK_EVIDENCE, MAX_FORKS_PER_ORIGIN, MAX_OUTGOING_FORKS,
    OWN_FEED, Result,
};
use crate::store::{ChainRecord, ForkEvidence, OwnAdd, OwnFeed, Txn, keys};

impl Engine {
    /// Checks fork evidence a peer forwarded and, when it is new, freezes the forked
    /// generation as if this node had found the fork itself.
    pub fn ingest_fork_evidence(&mut self, evidence: &[u8]) -> Result<ForkOutcome> {
        let digest = *blake3::hash(evidence).as_bytes();
        if self.known_forks.contains(&digest) {
            return Ok(ForkOutcome::Known);
        }
        // On what the evidence claims, before two signatures are spent: an origin outside the
        // roster, or a position already held or frozen before, would be ignored whatever the
        // signatures say. Nothing is stored or remembered on a claim.
        let claim = fork_evidence_manifests(evidence)
            .ok()
            .and_then(|(first, _)| claimed_manifest(&first, &self.config.federation_id));
        if let Some(claim) = claim {
            if !self.is_member(&claim.origin) {
                self.counters.unknown_origin += 1;
                return Ok(ForkOutcome::UnknownOrigin);
            }
            let header = &claim.header;
            let contested = BatchId::new(claim.origin, header.generation, header.seq);
            if self.fork_known(&contested)? {
                return Ok(ForkOutcome::Known);
            }
        }
        let checked = verify_fork_evidence(evidence, &self.config.federation_id, &self.roster)
            .and_then(|fork| Ok((fork, fork_evidence_manifests(evidence)?)));
        let (fork, (ours, theirs)) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                self.counters.rejected += 1;
                return Ok(ForkOutcome::Invalid(error));
            }
        };
        let contested = BatchId::new(fork.origin.to_bytes(), fork.generation, fork.seq);
        let outcome = if self.fork_known(&contested)? {
            ForkOutcome::Known
        } else {
            let evidence = ForkEvidence { ours, theirs, found_at_ms: self.clock.now_ms() };
            if self.freeze(contested, evidence)? {
                ForkOutcome::Recorded
            } else {
                ForkOutcome::OverLimit { penalise: self.equivocates_anew(&contested)? }
            }
        };
        // Remembered only once it took effect: a failed freeze is tried again on the next copy.
        if self.known_forks.len() >= MAX_FORK_EVIDENCE {
            self.known_forks.clear();
        }
        self.known_forks.insert(digest);
        Ok(outcome)
    }

    /// Whether evidence of a fork at `contested` would change nothing here: evidence of that
    /// position is held, or the generation was frozen before it.
    fn fork_known(&self, contested: &BatchId) -> Result<bool> {
        let chain = self.chain(contested.feed)?;
        let frozen_before = chain.limit().is_some_and(|limit| limit < contested.seq);
        Ok(frozen_before || self.store.get_raw(&keys::fork(contested))?.is_some())
    }

    /// The member to penalise for evidence that was not kept: its signer, but only when the
    /// signer is past its own limit (not the node's total) and the evidence is about a generation
    /// no other evidence or frozen chain here names, so that contested seqs of one fork, fed in
    /// one by one, cost nothing, and nobody pays for the node's total being full.
    fn equivocates_anew(&self, contested: &BatchId) -> Result<Option<[u8; 32]>> {
        let origin = contested.feed.origin;
        let held = self.store.scan_keys(&keys::forks_of(&origin))?;
        let same_generation =
            held.iter().filter_map(|key| keys::parse_fork(key)).any(|id| id.feed == contested.feed);
        let over_own_limit = held.len() >= MAX_FORKS_PER_ORIGIN;
        let chain_known = self.store.get_raw(&keys::chain(&contested.feed))?.is_some();
        Ok((over_own_limit && !same_generation && !chain_known).then_some(origin))
    }

    /// How many forks this node holds evidence of.
    pub fn fork_count(&self) -> Result<usize> {
        Ok(self.store.scan_keys(&keys::all_forks())?.len())
    }

    /// Fork evidence this node found since the last call, to forward to peers.
    pub fn take_fork_evidence(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outgoing_forks)
    }

    /// Every fork held, as forwardable evidence, up to `max_bytes` in all: the answer to
    /// `forks`. Evidence this node could not complete (its own copy was gone), and evidence
    /// against a member since removed from the roster (which peers would refuse), is left out.
    pub fn fork_evidence(&self, max_bytes: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for (key, evidence) in self.store.scan::<ForkEvidence>(&keys::all_forks())? {
            let member = keys::parse_fork(&key).is_some_and(|id| self.is_member(id.origin()));
            if evidence.ours.is_empty() || !member {
                continue;
            }
            let encoded = encode_fork_evidence(&evidence.ours, &evidence.theirs);
            bytes += encoded.len() + 9;
            if bytes > max_bytes {
                break;
            }
            out.push(encoded);
        }
        Ok(out)
    }

    /// Fork evidence held, by contested position.
    pub fn forks(&self) -> Result<Vec<(BatchId, ForkEvidence)>> {
        Ok(self
            .store
            .scan::<ForkEvidence>(&keys::all_forks())?
            .into_iter()
            .filter_map(|(key, evidence)| Some((keys::parse_fork(&key)?, evidence)))
            .collect())
    }

    /// Clears fork evidence after an operator dealt with it. The generation stays frozen.
    pub fn clear_fork(&mut self, contested: BatchId) -> Result<bool> {
        let key = keys::fork(&contested);
        let existed = self.store.get_raw(&key)?.is_some();
        let mut txn = self.store.txn();
        txn.remove(key);
        txn.commit_durable()?;
        Ok(existed)
    }

    /// Chains a proved fork cut short that this node has not yet caught up to the fork: what to
    /// fetch of each, from any peer. At most [`MAX_FORKS_PER_ORIGIN`] per origin, so that the
    /// pulls they cause stay bounded whatever an origin signs.
    pub fn unfinished_forked_chains(&self) -> Result<Vec<HeadClaim>> {
        let mut claims: Vec<HeadClaim> = Vec::new();
        for (key, chain) in self.store.scan::<ChainRecord>(&keys::all_chains())? {
            let Some(feed) = keys::parse_chain(&key) else { continue };
            if !self.is_member(&feed.origin) {
                // Nobody serves a removed member's batches: nothing to fetch.
                continue;
            }
            let of_origin = claims.iter().filter(|claim| claim.feed.origin == feed.origin).count();
            if of_origin >= MAX_FORKS_PER_ORIGIN {
                continue;
            }
            if let Some(limit) = chain.freeze_at.filter(|limit| !chain.frozen && *limit > chain.seq)
            {
                claims.push(HeadClaim {
                    feed,
                    from_seq: chain.seq + 1,
                    to_seq: limit,
                    // Not a head of the own feed: recovery must not read it as one.
                    own: false,
                });
            }
        }
        Ok(claims)
    }

    /// A batch contradicts what this node holds at `seq`: keep both manifests as evidence,
    /// queue the evidence for forwarding, and freeze the generation.
    pub(super) fn record_fork(
        &mut self,
        theirs: &VerifiedBatch,
        seq: u64,
        ours_hash: BatchHash,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let contested = theirs.id().feed.batch(seq);
        let ours = self
            .stored_batch(&self.store.txn(), &contested)?
            .filter(|b| b.hash() == ours_hash)
            .map(|b| b.manifest_bytes().to_vec())
            .unwrap_or_default();
        let forwardable =
            (!ours.is_empty()).then(|| encode_fork_evidence(&ours, theirs.manifest_bytes()));
        let evidence =
            ForkEvidence { ours, theirs: theirs.manifest_bytes().to_vec(), found_at_ms: now };
        let kept = self.freeze(contested, evidence)?;
        if let Some(encoded) = forwardable.filter(|_| kept)
            && self.outgoing_forks.len() < MAX_OUTGOING_FORKS
        {
            self.outgoing_forks.push(encoded);
        }
        Ok(())
    }

    /// Freezes the contested feed just before the contested seq, keeps the evidence (within
    /// [`MAX_FORKS_PER_ORIGIN`] and [`MAX_FORK_EVIDENCE`]), and withdraws every entry at or
    /// after that seq from matching. A node that holds less of the chain still fetches it up to
    /// `seq − 1`. A fork of the own feed moves it to a new generation and publishes its
    /// withdrawn adds again there. Past the evidence limits, a feed this node holds nothing of
    /// is left alone: evidence that is not kept creates no chain record either, so chain
    /// records, and the pulls they cause, stay bounded per origin.
    fn freeze(&mut self, contested: BatchId, evidence: ForkEvidence) -> Result<bool> {
        self.counters.forks += 1;
        let now = self.clock.now_ms();
        let (feed, seq) = (contested.feed, contested.seq);
        let store = self.store.clone();
        let mut txn = store.txn();
        let per_origin = self.store.scan_keys(&keys::forks_of(&feed.origin))?.len();
        let kept = per_origin < MAX_FORKS_PER_ORIGIN && self.fork_count()? < MAX_FORK_EVIDENCE;
        if kept {
            txn.put(keys::fork(&contested), &evidence);
        } else if txn.get_raw(&keys::chain(&feed))?.is_none() && !self.is_own(&feed.origin) {
            return Ok(false);
        }
        let held = self.chain_in(&txn, &feed)?;
        let limit = seq.saturating_sub(1).min(held.limit().unwrap_or(u64::MAX));
        let frozen_head = if held.seq > limit {
            // Cut back to the batch before the fork.
            let hash = txn
                .get_raw(&keys::batch_hash(&feed.batch(limit)))?
                .and_then(|bytes| bytes.try_into().ok())
                .map_or(BatchHash::ZERO, BatchHash);
            ChainRecord { seq: limit, hash, frozen: true, freeze_at: Some(limit) }
        } else {
            // At the limit: frozen now. Short of it: the honest batches before the fork are
            // still fetched, and the chain freezes when its head reaches the limit.
            ChainRecord { frozen: held.frozen || held.seq == limit, freeze_at: Some(limit), ..held }
        };
        let own = self.is_own(&feed.origin);
        let mut events = Vec::new();
        // Entries exist at or after the fork only if this node held that far. Only this
        // chain's stored batches from the fork on are read (`live_adds.rs`).
        if held.seq >= seq && !own {
            for (token, add) in self.live_adds_in_feed(&txn, &feed, seq)? {
                self.retire_remote_add(&mut txn, &token, &feed.origin, &add)?;
                events.extend(self.refresh_alert(&mut txn, &token, now, false)?);
            }
            self.withdraw_remote_tags(&mut txn, &feed, seq)?;
        }
        txn.put(keys::chain(&feed), &frozen_head);
        if own {
            let repaired = self.repair_own_fork(&mut txn, contested, held.seq)?;
            txn.commit_durable()?;
            self.own = repaired;
        } else {
            txn.commit()?;
        }
        // Held batches before the fork are still good; those past it never will be.
        self.held.retain(|id, _| !(id.feed == feed && id.seq > limit));
        self.announce(events);
        Ok(kept)
    }

    /// Our own feed forked at `contested` (a lost store signed a seq again, or a restored
    /// backup): every peer withdraws what we published there from that seq on. The repair is a
    /// new generation, whose first batch names the last batch we know, in which our live adds
    /// from the fork on, and the retractions and statuses we published there, go out again.
    /// Returns the new own-feed position, to take effect once `txn` commits.
    fn repair_own_fork(
        &self,
        txn: &mut Txn<'_>,
        contested: BatchId,
        held_to: u64,
    ) -> Result<OwnFeed> {
        let (feed, seq) = (contested.feed, contested.seq);
        let mut own = self.own;
        if feed.generation >= own.generation {
            own.generation = feed.generation + 1;
            own.seq = 0;
            txn.put(keys::meta(OWN_FEED), &own);
        }
        // Adds: the live ones the fork withdrew, as the records holding them now say.
        for (key, own_add) in txn.scan::<OwnAdd>(&keys::all_own_adds())? {
            let Some(token) = keys::parse_own_add(&key) else { continue };
            if own_add.generation == feed.generation && own_add.seq >= seq {
                // Published under the epoch rotated from: its twin of the running epoch.
                if let Some(token) = self.running_token(txn, &token)? {
                    self.enqueue_current_add(txn, &token)?;
                }
            }
        }
        // Retractions and statuses: whatever still holds of them.
        let mut statuses: BTreeMap<[u8; 32], StatusUpdate> = BTreeMap::new();
        for at in seq..=held_to {
            let Some(batch) = self.stored_batch(txn, &feed.batch(at))? else {
                continue;
            };
            self.republish_own_tags(txn, &batch, self.clock.now_ms())?;
            // A batch of the epoch rotated from speaks of old tokens: what goes out again is
            // their twins of the running epoch (an old token with no twin is no longer held).
            let older = batch.header().epoch != self.config.epoch;
            for entry in batch.entries().flatten() {
                match entry.op {
                    Op::Retract(mut retract) => {
                        if older {
                            // During the grace period it still counts under the old epoch.
                            let epoch = batch.header().epoch;
                            if self.epoch_role(epoch, self.clock.now_ms()) == EpochRole::Grace {
                                self.enqueue_in_epoch(txn, Op::Retract(retract.clone()), epoch)?;
                            }
                            let Some(token) = self.running_token(txn, &retract.token)? else {
                                continue;
                            };
                            retract.token = token;
                        }
                        if self.shared_holders(txn, &retract.token)?.is_empty() {
                            self.enqueue(txn, Op::Retract(retract))?;
                        }
                    }
                    Op::Status(mut status) => {
                        if older {
                            let Some(token) = self.running_token(txn, &status.token)? else {
                                continue;
                            };
                            status.token = token;
                        }
                        statuses.insert(*status.token.as_bytes(), status);
                    }
                    _ => {}
                }
            }
        }
        for status in statuses.into_values() {
            if !self.shared_holders(txn, &status.token)?.is_empty() {
                self.enqueue(txn, Op::Status(status))?;
            }
        }
        Ok(own)
    }
}
