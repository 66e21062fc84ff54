//! The STIX export's ids in the engine (`S`): a UUIDv4 per exported indicator, sighting and
//! identity, drawn at its first export (never an imported object's id) and stored durably
//! before it is returned, with the object's `created`, its `modified` (moved when the
//! fingerprint of what it was exported from changes: a record's, a sighting's indicator, times
//! and marking, an identity's contact), that fingerprint and the marking it went out under;
//! the reconciliation that turns the ids of gone records, and of sightings the alerts no
//! longer give, into tombstones, exported as `revoked`; and the tombstones since a time.
//!
//! `S` rows are not removed with their record or alert: the export reconciles them, so that a
//! later export `--since` can say `revoked` for what went. Tombstones hold no raw data (a UUID,
//! times, a kind and a marking) and are purged once older than the retention.

use std::collections::HashSet;

use crossmatch_protocol::Handling;

use crate::stix;
use crate::store::imports::{
    self, StixIds, StixKind, StixTombstone, identity_fingerprint, sighting_fingerprint,
};
use crate::store::{Alert, Record, Txn, keys};

use super::{Engine, Result, SLICE_ROWS};

/// One sighting an export names: a counterpart member that holds the token of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StixSighting {
    /// The alert.
    pub alert: u64,
    /// The counterpart member's id.
    pub member: String,
    /// The UUID of the indicator it is of (the alert's lowest record's).
    pub indicator: [u8; 16],
    /// When this node first received that member's add (Unix ms).
    pub first_seen_ms: u64,
    /// When it last received one (Unix ms).
    pub last_seen_ms: u64,
    /// Its marking: the stricter of the record's and the member's add's codes.
    pub handling: Handling,
}

impl StixSighting {
    /// The fingerprint its stored ids are compared with.
    pub fn fingerprint(&self) -> [u8; 32] {
        sighting_fingerprint(&self.indicator, self.first_seen_ms, self.last_seen_ms, self.handling)
    }
}

