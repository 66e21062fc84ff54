//! The audit log: a hash-chained, append-only file of who shared, retracted, changed, imported,
//! exported, alerted on, watched or read what, with heads signed by the node key at intervals,
//! checked offline by [`verify`] (`crossmatch audit verify`).
//!
//! # On-disk format
//! Two files in the audit directory, both UTF-8 text, one item per line, fields separated by one
//! tab, every line ending in `\n`, integers in decimal without sign or leading zeros, binary
//! fields in lower-case hex. Every field has exactly one accepted spelling.
//!
//! `audit.log` ([`LOG_FILE_NAME`]):
//!
//! ```text
//! crossmatch audit log v1
//! head    0   <64 zeros>  <signature: 128 hex>
//! record  1   <time, Unix ms> <user>  <action>    <subject>   <prev: 64 hex>  <hash: 64 hex>
//! record  2   …
//! head    2   <hash of record 2>  <signature>
//! ```
//!
//! * The first line is the header [`LOG_HEADER`]. The next is the *genesis head* at seq 0,
//!   written when the log is created.
//! * `record`: seq counts from 1 without gaps; the time (Unix ms) comes from the injected
//!   [`Clock`], shared with the engine; `prev` is the previous record's hash (32 zero
//!   bytes for seq 1); the user is an API user name ([`AuditUser`]); the action is one of
//!   [`Action`]'s written-out names; the subject is a record id, a token's short prefix or `-`,
//!   never a raw identifier ([`AuditSubject`]).
//! * `hash = BLAKE3-derive_key(RECORD_HASH_CONTEXT, prev ‖ seq ‖ time ‖ len(user) ‖ user ‖
//!   len(action) ‖ action ‖ len(subject) ‖ subject)`, with `prev` the 32 raw bytes, seq and time
//!   as `u64` big-endian, each length as `u32` big-endian and each text field as its UTF-8 bytes.
//! * `head`: seals the record just before it (seq and hash of that record; seq 0 and 32 zero
//!   bytes for the genesis head). The signature is Ed25519 by the node key over
//!   `HEAD_SIGNATURE_CONTEXT ‖ seq (u64 BE) ‖ hash (32 bytes)`. A head is written after every
//!   [`AuditOptions::seal_interval_records`] records and whenever [`AuditLog::seal`] is called.
//!
//! `audit.head` ([`HEAD_FILE_NAME`]): the latest signed head, as one head line, replaced
//! atomically (write a temporary file, fsync, rename, fsync the directory). It is what catches
//! truncation: a log that ends before this head's seq, or whose record at that seq has another
//! hash, was cut or rewritten.
//!
//! # Durability contract
//! * When [`AuditLog::append`] returns `Ok`, the record's line has been written in one append
//!   and `sync_data`'d: it survives a crash or power loss. Callers acknowledge the action only
//!   after that, so an acknowledged action always has its record; a record may exist for an
//!   action that then failed, never the other way round.
//! * If a write fails, the log is poisoned: every later call returns [`AuditError::Poisoned`]
//!   until the log is reopened, because the file may end in a partial line.
//! * A head's line is synced before the head file is replaced, so the head file never names a
//!   head the log lacks. If sealing fails inside `append` (after the record is durable), the
//!   failure is logged and sealing is retried on the next append.
//! * Appends are serialized by `&mut self`: one writer per log. The file is not locked against
//!   other processes; the node must open its data directory once.
//! * Every call does blocking file I/O and an fsync: from async code, call it on a blocking
//!   thread.
//!
//! # Reopening and crash repair
//! [`AuditLog::open`] reads only the tail of an existing log and resumes its chain. A last line
//! without its `\n` is a torn write from a crash (it was never acknowledged): it is cut off, the
//! file synced, and a [`Action::Repair`] record by the node ([`AuditUser::node`]) with subject
//! `torn-tail:<bytes>` records that fact. Anything else wrong with the tail (a malformed last
//! line, a wrong hash or signature, a log shorter than the head file) is refused: the node does
//! not start on a damaged log. A missing head file is rewritten from the last head line when the
//! log ends with one; otherwise a `repair` record with subject `head-file-missing` is appended
//! and the log sealed.
//!
//! # What verification can and cannot show
//! [`verify`] detects edited, removed, reordered, duplicated and malformed records, forged or
//! altered heads, a torn last line, and truncation below the head file's seq. Records after the
//! last signed head are protected only by the (keyless) hash chain: whoever can write the files
//! can rewrite or drop them without detection, which is why the report counts them. Deleting
//! both files, or replacing the head file and log with an older signed pair, is detectable only
//! against a head kept elsewhere: compare the report's last signed seq with one noted earlier.

