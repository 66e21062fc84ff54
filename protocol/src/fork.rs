//! Fork evidence: two manifests one origin signed that cannot both belong to one chain. Any
//! member can check it alone, so it is forwarded as is, and every node that checks it freezes
//! the forked generation.
//!
//! Wire form: deterministic CBOR `[first manifest bstr, second manifest bstr]`. The pair is a
//! fork when both manifests verify, name the same origin and generation, and either
//! - have the same seq and different batch hashes, or
//! - the second has seq one past the first and a `prev` that is not the first's hash.
//!
//! The contested seq is the first's seq: the generation is frozen just before it.

use ciborium::Value;

use crate::batch::{BatchError, OriginKeys, verify_manifest};
use crate::cbor;
use crate::keys::PublicKey;
use crate::types::{BatchHash, FederationId};

/// Largest fork evidence accepted. A manifest holds at most `MAX_ENTRIES_PER_BATCH` digests, so
/// it stays under 9 KiB and honest evidence under 18 KiB; 32 KiB leaves room and fits in one
/// gossip message.
pub const MAX_FORK_EVIDENCE_BYTES: usize = 32 * 1024;

/// A checked fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// The origin that equivocated.
    pub origin: PublicKey,
    /// The generation it forked.
    pub generation: u32,
    /// The contested seq: the generation holds at most `seq − 1` batches once frozen.
    pub seq: u64,
    /// The first manifest's batch hash.
    pub first: BatchHash,
    /// The second manifest's batch hash.
    pub second: BatchHash,
}

/// Why evidence is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForkError {
    /// Larger than [`MAX_FORK_EVIDENCE_BYTES`].
    #[error("fork evidence larger than {MAX_FORK_EVIDENCE_BYTES} bytes")]
    TooLarge,
    /// Not `[bstr, bstr]` in deterministic CBOR.
    #[error("fork evidence is not a pair of manifests in deterministic CBOR")]
    BadWireForm,
    /// A manifest does not verify.
    #[error("fork evidence holds a manifest that does not verify: {0}")]
    Manifest(#[from] BatchError),
    /// The manifests verify but do not contradict each other.
    #[error("the two manifests are not a fork")]
    NotAFork,
}

/// Encodes evidence from two manifests (COSE_Sign1 bytes), in the order the fork was found.
pub fn encode_fork_evidence(first: &[u8], second: &[u8]) -> Vec<u8> {
    cbor::encode(&Value::Array(vec![Value::Bytes(first.to_vec()), Value::Bytes(second.to_vec())]))
}

/// Splits evidence into its two manifests without checking them.
pub fn fork_evidence_manifests(evidence: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ForkError> {
    if evidence.len() > MAX_FORK_EVIDENCE_BYTES {
        return Err(ForkError::TooLarge);
    }
    let Ok(Value::Array(items)) = cbor::decode(evidence) else {
        return Err(ForkError::BadWireForm);
    };
    match <[Value; 2]>::try_from(items) {
        Ok([Value::Bytes(first), Value::Bytes(second)]) => Ok((first, second)),
        _ => Err(ForkError::BadWireForm),
    }
}

/// Checks fork evidence: both signatures first, then that the manifests contradict each other.
pub fn verify_fork_evidence(
    evidence: &[u8],
    federation: &FederationId,
    roster: &(impl OriginKeys + ?Sized),
) -> Result<Fork, ForkError> {
    let (first, second) = fork_evidence_manifests(evidence)?;
    let (origin, first_header, first_hash) = verify_manifest(&first, federation, roster)?;
    let (second_origin, second_header, second_hash) = verify_manifest(&second, federation, roster)?;
    let same_chain = origin == second_origin && first_header.generation == second_header.generation;
    let same_seq = second_header.seq == first_header.seq && second_hash != first_hash;
    let bad_successor = Some(second_header.seq) == first_header.seq.checked_add(1)
        && second_header.prev != first_hash;
    if !same_chain || !(same_seq || bad_successor) {
        return Err(ForkError::NotAFork);
    }
    Ok(Fork {
        origin,
        generation: first_header.generation,
        seq: first_header.seq,
        first: first_hash,
        second: second_hash,
    })
}
