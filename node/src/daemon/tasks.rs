//! The root stop signal of a running node and the named tasks that derive from it: the
//! injected shutdown future (or [`Node::shutdown`](super::Node::shutdown)) fires the root once,
//! every task waits on a future derived from it, and [`Tasks::join`] drains them all.
//!
//! A long-running task that ends before the root fired (it returned, or panicked), or a task
//! that may finish but failed, is a failure: the root records its name, marks the node failed
//! and fires, so the whole node stops; `/readyz` and `/metrics` show it and `crossmatch run`
//! exits non-zero. An engine lock found poisoned is recorded the same way, as `engine`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinSet;

/// The one stop signal of a node, and what failed, if anything. Fired once; it never un-fires.
#[derive(Debug, Clone)]
pub(super) struct StopRoot {
    root: watch::Sender<bool>,
    failed: Arc<Mutex<Vec<&'static str>>>,
}

impl StopRoot {
    /// A root that has not fired.
    pub(super) fn new() -> Self {
        Self { root: watch::channel(false).0, failed: Arc::default() }
    }

    /// Fires the root: every derived future resolves.
    pub(super) fn fire(&self) {
        // Stored even when nobody listens yet, so a later `fired()` resolves at once.
        self.root.send_replace(true);
    }

    /// Whether the root has fired.
    pub(super) fn has_fired(&self) -> bool {
        *self.root.borrow()
    }

    /// Records that `what` failed (a task's name, or `engine`), and fires the root.
    pub(super) fn fail(&self, what: &'static str) {
        let mut failed = self.failed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !failed.contains(&what) {
            tracing::error!(failed = what, "the node failed and stops");
            failed.push(what);
        }
        drop(failed);
        self.fire();
    }

    /// What failed, in the order it failed; empty while the node is healthy.
    pub(super) fn failures(&self) -> Vec<&'static str> {
        self.failed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// A future that resolves once the root has fired (at once if it has already).
    pub(super) fn fired(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut fired = self.root.subscribe();
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
    root: StopRoot,
    running: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    /// No tasks yet; failures are recorded on `root`.
    pub(super) fn new(root: StopRoot) -> Self {
        Self { root, running: JoinSet::new(), names: HashMap::new() }
    }

    /// Spawns `task` under `name` (a fixed label: it appears in log lines). It runs until the
    /// root fires: if it ends before, or panics, the node has failed.
    pub(super) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.spawn_finite(name, async move {
            task.await;
            Err(())
        });
    }

    /// Spawns `task` under `name`: it may finish (`Ok`) before the root fires, but if it fails
    /// (`Err`) or panics before the root fired, the node has failed.
    pub(super) fn spawn_finite(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), ()>> + Send + 'static,
    ) {
        let root = self.root.clone();
        let watched = async move {
            // A task of its own, so that a panic is an outcome here rather than lost.
            let failed = match tokio::spawn(task).await {
                Ok(Ok(())) => false,
                Ok(Err(())) => !root.has_fired(),
                // Cancelled: only the runtime shutting down does that.
                Err(error) => error.is_panic(),
            };
            if failed {
                root.fail(name);
            }
        };
        let handle = self.running.spawn(watched);
        self.names.insert(handle.id(), name);
    }

    /// What failed (see [`StopRoot::fail`]); empty if nothing did.
    pub fn failures(&self) -> Vec<&'static str> {
        self.root.failures()
    }

    /// Waits until every task has stopped. Tasks stop once the root stop signal fires; most
    /// finish what they hold first (the sync answers being served are sent, for one), but the
    /// publisher leaves a round in flight to end on its blocking thread (`publisher.rs`).
    pub async fn join(mut self) {
        self.drain().await;
    }

    /// Waits, at most `limit`, until every task has stopped. Past it, the names of the tasks
    /// still running (sorted), so that a stop that hangs says where.
    pub async fn join_within(
        mut self,
        limit: std::time::Duration,
    ) -> Result<(), Vec<&'static str>> {
        if tokio::time::timeout(limit, self.drain()).await.is_ok() {
            return Ok(());
        }
        let mut running: Vec<&'static str> = self.names.values().copied().collect();
        running.sort_unstable();
        Err(running)
    }

    async fn drain(&mut self) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Runs `spawn` on fresh tasks, fires the root after `stop_after` (if any), and returns
    /// what failed once every task has stopped.
    fn outcome(spawn: impl FnOnce(&mut Tasks), stop_after: Option<Duration>) -> Vec<&'static str> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let Ok(runtime) = runtime else { return vec!["runtime"] };
        runtime.block_on(async {
            let root = StopRoot::new();
            let mut tasks = Tasks::new(root.clone());
            spawn(&mut tasks);
            if let Some(after) = stop_after {
                tokio::time::sleep(after).await;
                root.fire();
            }
            if tasks.join_within(Duration::from_secs(10)).await.is_err() {
                return vec!["hung"];
            }
            assert!(root.has_fired(), "the root fires once every task has stopped");
            root.failures()
        })
    }

    #[test]
    fn a_task_that_ends_before_the_stop_is_a_failure_and_stops_the_rest() {
        let failures = outcome(
            |tasks| {
                let root = tasks.root.clone();
                tasks.spawn("sync", root.fired());
                tasks.spawn("publisher", async {});
            },
            None,
        );
        assert_eq!(failures, ["publisher"]);
    }

    #[test]
    fn a_task_that_panics_is_a_failure() {
        let failures = outcome(
            |tasks| {
                let root = tasks.root.clone();
                tasks.spawn("timer", root.fired());
                tasks.spawn("sync", async { panic!("a task panics, as a test asked") });
            },
            None,
        );
        assert_eq!(failures, ["sync"]);
    }

    #[test]
    fn tasks_that_end_on_the_stop_or_finish_their_work_are_not_failures() {
        let failures = outcome(
            |tasks| {
                let root = tasks.root.clone();
                tasks.spawn("publisher", root.fired());
                tasks.spawn_finite("recovery", async { Ok(()) });
            },
            Some(Duration::from_millis(50)),
        );
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn a_finite_task_that_fails_before_the_stop_is_a_failure() {
        let failures = outcome(
            |tasks| {
                let root = tasks.root.clone();
                tasks.spawn("publisher", root.fired());
                tasks.spawn_finite("recovery", async { Err(()) });
            },
            None,
        );
        assert_eq!(failures, ["recovery"]);
    }

    #[test]
    fn a_stop_that_hangs_names_the_tasks_still_running() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let running = runtime.block_on(async {
            let root = StopRoot::new();
            let mut tasks = Tasks::new(root.clone());
            let fired = root.fired();
            tasks.spawn("sync", fired);
            // Deaf to the stop: it never ends.
            tasks.spawn("publisher", std::future::pending());
            tasks.spawn("mesh", std::future::pending());
            root.fire();
            tasks.join_within(Duration::from_millis(200)).await
        });
        assert_eq!(running, Err(vec!["mesh", "publisher"]));
    }
}