mod line;
mod verify;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crossmatch_protocol::{PublicKey, SigningKey, Token};

use crate::clock::Clock;

pub use verify::{VerifyReport, verify};

use line::{Line, format_head, format_record, head_message, parse_line, record_hash};

/// Domain of record hashes (`BLAKE3-derive_key` context).
pub const RECORD_HASH_CONTEXT: &str = "crossmatch audit v1";
/// Domain of head signatures: the first bytes of every signed message.
pub const HEAD_SIGNATURE_CONTEXT: &str = "crossmatch audit head v1";
/// The first line of every audit log (format and version).
pub const LOG_HEADER: &str = "crossmatch audit log v1";
/// Name of the log file in the audit directory.
pub const LOG_FILE_NAME: &str = "audit.log";
/// Name of the file holding the latest signed head.
pub const HEAD_FILE_NAME: &str = "audit.head";
/// Temporary name the head file is written under before it is renamed into place.
const HEAD_TEMP_FILE_NAME: &str = "audit.head.tmp";

/// Longest user name, in bytes: login names are short, and the bound keeps lines short.
pub const MAX_USER_BYTES: usize = 64;
/// Longest subject, in bytes: `record:` plus a u64, or `token:` plus 8 hex digits, fit easily.
pub const MAX_SUBJECT_BYTES: usize = 64;
/// Longest line, `\n` included. A record line is at most ~330 bytes (two 64-byte text fields,
/// two 64-digit hashes, two 20-digit numbers); anything longer is damage, and the bound lets
/// [`AuditLog::open`] find the last line by reading a small tail.
pub const MAX_LINE_BYTES: usize = 512;
/// Default number of records between signed heads: at most this many records are protected by
/// the hash chain alone, and one signature per 64 appends costs little.
pub const DEFAULT_SEAL_INTERVAL_RECORDS: u64 = 64;

