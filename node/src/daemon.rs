//! The running node: the engine on blocking threads, the mesh event loop, and the glue between
//! them — gossip verdicts, serving and pulling sync, the publisher, own-feed recovery, expiry.
//!
//! Every task stops when the shutdown signal fires; every channel is bounded.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossmatch_protocol::gossip_message_id;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::engine::{
    self, AlertEvent, AlertSink, Engine, EngineConfig, ForkOutcome, IngestOutcome,
};
use crate::mesh::{
    self, GossipKind, MeshConfig, MeshMember, PeerKey, SyncRequest, SyncResponse, Verdict,
};

/// Capacity of the alert subscription channel; a slower subscriber is told it lagged.
pub const ALERT_CHANNEL_CAPACITY: usize = 1024;

/// Batches the publisher signs per turn of the engine lock.
pub const PUBLISH_BATCHES_PER_TURN: usize = 8;

/// Capacity of the queue of sync jobs; a full queue drops the job (the timer recovers it).
pub const SYNC_QUEUE_CAPACITY: usize = 64;
/// Most range requests one pull makes before it yields to other work.
pub const MAX_RANGE_REQUESTS_PER_PULL: usize = 64;
/// Batches asked for per range request.
pub const RANGE_BATCHES: u32 = 64;

/// Errors starting or running a node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The mesh failed to start.
    #[error(transparent)]
    Mesh(#[from] mesh::MeshError),
    /// A blocking task panicked or the engine lock is poisoned: the node stops.
    #[error("engine task failed")]
    EngineTask,
    /// The node has shut down.
    #[error("the node has shut down")]
    Closed,
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
    /// Roster hash, announced at connect.
    pub roster_hash: [u8; 32],
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
    /// Clock.
    pub clock: Arc<dyn Clock>,
}

/// A running node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Node {
    engine: Arc<Mutex<Engine>>,
    mesh: mesh::Client,
    publish: Arc<Notify>,
    ready: watch::Receiver<bool>,
    shutdown: watch::Sender<bool>,
    alerts: tokio::sync::broadcast::Sender<AlertEvent>,
}

/// The tasks of a running node; awaiting it waits for all of them to stop.
#[derive(Debug)]
pub struct Tasks(JoinSet<()>);

impl Tasks {
    /// Waits until every task has stopped.
    pub async fn join(mut self) {
        while self.0.join_next().await.is_some() {}
    }
}

async fn blocking<R: Send + 'static>(
    engine: &Arc<Mutex<Engine>>,
    work: impl FnOnce(&mut Engine) -> R + Send + 'static,
) -> Result<R> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = engine.lock().map_err(|_| Error::EngineTask)?;
        Ok(work(&mut guard))
    })
    .await
    .map_err(|_| Error::EngineTask)?
}

fn jitter_ms(max: u64) -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) % max.max(1)
}

/// Starts a node: opens the engine, starts the mesh and every task. Returns at once; the node
/// publishes only after own-feed recovery (see [`Node::wait_ready`]).
pub async fn start(settings: Settings) -> Result<(Node, Tasks)> {
    let data_dir = settings.data_dir.clone();
    let engine_config = settings.engine.clone();
    let clock = settings.clock.clone();
    let mut engine =
        tokio::task::spawn_blocking(move || Engine::open(&data_dir, engine_config, clock))
            .await
            .map_err(|_| Error::EngineTask)??;
    let (alerts, _) = tokio::sync::broadcast::channel(ALERT_CHANNEL_CAPACITY);
    let sink = alerts.clone();
    engine.set_alert_sink(AlertSink::new(move |event| {
        // No subscriber is not an error; a slow one is told it lagged.
        let _ = sink.send(event);
    }));
    let engine = Arc::new(Mutex::new(engine));
    let federation_id = settings.engine.federation_id;
    // The gossip message id covers the whole wire form, not only the signed manifest: a copy
    // with an altered entry or signature then has an id of its own and cannot shadow the
    // genuine batch. For complete, canonical batches it is one-to-one with the batch hash.
    let message_id: mesh::MessageIdFn = Arc::new(gossip_message_id);
    let mesh_config = MeshConfig::new(
        settings.engine.key.seed(),
        federation_id.0,
        settings.roster_hash,
        settings.mesh_members.clone(),
        settings.listen_addresses.clone(),
        message_id,
    );
    let (mesh, events, event_loop) = mesh::new(mesh_config)?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready) = watch::channel(false);
    let node = Node {
        engine: engine.clone(),
        mesh: mesh.clone(),
        publish: Arc::new(Notify::new()),
        ready,
        shutdown,
        alerts: alerts.clone(),
    };
    let (sync_jobs, sync_rx) = mpsc::channel(SYNC_QUEUE_CAPACITY);
    let mut tasks = JoinSet::new();
    tasks.spawn(event_loop.run(stopped(shutdown_rx.clone())));
    tasks.spawn(handle_events(node.clone(), events, sync_jobs.clone(), shutdown_rx.clone()));
    tasks.spawn(sync_worker(node.clone(), sync_rx, shutdown_rx.clone()));
    tasks.spawn(publisher(node.clone(), settings.publish_linger_ms, shutdown_rx.clone()));
    tasks.spawn(timer(
        node.clone(),
        sync_jobs.clone(),
        settings.sync_interval_secs,
        shutdown_rx.clone(),
    ));
    tasks.spawn(recover(node.clone(), ready_tx, settings.recovery_deadline_secs, shutdown_rx));
    Ok((node, Tasks(tasks)))
}

