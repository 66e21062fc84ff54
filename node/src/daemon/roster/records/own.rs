//! This node's own member record (docs/PROTOCOL.md §4.5, §3.7): when the details its config
//! announces (`announce_addresses`, `contact`) differ from those of the newest record held for
//! its member, the node signs a new one with its node key, seq one above the held one, stores it
//! durably before anything is sent (at start, with the start's other writes; at run time,
//! before it is applied), and gossips it on the records topic (at the next timer tick, until a
//! peer took it; peers that connect later fetch it at their pull). So an address change needs
//! no governance signatures and no admin step, and a seq never goes backwards: after a crash
//! the store holds the seq signed, and a peer holding a newer one (a wiped store) makes this
//! node sign above it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crossmatch_protocol::{MemberRecord, PublicKey, SignedMemberRecord, VerifiedRoster};

use crate::daemon::Node;
use crate::engine::Engine;
use crate::mesh::GossipKind;

/// This node's key, the details it announces, and whether its own record awaits gossip.
#[derive(Debug)]
pub(in crate::daemon) struct OwnRecordState {
    key: PublicKey,
    announce: Option<(Vec<String>, String)>,
    unspread: AtomicBool,
}

impl OwnRecordState {
    /// The state of a node of `key` announcing `announce` (addresses, contact), if anything.
    pub(in crate::daemon) fn new(key: PublicKey, announce: Option<(Vec<String>, String)>) -> Self {
        Self { key, announce, unspread: AtomicBool::new(false) }
    }

    /// This node's member id in `roster`.
    pub(in crate::daemon) fn member_of(&self, roster: &VerifiedRoster) -> Option<String> {
        roster
            .body()
            .members
            .iter()
            .find(|member| member.node_key == self.key)
            .map(|m| m.id.clone())
    }

    /// The record to sign now: the announced details with the next seq, when they differ from
    /// those of the newest record `records` hold for this node's member (or it has none).
    pub(super) fn due(
        &self,
        roster: &VerifiedRoster,
        records: &BTreeMap<String, SignedMemberRecord>,
    ) -> Option<MemberRecord> {
        let (addresses, contact) = self.announce.clone()?;
        let member = self.member_of(roster)?;
        let held = records.get(&member).map(|held| &held.record);
        if held.is_some_and(|held| held.addresses == addresses && held.contact == contact) {
            return None;
        }
        let seq = held.map_or(1, |held| held.seq.saturating_add(1));
        let federation_id = roster.body().federation_id;
        Some(MemberRecord { federation_id, member, seq, addresses, contact })
    }

    /// At start: this node's new record, signed, when one is due (the caller stores it with
    /// the start's other writes); it is then gossiped at the first timer tick with a peer.
    pub(in crate::daemon) fn sign_if_due(
        &self,
        engine: &Engine,
        roster: &VerifiedRoster,
        records: &BTreeMap<String, SignedMemberRecord>,
    ) -> Option<SignedMemberRecord> {
        let record = self.due(roster, records)?;
        let seq = record.seq;
        match engine.sign_own_record(record) {
            Ok(signed) => {
                tracing::info!(seq, "own member record signed: the announced details changed");
                self.unspread.store(true, Ordering::Relaxed);
                Some(signed)
            }
            Err(error) => {
                tracing::warn!(%error, "own member record not signed");
                None
            }
        }
    }
}

impl Node {
    /// Signs, stores and applies a new own record when one is due (at run time: a peer held a
    /// newer record of this node's than its store), then gossips it.
    pub(in crate::daemon) async fn renew_own_record(&self) {
        let signed = {
            let _one_at_a_time = self.rosters.adopting.lock().await;
            let Some(held) = self.rosters.held() else { return };
            let Some(record) = self.rosters.own.due(&held.current, &held.records) else { return };
            let seq = record.seq;
            let signed = match self.blocking(move |engine| engine.sign_own_record(record)).await {
                Ok(Ok(signed)) => signed,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "own member record not signed");
                    return;
                }
                Err(_) => return,
            };
            if let Err(error) = self.store_and_apply_records(&held, vec![signed.clone()]).await {
                tracing::warn!(%error, "own member record not stored");
                return;
            }
            tracing::info!(seq, "own member record signed anew above a peer's");
            signed
        };
        self.rosters.own.unspread.store(true, Ordering::Relaxed);
        self.publish_own_record(&signed).await;
    }

    /// Gossips this node's own record if it was signed and no peer took it yet (from the
    /// timer's tick): a failure (no peer yet) is retried at the next tick.
    pub(in crate::daemon) async fn spread_own_record(&self) {
        if !self.rosters.own.unspread.load(Ordering::Relaxed) {
            return;
        }
        let Some(held) = self.rosters.held() else { return };
        let Some(member) = self.rosters.own.member_of(&held.current) else { return };
        if let Some(record) = held.records.get(&member) {
            self.publish_own_record(record).await;
        }
    }

    async fn publish_own_record(&self, record: &SignedMemberRecord) {
        match self.mesh.publish_on(GossipKind::Record, record.to_wire()).await {
            Ok(()) => {
                self.rosters.own.unspread.store(false, Ordering::Relaxed);
                tracing::info!(seq = record.record.seq, "own member record gossiped");
            }
            Err(error) => {
                tracing::debug!(%error, "own member record not gossiped yet; retried at the next tick")
            }
        }
    }
}
