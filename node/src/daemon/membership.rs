//! Live membership: [`Node::apply_membership`] makes a new member set the node's without a
//! restart: the engine's accepted origins (a removed member's live adds marked durably, counting
//! for no alert, and withdrawn by the slice worker in bounded steps), the roster the node resolves member ids and contacts from, and the mesh's
//! peer table (new members dialled, removed ones disconnected and refused, moved ones redialled).
//!
//! The set arrives as plain data: which roster decides it (signed, verified, adopted) is not this
//! module's concern. It also keeps what peers said of their roster's version and hash, so that
//! gossip can tell a relay on this node's roster from one on another during a roster change.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use crossmatch_protocol::{FinalHead, PublicKey};

use super::view::Roster;
use super::{Error, Node, Result};
use crate::engine::{Member, MembersChange};
use crate::mesh::{self, MembershipChange, MeshMember, PeerKey};

/// The most members a roster holds.
pub const MAX_MEMBERSHIP: usize = mesh::MAX_MEMBERS;

/// A roster's member set, as plain data: what [`Node::apply_membership`] makes the node's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The roster's version.
    pub version: u64,
    /// The roster's hash.
    pub roster_hash: [u8; 32],
    /// The members, this node among them.
    pub members: Vec<MembershipMember>,
}

impl Membership {
    /// The engine's members: each member's node key and its retired node keys (whose feeds
    /// stay matchable).
    pub fn engine_members(&self) -> Vec<Member> {
        self.members
            .iter()
            .map(|member| Member {
                id: member.id.clone(),
                key: member.node_key,
                retired_keys: member.retired_node_keys.clone(),
                retired_heads: member.retired_heads.clone(),
                contact: member.contact.clone(),
            })
            .collect()
    }

    /// The mesh's members: node keys (retired keys never connect) and the records' addresses.
    pub fn mesh_members(&self) -> Vec<MeshMember> {
        self.members
            .iter()
            .map(|member| MeshMember {
                public_key: member.node_key.to_bytes(),
                addresses: member.addresses.clone(),
            })
            .collect()
    }
}

/// One member of a [`Membership`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipMember {
    /// Member id (`DE`).
    pub id: String,
    /// Its node key: the origin of its feed and its mesh identity.
    pub node_key: PublicKey,
    /// Its earlier node keys (routine key changes): their feeds stay matchable.
    pub retired_node_keys: Vec<PublicKey>,
    /// Where each retired key's feed ends, from the key change the roster carries for it.
    pub retired_heads: Vec<(PublicKey, Option<FinalHead>)>,
    /// Its contact, shown with alerts.
    pub contact: String,
    /// Multiaddrs to dial it at; may be empty.
    pub addresses: Vec<String>,
}

/// A member set the node refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// No member, or more than a roster holds.
    #[error("a roster has 1 to {MAX_MEMBERSHIP} members")]
    Size,
    /// Two members share an id.
    #[error("member ids must be unique")]
    DuplicateId,
    /// A key is listed twice (as a node key or a retired one).
    #[error("every node key, current or retired, must be listed once")]
    DuplicateKey,
    /// This node's own key is not a member's node key.
    #[error("this node's key is not on the roster")]
    NotOnRoster,
    /// A version older than the one the node runs.
    #[error("roster version {offered} is older than the current version {current}")]
    Older {
        /// The version offered.
        offered: u64,
        /// The version the node runs.
        current: u64,
    },
    /// The mesh refuses the members (a key that is no Ed25519 key, an address that is no
    /// multiaddr).
    #[error(transparent)]
    Mesh(#[from] mesh::MeshError),
}

/// What [`Node::apply_membership`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipOutcome {
    /// What the engine began to withdraw (the slice worker withdraws it).
    pub engine: MembersChange,
    /// What the mesh changed.
    pub mesh: MembershipChange,
}

/// A roster's version and hash.
pub type RosterIdentity = (u64, [u8; 32]);

/// The roster the node runs now, and what its peers said of theirs.
#[derive(Debug)]
pub(super) struct LiveRoster {
    state: RwLock<RosterState>,
    /// One change at a time, so the engine and the mesh take changes in the same order.
    applying: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct RosterState {
    roster: Arc<Roster>,
    identity: RosterIdentity,
    /// Members' node keys.
    members: HashSet<[u8; 32]>,
    /// What each member said of its roster (members only).
    peers: HashMap<PeerKey, RosterIdentity>,
}

impl LiveRoster {
    /// The roster of `members`, at `identity`.
    pub(super) fn new(members: &[Member], identity: RosterIdentity) -> Self {
        let state = RosterState {
            roster: Arc::new(Roster::new(members)),
            identity,
            members: members.iter().map(|member| member.key.to_bytes()).collect(),
            peers: HashMap::new(),
        };
        Self { state: RwLock::new(state), applying: tokio::sync::Mutex::new(()) }
    }