async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// What the sync worker does.
#[derive(Debug)]
enum SyncJob {
    /// Ask a peer for its heads and fetch whatever is ahead of us.
    Pull(PeerKey),
    /// Fetch one chain's missing range from a peer.
    Range { peer: PeerKey, origin: [u8; 32], generation: u32, from_seq: u64, to_seq: u64 },
}

fn verdict(outcome: &IngestOutcome) -> Verdict {
    match outcome {
        IngestOutcome::Applied { .. } | IngestOutcome::Gap { .. } => Verdict::Accept,
        IngestOutcome::Rejected(_) | IngestOutcome::IncompleteGossip => Verdict::Reject,
        IngestOutcome::Duplicate { .. }
        | IngestOutcome::Fork { .. }
        | IngestOutcome::Ignored
        | IngestOutcome::QuotaExceeded => Verdict::Ignore,
    }
}

async fn handle_events(
    node: Node,
    mut events: mpsc::Receiver<mesh::Event>,
    sync_jobs: mpsc::Sender<SyncJob>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = std::pin::pin!(stopped(shutdown));
    // Sync answers being served; at most the mesh's pending inbound requests, reaped as they
    // finish and awaited at shutdown.
    let mut serving = JoinSet::new();
    loop {
        let event = tokio::select! {
            () = &mut stop => break,
            Some(_) = serving.join_next(), if !serving.is_empty() => continue,
            event = events.recv() => match event { Some(event) => event, None => break },
        };
        match event {
            mesh::Event::Gossip { kind: GossipKind::ForkEvidence, source, message_id, data } => {
                let outcome =
                    blocking(&node.engine, move |engine| engine.ingest_fork_evidence(&data)).await;
                let verdict = match outcome {
                    Ok(Ok(ForkOutcome::Recorded)) => {
                        tracing::warn!(peer = %source, "fork evidence received: generation frozen");
                        Verdict::Accept
                    }
                    Ok(Ok(ForkOutcome::Invalid(_))) => Verdict::Reject,
                    _ => Verdict::Ignore,
                };
                let _ = node.mesh.report_validation(message_id, source, verdict).await;
            }
            mesh::Event::Gossip { kind: GossipKind::Batch, source, message_id, data } => {
                let ingested = blocking(&node.engine, move |engine| {
                    let outcome = engine.ingest_gossip(&data);
                    (outcome, engine.take_fork_evidence())
                })
                .await;
                let (outcome, found_forks) = match ingested {
                    Ok((Ok(outcome), found)) => (Some(outcome), found),
                    _ => (None, Vec::new()),
                };
                let verdict = outcome.as_ref().map_or(Verdict::Ignore, verdict);
                if let Some(IngestOutcome::Gap { origin, generation, missing_from, missing_to }) =
                    outcome
                {
                    let job = SyncJob::Range {
                        peer: source,
                        origin: origin.to_bytes(),
                        generation,
                        from_seq: missing_from,
                        to_seq: missing_to,
                    };
                    let _ = sync_jobs.try_send(job);
                }
                let _ = node.mesh.report_validation(message_id, source, verdict).await;
                forward_forks(&node, found_forks).await;
            }
            mesh::Event::SyncRequest { peer: _, request, reply } => {
                let engine = node.engine.clone();
                // Served on a blocking thread so a large range never stalls the event handler.
                serving.spawn(async move {
                    let response = blocking(&engine, move |engine| serve(engine, &request)).await;
                    let response =
                        response.unwrap_or_else(|_| SyncResponse::Refused("unavailable".into()));
                    let _ = reply.send(response);
                });
            }
            mesh::Event::PeerConnected(peer) => {
                tracing::info!(peer = %peer, "member connected");
                let _ = sync_jobs.try_send(SyncJob::Pull(peer));
            }
            mesh::Event::RosterMismatch(peer) => {
                tracing::error!(peer = %peer, "member runs another roster: no sync with it until rosters agree");
            }
            mesh::Event::PeerBanned { peer, until_unix_ms } => {
                tracing::warn!(peer = %peer, until_unix_ms, "member banned for misbehaviour");
            }
            mesh::Event::PeerDisconnected(peer) => {
                tracing::info!(peer = %peer, "member disconnected");
            }
        }
    }
    while serving.join_next().await.is_some() {}
}

