//! The sync protocol's names, ids and messages (docs/PROTOCOL.md §3): the gossip message id, the
//! gossip topics, what members announce at connect, and the sync requests and responses with
//! their limits. Plain data and pure functions; the node's mesh carries them over the network.
//!
//! With the `serde` feature the sync messages are serde types whose CBOR form is §3.3's: byte
//! fields are CBOR byte strings, never arrays of integers (the helpers below make serde call
//! `serialize_bytes`, and refuse anything but a byte string of the expected length).

use crate::types::FederationId;

/// Domain of gossip message ids: `BLAKE3-derive_key(GOSSIP_ID_CONTEXT, wire form)`.
pub const GOSSIP_ID_CONTEXT: &str = "crossmatch gossip id v1";

/// Largest gossip message, which bounds gossipsub's whole RPC frame: a batch
/// (`limits::MAX_BATCH_BYTES`, 56 KiB) stays several KiB below it.
pub const MAX_GOSSIP_BYTES: usize = 64 * 1024;

// The largest batch, with room to spare for the frame, and the largest fork evidence each fit
// one gossip message.
const _: () = assert!(crate::limits::MAX_BATCH_BYTES + 4 * 1024 <= MAX_GOSSIP_BYTES);
const _: () = assert!(crate::fork::MAX_FORK_EVIDENCE_BYTES <= MAX_GOSSIP_BYTES);

/// The request-response protocol id of sync.
pub const SYNC_PROTOCOL: &str = "/crossmatch/sync/1";

/// Largest encoded sync request read from a peer. The largest honest request, a
/// `member_records` naming [`MAX_RECORDS_PER_REQUEST`] ids, is under 2.3 KiB (a `range` under
/// 100 bytes); 4 KiB leaves room for later fields and keeps a flood of requests cheap.
pub const MAX_SYNC_REQUEST_BYTES: u64 = 4 * 1024;

/// Largest encoded sync response read from a peer: 1 MiB holds 18 batches at the 56 KiB batch
/// limit, and keeps what one slow or hostile peer can make this node buffer small.
pub const MAX_SYNC_RESPONSE_BYTES: u64 = 1024 * 1024;

/// Most batches one `range` request may ask for: enough to page through a feed in a few round
/// trips, few enough that the reply is bounded by [`MAX_SYNC_RESPONSE_BYTES`] anyway.
pub const MAX_RANGE_BATCHES: u32 = 256;

/// A gossip message's id: the keyed hash of its whole wire form, so that an altered copy of a
/// batch has an id of its own and cannot shadow the genuine one (§3.2).
pub fn gossip_message_id(wire: &[u8]) -> [u8; 32] {
    blake3::derive_key(GOSSIP_ID_CONTEXT, wire)
}

/// The gossip topic of batches: `crossmatch/1/batches/<federation id hex>`.
pub fn batch_topic(federation_id: &FederationId) -> String {
    format!("crossmatch/1/batches/{}", hex::encode(federation_id.as_bytes()))
}

/// The gossip topic of fork evidence: `crossmatch/1/forks/<federation id hex>`.
pub fn fork_topic(federation_id: &FederationId) -> String {
    format!("crossmatch/1/forks/{}", hex::encode(federation_id.as_bytes()))
}

/// The gossip topic of roster announcements: `crossmatch/1/roster/<federation id hex>`.
pub fn roster_topic(federation_id: &FederationId) -> String {
    format!("crossmatch/1/roster/{}", hex::encode(federation_id.as_bytes()))
}

/// Largest roster announcement: `[announcer bstr(32), version, hash bstr(32)]` takes at most
/// 79 bytes.
pub const MAX_ROSTER_ANNOUNCEMENT_BYTES: usize = 96;

/// Most rosters one `rosters` answer holds (and at most [`MAX_SYNC_RESPONSE_BYTES`] in all:
/// three rosters at `MAX_ROSTER_BYTES`); a node further behind asks again from the next version.
pub const MAX_ROSTERS_PER_RESPONSE: usize = 8;

