//! The federation's signed roster in the running node (docs/PROTOCOL.md §4): the roster this
//! node adopted (a `VerifiedRoster`, made only by `verify_founding` or `verify_successor`) and
//! the members' signed records, persisted under the store's `V` and `W`.
//!
//! - At start ([`SignedRosters::open`]): a store with no roster adopts the given roster (the
//!   config's roster file) with `verify_founding`; otherwise the stored chain is checked again
//!   from its first version (every rule but expiry, judged when it was adopted) and its latest
//!   version wins over a given roster of an older or equal version; a given roster exactly one
//!   version ahead is verified as a successor and adopted; one further ahead is logged and the
//!   node starts on its stored roster (it catches up from peers). So a stored roster is never
//!   rolled back.
//! - At run time ([`Node::adopt_roster`], one adoption at a time): the step is checked with
//!   `verify_successor`, persisted durably, audited (`adopt_roster`), and then made the node's
//!   member set with [`Node::apply_membership`]; a chain of versions is adopted in turn.
//! - A roster past its `expires_at` is an alarm (`/readyz` degraded, `GET /v1/roster`), never a
//!   stop.
//!
//! A node given no roster (a local federation built in memory) runs without one: it changes
//! members only through [`Node::apply_membership`].

mod conflict;
mod epochs;
mod records;
mod removal;
mod stored;
mod sync;
mod view;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crossmatch_protocol::{
    PublicKey, RosterConflict, RosterProblem, SignedMemberRecord, SignedRoster, VerifiedRoster,
    verify_founding, verify_successor,
};

use self::epochs::EpochChain;
pub use self::records::MemberRecordCounts;
use self::records::{dialable, usable};
use self::removal::carry_unrotated_removal;
use self::stored::{choose, load_stored_chain};
pub use self::view::{RosterMemberView, RosterView};
use super::membership::{Membership, MembershipMember};
use super::{Error, ErrorKind, Node, Result, Settings};
use crate::engine::Engine;
use crate::store::{self, Store};

/// Most stored rosters read per page when the stored chain is checked at start.
const STORED_PAGE: usize = 64;

/// Most addresses kept per member that has no signed record (config and introductions).
const MAX_KNOWN_ADDRESSES: usize = crossmatch_protocol::MAX_RECORD_ADDRESSES;

/// The roster a node is given at start (its config's roster file) and the members' records
/// that came with it.
#[derive(Debug, Clone)]
pub struct GivenRoster {
    /// The signed roster.
    pub roster: SignedRoster,
    /// The members' own signed records (addresses, contact).
    pub records: Vec<SignedMemberRecord>,
    /// The node's own bound on retention (its config's `max_retention_days`, in ms): the
    /// adopted roster's `max_retention_days` applies up to it.
    pub max_retention_ms: u64,
    /// What this node announces of itself, (addresses, contact): its config's
    /// `announce_addresses` and `contact`. When they differ from its newest held record, the
    /// node signs a new one at start (`daemon/roster/records/own.rs`); `None`: it signs none.
    pub announce: Option<(Vec<String>, String)>,
}