fn serve(engine: &mut Engine, request: &SyncRequest) -> SyncResponse {
    let result = match request {
        SyncRequest::Heads => engine.heads().map(SyncResponse::Heads),
        SyncRequest::Range { origin, generation, from_seq, max } => engine
            .range(
                origin,
                *generation,
                *from_seq,
                *max,
                mesh::MAX_SYNC_RESPONSE_BYTES as usize - 1024,
            )
            .map(SyncResponse::Batches),
        SyncRequest::Forks => engine
            .fork_evidence(mesh::MAX_SYNC_RESPONSE_BYTES as usize - 1024)
            .map(SyncResponse::Forks),
    };
    result.unwrap_or_else(|_| SyncResponse::Refused("unavailable".into()))
}

async fn sync_worker(
    node: Node,
    mut jobs: mpsc::Receiver<SyncJob>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = std::pin::pin!(stopped(shutdown));
    loop {
        let job = tokio::select! {
            () = &mut stop => break,
            job = jobs.recv() => match job { Some(job) => job, None => break },
        };
        match job {
            SyncJob::Pull(peer) => {
                let _ = pull(&node, peer).await;
            }
            SyncJob::Range { peer, origin, generation, from_seq, to_seq } => {
                let _ = fetch_range(&node, peer, origin, generation, from_seq, to_seq).await;
            }
        }
    }
}

/// What one pull learned.
#[derive(Debug, Clone, Copy, Default)]
struct PullReport {
    /// The peer answered `heads`.
    answered: bool,
    /// The furthest head of this node's own feed the peer proved: (generation, seq).
    own_claim: Option<(u32, u64)>,
}

/// Asks `peer` for its heads and fetches every chain it holds further than we do.
async fn pull(node: &Node, peer: PeerKey) -> Result<PullReport> {
    let Ok(SyncResponse::Heads(manifests)) = node.mesh.request(peer, SyncRequest::Heads).await
    else {
        return Ok(PullReport::default());
    };
    // Forks first, so that no range past a fork is fetched.
    fetch_forks(node, peer).await?;
    let claims = blocking(&node.engine, move |engine| {
        let mut claims: Vec<_> =
            manifests.iter().filter_map(|m| engine.head_ahead(m).ok().flatten()).collect();
        // Chains a fork cut short that this node has not caught up to the fork: no head
        // names them once the origin moved to a new generation, so ask for them by name.
        claims.extend(engine.unfinished_forked_chains().unwrap_or_default());
        claims
    })
    .await?;
    let mut report = PullReport { answered: true, own_claim: None };
    for claim in claims {
        if claim.own {
            report.own_claim = report.own_claim.max(Some((claim.generation, claim.to_seq)));
        }
        fetch_range(node, peer, claim.origin, claim.generation, claim.from_seq, claim.to_seq)
            .await?;
    }
    Ok(report)
}