/// A roster announcement (§3.6): the announcer's node key and the version and hash of the
/// roster it runs, deterministic CBOR `[announcer bstr, version uint, hash bstr]`. The node key
/// is in it so that two members' announcements of one roster have message ids of their own.
pub fn encode_roster_announcement(announcer: &[u8; 32], version: u64, hash: &[u8; 32]) -> Vec<u8> {
    use ciborium::Value;
    crate::cbor::encode(&Value::Array(vec![
        Value::Bytes(announcer.to_vec()),
        Value::Integer(version.into()),
        Value::Bytes(hash.to_vec()),
    ]))
}

/// Decodes a roster announcement strictly: `(announcer, version, hash)`, or `None` for
/// anything else (over [`MAX_ROSTER_ANNOUNCEMENT_BYTES`], another encoding or shape, version 0).
pub fn decode_roster_announcement(bytes: &[u8]) -> Option<([u8; 32], u64, [u8; 32])> {
    use ciborium::Value;
    if bytes.len() > MAX_ROSTER_ANNOUNCEMENT_BYTES {
        return None;
    }
    let Ok(Value::Array(items)) = crate::cbor::decode(bytes) else { return None };
    let [Value::Bytes(announcer), Value::Integer(version), Value::Bytes(hash)] =
        <[Value; 3]>::try_from(items).ok()?
    else {
        return None;
    };
    let version = u64::try_from(version).ok().filter(|version| *version >= 1)?;
    Some((announcer.try_into().ok()?, version, hash.try_into().ok()?))
}

/// The gossip topic of members' own records (§3.7): `crossmatch/1/records/<federation id hex>`.
pub fn record_topic(federation_id: &FederationId) -> String {
    format!("crossmatch/1/records/{}", hex::encode(federation_id.as_bytes()))
}

/// Most (member, seq) pairs one `record_seqs` answer holds: one per roster member.
pub const MAX_RECORD_SEQS: usize = crate::roster::MAX_MEMBERS;

/// Most members one `member_records` request names: 64 ids of at most 32 bytes keep the
/// request under [`MAX_SYNC_REQUEST_BYTES`], and 64 records of at most
/// `MAX_MEMBER_RECORD_BYTES` (4 KiB) keep the answer at a quarter of
/// [`MAX_SYNC_RESPONSE_BYTES`]; a roster of 256 members takes four requests.
pub const MAX_RECORDS_PER_REQUEST: usize = 64;

const _: () = assert!(
    MAX_RECORDS_PER_REQUEST * (crate::roster::MAX_MEMBER_ID_BYTES + 2) + 64
        <= MAX_SYNC_REQUEST_BYTES as usize
);
const _: () = assert!(
    MAX_RECORDS_PER_REQUEST * (crate::roster::MAX_MEMBER_RECORD_BYTES + 9) + 64
        <= MAX_SYNC_RESPONSE_BYTES as usize
);

/// One member's newest record seq, as a `record_seqs` answer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MemberSeq {
    /// The member's id.
    pub member: String,
    /// The seq of its newest record the responder holds.
    pub seq: u64,
}

/// Most roster conflicts one `roster_conflict` answer holds: a node keeps the first it proved.
pub const MAX_ROSTER_CONFLICTS_PER_RESPONSE: usize = 1;

// A conflict at its limit fits one response, with room for the framing.
const _: () =
    assert!(crate::roster::MAX_ROSTER_CONFLICT_BYTES + 64 <= MAX_SYNC_RESPONSE_BYTES as usize);

/// Largest roster conflict announcement: `[announcer bstr(32), version, hash bstr(32), hash
/// bstr(32)]` takes at most 113 bytes.
pub const MAX_ROSTER_CONFLICT_ANNOUNCEMENT_BYTES: usize = 128;

/// A roster conflict announcement (§3.6), on the roster topic: the announcer's node key, and
/// the contested version and the two rosters' hashes of the conflict it holds, deterministic
/// CBOR `[announcer bstr, version uint, hash bstr, hash bstr]`. Its four items tell it from a
/// roster announcement (three), which a node on older software reads it as none of.
pub fn encode_roster_conflict_announcement(
    announcer: &[u8; 32],
    version: u64,
    hashes: &[[u8; 32]; 2],
) -> Vec<u8> {
    use ciborium::Value;
    crate::cbor::encode(&Value::Array(vec![
        Value::Bytes(announcer.to_vec()),
        Value::Integer(version.into()),
        Value::Bytes(hashes[0].to_vec()),
        Value::Bytes(hashes[1].to_vec()),
    ]))
}

