//! The coarse activity an `add` states when the origin measured it: a figure rounded down to
//! a log bucket (1, 2, 5, 10, 20, 50, …), because the exact figure would reveal how much of a
//! platform a unit monitors (docs/PROTOCOL.md §2.2, the `activity per day` field).

use crate::limits::MAX_ACTIVITY_PER_DAY;

/// Rounds `posts_per_day` down to the largest of 1, 2, 5, 10, 20, 50, … not above it, and caps
/// it at [`MAX_ACTIVITY_PER_DAY`] (itself a bucket). Zero stays zero: the caller leaves the
/// field out rather than state it.
pub fn activity_bucket(posts_per_day: u64) -> u64 {
    let capped = posts_per_day.min(MAX_ACTIVITY_PER_DAY);
    let mut bucket = 0;
    let mut decade = 1u64;
    while decade <= capped {
        for step in [1, 2, 5] {
            let candidate = decade * step;
            if candidate <= capped {
                bucket = candidate;
            }
        }
        decade *= 10;
    }
    bucket
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_down_to_the_one_two_five_series() {
        let cases = [
            (0, 0),
            (1, 1),
            (2, 2),
            (4, 2),
            (5, 5),
            (9, 5),
            (10, 10),
            (19, 10),
            (20, 20),
            (49, 20),
            (50, 50),
            (99, 50),
            (100, 100),
            (4_321, 2_000),
            (7_000_000, 5_000_000),
            (MAX_ACTIVITY_PER_DAY, MAX_ACTIVITY_PER_DAY),
            (u64::MAX, MAX_ACTIVITY_PER_DAY),
        ];
        for (figure, bucket) in cases {
            assert_eq!(activity_bucket(figure), bucket, "{figure}");
        }
    }
}
