//! The federation's roster (docs/PROTOCOL.md §4): who the members are, with which keys, under
//! which limits, epoch and secret; its canonical body and hash; the governance signatures that
//! carry it from one version to the next; and the only two ways to a [`VerifiedRoster`]:
//! [`verify_founding`] (a roster installed by hand, signed by all its members) and
//! [`verify_successor`] (version + 1, signed by at least k current members).

mod conflict;
mod key_change;
mod record;
mod seal;
mod wire;

use std::collections::{BTreeMap, BTreeSet};

use crate::keys::{PublicKey, SigningKey};
use crate::types::FederationId;

pub use conflict::{
    MAX_ROSTER_CONFLICT_BYTES, RosterConflict, decode_roster_conflict, verify_conflict,
};
pub use key_change::{FinalHead, KEY_CHANGE_CONTEXT, KeyChange};
pub use record::{
    MAX_MEMBER_RECORD_BYTES, MAX_RECORD_ADDRESS_BYTES, MAX_RECORD_ADDRESSES,
    MAX_RECORD_CONTACT_CHARS, MEMBER_RECORD_CONTEXT, MemberRecord, SignedMemberRecord,
};
pub use seal::{
    MAX_SEALED_SECRET_BYTES, SEAL_CONTEXT, SECRET_FINGERPRINT_CONTEXT, SealError, SealedSecret,
    open_secret, seal_secret, secret_fingerprint, secret_fingerprint_phone_form,
};

/// Domain of the roster hash: `BLAKE3-derive_key(ROSTER_HASH_CONTEXT, canonical body)`.
pub const ROSTER_HASH_CONTEXT: &str = "crossmatch roster v2";

/// Prefix of the message a governance key signs: `ROSTER_SIGNATURE_CONTEXT || roster hash`.
pub const ROSTER_SIGNATURE_CONTEXT: &str = "crossmatch roster signature v1";

/// Largest wire form of a signed roster. 256 members with 32-character names, one retired key
/// each with its key change (and its final head), and a signature of every member take about
/// 140 KiB; 256 KiB leaves room. A roster whose wire form would be larger is refused by the verify functions
/// (so it is never adopted and never has to be sent).
pub const MAX_ROSTER_BYTES: usize = 256 * 1024;

/// Most members in one roster.
pub const MAX_MEMBERS: usize = 256;

/// Longest member id, in bytes (ASCII letters, digits, `-` and `_`).
pub const MAX_MEMBER_ID_BYTES: usize = 32;

/// Longest member name, in characters.
pub const MAX_MEMBER_NAME_CHARS: usize = 128;

/// Most earlier node keys a member keeps matchable after routine key changes.
pub const MAX_RETIRED_NODE_KEYS: usize = 4;

/// Most signatures and most key changes one signed roster carries.
pub const MAX_ROSTER_SIGNATURES: usize = 2 * MAX_MEMBERS;

/// Most key changes one signed roster carries: one per retired key.
pub const MAX_KEY_CHANGES: usize = MAX_MEMBERS * MAX_RETIRED_NODE_KEYS;

/// Range of `max_retention_days`: the protocol's ceiling is 400 days (`limits::MAX_RETENTION_MS`).
pub const MAX_RETENTION_DAYS: u32 = 400;

/// Longest grace period of a rotation: the longest retention, after which every entry of the
/// previous epoch has expired anyway.
pub const MAX_GRACE_MS: u64 = crate::limits::MAX_RETENTION_MS;

/// Whether `id` is a valid member id: 1 to 32 of `A-Z a-z 0-9 - _`.
pub fn is_valid_member_id(id: &str) -> bool {
    (1..=MAX_MEMBER_ID_BYTES).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One member as the roster lists it. Addresses and contacts are not here: they are in the
/// member's own signed record ([`SignedMemberRecord`]), so an address change needs no
/// governance signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterMember {
    /// The member's id, e.g. `DE`: 1 to 32 of `A-Z a-z 0-9 - _`.
    pub id: String,
    /// A human name, at most 128 characters.
    pub name: String,
    /// The node key: signs the member's batches, key changes and member records; its mesh
    /// identity.
    pub node_key: PublicKey,
    /// The governance key: signs roster versions; kept offline.
    pub governance_key: PublicKey,
    /// The X25519 key the secret is sealed to: the conversion of `node_key`
    /// ([`PublicKey::to_x25519`]), listed so tools need not convert.
    pub sealing_key: [u8; 32],
    /// Earlier node keys of routine key changes, whose feeds stay matchable (at most 4).
    pub retired_node_keys: Vec<PublicKey>,
}

