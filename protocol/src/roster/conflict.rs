//! A roster conflict (docs/PROTOCOL.md §4.4): two different rosters of one version, both valid
//! successors of the same adopted roster. Since `2k > n`, that needs a member who signed two
//! successors, which the tools refuse: it proves the federation forked. A node that holds one
//! adopts neither, alarms, and forwards the pair as evidence any member can check alone.
//!
//! Wire form: deterministic CBOR `[first signed roster bstr, second signed roster bstr]`.

use ciborium::Value;

use super::{MAX_ROSTER_BYTES, RosterProblem, SignedRoster, VerifiedRoster, check_successor};

/// Largest wire form of a conflict: two rosters at their limit and the pair's framing.
pub const MAX_ROSTER_CONFLICT_BYTES: usize = 2 * MAX_ROSTER_BYTES + 32;

/// A checked conflict: two signed rosters of one version with different hashes, both valid
/// successors of the same roster. Only [`verify_conflict`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterConflict {
    first: SignedRoster,
    second: SignedRoster,
    hashes: [[u8; 32]; 2],
}

impl RosterConflict {
    /// The two rosters, the one with the lower hash first.
    pub fn rosters(&self) -> (&SignedRoster, &SignedRoster) {
        (&self.first, &self.second)
    }

    /// Their hashes, in the same order.
    pub fn hashes(&self) -> &[[u8; 32]; 2] {
        &self.hashes
    }

    /// The contested version.
    pub fn version(&self) -> u64 {
        self.first.body.version
    }

    /// The wire form, `[first, second]`.
    pub fn to_wire(&self) -> Vec<u8> {
        crate::cbor::encode(&Value::Array(vec![
            Value::Bytes(self.first.to_wire()),
            Value::Bytes(self.second.to_wire()),
        ]))
    }
}

/// Splits a conflict's wire form into its two rosters without checking them.
pub fn decode_roster_conflict(bytes: &[u8]) -> Result<(SignedRoster, SignedRoster), RosterProblem> {
    if bytes.len() > MAX_ROSTER_CONFLICT_BYTES {
        return Err(RosterProblem::TooLarge);
    }
    let Ok(Value::Array(items)) = crate::cbor::decode(bytes) else {
        return Err(RosterProblem::BadWireForm("conflict"));
    };
    match <[Value; 2]>::try_from(items) {
        Ok([Value::Bytes(first), Value::Bytes(second)]) => {
            Ok((SignedRoster::from_wire(&first)?, SignedRoster::from_wire(&second)?))
        }
        _ => Err(RosterProblem::BadWireForm("conflict")),
    }
}

/// Checks that `a` and `b` are two different valid successors of `current` (whatever the
/// time: an equivocation is proved whenever it was signed, so expiry is not judged).
pub fn verify_conflict(
    current: &VerifiedRoster,
    a: &SignedRoster,
    b: &SignedRoster,
) -> Result<RosterConflict, RosterProblem> {
    let hash_a = check_successor(current, a)?;
    let hash_b = check_successor(current, b)?;
    if hash_a == hash_b {
        return Err(RosterProblem::NotAConflict);
    }
    let (first, second, hashes) = if hash_a < hash_b {
        (a.clone(), b.clone(), [hash_a, hash_b])
    } else {
        (b.clone(), a.clone(), [hash_b, hash_a])
    };
    Ok(RosterConflict { first, second, hashes })
}
