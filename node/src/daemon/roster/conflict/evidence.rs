//! Roster conflict evidence between peers (docs/PROTOCOL.md §3.6): a node that proved a
//! conflict announces it on the roster topic and serves it (`roster_conflict`); a node that
//! holds none of the version after its own asks a peer for it once per roster head the peer
//! runs (again when the head changes, when the peer announces a conflict or connects again),
//! verifies a received pair with `verify_conflict` against the version before it that this
//! node holds before anything of it is stored, raised or served onward, and penalises a peer
//! whose pair does not verify (no honest peer holds one). A pair this node cannot judge (it
//! holds no version before it) is no fault of the peer. A peer that does not answer the request (refused, timed out,
//! another kind of answer) is asked again at the next pull, and nothing newer is fetched from
//! it in this pull: the check fails closed, with no penalty.
//!
//! Before a fetched roster of the version after this node's is adopted, another peer's noted
//! roster head of that version (or later) with another hash is fetched and the two are checked
//! as a conflict, so a node that sees both before adopting either adopts neither.

use std::collections::HashSet;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crossmatch_protocol::{
    MAX_ROSTER_CONFLICTS_PER_RESPONSE, RosterConflict, SignedRoster, VerifiedRoster,
    decode_roster_conflict, decode_roster_conflict_announcement,
    encode_roster_conflict_announcement, verify_conflict,
};

use super::super::stored::load_stored;
use crate::daemon::Node;
use crate::daemon::membership::{MAX_MEMBERSHIP, RosterIdentity};
use crate::daemon::sync::{PullBudget, ask, penalise};
use crate::mesh::{GossipKind, PeerKey, SyncRequest, SyncResponse};

/// How long one side request of the exchange (evidence, another peer's roster) may take: past
/// the request timeout, so a peer that never answers is judged by the mesh's timeout.
const SIDE_REQUEST_DEADLINE: Duration = Duration::from_secs(35);

/// Most other peers' roster heads fetched before a successor is adopted.
const MAX_CONTESTED_HEADS: usize = 4;

/// Most peers remembered as asked for evidence.
const MAX_ASKED_PEERS: usize = 2 * MAX_MEMBERSHIP;

/// What a received pair proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::daemon) enum Judged {
    /// Two valid successors of the version before, held here: kept (if newer than the one
    /// held).
    Proved,
    /// Not two valid successors of a version this node holds: no honest peer holds one.
    False,
    /// Not judged: it does not decode (newer software), or this node holds no version before.
    Unjudged,
}

impl Node {
    /// The answer to `roster_conflict`: the conflict this node proved, or none.
    pub(in crate::daemon) fn answer_roster_conflict(&self) -> SyncResponse {
        SyncResponse::RosterConflict(
            self.roster_conflict().map(|(_, wire)| wire).into_iter().collect(),
        )
    }

    /// Part of the roster exchange with `peer`, once its roster head `head` is noted: asks it
    /// for its conflict evidence when this node holds none of the version after its own and has
    /// not asked it at this head since it connected, and takes what verifies (a false pair
    /// costs the peer the pull's penalty). Returns whether the exchange goes on: not when a proved conflict contests the
    /// version after this node's, of which nothing is fetched then, and not when the peer did
    /// not answer the request (refused, timed out, another kind of answer): nothing newer is
    /// fetched from a peer whose evidence is unknown, with no penalty (the next pull asks).
    pub(in crate::daemon) async fn exchange_conflict(
        &self,
        peer: PeerKey,
        head: RosterIdentity,
        budget: &mut PullBudget,
    ) -> bool {
        let Some((mine, _)) = self.rosters.identity() else { return true };
        if !self.rosters.blocks(mine.saturating_add(1)) && !self.rosters.asked_at(peer, head) {
            // A request of its own: a refusal ends only it, not the pull.
            let mut side = PullBudget::new(self, Instant::now() + SIDE_REQUEST_DEADLINE);
            match ask(self, peer, SyncRequest::RosterConflict, &mut side).await {
                Some((SyncResponse::RosterConflict(pairs), _)) => {
                    self.rosters.note_asked(peer, head);
                    if pairs.len() > MAX_ROSTER_CONFLICTS_PER_RESPONSE {
                        penalise(self, peer, budget, "more roster conflicts than one").await;
                    } else if let Some(wire) = pairs.first()
                        && self.take_conflict_evidence(wire).await == Judged::False
                    {
                        tracing::warn!(peer = %peer, "a peer served roster conflict evidence that does not verify; not taken");
                        penalise(self, peer, budget, "false roster conflict evidence").await;
                    }
                }
                Some(_) => {
                    tracing::debug!(peer = %peer, "a peer answered roster_conflict with another kind; nothing newer is fetched from it in this pull");
                    return false;
                }
                None => {
                    // Refused (busy), timed out or unreachable: the peer may hold evidence
                    // against the next version, so nothing newer is fetched from it until it
                    // answers (fail closed). No penalty: the next pull asks again.
                    tracing::debug!(peer = %peer, "a peer did not answer roster_conflict; nothing newer is fetched from it in this pull");
                    return false;
                }
            }
        }
        !self.rosters.blocks(mine.saturating_add(1))
    }

