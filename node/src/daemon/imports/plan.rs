//! Reading an import's file for the job, off the async workers and never under the engine lock:
//! the plan (every row keyed, classified against a store clone and counted; nothing written)
//! and the apply's chunks (at most `CHUNK_RECORDS` keyed rows and refusals together and
//! `CHUNK_NOTICES` notices, with the cursor where the next chunk starts). A [`Gate`] of row-key
//! prefixes (8 bytes a record: the one thing that grows with the file) refuses a subject seen
//! before in the same run.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossmatch_protocol::Handling;

use crate::clock::DAY_MS;
use crate::engine::KeyedRow;
use crate::import::hash::{content_hash, row_key};
use crate::import::limits::{CHUNK_NOTICES, CHUNK_RECORDS, MAX_RECORDS, MAX_REFUSALS_KEPT};
use crate::import::{
    Cursor, Format, ImportOptions, ImportRow, Item, Notice, Position, Refusal, RowRule, Rows,
    Subject,
};
use crate::store::imports::{ImportCounts, RowClass, classify};
use crate::store::{self, Store};

/// Refuses a row whose subject (row key) was seen before in this run.
#[derive(Debug)]
pub(super) struct Gate {
    seen: HashSet<u64>,
    format: Format,
}

impl Gate {
    pub(super) fn new(format: Format) -> Self {
        Self { seen: HashSet::new(), format }
    }

    /// The rule a row breaks by coming again, if it does.
    pub(super) fn admit(&mut self, row: &KeyedRow) -> Option<RowRule> {
        let mut prefix = [0; 8];
        prefix.copy_from_slice(&row.key[..8]);
        if self.seen.insert(u64::from_be_bytes(prefix)) {
            return None;
        }
        Some(match (&row.row.subject, self.format) {
            (Subject::Named(_), Format::Csv) => RowRule::SubjectNotAdjacent,
            _ => RowRule::DuplicateSubject,
        })
    }
}

/// A row with its key and content hash under the import key.
pub(super) fn keyed(key: &[u8; 32], source: &str, row: ImportRow) -> KeyedRow {
    KeyedRow { key: row_key(key, source, &row), content: content_hash(key, &row), row }
}

/// Whether a row becomes a shared record (an H3 row is a watch whatever it asks).
fn shares(row: &ImportRow) -> bool {
    row.share && row.handling != Handling::H3
}

/// Counts a classified row into `counts`; the rule it is refused by, if it is.
pub(super) fn count(counts: &mut ImportCounts, class: RowClass, row: &KeyedRow) -> Option<RowRule> {
    let writes = match class {
        RowClass::New => {
            counts.added += 1;
            true
        }
        RowClass::Changed | RowClass::Newer => {
            counts.updated += 1;
            true
        }
        RowClass::Same | RowClass::Older | RowClass::RevokedGone => {
            counts.present += 1;
            false
        }
        RowClass::Revoke => {
            counts.removed += 1;
            false
        }
        RowClass::Duplicate => return Some(RowRule::DuplicateSubject),
    };
    counts.records += 1;
    if writes {
        if shares(&row.row) {
            counts.share_entries += row.row.identifiers.len() as u64;
        } else {
            counts.watched += 1;
        }
    }
    None
}

/// Refusals by position and code, the first `MAX_REFUSALS_KEPT` kept, and notices counted.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) refusals: Vec<(Position, String)>,
    pub(super) refused: u64,
    pub(super) notices: BTreeMap<String, u64>,
}

impl Tally {
    pub(super) fn refuse(&mut self, position: Position, rule: RowRule) {
        self.refused += 1;
        if self.refusals.len() < MAX_REFUSALS_KEPT {
            self.refusals.push((position, rule.code().to_owned()));
        }
    }

    pub(super) fn notice(&mut self, notice: Notice) {
        *self.notices.entry(notice.code().to_owned()).or_default() += 1;
    }
}

/// How reading a file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadEnd {
    /// Every item was read.
    Whole,
    /// Past `MAX_RECORDS` records: refused `too_many_records`.
    TooManyRecords,
    /// The file is not of its format (or could not be read as it): refused `format`.
    Format,
    /// The file is gone: failed `source_missing`.
    SourceMissing,
    /// The node is stopping: the job resumes at the next start.
    Cancelled,
}

/// The end a reader's I/O error makes (a bundle past `MAX_STIX_OBJECTS` is `FileTooLarge`).
pub(super) fn read_error(error: &std::io::Error) -> ReadEnd {
    match error.kind() {
        std::io::ErrorKind::NotFound => ReadEnd::SourceMissing,
        std::io::ErrorKind::FileTooLarge => ReadEnd::TooManyRecords,
        _ => ReadEnd::Format,
    }
}

/// Opens a job's file from `cursor`: a file that is gone ends `SourceMissing` whatever the
/// reader would say of it; a reader's refusal ends as its error says.
pub(super) fn open(
    path: &Path,
    options: &ImportOptions,
    cursor: Option<Cursor>,
) -> Result<Box<dyn Rows>, ReadEnd> {
    match std::fs::metadata(path) {
        Err(error) => Err(read_error(&error)),
        Ok(_) => crate::import::open(path, options, cursor).map_err(|error| read_error(&error)),
    }
}

/// What reading the whole file found.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) counts: ImportCounts,
    pub(super) tally: Tally,
    pub(super) end: ReadEnd,
}

