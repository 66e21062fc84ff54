//! Batches: a signed manifest plus its entries, one link of a feed. Wire form, signing,
//! verification (the only way to a [`VerifiedBatch`]), redaction and hole filling.

use ciborium::Value;

use crate::cbor;
use crate::entry::{Entry, EntryProblem, entry_digest};
use crate::keys::{PublicKey, SigningKey};
use crate::limits::{MAX_BATCH_BYTES, MAX_ENTRIES_PER_BATCH, MAX_ENTRY_BYTES};
use crate::manifest::{self, ClaimedManifest, EnvelopeError, HeaderError, ManifestHeader};
use crate::types::{BatchHash, FederationId};

/// The roster as verification needs it: which 32-byte kids belong to members.
pub trait OriginKeys {
    /// The member key whose bytes are `kid`, if `kid` is a member's.
    fn origin_key(&self, kid: &[u8; 32]) -> Option<PublicKey>;
}

impl OriginKeys for [PublicKey] {
    fn origin_key(&self, kid: &[u8; 32]) -> Option<PublicKey> {
        self.iter().find(|key| key.to_bytes() == *kid).copied()
    }
}

impl OriginKeys for std::collections::HashMap<[u8; 32], PublicKey> {
    fn origin_key(&self, kid: &[u8; 32]) -> Option<PublicKey> {
        self.get(kid).copied()
    }
}

/// Why a batch is refused as a whole. Nothing of a refused batch may be stored or forwarded;
/// on gossip every variant maps to Reject (the sender is penalised).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The wire form is larger than [`MAX_BATCH_BYTES`].
    #[error("batch larger than {MAX_BATCH_BYTES} bytes")]
    TooLarge,
    /// The wire form is not `[manifest bstr, [* entry bstr / null]]` in deterministic CBOR.
    #[error("batch wire form is not [manifest, entries] in deterministic cbor")]
    BadWireForm,
    /// The manifest envelope or its signature is refused.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The signed header is refused.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The number of entries differs from the number of digests.
    #[error("batch carries {entries} entries for {digests} digests")]
    EntryCount {
        /// Entries carried.
        entries: usize,
        /// Digests signed.
        digests: usize,
    },
}

/// Entries as carried: their encoded bytes, `None` where redacted.
type RawEntries = Vec<Option<Vec<u8>>>;

/// A batch whose envelope, origin and signature have been checked: the only form a batch may
/// be stored or forwarded in. Individual entries may still be redacted or invalid; see
/// [`VerifiedBatch::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBatch {
    origin: PublicKey,
    header: ManifestHeader,
    hash: BatchHash,
    manifest: Vec<u8>,
    entries: RawEntries,
}

/// What is needed to sign a batch, apart from its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPosition {
    /// Feed generation.
    pub generation: u32,
    /// Seq within the generation.
    pub seq: u64,
    /// Previous batch hash (see [`ManifestHeader::prev`]).
    pub prev: BatchHash,
    /// Token epoch of the entries.
    pub epoch: u32,
    /// Signing time (Unix ms), passed in: the protocol has no clock.
    pub created_at_ms: u64,
}

/// Why a batch could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// More than [`MAX_ENTRIES_PER_BATCH`] entries, an entry over [`MAX_ENTRY_BYTES`], or a
    /// wire form over [`MAX_BATCH_BYTES`]: split the entries into more batches.
    #[error("batch over its limits; split the entries")]
    OverLimit,
    /// An empty batch: every batch carries at least one entry.
    #[error("a batch needs at least one entry")]
    Empty,
}

/// Signs `entries` as one batch of `key`'s feed.
pub fn sign_batch(
    key: &SigningKey,
    federation: &FederationId,
    position: BatchPosition,
    entries: &[Entry],
) -> Result<VerifiedBatch, SignError> {
    if entries.len() > MAX_ENTRIES_PER_BATCH {
        return Err(SignError::OverLimit);
    }
    sign_encoded_batch(key, federation, position, entries.iter().map(Entry::encode).collect())
}