/// What a roster says about a change of epoch and secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The epoch before this one.
    pub previous_epoch: u32,
    /// The fingerprint of the previous epoch's secret.
    pub previous_secret_fingerprint: [u8; 32],
    /// When every node changes over to the new epoch (Unix ms).
    pub changeover_at_ms: u64,
    /// How long after the changeover entries of the previous epoch are still kept (ms).
    pub grace_ms: u64,
}

/// The roster's body: everything the governance signatures cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterBody {
    /// The federation's id, random, fixed for its life.
    pub federation_id: FederationId,
    /// The roster's version, from 1; each successor is exactly one more.
    pub version: u64,
    /// The token epoch in force, from 1.
    pub epoch: u32,
    /// When the roster expires (Unix ms): past it, nodes alarm until a successor arrives.
    pub expires_at_ms: u64,
    /// k: how many current members' governance signatures a successor needs (`2k > n`, `k <= n`).
    pub threshold: u32,
    /// The longest any entry may be kept, in days (1 ..= 400).
    pub max_retention_days: u32,
    /// Each origin's daily quota of entries at every peer.
    pub quota_entries_per_day: u64,
    /// Each origin's daily quota of bytes at every peer.
    pub quota_bytes_per_day: u64,
    /// [`secret_fingerprint`] of the current epoch's secret.
    pub secret_fingerprint: [u8; 32],
    /// The change of epoch this roster carries out, if any.
    pub rotation: Option<Rotation>,
    /// The members, sorted by id (1 ..= 256).
    pub members: Vec<RosterMember>,
}

/// One governance signature: the signer's member id and its Ed25519 signature over
/// `ROSTER_SIGNATURE_CONTEXT || roster hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernanceSignature {
    /// The id of the member whose governance key signed.
    pub member: String,
    /// The signature.
    pub signature: [u8; 64],
}

/// A roster body with the signatures and key changes it travels with. Not trusted until
/// [`verify_founding`] or [`verify_successor`] made a [`VerifiedRoster`] of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRoster {
    /// The body.
    pub body: RosterBody,
    /// Governance signatures, in any order (nodes hold different sets).
    pub signatures: Vec<GovernanceSignature>,
    /// The key changes behind the body's retired node keys.
    pub key_changes: Vec<KeyChange>,
}

/// A roster that passed [`verify_founding`] or [`verify_successor`]: the only form a node
/// adopts. No other constructor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRoster {
    signed: SignedRoster,
    hash: [u8; 32],
}

