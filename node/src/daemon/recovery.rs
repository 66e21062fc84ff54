//! Own-feed recovery: before the first publish, ask reachable peers for this node's own head
//! within the deadline and restore what they hold; if no peer answers, or the store came from a
//! backup, start a new generation instead of guessing. Then the node is ready.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use super::Node;
use super::sync::pull;

/// Recovers the own feed, then marks the node ready and wakes the publisher. Gives up without
/// marking it ready if `stop` resolves first or the engine fails.
pub(super) async fn recover(
    node: Node,
    ready: watch::Sender<bool>,
    deadline_secs: u64,
    stop: impl Future<Output = ()>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(deadline_secs);
    let mut confirmed = false;
    let mut own_claim = None;
    let mut stop = std::pin::pin!(stop);
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
        match node.blocking(|engine| (engine.own_head(), engine.restored_from_backup())).await {
            Ok(state) => state,
            Err(_) => return,
        };
    // A peer proved more of our feed than we could fetch: signing on would reuse its seqs.
    let incomplete = own_claim.is_some_and(|claim| own_head < claim);
    if !confirmed || restored || incomplete {
        match node.blocking(|engine| engine.start_new_generation()).await {
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
