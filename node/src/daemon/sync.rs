//! Sync between members: the worker that runs queued jobs (pull a peer's heads, fetch a chain's
//! missing range), fork evidence fetched before any range, and the answers to peers' `heads`,
//! `range` and `forks` requests, served from the store.

use std::future::Future;

use crossmatch_protocol::FeedId;
use tokio::sync::{mpsc, oneshot};

use super::calls::Lane;
use super::gossip::forward_forks;
use super::{Error, Node, Result};
use crate::engine::{Engine, ForkOutcome};
use crate::mesh::{self, PeerKey, SyncRequest, SyncResponse};

/// Capacity of the queue of sync jobs; a full queue drops the job (the timer recovers it).
pub const SYNC_QUEUE_CAPACITY: usize = 64;
/// Most range requests one pull makes before it yields to other work.
pub const MAX_RANGE_REQUESTS_PER_PULL: usize = 64;
/// Batches asked for per range request.
pub const RANGE_BATCHES: u32 = 64;

/// What the sync worker does.
#[derive(Debug)]
pub(super) enum SyncJob {
    /// Ask a peer for its heads and fetch whatever is ahead of us.
    Pull(PeerKey),
    /// Fetch one chain's missing range from a peer.
    Range { peer: PeerKey, feed: FeedId, from_seq: u64, to_seq: u64 },
}

/// Runs sync jobs one at a time until `stop` resolves or every sender is gone.
pub(super) async fn sync_worker(
    node: Node,
    mut jobs: mpsc::Receiver<SyncJob>,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let job = tokio::select! {
            () = &mut stop => break,
            job = jobs.recv() => match job { Some(job) => job, None => break },
        };
        match job {
            SyncJob::Pull(peer) => {
                let _ = pull(&node, peer).await;
            }
            SyncJob::Range { peer, feed, from_seq, to_seq } => {
                let _ = fetch_range(&node, peer, feed, from_seq, to_seq).await;
            }
        }
    }
}

/// What one pull learned.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PullReport {
    /// The peer answered `heads`.
    pub(super) answered: bool,
    /// The furthest head of this node's own feed the peer proved: (generation, seq).
    pub(super) own_claim: Option<(u32, u64)>,
}

/// Asks `peer` for its heads and fetches every chain it holds further than we do.
pub(super) async fn pull(node: &Node, peer: PeerKey) -> Result<PullReport> {
    let Ok(SyncResponse::Heads(manifests)) = node.mesh.request(peer, SyncRequest::Heads).await
    else {
        return Ok(PullReport::default());
    };
    // Forks first, so that no range past a fork is fetched.
    fetch_forks(node, peer).await?;
    let claims = node
        .blocking(move |engine| {
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
            report.own_claim = report.own_claim.max(Some((claim.feed.generation, claim.to_seq)));
        }
        fetch_range(node, peer, claim.feed, claim.from_seq, claim.to_seq).await?;
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
        let outcome = node.blocking(move |engine| engine.ingest_fork_evidence(&evidence)).await??;
        match outcome {
            ForkOutcome::Invalid(_) => {
                let _ = node.mesh.penalize(peer).await;
                break;
            }
            // The peer may be honest (its evidence limit filled in another order); the signer
            // has equivocated too often.
            ForkOutcome::OverLimit { penalise: Some(signer) } => {
                let _ = node.mesh.penalize(PeerKey(signer)).await;
            }
            ForkOutcome::OverLimit { penalise: None } => {}
            ForkOutcome::Recorded | ForkOutcome::Known => {}
        }
    }
    Ok(())
}

/// Fetches seqs `from_seq..=to_seq` of (origin, generation) from `peer`, a page at a time, at
/// most [`MAX_RANGE_REQUESTS_PER_PULL`] pages. A peer that serves what does not verify, or not
/// what was asked, is penalised and not asked further.
pub(super) async fn fetch_range(
    node: &Node,
    peer: PeerKey,
    feed: FeedId,
    mut from_seq: u64,
    to_seq: u64,
) -> Result<()> {
    for _ in 0..MAX_RANGE_REQUESTS_PER_PULL {
        if from_seq > to_seq {
            break;
        }
        let max = RANGE_BATCHES.min(u32::try_from(to_seq - from_seq + 1).unwrap_or(RANGE_BATCHES));
        let (origin, generation) = (feed.origin, feed.generation);
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
        let (outcome, found) = node
            .blocking(move |engine| {
                let outcome = engine.ingest_range(feed, from_seq, &batches);
                (outcome, engine.take_fork_evidence())
            })
            .await?;
        forward_forks(node, found).await;
        let outcome = outcome?;
        if outcome.mismatch {
            let _ = node.mesh.penalize(peer).await;
            break;
        }
        from_seq += count;
    }
    Ok(())
}

/// Answers a peer's sync request on a blocking thread, in the sync lane of engine calls; a
/// full lane is refused `busy`, a failure `unavailable`. Once the mesh stops waiting for the
/// answer (its reply timeout), the call gives up its place and does no work.
pub(super) async fn answer(
    node: Node,
    request: SyncRequest,
    mut reply: oneshot::Sender<SyncResponse>,
) {
    let call = node.call(Lane::Sync, move |engine| serve(engine, &request));
    let response = tokio::select! {
        response = call => match response {
            Ok(response) => response,
            Err(Error::Busy) => SyncResponse::Refused("busy".into()),
            Err(_) => SyncResponse::Refused("unavailable".into()),
        },
        () = reply.closed() => return,
    };
    let _ = reply.send(response);
}

/// A random index (0 if the system has no randomness to give).
fn random_index() -> usize {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) as usize
}

/// The answer to one sync request, from the store.
fn serve(engine: &mut Engine, request: &SyncRequest) -> SyncResponse {
    let result = match request {
        // Where the answer starts among the members: a different place each time, so that
        // if not every head fits one response, successive pulls still cover them all.
        SyncRequest::Heads => engine
            .heads(mesh::MAX_SYNC_RESPONSE_BYTES as usize - 1024, random_index())
            .map(SyncResponse::Heads),
        SyncRequest::Range { origin, generation, from_seq, max } => engine
            .range(
                FeedId::new(*origin, *generation),
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
