//! Roster conflicts (docs/PROTOCOL.md §4.4): a roster of the adopted version with another
//! hash, posted or fetched, is checked with `verify_conflict` against the held version before
//! it (kept from the stored chain at start, so no check walks the chain again); a proof (this
//! check's, a pair a peer served, `conflict/evidence.rs`, or a given roster file of the stored
//! version at start, `stored.rs`) of a later version than the one held is kept as the
//! `conflict` alarm, stored durably under `V` as evidence, announced to peers and loaded
//! (verified again against the stored chain) at start. A conflict of the version after the
//! adopted one blocks every roster of that version: the node adopts neither. One that is no
//! valid successor proves nothing: it is remembered by hash (bounded) so a peer announcing it
//! is not asked for it again, and the caller penalises a peer that served it (an honest peer
//! cannot hold one).

use std::sync::PoisonError;
use std::sync::atomic::AtomicU64;

use crossmatch_protocol::{RosterConflict, SignedRoster, decode_roster_conflict, verify_conflict};

mod evidence;

use super::stored::load_stored;
use super::{Held, SignedRosters};
use crate::daemon::Node;
use crate::store::Store;

/// Most rosters remembered as judged no conflict.
const MAX_JUDGED: usize = 256;

/// What [`Node::check_conflict`] found of another roster of the adopted version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConflictCheck {
    /// A valid successor of the version before, as the adopted one: the federation forked.
    Proved,
    /// No valid successor of the version before: it proves nothing, and whoever served it
    /// holds what no honest member can.
    NotASuccessor,
    /// Not judged: the node holds no version before the adopted one, or the check failed.
    Unjudged,
}

/// The roster conflict stored (`V`), verified again against the stored chain at the version
/// before it; `None` when there is none or it no longer verifies (logged).
pub(super) fn load_conflict(store: &Store, verified: &AtomicU64) -> Option<RosterConflict> {
    let wire = match store.roster_conflict() {
        Ok(wire) => wire?,
        Err(error) => {
            tracing::error!(%error, "the stored roster conflict could not be read");
            return None;
        }
    };
    let checked = decode_roster_conflict(&wire).map_err(|e| e.to_string()).and_then(|(a, b)| {
        let version = a.body.version;
        match load_stored(store, version.saturating_sub(1), verified).map_err(|e| e.to_string())? {
            (Some(before), _, _) if before.body().version.saturating_add(1) == version => {
                verify_conflict(&before, &a, &b).map_err(|e| e.to_string())
            }
            _ => Err("the stored chain holds no version before it".to_owned()),
        }
    });
    match checked {
        Ok(conflict) => {
            tracing::error!(
                version = conflict.version(),
                "roster conflict (stored): two valid rosters of one version; the federation forked"
            );
            Some(conflict)
        }
        Err(error) => {
            tracing::error!(%error, "the stored roster conflict no longer verifies; not raised");
            None
        }
    }
}

impl SignedRosters {
    /// The version of the roster conflict held, if any.
    pub(super) fn conflict_version(&self) -> Option<u64> {
        let conflict = self.conflict.read().unwrap_or_else(PoisonError::into_inner);
        conflict.as_ref().map(RosterConflict::version)
    }

    /// Whether a proved conflict forbids adopting any roster of `version`: one is held of that
    /// very version, which this node has not adopted (a node that adopted one side keeps it).
    pub(super) fn blocks(&self, version: u64) -> bool {
        self.conflict_version() == Some(version)
    }

    /// Whether a conflict of `version` would be new: none of it or of a later version is held.
    pub(super) fn conflict_unheld(&self, version: u64) -> bool {
        self.conflict_version().is_none_or(|held| held < version)
    }

    /// Whether the roster of hash `hash` was judged no conflict already.
    pub(super) fn judged_not_conflicting(&self, hash: &[u8; 32]) -> bool {
        self.judged_not_conflicting.lock().unwrap_or_else(PoisonError::into_inner).contains(hash)
    }
}

impl Node {
    /// Checks whether `other`, of the adopted roster's version with another hash, and the
    /// adopted roster are two valid successors of the held version before: proof
    /// that the federation forked. A proof newer than the one held is kept and raised as the
    /// `conflict` alarm, with an error log; neither roster is adopted on top of the one held, and nothing is
    /// rolled back. One that proves nothing is remembered (by hash), so it is not checked again.
    pub(super) async fn check_conflict(&self, held: &Held, other: &SignedRoster) -> ConflictCheck {
        let adopted = &held.current;
        let Some(before) = adopted.body().version.checked_sub(1).filter(|v| *v >= 1) else {
            return ConflictCheck::Unjudged;
        };
        let Some(previous) = held.previous.clone() else {
            return ConflictCheck::Unjudged;
        };
        if previous.body().version != before || other.body.version != adopted.body().version {
            return ConflictCheck::Unjudged;
        }
        let other_hash = other.hash();
        let (signed, other) = (adopted.signed().clone(), other.clone());
        let checked =
            tokio::task::spawn_blocking(move || verify_conflict(&previous, &signed, &other)).await;
        match checked {
            Ok(Ok(conflict)) => {
                self.keep_conflict(conflict).await;
                ConflictCheck::Proved
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "another roster of the adopted version, not a conflict");
                let mut judged = self
                    .rosters
                    .judged_not_conflicting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if judged.len() >= MAX_JUDGED {
                    judged.clear();
                }
                judged.insert(other_hash);
                ConflictCheck::NotASuccessor
            }
            Err(_) => ConflictCheck::Unjudged,
        }
    }

    /// Keeps `conflict`, proved, as the node's, one at a time: when none is held or it is of a
    /// later version than the one held (so a conflict of the version after the adopted one is
    /// kept, and blocks, even when an older one was held: the newest is the relevant one). It is
    /// stored durably under `V` as evidence (so the alarm survives a restart) before it is
    /// held: raised as the `conflict` alarm with an error log, and served to peers; then it is
    /// announced to them. One that could not be stored is not held (error log). Returns
    /// whether it was kept: newer than the one held, and stored.
    pub(super) async fn keep_conflict(&self, conflict: RosterConflict) -> bool {
        let _one_at_a_time = self.rosters.keeping_conflict.lock().await;
        if self.rosters.conflict_version().is_some_and(|held| held >= conflict.version()) {
            return false;
        }
        let store = self.rosters.store.clone();
        let wire = conflict.to_wire();
        let stored = tokio::task::spawn_blocking(move || {
            let mut txn = store.txn();
            txn.put_roster_conflict(wire);
            txn.commit_durable()
        })
        .await;
        if !matches!(stored, Ok(Ok(()))) {
            // Not held, raised or served: what is served is stored durably first. The caller
            // still adopts neither side now, and the pair is proved again when seen again.
            tracing::error!(
                version = conflict.version(),
                "roster conflict proved but it could not be stored; not held, proved again when seen again"
            );
            return false;
        }
        tracing::error!(
            version = conflict.version(),
            "roster conflict: two valid rosters of one version; the federation forked, neither is adopted over the held one"
        );
        *self.rosters.conflict.write().unwrap_or_else(PoisonError::into_inner) =
            Some(conflict.clone());
        self.announce_conflict(&conflict).await;
        true
    }

    /// The roster conflict held (the newest proved), if any: its version and the two rosters'
    /// wire forms.
    pub fn roster_conflict(&self) -> Option<(u64, Vec<u8>)> {
        let conflict = self.rosters.conflict.read().unwrap_or_else(PoisonError::into_inner);
        conflict.as_ref().map(|conflict| (conflict.version(), conflict.to_wire()))
    }
}
