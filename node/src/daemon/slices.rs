//! The slice worker: carries the engine's bounded background work (the withdrawal of members
//! removed from the roster, then the count of a republication allowance, then a rotation's
//! steps, then a routine key change's republication slices, then the release of a spread
//! import's records as quota room comes: `Engine::background_step`) one step per turn of the
//! engine lock, so ingest, the API and sync run between two steps. Woken at start, when a
//! rotation begins, when the member set changes and on every timer tick (a changeover, the end
//! of a grace period or a new day's quota comes by the clock); it steps until nothing is due,
//! then sleeps. A step that fails is logged and retried at the next wake-up.

use std::future::Future;

use super::{Node, Result, Rotation, RotationView};

/// Runs until `stop` resolves.
pub(super) async fn slice_worker(node: Node, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        loop {
            match node.blocking(|engine| engine.background_step()).await {
                Ok(Ok(true)) if node.stop.has_fired() => return,
                Ok(Ok(true)) => {
                    // Republication may be due: the publisher feeds it when its outbox is empty.
                    node.publish.notify_one();
                    tokio::task::yield_now().await;
                }
                Ok(Ok(false)) => break,
                Ok(Err(error)) => {
                    tracing::error!(%error, "background step failed; retried at the next tick");
                    break;
                }
                Err(_) => return,
            }
        }
        node.publish.notify_one();
        tokio::select! {
            () = &mut stop => return,
            () = node.slices.notified() => {}
        }
    }
}

impl Node {
    /// Begins a rotation of the secret and epoch (`engine/rotation.rs`): stored durably, carried
    /// out from its changeover on by the slice worker, a bounded step per turn of the engine
    /// lock; the publisher is woken for the republication.
    pub async fn begin_rotation(&self, rotation: Rotation) -> Result<Option<RotationView>> {
        let view = self.blocking(move |engine| engine.begin_rotation(rotation)).await??;
        self.slices.notify_one();
        self.publish.notify_one();
        Ok(view)
    }
}
