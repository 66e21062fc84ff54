//! The manifest: the signed part of a batch, a COSE_Sign1 (RFC 9052) over the header fields and
//! one digest per entry.

use ciborium::Value;
use coset::{
    CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana,
};

use crate::cbor::{self, as_array, as_u64, uint_key};
use crate::keys::{PublicKey, SigningKey};
use crate::limits::{MAX_ENTRIES_PER_BATCH, PROTOCOL_VERSION};
use crate::types::{BatchHash, EntryDigest, FederationId};

/// COSE content type of the manifest payload.
pub const MANIFEST_CONTENT_TYPE: &str = "application/crossmatch-manifest+cbor";

/// Domain of batch hashes: `BLAKE3-derive_key(BATCH_HASH_CONTEXT, Sig_structure)`.
pub const BATCH_HASH_CONTEXT: &str = "crossmatch batch v1";

/// Map keys of the manifest payload. Written out and never reused.
mod key {
    pub const VERSION: u64 = 0;
    pub const GENERATION: u64 = 1;
    pub const SEQ: u64 = 2;
    pub const PREV: u64 = 3;
    pub const EPOCH: u64 = 4;
    pub const CREATED_AT_MS: u64 = 5;
    pub const ENTRY_DIGESTS: u64 = 6;
}

/// The signed header of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHeader {
    /// Restart counter of the origin's feed, from 1; each generation is its own chain.
    pub generation: u32,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Hash of the previous batch: of seq − 1 in this generation; for seq 1 the last batch the
    /// origin knew ([`BatchHash::ZERO`] for seq 1 of generation 1).
    pub prev: BatchHash,
    /// Token epoch of every entry in the batch.
    pub epoch: u32,
    /// When the origin signed the batch (Unix ms, the origin's clock).
    pub created_at_ms: u64,
    /// One digest per entry, in entry order.
    pub entry_digests: Vec<EntryDigest>,
}

/// Why a manifest payload is refused (after its signature verified).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not deterministic CBOR, or not a map.
    #[error("manifest payload is not a deterministic cbor map")]
    NotCanonical,
    /// A protocol version this node does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u64),
    /// A required field is missing, of the wrong type, or out of range.
    #[error("manifest field {0} missing, of the wrong type or out of range")]
    BadField(&'static str),
    /// More digests than [`MAX_ENTRIES_PER_BATCH`].
    #[error("manifest lists more than {MAX_ENTRIES_PER_BATCH} entries")]
    TooManyEntries,
    /// Seq 1 of generation 1 must have a zero `prev`.
    #[error("first batch of generation 1 must have a zero prev")]
    GenesisPrev,
}

impl ManifestHeader {
    /// Deterministic CBOR of the header: the COSE payload.
    pub fn encode(&self) -> Vec<u8> {
        let digests =
            self.entry_digests.iter().map(|digest| Value::Bytes(digest.0.to_vec())).collect();
        let map = vec![
            (key::VERSION.into(), u64::from(PROTOCOL_VERSION).into()),
            (key::GENERATION.into(), self.generation.into()),
            (key::SEQ.into(), self.seq.into()),
            (key::PREV.into(), Value::Bytes(self.prev.0.to_vec())),
            (key::EPOCH.into(), self.epoch.into()),
            (key::CREATED_AT_MS.into(), self.created_at_ms.into()),
            (key::ENTRY_DIGESTS.into(), Value::Array(digests)),
        ];
        cbor::encode(&Value::Map(map))
    }

    /// Decodes a payload. Unknown keys are ignored (the extension rule).
    pub fn decode(payload: &[u8]) -> Result<Self, HeaderError> {
        let Ok(Value::Map(pairs)) = cbor::decode(payload) else {
            return Err(HeaderError::NotCanonical);
        };
        let field =
            |wanted: u64| pairs.iter().find(|(k, _)| uint_key(k) == Some(wanted)).map(|(_, v)| v);
        let uint = |wanted: u64, name: &'static str| {
            field(wanted).and_then(as_u64).ok_or(HeaderError::BadField(name))
        };
        let version = uint(key::VERSION, "version")?;
        if version != u64::from(PROTOCOL_VERSION) {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let small = |wanted: u64, name: &'static str| {
            uint(wanted, name)
                .and_then(|v| u32::try_from(v).map_err(|_| HeaderError::BadField(name)))
        };
        let generation = small(key::GENERATION, "generation")?;
        let seq = uint(key::SEQ, "seq")?;
        if generation == 0 {
            return Err(HeaderError::BadField("generation"));
        }
        if seq == 0 {
            return Err(HeaderError::BadField("seq"));
        }
        let prev =
            BatchHash(field(key::PREV).and_then(as_array).ok_or(HeaderError::BadField("prev"))?);
        if generation == 1 && seq == 1 && prev != BatchHash::ZERO {
            return Err(HeaderError::GenesisPrev);
        }
        let epoch = small(key::EPOCH, "epoch")?;
        let created_at_ms = uint(key::CREATED_AT_MS, "created_at_ms")?;
        let digests = field(key::ENTRY_DIGESTS)
            .and_then(Value::as_array)
            .ok_or(HeaderError::BadField("entry_digests"))?;
        if digests.len() > MAX_ENTRIES_PER_BATCH {
            return Err(HeaderError::TooManyEntries);
        }
        let entry_digests = digests
            .iter()
            .map(|d| as_array(d).map(EntryDigest).ok_or(HeaderError::BadField("entry_digests")))
            .collect::<Result<_, _>>()?;
        Ok(Self { generation, seq, prev, epoch, created_at_ms, entry_digests })
    }
}

