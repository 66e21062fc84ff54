//! The mesh's events, handled: gossip is ingested and answered with a verdict (the table of
//! docs/PROTOCOL.md §3.5), fork evidence is recorded and forwarded, sync requests are handed to
//! [`sync`](super::sync) to answer, and connections start a pull. Ignorable gossip (over quota,
//! past a fork, of an origin outside the roster, evidence known already) is free up to a
//! budget per peer; past it, each such message costs its sender a penalty. An origin outside
//! the roster is charged only to a sender on this node's roster: during a rolling roster
//! change, honest members on another roster relay members this roster lacks.

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Node;
use super::sync::{self, SyncJob};
use crate::engine::{ForkOutcome, IngestOutcome};
use crate::mesh::{self, GossipKind, PeerKey, Verdict};

/// The gossip verdict for what ingest did with a batch.
fn verdict(outcome: &IngestOutcome) -> Verdict {
    match outcome {
        IngestOutcome::Applied { .. } | IngestOutcome::Gap { .. } => Verdict::Accept,
        IngestOutcome::Rejected(_) | IngestOutcome::IncompleteGossip => Verdict::Reject,
        IngestOutcome::Duplicate { .. }
        | IngestOutcome::Fork { .. }
        | IngestOutcome::Ignored
        | IngestOutcome::QuotaExceeded
        | IngestOutcome::RepublicationOverQuota
        | IngestOutcome::UnknownOrigin
        | IngestOutcome::LeftToRecovery => Verdict::Ignore,
    }
}

/// Whether an ignored batch draws on its sender's budget of ignorable gossip: what brings
/// nothing (over quota, past a fork, an origin outside the roster). A duplicate (an honest
/// relay often forwards what sync brought first), a fork (news) and a republication over
/// quota while its allowance is still being counted (each node's allowance is its own, so the
/// relay's let it in) are free; a batch beyond an allowance used up is over quota, and draws
/// like any other, whoever sends it, the origin too. An origin outside
/// the roster is charged only to a sender on this node's roster, which judged the batch
/// against the same members and so would not have forwarded it honestly; a sender on another
/// roster (a rolling roster change) forwards, honestly, a member this roster lacks, as often
/// as that member publishes, and it costs this node only a CBOR decode.
fn batch_draws_budget(outcome: &IngestOutcome, same_roster: bool) -> bool {
    match outcome {
        IngestOutcome::Ignored | IngestOutcome::QuotaExceeded => true,
        IngestOutcome::UnknownOrigin => same_roster,
        _ => false,
    }
}

/// Whether ignored fork evidence draws on its sender's budget: evidence known already or past
/// the limits, and, from a sender on this node's roster, evidence about an origin outside it
/// (see [`batch_draws_budget`]).
fn evidence_draws_budget(outcome: &ForkOutcome, same_roster: bool) -> bool {
    match outcome {
        ForkOutcome::Known | ForkOutcome::OverLimit { .. } => true,
        ForkOutcome::UnknownOrigin => same_roster,
        ForkOutcome::Recorded | ForkOutcome::Invalid(_) => false,
    }
}

/// Ignorable messages a peer may send at once. An honest relay sends few: it forwards a batch
/// it applied, which another node ignores only as over that node's quota or past a fork it
/// learnt first (origins outside the roster are not charged to a relay on another roster).
pub(super) const IGNORABLE_BURST: f64 = 600.0;
/// Ignorable messages a peer may send per second, sustained: about 170,000 a day.
pub(super) const IGNORABLE_PER_SEC: f64 = 2.0;

/// Each peer's budget of ignorable gossip: a token bucket per roster member (only members'
/// gossip reaches the node, so the map is bounded by the roster).
#[derive(Debug, Default)]
pub(super) struct IgnorableBudgets(HashMap<PeerKey, (f64, Instant)>);

impl IgnorableBudgets {
    /// Whether a message from `peer` costs it a penalty: it `draws` on the budget, and the
    /// budget is spent.
    pub(super) fn penalises(&mut self, peer: PeerKey, draws: bool, now: Instant) -> bool {
        draws && !self.charge(peer, now)
    }

