//! The peer table: one record per roster member (its key and addresses, when to redial it,
//! whether its roster matched, its ban, its penalties and its sync budget), after Lighthouse's
//! peer database. A ban, a penalty, a roster verdict or a disconnect is one method here that
//! keeps the record whole; the event loop applies the libp2p side effects (block list, gossipsub
//! blacklist and scores, dials) that the method's answer calls for.
//!
//! The table reads no clock: every method that depends on time takes `now`.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use libp2p::identity::{PublicKey, ed25519};
use libp2p::{Multiaddr, PeerId};

use super::behaviour::MISBEHAVIOUR_MEMORY;
use super::budget::{Buckets, SyncBudget};
use super::dialer::{Jitter, backoff};
use super::{Ban, PeerKey};

/// Score points one penalty costs (gossipsub's application-specific score, weight 1).
const PENALTY_POINTS: f64 = 20.0;

/// A penalty that has decayed below this much of one is forgotten.
const FORGOTTEN_PENALTY: f64 = 0.01;

/// Whether a member announced this node's federation and roster on its current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RosterState {
    /// Not connected, or connected and not yet identified.
    Unconfirmed,
    /// Announced the same federation and roster: a connected peer, for gossip and sync.
    Confirmed,
    /// Announced another federation or roster: no sync with it, either way.
    Mismatched,
}

/// When a member is to be dialled next, and how many dials failed since it last connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Redial {
    /// Dials since the roster was last confirmed (or the last ban began or ended); it sets the
    /// backoff.
    attempt: u32,
    /// When to dial next; `None` while connected or without an address.
    next_dial_at: Option<Instant>,
}

/// A ban in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BanState {
    until: Instant,
    until_unix_ms: u64,
}

/// One roster member.
#[derive(Debug)]
pub(crate) struct Peer {
    key: PeerKey,
    addresses: Vec<Multiaddr>,
    redial: Redial,
    roster_state: RosterState,
    ban: Option<BanState>,
    /// Penalties, decaying over [`MISBEHAVIOUR_MEMORY`]; 0 when there are none.
    penalty: f64,
    budget: Buckets,
}

/// What the table needs from the mesh's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerSettings {
    /// How long a ban lasts.
    pub(crate) ban: Duration,
    /// Every member's budget of inbound sync requests.
    pub(crate) budget: SyncBudget,
    /// The first redial wait.
    pub(crate) redial_initial: Duration,
    /// The redial wait's cap.
    pub(crate) redial_max: Duration,
}

/// A dial to start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dial {
    pub(crate) peer: PeerId,
    pub(crate) key: PeerKey,
    pub(crate) addresses: Vec<Multiaddr>,
    /// Which attempt this is, from 1.
    pub(crate) attempt: u32,
}

/// A member's last connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Disconnected {
    pub(crate) key: PeerKey,
    /// Whether it counted as connected (its roster was confirmed): the node is told.
    pub(crate) was_confirmed: bool,
}

/// A roster verdict that was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RosterChange {
    pub(crate) key: PeerKey,
    /// The state before the verdict.
    pub(crate) previous: RosterState,
}

/// Every roster member but this node, by peer id and by key.
pub(crate) struct PeerTable {
    peers: HashMap<PeerId, Peer>,
    ids: HashMap<PeerKey, PeerId>,
    penalties_decayed_at: Instant,
    settings: PeerSettings,
    jitter: Jitter,
}

/// Counts only: addresses and keys stay out of logs.
impl fmt::Debug for PeerTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |state| self.peers.values().filter(|peer| peer.roster_state == state).count();
        f.debug_struct("PeerTable")
            .field("members", &self.peers.len())
            .field("confirmed", &count(RosterState::Confirmed))
            .field("mismatched", &count(RosterState::Mismatched))
            .field("bans", &self.peers.values().filter(|peer| peer.ban.is_some()).count())
            .finish_non_exhaustive()
    }
}

impl PeerTable {
    /// An empty table.
    pub(crate) fn new(settings: PeerSettings, jitter: Jitter, now: Instant) -> Self {
        PeerTable {
            peers: HashMap::new(),
            ids: HashMap::new(),
            penalties_decayed_at: now,
            settings,
            jitter,
        }
    }