/// The one accepted encoding of the protected header for `origin`: algorithm EdDSA, content
/// type, `kid` = the origin's public key, in ascending label order (1, 3, 4).
pub fn protected_header_bytes(origin: &PublicKey) -> Vec<u8> {
    let header = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .content_type(MANIFEST_CONTENT_TYPE.to_owned())
        .key_id(origin.to_bytes().to_vec())
        .build();
    header.to_vec().unwrap_or_default()
}

/// A signed manifest as encoded: tagged COSE_Sign1 bytes, plus what verification derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedManifest {
    pub bytes: Vec<u8>,
    pub hash: BatchHash,
}

/// Signs a header, returning the COSE_Sign1 bytes and the batch hash.
pub(crate) fn sign(
    key: &SigningKey,
    federation: &FederationId,
    header: &ManifestHeader,
) -> SignedManifest {
    let protected = coset::ProtectedHeader {
        original_data: Some(protected_header_bytes(&key.public_key())),
        header: Default::default(),
    };
    let unsigned = CoseSign1Builder::new().payload(header.encode()).build();
    let mut sign1 = CoseSign1 { protected, ..unsigned };
    let tbs = sign1.tbs_data(federation.as_bytes());
    sign1.signature = key.sign(&tbs).to_vec();
    let hash = BatchHash(blake3::derive_key(BATCH_HASH_CONTEXT, &tbs));
    SignedManifest { bytes: sign1.to_tagged_vec().unwrap_or_default(), hash }
}

/// The batch hash a manifest claims, without checking its signature: the bytes it would be
/// identified by if it verified. For deduplication before verification and for gossip message
/// ids; never a reason to trust anything.
pub(crate) fn claimed_hash(bytes: &[u8], federation: &FederationId) -> Option<BatchHash> {
    let sign1 = CoseSign1::from_tagged_slice(bytes).ok()?;
    let tbs = sign1.tbs_data(federation.as_bytes());
    Some(BatchHash(blake3::derive_key(BATCH_HASH_CONTEXT, &tbs)))
}

/// What a manifest claims, read without checking anything but its shape: the origin its `kid`
/// names, the header it carries and the batch hash it would have. For deciding, before a
/// signature is spent, that a message would be ignored whatever its signature says; never a
/// reason to trust, store or forward anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedManifest {
    /// The key the `kid` names (not checked against any roster).
    pub origin: [u8; 32],
    /// The header the payload decodes to.
    pub header: ManifestHeader,
    /// The batch hash the manifest would have if it verified.
    pub hash: BatchHash,
}

/// Reads what a manifest claims (see [`ClaimedManifest`]); `None` when it is not even shaped
/// like a manifest.
pub fn claimed_manifest(bytes: &[u8], federation: &FederationId) -> Option<ClaimedManifest> {
    let sign1 = CoseSign1::from_tagged_slice(bytes).ok()?;
    let origin: [u8; 32] = sign1.protected.header.key_id.as_slice().try_into().ok()?;
    let header = ManifestHeader::decode(sign1.payload.as_deref()?).ok()?;
    let tbs = sign1.tbs_data(federation.as_bytes());
    let hash = BatchHash(blake3::derive_key(BATCH_HASH_CONTEXT, &tbs));
    Some(ClaimedManifest { origin, header, hash })
}

/// Why a manifest envelope is refused before or at its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a COSE_Sign1 with tag 18, an empty unprotected map, an attached payload and a
    /// 64-byte signature, or its re-encoding differs from the bytes received.
    #[error("manifest is not a canonical tagged cose_sign1")]
    NotCanonical,
    /// The protected header is not exactly EdDSA + content type + a 32-byte kid.
    #[error("manifest protected header is not the crossmatch header")]
    BadProtectedHeader,
    /// The kid is not the key of a roster member.
    #[error("manifest signed by a key outside the roster")]
    UnknownOrigin,
    /// `verify_strict` failed (bad signature, or signed for another federation).
    #[error("manifest signature does not verify")]
    BadSignature,
}

/// Checks the envelope and the signature, in that order, and returns the origin, the payload
/// (not yet decoded) and the batch hash. `lookup` maps a kid to a roster member's key.
pub(crate) fn verify(
    bytes: &[u8],
    federation: &FederationId,
    lookup: impl FnOnce(&[u8; 32]) -> Option<PublicKey>,
) -> Result<(PublicKey, Vec<u8>, BatchHash), EnvelopeError> {
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|_| EnvelopeError::NotCanonical)?;
    if !sign1.unprotected.is_empty() || sign1.payload.is_none() || sign1.signature.len() != 64 {
        return Err(EnvelopeError::NotCanonical);
    }
    if sign1.clone().to_tagged_vec().ok().as_deref() != Some(bytes) {
        return Err(EnvelopeError::NotCanonical);
    }
    let kid: [u8; 32] = sign1
        .protected
        .header
        .key_id
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::BadProtectedHeader)?;
    let origin = lookup(&kid).ok_or(EnvelopeError::UnknownOrigin)?;
    let received_protected = sign1.protected.original_data.as_deref().unwrap_or_default();
    if received_protected != protected_header_bytes(&origin) {
        return Err(EnvelopeError::BadProtectedHeader);
    }
    let signature: [u8; 64] =
        sign1.signature.as_slice().try_into().map_err(|_| EnvelopeError::NotCanonical)?;
    let tbs = sign1.tbs_data(federation.as_bytes());
    if !origin.verify_strict(&tbs, &signature) {
        return Err(EnvelopeError::BadSignature);
    }
    let hash = BatchHash(blake3::derive_key(BATCH_HASH_CONTEXT, &tbs));
    Ok((origin, sign1.payload.unwrap_or_default(), hash))
}
