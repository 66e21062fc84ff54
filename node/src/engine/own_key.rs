//! This node's own routine key change (docs/PROTOCOL.md §4.5, README.md, "A routine node key change"): the store
//! remembers the key its own feed is signed with (store `K`). Opened with another key, the
//! engine retires the old one (with where its feed ended) and starts a new own feed under the
//! new key, in one durable write that also sets a republication cursor; every live share
//! (adds, statuses, community tags) then goes out again under the new key in bounded slices
//! (`own_key/republish.rs`), as an epoch's republication does; opened with a key it retired, it
//! refuses to run: a retired key never signs again. The old feed stays at the peers, matchable
//! through the roster's retired keys, up to the final head the key change names. The node key
//! is the node's mesh identity, so a key change takes effect at a restart with the new key, and
//! the republication begins there.

use std::path::Path;

use crossmatch_protocol::{BatchHash, FederationId, FinalHead, PublicKey, claimed_batch};
use serde::{Deserialize, Serialize};

use super::{Engine, Error, OWN_FEED, RECORD_COUNTER, Result};
use crate::store::{self, OwnFeed, OwnLog, RecordId, Store, keys};

mod republish;

/// Most retired own keys remembered (a roster keeps at most 4 per member).
pub const MAX_RETIRED_OWN_KEYS: usize = 64;

/// The keys of this node's own feeds (store `K`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnKeys {
    /// The public key the own feed (`m own`) is signed with.
    pub current: [u8; 32],
    /// Keys this node retired, oldest first, with where each one's feed ended.
    pub retired: Vec<RetiredOwnKey>,
    /// The republication under `current` after a key change, while it is under way.
    #[serde(default)]
    pub republication: Option<OwnRepublication>,
}

/// How far the republication of the own live shares under a new key went (stored under `K`
/// with the keys, each slice in the write that puts it in the outbox).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnRepublication {
    /// The last record republished (0: none yet).
    pub after: RecordId,
    /// The last record made before the change: later ones were published under the new key.
    pub through: RecordId,
    /// Shared live records republished so far.
    pub republished_records: u64,
}

/// A node key this node retired in a routine key change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredOwnKey {
    /// The public key.
    pub key: [u8; 32],
    /// Its feed's final head: generation, seq and batch hash (seq 0: that generation is empty).
    pub generation: u32,
    /// See `generation`.
    pub seq: u64,
    /// See `generation`.
    pub hash: [u8; 32],
}

/// What adopting a new own key did at open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnKeyChange {
    /// The last record made before the change: records up to it are republished under the new
    /// key, a slice at a time (see [`Engine::own_republication`] for how far it went).
    pub republish_through: RecordId,
    /// Shared live records republished under the new key so far (since the change, across
    /// restarts).
    pub republished_records: u64,
}

/// Where the own feed of the node whose data directory is `dir` ends, read with the node
/// stopped (the store's lock is held while reading: a running node makes this fail): the
/// store's own-feed position, or the own-feed log's newest batch of `own_key` when the log is
/// ahead (signed, not yet stored). None when the node never signed a batch. Refused when the
/// store's own feed is signed with another key than `own_key` (a key change already made).
pub fn stored_own_final_head(
    dir: &Path,
    federation_id: &FederationId,
    own_key: &PublicKey,
) -> Result<Option<FinalHead>> {
    if !dir.join("db").exists() {
        return Ok(None);
    }
    let store = Store::open(dir)?;
    let own_keys: Option<OwnKeys> = store.get(&keys::own_keys())?;
    if own_keys.is_some_and(|keys| keys.current != own_key.to_bytes()) {
        return Err(Error::RetiredKey);
    }
    let own = store
        .get::<OwnFeed>(&keys::meta(OWN_FEED))?
        .unwrap_or(OwnFeed { generation: 1, ..OwnFeed::default() });
    let mut head = (own.generation, own.seq, own.hash);
    let (_, logged) = OwnLog::open(&dir.join("own-feed.log")).map_err(store::Error::Io)?;
    for record in logged {
        let Some((claim, _)) = claimed_batch(&record.wire, federation_id) else { continue };
        let position = (claim.header.generation, claim.header.seq);
        if claim.origin == own_key.to_bytes() && position > (head.0, head.1) {
            head = (position.0, position.1, claim.hash);
        }
    }
    let (generation, seq, hash) = head;
    Ok((seq > 0 || generation > 1).then_some(FinalHead { generation, seq, hash }))
}

