//! crossmatch's wire format, canonical identifiers and tokens: pure code, no I/O, no clock,
//! randomness only when passed in.
//!
//! Everything a member node sends or receives is defined here: signed manifests (COSE_Sign1),
//! entries, batches, chain rules, the federation's roster and sealed secret, the sync protocol's topics, ids and messages, and the
//! canonicalisation and token rules every member must apply identically. See
//! `docs/PROTOCOL.md` for the normative text.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod activity;
mod batch;
mod canon;
mod cbor;
mod chain;
mod entry;
mod feed;
mod fork;
mod keys;
pub mod limits;
mod manifest;
mod roster;
mod sync;
mod token;
mod types;

pub use activity::activity_bucket;
pub use batch::{
    BatchError, BatchPosition, OriginKeys, SignError, VerifiedBatch, claimed_batch,
    claimed_batch_hash, sign_batch, sign_encoded_batch, verify_batch, verify_manifest,
};
pub use canon::{
    CANONICAL_VERSION, CanonError, Canonical, Kind, MAX_INPUT_BYTES, Rule, UnknownKind,
    canonicalize,
};
pub use cbor::CborError;
pub use chain::{ChainHead, ChainState, Position, position};
pub use entry::{
    Add, COMMUNITY_PSEUDONYM_BYTES, ENTRY_DIGEST_CONTEXT, Entry, EntryProblem, Evaluation,
    Handling, Op, Retract, RetractReason, Status, StatusUpdate, Tag, UnknownName, entry_digest,
    is_valid_category,
};
pub use feed::{BatchId, FeedId};
pub use fork::{
    Fork, ForkError, MAX_FORK_EVIDENCE_BYTES, encode_fork_evidence, fork_evidence_manifests,
    verify_fork_evidence,
};
pub use keys::{FINGERPRINT_CONTEXT, Fingerprint, KeyError, PublicKey, SigningKey};
pub use manifest::{
    BATCH_HASH_CONTEXT, ClaimedManifest, EnvelopeError, HeaderError, MANIFEST_CONTENT_TYPE,
    ManifestHeader, claimed_manifest, protected_header_bytes,
};
pub use roster::{
    FinalHead, GovernanceSignature, KEY_CHANGE_CONTEXT, KeyChange, MAX_GRACE_MS, MAX_KEY_CHANGES,
    MAX_MEMBER_ID_BYTES, MAX_MEMBER_NAME_CHARS, MAX_MEMBER_RECORD_BYTES, MAX_MEMBERS,
    MAX_RECORD_ADDRESS_BYTES, MAX_RECORD_ADDRESSES, MAX_RECORD_CONTACT_CHARS, MAX_RETENTION_DAYS,
    MAX_RETIRED_NODE_KEYS, MAX_ROSTER_BYTES, MAX_ROSTER_CONFLICT_BYTES, MAX_ROSTER_SIGNATURES,
    MAX_SEALED_SECRET_BYTES, MEMBER_RECORD_CONTEXT, MemberRecord, ROSTER_HASH_CONTEXT,
    ROSTER_SIGNATURE_CONTEXT, RosterBody, RosterConflict, RosterMember, RosterProblem, Rotation,
    SEAL_CONTEXT, SECRET_FINGERPRINT_CONTEXT, SealError, SealedSecret, SignedMemberRecord,
    SignedRoster, VerifiedRoster, decode_roster_conflict, is_valid_member_id, open_secret,
    seal_secret, secret_fingerprint, secret_fingerprint_phone_form, sign_roster, verify_conflict,
    verify_founding, verify_successor,
};
pub use sync::{
    GOSSIP_ID_CONTEXT, MAX_GOSSIP_BYTES, MAX_RANGE_BATCHES, MAX_RECORD_SEQS,
    MAX_RECORDS_PER_REQUEST, MAX_ROSTER_ANNOUNCEMENT_BYTES, MAX_ROSTERS_PER_RESPONSE,
    MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES, MemberSeq, REFUSED_BUSY, SYNC_PROTOCOL,
    SyncRequest, SyncResponse, announced_version, batch_topic, decode_roster_announcement,
    encode_roster_announcement, fork_topic, gossip_message_id, record_topic, roster_topic,
};
// Roster conflict evidence (docs/PROTOCOL.md §3.6).
pub use sync::{
    MAX_ROSTER_CONFLICT_ANNOUNCEMENT_BYTES, MAX_ROSTER_CONFLICTS_PER_RESPONSE,
    decode_roster_conflict_announcement, encode_roster_conflict_announcement,
};
pub use token::{EpochKey, TOKEN_KEY_CONTEXT};
pub use types::{BatchHash, EntryDigest, FederationId, FederationSecret, ParseHexError, Token};
