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
//!   [`Action`]'s written-out names; the subject is a record id, an alert id, a token's short
//!   prefix or `-`, never a raw identifier ([`AuditSubject`]).
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

mod error;
mod line;
mod record;
mod verify;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossmatch_protocol::{PublicKey, SigningKey};

use crate::clock::Clock;
use crate::keyfile;

pub use error::{AuditError, Problem};
pub use record::{
    Action, AuditHash, AuditOptions, AuditRecord, AuditSubject, AuditUser, FieldError, SignedHead,
};
pub use verify::{VerifyReport, verify, verify_keys};

use line::{Line, format_head, format_record, parse_line, record_hash};

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
        Self::open_after_key_changes(dir, key, &[], clock, options)
    }

    /// [`AuditLog::open`] for a node that changed its key routinely: the heads already written
    /// may be signed by one of `earlier_keys` (the keys it retired); new heads are signed by
    /// `key`.
    pub fn open_after_key_changes(
        dir: &Path,
        key: SigningKey,
        earlier_keys: &[PublicKey],
        clock: Arc<dyn Clock>,
        options: AuditOptions,
    ) -> Result<Self, AuditError> {
        if options.seal_interval_records == 0 {
            return Err(AuditError::InvalidOptions("seal_interval_records must be at least 1"));
        }
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error(dir))?;
        let log_path = dir.join(LOG_FILE_NAME);
        let head_path = dir.join(HEAD_FILE_NAME);
        let public_keys: Vec<PublicKey> =
            std::iter::once(key.public_key()).chain(earlier_keys.iter().copied()).collect();
        let stored_head = read_head_file(&head_path)?;
        if let Some(head) = &stored_head
            && !head.verify_any(&public_keys)
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
            .mode(0o600)
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
                if !head.verify_any(&public_keys) {
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
        keyfile::replace_private_file(
            &self.head_path,
            &self.dir.join(HEAD_TEMP_FILE_NAME),
            format_head(&head).as_bytes(),
            keyfile::Existing::Replace,
        )
        .map_err(|keyfile::FileError { path, source }| AuditError::Io { path, source })?;
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
