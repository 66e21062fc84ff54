//! The CBOR forms of the roster body and the signed roster (docs/PROTOCOL.md §4.1): maps with
//! small unsigned keys, every field required but `rotation`, unknown keys refused (a roster
//! is adopted only when it is understood whole), and helpers the other roster wire forms share.

use ciborium::Value;

use super::{
    GovernanceSignature, KeyChange, MAX_KEY_CHANGES, MAX_MEMBERS, MAX_RETIRED_NODE_KEYS,
    MAX_ROSTER_SIGNATURES, RosterBody, RosterMember, RosterProblem, Rotation, SignedRoster,
};
use crate::cbor::{as_array, as_u64, uint_key};
use crate::keys::PublicKey;
use crate::types::FederationId;

/// Map keys of the body. Written out and never reused.
mod body_key {
    pub const FEDERATION_ID: u64 = 0;
    pub const VERSION: u64 = 1;
    pub const EPOCH: u64 = 2;
    pub const EXPIRES_AT_MS: u64 = 3;
    pub const THRESHOLD: u64 = 4;
    pub const MAX_RETENTION_DAYS: u64 = 5;
    pub const QUOTA_ENTRIES_PER_DAY: u64 = 6;
    pub const QUOTA_BYTES_PER_DAY: u64 = 7;
    pub const SECRET_FINGERPRINT: u64 = 8;
    pub const ROTATION: u64 = 9;
    pub const MEMBERS: u64 = 10;
}

/// Map keys of a member.
mod member_key {
    pub const ID: u64 = 0;
    pub const NAME: u64 = 1;
    pub const NODE_KEY: u64 = 2;
    pub const GOVERNANCE_KEY: u64 = 3;
    pub const SEALING_KEY: u64 = 4;
    pub const RETIRED_NODE_KEYS: u64 = 5;
}

/// Map keys of a rotation.
mod rotation_key {
    pub const PREVIOUS_EPOCH: u64 = 0;
    pub const PREVIOUS_SECRET_FINGERPRINT: u64 = 1;
    pub const CHANGEOVER_AT_MS: u64 = 2;
    pub const GRACE_MS: u64 = 3;
}

/// Map keys of a signed roster.
mod signed_key {
    pub const BODY: u64 = 0;
    pub const SIGNATURES: u64 = 1;
    pub const KEY_CHANGES: u64 = 2;
}

pub(super) fn bytes(value: &[u8]) -> Value {
    Value::Bytes(value.to_vec())
}

/// A map of small unsigned keys, read strictly: every key must be one of `known`.
pub(super) struct Fields<'a> {
    pairs: &'a [(Value, Value)],
}

impl<'a> Fields<'a> {
    pub(super) fn new(
        value: &'a Value,
        known: &[u64],
        what: &'static str,
    ) -> Result<Self, RosterProblem> {
        let Value::Map(pairs) = value else {
            return Err(RosterProblem::BadWireForm(what));
        };
        if pairs.iter().any(|(key, _)| !uint_key(key).is_some_and(|k| known.contains(&k))) {
            return Err(RosterProblem::BadWireForm(what));
        }
        Ok(Self { pairs })
    }

    pub(super) fn optional(&self, wanted: u64) -> Option<&'a Value> {
        self.pairs.iter().find(|(key, _)| uint_key(key) == Some(wanted)).map(|(_, value)| value)
    }

    pub(super) fn get(&self, wanted: u64, name: &'static str) -> Result<&'a Value, RosterProblem> {
        self.optional(wanted).ok_or(RosterProblem::BadWireForm(name))
    }

    pub(super) fn uint(&self, wanted: u64, name: &'static str) -> Result<u64, RosterProblem> {
        as_u64(self.get(wanted, name)?).ok_or(RosterProblem::BadWireForm(name))
    }

    pub(super) fn u32(&self, wanted: u64, name: &'static str) -> Result<u32, RosterProblem> {
        u32::try_from(self.uint(wanted, name)?).map_err(|_| RosterProblem::BadWireForm(name))
    }

    pub(super) fn array32(
        &self,
        wanted: u64,
        name: &'static str,
    ) -> Result<[u8; 32], RosterProblem> {
        as_array(self.get(wanted, name)?).ok_or(RosterProblem::BadWireForm(name))
    }

    pub(super) fn array64(
        &self,
        wanted: u64,
        name: &'static str,
    ) -> Result<[u8; 64], RosterProblem> {
        as_array(self.get(wanted, name)?).ok_or(RosterProblem::BadWireForm(name))
    }

    pub(super) fn key(&self, wanted: u64, name: &'static str) -> Result<PublicKey, RosterProblem> {
        public_key(self.get(wanted, name)?, name)
    }

    pub(super) fn text(&self, wanted: u64, name: &'static str) -> Result<&'a str, RosterProblem> {
        self.get(wanted, name)?.as_text().ok_or(RosterProblem::BadWireForm(name))
    }

    pub(super) fn array(
        &self,
        wanted: u64,
        name: &'static str,
        max: usize,
    ) -> Result<&'a [Value], RosterProblem> {
        let items = self.get(wanted, name)?.as_array().ok_or(RosterProblem::BadWireForm(name))?;
        if items.len() > max {
            return Err(RosterProblem::BadWireForm(name));
        }
        Ok(items)
    }
}

