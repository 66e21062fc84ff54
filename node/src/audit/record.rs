//! The audit log's vocabulary: what was done ([`Action`]), by whom ([`AuditUser`]), to what
//! ([`AuditSubject`]), and the records and signed heads the log is made of, with the rules that
//! keep raw identifiers out of every field.

use std::fmt;
use std::str::FromStr;

use crossmatch_protocol::{PublicKey, SigningKey, Token};

use super::line::head_message;
use super::{
    AuditError, DEFAULT_SEAL_INTERVAL_RECORDS, MAX_SUBJECT_BYTES, MAX_USER_BYTES, NODE_USER,
    RESERVED_USER_PREFIX, SUBJECT_CHARSET, check_length,
};

/// What was done. Names are written out in the log and never reused for another meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// An identifier was added and its token shared (`share`).
    Share,
    /// A shared token was retracted (`retract`).
    Retract,
    /// A record's status changed (`status`).
    Status,
    /// Records were imported (`import`).
    Import,
    /// Records or a feed were exported (`export`).
    Export,
    /// A match alert was raised or handled (`alert`).
    Alert,
    /// A user read a raw record (`read_record`).
    ReadRecord,
    /// A user started watching a record or token (`watch`).
    Watch,
    /// A user stopped watching a record or token (`unwatch`).
    Unwatch,
    /// The node repaired its audit log on open (`repair`).
    Repair,
    /// A user sent observations (`observe`); the subject gives the counts, never an account.
    Observe,
    /// A user read the hunt's analytics, raw handles included (`read_analytics`).
    ReadAnalytics,
    /// A user labelled a community (`label_community`); the subject names the community.
    LabelCommunity,
    /// A user pinned or unpinned a community (`pin_community`).
    PinCommunity,
    /// A user merged one community into another (`merge_communities`).
    MergeCommunities,
    /// A user split accounts off a community into a new one (`split_community`).
    SplitCommunity,
    /// A user marked an account "not a target" or removed its mark (`mark_not_a_target`); the
    /// subject names the mark's id and category, never the account.
    MarkNotATarget,
    /// A user exported the hunt's analytics (`export_analytics`); the subject gives the format,
    /// the community and the counts.
    ExportAnalytics,
    /// The node reloaded its API tokens file and log level on SIGHUP, or refused to (`reload`);
    /// the subject gives the counts, or what was refused.
    Reload,
    /// The node adopted a new version of the federation's roster (`adopt_roster`), posted by an
    /// admin or fetched from peers (by the node); the subject names the version and a prefix of
    /// the roster hash.
    AdoptRoster,
    /// The node began a rotation of the secret and epoch that an adopted roster announced
    /// (`begin_rotation`), with the new epoch's secret it holds; the subject names the new
    /// epoch, never the secret.
    BeginRotation,
    /// The node took a sealed copy of an epoch's secret (`open_secret`), posted by an admin or
    /// dropped into its state directory (by the node); the subject names the epoch, never the
    /// secret or its fingerprint.
    OpenSecret,
    /// The node opened under a new node key (`change_node_key`, by the node): the old key was
    /// retired with its feed's final head, and the live shares are published again under the
    /// new key; the subject names both keys' fingerprints.
    ChangeNodeKey,
    /// A user began undoing an import (`undo_import`): the subject names the import and the
    /// planned counts of records removed and kept, never a record's content.
    UndoImport,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 24] = [
        Action::Share,
        Action::Retract,
        Action::Status,
        Action::Import,
        Action::Export,
        Action::Alert,
        Action::ReadRecord,
        Action::Watch,
        Action::Unwatch,
        Action::Repair,
        Action::Observe,
        Action::ReadAnalytics,
        Action::LabelCommunity,
        Action::PinCommunity,
        Action::MergeCommunities,
        Action::SplitCommunity,
        Action::MarkNotATarget,
        Action::ExportAnalytics,
        Action::Reload,
        Action::AdoptRoster,
        Action::BeginRotation,
        Action::OpenSecret,
        Action::ChangeNodeKey,
        Action::UndoImport,
    ];

    /// The written-out name used in the log.
    pub fn name(self) -> &'static str {
        match self {
            Action::Share => "share",
            Action::Retract => "retract",
            Action::Status => "status",
            Action::Import => "import",
            Action::Export => "export",
            Action::Alert => "alert",
            Action::ReadRecord => "read_record",
            Action::Watch => "watch",
            Action::Unwatch => "unwatch",
            Action::Repair => "repair",
            Action::Observe => "observe",
            Action::ReadAnalytics => "read_analytics",
            Action::LabelCommunity => "label_community",
            Action::PinCommunity => "pin_community",
            Action::MergeCommunities => "merge_communities",
            Action::SplitCommunity => "split_community",
            Action::MarkNotATarget => "mark_not_a_target",
            Action::ExportAnalytics => "export_analytics",
            Action::Reload => "reload",
            Action::AdoptRoster => "adopt_roster",
            Action::BeginRotation => "begin_rotation",
            Action::OpenSecret => "open_secret",
            Action::ChangeNodeKey => "change_node_key",
            Action::UndoImport => "undo_import",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL.into_iter().find(|action| action.name() == s).ok_or(AuditError::UnknownAction)
    }
}

/// An API user name as recorded: 1 to [`MAX_USER_BYTES`] bytes of printable characters, no
/// control characters, tabs, line breaks or other whitespace except inner spaces, and not
/// starting with `*` (reserved for [`AuditUser::node`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditUser(pub(super) String);

impl AuditUser {
    /// Validates an API user name.
    pub fn new(name: &str) -> Result<Self, AuditError> {
        Self::validate(name, false).map_err(AuditError::InvalidUser)
    }

