//! The sync protocol's messages (`/crossmatch/sync/1`) and their limits, as CBOR via serde.
//!
//! Byte fields are CBOR byte strings, never arrays of integers: the helpers below make serde
//! call `serialize_bytes`, and refuse anything but a byte string of the expected length.

use serde::{Deserialize, Serialize};

/// The request-response protocol id of sync.
pub const SYNC_PROTOCOL: &str = "/crossmatch/sync/1";

/// Largest encoded sync request read from a peer. The largest honest request, a `range`, is
/// under 100 bytes; 4 KiB leaves room for later fields and keeps a flood of requests cheap.
pub const MAX_SYNC_REQUEST_BYTES: u64 = 4 * 1024;

/// Largest encoded sync response read from a peer: 1 MiB holds 18 batches at the 56 KiB batch
/// limit, and keeps what one slow or hostile peer can make this node buffer small.
pub const MAX_SYNC_RESPONSE_BYTES: u64 = 1024 * 1024;

/// Most batches one `range` request may ask for: enough to page through a feed in a few round
/// trips, few enough that the reply is bounded by [`MAX_SYNC_RESPONSE_BYTES`] anyway.
pub const MAX_RANGE_BATCHES: u32 = 256;

/// A sync request, sent by a member to one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Every origin's head that the peer knows, each as its signed manifest.
    #[serde(rename = "heads")]
    Heads,
    /// Up to `max` batches of one origin's feed in one generation, from `from_seq` on.
    #[serde(rename = "range")]
    Range {
        /// The origin's Ed25519 public key.
        #[serde(with = "key_bytes")]
        origin: [u8; 32],
        /// The feed's generation.
        generation: u32,
        /// The first seq wanted.
        from_seq: u64,
        /// The most batches wanted, 1 ..= [`MAX_RANGE_BATCHES`].
        max: u32,
    },
    /// Every fork the peer holds evidence of.
    #[serde(rename = "forks")]
    Forks,
}

impl SyncRequest {
    /// Whether the request's values are within the protocol's bounds.
    pub fn is_well_formed(&self) -> bool {
        match self {
            SyncRequest::Heads | SyncRequest::Forks => true,
            SyncRequest::Range { max, from_seq, .. } => {
                (1..=MAX_RANGE_BATCHES).contains(max) && *from_seq >= 1
            }
        }
    }
}

/// A sync response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Answer to `heads`: one signed manifest (COSE_Sign1 bytes) per origin head.
    #[serde(rename = "heads")]
    Heads(#[serde(with = "byte_strings")] Vec<Vec<u8>>),
    /// Answer to `range`: batch wire forms in seq order, redacted entries as null.
    #[serde(rename = "batches")]
    Batches(#[serde(with = "byte_strings")] Vec<Vec<u8>>),
    /// Answer to `forks`: fork evidence, each `[manifest bstr, manifest bstr]`.
    #[serde(rename = "forks")]
    Forks(#[serde(with = "byte_strings")] Vec<Vec<u8>>),
    /// The peer will not answer; the reason is short and fixed (`busy`, `roster mismatch`, …).
    #[serde(rename = "refused")]
    Refused(String),
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
            | SyncResponse::Forks(items) => items,
            SyncResponse::Refused(reason) => return 32 + 9 + reason.len(),
        };
        items.iter().fold(32usize, |total, item| total.saturating_add(9 + item.len()))
    }
}

/// `[u8; 32]` as a CBOR byte string.
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
        impl<'de> de::Visitor<'de> for KeyVisitor {
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
            impl<'de> de::Visitor<'de> for BytesVisitor {
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

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(value: &T) -> (Vec<u8>, T) {
        let mut bytes = Vec::new();
        ciborium::into_writer(value, &mut bytes).expect("encodes");
        let back = ciborium::from_reader(bytes.as_slice()).expect("decodes");
        (bytes, back)
    }

    #[test]
    fn requests_round_trip_with_byte_strings() {
        let request = SyncRequest::Range { origin: [7; 32], generation: 2, from_seq: 5, max: 16 };
        let (bytes, back) = round_trip(&request);
        assert_eq!(back, request);
        // The origin is one byte string (0x58 0x20 + 32 bytes), not an array of 32 integers.
        let needle = [&[0x58, 0x20][..], &[7; 32][..]].concat();
        assert!(bytes.windows(needle.len()).any(|window| window == needle));
        assert!(bytes.len() < 100);
        assert_eq!(round_trip(&SyncRequest::Heads).1, SyncRequest::Heads);
    }

    #[test]
    fn responses_round_trip_and_bound_their_size() {
        let response = SyncResponse::Batches(vec![vec![1; 300], vec![], vec![255; 70_000]]);
        let (bytes, back) = round_trip(&response);
        assert_eq!(back, response);
        assert!(bytes.len() <= response.encoded_len_max());
        assert!(bytes.len() < 70_400);
        let refused = SyncResponse::Refused("busy".into());
        let (bytes, back) = round_trip(&refused);
        assert_eq!(back, refused);
        assert!(bytes.len() <= refused.encoded_len_max());
    }

    #[test]
    fn an_origin_of_the_wrong_length_is_refused() {
        #[derive(Serialize)]
        enum Fake {
            #[serde(rename = "range")]
            Range { origin: serde_bytes_like::Bytes, generation: u32, from_seq: u64, max: u32 },
        }
        mod serde_bytes_like {
            pub struct Bytes(pub Vec<u8>);
            impl serde::Serialize for Bytes {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_bytes(&self.0)
                }
            }
        }
        let fake = Fake::Range {
            origin: serde_bytes_like::Bytes(vec![1; 31]),
            generation: 1,
            from_seq: 1,
            max: 1,
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&fake, &mut bytes).expect("encodes");
        assert!(ciborium::from_reader::<SyncRequest, _>(bytes.as_slice()).is_err());
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
    }
}
