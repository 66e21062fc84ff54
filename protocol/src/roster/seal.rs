//! The federation secret's fingerprint and its sealing to each member (docs/PROTOCOL.md §4.6).
//!
//! A sealed copy is opened with the member's node key: the X25519 key it converts to
//! ([`crate::SigningKey::x25519_secret`]). Sealing: X25519(ephemeral, recipient) → `BLAKE3-
//! derive_key(SEAL_CONTEXT, shared || context)` → ChaCha20-Poly1305 with a zero nonce (the key
//! is used once) and the context as associated data, where context = ephemeral public ||
//! recipient public || federation id || epoch (big-endian u32) || member id. The ephemeral
//! secret is passed in: the protocol draws no randomness.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use ciborium::Value;
use x25519_dalek::{X25519_BASEPOINT_BYTES, x25519};
use zeroize::Zeroize;

use super::is_valid_member_id;
use super::wire::{Fields, bytes};
use crate::keys::SigningKey;
use crate::types::{FederationId, FederationSecret};

/// Domain of the secret's fingerprint.
pub const SECRET_FINGERPRINT_CONTEXT: &str = "crossmatch secret fingerprint v1";

/// Domain of the sealing key derivation.
pub const SEAL_CONTEXT: &str = "crossmatch secret seal v1";

/// Largest wire form of a sealed secret (it is about 170 bytes).
pub const MAX_SEALED_SECRET_BYTES: usize = 512;

/// Length of the ciphertext: the 32-byte secret and the 16-byte tag.
const CIPHERTEXT_BYTES: usize = 48;

/// Map keys of a sealed secret.
mod key {
    pub const FEDERATION_ID: u64 = 0;
    pub const EPOCH: u64 = 1;
    pub const MEMBER: u64 = 2;
    pub const EPHEMERAL_PUBLIC: u64 = 3;
    pub const CIPHERTEXT: u64 = 4;
}

/// `BLAKE3-derive_key("crossmatch secret fingerprint v1", secret)`: what the roster carries,
/// and what members compare by phone (see [`secret_fingerprint_phone_form`]).
pub fn secret_fingerprint(secret: &FederationSecret) -> [u8; 32] {
    blake3::derive_key(SECRET_FINGERPRINT_CONTEXT, secret.as_bytes())
}

/// The fingerprint as read over the phone: its first 16 bytes as eight groups of four hex
/// digits, e.g. `1a2b-3c4d-…`.
pub fn secret_fingerprint_phone_form(fingerprint: &[u8; 32]) -> String {
    fingerprint[..16].chunks(2).map(hex::encode).collect::<Vec<_>>().join("-")
}

/// Why a secret cannot be sealed or opened. Never says more than that.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Over [`MAX_SEALED_SECRET_BYTES`], not the deterministic CBOR of a sealed secret, or a
    /// member id that is not one.
    #[error("not a sealed secret's wire form")]
    BadWireForm,
    /// The recipient key is of small order: the shared secret would be all zeros.
    #[error("the recipient's sealing key is of small order")]
    WeakKey,
    /// Not sealed to this node key, or altered (ciphertext, federation, epoch or member).
    #[error("the sealed secret does not open with this node key")]
    CannotOpen,
}

/// The federation secret of one epoch, sealed to one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The federation.
    pub federation_id: FederationId,
    /// The epoch the secret is for.
    pub epoch: u32,
    /// The member it is sealed to.
    pub member: String,
    /// The ephemeral X25519 public key.
    pub ephemeral_public: [u8; 32],
    /// The encrypted secret and its tag.
    pub ciphertext: [u8; CIPHERTEXT_BYTES],
}

/// The bytes bound into the key and authenticated with the ciphertext.
fn context(
    ephemeral_public: &[u8; 32],
    recipient: &[u8; 32],
    federation_id: &FederationId,
    epoch: u32,
    member: &str,
) -> Vec<u8> {
    [
        ephemeral_public.as_slice(),
        recipient,
        federation_id.as_bytes(),
        &epoch.to_be_bytes(),
        member.as_bytes(),
    ]
    .concat()
}

/// The single-use AEAD of a shared secret and context; `None` for an all-zero shared secret.
fn cipher(shared: &[u8; 32], context: &[u8]) -> Option<ChaCha20Poly1305> {
    if shared.iter().all(|b| *b == 0) {
        return None;
    }
    let mut material = [shared.as_slice(), context].concat();
    let mut key = blake3::derive_key(SEAL_CONTEXT, &material);
    let cipher = ChaCha20Poly1305::new(&Key::from(key));
    material.zeroize();
    key.zeroize();
    Some(cipher)
}

