//! Imports in the node (docs/API.md, Imports): an upload spooled to `<data_dir>/imports/`
//! (`imports/spool.rs`) becomes a job (`M`) that the `imports` task runs, one at a time in id
//! order: `queued → planning → applying → done`, or `refused` at plan (`quota`, `format`,
//! `too_many_records`: nothing written but the job), or `failed` (`source_missing`, `store`,
//! `audit`: what applied stays); `done | failed | undone (records kept) → undoing → undone`.
//!
//! - **Plan**: the file is read, keyed and classified against a store clone, never under the
//!   engine lock and writing nothing (`imports/plan.rs`); then today's own quota is checked.
//! - **Begin**: the import key is drawn, then the audit line (counts, never a value), then the
//!   job `applying` with its plan, durably. A crash between the two plans again and writes a
//!   second line on resume.
//! - **Apply**: chunks of at most `CHUNK_RECORDS` records, each one engine call and one durable
//!   write with the job's cursor (`Engine::import_chunk`). The next chunk is read, off the
//!   engine lock and the store, while the engine applies the current one, so at most two are
//!   held. The publisher is woken after the last chunk, and while chunks apply it signs one
//!   turn of batches per `IMPORT_PACE` at most.
//! - **Resume**: at start every `queued`, `planning`, `applying` and `undoing` job is taken up
//!   again; `applying` from its cursor, so no row is applied twice. A queued job without its
//!   file fails `source_missing`; the spool is deleted at `done`, `refused` and `failed`.
//! - **Dry run**: plan and quota inside the request, from a spool deleted before the answer: no
//!   job, no store write, no audit line, nothing published.
//! - **Undo** (`imports/undo.rs`): planned off the engine lock and audited by the user who asks,
//!   then removed by the task in bounded steps.
//! - **Dropped requests**: the durable part of an upload (job stored, file renamed, task woken)
//!   and of an undo's start run in spawned tasks the request awaits, so a client gone or a
//!   timeout cannot cut them in half; as a backstop the task rescans the stored jobs for active
//!   ones whenever it wakes.
//!
//! Logs name import ids and counts only: never a value, subject, source label or STIX id.

mod plan;
mod spool;
mod undo;
mod waits;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::calls::Lane;
use super::{Error, Node, Result};
use crate::engine::{ImportChunk, OwnQuota};
use crate::import::limits::{MAX_QUEUED_IMPORTS, MAX_SOURCE_BYTES};
use crate::import::{Defaults, Format, ImportOptions, Overrides};
/// The job's vocabulary, as the API sees it.
pub use crate::store::imports::{
    ImportCounts, ImportId, ImportJob, JobState, QuotaCheck, UndoState,
};
use crate::store::{self, Store};
use plan::{Gate, ReadEnd};
pub use spool::{IMPORTS_DIR, Spool};
pub use undo::undo_subject;
use waits::{Applying, DiskFullRetries};

/// What an analyst asks of an import (the API's query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportRequest {
    /// The format; none: told from the file's first bytes.
    pub format: Option<Format>,
    /// The source label (`[A-Za-z0-9._-]`, at most `MAX_SOURCE_BYTES`); required for CSV and
    /// JSON lines.
    pub source: Option<String>,
    /// Per-import defaults (`share` is required by the API).
    pub defaults: Defaults,
    /// Marking overrides (the API asks the admin role for them).
    pub overrides: Overrides,
    /// Spread a share past today's quota over the next days.
    pub spread: bool,
}

/// A job as a reader sees it: the stored job, its progress in bytes of the file read in the
/// current pass (done, total), and whether it is a dry run's (never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportView {
    /// The job.
    pub job: ImportJob,
    /// (bytes read, file bytes).
    pub progress: (u64, u64),
    /// A dry run's answer: no job was made.
    pub dry_run: bool,
}