    /// The user the node records its own actions under (`*node`).
    pub fn node() -> Self {
        Self(NODE_USER.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Validates a name read back from a log, where the reserved prefix is allowed.
    pub(super) fn parse_stored(name: &str) -> Result<Self, FieldError> {
        Self::validate(name, true)
    }

    fn validate(name: &str, allow_reserved: bool) -> Result<Self, FieldError> {
        check_length(name, MAX_USER_BYTES)?;
        let allowed = "printable characters and inner spaces";
        for (index, c) in name.chars().enumerate() {
            if c.is_control() || (c.is_whitespace() && c != ' ') {
                return Err(FieldError::Forbidden { index, allowed });
            }
        }
        if name.starts_with(' ') || name.ends_with(' ') {
            return Err(FieldError::EdgeSpace);
        }
        if !allow_reserved && name.starts_with(RESERVED_USER_PREFIX) {
            return Err(FieldError::Reserved);
        }
        Ok(Self(name.to_owned()))
    }
}

impl fmt::Display for AuditUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an action was about, never a raw identifier: `record:<id>`, `alert:<id>`,
/// `token:<8 hex>`, or `-` for none. Any 1 to [`MAX_SUBJECT_BYTES`] bytes of ASCII letters, digits and `. _ : -` are accepted,
/// so `@`, `+`, `/` and spaces (e-mail addresses, phone numbers, URLs) cannot slip in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditSubject(pub(super) String);

impl AuditSubject {
    /// Validates a subject.
    pub fn new(subject: &str) -> Result<Self, AuditError> {
        Self::parse_stored(subject).map_err(AuditError::InvalidSubject)
    }

    /// No subject (`-`).
    pub fn none() -> Self {
        Self("-".to_owned())
    }

    /// A local record (`record:<id>`).
    pub fn record(id: u64) -> Self {
        Self(format!("record:{id}"))
    }

    /// A local alert, by id (`alert:<id>`).
    pub fn alert(id: u64) -> Self {
        Self(format!("alert:{id}"))
    }

    /// A token, by its 4-byte prefix (`token:<8 hex>`).
    pub fn token(token: &Token) -> Self {
        Self(format!("token:{}", token.short()))
    }

    /// The subject text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn parse_stored(subject: &str) -> Result<Self, FieldError> {
        check_length(subject, MAX_SUBJECT_BYTES)?;
        let ok =
            |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-');
        if let Some(index) = subject.bytes().position(|byte| !ok(byte)) {
            return Err(FieldError::Forbidden { index, allowed: SUBJECT_CHARSET });
        }
        Ok(Self(subject.to_owned()))
    }
}

impl fmt::Display for AuditSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record's or head's 32-byte chain hash. `Display` is full hex, `Debug` a 4-byte prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuditHash(pub [u8; 32]);

impl AuditHash {
    /// The `prev` of record 1 and the hash of the genesis head.
    pub const ZERO: AuditHash = AuditHash([0; 32]);
}

impl fmt::Display for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// One audit record, as appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When, in Unix milliseconds, by the log's clock.
    pub time_unix_ms: u64,
    /// Who.
    pub user: AuditUser,
    /// What.
    pub action: Action,
    /// About what.
    pub subject: AuditSubject,
    /// The previous record's hash ([`AuditHash::ZERO`] for seq 1).
    pub prev: AuditHash,
    /// This record's hash.
    pub hash: AuditHash,
}

/// A head: the chain's seq and hash, signed by the node key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedHead {
    /// Seq of the last record sealed (0: the empty log).
    pub seq: u64,
    /// Hash of that record ([`AuditHash::ZERO`] for seq 0).
    pub hash: AuditHash,
    /// Ed25519 signature over `HEAD_SIGNATURE_CONTEXT ‖ seq (u64 BE) ‖ hash`.
    pub signature: [u8; 64],
}

impl SignedHead {
    /// Signs a head (deterministic: the same key, seq and hash give the same signature).
    pub fn sign(key: &SigningKey, seq: u64, hash: AuditHash) -> Self {
        Self { seq, hash, signature: key.sign(&head_message(seq, &hash)) }
    }

    /// Whether the signature is `public_key`'s (checked with `verify_strict`).
    pub fn verify(&self, public_key: &PublicKey) -> bool {
        public_key.verify_strict(&head_message(self.seq, &self.hash), &self.signature)
    }

    /// Whether the signature is one of `public_keys`' (a node's keys across routine key
    /// changes: heads signed before a change are signed by the key it retired).
    pub fn verify_any(&self, public_keys: &[PublicKey]) -> bool {
        public_keys.iter().any(|key| self.verify(key))
    }
}

/// How a log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditOptions {
    /// A signed head is appended once this many records follow the last one (at least 1).
    pub seal_interval_records: u64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self { seal_interval_records: DEFAULT_SEAL_INTERVAL_RECORDS }
    }
}

/// Why a user name or subject is refused. Messages never repeat the refused text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Nothing given.
    #[error("empty")]
    Empty,
    /// Too long.
    #[error("{len} bytes, more than the maximum of {max}")]
    TooLong {
        /// Length given.
        len: usize,
        /// Maximum accepted.
        max: usize,
    },
    /// A character outside the accepted set.
    #[error("character {index} is not accepted (accepted: {allowed})")]
    Forbidden {
        /// Position of the first offending character (0-based).
        index: usize,
        /// What is accepted.
        allowed: &'static str,
    },
    /// A leading or trailing space.
    #[error("starts or ends with a space")]
    EdgeSpace,
    /// A name reserved for the node.
    #[error("names starting with '*' are reserved for the node itself")]
    Reserved,
}