/// Decodes a roster conflict announcement strictly: `(announcer, version, hashes)`, or `None`
/// for anything else (over [`MAX_ROSTER_CONFLICT_ANNOUNCEMENT_BYTES`], another encoding or
/// shape, version below 2, two equal hashes).
pub fn decode_roster_conflict_announcement(bytes: &[u8]) -> Option<([u8; 32], u64, [[u8; 32]; 2])> {
    use ciborium::Value;
    if bytes.len() > MAX_ROSTER_CONFLICT_ANNOUNCEMENT_BYTES {
        return None;
    }
    let Ok(Value::Array(items)) = crate::cbor::decode(bytes) else { return None };
    let [
        Value::Bytes(announcer),
        Value::Integer(version),
        Value::Bytes(first),
        Value::Bytes(second),
    ] = <[Value; 4]>::try_from(items).ok()?
    else {
        return None;
    };
    // Version 1 is founded by hand: no conflict is proved of it.
    let version = u64::try_from(version).ok().filter(|version| *version >= 2)?;
    let hashes: [[u8; 32]; 2] = [first.try_into().ok()?, second.try_into().ok()?];
    if hashes[0] == hashes[1] {
        return None;
    }
    Some((announcer.try_into().ok()?, version, hashes))
}

/// What members announce at connect (identify's protocol version):
/// `/crossmatch/1/<federation id hex>`. A peer announcing anything else belongs to another
/// federation. The roster is not named here: members on consecutive roster versions keep
/// talking during a roster change, and exchange their roster's version and hash themselves.
pub fn announced_version(federation_id: &FederationId) -> String {
    format!("/crossmatch/1/{}", hex::encode(federation_id.as_bytes()))
}

/// A sync request, sent by a member to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SyncRequest {
    /// Every origin's head that the peer knows, each as its signed manifest.
    #[cfg_attr(feature = "serde", serde(rename = "heads"))]
    Heads,
    /// Up to `max` batches of one origin's feed in one generation, from `from_seq` on.
    #[cfg_attr(feature = "serde", serde(rename = "range"))]
    Range {
        /// The origin's Ed25519 public key.
        #[cfg_attr(feature = "serde", serde(with = "key_bytes"))]
        origin: [u8; 32],
        /// The feed's generation.
        generation: u32,
        /// The first seq wanted.
        from_seq: u64,
        /// The most batches wanted, 1 ..= [`MAX_RANGE_BATCHES`].
        max: u32,
    },
    /// Every fork the peer holds evidence of.
    #[cfg_attr(feature = "serde", serde(rename = "forks"))]
    Forks,
    /// The version and hash of the roster the peer runs (asked at every pull).
    #[cfg_attr(feature = "serde", serde(rename = "roster_head"))]
    RosterHead,
    /// The signed rosters the peer adopted, from `from_version` on, in version order.
    #[cfg_attr(feature = "serde", serde(rename = "rosters"))]
    Rosters {
        /// The first version wanted (at least 1).
        from_version: u64,
    },
    // Members' own records (§3.7).
    /// The seq of the newest record the peer holds of each member.
    #[cfg_attr(feature = "serde", serde(rename = "record_seqs"))]
    RecordSeqs,
    /// The newest records the peer holds of `members` (1 ..= [`MAX_RECORDS_PER_REQUEST`]
    /// member ids).
    #[cfg_attr(feature = "serde", serde(rename = "member_records"))]
    MemberRecords {
        /// The members whose records are wanted.
        members: Vec<String>,
    },
    // Roster conflict evidence (docs/PROTOCOL.md §3.6).
    /// The roster conflict the peer holds (two valid rosters of one version), if any.
    #[cfg_attr(feature = "serde", serde(rename = "roster_conflict"))]
    RosterConflict,
}

