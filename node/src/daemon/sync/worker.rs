//! The sync worker: the queue of jobs (pulls and gap ranges), which of them start and with
//! what scope, at most [`MAX_CONCURRENT_PULLS`] at once and one per peer.

use std::collections::{HashSet, VecDeque};
use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    MAX_CONCURRENT_PULLS, MAX_WAITING_JOBS_PER_PEER, PULL_DEADLINE, PullBudget, PullScope, Range,
    SYNC_QUEUE_CAPACITY, SyncJob, fetch_range, fill_gap, pull,
};
use crate::daemon::Node;
use crate::mesh::PeerKey;

/// Runs sync jobs until `stop` resolves or every sender is gone: at most
/// [`MAX_CONCURRENT_PULLS`] at once and one per peer, so that one slow peer holds up no other.
/// Jobs wait (at most [`SYNC_QUEUE_CAPACITY`] of them, [`MAX_WAITING_JOBS_PER_PEER`] gaps per
/// peer and its pull, duplicates dropped) until their peer is free and a place is. Until the
/// node is ready, own-feed recovery has the peers first: only jobs with a peer recovery is done
/// with start, and none fetches the own feed ([`Gate`]), which recovery alone judges. So a
/// member back from an outage catches up while recovery waits out its deadline.
pub(in crate::daemon) async fn sync_worker(
    node: Node,
    mut jobs: mpsc::Receiver<SyncJob>,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut ready = node.ready.clone();
    let mut recovered = node.recovered.clone();
    let mut waiting: VecDeque<SyncJob> = VecDeque::new();
    let mut running = JoinSet::new();
    // The own key is the engine's from its opening (a key change takes a restart).
    let own = node.blocking(|engine| engine.own_public_key().to_bytes()).await.ok();
    loop {
        let gate = if *ready.borrow() {
            Gate::Ready
        } else {
            Gate::Recovering { done: recovered.borrow_and_update().clone(), own }
        };
        start_jobs(&node, &mut waiting, &mut running, &gate);
        tokio::select! {
            () = &mut stop => break,
            Some(joined) = running.join_next(), if !running.is_empty() => {
                // A pull cut short by its page cap goes on at once, if the queue has room.
                if let Ok(Some(peer)) = joined
                    && waiting.len() < SYNC_QUEUE_CAPACITY
                {
                    wait(&mut waiting, SyncJob::Pull(peer));
                }
            }
            job = jobs.recv(), if waiting.len() < SYNC_QUEUE_CAPACITY => match job {
                Some(job) => wait(&mut waiting, job),
                None => break,
            },
            Ok(()) = ready.changed() => {}
            Ok(()) = recovered.changed(), if matches!(gate, Gate::Recovering { .. }) => {}
        }
    }
}

/// Which waiting jobs may start.
pub(super) enum Gate {
    /// The node is ready: every job, each pull of everything.
    Ready,
    /// Own-feed recovery runs: only jobs with the peers it is done with (`done`), pulls of
    /// [`PullScope::Others`] and gaps of another origin's feed than the own one (`own`; `None`
    /// when the engine could not say, and then no gap starts).
    Recovering { done: HashSet<PeerKey>, own: Option<[u8; 32]> },
}

impl Gate {
    /// What `job` would pull now; `None` while it must wait for recovery.
    pub(super) fn scope(&self, job: &SyncJob) -> Option<PullScope> {
        match (self, job) {
            (Gate::Ready, _) => Some(PullScope::Everything),
            (Gate::Recovering { done, .. }, SyncJob::Pull(peer)) if done.contains(peer) => {
                Some(PullScope::Others)
            }
            (Gate::Recovering { done, own }, SyncJob::Range { peer, feed, .. })
                if done.contains(peer) && own.is_some_and(|own| own != feed.origin) =>
            {
                Some(PullScope::Others)
            }
            (Gate::Recovering { .. }, _) => None,
        }
    }
}

/// Queues `job` unless it waits already, or, a gap, its peer has [`MAX_WAITING_JOBS_PER_PEER`]
/// jobs waiting. A pull is never turned away for its peer's gaps (one pull per peer waits at
/// most, duplicates being dropped): it fetches whatever they would.
pub(super) fn wait(waiting: &mut VecDeque<SyncJob>, job: SyncJob) {
    let of_peer = waiting.iter().filter(|waiting| waiting.peer() == job.peer()).count();
    let room = matches!(job, SyncJob::Pull(_)) || of_peer < MAX_WAITING_JOBS_PER_PEER;
    if room && !waiting.contains(&job) {
        waiting.push_back(job);
    }
}

/// Starts waiting jobs, oldest first, that `gate` lets through and whose peer is free, while
/// there is a place. A pull's task yields its peer when the pull should go on at once (its page
/// cap spent, the peer still ahead).
fn start_jobs(
    node: &Node,
    waiting: &mut VecDeque<SyncJob>,
    running: &mut JoinSet<Option<PeerKey>>,
    gate: &Gate,
) {
    let mut index = 0;
    while running.len() < MAX_CONCURRENT_PULLS && index < waiting.len() {
        let Some(scope) = gate.scope(&waiting[index]) else {
            index += 1;
            continue;
        };
        let Some(slot) = node.pull_slots.claim(waiting[index].peer()) else {
            index += 1;
            continue;
        };
        let Some(job) = waiting.remove(index) else { break };
        let node = node.clone();
        running.spawn(async move {
            let mut budget = PullBudget::new(&node, Instant::now() + PULL_DEADLINE);
            let again = match job {
                SyncJob::Pull(peer) => {
                    // The roster first: a newer one may list members whose heads come next.
                    node.exchange_rosters(peer, &mut budget).await;
                    let pulled = pull(&node, peer, &mut budget, scope).await;
                    // Members' records newer than this node's (daemon/roster/records), last,
                    // so that nothing of them holds up the feeds.
                    node.exchange_records(peer, &mut budget).await;
                    pulled.is_ok().then_some(peer).filter(|_| budget.goes_on())
                }
                SyncJob::Range { peer, feed, from_seq, to_seq } => {
                    // A relay need not hold the range before the batch it gossiped.
                    let range = Range { feed, from_seq, to_seq, claimed: false, own: false };
                    let (node, budget) = (&node, &mut budget);
                    fill_gap(&node.chain_claims, feed, move |chain| async move {
                        let _ = fetch_range(node, peer, range, budget, chain).await;
                    })
                    .await;
                    None
                }
            };
            drop(slot);
            again
        });
    }
}
