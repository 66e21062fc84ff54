//! The node's store: one typed module over sled 0.34, the only code that knows sled.
//!
//! # Layout
//! One tree, `crossmatch-v1`, with prefixed keys, so that every logical operation is one
//! atomic `sled::Batch`:
//!
//! | prefix | key after prefix | value |
//! | --- | --- | --- |
//! | `m` | name | metadata: schema version, counters, own feed position |
//! | `r` | record id (u64 BE) | [`Record`] (CBOR) |
//! | `h` | token ‖ record id | empty: local holdings index |
//! | `o` | outbox seq (u64 BE) | [`OutboxItem`] (CBOR): entries waiting to be published |
//! | `b` | origin ‖ generation (u32 BE) ‖ seq (u64 BE) | batch wire form (possibly redacted) |
//! | `c` | origin ‖ generation | [`ChainRecord`]: head and frozen flag |
//! | `t` | token ‖ origin | [`RemoteAdd`]: another origin's live add of a token |
//! | `a` | token | [`Alert`] |
//! | `f` | origin ‖ generation ‖ seq | [`ForkEvidence`] |
//! | `x` | expiry ms (u64 BE) ‖ token ‖ origin | empty: remote expiry index |
//! | `q` | origin ‖ day (u32 BE) | [`Quota`] used that day |
//!
//! # Durability contract
//! * Every mutating call here applies one `sled::Batch` (atomic: all or nothing after a crash).
//! * Calls marked *durable* also `flush` sled before returning. sled 0.34's flush writes its log
//!   and calls `sync_file_range`, which survives a process crash but is not a full `fsync`: a
//!   power loss can lose the last flushed writes. Own-feed batches, which peers may already hold,
//!   therefore also go to [`own_log`], which `fsync`s each batch before it is published. The log
//!   is compacted to its last batch once the store has flushed (at open and at every retention
//!   sweep), so it never keeps a token much longer than the store does.
//! * Ingest writes the chain head last, in the same batch as the entries it covers; replaying
//!   a batch after a crash is a duplicate, or a next that applies again with the same result.

pub mod own_log;

use std::path::Path;

use crossmatch_protocol::{BatchHash, ChainHead, ChainState, Token};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub use own_log::OwnLog;

/// Version of the key layout and value encodings. Bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;
const TREE: &str = "crossmatch-v1";

/// Store errors. Messages name the problem, never a raw identifier.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// The store was written by another schema version.
    #[error(
        "store schema version {found} is not supported (this build reads version {SCHEMA_VERSION}); \
         restore a matching backup or run a matching release"
    )]
    Schema {
        /// The version found.
        found: u32,
    },
    /// A value failed to decode: the store is damaged.
    #[error("store value under prefix {prefix:?} is damaged")]
    Corrupt {
        /// The key prefix.
        prefix: char,
    },
    /// I/O on the own-feed log.
    #[error("own-feed log")]
    Io(#[from] std::io::Error),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A local record id.
pub type RecordId = u64;

/// A raw local record. Never leaves the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Local id.
    pub id: RecordId,
    /// Canonical forms and their tokens.
    pub identifiers: Vec<StoredIdentifier>,
    /// Category label.
    pub category: String,
    /// Handling code name (`H0`–`H3`).
    pub handling: String,
    /// Evaluation (`B2`).
    pub evaluation: String,
    /// Free-text notes (local only).
    pub notes: String,
    /// Posts per day, if known.
    pub activity_per_day: Option<u64>,
    /// Expiry (Unix ms).
    pub expires_at_ms: u64,
    /// Shared with the federation, or only watched.
    pub shared: bool,
    /// Creation time (Unix ms).
    pub created_at_ms: u64,
    /// Who created it.
    pub created_by: String,
}

/// One identifier of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredIdentifier {
    /// The canonical form (raw data: local only).
    pub canonical: String,
    /// Its token in the record's epoch.
    pub token: Token,
    /// That epoch.
    pub epoch: u32,
}

/// An entry waiting in the outbox: encoded, salted, in its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Token epoch.
    pub epoch: u32,
    /// The encoded protocol entry.
    pub entry: Vec<u8>,
}