/// Asks `peer` for the fork evidence it holds and records what is new here. A peer that sends
/// something that is not evidence of a fork is penalised and not heard further.
async fn fetch_forks(node: &Node, peer: PeerKey) -> Result<()> {
    let Ok(SyncResponse::Forks(forks)) = node.mesh.request(peer, SyncRequest::Forks).await else {
        return Ok(());
    };
    // One at a time, so that gossip ingest is not held up behind a long answer.
    for evidence in forks {
        let outcome =
            blocking(&node.engine, move |engine| engine.ingest_fork_evidence(&evidence)).await??;
        if let ForkOutcome::Invalid(_) = outcome {
            let _ = node.mesh.penalize(peer).await;
            break;
        }
    }
    Ok(())
}

/// Publishes fork evidence the engine found on the forks topic. Evidence that cannot be
/// published now is still served to peers that ask (`forks`).
async fn forward_forks(node: &Node, found: Vec<Vec<u8>>) {
    for evidence in found {
        tracing::warn!("fork found: generation frozen, evidence forwarded");
        if let Err(error) = node.mesh.publish_on(GossipKind::ForkEvidence, evidence).await {
            tracing::debug!(%error, "fork evidence not gossiped; peers fetch it by sync");
        }
    }
}

async fn fetch_range(
    node: &Node,
    peer: PeerKey,
    origin: [u8; 32],
    generation: u32,
    mut from_seq: u64,
    to_seq: u64,
) -> Result<()> {
    for _ in 0..MAX_RANGE_REQUESTS_PER_PULL {
        if from_seq > to_seq {
            break;
        }
        let max = RANGE_BATCHES.min(u32::try_from(to_seq - from_seq + 1).unwrap_or(RANGE_BATCHES));
        let request = SyncRequest::Range { origin, generation, from_seq, max };
        let Ok(SyncResponse::Batches(batches)) = node.mesh.request(peer, request).await else {
            break;
        };
        if batches.is_empty() {
            break;
        }
        if batches.len() > max as usize {
            let _ = node.mesh.penalize(peer).await;
            break;
        }
        let count = batches.len() as u64;
        let (outcome, found) = blocking(&node.engine, move |engine| {
            let outcome = engine.ingest_range(&origin, generation, from_seq, &batches);
            (outcome, engine.take_fork_evidence())
        })
        .await?;
        forward_forks(node, found).await;
        let outcome = outcome?;
        if outcome.mismatch {
            // A peer that serves what does not verify, or not what was asked, is penalised and
            // not asked further.
            let _ = node.mesh.penalize(peer).await;
            break;
        }
        from_seq += count;
    }
    Ok(())
}

async fn publisher(node: Node, linger_ms: u64, shutdown: watch::Receiver<bool>) {
    let mut stop = std::pin::pin!(stopped(shutdown));
    let mut ready = node.ready.clone();
    tokio::select! {
        () = &mut stop => return,
        _ = ready.wait_for(|ready| *ready) => {}
    }
    loop {
        // Idle: publish the moment something arrives. Busy: at most one round per linger.
        // A few batches per turn of the engine lock, so gossip ingest is never starved.
        loop {
            let batches =
                match blocking(&node.engine, |e| e.publish_batches(PUBLISH_BATCHES_PER_TURN)).await
                {
                    Ok(Ok(batches)) => batches,
                    Ok(Err(error)) => {
                        tracing::error!(%error, "publishing failed; retrying");
                        Vec::new()
                    }
                    Err(_) => return,
                };
            let more = batches.len() == PUBLISH_BATCHES_PER_TURN;
            for batch in batches {
                if let Err(error) = node.mesh.publish(batch.to_wire()).await {
                    // Peers catch up by sync; the batch is durable in the own feed.
                    tracing::debug!(%error, seq = batch.header().seq, "gossip publish failed");
                }
            }
            if !more {
                break;
            }
        }
        tokio::select! {
            () = &mut stop => break,
            () = node.publish.notified() => {}
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(Duration::from_millis(linger_ms)) => {}
        }
    }
}

async fn timer(
    node: Node,
    sync_jobs: mpsc::Sender<SyncJob>,
    interval_secs: u64,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = std::pin::pin!(stopped(shutdown));
    loop {
        let wait = interval_secs * 1000 / 2 + jitter_ms(interval_secs * 1000);
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        if let Ok(peers) = node.mesh.connected_peers().await
            && !peers.is_empty()
        {
            let peer = peers[jitter_ms(peers.len() as u64) as usize];
            let _ = sync_jobs.try_send(SyncJob::Pull(peer));
        }
        if let Ok(Err(error)) = blocking(&node.engine, |engine| engine.expire()).await {
            tracing::error!(%error, "retention sweep failed");
        }
        // Whatever a failed publish left in the outbox is retried on every tick.
        node.publish.notify_one();
    }
}

