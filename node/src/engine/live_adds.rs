//! Where an origin's live adds sit, read from its stored batches: a fork withdraws the adds of
//! the chain it freezes from the contested seq on, a withdrawal those of an origin outside the
//! roster, and a republication allowance counts those of a member's retired key or older
//! epoch. Every live add (`t`) was applied from an entry of a batch this node stores (`b`,
//! kept for serving, redacted but never deleted), and keeps that entry's place; so the
//! batches, read in key order, each add entry checked against the `t` row it would have made,
//! find every live add and no other, with no index written per add on ingest's path.
//!
//! Reads are bounded by entries read (redacted ones and those of other kinds too, and an empty
//! batch counts as one), not by adds found: a step of a withdrawal or count stops at its
//! budget, mid-batch if it must, and goes on from the next entry's place. A fork reads the
//! frozen chain's batches from the contested seq on whole, as it withdraws every live add
//! there in one write (bounded by the chain's batches past the fork, and forks by
//! `MAX_FORKS_PER_ORIGIN`).

use crossmatch_protocol::{BatchId, Entry, Op, Token};
use serde::{Deserialize, Serialize};

use super::{Engine, Result};
use crate::store::{self, RemoteAdd, Txn, keys};

/// Stored batches listed per read of the store while a slice goes on.
const BATCHES_PER_READ: usize = 16;

/// An entry's place in an origin's stored batches: where a read begins or goes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryPlace {
    /// The feed's generation.
    pub generation: u32,
    /// The batch's seq in it.
    pub seq: u64,
    /// The entry's index in the batch.
    pub index: u32,
}

/// What one read of an origin's batches found.
#[derive(Debug, Default)]
pub(super) struct LiveAdds {
    /// The live adds, by token, in the order their batches are stored.
    pub adds: Vec<(Token, RemoteAdd)>,
    /// Entries read, of any kind, live or not (an empty batch counts as one).
    pub read: usize,
    /// Where the next read goes on; none once every batch in the range was read.
    pub next: Option<EntryPlace>,
}

impl Engine {
    /// `origin`'s live adds in its stored batches from `from` on, in every later generation,
    /// reading at most `budget` entries.
    pub(super) fn live_adds_of(
        &self,
        txn: &Txn<'_>,
        origin: &[u8; 32],
        from: EntryPlace,
        budget: usize,
    ) -> Result<LiveAdds> {
        let (start, end) = keys::origin_batches_from(origin, from.generation, from.seq);
        self.live_adds_between(txn, origin, from, (start, end), budget)
    }

    /// The live adds the origin of `feed` made in it from `from_seq` on, every one.
    pub(super) fn live_adds_in_feed(
        &self,
        txn: &Txn<'_>,
        feed: &crossmatch_protocol::FeedId,
        from_seq: u64,
    ) -> Result<Vec<(Token, RemoteAdd)>> {
        let range = keys::feed_batches_from(feed, from_seq);
        let from = EntryPlace { generation: feed.generation, seq: from_seq, index: 0 };
        Ok(self.live_adds_between(txn, &feed.origin, from, range, usize::MAX)?.adds)
    }

    fn live_adds_between(
        &self,
        txn: &Txn<'_>,
        origin: &[u8; 32],
        from: EntryPlace,
        (mut start, end): (Vec<u8>, Vec<u8>),
        budget: usize,
    ) -> Result<LiveAdds> {
        let mut found = LiveAdds::default();
        loop {
            let listed = self.store.range_keys(&start, &end, BATCHES_PER_READ)?;
            let Some(last) = listed.last() else { return Ok(found) };
            start = [last.as_slice(), &[0]].concat();
            for key in &listed {
                let id = keys::parse_batch(key)
                    .ok_or(store::Error::Corrupt { prefix: char::from(keys::prefix::BATCH) })?;
                if let Some(next) =
                    self.live_adds_in_batch(txn, origin, &id, from, budget, &mut found)?
                {
                    found.next = Some(next);
                    return Ok(found);
                }
            }
        }
    }

    /// Adds the live adds of stored batch `id` to `found`, from `from`'s entry when the read
    /// begins in this batch; the place to go on from if the budget ran out in it.
    fn live_adds_in_batch(
        &self,
        txn: &Txn<'_>,
        origin: &[u8; 32],
        id: &BatchId,
        from: EntryPlace,
        budget: usize,
        found: &mut LiveAdds,
    ) -> Result<Option<EntryPlace>> {
        let Some(batch) = self.stored_batch(txn, id)? else { return Ok(None) };
        let first = if (id.generation(), id.seq) == (from.generation, from.seq) {
            from.index as usize
        } else {
            0
        };
        if batch.raw_entries().is_empty() {
            // Signed with no entry (the wire allows it): counted as one, so that a run of them
            // is bounded too.
            if found.read >= budget {
                return Ok(Some(EntryPlace { generation: id.generation(), seq: id.seq, index: 0 }));
            }
            found.read += 1;
            return Ok(None);
        }
        for (index, entry) in batch.entries().enumerate().skip(first) {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            if found.read >= budget {
                return Ok(Some(EntryPlace { generation: id.generation(), seq: id.seq, index }));
            }
            found.read += 1;
            let Ok(Entry { op: Op::Add(add), .. }) = entry else { continue };
            let live = txn.get::<RemoteAdd>(&keys::remote_add(&add.token, origin))?;
            if let Some(live) = live.filter(|live| live.place(*origin) == (*id, index)) {
                found.adds.push((add.token, live));
            }
        }
        Ok(None)
    }
}
