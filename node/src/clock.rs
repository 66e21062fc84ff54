//! Time as the node sees it: the [`Clock`] trait, injected so that tests control expiry,
//! latency and audit timestamps, and the [`SystemClock`] a running node uses.

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// A source of the current time, injected so tests control expiry and latency.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
