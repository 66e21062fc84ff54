//! What peers ask of this node's store: every origin's newest head with its signed manifest,
//! ranges of stored batches, single batches and chains; and the judgement of the heads a peer
//! claims, which tells the sync worker what to fetch and own-feed recovery what is proved.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use crossmatch_protocol::{BatchHash, BatchId, FeedId, claimed_manifest, verify_manifest};

use super::{Engine, HeadClaim, HeadsJudgement, OwnWitness, Result};
use crate::store::{ChainRecord, keys};

/// Most manifests of one `heads` answer looked at, even on their claim: a roster's largest
/// size (256 members), so that a peer on a roster with members this one lacks is never judged
/// over the bound, and an answer of any length costs a bounded number of claim reads.
pub const MAX_HEADS_JUDGED: usize = 256;

impl Engine {
    /// Roster members' newest heads this node holds (each member's highest generation with a
    /// batch), as signed manifests: the answer to `heads`. One manifest per roster member at
    /// most, so the answer does not grow with the generations an origin starts; nothing of a
    /// member since removed from the roster, which peers would refuse. At most `max_bytes` of
    /// manifests: a full batch's manifest is about 9 KiB, and a roster of 256 members would
    /// not fit one response. The members are taken in turn from the `rotation`-th on, so
    /// answers that start at different places cover every member between them.
    pub fn heads(&self, max_bytes: usize, rotation: usize) -> Result<Vec<Vec<u8>>> {
        let txn = self.store.txn();
        let members: Vec<BatchId> = self
            .head_positions()?
            .into_iter()
            .filter(|head| self.is_member(head.origin()))
            .collect();
        let mut manifests = Vec::new();
        let mut bytes = 0;
        for turn in 0..members.len() {
            let head = members[(rotation + turn) % members.len()];
            let Some(batch) = self.stored_batch(&txn, &head)? else { continue };
            // A manifest and its CBOR byte-string header.
            let cost = batch.manifest_bytes().len() + 9;
            if bytes + cost > max_bytes {
                continue;
            }
            bytes += cost;
            manifests.push(batch.manifest_bytes().to_vec());
        }
        Ok(manifests)
    }

    /// Every origin's newest position this node holds, in origin order. Contiguous: every batch
    /// up to that seq of that generation is stored.
    pub fn head_positions(&self) -> Result<Vec<BatchId>> {
        let mut newest: BTreeMap<[u8; 32], BatchId> = BTreeMap::new();
        for (key, chain) in self.store.scan::<ChainRecord>(&keys::all_chains())? {
            // Chain keys sort by origin, then generation: the last one seen is the newest.
            if let Some(head) = keys::parse_chain(&key).and_then(|feed| chain.head_of(feed)) {
                newest.insert(*head.origin(), head);
            }
        }
        Ok(newest.into_values().collect())
    }

    /// Up to `max` stored batches of `feed` from `from_seq` on, in seq order and at most
    /// `max_bytes` in all (at least one batch if any): the answer to `range`. None of a member
    /// since removed from the roster, which peers would refuse.
    pub fn range(
        &self,
        feed: FeedId,
        from_seq: u64,
        max: u32,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let mut batches = Vec::new();
        if !self.is_member(&feed.origin) {
            return Ok(batches);
        }
        let mut bytes = 0;
        for seq in from_seq..from_seq.saturating_add(u64::from(max)) {
            let Some(wire) = self.store.get_raw(&keys::batch(&feed.batch(seq)))? else {
                break;
            };
            bytes += wire.len() + 9;
            if bytes > max_bytes && !batches.is_empty() {
                break;
            }
            batches.push(wire);
        }
        Ok(batches)
    }

    /// Judges a head a peer claims, given as its signed manifest: `Some` when it verifies and
    /// lies beyond what this node holds of that chain (so a range should be fetched), `None`
    /// otherwise. An unsigned or unverifiable claim counts for nothing.
    pub fn head_ahead(&self, manifest: &[u8]) -> Result<Option<HeadClaim>> {
        let Ok((origin, header, _)) =
            verify_manifest(manifest, &self.config.federation_id, &self.roster)
        else {
            return Ok(None);
        };
        self.claim(FeedId::new(origin.to_bytes(), header.generation), header.seq)
    }

