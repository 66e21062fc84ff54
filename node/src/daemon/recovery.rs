//! Own-feed recovery: before the first publish, ask reachable peers, at once and until the
//! deadline, what they hold of this node's own feed, and restore what they prove beyond the
//! store; unless a peer proves the own head (or, the current generation being empty, an earlier
//! generation and nothing of this one), or if a peer held more of the feed than the store (own
//! data was lost: a peer out of reach may hold more still) or the store came from a backup,
//! start a new generation instead of guessing. Then the node is ready.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Node;
use super::sync::{JudgedHeads, PullBudget, PullScope, PullSlot, ask_heads, fetch_judged};
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

/// A step of one peer's pull, as it ends.
enum Step {
    /// Its `heads` answer was asked and judged; its ranges are to be fetched next, within the
    /// same budget and holding the same slot.
    Judged { peer: PeerKey, judged: super::Result<JudgedHeads>, budget: PullBudget, slot: PullSlot },
    /// Its ranges were fetched (`whole`), or its pull ended early (its budget ran out, an
    /// error).
    Fetched { peer: PeerKey, whole: bool },
}

/// What the peers' answers proved of the own feed, together.
#[derive(Debug, Default)]
struct Proofs {
    /// A peer proved the own head, or held it further (then it must be fetched).
    confirmed: bool,
    /// A peer held another batch at the own head's position.
    contradicted: bool,
    /// The furthest head of the own feed a peer held beyond the store, (generation, seq):
    /// own data was lost.
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
/// recovery past it; recovery ends earlier once a peer confirmed and every pull is done. What
/// a peer's heads prove counts once they are judged, before its ranges are fetched. Each peer
/// whose pull fetched all it set out to goes into `recovered`, so that the sync worker pulls
/// every other chain from it meanwhile.
pub(super) async fn recover(
    node: Node,
    ready: watch::Sender<bool>,
    recovered: watch::Sender<HashSet<PeerKey>>,
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
                let judged = ask_heads(&node, peer, &mut budget, PullScope::OwnFeed).await;
                Step::Judged { peer, judged, budget, slot }
            });
        }
        if proofs.confirmed && pulls.is_empty() {
            break;
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep_until(deadline) => break,
            Some(joined) = pulls.join_next(), if !pulls.is_empty() => {
                let (peer, judged, mut budget, slot) = match joined {
                    Ok(Step::Judged { peer, judged, budget, slot }) => (peer, judged, budget, slot),
                    // The sync worker may pull everything else from it now. A peer whose pull
                    // ended early (a refusal, its page cap, …) may still hold some of the own
                    // feed: its jobs wait for the node to be ready, and then fetch that too.
                    Ok(Step::Fetched { peer, whole }) => {
                        if whole {
                            recovered.send_modify(|done| {
                                done.insert(peer);
                            });
                        }
                        continue;
                    }
                    Err(_) => continue,
                };
                match judged {
                    // Only a peer that answered counts: a refusal or a timeout proves nothing.
                    // What it proves counts at once, before its ranges are fetched: a pull
                    // still fetching at the deadline is dropped, its proof is not.
                    Ok(judged) if judged.report.answered => {
                        asked.insert(peer, Asked::Answered);
                        proofs.add(judged.report.own);
                        let node = node.clone();
                        pulls.spawn(async move {
                            let scope = PullScope::OwnFeed;
                            let fetched =
                                fetch_judged(&node, peer, judged, &mut budget, scope).await;
                            drop(slot);
                            let whole = fetched.is_ok() && budget.finished();
                            Step::Fetched { peer, whole }
                        });
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
    let Ok(restored) = node.blocking(|engine| engine.restored_from_backup()).await else {
        return;
    };
    let Proofs { confirmed, contradicted, furthest } = proofs;
    // A peer held more of our feed than the store: own batches were lost, and whatever was
    // fetched back, a peer out of reach may hold more. Signing on would reuse its seqs; so
    // would a new generation that is not past every generation a peer proved.
    let lost = furthest.is_some();
    if !confirmed || contradicted || restored || lost {
        let proved = furthest.map_or(0, |(generation, _)| generation);
        match node.blocking(move |engine| engine.start_generation_after(proved)).await {
            Ok(Ok(generation)) => tracing::info!(
                generation,
                confirmed,
                contradicted,
                restored,
                lost,
                "own feed not fully confirmed: new generation"
            ),
            _ => return,
        }
    }
    let _ = ready.send(true);
    node.publish.notify_one();
}
