//! The STIX export's ids in the engine (`S`): a UUIDv4 per exported indicator, sighting and
//! identity, assigned at first export and stored durably before it is returned, with the
//! object's `created`, its `modified` (moved when the fingerprint of what it was exported from
//! changes) and that fingerprint; the reconciliation that turns the ids of gone records and
//! alerts into tombstones, exported as `revoked`; and the tombstones since a time.
//!
//! `S` rows are not removed with their record or alert: the export reconciles them, so that a
//! later export `--since` can say `revoked` for what went. Tombstones hold no raw data (a UUID,
//! times and a kind) and are purged once older than the retention.

use std::collections::{HashMap, HashSet};

use crate::stix;
use crate::store::imports::{self, StixIds, StixKind, StixTombstone};
use crate::store::{Alert, Record, Txn, keys};

use super::{Engine, Result, SLICE_ROWS};

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
            let ids = match txn.get::<StixIds>(&key)? {
                Some(ids) if ids.fingerprint == fingerprint => ids,
                Some(ids) => {
                    let modified_ms = now.max(ids.modified_ms.saturating_add(1));
                    let ids = StixIds { modified_ms, fingerprint, ..ids };
                    txn.put(key, &ids);
                    ids
                }
                None => {
                    let created_ms = record.created_at_ms;
                    let uuid = stix::new_uuid();
                    let ids = StixIds { uuid, created_ms, modified_ms: created_ms, fingerprint };
                    txn.put(key, &ids);
                    ids
                }
            };
            out.push(ids);
        }
        commit_if_changed(txn)?;
        Ok(out)
    }

    /// The ids of each (alert id, counterpart member id, first seen ms) sighting, in order.
    ///
    /// A new sighting is `created` and `modified` when first seen. Its stored fingerprint holds
    /// the UUID of the indicator it is of (its alert's lowest record's, exported before it) in
    /// its first 16 bytes, so that its tombstone can still name that indicator once the alert
    /// went.
    pub fn stix_sighting_ids(&mut self, s: &[(u64, String, u64)]) -> Result<Vec<StixIds>> {
        let mut txn = self.store.txn();
        let mut out = Vec::with_capacity(s.len());
        let mut alerts: Option<HashMap<u64, Alert>> = None;
        for (alert, member, first_ms) in s {
            let key = keys::stix_sighting(*alert, member);
            let ids = match txn.get::<StixIds>(&key)? {
                Some(ids) => ids,
                None => {
                    let alerts = match &mut alerts {
                        Some(alerts) => alerts,
                        None => alerts.insert(self.alerts_by_id(&txn)?),
                    };
                    let lowest = alerts.get(alert).and_then(|a| a.records.iter().min().copied());
                    let mut fingerprint = [0; 32];
                    if let Some(record) = lowest
                        && let Some(indicator) =
                            txn.get::<StixIds>(&keys::stix_indicator(record))?
                    {
                        fingerprint[..16].copy_from_slice(&indicator.uuid);
                    }
                    let uuid = stix::new_uuid();
                    let (created_ms, modified_ms) = (*first_ms, *first_ms);
                    let ids = StixIds { uuid, created_ms, modified_ms, fingerprint };
                    txn.put(key, &ids);
                    ids
                }
            };
            out.push(ids);
        }
        commit_if_changed(txn)?;
        Ok(out)
    }

    /// The identity UUID of each member, in order.
    pub fn stix_identity_ids(&mut self, members: &[String]) -> Result<Vec<[u8; 16]>> {
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let mut out = Vec::with_capacity(members.len());
        for member in members {
            let key = keys::stix_identity(member);
            let ids = match txn.get::<StixIds>(&key)? {
                Some(ids) => ids,
                None => {
                    let uuid = stix::new_uuid();
                    let ids =
                        StixIds { uuid, created_ms: now, modified_ms: now, fingerprint: [0; 32] };
                    txn.put(key, &ids);
                    ids
                }
            };
            out.push(ids.uuid);
        }
        commit_if_changed(txn)?;
        Ok(out)
    }

    /// One bounded step of reconciliation from the key `after` (none: the first); returns
    /// where the next step starts, none when done.
    ///
    /// Looks at up to [`SLICE_ROWS`] indicator and sighting rows: one whose record or alert
    /// went becomes a tombstone gone now (a sighting's names its indicator), in one durable
    /// write. The first step also purges tombstones older than the retention.
    pub fn stix_reconcile_step(&mut self, after: Option<Vec<u8>>) -> Result<Option<Vec<u8>>> {
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
            let tombstone = if let Some(record) = keys::parse_stix_indicator(key) {
                if self.store.get_raw(&keys::record(record))?.is_some() {
                    continue;
                }
                StixTombstone {
                    kind: StixKind::Indicator,
                    created_ms: ids.created_ms,
                    sighting_of: None,
                }
            } else if let Some((alert, _)) = keys::parse_stix_sighting(key) {
                if alerts.is_none() {
                    alerts = Some(self.alerts_by_id(&txn)?.into_keys().collect());
                }
                if alerts.as_ref().is_some_and(|alerts| alerts.contains(&alert)) {
                    continue;
                }
                let mut indicator = [0; 16];
                indicator.copy_from_slice(&ids.fingerprint[..16]);
                let sighting_of = Some(indicator).filter(|uuid| *uuid != [0; 16]);
                StixTombstone { kind: StixKind::Sighting, created_ms: ids.created_ms, sighting_of }
            } else {
                continue;
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

    /// Every alert held, by id (alerts are keyed by token: this reads them all).
    fn alerts_by_id(&self, txn: &Txn<'_>) -> Result<HashMap<u64, Alert>> {
        Ok(txn.scan::<Alert>(&keys::all_alerts())?.into_iter().map(|(_, a)| (a.id, a)).collect())
    }
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
