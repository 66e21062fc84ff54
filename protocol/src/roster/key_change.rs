//! A routine change of a member's node key (docs/PROTOCOL.md §4.5): signed by the old and the
//! new node key, so the successor roster may list the old key as retired and its feed stays
//! matchable. A compromised key is a removal plus an addition instead, with no key change.

use ciborium::Value;

use super::wire::{Fields, bytes};
use super::{RosterProblem, is_valid_member_id};
use crate::keys::{PublicKey, SigningKey};
use crate::types::FederationId;

/// Prefix of the message both keys sign: `KEY_CHANGE_CONTEXT || CBOR {0: federation id,
/// 1: member id, 2: old key, 3: new key}`.
pub const KEY_CHANGE_CONTEXT: &str = "crossmatch key change v1";

/// Map keys of a key change.
mod key {
    pub const FEDERATION_ID: u64 = 0;
    pub const MEMBER: u64 = 1;
    pub const OLD_KEY: u64 = 2;
    pub const NEW_KEY: u64 = 3;
    pub const OLD_SIGNATURE: u64 = 4;
    pub const NEW_SIGNATURE: u64 = 5;
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
) -> Vec<u8> {
    let body = Value::Map(vec![
        (key::FEDERATION_ID.into(), bytes(federation_id.as_bytes())),
        (key::MEMBER.into(), member.into()),
        (key::OLD_KEY.into(), bytes(&old.to_bytes())),
        (key::NEW_KEY.into(), bytes(&new.to_bytes())),
    ]);
    [KEY_CHANGE_CONTEXT.as_bytes(), &crate::cbor::encode(&body)].concat()
}

impl KeyChange {
    /// Signs a change from `old`'s key to `new`'s key.
    pub fn sign(
        federation_id: &FederationId,
        member: &str,
        old: &SigningKey,
        new: &SigningKey,
    ) -> Self {
        let (old_key, new_key) = (old.public_key(), new.public_key());
        let message = message(federation_id, member, &old_key, &new_key);
        Self {
            federation_id: *federation_id,
            member: member.to_owned(),
            old_key,
            new_key,
            old_signature: old.sign(&message),
            new_signature: new.sign(&message),
        }
    }

    /// Checks both signatures, and that the keys differ and the member id is valid.
    pub fn verify(&self) -> Result<(), RosterProblem> {
        if !is_valid_member_id(&self.member) {
            return Err(RosterProblem::BadMemberId);
        }
        let message = message(&self.federation_id, &self.member, &self.old_key, &self.new_key);
        if self.old_key == self.new_key
            || !self.old_key.verify_strict(&message, &self.old_signature)
            || !self.new_key.verify_strict(&message, &self.new_signature)
        {
            return Err(RosterProblem::BadKeyChange(self.member.clone()));
        }
        Ok(())
    }

    pub(super) fn to_value(&self) -> Value {
        Value::Map(vec![
            (key::FEDERATION_ID.into(), bytes(self.federation_id.as_bytes())),
            (key::MEMBER.into(), self.member.clone().into()),
            (key::OLD_KEY.into(), bytes(&self.old_key.to_bytes())),
            (key::NEW_KEY.into(), bytes(&self.new_key.to_bytes())),
            (key::OLD_SIGNATURE.into(), bytes(&self.old_signature)),
            (key::NEW_SIGNATURE.into(), bytes(&self.new_signature)),
        ])
    }

    pub(super) fn from_value(value: &Value) -> Result<Self, RosterProblem> {
        use key::*;
        let known = [FEDERATION_ID, MEMBER, OLD_KEY, NEW_KEY, OLD_SIGNATURE, NEW_SIGNATURE];
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