/// Why a roster, a key change, a member record or a conflict is refused. Messages name member
/// ids and numbers, never key or signature bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterProblem {
    /// Larger than its wire limit.
    #[error("larger than its wire limit")]
    TooLarge,
    /// Not the deterministic CBOR of the expected shape.
    #[error("wire form: {0} missing, unknown, of the wrong type or out of range")]
    BadWireForm(&'static str),
    /// A key is not a usable Ed25519 public key (not a point, or weak).
    #[error("a roster key is not a usable ed25519 public key")]
    BadKey,
    /// A member id is not 1 to 32 of `A-Z a-z 0-9 - _`.
    #[error("a member id is not 1 to {MAX_MEMBER_ID_BYTES} of A-Z a-z 0-9 - _")]
    BadMemberId,
    /// Members are not sorted by id, or an id appears twice.
    #[error("members are not sorted by id, or an id appears twice")]
    MembersNotSorted,
    /// No members, or more than [`MAX_MEMBERS`].
    #[error("a roster lists 1 to {MAX_MEMBERS} members")]
    MemberCount,
    /// A member's name is longer than [`MAX_MEMBER_NAME_CHARS`].
    #[error("member {0}: name longer than {MAX_MEMBER_NAME_CHARS} characters")]
    NameTooLong(String),
    /// An Ed25519 key appears twice in the roster (node, governance and retired keys together).
    #[error("member {0}: a key that the roster lists already")]
    DuplicateKey(String),
    /// The sealing key is not the conversion of the node key.
    #[error("member {0}: the sealing key is not the conversion of the node key")]
    SealingKeyMismatch(String),
    /// More than [`MAX_RETIRED_NODE_KEYS`] retired node keys.
    #[error("member {0}: more than {MAX_RETIRED_NODE_KEYS} retired node keys")]
    TooManyRetiredKeys(String),
    /// The threshold breaks `2k > n` or `k <= n`.
    #[error("threshold {threshold} for {members} members: needs 2k > n and k <= n")]
    BadThreshold {
        /// k.
        threshold: u32,
        /// n.
        members: usize,
    },
    /// Version or epoch 0, retention outside 1 ..= 400 days, a zero quota.
    #[error("body field {0} out of range")]
    OutOfRange(&'static str),
    /// The rotation does not fit the epoch and secret (previous epoch not below the epoch,
    /// same fingerprint, grace too long).
    #[error("the rotation does not fit the roster's epoch and secret")]
    BadRotation,
    /// Not the federation of the current roster (or of the record, key change, seal).
    #[error("another federation")]
    WrongFederation,
    /// Not exactly the current version + 1.
    #[error("version {next} does not follow version {current}")]
    NotNextVersion {
        /// The current version.
        current: u64,
        /// The offered version.
        next: u64,
    },
    /// Too few valid signatures of the members that must sign.
    #[error("{have} valid governance signatures of {need} needed")]
    MissingSignatures {
        /// Distinct members whose signature verified.
        have: usize,
        /// Signatures needed.
        need: usize,
    },
    /// The epoch went back, or changed without a rotation naming the current epoch and
    /// secret, or the secret changed without a new epoch.
    #[error("epoch or secret changed without a rotation that follows the current roster")]
    BadEpochChange,
    /// A retired node key is not one of the member's earlier node keys, or has no signed
    /// key change behind it.
    #[error("member {0}: a retired node key without a key change signed by old and new key")]
    UnbackedRetiredKey(String),
    /// A key change whose signatures do not verify.
    #[error("member {0}: key change not signed by both the old and the new key")]
    BadKeyChange(String),
    /// A member record or key change names a member the roster lacks.
    #[error("member {0} is not on the roster")]
    UnknownMember(String),
    /// A member record's signature does not verify under the member's node key.
    #[error("member {0}: record not signed by the member's node key")]
    BadRecordSignature(String),
    /// A member record no newer than the one held.
    #[error("member {member}: record seq {seq} is not above the held {held}")]
    StaleRecord {
        /// The member.
        member: String,
        /// The offered seq.
        seq: u64,
        /// The held seq.
        held: u64,
    },
    /// A member record over its bounds.
    #[error("member record over its bounds: {0}")]
    RecordBounds(&'static str),
    /// The two rosters are not a conflict (same roster, other versions or federations).
    #[error("the two rosters are not two different successors of one version")]
    NotAConflict,
}

impl RosterBody {
    /// The deterministic CBOR of the body: what the hash covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        crate::cbor::encode(&wire::body_value(self))
    }

    /// The roster hash: `BLAKE3-derive_key("crossmatch roster v2", canonical body)`.
    pub fn hash(&self) -> [u8; 32] {
        blake3::derive_key(ROSTER_HASH_CONTEXT, &self.canonical_bytes())
    }

    /// The member with this id.
    pub fn member(&self, id: &str) -> Option<&RosterMember> {
        self.members.binary_search_by(|m| m.id.as_str().cmp(id)).ok().map(|i| &self.members[i])
    }

    /// Checks the body's own rules (§4.3): ids, order, names, distinct keys, sealing keys,
    /// retired keys, threshold, ranges and rotation. Time and signatures are not judged here.
    pub fn validate(&self) -> Result<(), RosterProblem> {
        if self.version == 0 {
            return Err(RosterProblem::OutOfRange("version"));
        }
        if self.epoch == 0 {
            return Err(RosterProblem::OutOfRange("epoch"));
        }
        if !(1..=MAX_RETENTION_DAYS).contains(&self.max_retention_days) {
            return Err(RosterProblem::OutOfRange("max_retention_days"));
        }
        if self.quota_entries_per_day == 0 {
            return Err(RosterProblem::OutOfRange("quota_entries_per_day"));
        }
        if self.quota_bytes_per_day == 0 {
            return Err(RosterProblem::OutOfRange("quota_bytes_per_day"));
        }
        let n = self.members.len();
        if !(1..=MAX_MEMBERS).contains(&n) {
            return Err(RosterProblem::MemberCount);
        }
        let k = self.threshold as usize;
        if 2 * k <= n || k > n {
            return Err(RosterProblem::BadThreshold { threshold: self.threshold, members: n });
        }
        if let Some(rotation) = &self.rotation
            && (rotation.previous_epoch == 0
                || rotation.previous_epoch >= self.epoch
                || rotation.previous_secret_fingerprint == self.secret_fingerprint
                || rotation.grace_ms > MAX_GRACE_MS)
        {
            return Err(RosterProblem::BadRotation);
        }
        let mut keys = BTreeSet::new();
        for (index, member) in self.members.iter().enumerate() {
            if !is_valid_member_id(&member.id) {
                return Err(RosterProblem::BadMemberId);
            }
            if index > 0 && self.members[index - 1].id.as_str() >= member.id.as_str() {
                return Err(RosterProblem::MembersNotSorted);
            }
            if member.name.chars().count() > MAX_MEMBER_NAME_CHARS {
                return Err(RosterProblem::NameTooLong(member.id.clone()));
            }
            if member.retired_node_keys.len() > MAX_RETIRED_NODE_KEYS {
                return Err(RosterProblem::TooManyRetiredKeys(member.id.clone()));
            }
            if member.sealing_key != member.node_key.to_x25519() {
                return Err(RosterProblem::SealingKeyMismatch(member.id.clone()));
            }
            let all = [member.node_key, member.governance_key]
                .into_iter()
                .chain(member.retired_node_keys.iter().copied());
            for key in all {
                if !keys.insert(key.to_bytes()) {
                    return Err(RosterProblem::DuplicateKey(member.id.clone()));
                }
            }
        }
        Ok(())
    }
}

/// The message a governance key signs for a roster hash.
fn signature_message(hash: &[u8; 32]) -> Vec<u8> {
    [ROSTER_SIGNATURE_CONTEXT.as_bytes(), hash].concat()
}

/// Signs a roster body with a member's governance key (§4.2). The tools sign only bodies they
/// checked, and never a second, different body of one version.
pub fn sign_roster(
    body: &RosterBody,
    member: &str,
    governance_key: &SigningKey,
) -> GovernanceSignature {
    GovernanceSignature {
        member: member.to_owned(),
        signature: governance_key.sign(&signature_message(&body.hash())),
    }
}

impl SignedRoster {
    /// The deterministic CBOR wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        crate::cbor::encode(&wire::signed_value(self))
    }

    /// Decodes a wire form with the strict decoder, refusing anything over
    /// [`MAX_ROSTER_BYTES`], any other encoding, and unknown fields. Checks shapes and keys
    /// only: the body's rules and the signatures are the verify functions'.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, RosterProblem> {
        if bytes.len() > MAX_ROSTER_BYTES {
            return Err(RosterProblem::TooLarge);
        }
        let value = crate::cbor::decode(bytes).map_err(|_| RosterProblem::BadWireForm("cbor"))?;
        wire::signed_from_value(&value)
    }

    /// The roster hash of the body.
    pub fn hash(&self) -> [u8; 32] {
        self.body.hash()
    }

    /// Adds a signature, replacing an earlier one of the same member; keeps them sorted by
    /// member id.
    pub fn add_signature(&mut self, signature: GovernanceSignature) {
        self.signatures.retain(|s| s.member != signature.member);
        self.signatures.push(signature);
        self.signatures.sort_by(|a, b| a.member.cmp(&b.member));
    }
}

