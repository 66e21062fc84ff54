//! The pace of members' new records taken from the mesh (docs/PROTOCOL.md §3.7): each member
//! may have [`RECORD_BURST`] new records taken at once, then one per [`RECORD_REFILL`], so a
//! member that signs record after record (each a durable write and a new member set at every
//! node) is held to that pace. Past it, a valid new record is judged on its claim, before its
//! signature, and ignored: not stored, not forwarded (its member's newest record comes again at
//! a later pull, once the pace allows it), and, gossiped, drawn on the sender's budget of
//! ignorable gossip. Held in memory (a restart starts every member at the burst again), one
//! bucket per member of the roster. Records an admin posts and this node's own are not paced.
//! Also counts what the node did with the records peers offered, for tests and operators.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossmatch_protocol::VerifiedRoster;

/// New records of one member taken at once.
pub(in crate::daemon) const RECORD_BURST: f64 = 3.0;
/// Then one new record of that member per this long: an address changes rarely, and a member
/// that moved twice in ten minutes is served its newest record at a later pull.
pub(in crate::daemon) const RECORD_REFILL: Duration = Duration::from_secs(600);

/// What a node did with the records peers offered since it started (gossip and pulls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberRecordCounts {
    /// Records gossiped to this node (every message on the records topic).
    pub gossiped: u64,
    /// New records taken from gossip.
    pub taken_by_gossip: u64,
    /// New records taken from a pull (`member_records`).
    pub taken_by_sync: u64,
    /// Valid new records not taken: past their member's pace.
    pub paced: u64,
    /// Gossiped records drawn on their sender's budget of ignorable gossip.
    pub charged: u64,
    /// Gossiped records not judged (another adoption held the lock, or no signed roster): free,
    /// and fetched again at a pull.
    pub not_judged: u64,
}

/// The per-member buckets and the counts (module docs).
#[derive(Debug, Default)]
pub(in crate::daemon) struct RecordPace {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    gossiped: AtomicU64,
    taken_by_gossip: AtomicU64,
    taken_by_sync: AtomicU64,
    paced: AtomicU64,
    charged: AtomicU64,
    not_judged: AtomicU64,
}

/// One of the counts of [`MemberRecordCounts`], to add to.
#[derive(Debug, Clone, Copy)]
pub(in crate::daemon) enum Count {
    Gossiped,
    TakenByGossip,
    TakenBySync,
    Paced,
    Charged,
    NotJudged,
}

impl RecordPace {
    /// `(tokens, at)` of `member`'s bucket refilled to `now`.
    fn refilled(bucket: (f64, Instant), now: Instant) -> (f64, Instant) {
        let (tokens, at) = bucket;
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        ((tokens + elapsed / RECORD_REFILL.as_secs_f64()).min(RECORD_BURST), now)
    }

    /// Whether a new record of `member` may be taken at `now` (nothing is spent).
    pub(in crate::daemon) fn allows(&self, member: &str, now: Instant) -> bool {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.get(member).is_none_or(|bucket| Self::refilled(*bucket, now).0 >= 1.0)
    }

    /// Spends one of `member`'s new records at `now`; false (nothing spent) past its pace. The
    /// buckets are kept to the members of `roster` (a removed member's is dropped).
    pub(in crate::daemon) fn take(
        &self,
        roster: &VerifiedRoster,
        member: &str,
        now: Instant,
    ) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let members = roster.body().members.len();
        if buckets.len() >= members && !buckets.contains_key(member) {
            buckets.retain(|held, _| roster.body().member(held).is_some());
        }
        let bucket = buckets.entry(member.to_owned()).or_insert((RECORD_BURST, now));
        *bucket = Self::refilled(*bucket, now);
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Adds `by` to one count.
    pub(in crate::daemon) fn count(&self, count: Count, by: u64) {
        let counter = match count {
            Count::Gossiped => &self.gossiped,
            Count::TakenByGossip => &self.taken_by_gossip,
            Count::TakenBySync => &self.taken_by_sync,
            Count::Paced => &self.paced,
            Count::Charged => &self.charged,
            Count::NotJudged => &self.not_judged,
        };
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// The counts so far.
    pub(in crate::daemon) fn counts(&self) -> MemberRecordCounts {
        MemberRecordCounts {
            gossiped: self.gossiped.load(Ordering::Relaxed),
            taken_by_gossip: self.taken_by_gossip.load(Ordering::Relaxed),
            taken_by_sync: self.taken_by_sync.load(Ordering::Relaxed),
            paced: self.paced.load(Ordering::Relaxed),
            charged: self.charged.load(Ordering::Relaxed),
            not_judged: self.not_judged.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crossmatch_protocol::verify_founding;

    use super::*;
    use crate::local::LocalFederation;

    #[test]
    fn a_member_has_its_burst_of_new_records_then_one_per_refill_and_buckets_stay_bounded() {
        let fed = LocalFederation::new(Path::new("/nonexistent"), &["A", "B"]);
        let signed = fed.sign_roster(fed.roster_body(&[0, 1], 1, 2, u64::MAX), &[0, 1]);
        let roster = verify_founding(&signed).unwrap();
        let pace = RecordPace::default();
        let now = Instant::now();
        for _ in 0..RECORD_BURST as usize {
            assert!(pace.allows("A", now));
            assert!(pace.take(&roster, "A", now));
        }
        assert!(!pace.allows("A", now), "past the burst");
        assert!(!pace.take(&roster, "A", now));
        assert!(pace.take(&roster, "B", now), "per member");
        let later = now + RECORD_REFILL;
        assert!(pace.allows("A", later), "one more after the refill");
        assert!(pace.take(&roster, "A", later));
        assert!(!pace.take(&roster, "A", later));
        // A member the roster lacks (removed) leaves no bucket behind once the map is full.
        assert!(pace.take(&roster, "gone", now));
        assert!(pace.take(&roster, "C", now));
        let held = pace.buckets.lock().unwrap().len();
        assert!(held <= 3, "{held} buckets for a roster of two");
    }
}
