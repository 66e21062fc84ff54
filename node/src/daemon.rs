//! The running node: the one façade ([`Node`]) that the API, the binary and the local
//! federation call, and [`start`], which opens the engine, starts the mesh and spawns the
//! node's tasks (`daemon/`): event handling and gossip verdicts, sync, the publisher, the
//! timer and own-feed recovery; `hunt` and `curation` are the hunt's observations, analytics,
//! analysts' curation and suggestions.
//!
//! Every engine call runs on a blocking thread under the engine lock; those made for the façade's
//! callers and for peers' sync requests are bounded per lane (`calls`). Every task derives from
//! one root stop signal, fired by the shutdown future handed to [`start`] (or by
//! [`Node::shutdown`]); every channel is bounded.

mod alerts;
mod calls;
mod curation;
mod events;
mod export;
mod gossip;
mod hunt;
// Imports as resumable jobs: spooling, the `imports` task, dry runs and undo.
mod imports;
mod membership;
mod peers;
mod publisher;
mod recovery;
mod reload;
mod roster;
mod secrets;
mod share;
mod slices;
mod sync;
mod takedowns;
mod tasks;
mod timer;
mod view;
mod webhook;

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossmatch_protocol::{RetractReason, Status, gossip_message_id};
use tokio::sync::{Notify, mpsc, watch};

use crate::clock::Clock;
pub use crate::engine::takedowns::{
    AccountClock, Percentiles, TakedownSettings, TakedownState, TimeTo,
};
use crate::engine::{self, AlertSink, Engine, EngineConfig};
pub use crate::engine::{AlertEvent, Counters, NewRecord, Rotation, RotationView};
use crate::hunt as hunt_results;
use crate::mesh::{self, MeshConfig, MeshMember};
pub use crate::store::{AlertState, UnknownAlertState};
use calls::{EngineCalls, Lane};
pub use calls::{EngineCallsView, MAX_ENGINE_CALLS_PER_LANE};
pub use curation::{
    Curated, CurationChange, MAX_EVIDENCE_PER_EDGE, MAX_SUGGESTIONS, SuggestedEdge, SuggestionView,
};
pub use events::{
    BadEventId, EventAlertView, EventId, EventRead, EventView, EventViewBody, MAX_EVENTS_PER_READ,
    ResyncReason,
};
pub use export::{
    EXPORT_CHUNKS, EXPORT_PAGE_RECORDS, StixChunk, StixExportCounts, StixExportQuery,
};
pub use hunt::{
    FUTURE_TOLERANCE_MS, HuntError, HuntSettings, MAX_LINES_PER_WRITE, MAX_REFUSALS_KEPT,
    ObserveCounts, observation_line,
};
pub use imports::{
    IMPORTS_DIR, ImportCounts, ImportError, ImportId, ImportJob, ImportRequest, ImportView,
    JobState, QuotaCheck, Spool, UndoState, import_subject, undo_subject,
};
pub use membership::{
    MAX_MEMBERSHIP, Membership, MembershipError, MembershipMember, MembershipOutcome,
    RosterIdentity,
};
pub use peers::PeerView;
pub use publisher::PUBLISH_BATCHES_PER_TURN;
pub use roster::MemberRecordCounts;
pub use roster::{Adopter, Adoption, GivenRoster, RosterError, RosterMemberView, RosterView};
pub use secrets::{MAX_SEALED_INPUT_BYTES, SECRETS_DIR, SecretError, SecretTaken};
pub use share::{
    MAX_PREVIEWS, OverlapView, PREVIEW_LIFETIME_MS, ShareError, ShareParameters, SharePreview,
    ShareView, WHAT_MEMBERS_LEARN,
};
pub use sync::{
    CHAIN_WAIT, MAX_CONCURRENT_PULLS, MAX_RANGE_REQUESTS_PER_PULL, MAX_WAITING_JOBS_PER_PEER,
    PULL_DEADLINE, RANGE_BATCHES, SYNC_QUEUE_CAPACITY,
};
pub use takedowns::{
    MAX_TAKEDOWN_EVENTS, TIME_TO_REMOVAL_BUCKETS_SECS, TakedownEvent, TakedownMetrics, TakedownView,
};
use tasks::StopRoot;
pub use tasks::Tasks;
pub use view::{
    AlertPage, AlertQuery, AlertToken, AlertView, Contact, CounterpartView, FeedPosition, ForkView,
    HeadView, IdentifierView, MeshView, RecordView, SkewView, StatusView, TokenPrefix,
};
pub use webhook::{
    WEBHOOK_FIRST_BACKOFF, WebhookBodies, WebhookFigures, WebhookMetrics, WebhookSettings,
    signature_header,
};