/// Why a roster was not adopted. Messages name versions and rules, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// The roster breaks a rule of the protocol (signatures, body, expiry, federation).
    #[error("roster refused: {0}")]
    Invalid(#[from] RosterProblem),
    /// The roster is older than the adopted one: a replay, never adopted.
    #[error("roster version {offered} is older than the adopted version {current}")]
    Stale {
        /// The version offered.
        offered: u64,
        /// The version adopted.
        current: u64,
    },
    /// A proved conflict (two valid rosters of this version) forbids adopting any roster of
    /// it: the node keeps running the version before.
    #[error(
        "roster version {version} is contested: two valid rosters of it are proved, so this node adopts neither and keeps running the version before"
    )]
    Forked {
        /// The contested version.
        version: u64,
    },
    /// Another roster of the adopted version, with another hash.
    #[error("another roster of version {version} is adopted already")]
    Conflicting {
        /// The contested version.
        version: u64,
    },
    /// The roster skips versions: the versions between must be adopted first.
    #[error("roster version {offered} does not follow the adopted version {current}")]
    Ahead {
        /// The version offered.
        offered: u64,
        /// The version adopted.
        current: u64,
    },
    /// A member record's address is not a multiaddr the mesh can dial: the record is refused
    /// before anything is stored.
    #[error(
        "member record refused: address {index} is not a multiaddr such as /dns4/host/tcp/7400"
    )]
    BadAddress {
        /// Its position in the record's addresses.
        index: usize,
    },
    /// The given roster names another federation than the stored chain.
    #[error(
        "the given roster is of another federation than the rosters this node stored; start it with its own federation's roster file (or a fresh data directory)"
    )]
    OtherFederation,
    /// The roster does not list this node's key.
    #[error("the roster does not list this node's key")]
    NotOnRoster,
    /// At start, the roster the node would run (the stored latest, or the given one) does not
    /// list this node's key: typically a node restarted under its new key with a roster file
    /// more than one version ahead of its store.
    #[error(
        "the roster this node would run (version {version}) does not list this node's key; after a node key change, when version {next} is the one that names the new key, start it with that version's roster file first (a node takes at start a roster file at most one version ahead of the one it holds), then with the newest; otherwise run it with its old node key until it has adopted the version before the key change"
    )]
    NotOnRosterAtStart {
        /// The version the node would run.
        version: u64,
        /// The version after it, whose roster file it should be started with.
        next: u64,
    },
    /// The roster is valid but its `expires_at` has passed: not adopted at run time.
    #[error("roster version {version} has expired")]
    Expired {
        /// The version offered.
        version: u64,
    },
    /// The node runs without a signed roster.
    #[error("this node runs without a signed roster")]
    NoRoster,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The node failed (the audit log, the engine, the mesh) or is stopping.
    #[error(transparent)]
    Node(Box<Error>),
}

impl RosterError {
    /// What the refusal means to a caller.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RosterError::Invalid(_)
            | RosterError::NotOnRoster
            | RosterError::NotOnRosterAtStart { .. }
            | RosterError::BadAddress { .. }
            | RosterError::OtherFederation => ErrorKind::Invalid,
            RosterError::Stale { .. }
            | RosterError::Conflicting { .. }
            | RosterError::Forked { .. }
            | RosterError::Ahead { .. }
            | RosterError::Expired { .. }
            | RosterError::NoRoster => ErrorKind::Conflict,
            RosterError::Store(_) => ErrorKind::Store,
            RosterError::Node(error) => error.kind(),
        }
    }
}

/// What [`Node::adopt_roster`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adoption {
    /// The version the node runs now.
    pub version: u64,
    /// Its roster hash.
    pub hash: [u8; 32],
    /// Whether this call adopted it (false: it was the adopted roster already).
    pub adopted: bool,
}

#[derive(Debug, Clone)]
struct Held {
    current: VerifiedRoster,
    /// The version before `current`, verified (from the stored chain at start, or the roster
    /// held before an adoption at run time); `None` when the node holds no version before
    /// (founded on `current`). What a roster of `current`'s version with another hash is
    /// checked against as a conflict, with no walk of the stored chain.
    previous: Option<VerifiedRoster>,
    /// The newest verified record per member id (members of `current` only).
    records: BTreeMap<String, SignedMemberRecord>,
    /// The epoch a member was removed under without rotation (`daemon/roster/removal.rs`):
    /// the `removal_without_rotation` alarm while `current` runs it.
    unrotated_removal: Option<u32>,
    /// The epochs of the adopted chain up to `current` (`daemon/roster/epochs.rs`): what the
    /// rotation wait reads, with no walk of the stored chain.
    epochs: Arc<EpochChain>,
}