    /// Charges one ignorable message to `peer`; false when its budget is spent (penalise it).
    pub(super) fn charge(&mut self, peer: PeerKey, now: Instant) -> bool {
        let (tokens, at) = self.0.entry(peer).or_insert((IGNORABLE_BURST, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * IGNORABLE_PER_SEC).min(IGNORABLE_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Handles the mesh's events until `stop` resolves or the mesh closes its channel, then waits
/// for the sync answers still being served.
pub(super) async fn handle_events(
    node: Node,
    mut events: mpsc::Receiver<mesh::Event>,
    sync_jobs: mpsc::Sender<SyncJob>,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut budgets = IgnorableBudgets::default();
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
                let same_roster = node.roster.same_roster(&source);
                let outcome = node.blocking(move |engine| engine.ingest_fork_evidence(&data)).await;
                let draws = matches!(&outcome, Ok(Ok(outcome)) if evidence_draws_budget(outcome, same_roster));
                if budgets.penalises(source, draws, Instant::now()) {
                    let _ = node.mesh.penalize(source).await;
                }
                let verdict = match outcome {
                    Ok(Ok(ForkOutcome::Recorded)) => {
                        tracing::warn!(peer = %source, "fork evidence received: generation frozen");
                        Verdict::Accept
                    }
                    Ok(Ok(ForkOutcome::Invalid(_))) => Verdict::Reject,
                    Ok(Ok(ForkOutcome::OverLimit { penalise })) => {
                        // The relay may be honest; the signer has equivocated too often.
                        if let Some(signer) = penalise {
                            let _ = node.mesh.penalize(PeerKey(signer)).await;
                        }
                        Verdict::Ignore
                    }
                    _ => Verdict::Ignore,
                };
                let _ = node.mesh.report_validation(message_id, source, verdict).await;
            }
            mesh::Event::Gossip { kind: GossipKind::Batch, source, message_id, data } => {
                let same_roster = node.roster.same_roster(&source);
                // Until own-feed recovery has judged what peers hold of the own feed, a batch
                // of it is left to recovery (Ignored, free): stored now, it would hide that own
                // data was lost, as peers' heads would then only confirm what gossip brought
                // back, and the node would sign on in a generation that a peer out of reach may
                // hold more of. Peers announce the batches of their last heartbeats to random
                // members, so a wiped node that reconnects can be offered its own.
                let recovering = !*node.ready.borrow();
                let ingested = node
                    .blocking(move |engine| {
                        let outcome = if recovering {
                            engine.ingest_gossip_while_recovering(&data)
                        } else {
                            engine.ingest_gossip(&data)
                        };
                        (outcome, engine.take_fork_evidence())
                    })
                    .await;
                let (outcome, found_forks) = match ingested {
                    Ok((Ok(outcome), found)) => (Some(outcome), found),
                    _ => (None, Vec::new()),
                };
                let verdict = outcome.as_ref().map_or(Verdict::Ignore, verdict);
                let draws = outcome.as_ref().is_some_and(|o| batch_draws_budget(o, same_roster));
                if budgets.penalises(source, draws, Instant::now()) {
                    tracing::debug!(peer = %source, "ignorable gossip past its budget: penalised");
                    let _ = node.mesh.penalize(source).await;
                }
                if let Some(IngestOutcome::Gap { feed, missing_from, missing_to }) = outcome {
                    let job = SyncJob::Range {
                        peer: source,
                        feed,
                        from_seq: missing_from,
                        to_seq: missing_to,
                    };
                    let _ = sync_jobs.try_send(job);
                }
                let _ = node.mesh.report_validation(message_id, source, verdict).await;
                forward_forks(&node, found_forks).await;
            }
            mesh::Event::Gossip { kind: GossipKind::Roster, source, message_id, data } => {
                // Never forwarded (`Ignore`): one hop, so the sender is the announcer. Each
                // draws on the sender's budget; another version is never penalised.
                if budgets.penalises(source, true, Instant::now()) {
                    let _ = node.mesh.penalize(source).await;
                }
                if node.on_roster_announcement(source, &data) {
                    let _ = sync_jobs.try_send(SyncJob::Pull(source));
                }
                let _ = node.mesh.report_validation(message_id, source, Verdict::Ignore).await;
            }
            mesh::Event::Gossip { kind: GossipKind::Record, source, message_id, data } => {
                // Judged before anything is stored or forwarded (daemon/roster/records).
                let same_roster = node.roster.same_roster(&source);
                let (verdict, draws) = node.on_record_gossip(&data, same_roster).await;
                if budgets.penalises(source, draws, Instant::now()) {
                    let _ = node.mesh.penalize(source).await;
                }
                let _ = node.mesh.report_validation(message_id, source, verdict).await;
            }
            mesh::Event::SyncRequest { peer: _, request, reply } => {
                // Served on a blocking thread so a large range never stalls the event handler.
                serving.spawn(sync::answer(node.clone(), request, reply));
            }
            mesh::Event::PeerConnected(peer) => {
                tracing::info!(peer = %peer, "member connected");
                // Asked again for roster conflict evidence at its first pull.
                node.forget_conflict_asked(peer);
                let _ = sync_jobs.try_send(SyncJob::Pull(peer));
            }
            mesh::Event::RosterMismatch(peer) => {
                tracing::error!(peer = %peer, "member announced another federation: no sync with it");
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

/// Publishes fork evidence the engine found on the forks topic. Evidence that cannot be
/// published now is still served to peers that ask (`forks`).
pub(super) async fn forward_forks(node: &Node, found: Vec<Vec<u8>>) {
    for evidence in found {
        tracing::warn!("fork found: generation frozen, evidence forwarded");
        if let Err(error) = node.mesh.publish_on(GossipKind::ForkEvidence, evidence).await {
            tracing::debug!(%error, "fork evidence not gossiped; peers fetch it by sync");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A newcomer's bulk import (more than the burst in batches, well within its quota)
    /// relayed by a member on the newer roster to one on the older roster: every batch, and
    /// every piece of fork evidence about it, is of an origin outside the receiver's roster.
    #[test]
    fn a_relay_on_another_roster_is_never_penalised_for_origins_this_roster_lacks() {
        let mut budgets = IgnorableBudgets::default();
        let relay = PeerKey([1; 32]);
        let now = Instant::now();
        let newcomer_batches = 4 * IGNORABLE_BURST as usize;
        for _ in 0..newcomer_batches {
            let draws = batch_draws_budget(&IngestOutcome::UnknownOrigin, false);
            assert!(!budgets.penalises(relay, draws, now), "a relay on another roster penalised");
            let draws = evidence_draws_budget(&ForkOutcome::UnknownOrigin, false);
            assert!(!budgets.penalises(relay, draws, now), "a relay on another roster penalised");
        }
        // Its budget is untouched: what it sends that is ignorable for other reasons still has
        // the whole burst.
        for _ in 0..IGNORABLE_BURST as usize {
            let draws = batch_draws_budget(&IngestOutcome::QuotaExceeded, false);
            assert!(!budgets.penalises(relay, draws, now));
        }
        assert!(budgets.penalises(relay, true, now), "past the burst");
    }

    /// A sender on this node's roster judged the batch against the same members: it cannot
    /// have relayed an origin outside the roster honestly, so each such message is charged.
    #[test]
    fn a_sender_on_this_roster_pays_for_origins_outside_it() {
        let mut budgets = IgnorableBudgets::default();
        let (batches, evidence) = (PeerKey([1; 32]), PeerKey([2; 32]));
        let now = Instant::now();
        for _ in 0..IGNORABLE_BURST as usize {
            let draws = batch_draws_budget(&IngestOutcome::UnknownOrigin, true);
            assert!(!budgets.penalises(batches, draws, now), "within the burst");
            let draws = evidence_draws_budget(&ForkOutcome::UnknownOrigin, true);
            assert!(!budgets.penalises(evidence, draws, now), "within the burst");
        }
        let draws = batch_draws_budget(&IngestOutcome::UnknownOrigin, true);
        assert!(budgets.penalises(batches, draws, now), "past the burst");
        let draws = evidence_draws_budget(&ForkOutcome::UnknownOrigin, true);
        assert!(budgets.penalises(evidence, draws, now), "past the burst");
    }

    #[test]
    fn what_brings_news_or_is_rejected_is_never_charged() {
        for same_roster in [false, true] {
            let free = [
                IngestOutcome::Applied { applied: 1 },
                IngestOutcome::Duplicate { filled: 0 },
                IngestOutcome::Fork { seq: 1 },
                IngestOutcome::IncompleteGossip,
                IngestOutcome::LeftToRecovery,
            ];
            assert!(free.iter().all(|outcome| !batch_draws_budget(outcome, same_roster)));
            assert!(batch_draws_budget(&IngestOutcome::Ignored, same_roster));
            assert!(batch_draws_budget(&IngestOutcome::QuotaExceeded, same_roster));
            assert!(!batch_draws_budget(&IngestOutcome::RepublicationOverQuota, same_roster));
            assert!(!evidence_draws_budget(&ForkOutcome::Recorded, same_roster));
            assert!(evidence_draws_budget(&ForkOutcome::Known, same_roster));
            let over = ForkOutcome::OverLimit { penalise: None };
            assert!(evidence_draws_budget(&over, same_roster));
        }
    }

    #[test]
    fn ignorable_gossip_is_free_up_to_the_burst_then_refills_slowly() {
        let mut budgets = IgnorableBudgets::default();
        let (peer, other) = (PeerKey([1; 32]), PeerKey([2; 32]));
        let now = Instant::now();
        for _ in 0..IGNORABLE_BURST as usize {
            assert!(budgets.charge(peer, now));
        }
        assert!(!budgets.charge(peer, now), "past the burst");
        assert!(budgets.charge(other, now), "budgets are per peer");
        let later = now + Duration::from_secs_f64(1.0 / IGNORABLE_PER_SEC);
        assert!(budgets.charge(peer, later), "one more after its refill time");
        assert!(!budgets.charge(peer, later));
    }
}
