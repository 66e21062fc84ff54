//! Undo of an import in the node: planned off the engine lock (`engine::plan_undo`, a store
//! clone), audited by the user who asks for it and the job made `undoing`, all in a task of
//! its own so a dropped request cannot leave it half begun; then the `imports` task removes the
//! records in bounded steps (`Engine::undo_step`).

use super::super::{Error, Node, Result};
use super::{ImportError, ImportId, ImportJob, ImportView, JobState, UndoState};

/// The audit subject of an undo that begins.
pub fn undo_subject(id: ImportId, undo: &UndoState) -> String {
    let force = if undo.force { "_F" } else { "" };
    format!("import:{id}_undo_d{}_k{}{force}", undo.planned_remove, undo.planned_keep)
}

impl Node {
    /// Begins undoing import `id` (edited records too with `force`): the undo is planned,
    /// audited (by `user`, who asked for it) and the job made `undoing` before this returns;
    /// the `imports` task removes the records in bounded steps. The work runs in a task of its
    /// own, so a request dropped meanwhile cannot leave a job `undoing` that no task takes up.
    pub async fn undo_import(
        &self,
        id: ImportId,
        force: bool,
        user: String,
    ) -> Result<ImportView, ImportError> {
        let node = self.clone();
        tokio::spawn(async move { node.begin_undo(id, force, user).await })
            .await
            .map_err(|_| Error::EngineTask)?
    }

    async fn begin_undo(
        &self,
        id: ImportId,
        force: bool,
        user: String,
    ) -> Result<ImportView, ImportError> {
        let _admit = self.imports.admit.lock().await;
        let mut job = self.read_job(id).await?.ok_or(ImportError::NoImport)?;
        let kept = job.undo.is_some_and(|undo| undo.kept_edited > 0 || undo.planned_keep > 0);
        match job.state {
            JobState::Queued | JobState::Planning | JobState::Applying | JobState::Undoing => {
                return Err(ImportError::Running);
            }
            JobState::Refused => return Err(ImportError::NotUndoable(job.state)),
            JobState::Undone if !kept => return Err(ImportError::NotUndoable(job.state)),
            JobState::Done | JobState::Failed | JobState::Undone => {}
        }
        if self.imports.active().contains(&id) {
            return Err(ImportError::Running);
        }
        // Planned off the engine lock, through a store clone, a page of rows at a time.
        let store = self.imports.store.clone();
        let (remove, keep) =
            tokio::task::spawn_blocking(move || crate::engine::plan_undo(&store, id, force))
                .await
                .map_err(|_| Error::EngineTask)?
                .map_err(|error| Error::Engine(error.into()))?;
        let now = self.now_ms();
        let undo = UndoState {
            force,
            planned_remove: remove,
            planned_keep: keep,
            at_ms: now,
            ..UndoState::default()
        };
        (job.undo, job.state, job.updated_at_ms) = (Some(undo), JobState::Undoing, now);
        let subject = undo_subject(id, &undo);
        let (begun, by) = (job.clone(), user.clone());
        self.blocking(move |engine| engine.begin_undo(&begun, &by, &subject)).await??;
        self.imports.activate(id);
        tracing::info!(import = id, user = %user, force, remove, keep, "import undo begun");
        Ok(self.import_view(job))
    }

    /// The `imports` task's part: the undo's steps until none is due (or the node stops).
    /// Each step runs under the admission lock: the last one writes the job `undone`, and the
    /// job leaves the task's queue before the lock is let go, so an undo asked for once the
    /// job reads as undone is never refused as running (nor overwritten by this one's end).
    pub(super) async fn undo_job(&self, job: ImportJob) -> Result<()> {
        let (id, force) = (job.id, job.undo.is_some_and(|undo| undo.force));
        loop {
            if self.stop.has_fired() {
                return Ok(());
            }
            let admit = self.imports.admit.lock().await;
            let more = self.blocking(move |engine| engine.undo_step(id, force)).await??;
            // The step may have removed records: the hunt's purge may have work.
            self.hunt.note_records_gone();
            if !more {
                self.imports.finished(id);
            }
            drop(admit);
            self.publish.notify_one();
            if !more {
                tracing::info!(import = id, state = JobState::Undone.as_str(), "import ended");
                return Ok(());
            }
        }
    }
}