/// A chain's head and frozen flag, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChainRecord {
    /// Highest contiguous seq (0: none).
    pub seq: u64,
    /// Its hash.
    pub hash: BatchHash,
    /// Frozen by a fork: nothing past `seq` is accepted.
    pub frozen: bool,
    /// A fork was proved after this seq: batches up to it are still applied (a node that held
    /// less of the chain when it learned of the fork catches up to it), nothing past it, and
    /// the chain is frozen once its head reaches it.
    #[serde(default)]
    pub freeze_at: Option<u64>,
}

impl ChainRecord {
    /// The last seq this chain may ever hold, if a fork limits it.
    pub fn limit(&self) -> Option<u64> {
        self.freeze_at.or(self.frozen.then_some(self.seq))
    }

    /// As the protocol's chain state.
    pub fn state(&self) -> ChainState {
        ChainState {
            head: (self.seq > 0).then_some(ChainHead { seq: self.seq, hash: self.hash }),
            frozen: self.frozen,
        }
    }
}

/// Where a stored batch is, by its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLocation {
    /// Origin key.
    pub origin: [u8; 32],
    /// Generation.
    pub generation: u32,
    /// Seq.
    pub seq: u64,
    /// No entry of the stored copy is redacted.
    pub complete: bool,
}

/// Another origin's live `add` of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAdd {
    /// Where the add sits: generation, seq, entry index.
    pub generation: u32,
    /// Seq of its batch.
    pub seq: u64,
    /// Index within the batch.
    pub index: u32,
    /// Epoch of the token.
    pub epoch: u32,
    /// Kind name.
    pub kind: String,
    /// Category.
    pub category: String,
    /// Handling code name.
    pub handling: String,
    /// Evaluation.
    pub evaluation: String,
    /// Activity per day.
    pub activity_per_day: Option<u64>,
    /// Expiry, capped by this node's retention.
    pub expires_at_ms: u64,
    /// The origin's `created_at`.
    pub created_at_ms: u64,
    /// Local receipt time.
    pub received_at_ms: u64,
    /// Latest status the origin reported, and when.
    pub status: Option<(String, u64)>,
}

/// Alert states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertState {
    /// First raised.
    Open,
    /// Counterparts joined or left.
    Updated,
    /// No counterpart left.
    Closed,
    /// Raised again after closing.
    Reopened,
}

impl AlertState {
    /// Every state, in the order an alert may pass through them.
    pub const ALL: [AlertState; 4] =
        [AlertState::Open, AlertState::Updated, AlertState::Closed, AlertState::Reopened];

    /// The state's name in the API (`open`, `updated`, `closed`, `reopened`).
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Updated => "updated",
            AlertState::Closed => "closed",
            AlertState::Reopened => "reopened",
        }
    }
}

/// Error returned when parsing an unknown [`AlertState`] name; its message lists the names
/// [`AlertState::ALL`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAlertState;

impl std::fmt::Display for UnknownAlertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("state is one of ")?;
        for (index, state) in AlertState::ALL.into_iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(state.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownAlertState {}

impl std::str::FromStr for AlertState {
    type Err = UnknownAlertState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertState::ALL.into_iter().find(|state| state.as_str() == s).ok_or(UnknownAlertState)
    }
}

/// One counterpart in an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterpart {
    /// The counterpart's public key (hex).
    pub origin: String,
    /// Its add, as received.
    pub add: RemoteAdd,
    /// True when the match was found by a local add of a token already held remotely.
    pub retro: bool,
}

/// One alert per token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Alert id (local, increasing).
    pub id: u64,
    /// The token (sensitive; shown only as a prefix).
    pub token: Token,
    /// State.
    pub state: AlertState,
    /// Local records holding the token.
    pub records: Vec<RecordId>,
    /// Counterparts.
    pub counterparts: Vec<Counterpart>,
    /// First raised (Unix ms).
    pub opened_at_ms: u64,
    /// Last changed (Unix ms).
    pub updated_at_ms: u64,
    /// Acknowledged by an analyst.
    pub acknowledged: bool,
    /// Change counter, for subscribers.
    pub version: u64,
}

