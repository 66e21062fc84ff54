//! Undo of an import: the records it created and that are unchanged since (all of them, with
//! force) removed in bounded steps, reason `erroneous`. A removal retracts a token only when no
//! other shared record holds it, and voids the own identification only when no record does
//! (`Engine::stage_removal`); it deletes the record's import rows, so the same file can be
//! imported again.

use crossmatch_protocol::RetractReason;

use crate::audit::{Action, AuditSubject, AuditUser};
use crate::engine::{Engine, Result, SLICE_ROWS};
use crate::store::imports::{self, ImportId, ImportJob, JobState, Undo, UndoState};
use crate::store::{self, Record, RecordId, Store, keys};

/// (records to remove, records kept) by an undo of `import`: reads only, through `store` (a
/// clone, never under the engine lock), a page of at most [`SLICE_ROWS`] records of the job's
/// [`created`](ImportJob::created) range at a time, so memory stays bounded however many
/// records the import made.
pub fn plan_undo(store: &Store, import: ImportId, force: bool) -> store::Result<(u64, u64)> {
    let Some(job) = imports::job(store, import)? else { return Ok((0, 0)) };
    let (mut remove, mut keep, mut after) = (0, 0, 0);
    loop {
        let page = undo_page(store, &job, after)?;
        for (id, key) in &page {
            after = *id;
            let Some(record) = store.get::<Record>(key)? else { continue };
            match imports::undo_of(&record, import, force) {
                Undo::Remove => remove += 1,
                Undo::KeepEdited => keep += 1,
                Undo::NotItsOwn => {}
            }
        }
        if page.len() < SLICE_ROWS {
            return Ok((remove, keep));
        }
    }
}

/// The next page of at most [`SLICE_ROWS`] records an undo of `job` looks at: those with an id
/// past `after` in the job's created range, with their keys.
fn undo_page(
    store: &Store,
    job: &ImportJob,
    after: RecordId,
) -> store::Result<Vec<(RecordId, Vec<u8>)>> {
    let Some((first, last)) = job.created else { return Ok(Vec::new()) };
    let (from, to) = keys::records_after_until(after.max(first.saturating_sub(1)), last);
    let page = store.range_keys(&from, &to, SLICE_ROWS)?;
    Ok(page.into_iter().filter_map(|key| Some((keys::parse_record(&key)?, key))).collect())
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
    /// At most [`SLICE_ROWS`] records of the job's created range a step, from the cursor in
    /// the job's undo state: a record the import created and that is unchanged since (or any
    /// it created, with `force`) is removed; an edited one is kept and counted (a later undo
    /// with force finds it again); records of others in the range are passed over. The job's
    /// undo state moves with the slice, in its write; the last step makes the job `undone`.
    pub fn undo_step(&mut self, import: ImportId, force: bool) -> Result<bool> {
        let now = self.clock.now_ms();
        let store = self.store.clone();
        let mut txn = store.txn();
        let mut job: ImportJob = txn
            .get(&keys::import_job(import))?
            .ok_or(store::Error::Corrupt { prefix: char::from(keys::prefix::IMPORT_JOB) })?;
        let mut undo = job.undo.unwrap_or(UndoState { force, at_ms: now, ..UndoState::default() });
        let slice = undo_page(&store, &job, undo.after)?;
        let mut events = Vec::new();
        for (id, key) in &slice {
            undo.after = *id;
            let Some(record) = txn.get::<Record>(key)? else { continue };
            match imports::undo_of(&record, import, force) {
                Undo::Remove => {
                    let reason = RetractReason::Erroneous;
                    let (_, removed) = self.stage_removal(&mut txn, *id, reason, now)?;
                    events.extend(removed);
                    undo.removed += 1;
                }
                Undo::KeepEdited => undo.kept_edited += 1,
                Undo::NotItsOwn => {}
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