/// Capacity of the alert subscription channel; a slower subscriber is told it lagged.
pub const ALERT_CHANNEL_CAPACITY: usize = 1024;
/// How long [`Node::recompute_hunt`] waits for a running computation before it gives up.
pub const RECOMPUTE_WAIT: Duration = Duration::from_secs(120);

/// Errors starting or running a node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine failed or refused.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The mesh failed to start.
    #[error(transparent)]
    Mesh(#[from] mesh::MeshError),
    /// The mesh refused a member address.
    #[error(transparent)]
    Address(#[from] mesh::AddressError),
    /// A blocking task panicked or the engine lock is poisoned: the node stops.
    #[error("engine task failed")]
    EngineTask,
    /// The node has shut down.
    #[error("the node has shut down")]
    Closed,
    /// Too many engine calls are outstanding for this kind of caller.
    #[error("the node is busy")]
    Busy,
    /// The caller had gone when the call reached the engine, so it did nothing.
    #[error("the caller gave up before the call ran")]
    Abandoned,
    /// The hunt failed (its store write or its lock).
    #[error(transparent)]
    Hunt(#[from] HuntError),
    /// A member set was refused; nothing changed.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// A roster was refused, or the stored ones could not be read.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// The held secrets' directory could not be read or made.
    #[error("the held secrets could not be read: {0}")]
    Secrets(#[source] std::io::Error),
    /// At start: the secret the engine would run under is not the one the adopted roster
    /// names for its epoch (`daemon/secrets.rs`).
    #[error(
        "the secret for epoch {epoch} is not the one the adopted roster names for it; set secret_file to that epoch's secret (`crossmatch secret open` against the roster in force)"
    )]
    SecretNotNamed {
        /// The engine's epoch.
        epoch: u32,
    },
    /// At start: the webhook's client cannot be built (its URL, CA file or client certificate).
    #[error("the webhook cannot be used: {0}")]
    Webhook(#[source] crate::http_client::ClientError),
}

/// What a failed façade call means to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input broke a rule (identifiers, expiry, category); the message names the rule and
    /// repeats no input, so it may be shown.
    Invalid,
    /// No such record.
    NoRecord,
    /// What the call was bound to changed (a community share's preview); the message says
    /// what to do.
    Conflict,
    /// The audit log refused or failed, so the action was not taken.
    Audit,
    /// The store failed.
    Store,
    /// The node is stopping.
    Stopping,
    /// Too much is queued for the engine; try again later.
    Busy,
    /// Anything else: the node cannot serve the call.
    Internal,
}

impl Error {
    /// What this error means to a caller.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine(
                engine::Error::NoIdentifiers
                | engine::Error::Expiry { .. }
                | engine::Error::Category
                | engine::Error::Activity
                | engine::Error::ShareSize { .. }
                | engine::Error::ShareHandling
                | engine::Error::TooManySnapshots { .. }
                | engine::Error::Rotation(_),
            )
            | Error::Membership(_) => ErrorKind::Invalid,
            Error::Engine(engine::Error::ShareChanged) => ErrorKind::Conflict,
            Error::Engine(engine::Error::NoRecord(_)) => ErrorKind::NoRecord,
            Error::Engine(engine::Error::Audit(_)) => ErrorKind::Audit,
            Error::Engine(
                engine::Error::Store(_)
                | engine::Error::EpochChanged { .. }
                | engine::Error::RetiredKey,
            ) => ErrorKind::Store,
            Error::Hunt(HuntError::Store(_)) | Error::Secrets(_) => ErrorKind::Store,
            Error::SecretNotNamed { .. } | Error::Webhook(_) => ErrorKind::Invalid,
            Error::Roster(error) => error.kind(),
            Error::Hunt(HuntError::Poisoned) => ErrorKind::Internal,
            Error::Closed | Error::Address(mesh::AddressError::Closed) => ErrorKind::Stopping,
            Error::Busy => ErrorKind::Busy,
            Error::Mesh(_) | Error::Address(_) | Error::EngineTask | Error::Abandoned => {
                ErrorKind::Internal
            }
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a node needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Engine configuration.
    pub engine: EngineConfig,
    /// The version of the roster the node starts with.
    pub roster_version: u64,
    /// The hash of the roster the node starts with.
    pub roster_hash: [u8; 32],
    /// The signed roster the node is given (its config's); `None`: members only as above.
    pub roster: Option<GivenRoster>,
    /// Roster members' addresses.
    pub mesh_members: Vec<MeshMember>,
    /// Addresses to listen on.
    pub listen_addresses: Vec<String>,
    /// Publisher linger once busy (ms).
    pub publish_linger_ms: u64,
    /// Background pull period (s).
    pub sync_interval_secs: u64,
    /// Own-feed recovery deadline (s).
    pub recovery_deadline_secs: u64,
    /// Most range requests one pull makes ([`MAX_RANGE_REQUESTS_PER_PULL`] unless a test
    /// lowers it).
    pub pages_per_pull: usize,
    /// How long a pull waits for a chain another job fetches before it fetches the chain
    /// beside that job ([`CHAIN_WAIT`] unless a test lengthens it).
    pub chain_wait: Duration,
    /// What each peer may ask of this node's sync and be served ([`mesh::SyncBudget`]'s
    /// default unless a test narrows it).
    pub sync_budget: mesh::SyncBudget,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// The hunt's settings.
    pub hunt: HuntSettings,
    /// The takedown clock's budgets.
    pub takedown: TakedownSettings,
    /// The webhook alerts are delivered to, if any.
    pub webhook: Option<WebhookSettings>,
}