/// Characters a subject may use (shown in errors).
const SUBJECT_CHARSET: &str = "ASCII letters, digits and . _ : -";
/// First character of user names reserved for the node itself.
const RESERVED_USER_PREFIX: char = '*';
/// The user the node records its own actions under.
const NODE_USER: &str = "*node";

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
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 10] = [
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
pub struct AuditUser(String);

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
    fn parse_stored(name: &str) -> Result<Self, FieldError> {
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

/// What an action was about, never a raw identifier: `record:<id>`, `token:<8 hex>`, or `-` for
/// none. Any 1 to [`MAX_SUBJECT_BYTES`] bytes of ASCII letters, digits and `. _ : -` are accepted,
/// so `@`, `+`, `/` and spaces (e-mail addresses, phone numbers, URLs) cannot slip in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditSubject(String);

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

    /// A token, by its 4-byte prefix (`token:<8 hex>`).
    pub fn token(token: &Token) -> Self {
        Self(format!("token:{}", token.short()))
    }

    /// The subject text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse_stored(subject: &str) -> Result<Self, FieldError> {
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

/// What is wrong with one line of a log or head file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The line exceeds [`MAX_LINE_BYTES`].
    #[error("line is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    /// The line is not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
    /// The first line is not [`LOG_HEADER`].
    #[error("first line is not the header {LOG_HEADER:?}")]
    MissingHeader,
    /// The header appears after the first line.
    #[error("header line after the first line")]
    MisplacedHeader,
    /// Neither a record nor a head.
    #[error("not a record or head line")]
    UnknownLine,
    /// Wrong number of tab-separated fields.
    #[error("{kind} line has {found} fields, expected {expected}")]
    FieldCount {
        /// `record` or `head`.
        kind: &'static str,
        /// Fields found.
        found: usize,
        /// Fields expected.
        expected: usize,
    },
    /// A field is not in its one accepted spelling.
    #[error("{field} is not {expected}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// What is accepted.
        expected: &'static str,
    },
    /// The user field is invalid.
    #[error("user is invalid: {0}")]
    User(FieldError),
    /// The subject field is invalid.
    #[error("subject is invalid: {0}")]
    Subject(FieldError),
    /// The action is not one of [`Action`]'s names.
    #[error("unknown action")]
    UnknownAction,
    /// A record's seq does not follow the previous record's.
    #[error(
        "expected record seq {expected}, found {found} (records removed, reordered or duplicated)"
    )]
    SeqMismatch {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// A record's prev is not the previous record's hash.
    #[error("prev is not the hash of the record before it (records removed or replaced)")]
    PrevMismatch,
    /// A record's hash does not match its fields.
    #[error("record hash does not match its fields (the record was edited)")]
    HashMismatch,
    /// A head does not seal the record just before it.
    #[error(
        "head at seq {found} follows record {expected}: heads seal the record just before them"
    )]
    HeadSeqMismatch {
        /// Seq of the record before the head.
        expected: u64,
        /// Seq in the head.
        found: u64,
    },
    /// A head's hash is not the hash of the record it seals.
    #[error("head hash is not the hash of record {seq}")]
    HeadHashMismatch {
        /// The record's seq.
        seq: u64,
    },
    /// A head's signature does not verify.
    #[error("head signature does not verify under the node's public key (forged or altered head)")]
    BadSignature,
    /// The last line has no `\n`.
    #[error("last line is incomplete (a torn write from a crash, or the file was cut)")]
    TornLine,
    /// A head file must hold exactly one head line.
    #[error("does not hold exactly one head line")]
    NotAHeadFile,
}

/// Audit log errors. Messages are lower-case and never include raw identifiers.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A user name was refused.
    #[error("invalid audit user: {0}")]
    InvalidUser(FieldError),
    /// A subject was refused.
    #[error("invalid audit subject: {0}")]
    InvalidSubject(FieldError),
    /// An action name was not recognised.
    #[error(
        "unknown audit action (accepted: share, retract, status, import, export, alert, read_record, watch, unwatch, repair)"
    )]
    UnknownAction,
    /// Invalid [`AuditOptions`].
    #[error("invalid audit options: {0}")]
    InvalidOptions(&'static str),
    /// A line of the log is wrong.
    #[error("{path}: line {line}: {problem}")]
    Tampered {
        /// The log.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        problem: Problem,
    },
    /// The last line of a log being reopened is wrong (only the tail is read on open).
    #[error("{path}: last line: {problem}; run `crossmatch audit verify` on it")]
    DamagedTail {
        /// The log.
        path: PathBuf,
        /// What is wrong.
        problem: Problem,
    },
    /// The head file is wrong.
    #[error("{path}: {problem}")]
    BadHeadFile {
        /// The head file.
        path: PathBuf,
        /// What is wrong.
        problem: Problem,
    },
    /// The log ends before the head file's seq.
    #[error(
        "{log} ends at seq {last_seq}, before the signed head at seq {head_seq} in {head}: records were removed from its end"
    )]
    Truncated {
        /// The log.
        log: PathBuf,
        /// The head file.
        head: PathBuf,
        /// The log's last record seq.
        last_seq: u64,
        /// The head file's seq.
        head_seq: u64,
    },
    /// The log's record at the head file's seq has another hash.
    #[error(
        "{head}: the signed head's hash is not that of record {seq} in {log}: the log was rewritten"
    )]
    HeadMismatch {
        /// The log.
        log: PathBuf,
        /// The head file.
        head: PathBuf,
        /// The head's seq.
        seq: u64,
    },
    /// An earlier write failed; the file may end in a partial line.
    #[error("an earlier write to the audit log failed; reopen the log to repair its tail")]
    Poisoned,
}