    /// Adds a member, or adds the addresses it does not have yet to one already listed.
    pub(crate) fn insert_member(
        &mut self,
        key: PeerKey,
        peer: PeerId,
        addresses: Vec<Multiaddr>,
        now: Instant,
    ) {
        self.ids.insert(key, peer);
        let budget = &self.settings.budget;
        let member = self.peers.entry(peer).or_insert_with(|| Peer {
            key,
            addresses: Vec::new(),
            redial: Redial::default(),
            roster_state: RosterState::Unconfirmed,
            ban: None,
            penalty: 0.0,
            budget: Buckets::full(budget, now),
        });
        for address in addresses {
            if !member.addresses.contains(&address) {
                member.addresses.push(address);
            }
        }
    }

    /// Forgets a member (a roster change removed it): its record, addresses, ban and budget.
    /// Returns its key and whether it counted as connected (its roster was confirmed).
    pub(crate) fn remove_member(&mut self, peer: &PeerId) -> Option<Disconnected> {
        let member = self.peers.remove(peer)?;
        self.ids.remove(&member.key);
        let was_confirmed = member.roster_state == RosterState::Confirmed;
        Some(Disconnected { key: member.key, was_confirmed })
    }

    /// Replaces a member's addresses with `addresses` (a roster change moved it); returns
    /// whether they changed. A changed member is dialled at its new addresses from the next
    /// dial on, its backoff started over.
    pub(crate) fn set_addresses(&mut self, peer: &PeerId, addresses: Vec<Multiaddr>) -> bool {
        let Some(member) = self.peers.get_mut(peer) else { return false };
        if member.addresses == addresses {
            return false;
        }
        member.addresses = addresses;
        member.redial.attempt = 0;
        if member.addresses.is_empty() {
            member.redial.next_dial_at = None;
        }
        true
    }

    /// How many members.
    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Every member's peer id.
    pub(crate) fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// The member's key, if `peer` is a member.
    pub(crate) fn key_of(&self, peer: &PeerId) -> Option<PeerKey> {
        self.peers.get(peer).map(|member| member.key)
    }

    /// The member's peer id, if `key` is a member's.
    pub(crate) fn id_of(&self, key: &PeerKey) -> Option<PeerId> {
        self.ids.get(key).copied()
    }

    /// The member's roster state, if `peer` is a member.
    pub(crate) fn roster_state(&self, peer: &PeerId) -> Option<RosterState> {
        self.peers.get(peer).map(|member| member.roster_state)
    }