/// Two manifests one origin signed for one position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkEvidence {
    /// The manifest held first.
    pub ours: Vec<u8>,
    /// The conflicting manifest.
    pub theirs: Vec<u8>,
    /// When it was found.
    pub found_at_ms: u64,
}

/// A day's quota use by one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Quota {
    /// Entries accepted.
    pub entries: u64,
    /// Bytes accepted.
    pub bytes: u64,
}

/// Key builders, one per prefix.
pub mod keys {
    use crossmatch_protocol::Token;

    fn join(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
        key.push(prefix);
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }

    /// Metadata.
    pub fn meta(name: &str) -> Vec<u8> {
        join(b'm', &[name.as_bytes()])
    }
    /// A record.
    pub fn record(id: u64) -> Vec<u8> {
        join(b'r', &[&id.to_be_bytes()])
    }
    /// A local holding.
    pub fn holding(token: &Token, id: u64) -> Vec<u8> {
        join(b'h', &[token.as_bytes(), &id.to_be_bytes()])
    }
    /// All local holdings of a token.
    pub fn holdings(token: &Token) -> Vec<u8> {
        join(b'h', &[token.as_bytes()])
    }
    /// An outbox item.
    pub fn outbox(seq: u64) -> Vec<u8> {
        join(b'o', &[&seq.to_be_bytes()])
    }
    /// A batch.
    pub fn batch(origin: &[u8; 32], generation: u32, seq: u64) -> Vec<u8> {
        join(b'b', &[origin, &generation.to_be_bytes(), &seq.to_be_bytes()])
    }
    /// A stored batch's hash.
    pub fn batch_hash(origin: &[u8; 32], generation: u32, seq: u64) -> Vec<u8> {
        join(b'k', &[origin, &generation.to_be_bytes(), &seq.to_be_bytes()])
    }
    /// Where the batch with this hash is stored.
    pub fn batch_location(hash: &crossmatch_protocol::BatchHash) -> Vec<u8> {
        join(b'i', &[hash.as_bytes()])
    }
    /// A chain head.
    pub fn chain(origin: &[u8; 32], generation: u32) -> Vec<u8> {
        join(b'c', &[origin, &generation.to_be_bytes()])
    }
    /// A remote add.
    pub fn remote(token: &Token, origin: &[u8; 32]) -> Vec<u8> {
        join(b't', &[token.as_bytes(), origin])
    }
    /// Where this node's own live add of a token is.
    pub fn own_add(token: &Token) -> Vec<u8> {
        join(b'w', &[token.as_bytes()])
    }
    /// All remote adds of a token.
    pub fn remotes(token: &Token) -> Vec<u8> {
        join(b't', &[token.as_bytes()])
    }
    /// An alert.
    pub fn alert(token: &Token) -> Vec<u8> {
        join(b'a', &[token.as_bytes()])
    }
    /// Fork evidence.
    pub fn fork(origin: &[u8; 32], generation: u32, seq: u64) -> Vec<u8> {
        join(b'f', &[origin, &generation.to_be_bytes(), &seq.to_be_bytes()])
    }
    /// When to redact entries of one stored batch; the value lists their indices.
    pub fn expiry(at_ms: u64, origin: &[u8; 32], generation: u32, seq: u64) -> Vec<u8> {
        join(b'x', &[&at_ms.to_be_bytes(), origin, &generation.to_be_bytes(), &seq.to_be_bytes()])
    }
    /// An entry this node redacted for expiry or retraction.
    pub fn tombstone(origin: &[u8; 32], generation: u32, seq: u64, index: u32) -> Vec<u8> {
        join(b'z', &[origin, &generation.to_be_bytes(), &seq.to_be_bytes(), &index.to_be_bytes()])
    }
    /// When to delete a local record.
    pub fn record_expiry(at_ms: u64, id: u64) -> Vec<u8> {
        join(b'e', &[&at_ms.to_be_bytes(), &id.to_be_bytes()])
    }
    /// A quota day.
    pub fn quota(origin: &[u8; 32], day: u32) -> Vec<u8> {
        join(b'q', &[origin, &day.to_be_bytes()])
    }
}

