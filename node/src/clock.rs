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

/// Test-only (the `test-support` feature, which release builds lack): the system clock sped
/// up `factor` times from `anchor_ms`, so that a run of an hour can cross days of retention.
/// Every process on one machine given the same anchor and factor reads the same time.
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    anchor_ms: u64,
    factor: u64,
}

#[cfg(feature = "test-support")]
impl ScaledClock {
    /// The clock that reads `anchor_ms` at `anchor_ms`, and runs `factor` times as fast.
    pub fn new(anchor_ms: u64, factor: u64) -> Self {
        Self { anchor_ms, factor }
    }

    /// Parses `ANCHOR_MS:FACTOR` (the `CROSSMATCH_TEST_CLOCK` variable's form); the factor is 1
    /// to 10,000.
    pub fn parse(text: &str) -> Option<Self> {
        let (anchor, factor) = text.split_once(':')?;
        let factor: u64 = factor.parse().ok()?;
        (1..=10_000).contains(&factor).then_some(Self::new(anchor.parse().ok()?, factor))
    }

    /// The scaled time at system time `real_ms`.
    pub fn at(&self, real_ms: u64) -> u64 {
        let elapsed = real_ms.saturating_sub(self.anchor_ms).saturating_mul(self.factor);
        self.anchor_ms.saturating_add(elapsed)
    }
}

#[cfg(feature = "test-support")]
impl Clock for ScaledClock {
    fn now_ms(&self) -> u64 {
        self.at(SystemClock.now_ms())
    }
}

#[cfg(all(test, feature = "test-support"))]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_clock_runs_its_factor_times_as_fast_from_its_anchor() {
        let clock = ScaledClock::parse("1000:96").unwrap();
        assert_eq!(clock.at(1_000), 1_000);
        assert_eq!(clock.at(2_000), 1_000 + 96_000);
        // Before its anchor it reads the anchor: never earlier than it was.
        assert_eq!(clock.at(10), 1_000);
        assert_eq!(ScaledClock::new(0, 10_000).at(u64::MAX), u64::MAX);
        for bad in ["", "1000", "1000:0", "1000:10001", "x:96", "1000:-1", "1000:9.5"] {
            assert!(ScaledClock::parse(bad).is_none(), "{bad:?}");
        }
    }
}
