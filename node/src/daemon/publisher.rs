//! The publisher: once own-feed recovery is done, drains the outbox into signed batches and
//! gossips them, at once when idle and at most once per linger when busy. While an import's
//! chunks apply, it takes one turn per [`IMPORT_PACE`]: the import queues entries faster than
//! they can be signed, and the chunks' durable writes go first; the rest is signed once the
//! import ends. After a failed round it pauses before the next, longer each time, up to a
//! second.

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
    // When the last round that signed something, or failed, ended; and the failures in a row.
    let mut last_round: Option<Instant> = None;
    let mut failures: u32 = 0;
    loop {
        let mut worked = false;
        // A few batches per turn of the engine lock, so gossip ingest is never starved.
        loop {
            // The stop does not wait for a round: one cut short has signed and stored what it
            // got to (each batch in one durable write), and peers fetch that by sync.
            let round = node.blocking(|e| e.publish_batches(PUBLISH_BATCHES_PER_TURN));
            let round = tokio::select! {
                () = &mut stop => return,
                round = round => round,
            };
            let batches = match round {
                Ok(Ok(batches)) => {
                    failures = 0;
                    batches
                }
                Ok(Err(error)) => {
                    failures = failures.saturating_add(1);
                    tracing::error!(%error, failures, "publishing failed; tried again later");
                    worked = true;
                    Vec::new()
                }
                Err(_) => return,
            };
            worked |= !batches.is_empty();
            let more = batches.len() >= PUBLISH_BATCHES_PER_TURN;
            for batch in batches {
                let published = tokio::select! {
                    () = &mut stop => return,
                    published = node.mesh.publish(batch.to_wire()) => published,
                };
                if let Err(error) = published {
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
        if worked {
            last_round = Some(Instant::now());
        }
        if failures > 0 {
            // A failing store is not retried at every wake: a pause that grows to a second.
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(failure_pause(failures, linger)) => {}
            }
        }
        // The linger counts from the last round (`last_round`, taken before this wake).
        tokio::select! {
            () = &mut stop => break,
            () = node.publish.notified() => {}
        }
        // Idle: publish the moment something arrives. Busy: at most one round per linger.
        let wait = last_round
            .map_or(Duration::ZERO, |last| wait_before_round(last, Instant::now(), linger));
        if !wait.is_zero() {
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The pause after `failures` failed rounds in a row: the linger (10 ms at least), doubled
/// per further failure, up to a second.
fn failure_pause(failures: u32, linger: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    linger.max(Duration::from_millis(10)).saturating_mul(1 << doublings).min(Duration::from_secs(1))
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
    fn the_wait_before_a_round_is_the_rest_of_the_linger_since_the_last_one() {
        let linger = Duration::from_millis(20);
        let start = Instant::now();
        let after = |ms| start + Duration::from_millis(ms);
        assert_eq!(wait_before_round(start, after(0), linger), linger, "right after");
        assert_eq!(wait_before_round(start, after(5), linger), Duration::from_millis(15));
        assert_eq!(wait_before_round(start, after(20), linger), Duration::ZERO);
        assert_eq!(wait_before_round(start, after(500), linger), Duration::ZERO, "idle");
        assert_eq!(wait_before_round(start, after(5), Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_failing_round_pauses_longer_each_time_up_to_a_second() {
        let ms = |failures, linger| failure_pause(failures, Duration::from_millis(linger));
        let pauses: Vec<u128> = (1..=9).map(|failures| ms(failures, 20).as_millis()).collect();
        assert_eq!(pauses, [20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(ms(1, 0), Duration::from_millis(10), "a linger of 0 still pauses");
        assert_eq!(ms(u32::MAX, 0), Duration::from_secs(1));
    }
}