impl Engine {
    /// The ids of each record's indicator, in order, assigned and stored durably if new.
    ///
    /// A new indicator is `created` and `modified` when its record was created; a record whose
    /// fingerprint changed since its ids were stored is `modified` now.
    pub fn stix_record_ids(&mut self, records: &[Record]) -> Result<Vec<StixIds>> {
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let key = keys::stix_indicator(record.id);
            let fingerprint = imports::fingerprint(record);
            let created_ms = record.created_at_ms;
            let new = (created_ms, created_ms);
            let ids = stored_ids(&mut txn, key, now, new, fingerprint, |ids| StixIds {
                handling: record.handling,
                ..ids
            })?;
            out.push(ids);
        }
        commit_if_changed(txn)?;
        Ok(out)
    }

    /// The ids of each sighting, in order, assigned and stored durably if new.
    ///
    /// A new sighting is `created` when first seen and `modified` now, when it is first
    /// exported (so an export since any earlier time holds it, however long ago its member's
    /// add came); one whose indicator, first or last seen or marking changed since is
    /// `modified` now. Its ids name its indicator and marking, so that its tombstone can still
    /// name them once the alert went.
    pub fn stix_sighting_ids(&mut self, sightings: &[StixSighting]) -> Result<Vec<StixIds>> {
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let mut out = Vec::with_capacity(sightings.len());
        for sighting in sightings {
            let key = keys::stix_sighting(sighting.alert, &sighting.member);
            let new = (sighting.first_seen_ms, now.max(sighting.first_seen_ms));
            let fingerprint = sighting.fingerprint();
            let ids = stored_ids(&mut txn, key, now, new, fingerprint, |ids| StixIds {
                sighting_of: Some(sighting.indicator),
                handling: sighting.handling,
                ..ids
            })?;
            out.push(ids);
        }
        commit_if_changed(txn)?;
        Ok(out)
    }

    /// The ids of each member's identity (member id, roster contact), in order: `created`
    /// at its first export, `modified` when its contact changes.
    pub fn stix_identity_ids(&mut self, members: &[(String, String)]) -> Result<Vec<StixIds>> {
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let mut out = Vec::with_capacity(members.len());
        for (member, contact) in members {
            let key = keys::stix_identity(member);
            let fingerprint = identity_fingerprint(member, contact);
            out.push(stored_ids(&mut txn, key, now, (now, now), fingerprint, |ids| ids)?);
        }
        commit_if_changed(txn)?;
        Ok(out)
    }

    /// One bounded step of reconciliation from the key `after` (none: the first); returns
    /// where the next step starts, none when done.
    ///
    /// Looks at up to [`SLICE_ROWS`] indicator and sighting rows: one whose record went, or a
    /// sighting that is no longer exported, becomes a tombstone gone now, with the marking it
    /// was last exported under (a sighting's names its indicator), in one durable write. A
    /// sighting is still exported when its (alert, member) is in `live`, the export's own
    /// reading of its alerts at `live`'s time (Unix ms), or when its ids were stored at or
    /// after that time (another export, reading newer alerts, gave it out meanwhile);
    /// without `live`, while its alert is held. The first step also purges tombstones older
    /// than the retention.
    pub fn stix_reconcile_step(
        &mut self,
        after: Option<Vec<u8>>,
        live: Option<(&HashSet<(u64, String)>, u64)>,
    ) -> Result<Option<Vec<u8>>> {
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        if after.is_none() {
            let (from, to) =
                keys::stix_tombstones_before(now.saturating_sub(self.config.max_retention_ms));
            for key in self.store.range_keys(&from, &to, usize::MAX)? {
                txn.remove(key);
            }
        }
        let from = match after {
            // Just past `after`.
            Some(mut key) => {
                key.push(0);
                key
            }
            None => keys::all_stix_indicators(),
        };
        let to = keys::all_stix_identities();
        let slice = self.store.range_keys(&from, &to, SLICE_ROWS)?;
        let mut alerts: Option<HashSet<u64>> = None;
        for key in &slice {
            let Some(ids) = txn.get::<StixIds>(key)? else { continue };
            let kind = if let Some(record) = keys::parse_stix_indicator(key) {
                if self.store.get_raw(&keys::record(record))?.is_some() {
                    continue;
                }
                StixKind::Indicator
            } else if let Some((alert, member)) = keys::parse_stix_sighting(key) {
                let exported = match live {
                    Some((live, read_at_ms)) => {
                        ids.modified_ms >= read_at_ms || live.contains(&(alert, member.to_owned()))
                    }
                    None => {
                        if alerts.is_none() {
                            alerts = Some(self.alert_ids(&txn)?);
                        }
                        alerts.as_ref().is_some_and(|alerts| alerts.contains(&alert))
                    }
                };
                if exported {
                    continue;
                }
                StixKind::Sighting
            } else {
                continue;
            };
            let tombstone = StixTombstone {
                kind,
                created_ms: ids.created_ms,
                modified_ms: now.max(ids.modified_ms.saturating_add(1)),
                sighting_of: ids.sighting_of,
                handling: ids.handling,
            };
            txn.remove(key.clone());
            txn.put(keys::stix_tombstone(now, &ids.uuid), &tombstone);
        }
        commit_if_changed(txn)?;
        Ok(if slice.len() == SLICE_ROWS { slice.last().cloned() } else { None })
    }

    /// Tombstones gone at or after `since_ms`: (uuid, gone ms, tombstone).
    pub fn stix_tombstones(&self, since_ms: u64) -> Result<Vec<([u8; 16], u64, StixTombstone)>> {
        let (from, to) = keys::stix_tombstones_since(since_ms);
        let mut out = Vec::new();
        for key in self.store.range_keys(&from, &to, usize::MAX)? {
            let Some((gone_ms, uuid)) = keys::parse_stix_tombstone(&key) else { continue };
            if let Some(tombstone) = self.store.get::<StixTombstone>(&key)? {
                out.push((uuid, gone_ms, tombstone));
            }
        }
        Ok(out)
    }

    /// The id of every alert held (alerts are keyed by token: this reads them all).
    fn alert_ids(&self, txn: &Txn<'_>) -> Result<HashSet<u64>> {
        Ok(txn.scan::<Alert>(&keys::all_alerts())?.into_iter().map(|(_, a)| a.id).collect())
    }
}

/// The ids stored at `key`, assigned and staged if new (a fresh UUIDv4, `created` and
/// `modified` at `new`'s two times) or if `fingerprint` changed (`modified` now, after the
/// last); `fill` sets what else the ids name (it is staged with a change only).
fn stored_ids(
    txn: &mut Txn<'_>,
    key: Vec<u8>,
    now: u64,
    (created_ms, modified_ms): (u64, u64),
    fingerprint: [u8; 32],
    fill: impl FnOnce(StixIds) -> StixIds,
) -> Result<StixIds> {
    let ids = match txn.get::<StixIds>(&key)? {
        Some(ids) if ids.fingerprint == fingerprint => return Ok(ids),
        Some(ids) => {
            let modified_ms = now.max(ids.modified_ms.saturating_add(1));
            fill(StixIds { modified_ms, fingerprint, ..ids })
        }
        None => fill(StixIds {
            uuid: stix::new_uuid(),
            created_ms,
            modified_ms,
            fingerprint,
            sighting_of: None,
            handling: Handling::H3,
        }),
    };
    txn.put(key, &ids);
    Ok(ids)
}

/// Commits `txn` durably if it changes anything: ids are durable before they are returned.
fn commit_if_changed(txn: Txn<'_>) -> Result<()> {
    if !txn.is_empty() {
        txn.commit_durable()?;
    }
    Ok(())
}

// The export's tokens extension names the federation.
impl Engine {
    /// The federation's id.
    pub fn federation_id(&self) -> crossmatch_protocol::FederationId {
        self.config.federation_id
    }
}