/// The keys this node signed with before `own_key`, as the store names them: the own feed's
/// key when it is not `own_key` (a change about to be adopted), and the keys it retired.
pub(super) fn earlier_keys(store: &Store, own_key: &[u8; 32]) -> Result<Vec<PublicKey>> {
    let Some(own_keys) = store.get::<OwnKeys>(&keys::own_keys())? else {
        return Ok(Vec::new());
    };
    let keys = std::iter::once(own_keys.current)
        .chain(own_keys.retired.iter().map(|retired| retired.key))
        .filter(|key| key != own_key)
        .filter_map(|key| PublicKey::from_bytes(&key).ok());
    Ok(keys.collect())
}

impl Engine {
    /// Where this node's own feed ends now: what a key change of its key names as the old
    /// key's final head. None when it never signed a batch.
    pub fn own_final_head(&self) -> Option<FinalHead> {
        if !self.has_own_feed() {
            return None;
        }
        Some(FinalHead { generation: self.own.generation, seq: self.own.seq, hash: self.own.hash })
    }

    /// What the last open did about a new own key (none: the key was the store's).
    pub fn own_key_change(&self) -> Option<OwnKeyChange> {
        self.own_key_change
    }

    /// At open, once the own-feed log is replayed: the configured key against the store's.
    /// The same key: nothing. A retired key: refused. Another key: the old one is retired with
    /// its final head, the own feed restarts at generation 1 under the new key, and the
    /// republication cursor is set, in one durable write (the slices follow). A store that
    /// names no key yet takes the configured one.
    pub(super) fn adopt_own_key(&mut self) -> Result<()> {
        let stored: Option<OwnKeys> = self.store.get(&keys::own_keys())?;
        let mut own_keys = match stored {
            Some(own_keys) if own_keys.current == self.own_key => return Ok(()),
            Some(own_keys) if own_keys.retired.iter().any(|r| r.key == self.own_key) => {
                return Err(Error::RetiredKey);
            }
            Some(own_keys) => own_keys,
            None => {
                let mut txn = self.store.txn();
                let own_keys =
                    OwnKeys { current: self.own_key, retired: Vec::new(), republication: None };
                txn.put(keys::own_keys(), &own_keys);
                txn.commit_durable()?;
                return Ok(());
            }
        };
        if own_keys.retired.len() >= MAX_RETIRED_OWN_KEYS {
            own_keys.retired.remove(0);
        }
        let head = self.own_final_head();
        own_keys.retired.push(RetiredOwnKey {
            key: own_keys.current,
            generation: head.map_or(1, |h| h.generation),
            seq: head.map_or(0, |h| h.seq),
            hash: head.map_or([0; 32], |h| h.hash.0),
        });
        own_keys.current = self.own_key;
        let own = OwnFeed {
            generation: 1,
            seq: 0,
            hash: BatchHash::ZERO,
            outbox_last: self.own.outbox_last,
        };
        // Audited first, as every change the node makes of itself: a crash before the write
        // below leaves a line for a change the next open makes again.
        let subject = format!(
            "node_key:{}.{}",
            own_keys.retired.last().map_or_else(String::new, |old| fingerprint(&old.key)),
            fingerprint(&self.own_key)
        );
        self.audit_by_node_before_write(crate::audit::Action::ChangeNodeKey, &subject)?;
        // Records made from now on are published under the new key: republication stops at
        // the last one made before.
        let through = self.store.get::<u64>(&keys::meta(RECORD_COUNTER))?.unwrap_or(0);
        own_keys.republication =
            Some(OwnRepublication { after: 0, through, republished_records: 0 });
        let mut txn = self.store.txn();
        txn.put(keys::meta(OWN_FEED), &own);
        txn.put(keys::own_keys(), &own_keys);
        txn.commit_durable()?;
        self.own = own;
        self.own_key_change =
            Some(OwnKeyChange { republish_through: through, republished_records: 0 });
        tracing::info!(through, "own node key changed: a new own feed under the new key");
        Ok(())
    }
}

/// A key's fingerprint as the audit log names it: its first 8 bytes in hex.
fn fingerprint(key: &[u8; 32]) -> String {
    hex::encode(&key[..8])
}
