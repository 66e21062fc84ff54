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
    // What the protocol writes is read in one pass; anything else (an item the pass leaves,
    // or bytes that are not deterministic CBOR at all) is read by `ciborium` and judged by
    // encoding it again, which decides between the two errors.
    if let Some((value, end)) = read(bytes, 0, 0)
        && end == bytes.len()
    {
        return Ok(value);
    }
    decode_by_encoding(bytes)
}

/// The general path: `ciborium` reads the item, which is deterministic only if encoding it
/// again gives the same bytes and its maps' keys ascend.
fn decode_by_encoding(bytes: &[u8]) -> Result<Value, CborError> {
    let value: Value = ciborium::de::from_reader_with_recursion_limit(bytes, MAX_CBOR_DEPTH)
        .map_err(|_| CborError::NotWellFormed)?;
    if encode(&value) != bytes || !keys_sorted(&value) {
        return Err(CborError::NotDeterministic);
    }
    Ok(value)
}

/// How deep [`read`] nests containers before it leaves the item to `ciborium`: the protocol's
/// items nest three deep at most, and half of [`MAX_CBOR_DEPTH`] keeps well inside what
/// `ciborium` reads.
const READ_DEPTH: usize = MAX_CBOR_DEPTH / 2;

/// The most items or pairs [`read`] reserves room for before it has read them: a count comes
/// from the bytes, so room past this grows only as items arrive.
const RESERVE: usize = 64;

