//! Deterministic CBOR (RFC 8949 §4.2.1) on top of `ciborium::Value`: encoding, and decoding
//! that refuses anything but the one deterministic encoding of a value.

use ciborium::Value;

use crate::limits::MAX_CBOR_DEPTH;

/// Why bytes are not deterministic CBOR of an acceptable shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// Not well-formed CBOR, or nested deeper than [`MAX_CBOR_DEPTH`].
    #[error("not well-formed cbor (or nested too deep)")]
    NotWellFormed,
    /// Well-formed, but not the deterministic encoding: a longer-than-needed length or integer,
    /// an indefinite length, unsorted or duplicate map keys, or trailing bytes.
    #[error("cbor is not in deterministic encoding")]
    NotDeterministic,
}

/// Encodes a value. Definite lengths and shortest integer forms are what `ciborium` writes;
/// callers build maps with keys in ascending order, which [`decode`] enforces on the way in.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and every Value can be encoded.
    if ciborium::ser::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Decodes exactly one deterministic CBOR item, refusing every other encoding of it.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let value: Value = ciborium::de::from_reader_with_recursion_limit(bytes, MAX_CBOR_DEPTH)
        .map_err(|_| CborError::NotWellFormed)?;
    if encode(&value) != bytes || !keys_sorted(&value) {
        return Err(CborError::NotDeterministic);
    }
    Ok(value)
}

/// True if every map in `value` has strictly ascending keys (bytewise on their encodings),
/// which also rules out duplicate keys.
fn keys_sorted(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().all(keys_sorted),
        Value::Tag(_, inner) => keys_sorted(inner),
        Value::Map(pairs) => {
            pairs.windows(2).all(|pair| key_before(&pair[0].0, &pair[1].0))
                && pairs.iter().all(|(key, value)| keys_sorted(key) && keys_sorted(value))
        }
        _ => true,
    }
}

/// Whether `a`'s encoding sorts strictly before `b`'s. Two unsigned integers (every key of
/// this protocol's maps) are compared as numbers, without encoding them: shortest-form
/// encodings of unsigned integers order bytewise as the integers do, because a longer form
/// has a larger first byte and the bytes after it are big-endian.
fn key_before(a: &Value, b: &Value) -> bool {
    match (as_u64(a), as_u64(b)) {
        (Some(a), Some(b)) => a < b,
        _ => encode(a) < encode(b),
    }
}

/// Reads an unsigned integer key from a map of small unsigned keys; unknown keys are skipped
/// by the callers (the extension rule).
pub fn uint_key(key: &Value) -> Option<u64> {
    key.as_integer().and_then(|i| u64::try_from(i).ok())
}

/// A value as an unsigned integer.
pub fn as_u64(value: &Value) -> Option<u64> {
    value.as_integer().and_then(|i| u64::try_from(i).ok())
}

/// A value as a byte string of exactly `N` bytes.
pub fn as_array<const N: usize>(value: &Value) -> Option<[u8; N]> {
    value.as_bytes().and_then(|b| <[u8; N]>::try_from(b.as_slice()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_shortest_integers_and_lengths() {
        assert_eq!(decode(&[0x18, 0x05]), Err(CborError::NotDeterministic)); // 5 in two bytes
        assert_eq!(decode(&[0x05]), Ok(Value::from(5u8)));
        assert_eq!(decode(&[0x59, 0x00, 0x01, 0xff]), Err(CborError::NotDeterministic));
        assert_eq!(decode(&[0x9f, 0x01, 0xff]), Err(CborError::NotDeterministic)); // indefinite
    }

    #[test]
    fn refuses_unsorted_duplicate_keys_and_trailing_bytes() {
        assert_eq!(decode(&[0xa2, 0x02, 0x00, 0x01, 0x00]), Err(CborError::NotDeterministic));
        assert_eq!(decode(&[0xa2, 0x01, 0x00, 0x01, 0x00]), Err(CborError::NotDeterministic));
        assert!(decode(&[0xa2, 0x01, 0x00, 0x02, 0x00]).is_ok());
        assert_eq!(decode(&[0x01, 0x01]), Err(CborError::NotDeterministic));
    }

    #[test]
    fn unsigned_keys_compare_as_their_encodings_do() {
        // Both sides of every boundary between encoded lengths.
        let edges = [0, 1, 23, 24, 25, 255, 256, 65_535, 65_536, u64::from(u32::MAX), 1 << 32]
            .into_iter()
            .chain([u64::MAX - 1, u64::MAX]);
        for a in edges.clone() {
            for b in edges.clone() {
                let (a, b) = (Value::from(a), Value::from(b));
                assert_eq!(key_before(&a, &b), encode(&a) < encode(&b), "{a:?} {b:?}");
            }
        }
        // A text key against an integer key is compared by encoding.
        let (text, int) = (Value::Text("a".into()), Value::from(1u8));
        assert!(key_before(&int, &text) && !key_before(&text, &int));
    }

    /// An unsigned integer of any encoded length, each length as likely as another.
    fn any_size_class() -> impl proptest::strategy::Strategy<Value = u64> {
        proptest::prop_oneof![
            0..24u64,
            24..256u64,
            256..65_536u64,
            65_536..1u64 << 32,
            (1u64 << 32)..
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_two_unsigned_keys_compare_as_their_encodings_do(
            a in any_size_class(),
            b in any_size_class(),
        ) {
            let (a, b) = (Value::from(a), Value::from(b));
            proptest::prop_assert_eq!(key_before(&a, &b), encode(&a) < encode(&b));
        }
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = [vec![0x81; 100], vec![0x00]].concat();
        assert_eq!(decode(&deep), Err(CborError::NotWellFormed));
    }
}
