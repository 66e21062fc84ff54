//! A routine change of a member's node key (docs/PROTOCOL.md §4.5): signed by the old and the
//! new node key, so the successor roster may list the old key as retired and its feed stays
//! matchable. Both keys also sign the old key's final head: nothing the old key signs past it
//! is accepted, so a retired key that leaks later cannot extend the old feed. A compromised key
//! is a removal plus an addition instead, with no key change.

use ciborium::Value;

use super::wire::{Fields, bytes};
use super::{RosterProblem, is_valid_member_id};
use crate::keys::{PublicKey, SigningKey};
use crate::types::{BatchHash, FederationId};

/// Prefix of the message both keys sign: `KEY_CHANGE_CONTEXT || CBOR {0: federation id,
/// 1: member id, 2: old key, 3: new key, 6: final head}` (6 absent when the old key never
/// signed a batch).
pub const KEY_CHANGE_CONTEXT: &str = "crossmatch key change v2";

/// Map keys of a key change.
mod key {
    pub const FEDERATION_ID: u64 = 0;
    pub const MEMBER: u64 = 1;
    pub const OLD_KEY: u64 = 2;
    pub const NEW_KEY: u64 = 3;
    pub const OLD_SIGNATURE: u64 = 4;
    pub const NEW_SIGNATURE: u64 = 5;
    pub const FINAL_HEAD: u64 = 6;
}

/// The old key's own feed where it ends: its newest generation, that generation's last seq and
/// that batch's hash, when the key changed. A batch signed by the retired key is accepted only
/// at or before it (an earlier generation, or this generation up to `seq`, and at `seq` only
/// this very batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalHead {
    /// The old feed's newest generation.
    pub generation: u32,
    /// Its last seq (0: the generation holds no batch yet; only earlier generations count).
    pub seq: u64,
    /// The hash of the batch at `seq` (zero when `seq` is 0).
    pub hash: BatchHash,
}

impl FinalHead {
    /// Whether a batch at (`generation`, `seq`) may be accepted on what it claims: at or before
    /// the final head. Its hash is judged by [`FinalHead::admits`] once known.
    pub fn admits_position(&self, generation: u32, seq: u64) -> bool {
        generation < self.generation || (generation == self.generation && seq <= self.seq)
    }

    /// Whether the batch at (`generation`, `seq`) with `hash` may be accepted: before the final
    /// head, or the final head itself.
    pub fn admits(&self, generation: u32, seq: u64, hash: &BatchHash) -> bool {
        self.admits_position(generation, seq)
            && (generation != self.generation || seq != self.seq || *hash == self.hash)
    }

    fn to_value(self) -> Value {
        Value::Array(vec![self.generation.into(), self.seq.into(), bytes(self.hash.as_bytes())])
    }

    fn from_value(value: &Value) -> Result<Self, RosterProblem> {
        let bad = RosterProblem::BadWireForm("key change final head");
        let Some([generation, seq, hash]) = value.as_array().map(Vec::as_slice) else {
            return Err(bad);
        };
        let number = |value: &Value| value.as_integer().and_then(|n| u64::try_from(n).ok());
        let generation =
            number(generation).and_then(|n| u32::try_from(n).ok()).ok_or(bad.clone())?;
        let seq = number(seq).ok_or(bad.clone())?;
        let hash: [u8; 32] =
            hash.as_bytes().and_then(|b| b.as_slice().try_into().ok()).ok_or(bad)?;
        Ok(Self { generation, seq, hash: BatchHash(hash) })
    }
}

/// A member's node key changing from `old_key` to `new_key`, signed by both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The federation.
    pub federation_id: FederationId,
    /// The member's id.
    pub member: String,
    /// The node key being retired.
    pub old_key: PublicKey,
    /// The node key replacing it.
    pub new_key: PublicKey,
    /// The old key's feed where it ends (none: the old key never signed a batch). Signed by
    /// both keys.
    pub final_head: Option<FinalHead>,
    /// The old key's signature.
    pub old_signature: [u8; 64],
    /// The new key's signature.
    pub new_signature: [u8; 64],
}

/// The message both keys sign.
fn message(
    federation_id: &FederationId,
    member: &str,
    old: &PublicKey,
    new: &PublicKey,
    final_head: Option<FinalHead>,
) -> Vec<u8> {
    let mut fields = vec![
        (key::FEDERATION_ID.into(), bytes(federation_id.as_bytes())),
        (key::MEMBER.into(), member.into()),
        (key::OLD_KEY.into(), bytes(&old.to_bytes())),
        (key::NEW_KEY.into(), bytes(&new.to_bytes())),
    ];
    if let Some(head) = final_head {
        fields.push((key::FINAL_HEAD.into(), head.to_value()));
    }
    [KEY_CHANGE_CONTEXT.as_bytes(), &crate::cbor::encode(&Value::Map(fields))].concat()
}

impl KeyChange {
    /// Signs a change from `old`'s key to `new`'s key, the old key's feed ending at
    /// `final_head`.
    pub fn sign(
        federation_id: &FederationId,
        member: &str,
        old: &SigningKey,
        new: &SigningKey,
        final_head: Option<FinalHead>,
    ) -> Self {
        let (old_key, new_key) = (old.public_key(), new.public_key());
        let message = message(federation_id, member, &old_key, &new_key, final_head);
        Self {
            federation_id: *federation_id,
            member: member.to_owned(),
            old_key,
            new_key,
            final_head,
            old_signature: old.sign(&message),
            new_signature: new.sign(&message),
        }
    }