/// Reads the item at `at` in `bytes`, if it is deterministic CBOR made only of what the
/// protocol writes (unsigned and negative integers, byte and text strings, arrays, maps,
/// `false`, `true`, `null`), containers nested at most [`READ_DEPTH`] deep: its value and where
/// it ends.
/// `None` for anything else, including every error, which [`decode`] then leaves to
/// `ciborium`. What it reads is checked as the deterministic encoding asks (the shortest
/// head, definite lengths, map keys whose encodings ascend strictly bytewise), so its value
/// is the one `ciborium` reads and writes back byte for byte (a property test holds the two
/// paths equal).
fn read(bytes: &[u8], at: usize, depth: usize) -> Option<(Value, usize)> {
    let initial = *bytes.get(at)?;
    let (major, info) = (initial >> 5, initial & 0x1f);
    let (argument, next) = match info {
        0..=23 => (u64::from(info), at + 1),
        24..=27 if major != 7 => {
            let width = 1usize << (info - 24);
            let field = bytes.get(at + 1..at + 1 + width)?;
            let argument = field.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
            // The shortest head: each width only for what the narrower one cannot hold.
            let least = [24, 0x100, 0x1_0000, 0x1_0000_0000][info as usize - 24];
            (argument >= least).then_some((argument, at + 1 + width))?
        }
        _ => return None,
    };
    // Every item takes a byte at least (a pair two): a count past that is bytes that end
    // early, left to `ciborium` to call so.
    let left = bytes.len() - next;
    match major {
        0 => Some((Value::from(argument), next)),
        1 => {
            let integer = ciborium::value::Integer::try_from(-1 - i128::from(argument)).ok()?;
            Some((Value::Integer(integer), next))
        }
        2 | 3 => {
            let len = usize::try_from(argument).ok().filter(|&len| len <= left)?;
            let content = bytes[next..next + len].to_vec();
            let value = if major == 2 {
                Value::Bytes(content)
            } else {
                Value::Text(String::from_utf8(content).ok()?)
            };
            Some((value, next + len))
        }
        4 | 5 if depth < READ_DEPTH => {
            let most = if major == 4 { left } else { left / 2 };
            let count = usize::try_from(argument).ok().filter(|&count| count <= most)?;
            let mut at = next;
            if major == 4 {
                let mut items = Vec::with_capacity(count.min(RESERVE));
                for _ in 0..count {
                    let (item, end) = read(bytes, at, depth + 1)?;
                    items.push(item);
                    at = end;
                }
                return Some((Value::Array(items), at));
            }
            let mut pairs = Vec::with_capacity(count.min(RESERVE));
            let mut previous: &[u8] = &[];
            for index in 0..count {
                let (key, key_end) = read(bytes, at, depth + 1)?;
                let encoded = &bytes[at..key_end];
                if index > 0 && previous >= encoded {
                    return None;
                }
                previous = encoded;
                let (value, end) = read(bytes, key_end, depth + 1)?;
                pairs.push((key, value));
                at = end;
            }
            Some((Value::Map(pairs), at))
        }
        // `false`, `true` and `null`.
        7 => match info {
            20 => Some((Value::Bool(false), next)),
            21 => Some((Value::Bool(true), next)),
            22 => Some((Value::Null, next)),
            _ => None,
        },
        _ => None,
    }
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
    fn refuses_longer_heads_and_indefinite_lengths_inside_maps_and_arrays() {
        // {1: h'00'} with the byte string's length in a second byte, and the key in two.
        assert_eq!(decode(&[0xa1, 0x01, 0x41, 0x00]).map(|_| ()), Ok(()));
        assert_eq!(decode(&[0xa1, 0x01, 0x58, 0x01, 0x00]), Err(CborError::NotDeterministic));
        assert_eq!(decode(&[0xa1, 0x18, 0x01, 0x41, 0x00]), Err(CborError::NotDeterministic));
        // [[-1]] with -1 in two bytes; an indefinite text inside an array.
        assert_eq!(decode(&[0x81, 0x81, 0x38, 0x00]), Err(CborError::NotDeterministic));
        assert_eq!(decode(&[0x81, 0x7f, 0x61, 0x61, 0xff]), Err(CborError::NotDeterministic));
        // Keys compared on their encodings: 10 (0x0a) before "a" (0x61 0x61), not after.
        assert!(decode(&[0xa2, 0x0a, 0xf6, 0x61, 0x61, 0xf6]).is_ok());
        assert_eq!(decode(&[0xa2, 0x61, 0x61, 0xf6, 0x0a, 0xf6]), Err(CborError::NotDeterministic));
        // Junk is not well-formed, even where a longer head comes before the end it lacks.
        assert_eq!(decode(&[0x82, 0x18, 0x01]), Err(CborError::NotWellFormed));
        // Deeper than the one-pass read goes, `ciborium` reads it, as before, up to its own
        // limit; past that, neither reads it.
        for depth in [7, 8, 9, 15, 16, 17, 18] {
            let nested = [vec![0x81; depth], vec![0x00]].concat();
            assert_eq!(read(&nested, 0, 0).is_some(), depth <= READ_DEPTH, "{depth}");
            assert_eq!(decode(&nested), decode_by_encoding(&nested), "{depth}");
        }
        assert!(decode(&[vec![0x81; 12], vec![0x00]].concat()).is_ok());
        // A float is judged by encoding it again, as before.
        let half = encode(&Value::Float(0.5));
        assert!(read(&half, 0, 0).is_none());
        assert_eq!(decode(&half), decode_by_encoding(&half));
        // Nested maps each claiming more pairs than the bytes left: read by neither path.
        let mut claims = Vec::new();
        for _ in 0..8 {
            claims.extend([0xb9, 0xff, 0xff]);
        }
        claims.resize(70_000, 0);
        assert_eq!(decode(&claims), Err(CborError::NotWellFormed));
    }

    /// Whether `value` holds only what the one-pass read takes (no tag, no float).
    fn protocol_kinds_only(value: &Value) -> bool {
        match value {
            Value::Tag(..) | Value::Float(_) => false,
            Value::Array(items) => items.iter().all(protocol_kinds_only),
            Value::Map(pairs) => {
                pairs.iter().all(|(k, v)| protocol_kinds_only(k) && protocol_kinds_only(v))
            }
            _ => true,
        }
    }

    /// A value of every kind the protocol writes, some it does not (tags, floats), nested.
    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-(1i128 << 64)..-(1i128 << 63))
                .prop_map(|n| Value::Integer(n.try_into().unwrap_or_else(|_| 0.into()))),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            "\\PC{0,30}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            (-1e6f32..1e6f32).prop_map(|f| Value::Float(f64::from(f))),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner.clone()), 0..8)
                    .prop_map(Value::Map),
                proptest::collection::btree_map(any::<u16>(), inner.clone(), 0..8).prop_map(
                    |map| Value::Map(map.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
                ),
                (0u64..300, inner).prop_map(|(tag, value)| Value::Tag(tag, Box::new(value))),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// The one-pass read answers as `ciborium` and encoding again did, on values written
        /// by `ciborium` (sorted or not) and on them with one byte changed, inserted or removed.
        #[test]
        fn the_one_pass_read_answers_as_encoding_again_did(
            value in any_value(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
            how in 0u8..4,
        ) {
            let mut bytes = encode(&value);
            proptest::prop_assert_eq!(decode(&bytes), decode_by_encoding(&bytes));
            // What the protocol writes is read in one pass, not left to the fallback.
            if protocol_kinds_only(&value) && decode(&bytes).is_ok() {
                proptest::prop_assert!(read(&bytes, 0, 0).is_some());
            }
            let i = at.index(bytes.len() + 1);
            match how {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.push(byte),
            }
            proptest::prop_assert_eq!(decode(&bytes), decode_by_encoding(&bytes));
        }
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = [vec![0x81; 100], vec![0x00]].concat();
        assert_eq!(decode(&deep), Err(CborError::NotWellFormed));
    }
}