/// The node's signed roster and its members' records.
#[derive(Debug)]
pub(super) struct SignedRosters {
    store: Store,
    held: RwLock<Option<Arc<Held>>>,
    /// Addresses of members without a record: the config's, and those the node was introduced
    /// to (bounded per member).
    known_addresses: RwLock<HashMap<[u8; 32], Vec<String>>>,
    /// One adoption at a time, so the store, the audit log and the member set take versions in
    /// order.
    adopting: tokio::sync::Mutex<()>,
    /// Whether the expiry of the adopted roster was logged already.
    expiry_logged: AtomicBool,
    /// The node's own bound on retention (ms), which the adopted roster's applies up to.
    retention_cap_ms: u64,
    /// The first roster conflict proved (two valid successors of one version): the alarm;
    /// persisted under `V` and loaded again at start.
    conflict: RwLock<Option<RosterConflict>>,
    /// One conflict kept at a time, so the stored pair is the held one.
    keeping_conflict: tokio::sync::Mutex<()>,
    /// Rosters of the adopted version with another hash, judged no conflict already (by hash),
    /// so a peer serving one is not asked for it and checked again at every pull. Bounded.
    judged_not_conflicting: Mutex<HashSet<[u8; 32]>>,
    /// This node's key, its announced details and whether its own record awaits gossip
    /// (`daemon/roster/records/own.rs`).
    own: records::OwnRecordState,
    /// Each member's pace of new records taken from the mesh, and what was done with those
    /// offered (`daemon/roster/records/pace.rs`).
    pace: records::RecordPace,
    /// The roster head each peer had when it was last asked `roster_conflict`
    /// (`roster/conflict/evidence.rs`): asked again only when it changed, it announced a
    /// conflict, or it connected again. Bounded.
    conflict_asked: Mutex<HashMap<crate::mesh::PeerKey, super::membership::RosterIdentity>>,
    /// How many rosters this node verified as a step of its chain (founding or successor:
    /// the stored chain at start, a given roster, each adoption).
    verifications: AtomicU64,
}

impl SignedRosters {
    /// The start-time choice (module docs), made on the engine before the node runs: the
    /// chosen roster and the records are persisted durably if new, and the engine's members
    /// become the roster's.
    pub(super) fn open(
        engine: &mut Engine,
        given: Option<GivenRoster>,
        now_ms: u64,
    ) -> Result<Self, Error> {
        let store = engine.store().clone();
        let verifications = AtomicU64::new(0);
        let ((stored, stored_previous, unrotated), mut epochs) =
            load_stored_chain(&store, u64::MAX, &verifications).map_err(roster_error)?;
        let stored_hash = stored.as_ref().map(|stored| *stored.hash());
        let retention_cap_ms = given.as_ref().map_or(u64::MAX, |given| given.max_retention_ms);
        if let (Some(stored), Some(given)) = (&stored, &given)
            && stored.body().federation_id != given.roster.body.federation_id
        {
            return Err(roster_error(RosterError::OtherFederation));
        }
        // A proved conflict of the version after the stored one blocks a given roster of it; one
        // proved of a given roster of the stored version replaces it (stored below).
        let mut conflict = conflict::load_conflict(&store, &verifications);
        let mut txn = store.txn();
        let chosen = match (stored, given.as_ref()) {
            (None, None) => None,
            (None, Some(given)) => {
                verifications.fetch_add(1, Ordering::Relaxed);
                let founding = verify_founding(&given.roster).map_err(roster_error)?;
                txn.put_roster(founding.body().version, founding.to_wire());
                tracing::info!(
                    version = founding.body().version,
                    expired = founding.expired(now_ms),
                    "founding roster adopted"
                );
                Some((founding, None, None))
            }
            (Some(stored), None) => Some((stored, stored_previous, unrotated)),
            (Some(stored), Some(given)) => Some(choose(
                stored,
                stored_previous,
                unrotated,
                &given.roster,
                &mut conflict,
                &mut txn,
                &verifications,
            )),
        };
        let own_record = records::OwnRecordState::new(
            engine.own_public_key(),
            given.as_ref().and_then(|given| given.announce.clone()),
        );
        let Some((current, previous, unrotated_removal)) = chosen else {
            return Ok(Self::new(store, None, retention_cap_ms, None, own_record, verifications));
        };
        let own = engine.own_public_key();
        if !current.body().members.iter().any(|member| member.node_key == own) {
            let version = current.body().version;
            let next = version.saturating_add(1);
            return Err(roster_error(RosterError::NotOnRosterAtStart { version, next }));
        }
        let mut records = BTreeMap::new();
        for (_, wire) in store.member_records().map_err(roster_error)? {
            match SignedMemberRecord::from_wire(&wire) {
                Ok(record) => {
                    keep_record(&current, &mut records, record);
                }
                Err(error) => tracing::warn!(%error, "a stored member record is unreadable"),
            }
        }
        for record in given.into_iter().flat_map(|given| given.records) {
            if keep_record(&current, &mut records, record.clone()) {
                txn.put_member_record(&record.record.member, record.to_wire());
            }
        }
        // This node's own record, signed anew when its announced details changed: stored
        // durably with the rest before the node runs, so its seq never goes backwards.
        if let Some(record) = own_record.sign_if_due(engine, &current, &records)
            && keep_record(&current, &mut records, record.clone())
        {
            txn.put_member_record(&record.record.member, record.to_wire());
        }
        let adopted_at_start = stored_hash != Some(*current.hash());
        if adopted_at_start {
            epochs.push(&current);
            // Adopted from the given roster at start (founding, or the stored one's successor):
            // audited before it is stored, as every adoption is.
            let subject =
                format!("roster:v{}.{}", current.body().version, hex::encode(&current.hash()[..8]));
            engine.audit_by_node_before_write(crate::audit::Action::AdoptRoster, &subject)?;
        }
        txn.commit_durable().map_err(roster_error)?;
        let held = Held { current, previous, records, unrotated_removal, epochs: Arc::new(epochs) };
        engine.set_members(membership_of(&held, &HashMap::new()).engine_members())?;
        // The limits are the adopted roster's, whichever file the node was given.
        engine.set_limits(limits_of(held.current.body(), retention_cap_ms));
        Ok(Self::new(store, Some(held), retention_cap_ms, conflict, own_record, verifications))
    }

