//! The STIX export's ids in the engine (`S`): a UUIDv4 per exported indicator, sighting and
//! identity, assigned at first export and stored durably before it is returned, with the
//! object's `created`, its `modified` (moved when the fingerprint of what it was exported from
//! changes) and that fingerprint; the reconciliation that turns the ids of gone records and
//! alerts into tombstones, exported as `revoked`; and the tombstones since a time.
//!
//! The shared interface is fixed here; the bodies are stubs until the engine's part lands.

use crate::store::Record;
use crate::store::imports::{StixIds, StixTombstone};

use super::{Engine, Result};

impl Engine {
    /// The ids of each record's indicator, in order, assigned and stored durably if new.
    pub fn stix_record_ids(&mut self, records: &[Record]) -> Result<Vec<StixIds>> {
        let _ = records;
        Ok(Default::default())
    }

    /// The ids of each (alert id, counterpart member id, first seen ms) sighting, in order.
    pub fn stix_sighting_ids(&mut self, s: &[(u64, String, u64)]) -> Result<Vec<StixIds>> {
        let _ = s;
        Ok(Default::default())
    }

    /// The identity UUID of each member, in order.
    pub fn stix_identity_ids(&mut self, members: &[String]) -> Result<Vec<[u8; 16]>> {
        let _ = members;
        Ok(Default::default())
    }

    /// One bounded step of reconciliation from the key `after` (none: the first); returns
    /// where the next step starts, none when done.
    pub fn stix_reconcile_step(&mut self, after: Option<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        let _ = after;
        Ok(None)
    }

    /// Tombstones gone at or after `since_ms`: (uuid, gone ms, tombstone).
    pub fn stix_tombstones(&self, since_ms: u64) -> Result<Vec<([u8; 16], u64, StixTombstone)>> {
        let _ = since_ms;
        Ok(Default::default())
    }
}

// The export's tokens extension names the federation (the STIX export's part).
impl Engine {
    /// The federation's id.
    pub fn federation_id(&self) -> crossmatch_protocol::FederationId {
        self.config.federation_id
    }
}