/// A running node, and the one way to use it: every method is a named operation that runs the
/// engine on a blocking thread or asks the mesh. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Node {
    engine: Arc<Mutex<Engine>>,
    mesh: mesh::Client,
    clock: Arc<dyn Clock>,
    roster: Arc<membership::LiveRoster>,
    rosters: Arc<roster::SignedRosters>,
    /// The secrets held beyond the config's, and the rotation alarm (`daemon/secrets.rs`).
    secrets: Arc<secrets::Secrets>,
    publish: Arc<Notify>,
    /// Wakes the slice worker (`daemon/slices.rs`): a rotation or a withdrawal has steps due.
    slices: Arc<Notify>,
    ready: watch::Receiver<bool>,
    /// The peers own-feed recovery is done with (answered, and their own-feed ranges fetched):
    /// the sync worker may pull everything else from them before the node is ready.
    recovered: watch::Receiver<HashSet<mesh::PeerKey>>,
    /// The peers a sync job runs with now: one at a time per peer.
    pull_slots: sync::PullSlots,
    /// The chains a sync job fetches now: each from one peer at a time.
    chain_claims: sync::ChainClaims,
    /// Most range requests one pull makes.
    pages_per_pull: usize,
    /// How long a pull waits for a chain another job fetches.
    chain_wait: Duration,
    /// How long a peer's node has to answer a sync request before its mesh refuses
    /// `unavailable`: a later answer is late (three quarters of the request timeout).
    sync_reply_budget: Duration,
    stop: StopRoot,
    alerts: tokio::sync::broadcast::Sender<AlertEvent>,
    /// The alert event log: its store handle, the pump's wake-up, the durable head.
    events: Arc<events::EventLog>,
    /// The webhook's live figures (all 0 without one).
    webhook: Arc<WebhookMetrics>,
    calls: Arc<EngineCalls>,
    hunt: Arc<hunt::Hunt>,
    takedowns: Arc<takedowns::TakedownWatch>,
    /// Import jobs: their directory, queue and the `imports` task's wake-up.
    imports: Arc<imports::Imports>,
}