/// Reads, keys and classifies every row of `path` against `store`, writing nothing. Without an
/// import key (none drawn yet: no row was ever imported) every row is new, and subjects are
/// told apart under a fixed key. A row that would outlive `max_retention_ms` (the roster's) is
/// refused `expiry`, as the apply would refuse it. `progress` follows the bytes read; `cancel`
/// stops the read.
pub(super) fn plan(
    store: &Store,
    path: &Path,
    options: &ImportOptions,
    key: Option<[u8; 32]>,
    max_retention_ms: u64,
    progress: &AtomicU64,
    cancel: &AtomicBool,
) -> store::Result<Plan> {
    let mut plan =
        Plan { counts: ImportCounts::default(), tally: Tally::default(), end: ReadEnd::Whole };
    let mut rows = match open(path, options, None) {
        Ok(rows) => rows,
        Err(end) => {
            plan.end = end;
            return Ok(plan);
        }
    };
    let mut gate = Gate::new(options.format);
    let gate_key = key.unwrap_or([0; 32]);
    let mut n = 0u64;
    while let Some(item) = rows.next() {
        n += 1;
        if n.is_multiple_of(256) {
            progress.store(rows.progress().0, Ordering::Relaxed);
            if cancel.load(Ordering::Relaxed) {
                plan.end = ReadEnd::Cancelled;
                break;
            }
        }
        let row = match item {
            Err(error) => {
                plan.end = read_error(&error);
                break;
            }
            Ok(Item::Refused(refusal)) => {
                plan.tally.refuse(refusal.position, refusal.rule);
                continue;
            }
            Ok(Item::Notice(_, notice)) => {
                plan.tally.notice(notice);
                continue;
            }
            Ok(Item::Row(row)) => keyed(&gate_key, &options.source, row),
        };
        if let Some(rule) = gate.admit(&row) {
            plan.tally.refuse(row.row.position, rule);
            continue;
        }
        if row.row.expires_in_days.saturating_mul(DAY_MS) > max_retention_ms {
            plan.tally.refuse(row.row.position, RowRule::Expiry);
            continue;
        }
        let class = match key {
            // The import id 0 is no import's: a plan's rows were written by none.
            Some(_) => classify(store, &row.key, &row.content, 0, row.row.stix.as_ref())?,
            None => RowClass::New,
        };
        if let Some(rule) = count(&mut plan.counts, class, &row) {
            plan.tally.refuse(row.row.position, rule);
        }
        if plan.counts.records > MAX_RECORDS {
            plan.end = ReadEnd::TooManyRecords;
            break;
        }
    }
    progress.store(rows.progress().0, Ordering::Relaxed);
    plan.counts.refused = plan.tally.refused;
    Ok(plan)
}

/// One chunk read for the apply.
#[derive(Debug)]
pub(super) struct ReadChunk {
    pub(super) rows: Vec<KeyedRow>,
    pub(super) refusals: Vec<Refusal>,
    pub(super) notices: Vec<(Position, Notice)>,
    /// Where the next chunk starts.
    pub(super) cursor: Cursor,
    /// How the read ended, if it did.
    pub(super) end: Option<ReadEnd>,
}

/// Reads the next chunk of `rows` on a blocking thread; the rows and the gate come back with it.
pub(super) fn read_ahead(
    mut rows: Box<dyn Rows>,
    mut gate: Gate,
    key: [u8; 32],
    source: Arc<str>,
) -> tokio::task::JoinHandle<(Box<dyn Rows>, Gate, ReadChunk)> {
    tokio::task::spawn_blocking(move || {
        let chunk = read_chunk(&mut *rows, &mut gate, &key, &source);
        (rows, gate, chunk)
    })
}

/// Reads the next chunk: up to `CHUNK_RECORDS` rows and refusals together (a reader yields a
/// CSV subject whole, so one never straddles two chunks), the rows keyed under `key`, those
/// the gate refuses among the refusals, with the notices read among them, `CHUNK_NOTICES` at
/// most. A file of refused rows, or of objects that only give notices, is held a chunk at a
/// time, as a file of good rows is.
pub(super) fn read_chunk(
    rows: &mut dyn Rows,
    gate: &mut Gate,
    key: &[u8; 32],
    source: &str,
) -> ReadChunk {
    let mut chunk = ReadChunk {
        rows: Vec::new(),
        refusals: Vec::new(),
        notices: Vec::new(),
        cursor: rows.cursor(),
        end: None,
    };
    while chunk.rows.len() + chunk.refusals.len() < CHUNK_RECORDS
        && chunk.notices.len() < CHUNK_NOTICES
    {
        match rows.next() {
            None => {
                chunk.end = Some(ReadEnd::Whole);
                break;
            }
            Some(Err(error)) => {
                chunk.end = Some(read_error(&error));
                return chunk;
            }
            Some(Ok(Item::Refused(refusal))) => chunk.refusals.push(refusal),
            Some(Ok(Item::Notice(position, notice))) => chunk.notices.push((position, notice)),
            Some(Ok(Item::Row(row))) => {
                let row = keyed(key, source, row);
                match gate.admit(&row) {
                    Some(rule) => chunk.refusals.push(Refusal { position: row.row.position, rule }),
                    None => chunk.rows.push(row),
                }
            }
        }
    }
    chunk.cursor = rows.cursor();
    chunk
}
