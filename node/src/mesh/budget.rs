//! Per-peer budgets for inbound sync requests: two token buckets, requests and response bytes.

use std::time::Instant;

/// How fast a peer may ask, and how many bytes it may be served; bursts allow a catch-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncBudget {
    /// Requests refilled per second.
    pub requests_per_sec: f64,
    /// Requests a peer may make at once after a quiet period.
    pub requests_burst: f64,
    /// Response bytes refilled per second.
    pub response_bytes_per_sec: f64,
    /// Response bytes a peer may be served at once after a quiet period.
    pub response_bytes_burst: f64,
}

impl Default for SyncBudget {
    fn default() -> Self {
        SyncBudget {
            requests_per_sec: 5.0,
            requests_burst: 50.0,
            response_bytes_per_sec: 1024.0 * 1024.0,
            response_bytes_burst: 16.0 * 1024.0 * 1024.0,
        }
    }
}

/// One peer's buckets. A request needs one request token and a positive byte balance; the
/// response's bytes are charged after it is sent, so the balance may go negative and the peer
/// then waits until it refills.
#[derive(Debug, Clone)]
pub(crate) struct Buckets {
    requests: f64,
    bytes: f64,
    refilled_at: Instant,
}

impl Buckets {
    pub(crate) fn full(budget: &SyncBudget, now: Instant) -> Self {
        Buckets {
            requests: budget.requests_burst,
            bytes: budget.response_bytes_burst,
            refilled_at: now,
        }
    }

    fn refill(&mut self, budget: &SyncBudget, now: Instant) {
        let elapsed_secs = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.refilled_at = now;
        self.requests =
            (self.requests + elapsed_secs * budget.requests_per_sec).min(budget.requests_burst);
        self.bytes = (self.bytes + elapsed_secs * budget.response_bytes_per_sec)
            .min(budget.response_bytes_burst);
    }

    /// Takes one request token if the peer is within budget.
    pub(crate) fn try_request(&mut self, budget: &SyncBudget, now: Instant) -> bool {
        self.refill(budget, now);
        if self.requests >= 1.0 && self.bytes > 0.0 {
            self.requests -= 1.0;
            true
        } else {
            false
        }
    }

    /// Charges the bytes of a response that was sent.
    pub(crate) fn charge_bytes(&mut self, budget: &SyncBudget, now: Instant, bytes: usize) {
        self.refill(budget, now);
        // The balance is floored at minus one burst, so one huge charge cannot lock a peer out
        // for longer than two bursts' refill time.
        self.bytes = (self.bytes - bytes as f64).max(-budget.response_bytes_burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let budget = SyncBudget {
            requests_per_sec: 2.0,
            requests_burst: 3.0,
            response_bytes_per_sec: 100.0,
            response_bytes_burst: 1000.0,
        };
        let start = Instant::now();
        let mut buckets = Buckets::full(&budget, start);
        assert!((0..3).all(|_| buckets.try_request(&budget, start)));
        assert!(!buckets.try_request(&budget, start));
        assert!(buckets.try_request(&budget, start + Duration::from_millis(500)));
        assert!(!buckets.try_request(&budget, start + Duration::from_millis(600)));
    }

    #[test]
    fn bytes_served_count_against_the_next_request() {
        let budget = SyncBudget {
            requests_per_sec: 100.0,
            requests_burst: 100.0,
            response_bytes_per_sec: 100.0,
            response_bytes_burst: 1000.0,
        };
        let start = Instant::now();
        let mut buckets = Buckets::full(&budget, start);
        assert!(buckets.try_request(&budget, start));
        buckets.charge_bytes(&budget, start, 1500);
        assert!(!buckets.try_request(&budget, start + Duration::from_secs(4)));
        assert!(buckets.try_request(&budget, start + Duration::from_secs(6)));
        // One enormous charge is floored at minus one burst.
        buckets.charge_bytes(&budget, start + Duration::from_secs(6), usize::MAX);
        assert!(buckets.try_request(&budget, start + Duration::from_secs(17)));
    }
}