impl AuditError {
    /// Whether the error shows a damaged or tampered log or head file (as opposed to bad input,
    /// I/O failure or misuse).
    pub fn is_tampering(&self) -> bool {
        matches!(
            self,
            AuditError::Tampered { .. }
                | AuditError::DamagedTail { .. }
                | AuditError::BadHeadFile { .. }
                | AuditError::Truncated { .. }
                | AuditError::HeadMismatch { .. }
        )
    }
}

/// An open audit log: the one writer of its directory's log and head file.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
    dir: PathBuf,
    log_path: PathBuf,
    head_path: PathBuf,
    key: SigningKey,
    clock: Arc<dyn Clock>,
    options: AuditOptions,
    last_seq: u64,
    last_hash: AuditHash,
    /// Seq of the last head line in the log.
    last_signed_seq: u64,
    /// Seq of the head in the head file.
    head_file_seq: u64,
    torn_bytes_repaired: Option<u64>,
    poisoned: bool,
}

impl AuditLog {
    /// Opens the log in `dir` (created if missing), or creates it with its genesis head, and
    /// resumes its chain; repairs a torn last line (see the module docs).
    pub fn open(
        dir: &Path,
        key: SigningKey,
        clock: Arc<dyn Clock>,
        options: AuditOptions,
    ) -> Result<Self, AuditError> {
        if options.seal_interval_records == 0 {
            return Err(AuditError::InvalidOptions("seal_interval_records must be at least 1"));
        }
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let log_path = dir.join(LOG_FILE_NAME);
        let head_path = dir.join(HEAD_FILE_NAME);
        let public_key = key.public_key();
        let stored_head = read_head_file(&head_path)?;
        if let Some(head) = &stored_head
            && !head.verify(&public_key)
        {
            return Err(AuditError::BadHeadFile {
                path: head_path,
                problem: Problem::BadSignature,
            });
        }

        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(io_error(&log_path))?;
        let tail = read_tail(&mut file, &log_path)?;
        let damaged = {
            let path = log_path.clone();
            move |problem| AuditError::DamagedTail { path: path.clone(), problem }
        };
        let mut log = Self {
            file,
            dir: dir.to_owned(),
            log_path,
            head_path,
            key,
            clock,
            options,
            last_seq: 0,
            last_hash: AuditHash::ZERO,
            last_signed_seq: 0,
            head_file_seq: stored_head.map_or(0, |head| head.seq),
            torn_bytes_repaired: (tail.torn_bytes > 0).then_some(tail.torn_bytes),
            poisoned: false,
        };
        let last_line = match &tail.last_line {
            None => None,
            Some(bytes) => Some(parse_line(bytes).map_err(&damaged)?),
        };
        match &last_line {
            None | Some(Line::Header) => {}
            Some(Line::Record(record)) => {
                log.last_seq = record.seq;
                log.last_hash = record.hash;
            }
            Some(Line::Head(head)) => {
                if !head.verify(&public_key) {
                    return Err(damaged(Problem::BadSignature));
                }
                log.last_seq = head.seq;
                log.last_hash = head.hash;
                log.last_signed_seq = head.seq;
            }
        }
        if let Some(head) = &stored_head {
            if head.seq > log.last_seq {
                return Err(AuditError::Truncated {
                    log: log.log_path.clone(),
                    head: log.head_path.clone(),
                    last_seq: log.last_seq,
                    head_seq: head.seq,
                });
            }
            if head.seq == log.last_seq && head.hash != log.last_hash {
                return Err(AuditError::HeadMismatch {
                    log: log.log_path.clone(),
                    head: log.head_path.clone(),
                    seq: head.seq,
                });
            }
            // The head file is never newer than the last head line in the log.
            log.last_signed_seq = log.last_signed_seq.max(head.seq);
        }

        // Only now, with the rest of the tail checked, is the torn line cut off.
        if tail.torn_bytes > 0 {
            log.file.set_len(tail.complete_len).map_err(io_error(&log.log_path))?;
            log.file.sync_all().map_err(io_error(&log.log_path))?;
            tracing::warn!(bytes = tail.torn_bytes, "audit log: cut off a torn last line");
        }
        match last_line {
            // A new log: the header, then the genesis head.
            None => {
                log.write_line(&format!("{LOG_HEADER}\n"))?;
                sync_dir(&log.dir)?;
                log.write_head()?;
            }
            // The genesis head was torn off.
            Some(Line::Header) => log.write_head()?,
            // The head file write after this head line was interrupted.
            Some(Line::Head(head)) => {
                if stored_head.is_none_or(|stored| stored.seq != head.seq) {
                    log.write_head_file()?;
                }
            }
            Some(Line::Record(_)) if stored_head.is_none() => {
                tracing::warn!("audit log: head file missing; sealing anew");
                log.append_record(
                    &AuditUser::node(),
                    Action::Repair,
                    &AuditSubject("head-file-missing".to_owned()),
                )?;
                log.write_head()?;
            }
            Some(Line::Record(_)) => {}
        }
        if let Some(bytes) = log.torn_bytes_repaired {
            log.append_record(
                &AuditUser::node(),
                Action::Repair,
                &AuditSubject(format!("torn-tail:{bytes}")),
            )?;
        }
        Ok(log)
    }

