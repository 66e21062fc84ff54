//! How an import's run marks itself and waits: the guard that says a job's chunks are being
//! applied and wakes the publisher however the apply ends, and the bounded backoff of a job
//! that met a full disk (it stays active and is tried again, never failed for it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The first wait before a job that met a full disk is tried again; doubled per retry.
const DISK_FULL_FIRST_WAIT: Duration = Duration::from_secs(1);

/// The longest wait between two tries of a job that meets a full disk.
pub(super) const DISK_FULL_MAX_WAIT: Duration = Duration::from_secs(30);

/// Marks a job's chunks as being applied until dropped, however the apply ends (done,
/// failed, stopped, a full disk); the drop wakes the publisher, which paced itself meanwhile
/// (`daemon/publisher.rs`), to sign what the chunks queued.
pub(super) struct Applying<'a> {
    flag: &'a AtomicBool,
    publisher: Arc<Notify>,
}

impl<'a> Applying<'a> {
    pub(super) fn new(flag: &'a AtomicBool, publisher: Arc<Notify>) -> Self {
        flag.store(true, Ordering::Relaxed);
        Self { flag, publisher }
    }
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        self.flag.store(false, Ordering::Relaxed);
        self.publisher.notify_one();
    }
}

/// The retries of jobs that met a full disk in a row: the wait before the next try.
#[derive(Debug, Default)]
pub(super) struct DiskFullRetries(AtomicU32);

impl DiskFullRetries {
    /// Counts one more try refused for a full disk; returns the wait before the next, from
    /// [`DISK_FULL_FIRST_WAIT`] doubling up to [`DISK_FULL_MAX_WAIT`].
    pub(super) fn next_wait(&self) -> Duration {
        let tries = self.0.fetch_add(1, Ordering::Relaxed).min(16);
        DISK_FULL_FIRST_WAIT.saturating_mul(1 << tries).min(DISK_FULL_MAX_WAIT)
    }

    /// A try that did not meet a full disk starts the backoff again.
    pub(super) fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_after_a_full_disk_doubles_up_to_its_bound_and_starts_again_after_a_reset() {
        let retries = DiskFullRetries::default();
        let waits: Vec<u64> = (0..8).map(|_| retries.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        for _ in 0..100 {
            assert!(retries.next_wait() <= DISK_FULL_MAX_WAIT);
        }
        retries.reset();
        assert_eq!(retries.next_wait(), DISK_FULL_FIRST_WAIT);
    }

    #[test]
    fn the_guard_clears_its_flag_and_wakes_the_publisher_when_dropped() {
        let flag = AtomicBool::new(false);
        let publisher = Arc::new(Notify::new());
        let guard = Applying::new(&flag, publisher.clone());
        assert!(flag.load(Ordering::Relaxed));
        drop(guard);
        assert!(!flag.load(Ordering::Relaxed));
        let woken = publisher.notified();
        let mut woken = std::pin::pin!(woken);
        // A stored permit completes the wait at its first poll.
        assert!(woken.as_mut().enable(), "the publisher was not woken");
    }
}