    /// Judges a conflict's wire form against the version before it that this node holds (the
    /// adopted roster for a conflict of the next version, the held version before it for one of
    /// the adopted version, the stored chain for an older one), and keeps it if it proves the
    /// fork. Nothing of it is stored, raised or served before it verified.
    pub(in crate::daemon) async fn take_conflict_evidence(&self, wire: &[u8]) -> Judged {
        let (a, b) = match decode_roster_conflict(wire) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "roster conflict evidence that does not decode with this node's software; not taken");
                return Judged::Unjudged;
            }
        };
        let Some(held) = self.rosters.held() else { return Judged::Unjudged };
        let (version, current) = (a.body.version, held.current.body().version);
        let before: Option<VerifiedRoster> = if version == current.saturating_add(1) {
            Some(held.current.clone())
        } else if version == current {
            held.previous.clone()
        } else if version >= 2 && version < current {
            let store = self.rosters.store.clone();
            let before = version - 1;
            let loaded = tokio::task::spawn_blocking(move || {
                let verified = AtomicU64::new(0);
                let loaded = load_stored(&store, before, &verified);
                (loaded, verified.into_inner())
            })
            .await
            .ok();
            let (loaded, verified) = loaded.unzip();
            self.rosters.verifications.fetch_add(verified.unwrap_or(0), Ordering::Relaxed);
            loaded
                .and_then(Result::ok)
                .and_then(|(roster, _, _)| roster)
                .filter(|roster| roster.body().version == before)
        } else {
            None
        };
        let Some(before) = before else {
            tracing::debug!(
                version,
                "roster conflict evidence of a version this node cannot judge"
            );
            return Judged::Unjudged;
        };
        match tokio::task::spawn_blocking(move || verify_conflict(&before, &a, &b)).await {
            Ok(Ok(conflict)) => {
                self.keep_conflict(conflict).await;
                Judged::Proved
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "roster conflict evidence does not verify");
                Judged::False
            }
            Err(_) => Judged::Unjudged,
        }
    }

    /// Before `candidate`, of the version after this node's and fetched from `peer` (whose head
    /// is `peer_head`), is adopted: fetches the roster of that version from other peers whose
    /// noted head is of that version or later and differs (at most
    /// [`MAX_CONTESTED_HEADS`] heads), and checks each with another hash against `candidate` as
    /// a conflict. Returns whether adoption must not go on: a proved conflict contests the
    /// version (held already, or proved now). Only the first roster of a fetched chain is
    /// contested here: a conflict of a later one (two or more versions ahead) is proved by
    /// whichever node sees both once it holds the version before, and then spreads as evidence;
    /// a node that adopted one side of it keeps it and alarms (docs/PROTOCOL.md §4.4).
    pub(in crate::daemon) async fn contest_successor(
        &self,
        peer: PeerKey,
        peer_head: RosterIdentity,
        candidate: &SignedRoster,
    ) -> bool {
        let Some(held) = self.rosters.held() else { return false };
        let next = held.current.body().version.saturating_add(1);
        if candidate.body.version != next {
            return false;
        }
        if self.rosters.blocks(next) {
            return true;
        }
        let candidate_hash = candidate.hash();
        let mut heads_seen = HashSet::from([peer_head, (next, candidate_hash)]);
        let others: Vec<PeerKey> = self
            .roster
            .peer_heads()
            .into_iter()
            .filter(|(other, head)| *other != peer && head.0 >= next && heads_seen.insert(*head))
            .map(|(other, _)| other)
            .take(MAX_CONTESTED_HEADS)
            .collect();
        for other in others {
            let mut side = PullBudget::new(self, Instant::now() + SIDE_REQUEST_DEADLINE);
            let request = SyncRequest::Rosters { from_version: next };
            let Some((SyncResponse::Rosters(wires), _)) =
                ask(self, other, request, &mut side).await
            else {
                continue;
            };
            let Some(theirs) = wires.first().and_then(|wire| SignedRoster::from_wire(wire).ok())
            else {
                continue;
            };
            if theirs.body.version != next || theirs.hash() == candidate_hash {
                continue;
            }
            let (before, ours) = (held.current.clone(), candidate.clone());
            let checked =
                tokio::task::spawn_blocking(move || verify_conflict(&before, &ours, &theirs)).await;
            // Either invalid: the candidate is judged by its adoption, the other peer's roster
            // by a pull from that peer.
            if let Ok(Ok(conflict)) = checked {
                tracing::error!(
                    version = next,
                    "two valid rosters of the next version seen before adopting either: neither is adopted"
                );
                self.keep_conflict(conflict).await;
                return true;
            }
        }
        false
    }

    /// A roster conflict announcement `source` gossiped (`data` is no roster announcement):
    /// when `source` is its announcer and this node holds no conflict of that version or later,
    /// `source` is asked for its evidence at the next pull. Returns whether to pull from
    /// `source` now.
    pub(in crate::daemon) fn on_conflict_announcement(&self, source: PeerKey, data: &[u8]) -> bool {
        let Some((announcer, version, _)) = decode_roster_conflict_announcement(data) else {
            return false;
        };
        if announcer != source.0
            || self.rosters.identity().is_none()
            || !self.rosters.conflict_unheld(version)
        {
            return false;
        }
        self.forget_conflict_asked(source);
        true
    }

    /// Forgets that `peer` was asked for conflict evidence (it connected again, or announced
    /// a conflict): the next pull from it asks again.
    pub(in crate::daemon) fn forget_conflict_asked(&self, peer: PeerKey) {
        self.rosters.conflict_asked.lock().unwrap_or_else(PoisonError::into_inner).remove(&peer);
    }

    /// Announces `conflict` on the roster topic; a failure (no peer yet) is harmless: peers
    /// ask at their first pull after connecting.
    pub(super) async fn announce_conflict(&self, conflict: &RosterConflict) {
        let Ok(own) = self.blocking(|engine| engine.own_public_key()).await else { return };
        let announcement = encode_roster_conflict_announcement(
            &own.to_bytes(),
            conflict.version(),
            conflict.hashes(),
        );
        if let Err(error) = self.mesh.publish_on(GossipKind::Roster, announcement).await {
            tracing::debug!(%error, "roster conflict announcement not gossiped; peers ask at their next pull");
        }
    }
}

impl super::super::SignedRosters {
    /// Whether `peer` was asked for conflict evidence at roster head `head` already.
    fn asked_at(&self, peer: PeerKey, head: RosterIdentity) -> bool {
        let asked = self.conflict_asked.lock().unwrap_or_else(PoisonError::into_inner);
        asked.get(&peer) == Some(&head)
    }

    /// Notes that `peer` answered `roster_conflict` at roster head `head`.
    fn note_asked(&self, peer: PeerKey, head: RosterIdentity) {
        let mut asked = self.conflict_asked.lock().unwrap_or_else(PoisonError::into_inner);
        if asked.len() >= MAX_ASKED_PEERS && !asked.contains_key(&peer) {
            asked.clear();
        }
        asked.insert(peer, head);
    }
}