/// A roster is adopted only if its wire form fits [`MAX_ROSTER_BYTES`], so every node can
/// send what it adopted.
fn check_size(roster: &SignedRoster) -> Result<(), RosterProblem> {
    if roster.to_wire().len() > MAX_ROSTER_BYTES {
        return Err(RosterProblem::TooLarge);
    }
    Ok(())
}

/// The distinct members of `signers` (id → governance key) whose signature over `hash`
/// verifies; signatures of anyone else, or that do not verify, do not count.
fn valid_signers(
    signatures: &[GovernanceSignature],
    hash: &[u8; 32],
    signers: &BTreeMap<&str, PublicKey>,
) -> usize {
    let message = signature_message(hash);
    let mut counted = BTreeSet::new();
    for signature in signatures {
        let member = signature.member.as_str();
        if counted.contains(member) {
            continue;
        }
        if let Some(key) = signers.get(member)
            && key.verify_strict(&message, &signature.signature)
        {
            counted.insert(member);
        }
    }
    counted.len()
}

/// Checks a roster installed by hand (version 1, or the first roster a node ever runs): the
/// body's rules, every retired key backed by a key change, and a valid signature of **every**
/// member's governance key. The clock is not judged: validity is structure and signatures
/// alone, and [`VerifiedRoster::expired`] is what a node asks of the time.
pub fn verify_founding(roster: &SignedRoster) -> Result<VerifiedRoster, RosterProblem> {
    let body = &roster.body;
    body.validate()?;
    check_size(roster)?;
    for member in &body.members {
        for retired in &member.retired_node_keys {
            if backing_change(roster, member, retired).is_none() {
                return Err(RosterProblem::UnbackedRetiredKey(member.id.clone()));
            }
        }
    }
    let hash = body.hash();
    let signers = body.members.iter().map(|m| (m.id.as_str(), m.governance_key)).collect();
    let have = valid_signers(&roster.signatures, &hash, &signers);
    if have < body.members.len() {
        return Err(RosterProblem::MissingSignatures { have, need: body.members.len() });
    }
    Ok(VerifiedRoster { signed: roster.clone(), hash })
}