/// Starts a node: opens the engine, starts the mesh and every task. Returns at once; the node
/// publishes only after own-feed recovery (see [`Node::wait_ready`]). Every task stops once
/// `shutdown` completes (or [`Node::shutdown`] is called); [`Tasks::join`] waits for them.
pub async fn start(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Node, Tasks)> {
    // A webhook that cannot be used fails the start rather than delivering nothing.
    let webhook = match settings.webhook.clone() {
        Some(webhook) => {
            let client = webhook::webhook_client(&webhook).map_err(Error::Webhook)?;
            Some((webhook, client))
        }
        None => None,
    };
    let data_dir = settings.data_dir.clone();
    let engine_config = settings.engine.clone();
    let clock = settings.clock.clone();
    let (hunt_settings, given) = (settings.hunt, settings.roster.clone());
    let webhook_url = webhook.as_ref().map(|(webhook, _)| webhook.url.clone());
    let (mut engine, hunt, rosters, secrets) = tokio::task::spawn_blocking(move || {
        let secrets = secrets::Secrets::open(&data_dir, &engine_config).map_err(Error::Secrets)?;
        let mut engine = secrets::open_engine(&data_dir, engine_config, clock.clone(), &secrets)?;
        if let Some(url) = webhook_url {
            // Before anything of this run can stage an event: a new webhook starts after the
            // events written before this start, and misses none of this run's.
            webhook::settle_webhook_cursor(engine.store(), &url)
                .map_err(|error| Error::Engine(error.into()))?;
        }
        // One bounded step (a changeover that came while the node was stopped), which may
        // stage events: the rest is the slice worker's, so the start never holds the store
        // for long.
        engine.rotation_step()?;
        let rosters = roster::SignedRosters::open(&mut engine, given, clock.now_ms())?;
        secrets::check_running_secret(&engine, &rosters)?;
        if rosters.version().is_none() {
            // No signed roster: the configured members are the roster, and an origin removed
            // while the node was stopped is withdrawn now (a signed roster's adoption did it).
            engine.withdraw_removed_members()?;
        }
        let hunt = hunt::Hunt::open(engine.store().clone(), hunt_settings, clock)?;
        Ok::<_, Error>((engine, Arc::new(hunt), Arc::new(rosters), Arc::new(secrets)))
    })
    .await
    .map_err(|_| Error::EngineTask)??;
    let settings = rosters.settle(settings);
    let (alerts, _) = tokio::sync::broadcast::channel(ALERT_CHANNEL_CAPACITY);
    let sink = alerts.clone();
    let event_log =
        Arc::new(events::EventLog::new(engine.store().clone(), settings.data_dir.clone()));
    let imports = imports::Imports::open(engine.store().clone(), &settings.data_dir)
        .map_err(|error| Error::Engine(error.into()))?;
    engine.set_alert_sink(AlertSink::new(move |event| {
        // No subscriber is not an error; a slow one is told it lagged. (The event pump is
        // woken after the engine call, `Node::blocking` / `Node::call`.)
        let _ = sink.send(event);
    }));
    let engine = Arc::new(Mutex::new(engine));
    let federation_id = settings.engine.federation_id;
    // The gossip message id covers the whole wire form, not only the signed manifest: a copy
    // with an altered entry or signature then has an id of its own and cannot shadow the
    // genuine batch. For complete, canonical batches it is one-to-one with the batch hash.
    let message_id: mesh::MessageIdFn = Arc::new(gossip_message_id);
    let mut mesh_config = MeshConfig::new(
        settings.engine.key.seed(),
        federation_id.0,
        settings.mesh_members.clone(),
        settings.listen_addresses.clone(),
        message_id,
    );
    mesh_config.sync_budget = settings.sync_budget;
    let sync_reply_budget =
        Duration::from_secs(mesh_config.sync_request_timeout_secs).mul_f64(0.75);
    let (mesh, events, event_loop) = mesh::new(mesh_config)?;
    let stop = StopRoot::new();
    let (ready_tx, ready) = watch::channel(false);
    let (recovered_tx, recovered) = watch::channel(HashSet::new());
    let node = Node {
        engine,
        mesh,
        clock: settings.clock.clone(),
        roster: Arc::new(membership::LiveRoster::new(
            &settings.engine.members,
            (settings.roster_version, settings.roster_hash),
        )),
        rosters,
        secrets,
        publish: Arc::new(Notify::new()),
        slices: Arc::new(Notify::new()),
        ready,
        recovered,
        pull_slots: sync::PullSlots::default(),
        chain_claims: sync::ChainClaims::default(),
        pages_per_pull: settings.pages_per_pull.max(1),
        chain_wait: settings.chain_wait,
        sync_reply_budget,
        stop: stop.clone(),
        alerts,
        events: event_log,
        webhook: Arc::new(WebhookMetrics::default()),
        calls: Arc::new(EngineCalls::new()),
        hunt: hunt.clone(),
        takedowns: Arc::new(takedowns::TakedownWatch::new(settings.takedown)),
        imports: Arc::new(imports),
    };
    // A secret dropped while the node was down, and a rotation that waited for it.
    node.check_rotation().await;
    let (sync_jobs, sync_rx) = mpsc::channel(SYNC_QUEUE_CAPACITY);
    let mut tasks = Tasks::new(stop.clone());
    tasks.spawn("shutdown", stop.fire_on(shutdown));
    tasks.spawn("mesh", event_loop.run(stop.fired()));
    tasks.spawn(
        "events",
        gossip::handle_events(node.clone(), events, sync_jobs.clone(), stop.fired()),
    );
    tasks.spawn("sync", sync::sync_worker(node.clone(), sync_rx, stop.fired()));
    tasks.spawn(
        "publisher",
        publisher::publisher(node.clone(), settings.publish_linger_ms, stop.fired()),
    );
    tasks.spawn(
        "timer",
        timer::timer(node.clone(), sync_jobs, settings.sync_interval_secs, stop.fired()),
    );
    tasks.spawn("hunt", hunt::recompute_task(node.clone(), stop.fired()));
    tasks.spawn("slices", slices::slice_worker(node.clone(), stop.fired()));
    tasks.spawn("alert-events", events::pump(node.clone(), stop.fired()));
    tasks.spawn("imports", imports::imports_task(node.clone(), stop.fired()));
    if let Some((webhook, client)) = webhook {
        let worker = webhook::webhook_worker(node.clone(), webhook, client, stop.fired());
        tasks.spawn("webhook", worker);
    }
    // Recovery finishes once the node is ready; finishing without making it ready (the engine
    // failed) is a failure.
    let recovering = node.clone();
    let deadline = settings.recovery_deadline_secs;
    let recover = recovery::recover(node.clone(), ready_tx, recovered_tx, deadline, stop.fired());
    tasks.spawn_finite("recovery", async move {
        recover.await;
        if *recovering.ready.borrow() { Ok(()) } else { Err(()) }
    });
    Ok((node, tasks))
}