    fn new(
        store: Store,
        held: Option<Held>,
        retention_cap_ms: u64,
        conflict: Option<RosterConflict>,
        own: records::OwnRecordState,
        verifications: AtomicU64,
    ) -> Self {
        Self {
            store,
            held: RwLock::new(held.map(Arc::new)),
            known_addresses: RwLock::new(HashMap::new()),
            adopting: tokio::sync::Mutex::new(()),
            expiry_logged: AtomicBool::new(false),
            retention_cap_ms,
            conflict: RwLock::new(conflict),
            keeping_conflict: tokio::sync::Mutex::new(()),
            judged_not_conflicting: Mutex::new(HashSet::new()),
            own,
            pace: records::RecordPace::default(),
            conflict_asked: Mutex::new(HashMap::new()),
            verifications,
        }
    }

    fn held(&self) -> Option<Arc<Held>> {
        self.held.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_held(&self, held: Held) {
        *self.held.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(held));
    }

    /// The adopted roster's version and hash, read together, if the node runs a signed roster.
    pub(super) fn identity(&self) -> Option<(u64, [u8; 32])> {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        held.as_ref().map(|held| (held.current.body().version, *held.current.hash()))
    }

    /// Makes `settings` those of the adopted roster: the roster's version, hash, members and
    /// their addresses (records first, the config's for members without one).
    pub(super) fn settle(&self, mut settings: Settings) -> Settings {
        let mut known = self.known_addresses.write().unwrap_or_else(PoisonError::into_inner);
        for member in &settings.mesh_members {
            let mut addresses = member.addresses.clone();
            addresses.truncate(MAX_KNOWN_ADDRESSES);
            known.insert(member.public_key, addresses);
        }
        let Some(held) = self.held() else { return settings };
        let membership = membership_of(&held, &known);
        settings.roster_version = membership.version;
        settings.roster_hash = membership.roster_hash;
        settings.engine.members = membership.engine_members();
        settings.mesh_members = membership.mesh_members();
        settings
    }

    /// Notes an address the node was introduced to for `member`, used while the member has no
    /// signed record of its own.
    pub(super) fn note_address(&self, member: &PublicKey, address: &str) {
        let mut known = self.known_addresses.write().unwrap_or_else(PoisonError::into_inner);
        // Bounded: a roster's members, and as many keys again that may join it.
        if known.len() >= 2 * super::MAX_MEMBERSHIP && !known.contains_key(&member.to_bytes()) {
            return;
        }
        let addresses = known.entry(member.to_bytes()).or_default();
        if !addresses.iter().any(|known| known == address) {
            if addresses.len() >= MAX_KNOWN_ADDRESSES {
                addresses.remove(0);
            }
            addresses.push(address.to_owned());
        }
    }

