//! Entries: one operation on a token (`add`, `retract`, `status`, `tag`), their encoding and
//! digest, and the entry-level validity rules.
//!
//! An entry is a deterministic CBOR map with small unsigned keys. Keys this version does not
//! know are ignored, so later versions can add fields; an unknown `op` makes the entry invalid
//! (skipped and counted) without affecting the rest of its batch.

use ciborium::Value;

use crate::canon::Kind;
use crate::cbor::{self, as_array, as_u64, uint_key};
use crate::limits::{
    MAX_ACTIVITY_PER_DAY, MAX_CATEGORY_BYTES, MAX_ENTRY_BYTES, MAX_RETENTION_MS, SALT_BYTES,
};
use crate::types::{EntryDigest, Token};

/// Domain of entry digests: `digest = BLAKE3-derive_key(ENTRY_DIGEST_CONTEXT, entry bytes)`.
pub const ENTRY_DIGEST_CONTEXT: &str = "crossmatch entry v1";

/// Map keys of an entry. Written out and never reused.
mod key {
    pub const OP: u64 = 0;
    pub const SALT: u64 = 1;
    pub const TOKEN: u64 = 2;
    pub const KIND: u64 = 3;
    pub const CATEGORY: u64 = 4;
    pub const HANDLING: u64 = 5;
    pub const EVALUATION: u64 = 6;
    pub const ACTIVITY_PER_DAY: u64 = 7;
    pub const EXPIRES_AT_MS: u64 = 8;
    pub const REASON: u64 = 9;
    pub const STATUS: u64 = 10;
    pub const STATUS_AT_MS: u64 = 11;
    /// `tag`: the 16-byte community pseudonym.
    pub const COMMUNITY: u64 = 12;
    /// `add`: `true` when an algorithm, not an analyst, assessed the token.
    pub const ALGORITHMIC: u64 = 13;
}

/// Values of the `op` field. Written out and never reused.
mod op {
    pub const ADD: u64 = 1;
    pub const RETRACT: u64 = 2;
    pub const STATUS: u64 = 3;
    pub const TAG: u64 = 4;
}

/// Length of a `tag`'s community pseudonym, in bytes.
pub const COMMUNITY_PSEUDONYM_BYTES: usize = 16;

/// The digest of an entry's encoded bytes, as listed in the manifest.
pub fn entry_digest(entry_bytes: &[u8]) -> EntryDigest {
    EntryDigest(blake3::derive_key(ENTRY_DIGEST_CONTEXT, entry_bytes))
}

/// One operation on a token, with the random salt that makes its digest unlinkable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Random bytes chosen by the origin (passed in: the protocol crate has no randomness).
    pub salt: [u8; SALT_BYTES],
    /// What the entry does.
    pub op: Op,
}

/// The operation an entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The origin holds this token.
    Add(Add),
    /// The origin no longer holds this token.
    Retract(Retract),
    /// The origin reports a referral or takedown status for this token.
    Status(StatusUpdate),
    /// The origin counts this token in one snapshot of a community it shared.
    Tag(Tag),
}

impl Op {
    /// The token the operation is about.
    pub fn token(&self) -> &Token {
        match self {
            Op::Add(add) => &add.token,
            Op::Retract(retract) => &retract.token,
            Op::Status(status) => &status.token,
            Op::Tag(tag) => &tag.token,
        }
    }
}

/// `add`: the origin holds the token, with its assessment of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// The token.
    pub token: Token,
    /// Which kind of identifier the token was made from.
    pub kind: Kind,
    /// A short label such as `terrorism/propaganda` (at most [`MAX_CATEGORY_BYTES`] of
    /// `a-z 0-9 _ . / -`, starting with a letter or digit).
    pub category: String,
    /// Europol handling code.
    pub handling: Handling,
    /// Source reliability and information credibility (the 4×4 / "admiralty" scale).
    pub evaluation: Evaluation,
    /// Observed posts per day, if known.
    pub activity_per_day: Option<u64>,
    /// When every node must forget this entry (Unix ms). Mandatory; at most
    /// [`MAX_RETENTION_MS`] after the batch's `created_at`.
    pub expires_at_ms: u64,
    /// Produced by an algorithm (a community share), not an analyst's assessment. Encoded only
    /// when `true`.
    pub algorithmic: bool,
}

