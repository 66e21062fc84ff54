//! Own-feed recovery: before the first publish, ask reachable peers, at once and until the
//! deadline, what they hold of this node's own feed, and restore what they prove beyond the
//! store; unless a peer proves the own head (or, the current generation being empty, an earlier
//! generation and nothing of this one), or if the store came from a backup, start a new
//! generation instead of guessing. Then the node is ready.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Node;
use super::sync::{PullBudget, PullScope, pull};
use crate::engine::OwnWitness;
use crate::mesh::PeerKey;

/// How often recovery looks for newly connected peers.
const ROUND: Duration = Duration::from_millis(200);
/// How long recovery waits before asking again a peer that gave no answer.
const RETRY: Duration = Duration::from_secs(1);

/// What recovery knows of a peer.
#[derive(Debug, Clone, Copy)]
enum Asked {
    /// Its pull runs.
    Running,
    /// It answered `heads`.
    Answered,
    /// It gave no answer; asked again after [`RETRY`].
    Failed(Instant),
}

/// What the peers' answers proved of the own feed, together.
#[derive(Debug, Default)]
struct Proofs {
    /// A peer proved the own head, or held it further (then it must be fetched).
    confirmed: bool,
    /// A peer held another batch at the own head's position.
    contradicted: bool,
    /// The furthest head of the own feed a peer proved: (generation, seq).
    furthest: Option<(u32, u64)>,
}

impl Proofs {
    fn add(&mut self, witness: OwnWitness) {
        match witness {
            OwnWitness::Nothing => {}
            OwnWitness::Confirms => self.confirmed = true,
            OwnWitness::Ahead(generation, seq) => {
                self.confirmed = true;
                self.furthest = self.furthest.max(Some((generation, seq)));
            }
            OwnWitness::Contradicts => self.contradicted = true,
        }
    }
}

/// Recovers the own feed, then marks the node ready and wakes the publisher. Gives up without
/// marking it ready if `stop` resolves first or the engine fails. Peers are pulled at once (one
/// pull each, of the own feed only), and every pull ends by the deadline, so no peer holds
/// recovery past it; recovery ends earlier once a peer confirmed and every pull is done.
pub(super) async fn recover(
    node: Node,
    ready: watch::Sender<bool>,
    deadline_secs: u64,
    stop: impl Future<Output = ()>,
) {
    let deadline = Instant::now() + Duration::from_secs(deadline_secs);
    let mut stop = std::pin::pin!(stop);
    // At most one entry and one pull per roster member.
    let mut asked: HashMap<PeerKey, Asked> = HashMap::new();
    let mut pulls = JoinSet::new();
    let mut proofs = Proofs::default();
    while Instant::now() < deadline {
        for peer in node.mesh.connected_peers().await.unwrap_or_default() {
            let due = match asked.get(&peer) {
                None => true,
                Some(Asked::Failed(at)) => at.elapsed() >= RETRY,
                Some(Asked::Running | Asked::Answered) => false,
            };
            let Some(slot) = due.then(|| node.pull_slots.claim(peer)).flatten() else { continue };
            asked.insert(peer, Asked::Running);
            let node = node.clone();
            pulls.spawn(async move {
                let mut budget = PullBudget::new(&node, deadline);
                let report = pull(&node, peer, &mut budget, PullScope::OwnFeed).await;
                drop(slot);
                (peer, report)
            });
        }
        if proofs.confirmed && pulls.is_empty() {
            break;
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep_until(deadline) => break,
            Some(joined) = pulls.join_next(), if !pulls.is_empty() => {
                let Ok((peer, report)) = joined else { continue };
                match report {
                    // Only a peer that answered counts: a refusal or a timeout proves nothing.
                    Ok(report) if report.answered => {
                        asked.insert(peer, Asked::Answered);
                        proofs.add(report.own);
                    }
                    _ => {
                        asked.insert(peer, Asked::Failed(Instant::now()));
                    }
                }
            }
            () = tokio::time::sleep(ROUND) => {}
        }
    }
    // Pulls still running at the deadline are dropped with what they fetched so far.
    drop(pulls);
    let (own_head, restored) =
        match node.blocking(|engine| (engine.own_head(), engine.restored_from_backup())).await {
            Ok(state) => state,
            Err(_) => return,
        };
    let Proofs { confirmed, contradicted, furthest } = proofs;
    // A peer proved more of our feed than we could fetch: signing on would reuse its seqs.
    let incomplete = furthest.is_some_and(|claim| own_head < claim);
    if !confirmed || contradicted || restored || incomplete {
        match node.blocking(|engine| engine.start_new_generation()).await {
            Ok(Ok(generation)) => tracing::info!(
                generation,
                confirmed,
                contradicted,
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
