//! Imports in the engine: the import key, job rows, one chunk of keyed rows committed in one
//! durable write with its cursor (records with their `R`, `j`, `Q` and `S` rows), the own
//! feed's daily quota an import's share is paced under, undo in bounded steps, and the release
//! of spread records as quota room comes.
//!
//! The shared interface is fixed here; the bodies are stubs until the engine's part lands.

use crate::import::{Cursor, ImportRow, Notice, Position, Refusal};
use crate::store::imports::{ImportCounts, ImportId, ImportJob};

use super::{Engine, Result};
use crate::audit::{Action, AuditSubject, AuditUser};
use crate::store::keys;

/// The `m` counter of import ids (`keys::last_import_id`).
const LAST_IMPORT: &str = "import";

/// The share of the roster's daily quota this node's own feed uses; the rest covers the
/// receivers' other clocks (their UTC day is not this node's).
pub const OWN_QUOTA_PERCENT: u64 = 90;

/// A row with its idempotency key and keyed content hash (`import/hash.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRow {
    /// The row.
    pub row: ImportRow,
    /// Its row key.
    pub key: [u8; 32],
    /// Its content hash.
    pub content: [u8; 16],
}

/// One chunk of an import: at most `CHUNK_RECORDS` rows, committed in one durable write with
/// the job's cursor, so a resumed job never applies a row twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportChunk {
    /// The import.
    pub import: ImportId,
    /// Its rows.
    pub rows: Vec<KeyedRow>,
    /// Rows refused in it.
    pub refusals: Vec<Refusal>,
    /// Notices in it.
    pub notices: Vec<(Position, Notice)>,
    /// Where the next chunk starts.
    pub cursor: Cursor,
    /// Entries this chunk may still share today (past it, a spread import's records wait).
    pub share_left: u64,
}

/// The own feed's daily quota today.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnQuota {
    /// The roster's entries per day.
    pub entries_per_day: u64,
    /// The roster's bytes per day.
    pub bytes_per_day: u64,
    /// Entries signed today.
    pub signed_today_entries: u64,
    /// Wire bytes signed today.
    pub signed_today_bytes: u64,
    /// Entries waiting in the outbox.
    pub outbox_entries: u64,
    /// What an import may still share today.
    pub left_today: u64,
}

impl Engine {
    /// The import key, drawn and stored durably at the first real import.
    pub fn import_key(&mut self) -> Result<[u8; 32]> {
        Ok(Default::default())
    }

    /// The import key if one was drawn (a dry run draws none: every row is new).
    pub fn import_key_if_any(&self) -> Result<Option<[u8; 32]>> {
        Ok(Default::default())
    }

    /// Stores a new job under the next import id, durably; returns the id.
    pub fn create_import(&mut self, mut job: ImportJob) -> Result<ImportId> {
        let mut txn = self.store.txn();
        job.id = self.next_counter(&mut txn, LAST_IMPORT)?;
        txn.put(keys::import_job(job.id), &job);
        txn.commit_durable()?;
        Ok(job.id)
    }

    /// Stores a job's new state, durably.
    pub fn put_import(&mut self, job: &ImportJob) -> Result<()> {
        let mut txn = self.store.txn();
        txn.put(keys::import_job(job.id), job);
        txn.commit_durable()?;
        Ok(())
    }

    /// Writes the import's audit line (`import`, `subject`), then the job `applying`, durably.
    pub fn begin_import(&mut self, job: &ImportJob, subject: &str) -> Result<()> {
        let user = AuditUser::new(&job.user)?;
        self.audit.append(&user, Action::Import, &AuditSubject::new(subject)?)?;
        self.put_import(job)
    }

    /// Commits one chunk: its records, their import rows and the job with its cursor, in one
    /// durable write. Returns the chunk's counts.
    pub fn import_chunk(&mut self, chunk: ImportChunk) -> Result<ImportCounts> {
        let _ = chunk;
        Ok(Default::default())
    }

    /// The own feed's daily quota today.
    pub fn own_quota(&self) -> Result<OwnQuota> {
        Ok(Default::default())
    }

    /// (records to remove, records kept) by an undo of `import`; reads only.
    pub fn plan_undo(&self, import: ImportId, force: bool) -> Result<(u64, u64)> {
        let _ = (import, force);
        Ok(Default::default())
    }

    /// Writes the undo's audit line (`undo_import`, `subject`), then the job `undoing`.
    pub fn begin_undo(&mut self, job: &ImportJob, subject: &str) -> Result<()> {
        let _ = (job, subject);
        Ok(())
    }

    /// Removes the next slice of the import's records (reason `erroneous`) in one durable
    /// write; true when more are due.
    pub fn undo_step(&mut self, import: ImportId, force: bool) -> Result<bool> {
        let _ = (import, force);
        Ok(false)
    }

    /// Shares the next slice of spread records while today's quota has room; true when it
    /// released some.
    pub fn release_pending_step(&mut self) -> Result<bool> {
        Ok(false)
    }
}