/// Why an import call was refused. Messages repeat no file content.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The request breaks a rule (the message names it).
    #[error("{0}")]
    Invalid(&'static str),
    /// The file is larger than `MAX_IMPORT_BYTES`.
    #[error("an import file is at most {} bytes", crate::import::limits::MAX_IMPORT_BYTES)]
    TooLarge,
    /// `MAX_QUEUED_IMPORTS` imports are queued or running.
    #[error("{MAX_QUEUED_IMPORTS} imports are queued or running; try again once one has ended")]
    Busy,
    /// No import of that id.
    #[error("no such import")]
    NoImport,
    /// The import's state allows no undo.
    #[error("an import that is {0} cannot be undone")]
    NotUndoable(JobState),
    /// The import is queued or running (or being undone).
    #[error("the import is still running; undo it once it has ended")]
    Running,
    /// The upload could not be written to the imports' directory.
    #[error("the import file could not be spooled: {0}")]
    Spool(#[source] std::io::Error),
    /// The node failed or refused.
    #[error(transparent)]
    Node(#[from] Error),
}

impl From<crate::engine::Error> for ImportError {
    fn from(error: crate::engine::Error) -> Self {
        Self::Node(Error::Engine(error))
    }
}

/// The imports' shared state in the node.
pub(super) struct Imports {
    store: Store,
    dir: PathBuf,
    /// Wakes the `imports` task: a job was queued or an undo begun.
    wake: Notify,
    /// Admits one upload or undo at a time (the queue's bound, the job's state).
    admit: tokio::sync::Mutex<()>,
    /// Jobs the task has yet to take up or finish, in id order.
    active: Mutex<BTreeSet<ImportId>>,
    /// The job being read now, and its bytes read.
    running: Mutex<Option<(ImportId, Arc<AtomicU64>)>>,
    /// Set when the node stops: a plan being read ends early (the job resumes at start).
    cancel: Arc<AtomicBool>,
    /// Set while a job's chunks are applied: the publisher paces itself meanwhile.
    applying: AtomicBool,
    /// Set once the job the task runs has ended and left `active` (`Imports::finished`, from
    /// `Node::finish_job` or the last undo step).
    finished: AtomicBool,
    /// The backoff of a job that met a full disk (`daemon/imports/waits.rs`).
    disk_full: DiskFullRetries,
}

impl std::fmt::Debug for Imports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imports").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Imports {
    /// Opens the imports' directory (0700) under `data_dir`, deletes uploads a stop
    /// interrupted and finds the jobs to take up again (blocking).
    pub(super) fn open(store: Store, data_dir: &Path) -> store::Result<Self> {
        let dir = data_dir.join(IMPORTS_DIR);
        store::create_private_dir(&dir)?;
        let deleted = spool::clean_leftovers(&dir)?;
        if deleted > 0 {
            tracing::info!(deleted, "deleted import uploads a stop interrupted");
        }
        let active = active_jobs(&store)?;
        if !active.is_empty() {
            tracing::info!(jobs = active.len(), "imports to take up again");
        }
        let orphans = spool::clean_orphans(&dir, &active)?;
        if orphans > 0 {
            tracing::info!(deleted = orphans, "deleted the files of imports that had ended");
        }
        Ok(Self {
            store,
            dir,
            wake: Notify::new(),
            admit: tokio::sync::Mutex::new(()),
            active: Mutex::new(active),
            running: Mutex::new(None),
            cancel: Arc::new(AtomicBool::new(false)),
            applying: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            disk_full: DiskFullRetries::default(),
        })
    }

    /// Whether a job's chunks are being applied now (`daemon/publisher.rs` paces itself).
    pub(super) fn applying(&self) -> bool {
        self.applying.load(Ordering::Relaxed)
    }

    fn active(&self) -> std::sync::MutexGuard<'_, BTreeSet<ImportId>> {
        self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn activate(&self, id: ImportId) {
        self.active().insert(id);
        self.wake.notify_one();
    }

    fn deactivate(&self, id: ImportId) {
        self.active().remove(&id);
    }

    /// The job the task runs has ended: it leaves the queue (under the admission lock, with
    /// its end state written), and the task leaves it be.
    fn finished(&self, id: ImportId) {
        self.deactivate(id);
        self.finished.store(true, Ordering::Relaxed);
    }

    /// The counter of bytes read for the job `id`, now the one being read.
    fn start_progress(&self, id: ImportId) -> Arc<AtomicU64> {
        let progress = Arc::new(AtomicU64::new(0));
        *self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((id, progress.clone()));
        progress
    }

    fn progress_of(&self, id: ImportId) -> Option<u64> {
        let running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        running
            .as_ref()
            .filter(|(running, _)| *running == id)
            .map(|(_, p)| p.load(Ordering::Relaxed))
    }
}

/// States the task takes up (again).
fn is_active(state: JobState) -> bool {
    matches!(state, JobState::Queued | JobState::Planning | JobState::Applying | JobState::Undoing)
}

/// The ids of the stored jobs in a state the task takes up (blocking; a page at a time).
fn active_jobs(store: &Store) -> store::Result<BTreeSet<ImportId>> {
    let mut active = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = store::imports::jobs(store, after, 500)?;
        let Some(last) = page.last() else { return Ok(active) };
        after = last.id;
        active.extend(page.iter().filter(|job| is_active(job.state)).map(|job| job.id));
    }
}

