//! Ed25519 member keys and the fingerprints people read to each other over the phone.

use std::fmt;
use std::str::FromStr;

use crate::types::{FederationSecret, ParseHexError};

/// Domain of key and secret fingerprints.
pub const FINGERPRINT_CONTEXT: &str = "crossmatch fingerprint v1";

/// A member's Ed25519 public key: its roster identity, its manifest `kid` and its mesh identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parses 32 bytes as a compressed Edwards point, refusing invalid and small-order
    /// (weak) keys, for which signatures prove nothing.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
        if key.is_weak() {
            return Err(KeyError::WeakKey);
        }
        Ok(Self(key))
    }

    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Checks an Ed25519 signature with `verify_strict` (no malleable encodings, no weak keys).
    pub fn verify_strict(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }

    /// The X25519 public key this Ed25519 key converts to (the birational map from the
    /// Edwards to the Montgomery form, libsodium's `crypto_sign_ed25519_pk_to_curve25519`):
    /// the member's sealing key, whose secret half is [`SigningKey::x25519_secret`].
    pub fn to_x25519(&self) -> [u8; 32] {
        self.0.to_montgomery().to_bytes()
    }

    /// The fingerprint members compare over the phone before trusting this key.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(b"public key", &self.to_bytes())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &hex::encode(&self.to_bytes()[..4]))
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut bytes)
            .map_err(|_| KeyError::Hex(ParseHexError { expected_len: 32 }))?;
        Self::from_bytes(&bytes)
    }
}

/// A member's Ed25519 signing key. `Debug` never shows it.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Builds the key from its 32-byte seed (RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for writing the key file.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The X25519 secret this key converts to: the first 32 bytes of SHA-512(seed), which
    /// X25519 clamps (libsodium's `crypto_sign_ed25519_sk_to_curve25519`). Its public half is
    /// [`PublicKey::to_x25519`] of this key's public key. Secret: never log or store it.
    pub fn x25519_secret(&self) -> [u8; 32] {
        self.0.to_scalar_bytes()
    }

    /// Signs `message` (deterministic Ed25519).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {:?})", self.public_key())
    }
}

/// Why bytes are not a usable public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not hex of the right length.
    #[error(transparent)]
    Hex(ParseHexError),
    /// The bytes do not decode to a curve point.
    #[error("not an Ed25519 public key (not a curve point)")]
    NotAPoint,
    /// A small-order point: any signature would verify.
    #[error("weak Ed25519 public key (small order) refused")]
    WeakKey,
}

/// 80 bits of `BLAKE3-derive_key(FINGERPRINT_CONTEXT, label || bytes)`, shown as four groups
/// of four base-32 characters (RFC 4648 alphabet) so it can be read aloud and compared.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 10]);

impl Fingerprint {
    /// Fingerprint of `bytes` under a `label` naming what they are, so a key and a secret
    /// with equal bytes never share a fingerprint.
    pub fn of(label: &[u8], bytes: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
        hasher.update(&(label.len() as u64).to_be_bytes());
        hasher.update(label);
        hasher.update(bytes);
        let mut out = [0u8; 10];
        hasher.finalize_xof().fill(&mut out);
        Self(out)
    }

    /// Fingerprint of the federation secret.
    pub fn of_secret(secret: &FederationSecret) -> Self {
        Self::of(b"federation secret", secret.as_bytes())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        // 80 bits = 16 symbols of 5 bits, most significant first.
        let bits = self.0.iter().fold(0u128, |acc, byte| (acc << 8) | u128::from(*byte));
        for group in 0..4 {
            if group > 0 {
                f.write_str("-")?;
            }
            for symbol in 0..4 {
                let shift = 75 - 5 * (group * 4 + symbol);
                let index = ((bits >> shift) & 0x1f) as usize;
                write!(f, "{}", char::from(ALPHABET[index]))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_four_groups_of_base32() {
        let key = SigningKey::from_seed(&[7; 32]).public_key();
        let text = key.fingerprint().to_string();
        assert_eq!(text.len(), 19, "{text}");
        assert!(text.split('-').all(|g| g.len() == 4));
        assert_ne!(
            text,
            Fingerprint::of_secret(&FederationSecret::from_bytes([7; 32])).to_string()
        );
    }

    #[test]
    fn weak_keys_are_refused() {
        // The identity point (small order) encodes as 1 followed by zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity), Err(KeyError::WeakKey));
    }

    #[test]
    fn x25519_conversion_of_the_secret_matches_that_of_the_public_key() {
        for seed in [[1u8; 32], [0x42; 32], [0xff; 32]] {
            let key = SigningKey::from_seed(&seed);
            let public =
                x25519_dalek::x25519(key.x25519_secret(), x25519_dalek::X25519_BASEPOINT_BYTES);
            assert_eq!(public, key.public_key().to_x25519());
        }
    }

    #[test]
    fn public_key_round_trips_through_hex() {
        let key = SigningKey::from_seed(&[9; 32]).public_key();
        assert_eq!(key.to_string().parse::<PublicKey>(), Ok(key));
    }
}