/// Checks a successor of the adopted roster `current` (§4.4): same federation, version + 1,
/// the body's rules, an epoch change that follows `current`, retired keys backed by key
/// changes, and valid signatures of at least `current.threshold` distinct members of `current`
/// (signatures of anyone else, or that do not verify, do not count and do not make the roster
/// invalid). The clock is not judged (see [`VerifiedRoster::expired`]).
pub fn verify_successor(
    current: &VerifiedRoster,
    next: &SignedRoster,
) -> Result<VerifiedRoster, RosterProblem> {
    let hash = check_successor(current, next)?;
    Ok(VerifiedRoster { signed: next.clone(), hash })
}

/// The checks of [`verify_successor`], which conflicts are judged by too. Returns the
/// successor's hash.
fn check_successor(
    current: &VerifiedRoster,
    next: &SignedRoster,
) -> Result<[u8; 32], RosterProblem> {
    let (old, new) = (current.body(), &next.body);
    if new.federation_id != old.federation_id {
        return Err(RosterProblem::WrongFederation);
    }
    if Some(new.version) != old.version.checked_add(1) {
        return Err(RosterProblem::NotNextVersion { current: old.version, next: new.version });
    }
    new.validate()?;
    check_size(next)?;
    check_epoch_change(old, new)?;
    for member in &new.members {
        check_retired_keys(current.signed(), old.member(&member.id), member, next)?;
    }
    let hash = new.hash();
    let signers = old.members.iter().map(|m| (m.id.as_str(), m.governance_key)).collect();
    let have = valid_signers(&next.signatures, &hash, &signers);
    let need = old.threshold as usize;
    if have < need {
        return Err(RosterProblem::MissingSignatures { have, need });
    }
    Ok(hash)
}

/// The epoch never goes back; a new epoch comes with a rotation naming the current epoch and
/// secret; the secret changes only with the epoch; a rotation kept over versions of one epoch
/// keeps naming the same previous epoch and secret.
fn check_epoch_change(old: &RosterBody, new: &RosterBody) -> Result<(), RosterProblem> {
    let follows = if new.epoch == old.epoch {
        new.secret_fingerprint == old.secret_fingerprint
            && match (&new.rotation, &old.rotation) {
                (None, _) => true,
                (Some(next), Some(prev)) => {
                    next.previous_epoch == prev.previous_epoch
                        && next.previous_secret_fingerprint == prev.previous_secret_fingerprint
                }
                (Some(_), None) => false,
            }
    } else {
        new.epoch > old.epoch
            && new.rotation.is_some_and(|rotation| {
                rotation.previous_epoch == old.epoch
                    && rotation.previous_secret_fingerprint == old.secret_fingerprint
            })
    };
    if follows { Ok(()) } else { Err(RosterProblem::BadEpochChange) }
}

/// The key change in `roster` that backs `member`'s retired key `retired`: of this member and
/// federation, from `retired` to one of the member's later keys (its node key or another
/// retired key, for a chain of changes), signed by both.
fn backing_change<'a>(
    roster: &'a SignedRoster,
    member: &RosterMember,
    retired: &PublicKey,
) -> Option<&'a KeyChange> {
    let later = |key: &PublicKey| *key == member.node_key || member.retired_node_keys.contains(key);
    roster.key_changes.iter().find(|change| {
        change.member == member.id
            && change.federation_id == roster.body.federation_id
            && change.old_key == *retired
            && later(&change.new_key)
            && change.verify().is_ok()
    })
}

