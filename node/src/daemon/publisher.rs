//! The publisher: once own-feed recovery is done, drains the outbox into signed batches and
//! gossips them, at once when idle and at most once per linger when busy. While an import's
//! chunks apply, it takes one turn per [`IMPORT_PACE`]: the import queues entries faster than
//! they can be signed, and the chunks' durable writes go first; the rest is signed once the
//! import ends.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::Node;

/// Batches the publisher signs per turn of the engine lock.
pub const PUBLISH_BATCHES_PER_TURN: usize = 8;

/// Least time between two turns while an import's chunks apply.
pub const IMPORT_PACE: Duration = Duration::from_secs(1);

/// Publishes until `stop` resolves; nothing before the node is ready.
pub(super) async fn publisher(node: Node, linger_ms: u64, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    let mut ready = node.ready.clone();
    tokio::select! {
        () = &mut stop => return,
        _ = ready.wait_for(|ready| *ready) => {}
    }
    let linger = Duration::from_millis(linger_ms);
    loop {
        // A few batches per turn of the engine lock, so gossip ingest is never starved.
        loop {
            let batches = match node.blocking(|e| e.publish_batches(PUBLISH_BATCHES_PER_TURN)).await
            {
                Ok(Ok(batches)) => batches,
                Ok(Err(error)) => {
                    tracing::error!(%error, "publishing failed; retrying");
                    Vec::new()
                }
                Err(_) => return,
            };
            let more = batches.len() >= PUBLISH_BATCHES_PER_TURN;
            for batch in batches {
                if let Err(error) = node.mesh.publish(batch.to_wire()).await {
                    // Peers catch up by sync; the batch is durable in the own feed.
                    tracing::debug!(%error, seq = batch.header().seq, "gossip publish failed");
                }
            }
            if !more {
                break;
            }
            if node.imports.applying() {
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(IMPORT_PACE) => {}
                }
            }
        }
        let last_round = Instant::now();
        tokio::select! {
            () = &mut stop => break,
            () = node.publish.notified() => {}
        }
        // Idle: publish the moment something arrives. Busy: at most one round per linger, so
        // entries arriving close together share a batch.
        let wait = wait_before_round(last_round, Instant::now(), linger);
        if !wait.is_zero() {
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// How long to wait before a round of publishing that something woke: the rest of the
/// linger since the last round ended, nothing once that is past (an idle node publishes at
/// once).
fn wait_before_round(last_round: Instant, now: Instant, linger: Duration) -> Duration {
    linger.saturating_sub(now.saturating_duration_since(last_round))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_publisher_publishes_at_once_and_a_busy_one_once_per_linger() {
        let linger = Duration::from_millis(20);
        let start = Instant::now();
        let after = |ms| start + Duration::from_millis(ms);
        assert_eq!(wait_before_round(start, after(0), linger), linger, "right after");
        assert_eq!(wait_before_round(start, after(5), linger), Duration::from_millis(15));
        assert_eq!(wait_before_round(start, after(20), linger), Duration::ZERO);
        assert_eq!(wait_before_round(start, after(500), linger), Duration::ZERO, "idle");
        assert_eq!(wait_before_round(start, after(5), Duration::ZERO), Duration::ZERO);
    }
}
