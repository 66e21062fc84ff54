//! Members' signed records in the running node (docs/PROTOCOL.md §4.5): a record is kept only
//! if every address is one the mesh can dial, so no record's address stops the node or its
//! member set; new records are stored durably under `W`, then applied live.

use std::sync::PoisonError;

use crossmatch_protocol::SignedMemberRecord;

use super::{Held, RosterError, membership_of, node_error};
use crate::daemon::{Error, Node};

/// Whether every address of `record` is one the mesh can dial (checked before a record is
/// kept or stored, so no record's address ever makes the member set refused).
pub(super) fn usable(record: &SignedMemberRecord) -> Result<(), RosterError> {
    match record.record.addresses.iter().position(|a| crate::mesh::validate_address(a).is_err()) {
        Some(index) => Err(RosterError::BadAddress { index }),
        None => Ok(()),
    }
}

/// `addresses` without those the mesh cannot dial, each dropped with a warning.
pub(super) fn dialable(addresses: Vec<String>) -> Vec<String> {
    let count = addresses.len();
    let kept: Vec<String> =
        addresses.into_iter().filter(|a| crate::mesh::validate_address(a).is_ok()).collect();
    if kept.len() < count {
        tracing::warn!(dropped = count - kept.len(), "a member's unusable addresses are dropped");
    }
    kept
}

impl Node {
    /// Stores `records` (verified against `held`'s roster, newer than those held) durably
    /// under `W`, then applies them live; the held roster takes them once applied. Called
    /// under the adopting lock.
    pub(super) async fn store_and_apply_records(
        &self,
        held: &Held,
        records: Vec<SignedMemberRecord>,
    ) -> Result<(), RosterError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut updated = held.clone();
        let wires: Vec<_> =
            records.iter().map(|record| (record.record.member.clone(), record.to_wire())).collect();
        let store = self.rosters.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut txn = store.txn();
            for (member, wire) in wires {
                txn.put_member_record(&member, wire);
            }
            txn.commit_durable()
        })
        .await
        .map_err(|_| node_error(Error::EngineTask))??;
        for record in records {
            updated.records.insert(record.record.member.clone(), record);
        }
        let membership = {
            let known = self.rosters.known_addresses.read().unwrap_or_else(PoisonError::into_inner);
            membership_of(&updated, &known)
        };
        self.apply_membership(membership).await.map_err(node_error)?;
        self.rosters.set_held(updated);
        Ok(())
    }
}