/// `tag`: the token belongs to one shared snapshot of a community of the origin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The token.
    pub token: Token,
    /// The snapshot's pseudonym: 16 random bytes, fresh for each shared snapshot.
    pub community: [u8; COMMUNITY_PSEUDONYM_BYTES],
    /// When every node must forget this entry (Unix ms); bounded as an `add`'s expiry is.
    pub expires_at_ms: u64,
}

/// `retract`: the origin no longer holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retract {
    /// The token.
    pub token: Token,
    /// Why.
    pub reason: RetractReason,
}

/// `status`: the origin's referral or takedown status for the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The token.
    pub token: Token,
    /// The status.
    pub status: Status,
    /// When the status took effect (Unix ms).
    pub at_ms: u64,
}

/// Defines a wire enum with written-out codes, never reused.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $code,)+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The code on the wire.
            pub const fn code(self) -> u64 {
                self as u64
            }

            /// The value for a wire code, if this version knows it.
            pub fn from_code(code: u64) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The name used in documents, configs and the API.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownName {
                        what: stringify!($name),
                        accepted: &[$($text,)+],
                    }),
                }
            }
        }
    };
}

/// A name that is not one of a wire enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what}; accepted: {}", accepted.join(", "))]
pub struct UnknownName {
    /// Which enum.
    pub what: &'static str,
    /// The names it accepts.
    pub accepted: &'static [&'static str],
}

wire_enum!(
    /// Europol handling codes.
    Handling {
        /// Law-enforcement use only.
        H0 = 0 => "H0",
        /// Not for use as evidence without permission.
        H1 = 1 => "H1",
        /// Not to be disseminated without permission.
        H2 = 2 => "H2",
        /// Other restrictions: never shared (behaves as a watch).
        H3 = 3 => "H3",
    }
);

wire_enum!(
    /// Why an origin retracted a token.
    RetractReason {
        /// No local record holds the token any more.
        NoLongerHeld = 1 => "no_longer_held",
        /// The add was a mistake.
        Erroneous = 2 => "erroneous",
    }
);

wire_enum!(
    /// Referral and takedown status.
    Status {
        /// Referred to the hosting provider.
        Referred = 1 => "referred",
        /// Removed by the hosting provider.
        Removed = 2 => "removed",
        /// Reinstated after removal.
        Reinstated = 3 => "reinstated",
        /// A removal order under the EU TCO regulation (2021/784) was issued: the provider has
        /// one hour from the order's time. A receiver of an older version skips the entry
        /// (docs/PROTOCOL.md §2.2).
        Ordered = 4 => "ordered",
    }
);

/// Source reliability (A, B, C, X) and information credibility (1–4), written `B2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Evaluation {
    source: u8,
    information: u8,
}

impl Evaluation {
    /// Builds an evaluation from its letter (`A`, `B`, `C` or `X`) and digit (1–4).
    pub fn new(source: char, information: u8) -> Option<Self> {
        (matches!(source, 'A' | 'B' | 'C' | 'X') && (1..=4).contains(&information))
            .then_some(Self { source: source as u8, information })
    }

    /// Source reliability letter.
    pub fn source(self) -> char {
        char::from(self.source)
    }

    /// Information credibility digit.
    pub fn information(self) -> u8 {
        self.information
    }
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.source(), self.information)
    }
}

impl std::str::FromStr for Evaluation {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        let parsed = match (chars.next(), chars.next(), chars.next()) {
            (Some(source), Some(digit @ '1'..='4'), None) => Self::new(source, digit as u8 - b'0'),
            _ => None,
        };
        parsed.ok_or(UnknownName {
            what: "evaluation",
            accepted: &["A1 to X4 (source A, B, C or X; information 1 to 4)"],
        })
    }
}

/// Whether `category` is an acceptable category label.
pub fn is_valid_category(category: &str) -> bool {
    let bytes = category.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_CATEGORY_BYTES
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'/' | b'-')
        })
}

