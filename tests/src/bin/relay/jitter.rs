//! Seeded jitter: SplitMix64, one stream per connection direction, derived from the relay's
//! seed and the pair's name and connection number, so a run with the same seed and the same
//! order of connections per pair draws the same jitter.

use crate::rules::Pair;

/// A SplitMix64 generator: tiny, fast and plenty for jitter (not for anything secret).
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// The stream of one direction (`0` dialer to target, `1` back) of the `number`th
    /// connection of `pair`.
    pub fn for_direction(seed: u64, pair: &Pair, number: u64, direction: u64) -> Self {
        let mut state = seed ^ fnv1a(pair.to_string().as_bytes());
        for word in [number, direction] {
            state = mix(state ^ word);
        }
        Self { state }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A draw uniform in `0..=max` (the tiny modulo bias does not matter for jitter).
    pub fn up_to(&mut self, max: u64) -> u64 {
        if max == 0 { 0 } else { self.next() % (max + 1) }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a: a fixed hash of the pair's text (std's hasher is seeded per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_reproduces_its_draws_and_stays_in_range() {
        let pair = Pair { source: "10.0.0.1".parse().unwrap(), route: "fr".into() };
        let draws = |seed, number| {
            let mut jitter = Jitter::for_direction(seed, &pair, number, 0);
            (0..64).map(|_| jitter.up_to(20)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7, 0), draws(7, 0));
        assert_ne!(draws(7, 0), draws(8, 0));
        assert_ne!(draws(7, 0), draws(7, 1));
        assert!(draws(7, 0).iter().all(|ms| *ms <= 20));
        assert!(draws(7, 0).iter().any(|ms| *ms > 0));
        assert_eq!(Jitter::for_direction(7, &pair, 0, 0).up_to(0), 0);
    }
}
