//! Rosters across the mesh (docs/PROTOCOL.md §3.6): what a node tells its peers of the roster
//! it runs, and how a node that missed versions catches up with no operator step.
//!
//! - Every pull starts by asking the peer `roster_head` (its version and hash, which decides
//!   whether gossip of an origin outside the roster is charged to it as a relay); when the
//!   peer runs a newer version of this node's signed roster, `rosters { from_version }` fetches
//!   the versions between, at most [`MAX_ROSTERS_PER_RESPONSE`] per answer and
//!   [`MAX_ROSTER_PAGES`] answers per exchange, and each is verified in turn against the one
//!   before before anything is stored. A chain that does not verify (for any reason but
//!   expiry) or that the peer claimed but does not serve costs the peer one penalty, and so
//!   does a roster of this node's version that is no valid successor of the version before
//!   (a valid one is a conflict: the alarm). A roster that does not decode is logged and not
//!   adopted, with no penalty: a peer on newer software may know a field this node does not.
//! - An adoption is announced on the roster topic: `[node key, version, hash]`. Receivers
//!   note it as the sender's roster, pull from a sender on a newer version, and answer
//!   `Ignore`, so an announcement travels one hop and its sender is its announcer. Each
//!   announcement draws on the sender's budget of ignorable gossip; a peer is never penalised
//!   for running another version.

use crossmatch_protocol::{
    MAX_ROSTERS_PER_RESPONSE, MAX_SYNC_RESPONSE_BYTES, SignedRoster, decode_roster_announcement,
    encode_roster_announcement,
};

use super::conflict::ConflictCheck;
use super::{Adopter, RosterError};
use crate::daemon::Node;
use crate::daemon::sync::{PullBudget, ask, penalise};
use crate::mesh::{GossipKind, PeerKey, SyncRequest, SyncResponse};

/// Most `rosters` answers one exchange asks for: 56 new versions at most.
pub const MAX_ROSTER_PAGES: usize = 8;

/// The answer `wrap` makes of as many of `wires`, in order, as fit in
/// [`MAX_SYNC_RESPONSE_BYTES`] by [`SyncResponse::encoded_len_max`]: it stops at the first
/// that would not fit. Answers `rosters` and `member_records`.
pub(in crate::daemon) fn fill_answer(
    wrap: fn(Vec<Vec<u8>>) -> SyncResponse,
    wires: impl IntoIterator<Item = Vec<u8>>,
) -> SyncResponse {
    // Each byte string adds its bytes and a header of at most 9 bytes to the bound.
    let mut bound = wrap(Vec::new()).encoded_len_max();
    let mut kept = Vec::new();
    for wire in wires {
        bound = bound.saturating_add(9 + wire.len());
        if bound > MAX_SYNC_RESPONSE_BYTES as usize {
            break;
        }
        kept.push(wire);
    }
    wrap(kept)
}

impl Node {
    /// The answer to a peer's `roster_head` or `rosters` request; `None` for any other request.
    pub(in crate::daemon) async fn answer_roster_request(
        &self,
        request: &SyncRequest,
    ) -> Option<SyncResponse> {
        match request {
            SyncRequest::RosterHead => {
                // The held roster's, as `rosters` serves the held chain (the member set may
                // already run a version being adopted).
                let (version, hash) =
                    self.rosters.identity().unwrap_or_else(|| self.roster_identity());
                Some(SyncResponse::RosterHead { version, hash })
            }
            SyncRequest::Rosters { from_version } => {
                let Ok(wires) = self.stored_rosters(*from_version, MAX_ROSTERS_PER_RESPONSE).await
                else {
                    return Some(SyncResponse::Refused("unavailable".into()));
                };
                Some(fill_answer(SyncResponse::Rosters, wires))
            }
            // Roster conflict evidence (`roster/conflict/evidence.rs`).
            SyncRequest::RosterConflict => Some(self.answer_roster_conflict()),
            _ => self.answer_record_request(request),
        }
    }