/// Why one entry of a valid batch is skipped. The batch itself stays valid and advances its
/// chain; the node counts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// The entry was redacted (`null`): expired or retracted, or withheld by a relay.
    #[error("entry redacted")]
    Redacted,
    /// The entry's bytes do not hash to the digest the manifest lists.
    #[error("entry does not match its digest")]
    DigestMismatch,
    /// Larger than [`MAX_ENTRY_BYTES`].
    #[error("entry larger than {MAX_ENTRY_BYTES} bytes")]
    TooLarge,
    /// Not a deterministic CBOR map.
    #[error("entry is not a deterministic cbor map")]
    NotCanonical,
    /// An `op` this version does not know (a later version's operation).
    #[error("unknown op {0}")]
    UnknownOp(u64),
    /// A required field is missing or has the wrong type.
    #[error("entry field {0} missing or of the wrong type")]
    BadField(&'static str),
    /// A field is outside its allowed range.
    #[error("entry field {0} out of range")]
    OutOfRange(&'static str),
}

impl Entry {
    /// The deterministic CBOR encoding of this entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut map: Vec<(u64, Value)> = vec![
            (key::SALT, Value::Bytes(self.salt.to_vec())),
            (key::TOKEN, Value::Bytes(self.op.token().0.to_vec())),
        ];
        let op = match &self.op {
            Op::Add(add) => {
                map.push((key::KIND, add.kind.code().into()));
                map.push((key::CATEGORY, Value::Text(add.category.clone())));
                map.push((key::HANDLING, add.handling.code().into()));
                map.push((key::EVALUATION, Value::Text(add.evaluation.to_string())));
                if let Some(activity) = add.activity_per_day {
                    map.push((key::ACTIVITY_PER_DAY, activity.into()));
                }
                map.push((key::EXPIRES_AT_MS, add.expires_at_ms.into()));
                if add.algorithmic {
                    map.push((key::ALGORITHMIC, Value::Bool(true)));
                }
                op::ADD
            }
            Op::Retract(retract) => {
                map.push((key::REASON, retract.reason.code().into()));
                op::RETRACT
            }
            Op::Status(status) => {
                map.push((key::STATUS, status.status.code().into()));
                map.push((key::STATUS_AT_MS, status.at_ms.into()));
                op::STATUS
            }
            Op::Tag(tag) => {
                map.push((key::EXPIRES_AT_MS, tag.expires_at_ms.into()));
                map.push((key::COMMUNITY, Value::Bytes(tag.community.to_vec())));
                op::TAG
            }
        };
        map.insert(0, (key::OP, op.into()));
        let value = Value::Map(map.into_iter().map(|(k, v)| (Value::from(k), v)).collect());
        cbor::encode(&value)
    }

    /// Decodes an entry whose bytes have already been checked against their digest, and checks
    /// its fields' ranges against the batch's `created_at`.
    pub fn decode(bytes: &[u8], created_at_ms: u64) -> Result<Self, EntryProblem> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryProblem::TooLarge);
        }
        let value = cbor::decode(bytes).map_err(|_| EntryProblem::NotCanonical)?;
        let Value::Map(pairs) = value else {
            return Err(EntryProblem::NotCanonical);
        };
        let field =
            |wanted: u64| pairs.iter().find(|(k, _)| uint_key(k) == Some(wanted)).map(|(_, v)| v);
        let uint = |wanted: u64, name: &'static str| {
            field(wanted).and_then(as_u64).ok_or(EntryProblem::BadField(name))
        };
        let expiry = |expires_at_ms: u64| {
            if expires_at_ms <= created_at_ms || expires_at_ms - created_at_ms > MAX_RETENTION_MS {
                return Err(EntryProblem::OutOfRange("expires_at_ms"));
            }
            Ok(expires_at_ms)
        };
        let code = uint(key::OP, "op")?;
        let salt = field(key::SALT).and_then(as_array).ok_or(EntryProblem::BadField("salt"))?;
        let token =
            Token(field(key::TOKEN).and_then(as_array).ok_or(EntryProblem::BadField("token"))?);
        let op = match code {
            op::ADD => {
                let kind = Kind::from_code(uint(key::KIND, "kind")?)
                    .ok_or(EntryProblem::OutOfRange("kind"))?;
                let category = field(key::CATEGORY)
                    .and_then(Value::as_text)
                    .ok_or(EntryProblem::BadField("category"))?;
                if !is_valid_category(category) {
                    return Err(EntryProblem::OutOfRange("category"));
                }
                let handling = Handling::from_code(uint(key::HANDLING, "handling")?)
                    .ok_or(EntryProblem::OutOfRange("handling"))?;
                let evaluation = field(key::EVALUATION)
                    .and_then(Value::as_text)
                    .ok_or(EntryProblem::BadField("evaluation"))?
                    .parse()
                    .map_err(|_| EntryProblem::OutOfRange("evaluation"))?;
                let activity_per_day = match field(key::ACTIVITY_PER_DAY) {
                    None => None,
                    Some(v) => {
                        let activity =
                            as_u64(v).ok_or(EntryProblem::BadField("activity_per_day"))?;
                        if activity > MAX_ACTIVITY_PER_DAY {
                            return Err(EntryProblem::OutOfRange("activity_per_day"));
                        }
                        Some(activity)
                    }
                };
                let expires_at_ms = expiry(uint(key::EXPIRES_AT_MS, "expires_at_ms")?)?;
                let algorithmic = match field(key::ALGORITHMIC) {
                    None => false,
                    Some(Value::Bool(flag)) => *flag,
                    Some(_) => return Err(EntryProblem::BadField("algorithmic")),
                };
                Op::Add(Add {
                    token,
                    kind,
                    category: category.to_owned(),
                    handling,
                    evaluation,
                    activity_per_day,
                    expires_at_ms,
                    algorithmic,
                })
            }
            op::RETRACT => Op::Retract(Retract {
                token,
                reason: RetractReason::from_code(uint(key::REASON, "reason")?)
                    .ok_or(EntryProblem::OutOfRange("reason"))?,
            }),
            op::STATUS => Op::Status(StatusUpdate {
                token,
                status: Status::from_code(uint(key::STATUS, "status")?)
                    .ok_or(EntryProblem::OutOfRange("status"))?,
                at_ms: uint(key::STATUS_AT_MS, "status_at_ms")?,
            }),
            op::TAG => Op::Tag(Tag {
                token,
                community: field(key::COMMUNITY)
                    .and_then(as_array)
                    .ok_or(EntryProblem::BadField("community"))?,
                expires_at_ms: expiry(uint(key::EXPIRES_AT_MS, "expires_at_ms")?)?,
            }),
            unknown => return Err(EntryProblem::UnknownOp(unknown)),
        };
        Ok(Entry { salt, op })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add() -> Entry {
        Entry {
            salt: [1; 16],
            op: Op::Add(Add {
                token: Token([2; 32]),
                kind: Kind::Account,
                category: "terrorism/propaganda".into(),
                handling: Handling::H1,
                evaluation: Evaluation::new('B', 2).unwrap(),
                activity_per_day: Some(40),
                expires_at_ms: 2_000,
                algorithmic: false,
            }),
        }
    }

    fn tag() -> Entry {
        Entry {
            salt: [7; 16],
            op: Op::Tag(Tag { token: Token([8; 32]), community: [9; 16], expires_at_ms: 2_000 }),
        }
    }

    #[test]
    fn every_op_round_trips() {
        let entries = [
            add(),
            Entry {
                salt: [3; 16],
                op: Op::Retract(Retract {
                    token: Token([4; 32]),
                    reason: RetractReason::Erroneous,
                }),
            },
            Entry {
                salt: [5; 16],
                op: Op::Status(StatusUpdate {
                    token: Token([6; 32]),
                    status: Status::Removed,
                    at_ms: 77,
                }),
            },
            tag(),
            Entry {
                salt: [1; 16],
                op: Op::Add(Add {
                    algorithmic: true,
                    ..match add().op {
                        Op::Add(add) => add,
                        _ => unreachable!(),
                    }
                }),
            },
        ];
        for entry in entries {
            let bytes = entry.encode();
            assert!(bytes.len() <= MAX_ENTRY_BYTES);
            assert_eq!(Entry::decode(&bytes, 1_000), Ok(entry));
        }
    }

    #[test]
    fn expiry_must_lie_within_retention_after_creation() {
        let bytes = add().encode();
        assert_eq!(Entry::decode(&bytes, 2_000), Err(EntryProblem::OutOfRange("expires_at_ms")));
        let far = 2_000 - MAX_RETENTION_MS.min(1_999) - 1;
        assert!(Entry::decode(&bytes, far).is_ok());
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_ops_reported() {
        let mut value = cbor::decode(&add().encode()).unwrap();
        if let Value::Map(pairs) = &mut value {
            pairs.push((Value::from(99u64), Value::Text("later".into())));
        }
        assert!(Entry::decode(&cbor::encode(&value), 1_000).is_ok());
        if let Value::Map(pairs) = &mut value {
            pairs[0].1 = Value::from(42u64);
        }
        assert_eq!(Entry::decode(&cbor::encode(&value), 1_000), Err(EntryProblem::UnknownOp(42)));
    }

    #[test]
    fn a_tag_is_bounded_like_an_add_and_needs_its_pseudonym() {
        let bytes = tag().encode();
        assert_eq!(Entry::decode(&bytes, 2_000), Err(EntryProblem::OutOfRange("expires_at_ms")));
        let expires = MAX_RETENTION_MS + 5_000;
        let far = Entry {
            salt: [7; 16],
            op: Op::Tag(Tag { token: Token([8; 32]), community: [9; 16], expires_at_ms: expires }),
        }
        .encode();
        assert_eq!(Entry::decode(&far, 4_999), Err(EntryProblem::OutOfRange("expires_at_ms")));
        assert!(Entry::decode(&far, 5_000).is_ok());
        let mut value = cbor::decode(&bytes).unwrap();
        let set = |value: &mut Value, wanted: u64, to: Option<Value>| {
            if let Value::Map(pairs) = value {
                pairs.retain(|(k, _)| uint_key(k) != Some(wanted));
                if let Some(to) = to {
                    pairs.push((Value::from(wanted), to));
                    pairs.sort_by_key(|(k, _)| uint_key(k));
                }
            }
        };
        set(&mut value, key::COMMUNITY, Some(Value::Bytes(vec![9; 15])));
        let short = cbor::encode(&value);
        assert_eq!(Entry::decode(&short, 1_000), Err(EntryProblem::BadField("community")));
        set(&mut value, key::COMMUNITY, None);
        let missing = cbor::encode(&value);
        assert_eq!(Entry::decode(&missing, 1_000), Err(EntryProblem::BadField("community")));
        // An analyst's add carries no marker; a non-boolean marker is refused.
        let Value::Map(pairs) = cbor::decode(&add().encode()).unwrap() else { unreachable!() };
        assert!(pairs.iter().all(|(k, _)| uint_key(k) != Some(key::ALGORITHMIC)));
        let mut marked = cbor::decode(&add().encode()).unwrap();
        set(&mut marked, key::ALGORITHMIC, Some(Value::from(1u64)));
        assert_eq!(
            Entry::decode(&cbor::encode(&marked), 1_000),
            Err(EntryProblem::BadField("algorithmic"))
        );
    }

    #[test]
    fn a_removal_order_has_code_4_and_an_unknown_status_code_is_out_of_range() {
        let ordered = Entry {
            salt: [7; 16],
            op: Op::Status(StatusUpdate {
                token: Token([8; 32]),
                status: Status::Ordered,
                at_ms: 9,
            }),
        };
        assert_eq!(Status::Ordered.code(), 4);
        assert_eq!("ordered".parse::<Status>(), Ok(Status::Ordered));
        assert_eq!(Entry::decode(&ordered.encode(), 1_000), Ok(ordered.clone()));
        // What a receiver that does not know a status code does with it (an older version
        // meeting `ordered` does the same): the entry is out of range and skipped.
        let mut value = cbor::decode(&ordered.encode()).unwrap();
        if let Value::Map(pairs) = &mut value {
            for (key, field) in pairs.iter_mut() {
                if uint_key(key) == Some(key::STATUS) {
                    *field = Value::from(5u64);
                }
            }
        }
        assert_eq!(
            Entry::decode(&cbor::encode(&value), 1_000),
            Err(EntryProblem::OutOfRange("status"))
        );
    }

    #[test]
    fn evaluation_parses_the_admiralty_scale_only() {
        assert_eq!("X4".parse::<Evaluation>().unwrap().to_string(), "X4");
        for bad in ["", "B", "B5", "D1", "b2", "B22"] {
            assert!(bad.parse::<Evaluation>().is_err(), "{bad}");
        }
    }

    #[test]
    fn category_alphabet() {
        assert!(is_valid_category("terrorism/propaganda"));
        assert!(!is_valid_category("Terrorism"));
        assert!(!is_valid_category("/x"));
        assert!(!is_valid_category(&"a".repeat(MAX_CATEGORY_BYTES + 1)));
    }
}
