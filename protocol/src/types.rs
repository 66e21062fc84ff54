//! Fixed-size byte newtypes that cross the wire: ids, hashes, tokens, keys.

use std::fmt;
use std::str::FromStr;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Error returned when parsing one of the fixed-size hex newtypes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected_len} bytes as {} hex digits", expected_len * 2)]
pub struct ParseHexError {
    /// Number of bytes the type holds.
    pub expected_len: usize,
}

/// Defines a 32-byte newtype with hex `Display`/`FromStr` and a short, log-safe prefix.
macro_rules! bytes32 {
    ($(#[$doc:meta])* $name:ident) => {
        bytes32!(@common $(#[$doc])* $name);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({}…)"), self.short())
            }
        }
    };
    (@common $(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(&self.0)
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_bytes(Bytes32Visitor).map(Self)
            }
        }

        impl $name {
            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first four bytes as hex: enough to tell values apart in logs, too
            /// short to be looked up or brute-forced.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = ParseHexError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(s.trim(), &mut bytes)
                    .map_err(|_| ParseHexError { expected_len: 32 })?;
                Ok(Self(bytes))
            }
        }
    };
}

bytes32!(
    /// Identifies one federation; bound into every token key and every manifest signature
    /// (as COSE external AAD), so nothing signed or hashed for one federation is valid in another.
    FederationId
);
/// The federation's shared token secret. Never logged, never sent over the mesh.
///
/// Not `Copy`: a copy is made only by an explicit `clone`, and every value's bytes are wiped
/// when it is dropped (`Zeroize`, `ZeroizeOnDrop`). Its `Debug` shows nothing of it, and it has
/// no `Display`: its hex form is written only where a secret file is, through
/// [`FederationSecret::as_bytes`]. Its bytes are private (made with `From<[u8; 32]>` or
/// parsed), and two secrets compare in constant time.
#[derive(Clone)]
pub struct FederationSecret([u8; 32]);

impl FederationSecret {
    /// The secret of these bytes (a `const` form of `From<[u8; 32]>`).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The raw bytes, to fill in place (opening a sealed copy writes straight into them).
    pub(crate) const fn as_bytes_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

impl PartialEq for FederationSecret {
    /// In constant time: every byte is compared, whatever differs first.
    fn eq(&self, other: &Self) -> bool {
        let difference = self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        core::hint::black_box(difference) == 0
    }
}

impl Eq for FederationSecret {}

impl Zeroize for FederationSecret {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for FederationSecret {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for FederationSecret {}

impl fmt::Debug for FederationSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FederationSecret(…)")
    }
}

impl From<[u8; 32]> for FederationSecret {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl FromStr for FederationSecret {
    type Err = ParseHexError;

    /// Parses 64 hex digits straight into the secret, with no other copy of its bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut secret = Self([0; 32]);
        hex::decode_to_slice(s.trim(), &mut secret.0)
            .map_err(|_| ParseHexError { expected_len: 32 })?;
        Ok(secret)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for FederationSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for FederationSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(Bytes32Visitor).map(Self)
    }
}
bytes32!(
    /// `BLAKE3-keyed(epoch_key, canonical form)`: the only form an identifier leaves a node in.
    /// Sensitive: anyone holding the federation secret can test guesses against it, so logs show
    /// at most [`Token::short`].
    Token
);
bytes32!(
    /// A batch's identity: chain link, gossip message id and dedup key, computed over exactly
    /// the signed bytes (see [`crate::batch_hash`]).
    BatchHash
);
bytes32!(
    /// The digest of one entry's encoded bytes, listed in the signed manifest.
    EntryDigest
);

impl BatchHash {
    /// The `prev` of the first batch of generation 1: no batch before it.
    pub const ZERO: Self = Self([0; 32]);
}

/// Reads exactly 32 bytes from a serde byte string.
#[cfg(feature = "serde")]
struct Bytes32Visitor;

#[cfg(feature = "serde")]
impl serde::de::Visitor<'_> for Bytes32Visitor {
    type Value = [u8; 32];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("32 bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        bytes.try_into().map_err(|_| E::invalid_length(bytes.len(), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only for types whose every value is wiped when dropped.
    fn wiped_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn the_secret_is_wiped_on_drop_and_shows_nothing() {
        wiped_on_drop::<FederationSecret>();
        let secret = FederationSecret::from_bytes([0xab; 32]);
        let shown = format!("{secret:?} {:?}", Some(secret.clone()));
        assert_eq!(shown, "FederationSecret(…) Some(FederationSecret(…))");
        let mut wiped = secret.clone();
        wiped.zeroize();
        assert_eq!(wiped.as_bytes(), &[0; 32]);
        assert_eq!(secret.as_bytes(), &[0xab; 32], "a clone is a copy of its own");
    }

    #[test]
    fn the_secret_parses_from_hex_and_refuses_anything_else() {
        let parsed: FederationSecret = format!(" {} \n", "0f".repeat(32)).parse().unwrap();
        assert_eq!(parsed, FederationSecret::from_bytes([0x0f; 32]));
        let short = "0f".repeat(31).parse::<FederationSecret>();
        assert_eq!(short.map(|_| ()), Err(ParseHexError { expected_len: 32 }));
        assert!("zz".repeat(32).parse::<FederationSecret>().is_err());
    }
}