/// Seals `secret` to `member`'s X25519 sealing key `recipient` (as the roster lists it), for
/// `epoch`, with a fresh random `ephemeral_secret` the caller draws for this copy alone.
pub fn seal_secret(
    secret: &FederationSecret,
    federation_id: &FederationId,
    epoch: u32,
    member: &str,
    recipient: &[u8; 32],
    ephemeral_secret: &[u8; 32],
) -> Result<SealedSecret, SealError> {
    if !is_valid_member_id(member) {
        return Err(SealError::BadWireForm);
    }
    let ephemeral_public = x25519(*ephemeral_secret, X25519_BASEPOINT_BYTES);
    let mut shared = x25519(*ephemeral_secret, *recipient);
    let context = context(&ephemeral_public, recipient, federation_id, epoch, member);
    let cipher = cipher(&shared, &context);
    shared.zeroize();
    let cipher = cipher.ok_or(SealError::WeakKey)?;
    // Encrypted in place: a copy of the secret that holds its ciphertext once this succeeds,
    // wiped when it is dropped if it does not.
    let mut buffer = secret.clone();
    let tag = cipher
        .encrypt_in_place_detached(&Nonce::default(), &context, buffer.as_bytes_mut())
        .map_err(|_| SealError::WeakKey)?;
    let mut ciphertext = [0u8; CIPHERTEXT_BYTES];
    ciphertext[..32].copy_from_slice(buffer.as_bytes());
    ciphertext[32..].copy_from_slice(tag.as_slice());
    Ok(SealedSecret {
        federation_id: *federation_id,
        epoch,
        member: member.to_owned(),
        ephemeral_public,
        ciphertext,
    })
}

/// Opens a sealed secret with the member's node key (converted to X25519).
pub fn open_secret(
    sealed: &SealedSecret,
    node_key: &SigningKey,
) -> Result<FederationSecret, SealError> {
    let recipient = node_key.public_key().to_x25519();
    let mut scalar = node_key.x25519_secret();
    let mut shared = x25519(scalar, sealed.ephemeral_public);
    scalar.zeroize();
    let context = context(
        &sealed.ephemeral_public,
        &recipient,
        &sealed.federation_id,
        sealed.epoch,
        &sealed.member,
    );
    let cipher = cipher(&shared, &context);
    shared.zeroize();
    let cipher = cipher.ok_or(SealError::CannotOpen)?;
    // Decrypted in place, into the value returned: no other copy of the secret is left.
    let mut secret = FederationSecret::from_bytes([0; 32]);
    secret.as_bytes_mut().copy_from_slice(&sealed.ciphertext[..32]);
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&sealed.ciphertext[32..]);
    let tag = Tag::from(tag);
    cipher
        .decrypt_in_place_detached(&Nonce::default(), &context, secret.as_bytes_mut(), &tag)
        .map_err(|_| SealError::CannotOpen)?;
    Ok(secret)
}

impl SealedSecret {
    /// The deterministic CBOR wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        crate::cbor::encode(&Value::Map(vec![
            (key::FEDERATION_ID.into(), bytes(self.federation_id.as_bytes())),
            (key::EPOCH.into(), self.epoch.into()),
            (key::MEMBER.into(), self.member.clone().into()),
            (key::EPHEMERAL_PUBLIC.into(), bytes(&self.ephemeral_public)),
            (key::CIPHERTEXT.into(), bytes(&self.ciphertext)),
        ]))
    }

    /// Decodes a wire form strictly.
    pub fn from_wire(wire: &[u8]) -> Result<Self, SealError> {
        if wire.len() > MAX_SEALED_SECRET_BYTES {
            return Err(SealError::BadWireForm);
        }
        let value = crate::cbor::decode(wire).map_err(|_| SealError::BadWireForm)?;
        use key::*;
        let known = [FEDERATION_ID, EPOCH, MEMBER, EPHEMERAL_PUBLIC, CIPHERTEXT];
        let read = || -> Result<Self, super::RosterProblem> {
            let fields = Fields::new(&value, &known, "sealed secret")?;
            Ok(Self {
                federation_id: FederationId(fields.array32(FEDERATION_ID, "federation_id")?),
                epoch: fields.u32(EPOCH, "epoch")?,
                member: fields.text(MEMBER, "member")?.to_owned(),
                ephemeral_public: fields.array32(EPHEMERAL_PUBLIC, "ephemeral_public")?,
                ciphertext: crate::cbor::as_array(fields.get(CIPHERTEXT, "ciphertext")?)
                    .ok_or(super::RosterProblem::BadWireForm("ciphertext"))?,
            })
        };
        let sealed = read().map_err(|_| SealError::BadWireForm)?;
        if !is_valid_member_id(&sealed.member) {
            return Err(SealError::BadWireForm);
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_all_zero_shared_secret_makes_no_cipher() {
        assert!(cipher(&[0; 32], b"context").is_none());
        assert!(cipher(&[1; 32], b"context").is_some());
    }

    #[test]
    fn the_context_binds_every_field() {
        let base = context(&[1; 32], &[2; 32], &FederationId([3; 32]), 4, "DE");
        assert_eq!(base.len(), 32 + 32 + 32 + 4 + 2);
        assert_eq!(&base[96..100], &4u32.to_be_bytes());
        assert_ne!(base, context(&[1; 32], &[2; 32], &FederationId([3; 32]), 5, "DE"));
        assert_ne!(base, context(&[1; 32], &[2; 32], &FederationId([3; 32]), 4, "FR"));
    }
}
