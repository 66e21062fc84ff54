//! Names for where a batch sits: [`FeedId`] (one origin's chain in one generation) and
//! [`BatchId`] (one batch of a feed). Chains, sync requests and store keys are keyed by them.

use std::fmt;

use crate::PublicKey;

/// One origin's chain in one generation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedId {
    /// The origin's Ed25519 public key, as bytes.
    pub origin: [u8; 32],
    /// The generation: a new one begins a new chain at seq 1.
    pub generation: u32,
}

impl FeedId {
    /// The feed of `origin` in `generation`.
    pub const fn new(origin: [u8; 32], generation: u32) -> Self {
        Self { origin, generation }
    }

    /// The feed of `origin`'s key in `generation`.
    pub fn of(origin: &PublicKey, generation: u32) -> Self {
        Self::new(origin.to_bytes(), generation)
    }

    /// The batch at `seq` of this feed.
    pub const fn batch(self, seq: u64) -> BatchId {
        BatchId { feed: self, seq }
    }
}

/// Prints the origin's first 4 bytes in hex and the generation: `feed(8a88e3dd/2)`.
impl fmt::Debug for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "feed({}/{})", hex::encode(&self.origin[..4]), self.generation)
    }
}

/// One batch of a feed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId {
    /// The feed.
    pub feed: FeedId,
    /// The position in the feed, from 1.
    pub seq: u64,
}

impl BatchId {
    /// The batch of `origin`'s `generation` at `seq`.
    pub const fn new(origin: [u8; 32], generation: u32, seq: u64) -> Self {
        Self { feed: FeedId::new(origin, generation), seq }
    }

    /// The batch of `origin`'s key in `generation` at `seq`.
    pub fn of(origin: &PublicKey, generation: u32, seq: u64) -> Self {
        Self::new(origin.to_bytes(), generation, seq)
    }

    /// The origin's key bytes.
    pub const fn origin(&self) -> &[u8; 32] {
        &self.feed.origin
    }

    /// The generation.
    pub const fn generation(&self) -> u32 {
        self.feed.generation
    }
}

/// Prints the origin's first 4 bytes in hex, the generation and the seq: `batch(8a88e3dd/2/17)`.
impl fmt::Debug for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = hex::encode(&self.feed.origin[..4]);
        write!(f, "batch({origin}/{}/{})", self.feed.generation, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_by_origin_then_generation_then_seq() {
        let a = BatchId::new([1; 32], 2, 9);
        assert!(a < BatchId::new([1; 32], 3, 1));
        assert!(a < BatchId::new([2; 32], 1, 1));
        assert!(a < FeedId::new([1; 32], 2).batch(10));
        assert_eq!(format!("{a:?}"), "batch(01010101/2/9)");
    }
}