    /// Checks both signatures, and that the keys differ and the member id is valid.
    pub fn verify(&self) -> Result<(), RosterProblem> {
        if !is_valid_member_id(&self.member) {
            return Err(RosterProblem::BadMemberId);
        }
        let message = message(
            &self.federation_id,
            &self.member,
            &self.old_key,
            &self.new_key,
            self.final_head,
        );
        if self.old_key == self.new_key
            || !self.old_key.verify_strict(&message, &self.old_signature)
            || !self.new_key.verify_strict(&message, &self.new_signature)
        {
            return Err(RosterProblem::BadKeyChange(self.member.clone()));
        }
        Ok(())
    }

    pub(super) fn to_value(&self) -> Value {
        let mut fields = vec![
            (key::FEDERATION_ID.into(), bytes(self.federation_id.as_bytes())),
            (key::MEMBER.into(), self.member.clone().into()),
            (key::OLD_KEY.into(), bytes(&self.old_key.to_bytes())),
            (key::NEW_KEY.into(), bytes(&self.new_key.to_bytes())),
            (key::OLD_SIGNATURE.into(), bytes(&self.old_signature)),
            (key::NEW_SIGNATURE.into(), bytes(&self.new_signature)),
        ];
        if let Some(head) = self.final_head {
            fields.push((key::FINAL_HEAD.into(), head.to_value()));
        }
        Value::Map(fields)
    }

    pub(super) fn from_value(value: &Value) -> Result<Self, RosterProblem> {
        use key::*;
        let known =
            [FEDERATION_ID, MEMBER, OLD_KEY, NEW_KEY, OLD_SIGNATURE, NEW_SIGNATURE, FINAL_HEAD];
        let fields = Fields::new(value, &known, "key change")?;
        let member = fields.text(MEMBER, "key change member")?;
        if !is_valid_member_id(member) {
            return Err(RosterProblem::BadMemberId);
        }
        Ok(Self {
            federation_id: FederationId(fields.array32(FEDERATION_ID, "key change federation_id")?),
            member: member.to_owned(),
            old_key: fields.key(OLD_KEY, "key change old key")?,
            new_key: fields.key(NEW_KEY, "key change new key")?,
            final_head: fields.optional(FINAL_HEAD).map(FinalHead::from_value).transpose()?,
            old_signature: fields.array64(OLD_SIGNATURE, "key change old signature")?,
            new_signature: fields.array64(NEW_SIGNATURE, "key change new signature")?,
        })
    }

    /// The deterministic CBOR wire form (as it appears in a signed roster's `key_changes`).
    pub fn to_wire(&self) -> Vec<u8> {
        crate::cbor::encode(&self.to_value())
    }

    /// Decodes a wire form strictly (at most 1 KiB; the signatures are not checked).
    pub fn from_wire(bytes: &[u8]) -> Result<Self, RosterProblem> {
        if bytes.len() > 1024 {
            return Err(RosterProblem::TooLarge);
        }
        let value = crate::cbor::decode(bytes).map_err(|_| RosterProblem::BadWireForm("cbor"))?;
        Self::from_value(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> FinalHead {
        FinalHead { generation: 2, seq: 5, hash: BatchHash([9; 32]) }
    }

    #[test]
    fn the_final_head_admits_what_came_before_it_only() {
        let head = head();
        assert!(head.admits(1, 900, &BatchHash([0; 32])), "an earlier generation");
        assert!(head.admits(2, 4, &BatchHash([0; 32])), "before the head");
        assert!(head.admits(2, 5, &BatchHash([9; 32])), "the head itself");
        assert!(!head.admits(2, 5, &BatchHash([8; 32])), "another batch at the head");
        assert!(!head.admits(2, 6, &BatchHash([9; 32])), "past the head");
        assert!(!head.admits(3, 1, &BatchHash([9; 32])), "a later generation");
        assert!(head.admits_position(2, 5) && !head.admits_position(2, 6));
    }

    #[test]
    fn the_final_head_is_signed_by_both_keys() {
        let federation = FederationId([3; 32]);
        let (old, new) = (SigningKey::from_seed(&[1; 32]), SigningKey::from_seed(&[2; 32]));
        let change = KeyChange::sign(&federation, "DE", &old, &new, Some(head()));
        assert_eq!(change.verify(), Ok(()));
        assert_eq!(KeyChange::from_wire(&change.to_wire()), Ok(change.clone()));
        // Moving the head on (what a leaked old key would want) breaks both signatures.
        for moved in [
            FinalHead { seq: 6, ..head() },
            FinalHead { generation: 3, ..head() },
            FinalHead { hash: BatchHash([8; 32]), ..head() },
        ] {
            let forged = KeyChange { final_head: Some(moved), ..change.clone() };
            assert_eq!(forged.verify(), Err(RosterProblem::BadKeyChange("DE".into())));
        }
        let dropped = KeyChange { final_head: None, ..change };
        assert!(dropped.verify().is_err(), "nor may the head be dropped");
        // No head: the old key never signed a batch.
        let empty = KeyChange::sign(&federation, "DE", &old, &new, None);
        assert_eq!(KeyChange::from_wire(&empty.to_wire()), Ok(empty));
    }
}
