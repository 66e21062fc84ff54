//! What can go wrong with an audit log: problems with one line ([`Problem`]) and the log's
//! errors ([`AuditError`]), which tell tampering apart from bad input and I/O failure.

use std::io;
use std::path::PathBuf;

use super::{FieldError, LOG_HEADER, MAX_LINE_BYTES};

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
        "unknown audit action (accepted: share, retract, status, import, export, alert, read_record, watch, unwatch, repair, observe, read_analytics, export_analytics)"
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