    /// Appends a record; when this returns `Ok` the record is on disk (see the durability
    /// contract). Seals the log when [`AuditOptions::seal_interval_records`] records are unsealed.
    pub fn append(
        &mut self,
        user: &AuditUser,
        action: Action,
        subject: &AuditSubject,
    ) -> Result<AuditRecord, AuditError> {
        let record = self.append_record(user, action, subject)?;
        if self.last_seq - self.last_signed_seq >= self.options.seal_interval_records
            && let Err(error) = self.seal()
        {
            // The record is durable; the head is retried on the next append.
            tracing::error!(%error, "audit log: sealing failed");
        }
        Ok(record)
    }

    /// Signs the current head, appends it to the log and replaces the head file, unless both
    /// already hold it. Returns the head.
    pub fn seal(&mut self) -> Result<SignedHead, AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned);
        }
        if self.last_signed_seq != self.last_seq {
            self.write_head()?;
        } else if self.head_file_seq != self.last_seq {
            self.write_head_file()?;
        }
        Ok(SignedHead::sign(&self.key, self.last_seq, self.last_hash))
    }

    /// Seq of the last record (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Hash of the last record ([`AuditHash::ZERO`]: none yet).
    pub fn last_hash(&self) -> AuditHash {
        self.last_hash
    }

    /// Seq of the last signed head in the log.
    pub fn last_signed_seq(&self) -> u64 {
        self.last_signed_seq
    }

    /// How many bytes of a torn last line [`AuditLog::open`] cut off, if it did.
    pub fn torn_bytes_repaired(&self) -> Option<u64> {
        self.torn_bytes_repaired
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The head file.
    pub fn head_path(&self) -> &Path {
        &self.head_path
    }

    fn append_record(
        &mut self,
        user: &AuditUser,
        action: Action,
        subject: &AuditSubject,
    ) -> Result<AuditRecord, AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned);
        }
        let seq = self.last_seq + 1;
        let time_unix_ms = self.clock.now_ms();
        let hash = record_hash(&self.last_hash, seq, time_unix_ms, user, action, subject);
        let record = AuditRecord {
            seq,
            time_unix_ms,
            user: user.clone(),
            action,
            subject: subject.clone(),
            prev: self.last_hash,
            hash,
        };
        self.write_line(&format_record(&record))?;
        self.last_seq = seq;
        self.last_hash = hash;
        Ok(record)
    }

    /// Appends a head line for the current seq, then replaces the head file.
    fn write_head(&mut self) -> Result<(), AuditError> {
        let head = SignedHead::sign(&self.key, self.last_seq, self.last_hash);
        self.write_line(&format_head(&head))?;
        self.last_signed_seq = head.seq;
        self.write_head_file()
    }

    /// Replaces the head file atomically with the head at the current seq, which must be the
    /// last head line in the log.
    fn write_head_file(&mut self) -> Result<(), AuditError> {
        let head = SignedHead::sign(&self.key, self.last_seq, self.last_hash);
        let temp_path = self.dir.join(HEAD_TEMP_FILE_NAME);
        let mut temp = File::create(&temp_path).map_err(io_error(&temp_path))?;
        temp.write_all(format_head(&head).as_bytes()).map_err(io_error(&temp_path))?;
        temp.sync_all().map_err(io_error(&temp_path))?;
        fs::rename(&temp_path, &self.head_path).map_err(io_error(&self.head_path))?;
        sync_dir(&self.dir)?;
        self.head_file_seq = head.seq;
        Ok(())
    }

    /// Appends one whole line and syncs it; poisons the log if either fails.
    fn write_line(&mut self, line: &str) -> Result<(), AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned);
        }
        self.poisoned = true;
        self.file.write_all(line.as_bytes()).map_err(io_error(&self.log_path))?;
        self.file.sync_data().map_err(io_error(&self.log_path))?;
        self.poisoned = false;
        Ok(())
    }
}

