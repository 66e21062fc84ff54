//! Undo of an import: the records it created and that are unchanged since (all of them, with
//! force) removed in bounded steps, reason `erroneous`. A removal retracts a token only when no
//! other shared record holds it, and voids the own identification only when no record does
//! (`Engine::stage_removal`); it deletes the record's import rows, so the same file can be
//! imported again.

use crossmatch_protocol::RetractReason;

use crate::audit::{Action, AuditSubject, AuditUser};
use crate::engine::{Engine, Result, SLICE_ROWS};
use crate::store::imports::{self, ImportId, ImportJob, ImportedRecord, JobState, UndoState};
use crate::store::{self, Record, Store, keys};

/// (records to remove, records kept) by an undo of `import`: reads only, through `store` (a
/// clone, never under the engine lock), a page of at most [`SLICE_ROWS`] of its `j` rows at a
/// time, so memory stays bounded however many records the import made.
pub fn plan_undo(store: &Store, import: ImportId, force: bool) -> store::Result<(u64, u64)> {
    let (mut remove, mut keep, mut after) = (0, 0, 0);
    loop {
        let (from, to) = keys::imported_records_after(import, after);
        let page = store.range_keys(&from, &to, SLICE_ROWS)?;
        for key in &page {
            let Some((_, id)) = keys::parse_imported_record(key) else { continue };
            after = id;
            let Some(made) = store.get::<ImportedRecord>(key)? else { continue };
            let Some(record) = store.get::<Record>(&keys::record(id))? else { continue };
            if force || imports::fingerprint(&record) == made.fingerprint {
                remove += 1;
            } else {
                keep += 1;
            }
        }
        if page.len() < SLICE_ROWS {
            return Ok((remove, keep));
        }
    }
}

impl Engine {
    /// Writes the undo's audit line (`undo_import`, `subject`, by `user`: the one who undoes,
    /// not the importer), then the job `undoing`.
    pub fn begin_undo(&mut self, job: &ImportJob, user: &str, subject: &str) -> Result<()> {
        let user = AuditUser::new(user)?;
        let subject = AuditSubject::new(subject)?;
        self.store.check_space()?;
        self.audit.append(&user, Action::UndoImport, &subject)?;
        let job = ImportJob { state: JobState::Undoing, ..job.clone() };
        self.put_import(&job)
    }

    /// Removes the next slice of the import's records (reason `erroneous`) in one durable
    /// write; true when more are due.
    ///
    /// At most [`SLICE_ROWS`] of its `j` rows a step, from the cursor in the job's undo state:
    /// a record unchanged since the import wrote it (or any, with `force`) is removed; an
    /// edited one is kept and counted (its `j` row stays, so a later undo with force finds
    /// it). The job's undo state moves with the slice, in its write; the last step makes the
    /// job `undone`.
    pub fn undo_step(&mut self, import: ImportId, force: bool) -> Result<bool> {
        let now = self.clock.now_ms();
        let store = self.store.clone();
        let mut txn = store.txn();
        let mut job: ImportJob = txn
            .get(&keys::import_job(import))?
            .ok_or(store::Error::Corrupt { prefix: char::from(keys::prefix::IMPORT_JOB) })?;
        let mut undo = job.undo.unwrap_or(UndoState { force, at_ms: now, ..UndoState::default() });
        let (from, to) = keys::imported_records_after(import, undo.after);
        let slice = self.store.range_keys(&from, &to, SLICE_ROWS)?;
        let mut events = Vec::new();
        for key in &slice {
            let Some((_, id)) = keys::parse_imported_record(key) else { continue };
            undo.after = id;
            let made = txn.get::<ImportedRecord>(key)?;
            let record = txn.get::<Record>(&keys::record(id))?;
            let (Some(made), Some(record)) = (made, record) else {
                // Its record went another way: nothing to undo.
                txn.remove(key.clone());
                continue;
            };
            if force || imports::fingerprint(&record) == made.fingerprint {
                let reason = RetractReason::Erroneous;
                let (_, removed) = self.stage_removal(&mut txn, id, reason, now)?;
                events.extend(removed);
                undo.removed += 1;
            } else {
                undo.kept_edited += 1;
            }
        }
        let more = slice.len() == SLICE_ROWS;
        if !more {
            job.state = JobState::Undone;
        }
        job.undo = Some(undo);
        job.updated_at_ms = now;
        txn.put(keys::import_job(import), &job);
        txn.commit_durable()?;
        self.announce(events);
        Ok(more)
    }
}
