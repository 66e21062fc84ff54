//! The own feed: the outbox signed into batches, each appended to the fsynced own-feed log
//! before it is recorded in the store and handed out for publishing; replay of that log after
//! a crash; new generations when the feed's history cannot be confirmed.

use crossmatch_protocol::limits::{MAX_BATCH_BYTES, MAX_ENTRIES_PER_BATCH};
use crossmatch_protocol::{BatchPosition, Entry, FeedId, VerifiedBatch, sign_batch, verify_batch};

use super::ingest::Applied;
use super::{Engine, OWN_FEED, Result, put_stored_batch};
use crate::clock::DAY_MS;
use crate::store::{self, ChainRecord, OutboxItem, OwnFeed, Quota, Txn, keys};

impl Engine {
    /// Number of entries waiting to be published.
    pub fn outbox_len(&self) -> Result<usize> {
        Ok(self.store.scan_keys(&keys::all_outbox())?.len())
    }

    /// True when the store holds own-feed batches the own-feed log does not: the store came
    /// from a backup (or the log was lost), so what this node signed after it is unknown.
    pub fn restored_from_backup(&self) -> bool {
        self.restored
    }

    /// Whether this node has ever signed a batch (its own feed is not empty).
    pub fn has_own_feed(&self) -> bool {
        self.own.seq > 0 || self.own.generation > 1
    }

    /// Starts a new generation of the own feed (after a fork of it, or when its history cannot
    /// be confirmed). Its first batch names the last batch this node knew in `prev`.
    pub fn start_new_generation(&mut self) -> Result<u32> {
        self.start_generation_after(0)
    }

    /// Starts a new generation of the own feed past both the current one and `proved`, the
    /// newest generation of the own feed a peer proved to hold: after a loss, a generation the
    /// store never got back may be the current one's successor, and its seqs must never be
    /// signed again.
    /// The position moves only once it is stored: a refused commit leaves the feed as it was.
    pub fn start_generation_after(&mut self, proved: u32) -> Result<u32> {
        let next = OwnFeed { generation: self.own.generation.max(proved) + 1, seq: 0, ..self.own };
        let mut txn = self.store.txn();
        txn.put(keys::meta(OWN_FEED), &next);
        txn.commit_durable()?;
        self.own = next;
        Ok(self.own.generation)
    }

    /// Drains the outbox into signed batches: each is appended to the fsynced own-feed log, then
    /// recorded in the store, then returned for publishing. Carries a rotation as far as the
    /// clock allows first, in one call: for tests and tools (the daemon's publisher calls
    /// [`Engine::publish_batches`], whose work per call is bounded).
    pub fn publish(&mut self) -> Result<Vec<VerifiedBatch>> {
        self.advance_rotation()?;
        self.publish_batches(usize::MAX)
    }

    /// As [`Engine::publish`], stopping after `limit` batches so a caller holding a lock over
    /// the engine can let other work in between.
    /// A republication (a rotation's, `engine/rotation/republish.rs`, or a key change's,
    /// `engine/own_key/republish.rs`) is fed in only when the outbox is empty, a slice at a
    /// time, so analysts' new entries always go first.
    /// A rotation is carried one bounded step first (the slice worker does the rest).
    /// A batch is signed only while the disk keeps the store's reserve; one the own-feed log
    /// holds past the store's head (its commit was refused) is committed first, so its seq is
    /// never signed twice and the feed has no gap.
    /// What a call stored before an error is still returned, to be gossiped (the error comes
    /// again at the next turn).
    pub fn publish_batches(&mut self, limit: usize) -> Result<Vec<VerifiedBatch>> {
        self.rotation_step()?;
        let mut published = Vec::new();
        match self.publish_into(&mut published, limit) {
            Ok(()) => Ok(published),
            Err(error) if !published.is_empty() => {
                tracing::warn!(%error, stored = published.len(), "publishing stopped part way");
                Ok(published)
            }
            Err(error) => Err(error),
        }
    }

