//! What `GET /v1/roster` shows of the adopted roster (its members and their records, the
//! conflict held) and the roster's alarms by fixed name, with the expiry log the timer drives.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use crossmatch_protocol::PublicKey;

use crate::daemon::Node;

/// One member as [`RosterView`] shows it.
#[derive(Debug, Clone)]
pub struct RosterMemberView {
    /// Member id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its node key.
    pub node_key: PublicKey,
    /// Its governance key.
    pub governance_key: PublicKey,
    /// Its earlier node keys, still matchable.
    pub retired_node_keys: Vec<PublicKey>,
    /// The seq of its newest verified record, if any.
    pub record_seq: Option<u64>,
    /// The addresses of that record (none without one).
    pub record_addresses: Vec<String>,
    /// The contact of that record, if any.
    pub record_contact: Option<String>,
}

/// The adopted roster, for `GET /v1/roster`.
#[derive(Debug, Clone)]
pub struct RosterView {
    /// The version.
    pub version: u64,
    /// The roster hash.
    pub hash: [u8; 32],
    /// The epoch.
    pub epoch: u32,
    /// Governance signatures a successor needs.
    pub threshold: u32,
    /// When the roster expires (Unix ms).
    pub expires_at_ms: u64,
    /// The members.
    pub members: Vec<RosterMemberView>,
    /// Fixed names of the roster's alarms (`expired`).
    pub alarms: Vec<&'static str>,
    /// The roster conflict proved, if any: its version and the two rosters' hashes.
    pub conflict: Option<(u64, [[u8; 32]; 2])>,
}

impl Node {
    /// The adopted roster, if the node runs a signed roster.
    pub fn roster_view(&self) -> Option<RosterView> {
        let held = self.rosters.held()?;
        let body = held.current.body();
        Some(RosterView {
            version: body.version,
            hash: *held.current.hash(),
            epoch: body.epoch,
            threshold: body.threshold,
            expires_at_ms: body.expires_at_ms,
            members: body
                .members
                .iter()
                .map(|member| RosterMemberView {
                    id: member.id.clone(),
                    name: member.name.clone(),
                    node_key: member.node_key,
                    governance_key: member.governance_key,
                    retired_node_keys: member.retired_node_keys.clone(),
                    record_seq: held.records.get(&member.id).map(|r| r.record.seq),
                    record_addresses: held
                        .records
                        .get(&member.id)
                        .map(|r| r.record.addresses.clone())
                        .unwrap_or_default(),
                    record_contact: held.records.get(&member.id).map(|r| r.record.contact.clone()),
                })
                .collect(),
            alarms: self.roster_alarms(),
            conflict: self
                .rosters
                .conflict
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|conflict| (conflict.version(), *conflict.hashes())),
        })
    }

    /// The roster's alarms now, by fixed name: `expired` once the adopted roster is past its
    /// `expires_at` (the node keeps running; `/readyz` says degraded), `conflict`,
    /// `removal_without_rotation` (a member removed while the epoch was kept), and the
    /// rotation's alarm when the roster's rotation waits (`daemon/secrets/rotation.rs`).
    pub fn roster_alarms(&self) -> Vec<&'static str> {
        let Some(held) = self.rosters.held() else {
            return Vec::new();
        };
        let mut alarms = Vec::new();
        if held.current.expired(self.now_ms()) {
            alarms.push("expired");
        }
        if self.rosters.conflict.read().unwrap_or_else(PoisonError::into_inner).is_some() {
            alarms.push("conflict");
        }
        if held.unrotated_removal.is_some() {
            alarms.push("removal_without_rotation");
        }
        alarms.extend(self.rotation_alarm());
        alarms
    }

    /// Logs, once per adopted roster, that it has expired (from the timer's tick): the node
    /// keeps running on it; a successor is needed.
    pub(in crate::daemon) fn watch_roster_expiry(&self) {
        let expired = self.roster_alarms().contains(&"expired");
        if expired && !self.rosters.expiry_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                version = self.rosters.version(),
                "the adopted roster has expired: the node keeps running on it, /readyz says degraded; adopt its successor"
            );
        }
    }
}