/// A 32-byte string as a usable Ed25519 public key.
pub(super) fn public_key(value: &Value, name: &'static str) -> Result<PublicKey, RosterProblem> {
    let bytes: [u8; 32] = as_array(value).ok_or(RosterProblem::BadWireForm(name))?;
    PublicKey::from_bytes(&bytes).map_err(|_| RosterProblem::BadKey)
}

pub(super) fn body_value(body: &RosterBody) -> Value {
    let mut map = vec![
        (body_key::FEDERATION_ID.into(), bytes(body.federation_id.as_bytes())),
        (body_key::VERSION.into(), body.version.into()),
        (body_key::EPOCH.into(), body.epoch.into()),
        (body_key::EXPIRES_AT_MS.into(), body.expires_at_ms.into()),
        (body_key::THRESHOLD.into(), body.threshold.into()),
        (body_key::MAX_RETENTION_DAYS.into(), body.max_retention_days.into()),
        (body_key::QUOTA_ENTRIES_PER_DAY.into(), body.quota_entries_per_day.into()),
        (body_key::QUOTA_BYTES_PER_DAY.into(), body.quota_bytes_per_day.into()),
        (body_key::SECRET_FINGERPRINT.into(), bytes(&body.secret_fingerprint)),
    ];
    if let Some(rotation) = &body.rotation {
        let rotation = vec![
            (rotation_key::PREVIOUS_EPOCH.into(), rotation.previous_epoch.into()),
            (
                rotation_key::PREVIOUS_SECRET_FINGERPRINT.into(),
                bytes(&rotation.previous_secret_fingerprint),
            ),
            (rotation_key::CHANGEOVER_AT_MS.into(), rotation.changeover_at_ms.into()),
            (rotation_key::GRACE_MS.into(), rotation.grace_ms.into()),
        ];
        map.push((body_key::ROTATION.into(), Value::Map(rotation)));
    }
    let members = body.members.iter().map(member_value).collect();
    map.push((body_key::MEMBERS.into(), Value::Array(members)));
    Value::Map(map)
}

fn member_value(member: &RosterMember) -> Value {
    let retired = member.retired_node_keys.iter().map(|key| bytes(&key.to_bytes())).collect();
    Value::Map(vec![
        (member_key::ID.into(), member.id.clone().into()),
        (member_key::NAME.into(), member.name.clone().into()),
        (member_key::NODE_KEY.into(), bytes(&member.node_key.to_bytes())),
        (member_key::GOVERNANCE_KEY.into(), bytes(&member.governance_key.to_bytes())),
        (member_key::SEALING_KEY.into(), bytes(&member.sealing_key)),
        (member_key::RETIRED_NODE_KEYS.into(), Value::Array(retired)),
    ])
}

pub(super) fn body_from_value(value: &Value) -> Result<RosterBody, RosterProblem> {
    use body_key::*;
    let known = [
        FEDERATION_ID,
        VERSION,
        EPOCH,
        EXPIRES_AT_MS,
        THRESHOLD,
        MAX_RETENTION_DAYS,
        QUOTA_ENTRIES_PER_DAY,
        QUOTA_BYTES_PER_DAY,
        SECRET_FINGERPRINT,
        ROTATION,
        MEMBERS,
    ];
    let fields = Fields::new(value, &known, "body")?;
    let rotation = fields.optional(ROTATION).map(rotation_from_value).transpose()?;
    let members = fields
        .array(MEMBERS, "members", MAX_MEMBERS)?
        .iter()
        .map(member_from_value)
        .collect::<Result<_, _>>()?;
    Ok(RosterBody {
        federation_id: FederationId(fields.array32(FEDERATION_ID, "federation_id")?),
        version: fields.uint(VERSION, "version")?,
        epoch: fields.u32(EPOCH, "epoch")?,
        expires_at_ms: fields.uint(EXPIRES_AT_MS, "expires_at_ms")?,
        threshold: fields.u32(THRESHOLD, "threshold")?,
        max_retention_days: fields.u32(MAX_RETENTION_DAYS, "max_retention_days")?,
        quota_entries_per_day: fields.uint(QUOTA_ENTRIES_PER_DAY, "quota_entries_per_day")?,
        quota_bytes_per_day: fields.uint(QUOTA_BYTES_PER_DAY, "quota_bytes_per_day")?,
        secret_fingerprint: fields.array32(SECRET_FINGERPRINT, "secret_fingerprint")?,
        rotation,
        members,
    })
}

