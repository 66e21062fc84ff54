//! Positional encodings for the values the store keeps one of per remote entry.
//!
//! A remote `add` leaves a [`RemoteAdd`](super::RemoteAdd) per token while it lives, and an
//! [`Identification`](crate::engine::takedowns::Identification) once it is gone (until then
//! the add is the token's identification source): a million entries leave a million of one
//! or the other. Written as CBOR maps, over half their bytes were field names. They are now written
//! as CBOR arrays, the fields in a fixed order, and read in either form: values written before
//! the change stay as they are until they are next rewritten, so no migration is needed.
//!
//! A positional form is fixed once written, but for fields appended at its end: a field a
//! form gains goes last, with a default that tells the shorter form written before apart
//! (`RemoteAdd` gained its latest receipt so, read as its first receipt when absent); any
//! other change is a new form, told apart from these on reading, as these are told apart from
//! the maps. The values that embed a `RemoteAdd` (an alert's counterparts, and the event log's
//! alerts) change form with it. Downgrading is not supported: a build from before these forms
//! opens the store but reports every such value as damage. One from before a field was
//! appended reads a stored value of its own without the field (a build from before remote
//! adds became their tokens' identification sources would see none for a live add), but one
//! embedded in another (an alert's counterparts, the event log) as damage.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

/// Reads a value written either as a map (`Named`, the older form) or as an array
/// (`Positional`, the form written now).
pub(crate) fn named_or_positional<'de, D, Named, Positional, T>(
    deserializer: D,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    Named: Deserialize<'de> + Into<T>,
    Positional: Deserialize<'de> + Into<T>,
{
    struct Either<N, P, T>(PhantomData<(N, P, T)>);

    impl<'de, N, P, T> Visitor<'de> for Either<N, P, T>
    where
        N: Deserialize<'de> + Into<T>,
        P: Deserialize<'de> + Into<T>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map or an array")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            N::deserialize(MapAccessDeserializer::new(map)).map(Into::into)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
            P::deserialize(SeqAccessDeserializer::new(seq)).map(Into::into)
        }
    }

    deserializer.deserialize_any(Either::<Named, Positional, T>(PhantomData))
}

/// `[u8; 32]` as a CBOR byte string (34 bytes), not serde's array of 32 integers (up to 65).
pub(crate) mod bytes32 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        bytes: &[u8; 32],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; 32], D::Error> {
        struct Bytes32;
        impl Visitor<'_> for Bytes32 {
            type Value = [u8; 32];
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte string of 32 bytes")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<[u8; 32], E> {
                <[u8; 32]>::try_from(bytes).map_err(|_| E::invalid_length(bytes.len(), &self))
            }
        }
        deserializer.deserialize_bytes(Bytes32)
    }
}

/// Writes `value` in its positional form.
pub(crate) fn positional<T, P, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Clone + Into<P>,
    P: Serialize,
    S: Serializer,
{
    value.clone().into().serialize(serializer)
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use crate::engine::takedowns::{Identification, IdentificationSource};
    use crate::store::encode;

    /// The form written before: serde's derive on the named structs.
    #[derive(Serialize)]
    struct NamedIdentification {
        sources: Vec<NamedSource>,
        touched_at_ms: u64,
    }

    #[derive(Serialize)]
    struct NamedSource {
        origin: [u8; 32],
        learned_at_ms: u64,
        created_at_ms: u64,
    }

    fn identification() -> Identification {
        let source = |byte, at| IdentificationSource {
            origin: [byte; 32],
            learned_at_ms: at,
            created_at_ms: at - 5,
        };
        Identification {
            sources: vec![source(0xa1, 1_800_000_000_000), source(0xff, 1_800_000_009_000)],
            touched_at_ms: 1_800_000_009_500,
        }
    }

    #[test]
    fn identifications_are_written_as_arrays_and_the_named_form_still_reads() {
        let identification = identification();
        let named = encode(&NamedIdentification {
            sources: identification
                .sources
                .iter()
                .map(|s| NamedSource {
                    origin: s.origin,
                    learned_at_ms: s.learned_at_ms,
                    created_at_ms: s.created_at_ms,
                })
                .collect(),
            touched_at_ms: identification.touched_at_ms,
        });
        let read: Identification = ciborium::de::from_reader(&named[..]).expect("named form");
        assert_eq!(read, identification);
        let bytes = encode(&identification);
        assert_eq!(bytes[0], 0x82, "an array: the sources and the time");
        assert_eq!(bytes.len(), 1 + 1 + 2 * (1 + 34 + 9 + 9) + 9, "origins as byte strings");
        assert!(
            bytes.len() * 2 < named.len(),
            "{} bytes against {} named",
            bytes.len(),
            named.len()
        );
        let read: Identification = ciborium::de::from_reader(&bytes[..]).expect("array form");
        assert_eq!(read, identification);
    }

    #[test]
    fn the_named_form_without_its_time_still_reads() {
        #[derive(Serialize)]
        struct Untouched {
            sources: Vec<NamedSource>,
        }
        let source = NamedSource { origin: [7; 32], learned_at_ms: 10, created_at_ms: 9 };
        let bytes = encode(&Untouched { sources: vec![source] });
        let read: Identification = ciborium::de::from_reader(&bytes[..]).expect("named form");
        assert_eq!((read.sources.len(), read.touched_at_ms), (1, 0));
    }

    #[test]
    fn a_wrong_origin_length_is_damage() {
        use ciborium::value::Value;
        for length in [31, 32, 33] {
            let source = Value::Array(vec![
                Value::Bytes(vec![7; length]),
                Value::Integer(10.into()),
                Value::Integer(9.into()),
            ]);
            let value = Value::Array(vec![Value::Array(vec![source]), Value::Integer(11.into())]);
            let mut bytes = Vec::new();
            ciborium::ser::into_writer(&value, &mut bytes).expect("encodes");
            let read = ciborium::de::from_reader::<Identification, _>(&bytes[..]);
            assert_eq!(read.is_ok(), length == 32, "an origin of {length} bytes");
        }
    }
}
