//! The root stop signal of a running node and the named tasks that derive from it: the
//! injected shutdown future (or [`Node::shutdown`](super::Node::shutdown)) fires the root once,
//! every task waits on a future derived from it, and [`Tasks::join`] drains them all.

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// The one stop signal of a node. Fired once; it never un-fires.
#[derive(Debug, Clone)]
pub(super) struct StopRoot(watch::Sender<bool>);

impl StopRoot {
    /// A root that has not fired.
    pub(super) fn new() -> Self {
        Self(watch::channel(false).0)
    }

    /// Fires the root: every derived future resolves.
    pub(super) fn fire(&self) {
        // Stored even when nobody listens yet, so a later `fired()` resolves at once.
        self.0.send_replace(true);
    }

    /// A future that resolves once the root has fired (at once if it has already).
    pub(super) fn fired(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut fired = self.0.subscribe();
        async move {
            // An error means every sender is gone: nothing can run on, so stop too.
            let _ = fired.wait_for(|fired| *fired).await;
        }
    }

    /// Fires the root when `shutdown` completes; ends early if the root fires first.
    pub(super) fn fire_on(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let root = self.clone();
        let fired = self.fired();
        async move {
            tokio::select! {
                () = shutdown => root.fire(),
                () = fired => {}
            }
        }
    }
}

/// The tasks of a running node, each under a name; [`Tasks::join`] waits for all of them to
/// stop.
#[derive(Debug)]
pub struct Tasks {
    running: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    /// No tasks yet.
    pub(super) fn new() -> Self {
        Self { running: JoinSet::new(), names: HashMap::new() }
    }

    /// Spawns `task` under `name` (a fixed label: it appears in log lines).
    pub(super) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let handle = self.running.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Waits until every task has stopped. Tasks stop once the root stop signal fires; each
    /// finishes what it holds first (the sync answers being served are sent, for one).
    pub async fn join(mut self) {
        while let Some(joined) = self.running.join_next_with_id().await {
            match joined {
                Ok((id, ())) => {
                    let task = self.names.remove(&id).unwrap_or("unnamed");
                    tracing::debug!(task, "task stopped");
                }
                Err(error) => {
                    let task = self.names.remove(&error.id()).unwrap_or("unnamed");
                    tracing::error!(task, panicked = error.is_panic(), "task failed");
                }
            }
        }
    }
}
