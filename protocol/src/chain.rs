//! Pure chain logic for one (origin, generation): where a verified batch stands relative to
//! what a node holds — next, duplicate, gap, fork — with no storage of its own.

use crate::manifest::ManifestHeader;
use crate::types::BatchHash;

/// The highest contiguous batch a node holds of one (origin, generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// Highest contiguous seq held (≥ 1).
    pub seq: u64,
    /// Hash of the batch at `seq`.
    pub hash: BatchHash,
}

/// What a node knows of one (origin, generation) chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainState {
    /// The head, or `None` when no batch of this generation is held yet.
    pub head: Option<ChainHead>,
    /// Set when a fork was proven: the chain is frozen at `head` (fork seq − 1) and accepts
    /// nothing beyond it.
    pub frozen: bool,
}

/// Where a verified batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Extends the head: apply it and advance.
    Next,
    /// The node already holds this very batch (same seq, same hash).
    Duplicate,
    /// Beyond the head: seqs `missing_from..=missing_to` must arrive first (hold it, and sync).
    Gap {
        /// First missing seq.
        missing_from: u64,
        /// Last missing seq.
        missing_to: u64,
    },
    /// The origin signed two different batches for one position: `seq` is the contested seq and
    /// `ours` the hash of the batch held there. Both manifests are the proof.
    Fork {
        /// The contested seq; the chain freezes at `seq − 1`.
        seq: u64,
        /// The batch held at `seq`.
        ours: BatchHash,
    },
    /// At or below the head, but the batch held at that seq is unknown to the caller, so
    /// nothing can be concluded; ignore it.
    Unjudgeable,
    /// The chain is frozen by a fork and the batch lies beyond the frozen head.
    Frozen,
}

/// Classifies a verified batch against a chain. `hash_at(seq)` returns the hash of the batch
/// held at `seq` (for `seq ≤ head.seq`).
pub fn position(
    state: &ChainState,
    hash_at: impl FnOnce(u64) -> Option<BatchHash>,
    header: &ManifestHeader,
    hash: BatchHash,
) -> Position {
    let Some(head) = state.head else {
        return match (state.frozen, header.seq) {
            (true, _) => Position::Frozen,
            (false, 1) => Position::Next,
            (false, seq) => Position::Gap { missing_from: 1, missing_to: seq - 1 },
        };
    };
    if header.seq <= head.seq {
        return match hash_at(header.seq) {
            Some(held) if held == hash => Position::Duplicate,
            Some(held) => Position::Fork { seq: header.seq, ours: held },
            None => Position::Unjudgeable,
        };
    }
    if state.frozen {
        return Position::Frozen;
    }
    if header.seq == head.seq + 1 {
        if header.prev == head.hash {
            Position::Next
        } else {
            // The origin signed a successor of some other batch at `head.seq`.
            Position::Fork { seq: head.seq, ours: head.hash }
        }
    } else {
        Position::Gap { missing_from: head.seq + 1, missing_to: header.seq - 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u64, prev: u8) -> ManifestHeader {
        ManifestHeader {
            generation: 1,
            seq,
            prev: BatchHash([prev; 32]),
            epoch: 1,
            created_at_ms: 0,
            entry_digests: vec![],
        }
    }

    fn h(byte: u8) -> BatchHash {
        BatchHash([byte; 32])
    }

    #[test]
    fn classifies_each_case() {
        let empty = ChainState::default();
        assert_eq!(position(&empty, |_| None, &header(1, 0), h(1)), Position::Next);
        assert_eq!(
            position(&empty, |_| None, &header(4, 3), h(4)),
            Position::Gap { missing_from: 1, missing_to: 3 }
        );
        let at2 = ChainState { head: Some(ChainHead { seq: 2, hash: h(2) }), frozen: false };
        assert_eq!(position(&at2, |_| None, &header(3, 2), h(3)), Position::Next);
        assert_eq!(
            position(&at2, |_| None, &header(3, 9), h(3)),
            Position::Fork { seq: 2, ours: h(2) }
        );
        assert_eq!(position(&at2, |_| Some(h(1)), &header(1, 0), h(1)), Position::Duplicate);
        assert_eq!(
            position(&at2, |_| Some(h(1)), &header(1, 0), h(7)),
            Position::Fork { seq: 1, ours: h(1) }
        );
        assert_eq!(position(&at2, |_| None, &header(1, 0), h(7)), Position::Unjudgeable);
        let frozen = ChainState { frozen: true, ..at2 };
        assert_eq!(position(&frozen, |_| None, &header(3, 2), h(3)), Position::Frozen);
    }
}