    /// Whether `peer` is a member that is not banned (one that a low score may ban).
    pub(crate) fn is_member_not_banned(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|member| member.ban.is_none())
    }

    /// Makes every member with an address due for a dial now (at start).
    pub(crate) fn dial_all_now(&mut self, now: Instant) {
        for member in self.peers.values_mut() {
            if !member.addresses.is_empty() {
                member.redial.next_dial_at = Some(now);
            }
        }
    }

    /// Adds an address to a member's; `None` if `key` is no member's.
    pub(crate) fn add_address(&mut self, key: &PeerKey, address: Multiaddr) -> Option<PeerId> {
        let peer = self.id_of(key)?;
        let member = self.peers.get_mut(&peer)?;
        if !member.addresses.contains(&address) {
            member.addresses.push(address);
        }
        Some(peer)
    }

    /// Makes a member due for a dial now unless a dial is already scheduled; returns whether it
    /// did.
    pub(crate) fn dial_soon(&mut self, peer: &PeerId, now: Instant) -> bool {
        match self.peers.get_mut(peer) {
            Some(member) if member.redial.next_dial_at.is_none() => {
                member.redial.next_dial_at = Some(now);
                true
            }
            _ => false,
        }
    }

    /// The dials due by `now`, each with its next one scheduled after a backoff. A connected
    /// member is not dialled (and not rescheduled); a banned one is rescheduled to its ban's
    /// end.
    pub(crate) fn due_dials(
        &mut self,
        now: Instant,
        is_connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<Dial> {
        let mut dials = Vec::new();
        for (peer, member) in self.peers.iter_mut() {
            let Some(due) = member.redial.next_dial_at else {
                continue;
            };
            if due > now {
                continue;
            }
            if is_connected(peer) {
                member.redial.next_dial_at = None;
                continue;
            }
            if let Some(ban) = member.ban {
                member.redial.next_dial_at = Some(ban.until);
                continue;
            }
            let wait = backoff(
                member.redial.attempt,
                self.settings.redial_initial,
                self.settings.redial_max,
                &mut self.jitter,
            );
            member.redial.next_dial_at = Some(now + wait);
            member.redial.attempt = member.redial.attempt.saturating_add(1);
            dials.push(Dial {
                peer: *peer,
                key: member.key,
                addresses: member.addresses.clone(),
                attempt: member.redial.attempt,
            });
        }
        dials
    }

    /// A connection to `peer` is up: no dial is due while it lasts. The backoff is reset only
    /// once the roster is confirmed, so a peer that accepts and then drops this node (a ban)
    /// keeps being redialled ever slower.
    pub(crate) fn on_connection_established(&mut self, peer: &PeerId) -> Option<PeerKey> {
        let member = self.peers.get_mut(peer)?;
        member.redial.next_dial_at = None;
        Some(member.key)
    }

    /// The member's last connection closed: its roster is unconfirmed again and its redial is
    /// scheduled (at the ban's end if banned, else after a backoff). Its ban, penalties, budget
    /// and backoff attempt are kept: reconnecting must not wash them away.
    pub(crate) fn on_disconnected(&mut self, peer: &PeerId, now: Instant) -> Option<Disconnected> {
        let member = self.peers.get_mut(peer)?;
        let was_confirmed = member.roster_state == RosterState::Confirmed;
        member.roster_state = RosterState::Unconfirmed;
        if !member.addresses.is_empty() {
            member.redial.next_dial_at = Some(match member.ban {
                Some(ban) => ban.until,
                None => {
                    now + backoff(
                        member.redial.attempt,
                        self.settings.redial_initial,
                        self.settings.redial_max,
                        &mut self.jitter,
                    )
                }
            });
        }
        Some(Disconnected { key: member.key, was_confirmed })
    }

    /// The member announced this node's federation and roster: confirmed, and its backoff
    /// starts over.
    pub(crate) fn confirm_roster(&mut self, peer: &PeerId) -> Option<RosterChange> {
        let member = self.peers.get_mut(peer)?;
        let previous = std::mem::replace(&mut member.roster_state, RosterState::Confirmed);
        member.redial.attempt = 0;
        Some(RosterChange { key: member.key, previous })
    }

    /// The member announced another federation or roster.
    pub(crate) fn mismatch_roster(&mut self, peer: &PeerId) -> Option<RosterChange> {
        let member = self.peers.get_mut(peer)?;
        let previous = std::mem::replace(&mut member.roster_state, RosterState::Mismatched);
        Some(RosterChange { key: member.key, previous })
    }

    /// One more penalty; returns the member's penalties, to set as its application score with
    /// [`application_score`]. Decay them first ([`PeerTable::decay_penalties`]).
    pub(crate) fn penalize(&mut self, peer: &PeerId) -> Option<f64> {
        let member = self.peers.get_mut(peer)?;
        member.penalty += 1.0;
        Some(member.penalty)
    }

    /// Decays every member's penalties to a tenth over [`MISBEHAVIOUR_MEMORY`], like
    /// gossipsub's decay of rejects, and forgets those that fell below a hundredth. Returns the
    /// application score of every member that had penalties.
    pub(crate) fn decay_penalties(&mut self, now: Instant) -> Vec<(PeerId, f64)> {
        let elapsed = now.saturating_duration_since(self.penalties_decayed_at);
        self.penalties_decayed_at = now;
        if elapsed.is_zero() {
            return Vec::new();
        }
        let factor = 0.1f64.powf(elapsed.as_secs_f64() / MISBEHAVIOUR_MEMORY.as_secs_f64());
        let mut scores = Vec::new();
        for (peer, member) in self.peers.iter_mut() {
            if member.penalty == 0.0 {
                continue;
            }
            member.penalty *= factor;
            if member.penalty < FORGOTTEN_PENALTY {
                member.penalty = 0.0;
            }
            scores.push((*peer, application_score(member.penalty)));
        }
        scores
    }

    /// Bans the member until `now` plus the ban period: its penalties are dropped (its score
    /// starts clean when the ban ends), its backoff starts over, and it is not dialled before
    /// the ban ends. The caller blocks and disconnects it.
    pub(crate) fn ban(&mut self, peer: &PeerId, now: Instant, now_unix_ms: u64) -> Option<Ban> {
        let member = self.peers.get_mut(peer)?;
        let until = now + self.settings.ban;
        let ban_ms = u64::try_from(self.settings.ban.as_millis()).unwrap_or(u64::MAX);
        let until_unix_ms = now_unix_ms.saturating_add(ban_ms);
        member.ban = Some(BanState { until, until_unix_ms });
        member.penalty = 0.0;
        if !member.addresses.is_empty() {
            member.redial.next_dial_at = Some(until);
        }
        member.redial.attempt = 0;
        Some(Ban { peer: member.key, until_unix_ms })
    }

    /// Lifts the bans that ended by `now`; each member is dialled again at once, its backoff
    /// started over. Returns them, for the caller to unblock.
    pub(crate) fn lift_expired_bans(&mut self, now: Instant) -> Vec<(PeerId, PeerKey)> {
        let mut lifted = Vec::new();
        for (peer, member) in self.peers.iter_mut() {
            if member.ban.is_none_or(|ban| ban.until > now) {
                continue;
            }
            member.ban = None;
            member.redial.attempt = 0;
            if !member.addresses.is_empty() {
                member.redial.next_dial_at = Some(now);
            }
            lifted.push((*peer, member.key));
        }
        lifted
    }

    /// Takes one request from the member's sync budget; `false` if it is over budget or not a
    /// member.
    pub(crate) fn try_sync_request(&mut self, peer: &PeerId, now: Instant) -> bool {
        let budget = self.settings.budget;
        self.peers.get_mut(peer).is_some_and(|member| member.budget.try_request(&budget, now))
    }

    /// Charges a response sent to the member to its sync budget.
    pub(crate) fn charge_sync_response(&mut self, peer: &PeerId, now: Instant, n_bytes: usize) {
        let budget = self.settings.budget;
        if let Some(member) = self.peers.get_mut(peer) {
            member.budget.charge_bytes(&budget, now, n_bytes);
        }
    }

    /// The keys of members whose roster is confirmed, sorted.
    pub(crate) fn confirmed_keys(&self) -> Vec<PeerKey> {
        self.keys_in(RosterState::Confirmed)
    }

    /// The keys of members that announced another federation, sorted.
    pub(crate) fn mismatched_keys(&self) -> Vec<PeerKey> {
        self.keys_in(RosterState::Mismatched)
    }

    fn keys_in(&self, state: RosterState) -> Vec<PeerKey> {
        let mut keys: Vec<PeerKey> = self
            .peers
            .values()
            .filter(|member| member.roster_state == state)
            .map(|member| member.key)
            .collect();
        keys.sort();
        keys
    }

    /// The bans in force, sorted by member.
    pub(crate) fn bans(&self) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self
            .peers
            .values()
            .filter_map(|member| {
                let ban = member.ban?;
                Some(Ban { peer: member.key, until_unix_ms: ban.until_unix_ms })
            })
            .collect();
        bans.sort_by_key(|ban| ban.peer);
        bans
    }
}