    /// Asks `peer` which roster it runs and notes it; when it runs a newer version of this
    /// node's signed roster, fetches the versions between and adopts each in turn. Part of a
    /// pull: it spends the pull's `budget`, and penalises the peer at most once with the rest
    /// of the pull.
    pub(in crate::daemon) async fn exchange_rosters(&self, peer: PeerKey, budget: &mut PullBudget) {
        let head = ask(self, peer, SyncRequest::RosterHead, budget).await;
        let Some((SyncResponse::RosterHead { version, hash }, _)) = head else { return };
        self.note_peer_roster(peer, (version, hash));
        // Roster conflict evidence first: a proved conflict of the next version stops here.
        if !self.exchange_conflict(peer, (version, hash), budget).await {
            return;
        }
        for _ in 0..MAX_ROSTER_PAGES {
            // The version and hash this node holds, read together.
            let Some((mine, my_hash)) = self.rosters.identity() else { return };
            let another_of_mine = version == mine
                && hash != my_hash
                && self.rosters.conflict_unheld(mine)
                && !self.rosters.judged_not_conflicting(&hash);
            if version < mine || (version == mine && !another_of_mine) {
                return;
            }
            // Always from this node's own version: the first roster served must be the one
            // held (same hash), else the two are checked as a conflict.
            let request = SyncRequest::Rosters { from_version: mine };
            let Some((response, _)) = ask(self, peer, request, budget).await else { return };
            let wires = match response {
                SyncResponse::Rosters(wires)
                    if !wires.is_empty() && wires.len() <= MAX_ROSTERS_PER_RESPONSE =>
                {
                    wires
                }
                _ => {
                    penalise(self, peer, budget, "claimed a roster it does not serve").await;
                    return;
                }
            };
            let mut chain = match wires
                .iter()
                .map(|wire| SignedRoster::from_wire(wire))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(chain) => chain,
                Err(error) => {
                    // Perhaps a peer on newer software whose rosters carry a field this node
                    // does not know: no fault of the peer, so no penalty; this node stops here
                    // and runs its roster until it is upgraded or given the next version.
                    tracing::warn!(peer = %peer, %error, "a peer's roster does not decode with this node's software; not adopted, the peer not penalised");
                    return;
                }
            };
            let first = chain[0].body.version;
            if first > mine.saturating_add(1) {
                // An honest peer founded on a later version (a newcomer given it by hand)
                // holds nothing before it: nobody's fault; another peer brings the versions.
                tracing::debug!(peer = %peer, "a peer holds no roster of this node's version");
                return;
            }
            let gap = chain.windows(2).any(|pair| pair[1].body.version != pair[0].body.version + 1);
            if first < mine || gap {
                penalise(self, peer, budget, "a roster chain out of order").await;
                return;
            }
            if first == mine + 1 {
                // A peer founded on the version after this node's: its chain is checked
                // against the held roster as it is adopted.
            } else if chain[0].hash() != my_hash {
                // Another roster of this node's version: checked as a conflict against the held
                // version before, and nothing built on it is adopted. One that is no valid
                // successor of that version no honest member holds: the peer is penalised
                // (once per pull, so varying it per pull costs a penalty each time).
                let other = chain.swap_remove(0);
                let Some(held) = self.rosters.held() else { return };
                if held.current.body().version == mine && self.rosters.conflict_unheld(mine) {
                    let verdict = self.check_conflict(&held, &other).await;
                    if verdict == ConflictCheck::NotASuccessor {
                        tracing::warn!(peer = %peer, version = mine, "a peer served a roster of this node's version that is no valid successor of the version before");
                        penalise(self, peer, budget, "a false roster of this node's version").await;
                    }
                }
                return;
            } else {
                chain.remove(0);
            }
            if chain.is_empty() {
                if version > mine {
                    penalise(self, peer, budget, "claimed a newer roster it does not serve").await;
                }
                return;
            }
            // Another peer's roster of the next version, with another hash, is checked first:
            // a node that sees both before adopting either adopts neither.
            if self.contest_successor(peer, (version, hash), &chain[0]).await {
                return;
            }
            match self.adopt_roster_chain(chain, Adopter::Node).await {
                Ok(Some(_)) => {}
                // Nothing adopted (another exchange adopted it first): asking again brings
                // nothing new.
                Ok(None) => return,
                Err(RosterError::Expired { .. }) => {
                    tracing::warn!(peer = %peer, "a peer's newer roster has expired; not adopted");
                    return;
                }
                Err(error @ (RosterError::Invalid(_) | RosterError::Ahead { .. })) => {
                    tracing::warn!(peer = %peer, %error, "a peer served a roster chain that does not verify");
                    penalise(self, peer, budget, "a roster chain that does not verify").await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(peer = %peer, %error, "a peer's roster was not adopted");
                    return;
                }
            }
        }
    }

    /// A roster announcement `source` gossiped: noted as `source`'s roster when `source` is its
    /// announcer. Returns whether `source` runs a newer version than this node (pull from it).
    pub(in crate::daemon) fn on_roster_announcement(&self, source: PeerKey, data: &[u8]) -> bool {
        let Some((announcer, version, hash)) = decode_roster_announcement(data) else {
            return self.on_conflict_announcement(source, data);
        };
        if announcer != source.0 {
            return false;
        }
        self.note_peer_roster(source, (version, hash));
        self.rosters.version().is_some_and(|mine| version > mine)
    }

    /// Announces the roster this node runs on the roster topic; a failure (no peer yet) is
    /// harmless: peers ask `roster_head` at every pull.
    pub(in crate::daemon) async fn announce_roster(&self) {
        let Ok(own) = self.blocking(|engine| engine.own_public_key()).await else { return };
        let (version, hash) = self.roster_identity();
        let announcement = encode_roster_announcement(&own.to_bytes(), version, &hash);
        if let Err(error) = self.mesh.publish_on(GossipKind::Roster, announcement).await {
            tracing::debug!(%error, "roster announcement not gossiped; peers ask at their next pull");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_filled_in_order_up_to_the_response_limit() {
        let limit = MAX_SYNC_RESPONSE_BYTES as usize;
        // Three of 400 KiB fit in no 1 MiB answer: the first two do, and the third stops it,
        // although the small one after it would fit.
        let wires = vec![vec![1; 400 * 1024], vec![2; 400 * 1024], vec![3; 400 * 1024], vec![4; 8]];
        let answer = fill_answer(SyncResponse::Rosters, wires.clone());
        assert_eq!(answer, SyncResponse::Rosters(wires[..2].to_vec()));
        assert!(answer.encoded_len_max() <= limit);
        assert!(SyncResponse::Rosters(wires[..3].to_vec()).encoded_len_max() > limit);
        // Exactly at the limit still fits; one byte more does not.
        let empty = SyncResponse::MemberRecords(Vec::new()).encoded_len_max();
        let exact = vec![vec![0; limit - empty - 9]];
        let answer = fill_answer(SyncResponse::MemberRecords, exact.clone());
        assert_eq!(answer, SyncResponse::MemberRecords(exact));
        assert_eq!(answer.encoded_len_max(), limit);
        let over = vec![vec![0; limit - empty - 8]];
        assert_eq!(
            fill_answer(SyncResponse::MemberRecords, over),
            SyncResponse::MemberRecords(Vec::new())
        );
        // Small ones all fit.
        let small = vec![vec![5; 100], vec![6; 200]];
        assert_eq!(fill_answer(SyncResponse::Rosters, small.clone()), SyncResponse::Rosters(small));
    }
}