/// The options a job reads its file with.
fn options_of(job: &ImportJob) -> ImportOptions {
    ImportOptions {
        format: job.format,
        source: job.source.clone(),
        defaults: job.defaults.clone(),
        overrides: job.overrides,
        spread: job.spread,
    }
}

/// Puts a plan's counts and quota check in `job`, and refuses it when the plan says so
/// (the state stays `Planning` otherwise).
fn settle_plan(job: &mut ImportJob, plan: plan::Plan, own: &OwnQuota) {
    job.plan = plan.counts;
    job.quota = Some(own.check(plan.counts.share_entries));
    (job.refusals, job.notices) = (plan.tally.refusals, plan.tally.notices);
    job.state = JobState::Planning;
    let refused = match plan.end {
        ReadEnd::Whole | ReadEnd::Cancelled => None,
        ReadEnd::TooManyRecords => Some("too_many_records"),
        ReadEnd::Format => Some("format"),
        ReadEnd::SourceMissing => {
            job.state = JobState::Failed;
            job.reason = Some("source_missing".into());
            return;
        }
    };
    // Past today's room: refused unless spread, and a spread with no daily room at all
    // (`days` is `u32::MAX`) would wait for ever.
    let refused = refused.or_else(|| {
        job.quota
            .filter(|quota| !quota.fits_today && (!job.spread || quota.days == u32::MAX))
            .map(|_| "quota")
    });
    if let Some(reason) = refused {
        (job.state, job.reason) = (JobState::Refused, Some(reason.into()));
    }
}