fn rotation_from_value(value: &Value) -> Result<Rotation, RosterProblem> {
    use rotation_key::*;
    let known = [PREVIOUS_EPOCH, PREVIOUS_SECRET_FINGERPRINT, CHANGEOVER_AT_MS, GRACE_MS];
    let fields = Fields::new(value, &known, "rotation")?;
    Ok(Rotation {
        previous_epoch: fields.u32(PREVIOUS_EPOCH, "rotation")?,
        previous_secret_fingerprint: fields.array32(PREVIOUS_SECRET_FINGERPRINT, "rotation")?,
        changeover_at_ms: fields.uint(CHANGEOVER_AT_MS, "rotation")?,
        grace_ms: fields.uint(GRACE_MS, "rotation")?,
    })
}

fn member_from_value(value: &Value) -> Result<RosterMember, RosterProblem> {
    use member_key::*;
    let known = [ID, NAME, NODE_KEY, GOVERNANCE_KEY, SEALING_KEY, RETIRED_NODE_KEYS];
    let fields = Fields::new(value, &known, "member")?;
    let retired_node_keys = fields
        .array(RETIRED_NODE_KEYS, "retired_node_keys", MAX_RETIRED_NODE_KEYS)?
        .iter()
        .map(|key| public_key(key, "retired_node_keys"))
        .collect::<Result<_, _>>()?;
    Ok(RosterMember {
        id: fields.text(ID, "member id")?.to_owned(),
        name: fields.text(NAME, "member name")?.to_owned(),
        node_key: fields.key(NODE_KEY, "node_key")?,
        governance_key: fields.key(GOVERNANCE_KEY, "governance_key")?,
        sealing_key: fields.array32(SEALING_KEY, "sealing_key")?,
        retired_node_keys,
    })
}

pub(super) fn signed_value(roster: &SignedRoster) -> Value {
    let signatures = roster
        .signatures
        .iter()
        .map(|s| Value::Array(vec![s.member.clone().into(), bytes(&s.signature)]))
        .collect();
    let key_changes = roster.key_changes.iter().map(KeyChange::to_value).collect();
    Value::Map(vec![
        (signed_key::BODY.into(), body_value(&roster.body)),
        (signed_key::SIGNATURES.into(), Value::Array(signatures)),
        (signed_key::KEY_CHANGES.into(), Value::Array(key_changes)),
    ])
}

pub(super) fn signed_from_value(value: &Value) -> Result<SignedRoster, RosterProblem> {
    use signed_key::*;
    let fields = Fields::new(value, &[BODY, SIGNATURES, KEY_CHANGES], "signed roster")?;
    let body = body_from_value(fields.get(BODY, "body")?)?;
    let signatures = fields
        .array(SIGNATURES, "signatures", MAX_ROSTER_SIGNATURES)?
        .iter()
        .map(signature_from_value)
        .collect::<Result<_, _>>()?;
    let key_changes = fields
        .array(KEY_CHANGES, "key_changes", MAX_KEY_CHANGES)?
        .iter()
        .map(KeyChange::from_value)
        .collect::<Result<_, _>>()?;
    Ok(SignedRoster { body, signatures, key_changes })
}

fn signature_from_value(value: &Value) -> Result<GovernanceSignature, RosterProblem> {
    let bad = RosterProblem::BadWireForm("signature");
    let Some([member, signature]) =
        value.as_array().and_then(|items| <&[Value; 2]>::try_from(items.as_slice()).ok())
    else {
        return Err(bad);
    };
    let member = member.as_text().ok_or(bad.clone())?;
    if !super::is_valid_member_id(member) {
        return Err(RosterProblem::BadMemberId);
    }
    Ok(GovernanceSignature {
        member: member.to_owned(),
        signature: as_array(signature).ok_or(bad)?,
    })
}