    /// The addresses noted for `member` (a node key), for `GET /v1/peers`.
    pub(super) fn known_addresses_of(&self, member: &[u8; 32]) -> Vec<String> {
        let known = self.known_addresses.read().unwrap_or_else(PoisonError::into_inner);
        known.get(member).cloned().unwrap_or_default()
    }

    /// The adopted roster, if the node runs a signed roster.
    pub(super) fn current(&self) -> Option<VerifiedRoster> {
        self.held().map(|held| held.current.clone())
    }

    /// The epochs of the adopted chain, up to the adopted roster (`daemon/roster/epochs.rs`):
    /// for the rotations of versions before the held one, read with no verification.
    pub(super) fn epochs(&self) -> Arc<EpochChain> {
        self.held().map(|held| held.epochs.clone()).unwrap_or_default()
    }

    /// The adopted roster's version, if the node runs a signed roster.
    pub(super) fn version(&self) -> Option<u64> {
        self.held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|h| h.current.body().version)
    }
}

/// Keeps `record` if it verifies against `roster` and is newer than the one held for its
/// member; returns whether it was kept.
fn keep_record(
    roster: &VerifiedRoster,
    records: &mut BTreeMap<String, SignedMemberRecord>,
    record: SignedMemberRecord,
) -> bool {
    let held = records.get(&record.record.member).map(|held| held.record.seq);
    match record.verify(roster, held).map_err(RosterError::from).and_then(|()| usable(&record)) {
        Ok(()) => {
            records.insert(record.record.member.clone(), record);
            true
        }
        Err(error) => {
            tracing::debug!(%error, "member record not kept");
            false
        }
    }
}

/// The limits the engine enforces under `body`: its quotas, and its retention up to the
/// node's own bound `cap_ms`.
fn limits_of(body: &crossmatch_protocol::RosterBody, cap_ms: u64) -> crate::engine::EngineLimits {
    crate::engine::EngineLimits {
        max_retention_ms: u64::from(body.max_retention_days)
            .saturating_mul(crate::clock::DAY_MS)
            .min(cap_ms),
        quota_entries_per_day: body.quota_entries_per_day,
        quota_bytes_per_day: body.quota_bytes_per_day,
    }
}

/// The member set of a held roster: contacts and addresses from each member's record, or its
/// name and the addresses known otherwise when it has none.
fn membership_of(held: &Held, known: &HashMap<[u8; 32], Vec<String>>) -> Membership {
    let body = held.current.body();
    Membership {
        version: body.version,
        roster_hash: *held.current.hash(),
        members: body
            .members
            .iter()
            .map(|member| {
                let record = held.records.get(&member.id).map(|record| &record.record);
                MembershipMember {
                    id: member.id.clone(),
                    node_key: member.node_key,
                    retired_node_keys: member.retired_node_keys.clone(),
                    retired_heads: held.current.signed().retired_heads(member),
                    contact: record.map_or_else(|| member.name.clone(), |r| r.contact.clone()),
                    addresses: dialable(record.map(|r| r.addresses.clone()).unwrap_or_else(|| {
                        known.get(&member.node_key.to_bytes()).cloned().unwrap_or_default()
                    })),
                }
            })
            .collect(),
    }
}

fn roster_error(error: impl Into<RosterError>) -> Error {
    Error::Roster(error.into())
}

/// Who adopts a roster, for the audit line.
#[derive(Debug, Clone)]
pub enum Adopter {
    /// An API user (an admin).
    User(String),
    /// The node itself (a roster fetched from peers).
    Node,
}

impl Adopter {
    /// Writes the audit line of `action` on `subject` under this adopter: the user's name, or
    /// the node's.
    pub(super) fn audit(
        self,
        engine: &mut Engine,
        action: crate::audit::Action,
        subject: &str,
    ) -> crate::engine::Result<()> {
        match self {
            Adopter::User(user) => {
                engine.check_space()?;
                engine.audit_hunt(&user, action, subject)
            }
            Adopter::Node => engine.audit_by_node_before_write(action, subject),
        }
    }
}

