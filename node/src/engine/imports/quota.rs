//! The own feed's daily quota, as an import sees it, and the release of a spread import's
//! records as room comes: receivers count every origin's entries per UTC day and ignore what
//! passes the roster's quota, so this node charges its own batches to its own `q` row
//! (`engine/publish.rs`) and shares an import only within [`OWN_QUOTA_PERCENT`] of the quota,
//! less what it signed today and what waits in the outbox. Analysts' own adds are never paced.

use crossmatch_protocol::Canonical;

use super::{OWN_QUOTA_PERCENT, OwnQuota};
use crate::audit::Action;
use crate::clock::DAY_MS;
use crate::engine::{Engine, OUTBOX_COUNTER, REPUBLICATION_BYTES_PER_ENTRY, Result, SLICE_ROWS};
use crate::store::imports::QuotaCheck;
use crate::store::{self, Quota, Record, keys};

impl OwnQuota {
    /// What this node's own feed may sign a day: [`OWN_QUOTA_PERCENT`] of the roster's quota,
    /// its bytes counted at `REPUBLICATION_BYTES_PER_ENTRY` an entry.
    pub fn daily_cap(&self) -> u64 {
        let cap = self.entries_per_day.min(self.bytes_per_day / REPUBLICATION_BYTES_PER_ENTRY);
        (u128::from(cap) * u128::from(OWN_QUOTA_PERCENT) / 100) as u64
    }

    /// Whether a share of `entries` fits today, and in how many days it is shared when spread
    /// (today's room, then a full day's cap each day after; `u32::MAX` when the cap is zero).
    pub fn check(&self, entries: u64) -> QuotaCheck {
        let fits_today = entries <= self.left_today;
        let rest = entries.saturating_sub(self.left_today);
        let cap = self.daily_cap();
        let days = match (rest, cap) {
            (0, _) => 1,
            (_, 0) => u32::MAX,
            (rest, cap) => {
                u32::try_from(rest.div_ceil(cap)).map_or(u32::MAX, |d| d.saturating_add(1))
            }
        };
        QuotaCheck {
            entries_per_day: self.entries_per_day,
            left_today: self.left_today,
            entries,
            fits_today,
            days,
        }
    }
}

impl Engine {
    /// The own feed's daily quota today.
    pub fn own_quota(&self) -> Result<OwnQuota> {
        let day = (self.clock.now_ms() / DAY_MS) as u32;
        let signed: Quota = self.store.get(&keys::quota(&self.own_key, day))?.unwrap_or_default();
        // Every outbox entry takes the next outbox seq and leaves with a batch whose
        // `outbox_last` passes it: what waits is the difference, read in two look-ups (an
        // entry dropped unsigned at the outbox's end counts until a batch passes it).
        let enqueued: u64 = self.store.get(&keys::meta(OUTBOX_COUNTER))?.unwrap_or(0);
        let outbox_entries = enqueued.saturating_sub(self.own.outbox_last);
        let mut quota = OwnQuota {
            entries_per_day: self.config.quota_entries_per_day,
            bytes_per_day: self.config.quota_bytes_per_day,
            signed_today_entries: signed.entries,
            signed_today_bytes: signed.bytes,
            outbox_entries,
            left_today: 0,
        };
        quota.left_today =
            quota.daily_cap().saturating_sub(signed.entries).saturating_sub(outbox_entries);
        Ok(quota)
    }

    /// Shares the next slice of spread records while today's quota has room; true when it
    /// released some.
    ///
    /// First in first out (`Q` is keyed by import id, then record id), at most [`SLICE_ROWS`]
    /// records of one import a step, stopping at the first that does not fit: each becomes
    /// shared, its adds enqueued by the rule a new record's follow (once, and again for a
    /// longer expiry), in one durable write with one audit line (`share` by the node,
    /// `import:<id>_released_<n>`).
    pub fn release_pending_step(&mut self) -> Result<bool> {
        let waiting = self.store.scan_first::<()>(&keys::all_pending_shares(), SLICE_ROWS)?;
        if waiting.is_empty() {
            return Ok(false);
        }
        let mut left = self.own_quota()?.left_today;
        let store = self.store.clone();
        let mut txn = store.txn();
        let mut released: Option<(u64, u64)> = None;
        for (key, ()) in waiting {
            let Some((import, id)) = keys::parse_pending_share(&key) else {
                txn.remove(key);
                continue;
            };
            if released.is_some_and(|(of, _)| of != import) {
                break;
            }
            self.move_record_tokens(&mut txn, id)?;
            let Some(mut record) =
                txn.get::<Record>(&keys::record(id))?.filter(|r| r.pending_share)
            else {
                txn.remove(key);
                continue;
            };
            let entries = record.identifiers.len() as u64;
            if entries > left {
                break;
            }
            left -= entries;
            (record.pending_share, record.shared) = (false, true);
            txn.put(keys::record(id), &record);
            for identifier in &record.identifiers {
                let canonical: Canonical = identifier.canonical.parse().map_err(|_| {
                    store::Error::Corrupt { prefix: char::from(keys::prefix::RECORD) }
                })?;
                self.enqueue_add_once(&mut txn, &record, identifier.token, canonical.kind())?;
            }
            txn.remove(key);
            let count = released.map_or(0, |(_, count)| count);
            released = Some((import, count + 1));
        }
        if let Some((import, count)) = released {
            self.audit_by_node_before_write(
                Action::Share,
                &format!("import:{import}_released_{count}"),
            )?;
        }
        if !txn.is_empty() {
            txn.commit_durable()?;
        }
        Ok(released.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_checked_against_todays_room_then_full_days() {
        let quota = OwnQuota {
            entries_per_day: 1_000,
            bytes_per_day: 1 << 30,
            left_today: 300,
            ..OwnQuota::default()
        };
        assert_eq!(quota.daily_cap(), 900);
        let check = quota.check(300);
        assert_eq!((check.fits_today, check.days, check.entries), (true, 1, 300));
        assert_eq!((quota.check(301).fits_today, quota.check(301).days), (false, 2));
        assert_eq!(quota.check(1_200).days, 2);
        assert_eq!(quota.check(1_201).days, 3);
        assert_eq!(quota.check(2_500).days, 4);
        // Bytes bound the cap too: 32,000 bytes are 100 entries, 90 of them the own feed's.
        let by_bytes = OwnQuota { bytes_per_day: 32_000, left_today: 0, ..quota };
        assert_eq!((by_bytes.daily_cap(), by_bytes.check(91).days), (90, 3));
        let none = OwnQuota { entries_per_day: 0, ..quota };
        assert_eq!(OwnQuota { left_today: 0, ..none }.check(1).days, u32::MAX);
    }
}