impl Node {
    /// Runs `work` on the engine on a blocking thread, under the engine lock.
    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Engine) -> R + Send + 'static,
    ) -> Result<R> {
        let (engine, events) = (self.engine.clone(), self.events.clone());
        let result = tokio::task::spawn_blocking(move || {
            let mut guard = engine.lock().map_err(|_| Error::EngineTask)?;
            let result = work(&mut guard);
            events.wake_if_staged(&guard);
            Ok(result)
        })
        .await;
        self.engine_outcome(result)
    }

    /// The result of an engine closure. A closure that panicked, or found the lock poisoned by
    /// one that did, leaves an engine nobody can trust: the node is marked failed and stops.
    fn engine_outcome<R>(
        &self,
        result: std::result::Result<Result<R>, tokio::task::JoinError>,
    ) -> Result<R> {
        match result {
            // A closure cancelled unstarted (the runtime shutting down) says nothing of the
            // engine.
            Err(error) if !error.is_panic() => Err(Error::EngineTask),
            Err(_) | Ok(Err(Error::EngineTask)) => {
                self.stop.fail("engine");
                Err(Error::EngineTask)
            }
            Ok(result) => result,
        }
    }

    /// Runs `work` on the engine for a caller of `lane`: it takes a place in the lane before it
    /// is queued (waiting for one in the API lane; refused [`Error::Busy`] at once in a full
    /// sync lane) and keeps it until the closure ends, so at most
    /// [`MAX_ENGINE_CALLS_PER_LANE`] are outstanding per lane. If the caller has gone (a request
    /// that timed out) when the closure gets the engine, `work` is not run.
    async fn call<R: Send + 'static>(
        &self,
        lane: Lane,
        work: impl FnOnce(&mut Engine) -> R + Send + 'static,
    ) -> Result<R> {
        let place = self.calls.place(lane).await.ok_or(Error::Busy)?;
        let caller = Arc::new(());
        let waiting = Arc::downgrade(&caller);
        let (engine, calls, events) =
            (self.engine.clone(), self.calls.clone(), self.events.clone());
        let result = tokio::task::spawn_blocking(move || {
            let _place = place;
            let mut guard = engine.lock().map_err(|_| Error::EngineTask)?;
            if waiting.strong_count() == 0 {
                calls.abandoned();
                return Err(Error::Abandoned);
            }
            let result = work(&mut guard);
            events.wake_if_staged(&guard);
            Ok(result)
        })
        .await;
        drop(caller);
        self.engine_outcome(result)
    }

    /// Engine calls outstanding per lane, and those abandoned, now (`/metrics`).
    pub fn engine_calls(&self) -> EngineCallsView {
        self.calls.view()
    }

    /// Test-only (the `test-support` feature): runs `work` on the engine on a blocking thread.
    /// Tests and benches use it to look inside a running node; everything else goes through
    /// the named methods.
    #[cfg(feature = "test-support")]
    pub async fn with_engine<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Engine) -> R + Send + 'static,
    ) -> Result<R> {
        self.blocking(work).await
    }

    /// Test-only (the `test-support` feature): the mesh client, for tests that inspect or drive
    /// the mesh directly.
    #[cfg(feature = "test-support")]
    pub fn mesh(&self) -> &mesh::Client {
        &self.mesh
    }

    // ---- records ------------------------------------------------------------------------

    /// Adds a record (audited under `user`) and wakes the publisher. Returns its id.
    pub async fn add_record(&self, record: NewRecord, user: String) -> Result<u64> {
        let record = self.with_observed_activity(vec![record]).await?.remove(0);
        let id = self.call(Lane::Api, move |engine| engine.add_record(record, &user)).await??;
        self.publish.notify_one();
        Ok(id)
    }

    /// Adds records in bulk (one durable write) and wakes the publisher. Returns their ids.
    pub async fn add_records(&self, records: Vec<NewRecord>, user: String) -> Result<Vec<u64>> {
        let records = self.with_observed_activity(records).await?;
        let ids = self.call(Lane::Api, move |engine| engine.add_records(records, &user)).await??;
        self.publish.notify_one();
        Ok(ids)
    }

    /// Reads a local record, raw identifiers included: the read is audited under `user`.
    pub async fn read_record(&self, id: u64, user: String) -> Result<Option<RecordView>> {
        let record = self.call(Lane::Api, move |engine| engine.read_record(id, &user)).await??;
        Ok(record.map(RecordView::from))
    }

    /// Removes a record (publishing a retraction when it was the last holder) and wakes the
    /// publisher.
    pub async fn remove_record(&self, id: u64, reason: RetractReason, user: String) -> Result<()> {
        self.call(Lane::Api, move |engine| engine.remove_record(id, reason, &user)).await??;
        self.hunt.note_records_gone();
        self.publish.notify_one();
        Ok(())
    }

    /// Publishes a referral or takedown status for a record, taking effect now.
    pub async fn set_status(&self, id: u64, status: Status, user: String) -> Result<()> {
        self.set_status_at(id, status, self.now_ms(), user).await
    }

    /// Publishes a referral or takedown status for a record that took effect at `at_ms` (not
    /// after now: a later time is taken as now).
    pub async fn set_status_at(
        &self,
        id: u64,
        status: Status,
        at_ms: u64,
        user: String,
    ) -> Result<()> {
        self.call(Lane::Api, move |engine| engine.set_status_at(id, status, at_ms, &user))
            .await??;
        self.publish.notify_one();
        Ok(())
    }

    // ---- the hunt ------------------------------------------------------------------------

    /// Counts a chunk of observation lines ((line number, line), at most
    /// [`MAX_LINES_PER_WRITE`]) and writes them durably before it returns. Not audited here:
    /// the caller audits the whole request once ([`Node::audit_observations`]).
    pub async fn observe(&self, lines: Vec<(u64, Vec<u8>)>) -> Result<ObserveCounts> {
        let hunt = self.hunt.clone();
        let counts = tokio::task::spawn_blocking(move || hunt.ingest(&lines))
            .await
            .map_err(|_| Error::EngineTask)??;
        Ok(counts)
    }

    /// Writes the one audit line of an observations request: its counts, never an account.
    pub async fn audit_observations(&self, counts: &ObserveCounts, user: String) -> Result<()> {
        let subject = format!(
            "observations:accepted.{}_duplicates.{}_refused.{}_dropped.{}",
            counts.accepted, counts.duplicates, counts.refused_count, counts.dropped_references
        );
        self.call(Lane::Api, move |engine| {
            engine.audit_hunt(&user, crate::audit::Action::Observe, &subject)
        })
        .await??;
        Ok(())
    }

    /// The latest analytics, raw handles included: the read is audited under `user` first,
    /// naming what was read (`accounts`, `communities` or `community:<id>`).
    pub async fn read_analytics(
        &self,
        what: String,
        user: String,
    ) -> Result<Arc<hunt_results::Analytics>> {
        self.call(Lane::Api, move |engine| {
            engine.audit_hunt(
                &user,
                crate::audit::Action::ReadAnalytics,
                &format!("analytics:{what}"),
            )
        })
        .await??;
        Ok(self.hunt.results())
    }

    /// Recomputes the analytics now on a blocking thread, as the hunt task does on its timer,
    /// so the results cover everything ingested before the call: when a computation is already
    /// running (it may have started before that), waits for it to end and computes again.
    /// Returns false only when no computation could start within [`RECOMPUTE_WAIT`].
    pub async fn recompute_hunt(&self) -> Result<bool> {
        self.refresh_removed().await?;
        let hunt = self.hunt.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            loop {
                if hunt.recompute()? {
                    return Ok::<_, HuntError>(true);
                }
                if started.elapsed() > RECOMPUTE_WAIT {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .map_err(|_| Error::EngineTask)??)
    }

    /// Reads the removed accounts (records' own and members' statuses) from the engine, a short
    /// read, and hands them to the hunt's successor search.
    pub(crate) async fn refresh_removed(&self) -> Result<()> {
        let statuses = self.blocking(|engine| engine.account_statuses()).await??;
        let removed = crate::hunt::successors::removed_accounts(&statuses);
        Ok(self.hunt.set_removed(removed)?)
    }

    /// The latest successor suggestions, raw handles included: the read is audited under `user`
    /// first (`analytics:successors`).
    pub async fn read_successors(&self, user: String) -> Result<Arc<hunt_results::Successors>> {
        self.call(Lane::Api, move |engine| {
            engine.audit_hunt(&user, crate::audit::Action::ReadAnalytics, "analytics:successors")
        })
        .await??;
        Ok(self.hunt.successors())
    }

    /// An export of the latest analytics (one community's, or all), marked with the node's
    /// handling mark; audited under `user` first as `export_analytics`, naming the format and
    /// what the export holds.
    pub async fn export_analytics(
        &self,
        format: hunt_results::ExportFormat,
        community: Option<u64>,
        user: String,
    ) -> Result<hunt_results::Export> {
        let results = self.hunt.results();
        let handling = hunt_results::export::handling_mark(self.hunt.settings.export_handling);
        let export = tokio::task::spawn_blocking(move || {
            hunt_results::export(&results, format, community, handling)
        })
        .await
        .map_err(|_| Error::EngineTask)?;
        let subject = format!(
            "export:{}_community.{}_accounts.{}_links.{}",
            format.as_str().replace('.', "_"),
            community.map_or_else(|| "all".to_owned(), |id| id.to_string()),
            export.nodes,
            export.edges
        );
        self.call(Lane::Api, move |engine| {
            engine.audit_hunt(&user, crate::audit::Action::ExportAnalytics, &subject)
        })
        .await??;
        Ok(export)
    }

    /// Analytics computations finished since start.
    pub fn hunt_recomputes(&self) -> u64 {
        self.hunt.recomputes()
    }

    /// The hunt's retention sweep (from the timer), when the hunt can have work: the records'
    /// canonical forms are read from the engine, then the hunt purges under its own lock.
    pub(crate) async fn purge_hunt(&self) -> Result<usize> {
        let max_retention_ms = self.blocking(|engine| engine.max_retention_ms()).await?;
        if !self.hunt.purge_due(max_retention_ms) {
            return Ok(0);
        }
        let gone = self.hunt.take_records_gone();
        let purged = self.purge_hunt_with_records(max_retention_ms).await;
        if purged.is_err() && gone {
            self.hunt.note_records_gone();
        }
        purged
    }

    /// The hunt's purge with the records as the engine holds them now.
    async fn purge_hunt_with_records(&self, max_retention_ms: u64) -> Result<usize> {
        let records = self.blocking(|engine| engine.record_canonicals()).await??;
        let hunt = self.hunt.clone();
        Ok(tokio::task::spawn_blocking(move || hunt.purge(max_retention_ms, &records))
            .await
            .map_err(|_| Error::EngineTask)??)
    }

    // ---- operations ---------------------------------------------------------------------

    /// Now, by the node's clock (the engine's; Unix ms).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The roster's members and their contacts.
    pub fn contacts(&self) -> Vec<Contact> {
        self.roster.contacts()
    }

    // ---- mesh: the members as this node sees them, and addresses (`daemon/peers.rs`) ----

    // ---- lifecycle ----------------------------------------------------------------------

    /// Waits until own-feed recovery is done and the node publishes.
    pub async fn wait_ready(&self) -> Result<()> {
        let mut ready = self.ready.clone();
        ready.wait_for(|ready| *ready).await.map(|_| ()).map_err(|_| Error::Closed)
    }

    /// Whether the node publishes yet and nothing has failed (`/readyz`).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow() && self.failures().is_empty()
    }

    /// What failed, if anything: the names of tasks that ended or panicked before the node was
    /// told to stop, and `engine` if an engine call panicked. A failed node stops; `crossmatch
    /// run` then exits non-zero.
    pub fn failures(&self) -> Vec<&'static str> {
        self.stop.failures()
    }

    /// Resolves once the node has been told to stop.
    pub async fn stopped(&self) {
        self.stop.fired().await;
    }

    /// Tells every task to stop, as the shutdown future handed to [`start`] does.
    pub fn shutdown(&self) {
        self.stop.fire();
    }
}