/// A successor's retired keys of `member`: those the member had retired already, and its
/// current node key when the successor changes it. Every one is backed by a key change signed
/// by the old and the new key **carried in the successor itself** (§4.5): a roster is
/// self-contained, so a node that installs it by hand, or catches up over several versions,
/// finds each retired key's final head in it. A key change may be dropped only with its retired
/// key; one carried forward is the very key change of `current` (its final head cannot move).
/// A node key that changes without a key change is a removal plus an addition: the old key may
/// not be listed.
fn check_retired_keys(
    current: &SignedRoster,
    previous: Option<&RosterMember>,
    member: &RosterMember,
    next: &SignedRoster,
) -> Result<(), RosterProblem> {
    let unbacked = || RosterProblem::UnbackedRetiredKey(member.id.clone());
    for retired in &member.retired_node_keys {
        let Some(previous) = previous else {
            return Err(unbacked());
        };
        let change = backing_change(next, member, retired).ok_or_else(unbacked)?;
        if previous.retired_node_keys.contains(retired) {
            // Carried forward: the same key change as the current roster's.
            let before = backing_change(current, previous, retired);
            if before.is_some_and(|before| before != change) {
                return Err(unbacked());
            }
            continue;
        }
        let is_routine_change = *retired == previous.node_key
            && member.node_key != previous.node_key
            && change.new_key == member.node_key;
        if !is_routine_change {
            return Err(unbacked());
        }
    }
    Ok(())
}

impl SignedRoster {
    /// Where each of `member`'s retired node keys' feeds ends: the final head of the key change
    /// (carried in this roster) that backs it. A retired key without a backing key change is
    /// left out (and a verified roster has none).
    pub fn retired_heads(&self, member: &RosterMember) -> Vec<(PublicKey, Option<FinalHead>)> {
        member
            .retired_node_keys
            .iter()
            .filter_map(|key| backing_change(self, member, key).map(|c| (*key, c.final_head)))
            .collect()
    }
}

impl VerifiedRoster {
    /// The signed roster as verified.
    pub fn signed(&self) -> &SignedRoster {
        &self.signed
    }

    /// The body.
    pub fn body(&self) -> &RosterBody {
        &self.signed.body
    }

    /// The roster hash.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The governance signatures it came with (not all need be valid: only enough were).
    pub fn signatures(&self) -> &[GovernanceSignature] {
        &self.signed.signatures
    }

    /// The wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        self.signed.to_wire()
    }

    /// Whether the roster has expired at `now_ms` (its `expires_at` is not after it). Expiry
    /// is not a rule of validity: a node runs on an expired roster, alarmed, until a successor
    /// comes.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.body().expires_at_ms <= now_ms
    }

    /// Every key whose feed is accepted: each member's node key and retired node keys.
    pub fn origin_keys(&self) -> impl Iterator<Item = PublicKey> + '_ {
        self.body()
            .members
            .iter()
            .flat_map(|m| std::iter::once(m.node_key).chain(m.retired_node_keys.iter().copied()))
    }

    /// The key change that backs a member's retired node key `retired` (its final head says
    /// where the retired key's feed ends), if `retired` is one.
    pub fn key_change_of(&self, retired: &PublicKey) -> Option<&KeyChange> {
        let member = self.body().members.iter().find(|m| m.retired_node_keys.contains(retired))?;
        backing_change(&self.signed, member, retired)
    }

    /// The member whose node key or retired node key is `key`.
    pub fn member_of_origin(&self, key: &PublicKey) -> Option<&RosterMember> {
        self.body().members.iter().find(|m| m.node_key == *key || m.retired_node_keys.contains(key))
    }
}

impl crate::batch::OriginKeys for VerifiedRoster {
    fn origin_key(&self, kid: &[u8; 32]) -> Option<PublicKey> {
        self.origin_keys().find(|key| key.to_bytes() == *kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids() {
        for good in ["DE", "a", "unit-7_b", &"X".repeat(32)] {
            assert!(is_valid_member_id(good), "{good}");
        }
        for bad in ["", "D E", "DÉ", "de/1", &"X".repeat(33)] {
            assert!(!is_valid_member_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_signed_message_is_the_domain_then_the_hash() {
        let hash = [7u8; 32];
        let message = signature_message(&hash);
        assert_eq!(&message[..ROSTER_SIGNATURE_CONTEXT.len()], ROSTER_SIGNATURE_CONTEXT.as_bytes());
        assert_eq!(&message[ROSTER_SIGNATURE_CONTEXT.len()..], &hash);
    }
}
