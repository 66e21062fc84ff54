//! Engine calls made on behalf of others (the API's requests, peers' sync requests), bounded per
//! lane: a call takes a place in its lane before its closure is queued on a blocking thread and
//! gives it back when the closure ends, so no flood of requests queues engine work without
//! bound. A call whose caller has gone (a request that timed out) does not do its work once it
//! reaches the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Engine calls outstanding (queued or running) per lane, at most.
pub const MAX_ENGINE_CALLS_PER_LANE: usize = 64;

/// Who an engine call is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// The node's façade: the API, the binary, the local federation. A call waits for a place.
    Api,
    /// Answers to peers' sync requests. A call that finds no place is refused at once.
    Sync,
}

/// Engine calls outstanding, and abandoned, now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCallsView {
    /// Façade (API) calls queued or running.
    pub api_outstanding: u64,
    /// Sync answers queued or running.
    pub sync_outstanding: u64,
    /// Calls whose caller had gone when they reached the engine, so they did nothing.
    pub abandoned: u64,
}

/// The lanes of a node.
#[derive(Debug)]
pub(super) struct EngineCalls {
    api: LaneState,
    sync: LaneState,
    abandoned: AtomicU64,
}

#[derive(Debug)]
struct LaneState {
    places: Arc<Semaphore>,
    outstanding: Arc<AtomicU64>,
}

impl LaneState {
    fn new() -> Self {
        Self {
            places: Arc::new(Semaphore::new(MAX_ENGINE_CALLS_PER_LANE)),
            outstanding: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// A place in a lane, held by the queued closure until it ends.
#[derive(Debug)]
pub(super) struct Place {
    _permit: OwnedSemaphorePermit,
    outstanding: Arc<AtomicU64>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EngineCalls {
    pub(super) fn new() -> Self {
        Self { api: LaneState::new(), sync: LaneState::new(), abandoned: AtomicU64::new(0) }
    }

    fn lane(&self, lane: Lane) -> &LaneState {
        match lane {
            Lane::Api => &self.api,
            Lane::Sync => &self.sync,
        }
    }

    /// A place in `lane`: waited for in the API lane, `None` at once in a full sync lane.
    pub(super) async fn place(&self, lane: Lane) -> Option<Place> {
        let state = self.lane(lane);
        let permit = match lane {
            Lane::Api => state.places.clone().acquire_owned().await.ok()?,
            Lane::Sync => state.places.clone().try_acquire_owned().ok()?,
        };
        state.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Place { _permit: permit, outstanding: state.outstanding.clone() })
    }

    /// Counts a call that reached the engine after its caller had gone.
    pub(super) fn abandoned(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures now.
    pub(super) fn view(&self) -> EngineCallsView {
        EngineCallsView {
            api_outstanding: self.api.outstanding.load(Ordering::Relaxed),
            sync_outstanding: self.sync.outstanding.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_sync_lane_refuses_at_once_and_a_place_given_back_is_counted() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let Ok(runtime) = runtime else { return };
        runtime.block_on(async {
            let calls = EngineCalls::new();
            let mut places = Vec::new();
            for _ in 0..MAX_ENGINE_CALLS_PER_LANE {
                places.push(calls.place(Lane::Sync).await.expect("a free place"));
            }
            assert!(calls.place(Lane::Sync).await.is_none(), "a full sync lane refuses");
            assert_eq!(calls.view().sync_outstanding, MAX_ENGINE_CALLS_PER_LANE as u64);
            // The API lane is separate: peers cannot crowd out the operator, nor the reverse.
            assert!(calls.place(Lane::Api).await.is_some());
            places.pop();
            assert_eq!(calls.view().sync_outstanding, MAX_ENGINE_CALLS_PER_LANE as u64 - 1);
            assert!(calls.place(Lane::Sync).await.is_some());
        });
    }
}