/// The audit subject of an import that begins applying: its id and planned counts, and the
/// flags `S` (spread), `R`, `A`, `M` (overrides of red, amber+strict, unmarked).
pub fn import_subject(job: &ImportJob) -> String {
    let plan = &job.plan;
    let mut subject = format!(
        "import:{}_a{}_u{}_x{}_r{}_s{}",
        job.id, plan.added, plan.updated, plan.removed, plan.refused, plan.share_entries
    );
    let flags: String = [
        (job.spread, 'S'),
        (job.overrides.red, 'R'),
        (job.overrides.amber_strict, 'A'),
        (job.overrides.unmarked, 'M'),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if !flags.is_empty() {
        subject.push('_');
        subject.push_str(&flags);
    }
    subject
}

/// Whether a source label keeps to `[A-Za-z0-9._-]`, 1 to `MAX_SOURCE_BYTES` bytes.
fn valid_source(source: &str) -> bool {
    !source.is_empty()
        && source.len() <= MAX_SOURCE_BYTES
        && source.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The source label of a STIX import that names none (its row keys ignore the source).
const STIX_SOURCE: &str = "stix";

impl Node {
    // ---- uploads, dry runs, reads and undo (the API's) --------------------------------

    /// A new, empty spool for an upload in the imports' directory.
    pub async fn import_spool(&self) -> Result<Spool, ImportError> {
        let dir = self.imports.dir.clone();
        tokio::task::spawn_blocking(move || Spool::create(&dir))
            .await
            .map_err(|_| Error::EngineTask)?
            .map_err(ImportError::Spool)
    }

    /// Refuses an upload at once when the queue is full, before its file is read.
    pub fn import_queue_full(&self) -> bool {
        self.imports.active().len() >= MAX_QUEUED_IMPORTS
    }

    /// The options of `request` for the spooled file: the format given or told from the
    /// file's first bytes, and a source label within its rules (required for CSV and JSON
    /// lines).
    fn import_options(spool: &Spool, request: ImportRequest) -> Result<ImportOptions, ImportError> {
        let format = match request.format {
            Some(format) => format,
            None => crate::import::detect(spool.head()).ok_or(ImportError::Invalid(
                "the format could not be told from the file's first bytes; give format",
            ))?,
        };
        let source = match (request.source, format) {
            (Some(source), _) if valid_source(&source) => source,
            (Some(_), _) => {
                return Err(ImportError::Invalid(
                    "source must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
                ));
            }
            (None, Format::Stix) => STIX_SOURCE.to_owned(),
            (None, _) => {
                return Err(ImportError::Invalid("source is required for csv and jsonl imports"));
            }
        };
        Ok(ImportOptions {
            format,
            source,
            defaults: request.defaults,
            overrides: request.overrides,
            spread: request.spread,
        })
    }

    /// A new job of `options` by `user`, nothing done yet.
    fn new_job(&self, options: ImportOptions, user: String, file_bytes: u64) -> ImportJob {
        ImportJob::queued(options, user, self.now_ms(), file_bytes)
    }

    /// Queues the spooled upload as an import by `user`: the job is stored durably, the file
    /// renamed to it, and the `imports` task woken. Returns the job's id.
    pub async fn import_upload(
        &self,
        mut spool: Spool,
        request: ImportRequest,
        user: String,
    ) -> Result<ImportId, ImportError> {
        let options = Self::import_options(&spool, request)?;
        spool.finish().await?;
        let job = self.new_job(options, user, spool.bytes());
        // The job's write, the file's rename and the task's wake-up run in a task of their own:
        // a request dropped meanwhile (a client gone, a timeout) cannot leave a job stored but
        // neither renamed to nor taken up.
        let node = self.clone();
        tokio::spawn(async move { node.queue_import(spool, job).await })
            .await
            .map_err(|_| Error::EngineTask)?
    }

    /// [`Node::import_upload`]'s durable part: the job stored, the file renamed to it, the
    /// `imports` task woken, all under the admission lock.
    async fn queue_import(
        &self,
        mut spool: Spool,
        job: ImportJob,
    ) -> Result<ImportId, ImportError> {
        let _admit = self.imports.admit.lock().await;
        if self.import_queue_full() {
            return Err(ImportError::Busy);
        }
        let id = self.blocking(move |engine| engine.create_import(job)).await??;
        let to = spool::source_path(&self.imports.dir, id);
        let kept = tokio::task::spawn_blocking(move || spool.keep_as(&to)).await;
        // Queued with or without its file: without, the task fails it `source_missing`.
        self.imports.activate(id);
        tracing::info!(import = id, "import queued");
        match kept {
            Ok(Ok(())) => Ok(id),
            Ok(Err(error)) => Err(ImportError::Spool(error)),
            Err(_) => Err(Error::EngineTask.into()),
        }
    }

    /// A dry run of the spooled upload: the plan and the quota check an import would make,
    /// with nothing written, audited or published; the spool is deleted before it returns.
    pub async fn import_dry_run(
        &self,
        mut spool: Spool,
        request: ImportRequest,
        user: String,
    ) -> Result<ImportView, ImportError> {
        let options = Self::import_options(&spool, request)?;
        spool.finish().await?;
        let key = self.call(Lane::Api, |engine| engine.import_key_if_any()).await??;
        let mut job = self.new_job(options.clone(), user, spool.bytes());
        let plan = self.plan_file(spool.path().to_owned(), options, key, None).await?;
        drop(spool);
        let own = self.call(Lane::Api, |engine| engine.own_quota()).await??;
        settle_plan(&mut job, plan, &own);
        if job.state == JobState::Planning {
            job.state = JobState::Done;
        }
        let total = job.file_bytes;
        Ok(ImportView { job, progress: (total, total), dry_run: true })
    }

    /// At most `limit` imports with an id above `after`, in id order.
    pub async fn imports(&self, after: ImportId, limit: usize) -> Result<Vec<ImportView>> {
        let store = self.imports.store.clone();
        let jobs = tokio::task::spawn_blocking(move || store::imports::jobs(&store, after, limit))
            .await
            .map_err(|_| Error::EngineTask)?
            .map_err(|error| Error::Engine(error.into()))?;
        Ok(jobs.into_iter().map(|job| self.import_view(job)).collect())
    }

    /// The import `id`, if there is one.
    pub async fn import(&self, id: ImportId) -> Result<Option<ImportView>> {
        Ok(self.read_job(id).await?.map(|job| self.import_view(job)))
    }

    fn import_view(&self, job: ImportJob) -> ImportView {
        let total = job.file_bytes;
        let done = match job.state {
            JobState::Done => total,
            JobState::Queued => 0,
            _ => self
                .imports
                .progress_of(job.id)
                .unwrap_or_else(|| job.cursor.map_or(0, |cursor| cursor.byte)),
        };
        ImportView { job, progress: (done.min(total), total), dry_run: false }
    }

    async fn read_job(&self, id: ImportId) -> Result<Option<ImportJob>> {
        let store = self.imports.store.clone();
        tokio::task::spawn_blocking(move || store::imports::job(&store, id))
            .await
            .map_err(|_| Error::EngineTask)?
            .map_err(|error| Error::Engine(error.into()))
    }

    // ---- the `imports` task ---------------------------------------------------------------

    /// Reads, keys and classifies the file on a blocking thread, writing nothing.
    async fn plan_file(
        &self,
        path: PathBuf,
        options: ImportOptions,
        key: Option<[u8; 32]>,
        id: Option<ImportId>,
    ) -> Result<plan::Plan> {
        let store = self.imports.store.clone();
        let progress = id.map_or_else(Default::default, |id| self.imports.start_progress(id));
        let cancel = self.imports.cancel.clone();
        let max_retention_ms = self.blocking(|engine| engine.limits().max_retention_ms).await?;
        tokio::task::spawn_blocking(move || {
            plan::plan(&store, &path, &options, key, max_retention_ms, &progress, &cancel)
        })
        .await
        .map_err(|_| Error::EngineTask)?
        .map_err(|error| Error::Engine(error.into()))
    }

    /// Runs job `id` to its end (or until the node stops); on an error the job fails, unless
    /// the node is stopping (then it is taken up again at the next start).
    async fn run_import_job(&self, id: ImportId) {
        self.imports.finished.store(false, Ordering::Relaxed);
        let outcome = self.run_import_job_steps(id).await;
        if self.stop.has_fired() {
            return;
        }
        if let Err(error) = &outcome
            && store::space::is_disk_full(error)
        {
            // Retryable: the job stays active and is tried again from its cursor.
            let wait = self.imports.disk_full.next_wait();
            tracing::warn!(import = id, wait_s = wait.as_secs(), "import waits for disk space");
            tokio::time::sleep(wait).await;
            return;
        }
        self.imports.disk_full.reset();
        if let Err(error) = outcome {
            let reason = match error.kind() {
                super::ErrorKind::Audit => "audit",
                _ => "store",
            };
            tracing::error!(import = id, %error, reason, "import failed");
            let failed = async {
                let mut job = self.read_job(id).await?.ok_or(Error::Closed)?;
                (job.state, job.reason) = (JobState::Failed, Some(reason.into()));
                self.finish_job(job).await
            };
            if let Err(error) = failed.await {
                tracing::error!(import = id, %error, "the failed import could not be marked so");
            }
        }
        // A job that ended left the queue with its end state (`finish_job`, or the last undo
        // step in `undo_job`); an undo begun since then is queued again and must stay. Any
        // other job leaves it here: one that could not be marked failed stays active in the
        // store, and the next start, or the rescan at the next wake of the task, takes it up
        // again.
        if !self.imports.finished.load(Ordering::Relaxed) {
            self.imports.deactivate(id);
        }
    }

    async fn run_import_job_steps(&self, id: ImportId) -> Result<()> {
        let Some(job) = self.read_job(id).await? else { return Ok(()) };
        match job.state {
            JobState::Queued | JobState::Planning => self.plan_job(job).await,
            JobState::Applying => self.apply_job(job).await,
            JobState::Undoing => self.undo_job(job).await,
            JobState::Done | JobState::Refused | JobState::Failed | JobState::Undone => Ok(()),
        }
    }

    /// Stores a job at its end (`done`, `refused` or `failed`; an undo ends in its last step,
    /// `undo_job`), takes it out of the queue and deletes its file.
    async fn finish_job(&self, mut job: ImportJob) -> Result<()> {
        job.updated_at_ms = self.now_ms();
        let (id, state) = (job.id, job.state);
        {
            // The end state and the job's leaving the queue are one step under the admission
            // lock: an undo asked for once the job reads as ended is never refused as running.
            let _admit = self.imports.admit.lock().await;
            self.blocking(move |engine| engine.put_import(&job)).await??;
            self.imports.finished(id);
        }
        let path = spool::source_path(&self.imports.dir, id);
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        if let Ok(Err(error)) = removed
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(import = id, %error, "an import's file could not be deleted");
        }
        tracing::info!(import = id, state = state.as_str(), "import ended");
        Ok(())
    }

    async fn plan_job(&self, mut job: ImportJob) -> Result<()> {
        job.state = JobState::Planning;
        job.updated_at_ms = self.now_ms();
        let planning = job.clone();
        self.blocking(move |engine| engine.put_import(&planning)).await??;
        let key = self.blocking(|engine| engine.import_key_if_any()).await??;
        let path = spool::source_path(&self.imports.dir, job.id);
        let plan = self.plan_file(path, options_of(&job), key, Some(job.id)).await?;
        if plan.end == ReadEnd::Cancelled {
            return Ok(());
        }
        let own = self.blocking(|engine| engine.own_quota()).await??;
        settle_plan(&mut job, plan, &own);
        if job.state != JobState::Planning {
            return self.finish_job(job).await;
        }
        // The key is drawn before anything names a row; the audit line comes before the job
        // says `applying`, and the apply's chunks count refusals and notices again.
        self.blocking(|engine| engine.import_key()).await??;
        (job.state, job.updated_at_ms) = (JobState::Applying, self.now_ms());
        (job.cursor, job.done) = (None, ImportCounts::default());
        (job.refusals, job.notices) = (Vec::new(), Default::default());
        let subject = import_subject(&job);
        let begun = job.clone();
        self.blocking(move |engine| engine.begin_import(&begun, &subject)).await??;
        tracing::info!(import = job.id, records = job.plan.records, "import applying");
        self.apply_job(job).await
    }

    async fn apply_job(&self, job: ImportJob) -> Result<()> {
        let id = job.id;
        let key = self.blocking(|engine| engine.import_key()).await??;
        let (options, cursor) = (options_of(&job), job.cursor);
        let path = spool::source_path(&self.imports.dir, id);
        let progress = self.imports.start_progress(id);
        let opened = tokio::task::spawn_blocking(move || plan::open(&path, &options, cursor))
            .await
            .map_err(|_| Error::EngineTask)?;
        let rows = match opened {
            Ok(rows) => rows,
            Err(end) => return self.fail_read(job, end).await,
        };
        let gate = Gate::new(job.format);
        let source: Arc<str> = job.source.clone().into();
        let applying = Applying::new(&self.imports.applying, self.publish.clone());
        // The next chunk is read (parsed, canonicalised, keyed: no store) on another thread
        // while the engine applies this one, so at most two are held; a chunk that fails waits
        // for the read ahead before the job fails.
        let mut reading = plan::read_ahead(rows, gate, key, Arc::clone(&source));
        loop {
            let (rows, gate, chunk) = reading.await.map_err(|_| Error::EngineTask)?;
            if self.stop.has_fired() {
                return Ok(());
            }
            progress.store(rows.progress().0, Ordering::Relaxed);
            if let Some(end @ (ReadEnd::Format | ReadEnd::SourceMissing)) = chunk.end {
                return self.fail_read(job, end).await;
            }
            let ended = chunk.end.is_some();
            let next = (!ended).then(|| plan::read_ahead(rows, gate, key, Arc::clone(&source)));
            let applied = self.apply_chunk(id, job.spread, chunk).await;
            let Some(next) = next else {
                applied?;
                break;
            };
            if let Err(error) = applied {
                // The read ahead ends before the job fails, so a retry reads alone.
                let _ = next.await;
                return Err(error);
            }
            reading = next;
        }
        // What the chunks queued is published now: the guard's drop wakes the publisher.
        drop(applying);
        let mut job = self.read_job(id).await?.unwrap_or(job);
        job.state = JobState::Done;
        self.finish_job(job).await
    }

    /// Applies one chunk read, in one engine call; a chunk of nothing is skipped.
    async fn apply_chunk(&self, id: ImportId, spread: bool, chunk: plan::ReadChunk) -> Result<()> {
        if chunk.rows.is_empty() && chunk.refusals.is_empty() && chunk.notices.is_empty() {
            return Ok(());
        }
        let chunk = ImportChunk {
            import: id,
            rows: chunk.rows,
            refusals: chunk.refusals,
            notices: chunk.notices,
            cursor: chunk.cursor,
            share_left: u64::MAX,
        };
        self.blocking(move |engine| {
            // Past today's room a spread import's records wait; others share now.
            let share_left = if spread { engine.own_quota()?.left_today } else { u64::MAX };
            engine.import_chunk(ImportChunk { share_left, ..chunk })
        })
        .await??;
        Ok(())
    }

    /// Ends a job whose file could not be read on: `failed`, naming why.
    async fn fail_read(&self, mut job: ImportJob, end: ReadEnd) -> Result<()> {
        let reason = if end == ReadEnd::SourceMissing { "source_missing" } else { "format" };
        let id = job.id;
        job = self.read_job(id).await?.unwrap_or(job);
        (job.state, job.reason) = (JobState::Failed, Some(reason.into()));
        self.finish_job(job).await
    }
}

impl Node {
    /// A backstop when the `imports` task wakes: every stored job in an active state is taken
    /// up, whether or not whoever made it so got to wake the task. Under the admission lock,
    /// so a job being queued is seen only once its file is in place.
    async fn take_up_stored_jobs(&self) {
        let _admit = self.imports.admit.lock().await;
        let store = self.imports.store.clone();
        match tokio::task::spawn_blocking(move || active_jobs(&store)).await {
            Ok(Ok(stored)) => self.imports.active().extend(stored),
            Ok(Err(error)) => tracing::warn!(%error, "the stored imports could not be read"),
            Err(_) => tracing::warn!("the stored imports could not be read"),
        }
    }
}

/// The `imports` task: takes up the jobs left active at start, then each one queued, one at a
/// time in id order, until the node stops (a plan being read is told to end).
pub(super) async fn imports_task(node: Node, stop: impl Future<Output = ()> + Send + 'static) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let next = node.imports.active().first().copied();
        match next {
            Some(id) => tokio::select! {
                () = &mut stop => break,
                () = node.run_import_job(id) => {}
            },
            None => tokio::select! {
                () = &mut stop => break,
                () = node.imports.wake.notified() => node.take_up_stored_jobs().await,
            },
        }
    }
    node.imports.cancel.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests;