impl Node {
    /// Adopts `roster` (and the member records that came with it) as the next version: checked
    /// with `verify_successor` against the adopted roster, persisted durably, audited
    /// (`adopt_roster`, under `by`), then made the node's member set with no restart. The
    /// adopted roster again is no change; an older one, another of the adopted version, or one
    /// that skips versions is refused.
    pub async fn adopt_roster(
        &self,
        roster: SignedRoster,
        records: Vec<SignedMemberRecord>,
        by: Adopter,
    ) -> Result<Adoption, RosterError> {
        self.adopt_step(roster, records, by, self.now_ms(), false).await
    }

    /// [`Node::adopt_roster`], with expiry judged at `now_ms` (0 for a version a later one in
    /// the same chain follows: only the chain's last version must not have expired; an expired
    /// roster is refused here, at run time only: one that expired while the node was down is
    /// still adopted at start, alarmed). In a
    /// chain (`in_chain`), a version the node holds already is skipped, judged under the lock.
    ///
    /// The adoption is audited first, then stored durably, then applied; the roster becomes
    /// the held one only once it is applied, so a failed apply leaves the version before in
    /// force everywhere, and the same roster again (posted, or fetched at the next pull)
    /// adopts it anew.
    async fn adopt_step(
        &self,
        roster: SignedRoster,
        records: Vec<SignedMemberRecord>,
        by: Adopter,
        now_ms: u64,
        in_chain: bool,
    ) -> Result<Adoption, RosterError> {
        let _one_at_a_time = self.rosters.adopting.lock().await;
        let held = self.rosters.held().ok_or(RosterError::NoRoster)?;
        let current = held.current.body().version;
        let offered = roster.body.version;
        let unchanged = Adoption { version: current, hash: *held.current.hash(), adopted: false };
        if offered < current {
            if in_chain {
                return Ok(unchanged);
            }
            return Err(RosterError::Stale { offered, current });
        }
        if offered == current {
            if roster.hash() == *held.current.hash() {
                // The adopted roster again: the newer member records that came with it (a
                // roster file) are taken as records, the rest is no change.
                let mut kept = held.records.clone();
                let fresh: Vec<_> = records
                    .into_iter()
                    .filter(|record| keep_record(&held.current, &mut kept, record.clone()))
                    .collect();
                self.store_and_apply_records(&held, fresh).await?;
                return Ok(unchanged);
            }
            self.check_conflict(&held, &roster).await;
            return Err(RosterError::Conflicting { version: current });
        }
        if offered > current.saturating_add(1) {
            return Err(RosterError::Ahead { offered, current });
        }
        if self.rosters.blocks(offered) {
            return Err(RosterError::Forked { version: offered });
        }
        let before = held.current.clone();
        self.rosters.verifications.fetch_add(1, Ordering::Relaxed);
        let next = tokio::task::spawn_blocking(move || verify_successor(&before, &roster))
            .await
            .map_err(|_| node_error(Error::EngineTask))??;
        if next.expired(now_ms) {
            return Err(RosterError::Expired { version: offered });
        }
        let own = self.blocking(|engine| engine.own_public_key()).await.map_err(node_error)?;
        if !next.body().members.iter().any(|member| member.node_key == own) {
            return Err(RosterError::NotOnRoster);
        }
        // Records are judged against the new roster: a removed member's are dropped (and
        // deleted from the store), a member whose node key changed needs a record signed by
        // its new key.
        let mut kept = BTreeMap::new();
        let mut removed = Vec::new();
        for (member, record) in held.records.clone() {
            if keep_record(&next, &mut kept, record) {
                continue;
            }
            let known = next.body().member(&member).is_some();
            tracing::debug!(member_known = known, "member record dropped with the new roster");
            if !known {
                removed.push(member);
            }
        }
        let mut new_records = Vec::new();
        for record in records {
            if keep_record(&next, &mut kept, record.clone()) {
                new_records.push(record);
            }
        }
        let (version, hash) = (offered, *next.hash());
        let subject = format!("roster:v{version}.{}", hex::encode(&hash[..8]));
        self.blocking(move |engine| by.audit(engine, crate::audit::Action::AdoptRoster, &subject))
            .await
            .map_err(node_error)?
            .map_err(|error| node_error(error.into()))?;
        let wire = next.to_wire();
        let store = self.rosters.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut txn = store.txn();
            txn.put_roster(version, wire);
            for record in new_records {
                txn.put_member_record(&record.record.member, record.to_wire());
            }
            for member in removed {
                txn.remove_member_record(&member);
            }
            txn.commit_durable()
        })
        .await
        .map_err(|_| node_error(Error::EngineTask))??;
        let limits = limits_of(next.body(), self.rosters.retention_cap_ms);
        let unrotated_removal =
            carry_unrotated_removal(held.unrotated_removal, &held.current, &next);
        let epochs = Arc::new(held.epochs.with(&next));
        let adopted = Held {
            current: next,
            previous: Some(held.current.clone()),
            records: kept,
            unrotated_removal,
            epochs,
        };
        let membership = {
            let known = self.rosters.known_addresses.read().unwrap_or_else(PoisonError::into_inner);
            membership_of(&adopted, &known)
        };
        self.apply_membership(membership).await.map_err(node_error)?;
        self.blocking(move |engine| engine.set_limits(limits)).await.map_err(node_error)?;
        self.rosters.set_held(adopted);
        self.rosters.expiry_logged.store(false, Ordering::Relaxed);
        tracing::info!(version, "roster adopted");
        self.announce_roster().await;
        // A rotation the roster announces begins now if the node holds its secret.
        self.check_rotation().await;
        Ok(Adoption { version, hash, adopted: true })
    }

    /// Takes a member's signed record (its addresses and contact): verified against the adopted
    /// roster (the member's current node key) and newer than the record held for it, every
    /// address one the mesh can dial, persisted durably under `W`, then applied live (the
    /// member's contact, and its addresses dialled). No governance signatures: a member
    /// changes its own details alone.
    pub async fn adopt_member_record(
        &self,
        record: SignedMemberRecord,
    ) -> Result<u64, RosterError> {
        let _one_at_a_time = self.rosters.adopting.lock().await;
        let held = self.rosters.held().ok_or(RosterError::NoRoster)?;
        let seq = record.record.seq;
        let known = held.records.get(&record.record.member).map(|held| held.record.seq);
        record.verify(&held.current, known)?;
        usable(&record)?;
        self.store_and_apply_records(&held, vec![record]).await?;
        tracing::info!(seq, "member record adopted");
        Ok(seq)
    }

    /// Adopts a chain of rosters in version order, each checked against the one before (only
    /// the last must not have expired: an earlier one is history a later one replaced); the
    /// versions the node holds already are skipped. Stops at the first refusal (the versions
    /// before it stay adopted). `None` when nothing was adopted.
    pub async fn adopt_roster_chain(
        &self,
        chain: Vec<SignedRoster>,
        by: Adopter,
    ) -> Result<Option<Adoption>, RosterError> {
        let mut last = None;
        let count = chain.len();
        for (index, roster) in chain.into_iter().enumerate() {
            let now_ms = if index + 1 == count { self.now_ms() } else { 0 };
            let step = self.adopt_step(roster, Vec::new(), by.clone(), now_ms, true).await?;
            if step.adopted {
                last = Some(step);
            }
        }
        Ok(last)
    }

    /// How many rosters this node verified as a step of its chain since it started (the
    /// stored chain at start, a given roster, each adoption): what a test reads to prove that
    /// waiting verifies nothing again.
    pub fn roster_verifications(&self) -> u64 {
        self.rosters.verifications.load(Ordering::Relaxed)
    }

    /// The wire forms of the adopted rosters from `from_version` on, at most `limit`: those
    /// of the held chain only (none stored beyond the version in force is served).
    pub async fn stored_rosters(&self, from_version: u64, limit: usize) -> Result<Vec<Vec<u8>>> {
        let Some(held) = self.rosters.version() else { return Ok(Vec::new()) };
        let store = self.rosters.store.clone();
        let rosters = tokio::task::spawn_blocking(move || store.rosters_from(from_version, limit))
            .await
            .map_err(|_| Error::EngineTask)?
            .map_err(|error| Error::Roster(error.into()))?;
        Ok(rosters.into_iter().filter(|(version, _)| *version <= held).map(|(_, w)| w).collect())
    }
}

/// A node failure met while adopting, keeping its kind.
fn node_error(error: Error) -> RosterError {
    match error {
        Error::Roster(error) => error,
        other => RosterError::Node(Box::new(other)),
    }
}
