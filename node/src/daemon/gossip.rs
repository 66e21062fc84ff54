//! The mesh's events, handled: gossip is ingested and answered with a verdict (the table of
//! docs/PROTOCOL.md §3.5), fork evidence is recorded and forwarded, sync requests are handed to
//! [`sync`](super::sync) to answer, and connections start a pull.

use std::future::Future;

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
        | IngestOutcome::QuotaExceeded => Verdict::Ignore,
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
                let outcome = node.blocking(move |engine| engine.ingest_fork_evidence(&data)).await;
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
                let ingested = node
                    .blocking(move |engine| {
                        let outcome = engine.ingest_gossip(&data);
                        (outcome, engine.take_fork_evidence())
                    })
                    .await;
                let (outcome, found_forks) = match ingested {
                    Ok((Ok(outcome), found)) => (Some(outcome), found),
                    _ => (None, Vec::new()),
                };
                let verdict = outcome.as_ref().map_or(Verdict::Ignore, verdict);
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
            mesh::Event::SyncRequest { peer: _, request, reply } => {
                // Served on a blocking thread so a large range never stalls the event handler.
                serving.spawn(sync::answer(node.clone(), request, reply));
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
