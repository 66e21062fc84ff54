//! Keyed tokens: the per-epoch key derived from the federation secret, and the token of one
//! canonical form.

use std::fmt;

use zeroize::Zeroize;

use crate::canon::Canonical;
use crate::types::{FederationId, FederationSecret, Token};

/// BLAKE3 `derive_key` context for epoch keys. Changing it changes every token.
pub const TOKEN_KEY_CONTEXT: &str = "crossmatch token key v1";

/// The key every token of one federation and epoch is computed with:
/// `BLAKE3-derive_key(TOKEN_KEY_CONTEXT, federation_id || federation_secret || epoch_be32)`.
///
/// Derive it once per epoch and reuse it; [`EpochKey::token`] is then one keyed BLAKE3 hash.
/// `Debug` shows the epoch only.
#[derive(Clone)]
pub struct EpochKey {
    key: [u8; 32],
    epoch: u32,
}

impl EpochKey {
    /// Derives the key of `epoch` for a federation.
    pub fn derive(federation_id: &FederationId, secret: &FederationSecret, epoch: u32) -> Self {
        let mut material = [0u8; 32 + 32 + 4];
        material[..32].copy_from_slice(federation_id.as_bytes());
        material[32..64].copy_from_slice(secret.as_bytes());
        material[64..].copy_from_slice(&epoch.to_be_bytes());
        let key = Self { key: blake3::derive_key(TOKEN_KEY_CONTEXT, &material), epoch };
        material.zeroize();
        key
    }

    /// The epoch this key belongs to.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// `BLAKE3-keyed(epoch_key, UTF-8 canonical form)`.
    pub fn token(&self, canonical: &Canonical) -> Token {
        Token(*blake3::keyed_hash(&self.key, canonical.as_str().as_bytes()).as_bytes())
    }
}

/// The key is as good as the secret for one epoch: wiped when dropped.
impl Drop for EpochKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKey").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canon::{Kind, canonicalize};

    fn key(epoch: u32) -> EpochKey {
        EpochKey::derive(&FederationId([1; 32]), &FederationSecret::from_bytes([2; 32]), epoch)
    }

    #[test]
    fn token_is_keyed_blake3_of_the_canonical_bytes_under_the_derived_key() {
        let canonical = canonicalize(Kind::Account, Some("x"), None, "jack").unwrap();
        let mut material = Vec::new();
        material.extend_from_slice(&[1; 32]);
        material.extend_from_slice(&[2; 32]);
        material.extend_from_slice(&[0, 0, 1, 0]);
        let epoch_key = blake3::derive_key("crossmatch token key v1", &material);
        let expected = blake3::keyed_hash(&epoch_key, b"v1|account|x|jack");
        assert_eq!(key(256).token(&canonical).as_bytes(), expected.as_bytes());
    }

    #[test]
    fn every_input_to_the_key_changes_the_token() {
        let canonical = canonicalize(Kind::Domain, None, None, "example.com").unwrap();
        let base = key(7).token(&canonical);
        assert_ne!(key(8).token(&canonical), base);
        let other_id =
            EpochKey::derive(&FederationId([9; 32]), &FederationSecret::from_bytes([2; 32]), 7);
        assert_ne!(other_id.token(&canonical), base);
        let other_secret =
            EpochKey::derive(&FederationId([1; 32]), &FederationSecret::from_bytes([9; 32]), 7);
        assert_ne!(other_secret.token(&canonical), base);
        assert_eq!(key(7).epoch(), 7);
        assert_eq!(format!("{:?}", key(7)), "EpochKey { epoch: 7, .. }");
    }
}
