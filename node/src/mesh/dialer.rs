//! Redial timing: capped exponential backoff with jitter, from a small seeded generator.

use std::time::Duration;

/// A xorshift64* generator: jitter needs no cryptographic quality, only distinct seeds per
/// node so that members that lost each other do not redial in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator seeded from the operating system, or from the clock if that fails.
    pub(crate) fn from_entropy() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9_7f4a_7c15);
            seed = nanos.to_le_bytes();
        }
        Jitter::seeded(u64::from_le_bytes(seed))
    }

    pub(crate) fn seeded(seed: u64) -> Self {
        // Zero is xorshift's one fixed point.
        Jitter { state: seed | 1 }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform fraction in [0, 1).
    fn next_fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The wait before redial number `attempt` (0-based): `initial · 2^attempt`, capped at `max`,
/// then drawn uniformly from its upper half.
pub(crate) fn backoff(
    attempt: u32,
    initial: Duration,
    max: Duration,
    jitter: &mut Jitter,
) -> Duration {
    let doubled = initial.saturating_mul(1u32 << attempt.min(20));
    let capped = doubled.min(max);
    capped.mul_f64(0.5 + 0.5 * jitter.next_fraction())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_stays_in_the_upper_half() {
        let seed = 0x5eed;
        println!("jitter seed {seed:#x}");
        let mut jitter = Jitter::seeded(seed);
        let initial = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        for attempt in 0..40 {
            let full = initial.saturating_mul(1u32 << attempt.min(20)).min(max);
            let wait = backoff(attempt, initial, max, &mut jitter);
            assert!(wait >= full / 2 && wait <= full, "attempt {attempt}: {wait:?} vs {full:?}");
        }
        assert!(backoff(u32::MAX, initial, max, &mut jitter) <= max);
    }

    #[test]
    fn jitter_differs_between_seeds() {
        let initial = Duration::from_secs(1);
        let max = Duration::from_secs(30);
        let a = backoff(3, initial, max, &mut Jitter::seeded(1));
        let b = backoff(3, initial, max, &mut Jitter::seeded(2));
        assert_ne!(a, b);
    }
}
