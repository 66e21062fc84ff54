//! A member's own record (docs/PROTOCOL.md §4.5): its addresses and contact, signed by its
//! current node key with a sequence number, so an address change needs no governance
//! signatures. A node keeps the highest seq per member it has verified.

use ciborium::Value;

use super::wire::{Fields, bytes};
use super::{RosterProblem, VerifiedRoster, is_valid_member_id};
use crate::keys::SigningKey;
use crate::types::FederationId;

/// Prefix of the message the node key signs: `MEMBER_RECORD_CONTEXT || CBOR {0: federation
/// id, 1: member id, 2: seq, 3: addresses, 4: contact}`.
pub const MEMBER_RECORD_CONTEXT: &str = "crossmatch member record v1";

/// Largest wire form of a signed member record: 8 addresses of 256 bytes, a contact of 256
/// characters (at most 1 KiB of UTF-8), ids, seq and signature stay under 3.5 KiB.
pub const MAX_MEMBER_RECORD_BYTES: usize = 4 * 1024;

/// Most addresses in a record.
pub const MAX_RECORD_ADDRESSES: usize = 8;

/// Longest address (a multiaddr as text), in bytes.
pub const MAX_RECORD_ADDRESS_BYTES: usize = 256;

/// Longest contact, in characters.
pub const MAX_RECORD_CONTACT_CHARS: usize = 256;

/// Map keys of a record; `SIGNATURE` only in the signed form.
mod key {
    pub const FEDERATION_ID: u64 = 0;
    pub const MEMBER: u64 = 1;
    pub const SEQ: u64 = 2;
    pub const ADDRESSES: u64 = 3;
    pub const CONTACT: u64 = 4;
    pub const SIGNATURE: u64 = 5;
}

/// What a member says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The federation.
    pub federation_id: FederationId,
    /// The member's id.
    pub member: String,
    /// Sequence number, from 1; a higher one replaces a lower.
    pub seq: u64,
    /// Where the member's node listens, as multiaddrs (at most 8, each at most 256 bytes).
    pub addresses: Vec<String>,
    /// How to reach the unit's operators (at most 256 characters).
    pub contact: String,
}

/// A member record with its node key's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMemberRecord {
    /// The record.
    pub record: MemberRecord,
    /// The member's node key's signature over [`MEMBER_RECORD_CONTEXT`] and the record.
    pub signature: [u8; 64],
}

impl MemberRecord {
    /// Checks the bounds: member id, seq from 1, addresses and contact.
    pub fn check_bounds(&self) -> Result<(), RosterProblem> {
        if !is_valid_member_id(&self.member) {
            return Err(RosterProblem::BadMemberId);
        }
        if self.seq == 0 {
            return Err(RosterProblem::RecordBounds("seq starts at 1"));
        }
        if self.addresses.len() > MAX_RECORD_ADDRESSES {
            return Err(RosterProblem::RecordBounds("more than 8 addresses"));
        }
        if self.addresses.iter().any(|a| a.is_empty() || a.len() > MAX_RECORD_ADDRESS_BYTES) {
            return Err(RosterProblem::RecordBounds("an address empty or over 256 bytes"));
        }
        if self.contact.chars().count() > MAX_RECORD_CONTACT_CHARS {
            return Err(RosterProblem::RecordBounds("contact over 256 characters"));
        }
        Ok(())
    }

    fn fields(&self) -> Vec<(Value, Value)> {
        let addresses = self.addresses.iter().map(|a| Value::Text(a.clone())).collect();
        vec![
            (key::FEDERATION_ID.into(), bytes(self.federation_id.as_bytes())),
            (key::MEMBER.into(), self.member.clone().into()),
            (key::SEQ.into(), self.seq.into()),
            (key::ADDRESSES.into(), Value::Array(addresses)),
            (key::CONTACT.into(), self.contact.clone().into()),
        ]
    }

    fn message(&self) -> Vec<u8> {
        [MEMBER_RECORD_CONTEXT.as_bytes(), &crate::cbor::encode(&Value::Map(self.fields()))]
            .concat()
    }

    /// Signs the record with the member's node key. Refuses a record over its bounds.
    pub fn sign(self, node_key: &SigningKey) -> Result<SignedMemberRecord, RosterProblem> {
        self.check_bounds()?;
        let signature = node_key.sign(&self.message());
        Ok(SignedMemberRecord { record: self, signature })
    }
}

impl SignedMemberRecord {
    /// Checks the record against an adopted roster: bounds, federation, the member is on the
    /// roster, the signature is its current node key's, and the seq is above `held_seq`
    /// (the highest this node verified for the member, if any).
    pub fn verify(
        &self,
        roster: &VerifiedRoster,
        held_seq: Option<u64>,
    ) -> Result<(), RosterProblem> {
        let record = &self.record;
        record.check_bounds()?;
        if record.federation_id != roster.body().federation_id {
            return Err(RosterProblem::WrongFederation);
        }
        let member = roster
            .body()
            .member(&record.member)
            .ok_or_else(|| RosterProblem::UnknownMember(record.member.clone()))?;
        if !member.node_key.verify_strict(&record.message(), &self.signature) {
            return Err(RosterProblem::BadRecordSignature(record.member.clone()));
        }
        if let Some(held) = held_seq
            && record.seq <= held
        {
            return Err(RosterProblem::StaleRecord {
                member: record.member.clone(),
                seq: record.seq,
                held,
            });
        }
        Ok(())
    }

    /// The deterministic CBOR wire form: the record's map with the signature under key 5.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut fields = self.record.fields();
        fields.push((key::SIGNATURE.into(), bytes(&self.signature)));
        crate::cbor::encode(&Value::Map(fields))
    }

    /// Decodes a wire form strictly (at most [`MAX_MEMBER_RECORD_BYTES`], bounds checked; the
    /// signature is not).
    pub fn from_wire(bytes: &[u8]) -> Result<Self, RosterProblem> {
        if bytes.len() > MAX_MEMBER_RECORD_BYTES {
            return Err(RosterProblem::TooLarge);
        }
        let value = crate::cbor::decode(bytes).map_err(|_| RosterProblem::BadWireForm("cbor"))?;
        use key::*;
        let known = [FEDERATION_ID, MEMBER, SEQ, ADDRESSES, CONTACT, SIGNATURE];
        let fields = Fields::new(&value, &known, "member record")?;
        let addresses = fields
            .array(ADDRESSES, "addresses", MAX_RECORD_ADDRESSES)?
            .iter()
            .map(|a| a.as_text().map(str::to_owned).ok_or(RosterProblem::BadWireForm("addresses")))
            .collect::<Result<_, _>>()?;
        let record = MemberRecord {
            federation_id: FederationId(fields.array32(FEDERATION_ID, "federation_id")?),
            member: fields.text(MEMBER, "member")?.to_owned(),
            seq: fields.uint(SEQ, "seq")?,
            addresses,
            contact: fields.text(CONTACT, "contact")?.to_owned(),
        };
        record.check_bounds()?;
        Ok(Self { record, signature: fields.array64(SIGNATURE, "signature")? })
    }
}