    fn read<R>(&self, read: impl FnOnce(&RosterState) -> R) -> R {
        read(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<R>(&self, write: impl FnOnce(&mut RosterState) -> R) -> R {
        write(&mut self.state.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// The roster now.
    pub(super) fn current(&self) -> Arc<Roster> {
        self.read(|state| state.roster.clone())
    }

    /// Every member, in roster order.
    pub(super) fn contacts(&self) -> Vec<super::Contact> {
        self.current().contacts()
    }

    /// The member id of `origin` (a node key or a retired one), if it is on the roster.
    pub(super) fn member_id(&self, origin: &[u8; 32]) -> Option<String> {
        self.current().member_id(origin)
    }

    /// What each member said of its roster (roster conflict evidence: a fetched successor is
    /// checked against another peer's of its version before it is adopted).
    pub(super) fn peer_heads(&self) -> Vec<(PeerKey, RosterIdentity)> {
        self.read(|state| state.peers.iter().map(|(peer, head)| (*peer, *head)).collect())
    }

    /// Whether `peer` said it runs this node's roster (version and hash).
    pub(super) fn same_roster(&self, peer: &PeerKey) -> bool {
        self.read(|state| state.peers.get(peer) == Some(&state.identity))
    }
}

impl Node {
    /// Makes `membership` the node's member set, with no restart, in this order:
    /// - the engine: the origins it accepts become every member's node key and retired keys;
    ///   every other origin with live adds is marked durably, its adds counting for no alert,
    ///   and withdrawn by the slice worker in bounded steps (`daemon/slices.rs`), its alerts
    ///   updated or closed as a fork's withdrawal does; its new batches are ignored as origins
    ///   outside the roster;
    /// - the roster alerts and status resolve member ids and contacts from;
    /// - the mesh: new members allowed and dialled, removed members disconnected at once and
    ///   refused from then on, moved members dialled at their new addresses.
    ///
    /// The set is checked first and a refused one changes nothing. Applying the set the node
    /// runs already changes nothing. Changes are applied one at a time.
    pub async fn apply_membership(&self, membership: Membership) -> Result<MembershipOutcome> {
        let own_key = self.blocking(|engine| engine.own_public_key()).await?;
        let _one_at_a_time = self.roster.applying.lock().await;
        let current = self.roster.read(|state| state.identity.0);
        check(&membership, &own_key, current).map_err(Error::Membership)?;
        let engine_members = membership.engine_members();
        let mesh_members = membership.mesh_members();
        let for_engine = engine_members.clone();
        // A set that changed only addresses or contacts costs the engine no scan, and keeps
        // its allowance counts in progress.
        let engine = self.blocking(move |engine| engine.update_members(for_engine)).await??;
        // The removed origins' adds are withdrawn by the slice worker, a bounded step at a time.
        self.slices.notify_one();
        self.roster.write(|state| {
            state.roster = Arc::new(Roster::new(&engine_members));
            state.identity = (membership.version, membership.roster_hash);
            state.members = engine_members.iter().map(|member| member.key.to_bytes()).collect();
            let members = &state.members;
            state.peers.retain(|peer, _| members.contains(peer.as_bytes()));
        });
        let mesh = self.mesh.set_members(mesh_members).await.map_err(|error| match error {
            mesh::SetMembersError::Invalid(error) => Error::Membership(error.into()),
            mesh::SetMembersError::Closed => Error::Closed,
        })?;
        tracing::info!(
            version = membership.version,
            members = membership.members.len(),
            withdrawing_origins = engine.withdrawn_origins,
            added = mesh.added,
            removed = mesh.removed,
            readdressed = mesh.readdressed,
            "member set applied"
        );
        Ok(MembershipOutcome { engine, mesh })
    }

    /// The version and hash of the roster the node runs.
    pub fn roster_identity(&self) -> RosterIdentity {
        self.roster.read(|state| state.identity)
    }

    /// Notes the roster version and hash `peer` announced; ignored unless `peer` is a member.
    /// A relay that runs this node's roster is charged for gossip of origins outside it; one
    /// on another roster, or one not heard from, is not (it may run a roster that has them).
    pub fn note_peer_roster(&self, peer: PeerKey, identity: RosterIdentity) {
        self.roster.write(|state| {
            if state.members.contains(peer.as_bytes()) {
                state.peers.insert(peer, identity);
            }
        });
    }
}

/// Checks a member set before anything changes.
fn check(
    membership: &Membership,
    own_key: &PublicKey,
    current: u64,
) -> Result<(), MembershipError> {
    let members = &membership.members;
    if members.is_empty() || members.len() > MAX_MEMBERSHIP {
        return Err(MembershipError::Size);
    }
    if membership.version < current {
        return Err(MembershipError::Older { offered: membership.version, current });
    }
    let mut ids = HashSet::new();
    let mut keys = HashSet::new();
    for member in members {
        if !ids.insert(member.id.as_str()) {
            return Err(MembershipError::DuplicateId);
        }
        for key in std::iter::once(&member.node_key).chain(&member.retired_node_keys) {
            if !keys.insert(key.to_bytes()) {
                return Err(MembershipError::DuplicateKey);
            }
        }
    }
    if !members.iter().any(|member| member.node_key == *own_key) {
        return Err(MembershipError::NotOnRoster);
    }
    let mesh_members: Vec<MeshMember> = members
        .iter()
        .map(|member| MeshMember {
            public_key: member.node_key.to_bytes(),
            addresses: member.addresses.clone(),
        })
        .collect();
    mesh::validate_members(&mesh_members)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crossmatch_protocol::SigningKey;

    use super::*;

    fn key(n: u8) -> PublicKey {
        SigningKey::from_seed(&[n; 32]).public_key()
    }

    fn member(id: &str, n: u8) -> MembershipMember {
        MembershipMember {
            id: id.to_owned(),
            node_key: key(n),
            retired_node_keys: Vec::new(),
            retired_heads: Vec::new(),
            contact: format!("desk@{id}.example"),
            addresses: Vec::new(),
        }
    }

    fn set(members: Vec<MembershipMember>) -> Membership {
        Membership { version: 2, roster_hash: [2; 32], members }
    }

    fn refusal(membership: &Membership) -> String {
        check(membership, &key(1), 1).map(|()| String::new()).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn a_member_set_is_checked_before_anything_changes() {
        assert_eq!(refusal(&set(vec![member("A", 1), member("B", 2)])), "");
        assert_eq!(refusal(&set(Vec::new())), "a roster has 1 to 256 members");
        let too_many = (0..=MAX_MEMBERSHIP).map(|n| member(&format!("M{n}"), 1)).collect();
        assert_eq!(refusal(&set(too_many)), "a roster has 1 to 256 members");
        assert_eq!(
            refusal(&set(vec![member("A", 1), member("A", 2)])),
            "member ids must be unique"
        );
        let mut retired_twice = member("B", 2);
        retired_twice.retired_node_keys = vec![key(1)];
        assert_eq!(
            refusal(&set(vec![member("A", 1), retired_twice])),
            "every node key, current or retired, must be listed once"
        );
        assert_eq!(refusal(&set(vec![member("B", 2)])), "this node's key is not on the roster");
        let mut older = set(vec![member("A", 1)]);
        older.version = 0;
        assert_eq!(refusal(&older), "roster version 0 is older than the current version 1");
        let mut bad_address = member("A", 1);
        bad_address.addresses = vec!["node:7400".into()];
        assert!(refusal(&set(vec![bad_address])).starts_with("invalid address \"node:7400\""));
    }

    #[test]
    fn only_a_peer_that_said_it_runs_this_roster_is_on_it() {
        let members = [member("A", 1), member("B", 2)].map(|m| Member {
            id: m.id,
            key: m.node_key,
            retired_keys: Vec::new(),
            retired_heads: Vec::new(),
            contact: m.contact,
        });
        let roster = LiveRoster::new(&members, (3, [3; 32]));
        let peer = PeerKey(key(2).to_bytes());
        assert!(!roster.same_roster(&peer), "not heard from");
        roster.write(|state| state.peers.insert(peer, (2, [2; 32])));
        assert!(!roster.same_roster(&peer), "another version");
        roster.write(|state| state.peers.insert(peer, (3, [3; 32])));
        assert!(roster.same_roster(&peer));
    }

    #[test]
    fn a_retired_key_resolves_to_its_member() {
        let mut a = Member {
            id: "A".into(),
            key: key(11),
            retired_keys: vec![key(1)],
            retired_heads: vec![(key(1), None)],
            contact: "desk@a.example".into(),
        };
        let roster = LiveRoster::new(std::slice::from_ref(&a), (1, [1; 32]));
        assert_eq!(roster.member_id(&key(1).to_bytes()).as_deref(), Some("A"));
        assert_eq!(roster.member_id(&key(11).to_bytes()).as_deref(), Some("A"));
        assert_eq!(roster.member_id(&key(2).to_bytes()), None);
        a.retired_keys.clear();
        let roster = LiveRoster::new(&[a], (2, [2; 32]));
        assert_eq!(roster.member_id(&key(1).to_bytes()), None, "a key no longer retired");
    }
}