/// The end of an existing log, read on open.
struct Tail {
    /// Length of the file up to and including its last `\n`.
    complete_len: u64,
    /// The last complete line, without its `\n` (none in an empty file).
    last_line: Option<Vec<u8>>,
    /// Bytes after the last `\n`: a torn write.
    torn_bytes: u64,
}

fn read_tail(file: &mut File, path: &Path) -> Result<Tail, AuditError> {
    let io = io_error(path);
    let len = file.metadata().map_err(&io)?.len();
    // The last complete line and a torn line after it are each shorter than MAX_LINE_BYTES.
    let window = len.min(2 * MAX_LINE_BYTES as u64);
    let window_start = len - window;
    file.seek(SeekFrom::Start(window_start)).map_err(&io)?;
    let mut buffer = Vec::with_capacity(2 * MAX_LINE_BYTES);
    file.take(window).read_to_end(&mut buffer).map_err(&io)?;
    let too_long = || AuditError::DamagedTail { path: path.to_owned(), problem: Problem::TooLong };

    let Some(last_newline) = buffer.iter().rposition(|&byte| byte == b'\n') else {
        // No complete line: the whole (short) file is torn.
        if len >= MAX_LINE_BYTES as u64 {
            return Err(too_long());
        }
        return Ok(Tail { complete_len: 0, last_line: None, torn_bytes: len });
    };
    let torn_bytes = (buffer.len() - last_newline - 1) as u64;
    if torn_bytes >= MAX_LINE_BYTES as u64 {
        return Err(too_long());
    }
    let line_start = match buffer[..last_newline].iter().rposition(|&byte| byte == b'\n') {
        Some(newline) => newline + 1,
        None if window_start == 0 => 0,
        None => return Err(too_long()),
    };
    Ok(Tail {
        complete_len: len - torn_bytes,
        last_line: Some(buffer[line_start..last_newline].to_vec()),
        torn_bytes,
    })
}

/// Reads and parses a head file (signature not checked); `None` if it does not exist.
fn read_head_file(path: &Path) -> Result<Option<SignedHead>, AuditError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AuditError::Io { path: path.to_owned(), source }),
    };
    let bad = |problem| AuditError::BadHeadFile { path: path.to_owned(), problem };
    let Some(line) = bytes.strip_suffix(b"\n") else {
        return Err(bad(Problem::NotAHeadFile));
    };
    if line.contains(&b'\n') {
        return Err(bad(Problem::NotAHeadFile));
    }
    match parse_line(line).map_err(bad)? {
        Line::Head(head) => Ok(Some(head)),
        Line::Header | Line::Record(_) => Err(bad(Problem::NotAHeadFile)),
    }
}

fn check_length(text: &str, max: usize) -> Result<(), FieldError> {
    match text.len() {
        0 => Err(FieldError::Empty),
        len if len > max => Err(FieldError::TooLong { len, max }),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|dir| dir.sync_all()).map_err(io_error(dir))
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> AuditError + '_ {
    move |source| AuditError::Io { path: path.to_owned(), source }
}
