//! crossmatch's wire format, canonical identifiers and tokens: pure code, no I/O, no clock,
//! randomness only when passed in.
//!
//! Everything a member node sends or receives is defined here: signed manifests (COSE_Sign1),
//! entries, batches, chain rules, and the canonicalisation and token rules every member must
//! apply identically. See `docs/PROTOCOL.md` for the normative text.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod keys;
mod types;

pub use keys::{FINGERPRINT_CONTEXT, Fingerprint, KeyError, PublicKey, SigningKey};
pub use types::{BatchHash, EntryDigest, FederationId, FederationSecret, ParseHexError, Token};
