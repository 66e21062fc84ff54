//! The node's timer: on a jittered period it queues a pull from a random connected member that
//! no pull runs with already,
//! sweeps expired data (the engine's, then the hunt's), sweeps the takedown clocks for warnings,
//! logs a roster that has expired and wakes the publisher to retry whatever a failed publish left.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Node;
use super::sync::SyncJob;

/// A random number below `max` (0 when `max` is 0).
fn jitter_ms(max: u64) -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) % max.max(1)
}

/// Ticks every `interval_secs` on average (between half and one and a half of it) until `stop`
/// resolves.
pub(super) async fn timer(
    node: Node,
    sync_jobs: mpsc::Sender<SyncJob>,
    interval_secs: u64,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let wait = interval_secs * 1000 / 2 + jitter_ms(interval_secs * 1000);
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        // A member that a pull runs with already (a slow one, maybe) is not picked again.
        if let Ok(mut peers) = node.mesh.connected_peers().await {
            peers.retain(|peer| !node.pull_slots.is_busy(peer));
            if !peers.is_empty() {
                let peer = peers[jitter_ms(peers.len() as u64) as usize];
                let _ = sync_jobs.try_send(SyncJob::Pull(peer));
            }
        }
        match node.blocking(|engine| engine.expire()).await {
            Ok(Ok((_, records))) if records > 0 => node.hunt.note_records_gone(),
            Ok(Err(error)) => {
                tracing::error!(%error, "retention sweep failed");
                // Some slices of records may have gone before the failure.
                node.hunt.note_records_gone();
            }
            _ => {}
        }
        if let Err(error) = node.purge_hunt().await {
            tracing::error!(%error, "hunt retention sweep failed");
        }
        if let Err(error) = node.sweep_takedowns().await {
            tracing::error!(%error, "takedown sweep failed");
        }
        node.watch_roster_expiry();
        // This node's own record, signed at start, until a peer took it.
        node.spread_own_record().await;
        // A rotation's changeover or grace period's end may have come: the slice worker steps.
        node.slices.notify_one();
        // Takes dropped sealed secrets first.
        node.check_rotation().await;
        // Whatever a failed publish left in the outbox is retried on every tick.
        node.publish.notify_one();
    }
}