/// Signs already encoded entries as one batch: for entries this version cannot express (a later
/// version's fields or ops), and for tests at the limits. The bytes are signed as given.
pub fn sign_encoded_batch(
    key: &SigningKey,
    federation: &FederationId,
    position: BatchPosition,
    encoded: Vec<Vec<u8>>,
) -> Result<VerifiedBatch, SignError> {
    if encoded.is_empty() {
        return Err(SignError::Empty);
    }
    if encoded.len() > MAX_ENTRIES_PER_BATCH
        || encoded.iter().any(|bytes| bytes.len() > MAX_ENTRY_BYTES)
    {
        return Err(SignError::OverLimit);
    }
    let header = ManifestHeader {
        generation: position.generation,
        seq: position.seq,
        prev: position.prev,
        epoch: position.epoch,
        created_at_ms: position.created_at_ms,
        entry_digests: encoded.iter().map(|bytes| entry_digest(bytes)).collect(),
    };
    let signed = manifest::sign(key, federation, &header);
    let batch = VerifiedBatch {
        origin: key.public_key(),
        header,
        hash: signed.hash,
        manifest: signed.bytes,
        entries: encoded.into_iter().map(Some).collect(),
    };
    if batch.to_wire().len() > MAX_BATCH_BYTES {
        return Err(SignError::OverLimit);
    }
    Ok(batch)
}

/// Verifies a batch's wire form, in this order: size limit; wire form; canonical envelope;
/// origin in the roster; `verify_strict` signature (with the federation id as external AAD);
/// the signed header; the entry count. Entries are not judged here (see
/// [`VerifiedBatch::entries`]): a bad entry never invalidates its batch.
pub fn verify_batch(
    wire: &[u8],
    federation: &FederationId,
    roster: &(impl OriginKeys + ?Sized),
) -> Result<VerifiedBatch, BatchError> {
    if wire.len() > MAX_BATCH_BYTES {
        return Err(BatchError::TooLarge);
    }
    let (manifest_bytes, entries) = decode_wire(wire).ok_or(BatchError::BadWireForm)?;
    verify_parts(manifest_bytes, entries, federation, roster)
}

/// The batch hash a wire form claims, computed without verifying anything (see
/// docs/PROTOCOL.md §2.1). Lets a node recognise a batch it already holds before spending a
/// signature verification on it, and serves as the gossip message id. `None` when the bytes
/// are not a batch's wire form at all.
pub fn claimed_batch_hash(wire: &[u8], federation: &FederationId) -> Option<BatchHash> {
    if wire.len() > MAX_BATCH_BYTES {
        return None;
    }
    let (manifest_bytes, _) = decode_wire(wire)?;
    manifest::claimed_hash(&manifest_bytes, federation)
}

/// What a batch's wire form claims, read without verifying anything (see
/// [`ClaimedManifest`]): its origin, header and batch hash, and how many entries it carries.
/// `None` when the bytes are not shaped like a batch at all.
pub fn claimed_batch(wire: &[u8], federation: &FederationId) -> Option<(ClaimedManifest, usize)> {
    if wire.len() > MAX_BATCH_BYTES {
        return None;
    }
    let (manifest_bytes, entries) = decode_wire(wire)?;
    Some((manifest::claimed_manifest(&manifest_bytes, federation)?, entries.len()))
}

/// Verifies a manifest and entries received separately (e.g. a head's manifest alone, with no
/// entries, in which case the count is not checked and `entries` is empty).
pub fn verify_manifest(
    manifest_bytes: &[u8],
    federation: &FederationId,
    roster: &(impl OriginKeys + ?Sized),
) -> Result<(PublicKey, ManifestHeader, BatchHash), BatchError> {
    if manifest_bytes.len() > MAX_BATCH_BYTES {
        return Err(BatchError::TooLarge);
    }
    let (origin, payload, hash) =
        manifest::verify(manifest_bytes, federation, |kid| roster.origin_key(kid))?;
    Ok((origin, ManifestHeader::decode(&payload)?, hash))
}

fn verify_parts(
    manifest_bytes: Vec<u8>,
    entries: RawEntries,
    federation: &FederationId,
    roster: &(impl OriginKeys + ?Sized),
) -> Result<VerifiedBatch, BatchError> {
    let (origin, header, hash) = verify_manifest(&manifest_bytes, federation, roster)?;
    if entries.len() != header.entry_digests.len() {
        return Err(BatchError::EntryCount {
            entries: entries.len(),
            digests: header.entry_digests.len(),
        });
    }
    Ok(VerifiedBatch { origin, header, hash, manifest: manifest_bytes, entries })
}