impl SyncRequest {
    /// Whether the request's values are within the protocol's bounds.
    pub fn is_well_formed(&self) -> bool {
        match self {
            SyncRequest::Heads
            | SyncRequest::Forks
            | SyncRequest::RosterHead
            | SyncRequest::RosterConflict => true,
            SyncRequest::Rosters { from_version } => *from_version >= 1,
            SyncRequest::RecordSeqs => true,
            SyncRequest::MemberRecords { members } => {
                (1..=MAX_RECORDS_PER_REQUEST).contains(&members.len())
                    && members.iter().all(|member| crate::roster::is_valid_member_id(member))
            }
            SyncRequest::Range { max, from_seq, .. } => {
                (1..=MAX_RANGE_BATCHES).contains(max) && *from_seq >= 1
            }
        }
    }
}

/// The refusal of a responder over the budget it keeps for the requester, or whose node's
/// queue is full: a transient state, so the requester may ask again after a pause.
pub const REFUSED_BUSY: &str = "busy";

/// A sync response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SyncResponse {
    /// Answer to `heads`: one signed manifest (COSE_Sign1 bytes) per origin head.
    #[cfg_attr(feature = "serde", serde(rename = "heads", with = "byte_strings"))]
    Heads(Vec<Vec<u8>>),
    /// Answer to `range`: batch wire forms in seq order, redacted entries as null.
    #[cfg_attr(feature = "serde", serde(rename = "batches", with = "byte_strings"))]
    Batches(Vec<Vec<u8>>),
    /// Answer to `forks`: fork evidence, each `[manifest bstr, manifest bstr]`.
    #[cfg_attr(feature = "serde", serde(rename = "forks", with = "byte_strings"))]
    Forks(Vec<Vec<u8>>),
    /// The peer will not answer; the reason is short and fixed (`busy`, `roster mismatch`, …).
    #[cfg_attr(feature = "serde", serde(rename = "refused"))]
    Refused(String),
    /// Answer to `roster_head`: the version and hash of the roster the peer runs.
    #[cfg_attr(feature = "serde", serde(rename = "roster_head"))]
    RosterHead {
        /// The roster's version.
        version: u64,
        /// The roster's hash.
        #[cfg_attr(feature = "serde", serde(with = "key_bytes"))]
        hash: [u8; 32],
    },
    /// Answer to `rosters`: signed roster wire forms in version order, at most
    /// [`MAX_ROSTERS_PER_RESPONSE`].
    #[cfg_attr(feature = "serde", serde(rename = "rosters", with = "byte_strings"))]
    Rosters(Vec<Vec<u8>>),
    // Members' own records (§3.7).
    /// Answer to `record_seqs`: the seq of the newest record held per member, at most
    /// [`MAX_RECORD_SEQS`].
    #[cfg_attr(feature = "serde", serde(rename = "record_seqs"))]
    RecordSeqs(Vec<MemberSeq>),
    /// Answer to `member_records`: signed member record wire forms (§4.3), at most one per
    /// member asked.
    #[cfg_attr(feature = "serde", serde(rename = "member_records", with = "byte_strings"))]
    MemberRecords(Vec<Vec<u8>>),
    // Roster conflict evidence (docs/PROTOCOL.md §3.6).
    /// Answer to `roster_conflict`: the conflict's wire form (`roster-conflict`, docs/PROTOCOL.md
    /// §4.3), or nothing; at most [`MAX_ROSTER_CONFLICTS_PER_RESPONSE`].
    #[cfg_attr(feature = "serde", serde(rename = "roster_conflict", with = "byte_strings"))]
    RosterConflict(Vec<Vec<u8>>),
}