    /// Judges a peer's whole `heads` answer. The roster bounds it: the answer carries each
    /// member's head in the newest generation the peer holds of it (its *live* generation), so
    /// at most one manifest per roster member. A manifest whose claimed origin is outside this
    /// roster is ignored on its claim, not verified and not counted: a peer on another roster
    /// version (a member added) holds heads of members this roster lacks. Member manifests
    /// past the roster's size, a second manifest of one origin, and anything past
    /// [`MAX_HEADS_JUDGED`] manifests are counted as excess and not looked at, not even verified.
    pub fn judge_heads(&self, manifests: &[Vec<u8>]) -> Result<HeadsJudgement> {
        let bound = self.roster.len();
        let mut judgement = HeadsJudgement {
            excess: manifests.len().saturating_sub(MAX_HEADS_JUDGED),
            ..Default::default()
        };
        let mut origins = HashSet::new();
        let mut looked_at = 0;
        for manifest in manifests.iter().take(MAX_HEADS_JUDGED) {
            let claimed = claimed_manifest(manifest, &self.config.federation_id);
            if claimed.is_some_and(|claim| !self.is_member(&claim.origin)) {
                continue;
            }
            if looked_at >= bound {
                judgement.excess += 1;
                continue;
            }
            looked_at += 1;
            let Ok((origin, header, hash)) =
                verify_manifest(manifest, &self.config.federation_id, &self.roster)
            else {
                continue;
            };
            let origin = origin.to_bytes();
            if !origins.insert(origin) {
                judgement.excess += 1;
                continue;
            }
            if self.is_own(&origin) {
                judgement.own = self.own_witness(header.generation, header.seq, hash);
            }
            if let Some(claim) = self.claim(FeedId::new(origin, header.generation), header.seq)? {
                judgement.claims.push(claim);
            }
        }
        Ok(judgement)
    }

    /// What a verified head of the own feed at (generation, seq) with `hash` proves: heads name
    /// the newest generation held, so a head of an earlier generation shows that the peer
    /// holds nothing of the current one.
    fn own_witness(&self, generation: u32, seq: u64, hash: BatchHash) -> OwnWitness {
        let own = (self.own.generation, self.own.seq);
        match (generation, seq).cmp(&own) {
            Ordering::Greater => OwnWitness::Ahead(generation, seq),
            Ordering::Equal if hash == self.own.hash => OwnWitness::Confirms,
            Ordering::Equal => OwnWitness::Contradicts,
            Ordering::Less if own.1 == 0 && generation < own.0 => OwnWitness::Confirms,
            Ordering::Less => OwnWitness::Nothing,
        }
    }

    /// The range to fetch of `feed` when a peer holds it up to `seq`, if that is beyond what
    /// this node holds.
    fn claim(&self, feed: FeedId, seq: u64) -> Result<Option<HeadClaim>> {
        let chain = self.chain(feed)?;
        // Past a proved fork there is nothing to fetch.
        let to_seq = chain.limit().map_or(seq, |limit| seq.min(limit));
        let ahead = !chain.frozen && to_seq > chain.seq;
        Ok(ahead.then_some(HeadClaim {
            feed,
            from_seq: chain.seq + 1,
            to_seq,
            own: self.is_own(&feed.origin),
        }))
    }

    /// The stored wire form of a batch.
    pub fn batch(&self, id: BatchId) -> Result<Option<Vec<u8>>> {
        Ok(self.store.get_raw(&keys::batch(&id))?)
    }

    /// The chain record of `feed` (empty if none).
    pub fn chain(&self, feed: FeedId) -> Result<ChainRecord> {
        Ok(self.store.get(&keys::chain(&feed))?.unwrap_or_default())
    }
}