/// Own-feed recovery: before the first publish, ask reachable peers for our own head within
/// the deadline and restore what they hold; if no peer answers, or the store came from a
/// backup, start a new generation instead of guessing.
async fn recover(
    node: Node,
    ready: watch::Sender<bool>,
    deadline_secs: u64,
    shutdown: watch::Receiver<bool>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(deadline_secs);
    let mut confirmed = false;
    let mut own_claim = None;
    let mut stop = std::pin::pin!(stopped(shutdown));
    while tokio::time::Instant::now() < deadline && !confirmed {
        let peers = node.mesh.connected_peers().await.unwrap_or_default();
        for peer in peers {
            // Only a peer that answered counts: a refusal or a timeout confirms nothing.
            if let Ok(report) = pull(&node, peer).await
                && report.answered
            {
                confirmed = true;
                own_claim = own_claim.max(report.own_claim);
            }
        }
        if !confirmed {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
    let (own_head, restored) =
        match blocking(&node.engine, |engine| (engine.own_head(), engine.restored_from_backup()))
            .await
        {
            Ok(state) => state,
            Err(_) => return,
        };
    // A peer proved more of our feed than we could fetch: signing on would reuse its seqs.
    let incomplete = own_claim.is_some_and(|claim| own_head < claim);
    if !confirmed || restored || incomplete {
        match blocking(&node.engine, |engine| engine.start_new_generation()).await {
            Ok(Ok(generation)) => tracing::info!(
                generation,
                confirmed,
                restored,
                incomplete,
                "own feed not fully confirmed: new generation"
            ),
            _ => return,
        }
    }
    let _ = ready.send(true);
    node.publish.notify_one();
}

impl Node {
    /// Runs `work` on the engine on a blocking thread.
    pub async fn with_engine<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Engine) -> R + Send + 'static,
    ) -> Result<R> {
        blocking(&self.engine, work).await
    }

    /// Adds a record and wakes the publisher.
    pub async fn add_record(&self, record: engine::NewRecord, user: String) -> Result<u64> {
        let id = blocking(&self.engine, move |engine| engine.add_record(record, &user)).await??;
        self.publish.notify_one();
        Ok(id)
    }

    /// Adds records in bulk and wakes the publisher.
    pub async fn add_records(
        &self,
        records: Vec<engine::NewRecord>,
        user: String,
    ) -> Result<Vec<u64>> {
        let ids =
            blocking(&self.engine, move |engine| engine.add_records(records, &user)).await??;
        self.publish.notify_one();
        Ok(ids)
    }

    /// Removes a record (publishing a retraction when it was the last holder) and wakes the
    /// publisher.
    pub async fn remove_record(
        &self,
        id: u64,
        reason: crossmatch_protocol::RetractReason,
        user: String,
    ) -> Result<()> {
        blocking(&self.engine, move |engine| engine.remove_record(id, reason, &user)).await??;
        self.publish.notify_one();
        Ok(())
    }

    /// Publishes a referral or takedown status for a record.
    pub async fn set_status(
        &self,
        id: u64,
        status: crossmatch_protocol::Status,
        user: String,
    ) -> Result<()> {
        blocking(&self.engine, move |engine| engine.set_status(id, status, &user)).await??;
        self.publish.notify_one();
        Ok(())
    }

    /// Subscribes to alert changes (bounded; a slow subscriber is told it lagged).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<AlertEvent> {
        self.alerts.subscribe()
    }

    /// The mesh client (peers, stats, addresses).
    pub fn mesh(&self) -> &mesh::Client {
        &self.mesh
    }

    /// Waits until own-feed recovery is done and the node publishes.
    pub async fn wait_ready(&self) -> Result<()> {
        let mut ready = self.ready.clone();
        ready.wait_for(|ready| *ready).await.map(|_| ()).map_err(|_| Error::Closed)
    }

    /// Whether the node publishes yet (`/readyz`).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the node has been told to stop.
    pub async fn stopped(&self) {
        stopped(self.shutdown.subscribe()).await;
    }

    /// Signals every task to stop.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}