/// The gossipsub application score of `penalty` penalties.
pub(crate) fn application_score(penalty: f64) -> f64 {
    -PENALTY_POINTS * penalty
}

/// The peer id of a roster key; `None` if the bytes are not an Ed25519 public key.
pub(crate) fn peer_id_of(public_key: &[u8; 32]) -> Option<PeerId> {
    let key = ed25519::PublicKey::try_from_bytes(public_key).ok()?;
    Some(PublicKey::from(key).to_peer_id())
}

/// The Ed25519 key inside a peer id, if it is one (ids of small keys inline the key).
pub(crate) fn key_of_peer_id(peer: &PeerId) -> Option<PeerKey> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let key = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(PeerKey(key.try_into_ed25519().ok()?.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    const BAN: Duration = Duration::from_secs(60);
    const REDIAL_INITIAL: Duration = Duration::from_millis(500);
    const REDIAL_MAX: Duration = Duration::from_secs(30);

    fn member(seed: u8) -> (PeerKey, PeerId) {
        let keypair = Keypair::ed25519_from_bytes([seed; 32]).expect("valid seed");
        let public = keypair.public().try_into_ed25519().expect("ed25519").to_bytes();
        (PeerKey(public), keypair.public().to_peer_id())
    }

    fn address() -> Multiaddr {
        "/ip4/10.0.0.5/tcp/7400".parse().expect("multiaddr")
    }

    /// A table of members 1 and 2; member 1 has an address, member 2 none.
    fn table(now: Instant) -> PeerTable {
        let settings = PeerSettings {
            ban: BAN,
            budget: SyncBudget {
                requests_per_sec: 1.0,
                requests_burst: 2.0,
                response_bytes_per_sec: 100.0,
                response_bytes_burst: 1000.0,
            },
            redial_initial: REDIAL_INITIAL,
            redial_max: REDIAL_MAX,
        };
        let mut table = PeerTable::new(settings, Jitter::seeded(0x5eed), now);
        let (key, peer) = member(1);
        table.insert_member(key, peer, vec![address()], now);
        let (key, peer) = member(2);
        table.insert_member(key, peer, Vec::new(), now);
        table
    }

    fn peer<'a>(table: &'a PeerTable, peer: &PeerId) -> &'a Peer {
        table.peers.get(peer).expect("a member")
    }

    #[test]
    fn a_peer_id_gives_back_its_roster_key() {
        let (key, peer) = member(9);
        assert_eq!(peer_id_of(&key.0), Some(peer));
        assert_eq!(key_of_peer_id(&peer), Some(key));
    }

    #[test]
    fn members_are_found_by_id_and_by_key_and_addresses_merge() {
        let now = Instant::now();
        let mut table = table(now);
        let (key, id) = member(1);
        assert_eq!(table.len(), 2);
        assert_eq!((table.id_of(&key), table.key_of(&id)), (Some(id), Some(key)));
        assert_eq!(table.id_of(&member(3).0), None);
        assert_eq!(table.key_of(&member(3).1), None);
        // The same member listed twice keeps one record and every distinct address.
        let other: Multiaddr = "/dns4/node.example/tcp/7400".parse().expect("multiaddr");
        table.insert_member(key, id, vec![address(), other.clone()], now);
        assert_eq!(table.len(), 2);
        assert_eq!(peer(&table, &id).addresses, vec![address(), other]);
        assert_eq!(table.add_address(&member(3).0, address()), None);
    }

    #[test]
    fn a_ban_holds_until_its_end_then_is_lifted() {
        let now = Instant::now();
        let mut table = table(now);
        let (key, id) = member(1);
        table.penalize(&id);
        table.dial_all_now(now);
        let ban = table.ban(&id, now, 1_000).expect("a member");
        assert_eq!(ban, Ban { peer: key, until_unix_ms: 1_000 + 60_000 });
        assert_eq!(table.bans(), vec![ban]);
        assert!(!table.is_member_not_banned(&id));
        assert!(table.is_member_not_banned(&member(2).1));
        assert!(!table.is_member_not_banned(&member(3).1));
        assert_eq!(peer(&table, &id).penalty, 0.0, "a ban drops the penalties");
        assert_eq!(peer(&table, &id).redial.next_dial_at, Some(now + BAN));
        assert_eq!(table.ban(&member(3).1, now, 1_000), None);

        // Not lifted a moment early, and never dialled while it lasts.
        let before_end = now + BAN - Duration::from_millis(1);
        assert!(table.lift_expired_bans(before_end).is_empty());
        assert!(table.due_dials(before_end, |_| false).is_empty());
        assert_eq!(table.bans().len(), 1);

        let end = now + BAN;
        assert_eq!(table.lift_expired_bans(end), vec![(id, key)]);
        assert!(table.bans().is_empty() && table.is_member_not_banned(&id));
        assert_eq!(peer(&table, &id).redial, Redial { attempt: 0, next_dial_at: Some(end) });
        let dials = table.due_dials(end, |_| false);
        assert_eq!(dials.len(), 1);
        assert_eq!((dials[0].peer, dials[0].attempt), (id, 1));
        assert!(table.lift_expired_bans(end + BAN).is_empty());
    }

    #[test]
    fn a_banned_member_due_for_a_dial_waits_for_the_ban_to_end() {
        let now = Instant::now();
        let mut table = table(now);
        let (_, id) = member(1);
        table.ban(&id, now, 0);
        // Something made it due early (an address added, say): it waits for the ban's end.
        table.peers.get_mut(&id).expect("a member").redial.next_dial_at = Some(now);
        assert!(table.due_dials(now, |_| false).is_empty());
        assert_eq!(peer(&table, &id).redial.next_dial_at, Some(now + BAN));
    }

    #[test]
    fn penalties_add_up_and_decay_to_a_tenth_over_the_memory() {
        let now = Instant::now();
        let mut table = table(now);
        let (_, id) = member(1);
        assert_eq!(table.penalize(&id), Some(1.0));
        assert_eq!(table.penalize(&id), Some(2.0));
        assert_eq!(table.penalize(&member(3).1), None);
        assert_eq!(application_score(2.0), -40.0);

        // Nothing has passed: nothing changes, and no score is reported.
        assert!(table.decay_penalties(now).is_empty());
        let scores = table.decay_penalties(now + MISBEHAVIOUR_MEMORY);
        assert_eq!(scores.len(), 1, "only members with penalties: {scores:?}");
        assert_eq!(scores[0].0, id);
        assert!((scores[0].1 - application_score(0.2)).abs() < 1e-9, "{scores:?}");

        // Below a hundredth it is forgotten: reported once at zero, then no more.
        let scores = table.decay_penalties(now + MISBEHAVIOUR_MEMORY * 3);
        assert_eq!(scores, vec![(id, 0.0)]);
        assert_eq!(peer(&table, &id).penalty, 0.0);
        assert!(table.decay_penalties(now + MISBEHAVIOUR_MEMORY * 4).is_empty());
    }

    #[test]
    fn roster_verdicts_move_a_member_between_states() {
        let now = Instant::now();
        let mut table = table(now);
        let (key, id) = member(1);
        assert_eq!(table.roster_state(&id), Some(RosterState::Unconfirmed));
        assert_eq!(table.roster_state(&member(3).1), None);
        table.dial_all_now(now);
        assert_eq!(table.due_dials(now, |_| false).len(), 1);
        assert_eq!(peer(&table, &id).redial.attempt, 1);

        let change = table.confirm_roster(&id).expect("a member");
        assert_eq!(change, RosterChange { key, previous: RosterState::Unconfirmed });
        assert_eq!(peer(&table, &id).redial.attempt, 0, "a confirmed roster resets the backoff");
        assert_eq!(table.confirmed_keys(), vec![key]);
        let again = table.confirm_roster(&id).expect("a member");
        assert_eq!(again.previous, RosterState::Confirmed);

        let change = table.mismatch_roster(&id).expect("a member");
        assert_eq!(change.previous, RosterState::Confirmed);
        assert_eq!(table.roster_state(&id), Some(RosterState::Mismatched));
        assert!(table.confirmed_keys().is_empty());
        assert_eq!(table.mismatched_keys(), vec![key]);
        assert_eq!(
            table.mismatch_roster(&id).map(|change| change.previous),
            Some(RosterState::Mismatched)
        );

        assert_eq!(
            table.confirm_roster(&id).map(|change| change.previous),
            Some(RosterState::Mismatched)
        );
        assert!(table.mismatched_keys().is_empty());
        assert_eq!(table.confirm_roster(&member(3).1), None);
        assert_eq!(table.mismatch_roster(&member(3).1), None);
    }

    #[test]
    fn a_disconnect_unconfirms_and_redials_but_keeps_ban_penalties_and_budget() {
        let now = Instant::now();
        let mut table = table(now);
        let (key, id) = member(1);
        table.dial_all_now(now);
        table.due_dials(now, |_| false);
        assert_eq!(table.on_connection_established(&id), Some(key));
        assert_eq!(peer(&table, &id).redial.next_dial_at, None);
        table.confirm_roster(&id);
        table.penalize(&id);
        assert!(table.try_sync_request(&id, now));
        table.charge_sync_response(&id, now, 5_000);

        let gone = table.on_disconnected(&id, now).expect("a member");
        assert_eq!(gone, Disconnected { key, was_confirmed: true });
        assert_eq!(table.roster_state(&id), Some(RosterState::Unconfirmed));
        let due = peer(&table, &id).redial.next_dial_at.expect("a redial");
        assert!(due >= now + REDIAL_INITIAL / 2 && due <= now + REDIAL_INITIAL, "{due:?}");
        assert_eq!(peer(&table, &id).penalty, 1.0, "penalties outlast a disconnect");
        assert!(!table.try_sync_request(&id, now), "the budget outlasts a disconnect");
        // A second close (the other of two connections) tells nothing new.
        assert_eq!(table.on_disconnected(&id, now).map(|gone| gone.was_confirmed), Some(false));

        // Mismatched, then gone: not a connected peer that left.
        table.mismatch_roster(&id);
        assert_eq!(table.on_disconnected(&id, now).map(|gone| gone.was_confirmed), Some(false));
        assert_eq!(table.roster_state(&id), Some(RosterState::Unconfirmed));

        // Banned, then gone: redialled at the ban's end, the ban kept.
        table.ban(&id, now, 0);
        table.on_disconnected(&id, now);
        assert_eq!(peer(&table, &id).redial.next_dial_at, Some(now + BAN));
        assert_eq!(table.bans().len(), 1);

        // A member without an address is never scheduled; a stranger is no member.
        let (_, no_address) = member(2);
        assert!(table.on_disconnected(&no_address, now).is_some());
        assert_eq!(peer(&table, &no_address).redial.next_dial_at, None);
        assert_eq!(table.on_disconnected(&member(3).1, now), None);
    }

    #[test]
    fn dials_back_off_and_skip_connected_members() {
        let now = Instant::now();
        let mut table = table(now);
        let (key, id) = member(1);
        table.dial_all_now(now);
        assert_eq!(peer(&table, &member(2).1).redial.next_dial_at, None, "no address, no dial");
        let dials = table.due_dials(now, |_| false);
        assert_eq!(dials, vec![Dial { peer: id, key, addresses: vec![address()], attempt: 1 }]);
        assert!(table.due_dials(now, |_| false).is_empty(), "the next dial waits");
        let later = now + REDIAL_MAX;
        assert_eq!(table.due_dials(later, |_| false)[0].attempt, 2);
        // Due but connected: not dialled, and nothing more is scheduled.
        let much_later = later + REDIAL_MAX;
        assert!(table.due_dials(much_later, |_| true).is_empty());
        assert_eq!(peer(&table, &id).redial.next_dial_at, None);
        // An added address makes an idle member due at once, but not one already scheduled.
        assert_eq!(table.add_address(&key, address()), Some(id));
        assert!(table.dial_soon(&id, much_later));
        assert!(!table.dial_soon(&id, much_later));
        assert_eq!(peer(&table, &id).addresses, vec![address()]);
    }

    #[test]
    fn a_removed_member_is_forgotten_and_a_moved_one_keeps_its_state() {
        let now = Instant::now();
        let mut table = table(now);
        let (key, id) = member(1);
        table.confirm_roster(&id);
        table.penalize(&id);
        let moved: Multiaddr = "/ip4/10.0.0.9/tcp/7400".parse().expect("multiaddr");
        assert!(table.set_addresses(&id, vec![moved.clone()]));
        assert!(!table.set_addresses(&id, vec![moved.clone()]), "the same addresses: no change");
        assert_eq!(peer(&table, &id).addresses, vec![moved]);
        assert_eq!(peer(&table, &id).penalty, 1.0, "moving keeps the penalties");
        assert!(!table.set_addresses(&member(3).1, Vec::new()), "no such member");

        let gone = table.remove_member(&id).expect("a member");
        assert_eq!(gone, Disconnected { key, was_confirmed: true });
        assert_eq!((table.len(), table.id_of(&key), table.key_of(&id)), (1, None, None));
        assert!(table.remove_member(&id).is_none(), "removed once");
        assert!(table.confirmed_keys().is_empty());
        let (_, unconfirmed) = member(2);
        assert_eq!(table.remove_member(&unconfirmed).map(|gone| gone.was_confirmed), Some(false));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn sync_budgets_are_per_member() {
        let now = Instant::now();
        let mut table = table(now);
        let (one, two) = (member(1).1, member(2).1);
        assert!(table.try_sync_request(&one, now) && table.try_sync_request(&one, now));
        assert!(!table.try_sync_request(&one, now), "a burst of two");
        assert!(table.try_sync_request(&two, now), "another member's budget is its own");
        assert!(!table.try_sync_request(&member(3).1, now));
        assert!(table.try_sync_request(&one, now + Duration::from_secs(1)));
    }
}