/// Splits the wire form `[manifest bstr, [* bstr / null]]` (deterministic CBOR).
fn decode_wire(wire: &[u8]) -> Option<(Vec<u8>, RawEntries)> {
    let Value::Array(items) = cbor::decode(wire).ok()? else { return None };
    let [Value::Bytes(manifest), Value::Array(entries)] = <[Value; 2]>::try_from(items).ok()?
    else {
        return None;
    };
    let entries = entries
        .into_iter()
        .map(|entry| match entry {
            Value::Bytes(bytes) => Some(Some(bytes)),
            Value::Null => Some(None),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((manifest, entries))
}

impl VerifiedBatch {
    /// The origin that signed the batch.
    pub fn origin(&self) -> PublicKey {
        self.origin
    }

    /// The signed header.
    pub fn header(&self) -> &ManifestHeader {
        &self.header
    }

    /// Where the batch sits: its origin, generation and seq.
    pub fn id(&self) -> crate::BatchId {
        let header = self.header();
        crate::BatchId::new(self.origin().to_bytes(), header.generation, header.seq)
    }

    /// The batch hash: chain link, gossip message id, dedup key.
    pub fn hash(&self) -> BatchHash {
        self.hash
    }

    /// The COSE_Sign1 bytes of the manifest (what a `heads` answer carries as proof).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest
    }

    /// The entries' bytes as carried, `None` where redacted.
    pub fn raw_entries(&self) -> &[Option<Vec<u8>>] {
        &self.entries
    }

    /// True when no entry is redacted: only complete batches may be gossiped.
    pub fn is_complete(&self) -> bool {
        self.entries.iter().all(Option::is_some)
    }

    /// True when every entry is present and hashes to its signed digest: exactly the batch its
    /// origin signed. Only such batches may be gossiped.
    pub fn is_intact(&self) -> bool {
        self.entries.iter().zip(&self.header.entry_digests).all(|(entry, digest)| {
            entry.as_deref().is_some_and(|bytes| entry_digest(bytes) == *digest)
        })
    }

    /// Each entry checked against its digest, then decoded and range-checked. A problem with one
    /// entry says nothing about the others or about the batch.
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry, EntryProblem>> + '_ {
        self.entries.iter().zip(&self.header.entry_digests).map(|(entry, digest)| {
            let bytes = entry.as_deref().ok_or(EntryProblem::Redacted)?;
            if bytes.len() > MAX_ENTRY_BYTES {
                return Err(EntryProblem::TooLarge);
            }
            if entry_digest(bytes) != *digest {
                return Err(EntryProblem::DigestMismatch);
            }
            Entry::decode(bytes, self.header.created_at_ms)
        })
    }

    /// The wire form: `[manifest bstr, [* entry bstr / null]]`.
    pub fn to_wire(&self) -> Vec<u8> {
        let entries = self
            .entries
            .iter()
            .map(|entry| entry.as_ref().map_or(Value::Null, |bytes| Value::Bytes(bytes.clone())))
            .collect();
        cbor::encode(&Value::Array(vec![
            Value::Bytes(self.manifest.clone()),
            Value::Array(entries),
        ]))
    }

    /// The same batch with the entries at `indices` replaced by `null`. The manifest is
    /// untouched, so the result verifies and keeps the batch hash. Indices past the end are
    /// ignored.
    pub fn redacted(&self, indices: &[usize]) -> Self {
        let mut copy = self.clone();
        for &index in indices {
            if let Some(entry) = copy.entries.get_mut(index) {
                *entry = None;
            }
        }
        copy
    }

    /// Fills this copy's redacted entries from `other`, a copy of the same batch, where
    /// `other` carries bytes that match the signed digest and `allow(index)` agrees (the caller
    /// refuses entries it has expired or retracted). Returns how many entries were filled.
    /// A relay therefore cannot censor entries by nulling them, nor inject altered ones.
    pub fn fill_holes(
        &mut self,
        other: &VerifiedBatch,
        mut allow: impl FnMut(usize) -> bool,
    ) -> usize {
        if other.hash != self.hash {
            return 0;
        }
        let mut filled = 0;
        for (index, (mine, theirs)) in self.entries.iter_mut().zip(&other.entries).enumerate() {
            let (None, Some(bytes)) = (&mine, theirs) else { continue };
            let matches = self
                .header
                .entry_digests
                .get(index)
                .is_some_and(|digest| entry_digest(bytes) == *digest);
            if matches && allow(index) {
                *mine = Some(bytes.clone());
                filled += 1;
            }
        }
        filled
    }
}