/// Encodes a value for the store.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serialising our own plain structs into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(value, &mut out);
    out
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    ciborium::de::from_reader(bytes)
        .map_err(|_| Error::Corrupt { prefix: key.first().map_or('?', |b| char::from(*b)) })
}

/// The typed store. Cheap to clone; all methods block, so async callers use `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
}

/// An atomic write set that reads its own writes: changes made so far in the set are visible
/// to `get` and `scan` through it, and all of them land in one `sled::Batch`.
#[derive(Debug)]
pub struct Txn<'a> {
    store: &'a Store,
    changes: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    /// Sets `key` to an encoded value.
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.changes.insert(key, Some(encode(value)));
    }

    /// Sets `key` to raw bytes.
    pub fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: Vec<u8>) {
        self.changes.insert(key, None);
    }

    /// Reads a value, seeing this set's own changes.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.changes.get(key) {
            Some(Some(bytes)) => decode(key, bytes).map(Some),
            Some(None) => Ok(None),
            None => self.store.get(key),
        }
    }

    /// Reads raw bytes, seeing this set's own changes.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.changes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.store.get_raw(key),
        }
    }

    /// All (key, value) pairs under `prefix`, seeing this set's own changes, in key order.
    pub fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            std::collections::BTreeMap::new();
        for item in self.store.tree.scan_prefix(prefix) {
            let (key, value) = item?;
            merged.insert(key.to_vec(), value.to_vec());
        }
        for (key, change) in self.changes.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            match change {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        merged.into_iter().map(|(key, value)| Ok((key.clone(), decode(&key, &value)?))).collect()
    }

    /// Whether the set changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Applies every change atomically.
    pub fn commit(self) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (key, change) in self.changes {
            match change {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.store.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Applies every change atomically and flushes (see the durability contract).
    pub fn commit_durable(self) -> Result<()> {
        let store = self.store;
        self.commit()?;
        store.flush()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`, checking the schema version.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir.join("db")).flush_every_ms(Some(200)).open()?;
        let tree = db.open_tree(TREE)?;
        let store = Self { db, tree };
        match store.get::<u32>(&keys::meta("schema"))? {
            Some(SCHEMA_VERSION) => {}
            Some(found) => return Err(Error::Schema { found }),
            None => {
                store.tree.insert(keys::meta("schema"), encode(&SCHEMA_VERSION))?;
                store.flush()?;
            }
        }
        Ok(store)
    }

    /// Reads and decodes one value.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.tree.get(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    /// Reads raw bytes.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key)?.map(|bytes| bytes.to_vec()))
    }

    /// Whether any key starts with `prefix`.
    pub fn any_with_prefix(&self, prefix: &[u8]) -> Result<bool> {
        Ok(self.tree.scan_prefix(prefix).next().transpose()?.is_some())
    }

    /// The first `limit` (key, decoded value) pairs under `prefix`, in key order.
    pub fn scan_first<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>> {
        self.tree
            .scan_prefix(prefix)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((key.to_vec(), decode(&key, &value)?))
            })
            .collect()
    }

    /// All (key, decoded value) pairs under `prefix`, in key order.
    pub fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (key, value) = item?;
                Ok((key.to_vec(), decode(&key, &value)?))
            })
            .collect()
    }

    /// All keys under `prefix`, in key order.
    pub fn scan_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.tree.scan_prefix(prefix).keys().map(|key| Ok(key?.to_vec())).collect()
    }

    /// Keys in `[from, to)`, at most `limit`.
    pub fn range_keys(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Vec<u8>>> {
        self.tree.range(from..to).keys().take(limit).map(|key| Ok(key?.to_vec())).collect()
    }

    /// Starts an atomic write set.
    pub fn txn(&self) -> Txn<'_> {
        Txn { store: self, changes: std::collections::BTreeMap::new() }
    }

    /// Flushes sled (see the durability contract).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Every key and value in the store, for tests that prove data is purged.
    pub fn dump(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut all = Vec::new();
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name)?;
            for item in tree.iter() {
                let (key, value) = item?;
                all.push((key.to_vec(), value.to_vec()));
            }
        }
        Ok(all)
    }
}