impl SyncResponse {
    /// An upper bound of the response's CBOR encoding, in bytes: compare it with
    /// [`MAX_SYNC_RESPONSE_BYTES`] while filling a response.
    pub fn encoded_len_max(&self) -> usize {
        // Map header, variant name and array header: 32 bytes is ample; each byte string has a
        // header of at most 9 bytes.
        let items = match self {
            SyncResponse::Heads(items)
            | SyncResponse::Batches(items)
            | SyncResponse::Forks(items)
            | SyncResponse::Rosters(items)
            | SyncResponse::MemberRecords(items)
            | SyncResponse::RosterConflict(items) => items,
            SyncResponse::Refused(reason) => return 32 + 9 + reason.len(),
            // Names, a version of at most 9 bytes and a 34-byte hash.
            SyncResponse::RosterHead { .. } => return 32 + 9 + 9 + 34,
            // Per pair: a map header, the two keys (11 bytes), an id of at most 32 bytes with
            // its header, a seq of at most 9.
            SyncResponse::RecordSeqs(seqs) => {
                return seqs.iter().fold(32usize, |total, pair| {
                    total.saturating_add(1 + 11 + 2 + pair.member.len() + 9)
                });
            }
        };
        items.iter().fold(32usize, |total, item| total.saturating_add(9 + item.len()))
    }
}

/// `[u8; 32]` as a CBOR byte string.
#[cfg(feature = "serde")]
mod key_bytes {
    use serde::{Deserializer, Serializer, de};
    use std::fmt;

    pub(super) fn serialize<S: Serializer>(
        key: &[u8; 32],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(key)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; 32], D::Error> {
        struct KeyVisitor;
        impl de::Visitor<'_> for KeyVisitor {
            type Value = [u8; 32];
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte string of 32 bytes")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<[u8; 32], E> {
                <[u8; 32]>::try_from(bytes).map_err(|_| E::invalid_length(bytes.len(), &self))
            }
        }
        deserializer.deserialize_bytes(KeyVisitor)
    }
}

/// `Vec<Vec<u8>>` as a CBOR array of byte strings.
#[cfg(feature = "serde")]
mod byte_strings {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
    use std::fmt;