    /// The work of [`Engine::publish_batches`], each batch stored pushed onto `published`.
    fn publish_into(&mut self, published: &mut Vec<VerifiedBatch>, limit: usize) -> Result<()> {
        published.extend(self.commit_logged_batch()?);
        while published.len() < limit {
            // One batch's worth at most: the outbox can hold a whole import.
            let items = self
                .store
                .scan_first::<OutboxItem>(&keys::all_outbox(), MAX_ENTRIES_PER_BATCH + 1)?;
            let Some((_, first)) = items.first() else {
                if self.feed_own_republication()? || self.feed_republication()? {
                    continue;
                }
                break;
            };
            let epoch = first.epoch;
            let mut entries = Vec::new();
            let mut outbox_last = 0;
            // Wire overhead: manifest (~200 bytes) + per entry its bytes, digest and framing.
            let mut bytes = 512;
            let now = self.clock.now_ms();
            for (key, item) in &items {
                let parsed = keys::parse_outbox(key);
                let decoded = Entry::decode(&item.entry, now);
                let (Some(seq), Ok(entry)) = (parsed, decoded) else {
                    // An own entry that no longer fits the rules at signing time (an add that
                    // expired while waiting), or one under a damaged key, is dropped from the
                    // outbox, so that it can never hold up the entries behind it.
                    tracing::warn!(
                        damaged_key = parsed.is_none(),
                        "outbox entry that cannot be signed dropped"
                    );
                    self.counters.outbox_dropped += 1;
                    let mut txn = self.store.txn();
                    txn.remove(key.clone());
                    txn.commit()?;
                    continue;
                };
                let cost = item.entry.len() + 32 + 8;
                if item.epoch != epoch
                    || entries.len() == MAX_ENTRIES_PER_BATCH
                    || bytes + cost > MAX_BATCH_BYTES
                {
                    break;
                }
                bytes += cost;
                entries.push(entry);
                outbox_last = seq;
            }
            if entries.is_empty() {
                continue;
            }
            let batch_position = BatchPosition {
                generation: self.own.generation,
                seq: self.own.seq + 1,
                prev: self.own.hash,
                epoch,
                created_at_ms: now,
            };
            // Room before signing: a batch logged and then refused would hold its seq.
            self.store.check_space()?;
            let Ok(batch) =
                sign_batch(&self.config.key, &self.config.federation_id, batch_position, &entries)
            else {
                break;
            };
            let wire = batch.to_wire();
            self.own_log.append(outbox_last, &wire).map_err(store::Error::Io)?;
            self.last_logged = Some(store::own_log::Logged { outbox_last, wire });
            self.logged_ahead = true;
            let store = self.store.clone();
            let mut txn = store.txn();
            let own = self.record_own_batch(&mut txn, &batch, outbox_last)?;
            txn.commit_durable()?;
            self.own = own;
            self.logged_ahead = false;
            published.push(batch);
        }
        Ok(())
    }

    /// Stages an own batch: consumes its outbox entries, indexes its entries, stores it and
    /// stages the own feed's position at it; returns that position, which the caller adopts
    /// once the write set is committed (a refused commit leaves the feed where it was).
    fn record_own_batch(
        &mut self,
        txn: &mut Txn<'_>,
        batch: &VerifiedBatch,
        outbox_last: u64,
    ) -> Result<OwnFeed> {
        let id = batch.id();
        let consumed = outbox_last.saturating_add(1);
        for key in self.store.range_keys(&keys::outbox(0), &keys::outbox(consumed), usize::MAX)? {
            txn.remove(key);
        }
        let all: Vec<usize> = (0..batch.header().entry_digests.len()).collect();
        let Applied { redact, expiries, .. } =
            self.apply_entries(txn, batch, &all, batch.header().created_at_ms)?;
        expiries.write(txn, &id)?;
        // Peers get the complete batch; this node keeps it without what it already retracted.
        put_stored_batch(txn, &batch.redacted(&redact));
        txn.put(
            keys::chain(&id.feed),
            &ChainRecord { seq: id.seq, hash: batch.hash(), ..ChainRecord::default() },
        );
        let own =
            OwnFeed { generation: id.generation(), seq: id.seq, hash: batch.hash(), outbox_last };
        txn.put(keys::meta(OWN_FEED), &own);
        // Imports: today's own `q` row, what an import's share is paced under (receivers
        // count this node's entries per UTC day; `engine/imports/quota.rs`).
        let quota_key = keys::quota(&self.own_key, (batch.header().created_at_ms / DAY_MS) as u32);
        let mut used: Quota = txn.get(&quota_key)?.unwrap_or_default();
        used.entries += batch.header().entry_digests.len() as u64;
        used.bytes += batch.to_wire().len() as u64;
        txn.put(quota_key, &used);
        Ok(own)
    }

