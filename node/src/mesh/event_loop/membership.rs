//! A change of the members while the mesh runs: the peer table, the allow list, the per-IP
//! limits and the connection limit follow the new list; a removed member is disconnected at
//! once and refused from then on, a new one dialled, a moved one dialled at its new addresses.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::{Multiaddr, PeerId};
use tracing::info;

use super::super::behaviour::established_limit;
use super::super::peers::peer_id_of;
use super::super::{Event, MembershipChange, MeshMember, PeerKey};
use super::EventLoop;

impl EventLoop {
    /// Makes `members` (checked by `Client::set_members`) the mesh's roster.
    pub(super) fn set_members(&mut self, members: Vec<MeshMember>) -> MembershipChange {
        let local = *self.swarm.local_peer_id();
        let mut listed: HashMap<PeerId, (PeerKey, Vec<Multiaddr>)> = HashMap::new();
        for member in members {
            let Some(peer) = peer_id_of(&member.public_key).filter(|peer| *peer != local) else {
                continue;
            };
            let addresses = member.addresses.iter().filter_map(|a| a.parse().ok()).collect();
            listed.insert(peer, (PeerKey(member.public_key), addresses));
        }
        let mut change = MembershipChange::default();
        let gone: Vec<PeerId> = self.peers.peer_ids().filter(|p| !listed.contains_key(p)).collect();
        for peer in gone {
            self.remove_member(peer);
            change.removed += 1;
        }
        let now = Instant::now();
        for (peer, (key, addresses)) in listed {
            let behaviour = self.swarm.behaviour_mut();
            if self.peers.key_of(&peer).is_none() {
                self.peers.insert_member(key, peer, addresses.clone(), now);
                behaviour.allowed.allow_peer(peer);
                behaviour.per_ip.0.add_member(&peer, &addresses);
                self.peers.dial_soon(&peer, now);
                info!(peer = %key, "member added");
                change.added += 1;
            } else if self.peers.set_addresses(&peer, addresses.clone()) {
                behaviour.per_ip.0.add_member(&peer, &addresses);
                if !addresses.is_empty() && !self.swarm.is_connected(&peer) {
                    // Due at once, unless a dial is already scheduled; that one will use the
                    // new addresses.
                    self.peers.dial_soon(&peer, now);
                }
                info!(peer = %key, "member moved");
                change.readdressed += 1;
            }
        }
        let per_peer = self.settings.max_connections_per_peer;
        let limits = self.swarm.behaviour_mut().limits.limits_mut();
        *limits = limits
            .clone()
            .with_max_established(Some(established_limit(self.peers.len(), per_peer)));
        self.dial_due(now);
        info!(
            members = self.peers.len(),
            added = change.added,
            removed = change.removed,
            readdressed = change.readdressed,
            "members changed"
        );
        change
    }

    /// Forgets a member a roster change removed: every connection to it closes now, and the
    /// allow list refuses its connections from now on, either way. A ban in force is lifted
    /// (the allow list refuses it anyway), so that the block lists stay bounded by the roster.
    fn remove_member(&mut self, peer: PeerId) {
        let Some(gone) = self.peers.remove_member(&peer) else { return };
        let behaviour = self.swarm.behaviour_mut();
        // Closes every connection to the peer, and refuses new ones both ways.
        behaviour.allowed.disallow_peer(peer);
        behaviour.blocked.unblock_peer(peer);
        behaviour.gossipsub.remove_blacklisted_peer(&peer);
        behaviour.per_ip.0.forget_member(&peer);
        info!(peer = %gone.key, "member removed: disconnected and refused from now on");
        if gone.was_confirmed {
            self.emit(Event::PeerDisconnected(gone.key));
        }
    }
}