    struct AsBytes<'a>(&'a [u8]);

    impl Serialize for AsBytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    struct ByteString(Vec<u8>);

    impl<'de> Deserialize<'de> for ByteString {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct BytesVisitor;
            impl de::Visitor<'_> for BytesVisitor {
                type Value = ByteString;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a byte string")
                }
                fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<ByteString, E> {
                    Ok(ByteString(bytes.to_vec()))
                }
                fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<ByteString, E> {
                    Ok(ByteString(bytes))
                }
            }
            deserializer.deserialize_byte_buf(BytesVisitor)
        }
    }

    pub(super) fn serialize<S: Serializer>(
        items: &[Vec<u8>],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&AsBytes(item))?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        let items = Vec::<ByteString>::deserialize(deserializer)?;
        Ok(items.into_iter().map(|item| item.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_are_those_of_the_protocol_text() {
        let federation = FederationId([0xab; 32]);
        let hex_id = "ab".repeat(32);
        assert_eq!(batch_topic(&federation), format!("crossmatch/1/batches/{hex_id}"));
        assert_eq!(fork_topic(&federation), format!("crossmatch/1/forks/{hex_id}"));
        assert_eq!(announced_version(&federation), format!("/crossmatch/1/{hex_id}"));
        let wire = b"a batch's wire form";
        assert_eq!(gossip_message_id(wire), blake3::derive_key("crossmatch gossip id v1", wire));
        assert_ne!(gossip_message_id(wire), gossip_message_id(b"an altered copy"));
    }

    #[test]
    fn range_bounds() {
        let range =
            |from_seq, max| SyncRequest::Range { origin: [0; 32], generation: 1, from_seq, max };
        assert!(range(1, 1).is_well_formed());
        assert!(range(9, MAX_RANGE_BATCHES).is_well_formed());
        assert!(!range(1, 0).is_well_formed());
        assert!(!range(1, MAX_RANGE_BATCHES + 1).is_well_formed());
        assert!(!range(0, 1).is_well_formed());
        assert!(SyncRequest::Heads.is_well_formed() && SyncRequest::Forks.is_well_formed());
        assert!(SyncRequest::RosterHead.is_well_formed());
        assert!(SyncRequest::Rosters { from_version: 1 }.is_well_formed());
        assert!(!SyncRequest::Rosters { from_version: 0 }.is_well_formed());
    }

    #[test]
    fn record_messages_are_bounded() {
        let federation = FederationId([0xab; 32]);
        assert_eq!(record_topic(&federation), format!("crossmatch/1/records/{}", "ab".repeat(32)));
        assert!(SyncRequest::RecordSeqs.is_well_formed());
        let ids = |n: usize| (0..n).map(|i| format!("M{i}")).collect::<Vec<_>>();
        assert!(SyncRequest::MemberRecords { members: ids(1) }.is_well_formed());
        let most = SyncRequest::MemberRecords { members: ids(MAX_RECORDS_PER_REQUEST) };
        assert!(most.is_well_formed());
        let over = SyncRequest::MemberRecords { members: ids(MAX_RECORDS_PER_REQUEST + 1) };
        assert!(!over.is_well_formed());
        assert!(!SyncRequest::MemberRecords { members: vec![] }.is_well_formed());
        let bad = SyncRequest::MemberRecords { members: vec!["D E".into()] };
        assert!(!bad.is_well_formed());
        let long = SyncRequest::MemberRecords { members: vec!["X".repeat(33)] };
        assert!(!long.is_well_formed());
    }

    #[test]
    fn roster_announcements_round_trip_and_anything_else_is_refused() {
        let federation = FederationId([0xab; 32]);
        assert_eq!(roster_topic(&federation), format!("crossmatch/1/roster/{}", "ab".repeat(32)));
        let wire = encode_roster_announcement(&[1; 32], u64::MAX, &[2; 32]);
        assert!(wire.len() <= MAX_ROSTER_ANNOUNCEMENT_BYTES);
        assert_eq!(decode_roster_announcement(&wire), Some(([1; 32], u64::MAX, [2; 32])));
        assert_ne!(
            gossip_message_id(&wire),
            gossip_message_id(&encode_roster_announcement(&[3; 32], u64::MAX, &[2; 32])),
            "two members' announcements of one roster are two messages"
        );
        assert_eq!(
            decode_roster_announcement(&encode_roster_announcement(&[1; 32], 0, &[2; 32])),
            None
        );
        assert_eq!(decode_roster_announcement(&wire[..wire.len() - 1]), None);
        assert_eq!(decode_roster_announcement(&[0x80]), None);
        assert_eq!(decode_roster_announcement(&[0; MAX_ROSTER_ANNOUNCEMENT_BYTES + 1]), None);
    }

    #[test]
    fn roster_conflict_announcements_round_trip_and_are_no_roster_announcements() {
        assert!(SyncRequest::RosterConflict.is_well_formed());
        let hashes = [[2; 32], [3; 32]];
        let wire = encode_roster_conflict_announcement(&[1; 32], u64::MAX, &hashes);
        assert!(wire.len() <= MAX_ROSTER_CONFLICT_ANNOUNCEMENT_BYTES, "{}", wire.len());
        assert_eq!(decode_roster_conflict_announcement(&wire), Some(([1; 32], u64::MAX, hashes)));
        // Neither is read as the other.
        assert_eq!(decode_roster_announcement(&wire), None);
        let roster = encode_roster_announcement(&[1; 32], 2, &[2; 32]);
        assert_eq!(decode_roster_conflict_announcement(&roster), None);
        // Version 1, equal hashes, a truncated or oversized message: refused.
        let refused = [
            encode_roster_conflict_announcement(&[1; 32], 1, &hashes),
            encode_roster_conflict_announcement(&[1; 32], 2, &[[2; 32], [2; 32]]),
            wire[..wire.len() - 1].to_vec(),
            vec![0; MAX_ROSTER_CONFLICT_ANNOUNCEMENT_BYTES + 1],
        ];
        for bytes in refused {
            assert_eq!(decode_roster_conflict_announcement(&bytes), None);
        }
        assert_ne!(
            gossip_message_id(&wire),
            gossip_message_id(&encode_roster_conflict_announcement(&[4; 32], u64::MAX, &hashes)),
            "two members' announcements of one conflict are two messages"
        );
    }
}