    /// Notes in the own-feed log, before anything else, an own batch restored from a peer, so
    /// its seq is never signed again; then stages the own feed's position at it and returns
    /// that position, for the caller to adopt once `txn` is committed.
    pub(super) fn restore_own_batch(
        &mut self,
        txn: &mut Txn<'_>,
        batch: &VerifiedBatch,
    ) -> Result<OwnFeed> {
        let id = batch.id();
        let wire = batch.to_wire();
        self.own_log.append(self.own.outbox_last, &wire).map_err(store::Error::Io)?;
        self.last_logged = Some(store::own_log::Logged { outbox_last: self.own.outbox_last, wire });
        self.logged_ahead = true;
        let own = OwnFeed {
            generation: id.generation(),
            seq: id.seq,
            hash: batch.hash(),
            outbox_last: self.own.outbox_last,
        };
        txn.put(keys::meta(OWN_FEED), &own);
        Ok(own)
    }

    /// Commits what the own-feed log holds past the store's head (a commit refused for a full
    /// disk: its last batch; a start that could not replay: every batch it left): the very
    /// batches logged, so a later replay finds the same ones, never a second batch under a
    /// seq. The batches it stored, for gossip.
    fn commit_logged_batch(&mut self) -> Result<Vec<VerifiedBatch>> {
        if !self.logged_ahead {
            return Ok(Vec::new());
        }
        // Replay skips what the store already holds, so the last batch may come twice.
        let mut logged = self.unreplayed.clone();
        logged.extend(self.last_logged.iter().cloned());
        let stored = self.replay_own_log(&logged)?;
        self.unreplayed.clear();
        self.logged_ahead = false;
        Ok(stored)
    }

    /// The start's replay of the own-feed log. On a disk too full to commit, the node still
    /// starts: what stays unreplayed is committed before the next batch is signed.
    pub(super) fn replay_logged_at_open(
        &mut self,
        logged: Vec<store::own_log::Logged>,
    ) -> Result<()> {
        match self.replay_own_log(&logged) {
            Ok(_) => {
                self.logged_ahead = false;
                Ok(())
            }
            Err(super::Error::Store(store::Error::Io(error)))
                if error.kind() == std::io::ErrorKind::StorageFull =>
            {
                self.unreplayed = logged;
                tracing::warn!(
                    "disk full at start: the own-feed log is replayed once space returns"
                );
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Whether `(generation, seq)` lies past the own feed's position.
    pub(super) fn ahead_of_own(&self, feed: &FeedId, seq: u64) -> bool {
        (feed.generation, seq) > (self.own.generation, self.own.seq)
    }

    /// Shrinks the own-feed log to its last batch once the store holds everything durably.
    /// Skipped while the disk is short of the store's reserve (the log only shrinks) or while
    /// its last batch may lie past the store's head.
    pub(super) fn compact_own_log(&mut self) -> Result<()> {
        if self.logged_ahead || self.store.check_space().is_err() {
            return Ok(());
        }
        self.store.flush()?;
        self.own_log.compact(self.last_logged.as_ref()).map_err(store::Error::Io)?;
        Ok(())
    }

    /// Batches that reached the fsynced log but not the store (a crash in between) are applied;
    /// the ones applied.
    pub(super) fn replay_own_log(
        &mut self,
        logged: &[store::own_log::Logged],
    ) -> Result<Vec<VerifiedBatch>> {
        let mut stored = Vec::new();
        for record in logged {
            let Ok(batch) = verify_batch(&record.wire, &self.config.federation_id, &self.roster)
            else {
                continue;
            };
            let id = batch.id();
            if self.is_own(id.origin()) && self.ahead_of_own(&id.feed, id.seq) {
                let store = self.store.clone();
                let mut txn = store.txn();
                let own = self.record_own_batch(&mut txn, &batch, record.outbox_last)?;
                txn.commit_durable()?;
                self.own = own;
                stored.push(batch);
            }
        }
        Ok(stored)
    }
}
