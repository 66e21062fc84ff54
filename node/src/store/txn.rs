//! The store's write set: [`Txn`], an atomic set of changes that reads its own writes and
//! lands in one `sled::Batch` (or, for the hunt's retention purge alone, in several:
//! [`Txn::commit_durable_in_slices`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys;
use super::records::RemoteAdd;
use super::{Result, Store, encode};
use crossmatch_protocol::Token;

/// An atomic write set that reads its own writes: changes made so far in the set are visible
/// to `get` and `scan` through it, and all of them land in one `sled::Batch` (except through
/// [`Txn::commit_durable_in_slices`]).
#[derive(Debug)]
pub struct Txn<'a> {
    store: &'a Store,
    changes: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    /// An empty write set on `store`.
    pub(super) fn new(store: &'a Store) -> Self {
        Self { store, changes: std::collections::BTreeMap::new() }
    }

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
            Some(Some(bytes)) => self.store.decode(key, bytes).map(Some),
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
        for item in self.store.scan_raw(prefix) {
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
        merged
            .into_iter()
            .map(|(key, value)| Ok((key.clone(), self.store.decode(&key, &value)?)))
            .collect()
    }

    /// Keys in `[from, to)`, seeing this set's own changes, in key order.
    pub fn range_keys(&self, from: &[u8], to: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut merged = std::collections::BTreeSet::new();
        for key in self.store.tree.range(from..to).keys() {
            merged.insert(key?.to_vec());
        }
        for (key, change) in self.changes.range(from.to_vec()..to.to_vec()) {
            match change {
                Some(_) => merged.insert(key.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// Stores `origin`'s live add of `token`, replacing any earlier one. Nothing else is
    /// written per add: where an origin's adds sit is read from its stored batches
    /// (`engine/live_adds.rs`).
    pub fn put_remote_add(&mut self, token: &Token, origin: &[u8; 32], add: &RemoteAdd) {
        self.put(keys::remote_add(token, origin), add);
    }

    /// Removes `origin`'s live add of `token`; returns what it was.
    pub fn remove_remote_add(
        &mut self,
        token: &Token,
        origin: &[u8; 32],
    ) -> Result<Option<RemoteAdd>> {
        let key = keys::remote_add(token, origin);
        let previous = self.get::<RemoteAdd>(&key)?;
        if previous.is_some() {
            self.remove(key);
        }
        Ok(previous)
    }

    /// Removes `origin`'s live add of `token`, which the caller has read.
    pub(crate) fn forget_remote_add(&mut self, token: &Token, origin: &[u8; 32]) {
        self.remove(keys::remote_add(token, origin));
    }

    /// Whether the set changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Applies every change atomically; refused, with nothing written, while the disk is
    /// full (`store/space.rs`).
    pub fn commit(self) -> Result<()> {
        self.apply(usize::MAX)
    }

    /// Applies every change atomically and flushes (see the durability contract).
    pub fn commit_durable(self) -> Result<()> {
        let store = self.store;
        self.commit()?;
        store.flush()
    }

    /// Applies the changes in key order, in batches of at most `max_changes`, then flushes
    /// once. Each batch is atomic, the whole is not: only for changes that a crash part way
    /// leaves consistent and that the next such write completes (the hunt's retention purge,
    /// derived again from what the store holds at each tick). The reason: sled makes each
    /// insert and removal a new copy of its leaf and frees the copies a batch replaces only
    /// after the batch ends, so one batch holds memory in proportion to its changes (a purge of
    /// a day of posts in one batch took some 180 MB).
    pub fn commit_durable_in_slices(self, max_changes: usize) -> Result<()> {
        let store = self.store;
        self.apply(max_changes.max(1))?;
        store.flush()
    }

    /// Applies the changes in key order, `per_batch` to a `sled::Batch`; refused, with nothing
    /// more written, while the disk is full.
    fn apply(self, per_batch: usize) -> Result<()> {
        #[cfg(feature = "test-support")]
        self.store.remember_prior_values(self.changes.keys())?;
        if self.changes.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for (key, change) in self.changes {
            if in_batch == 0 {
                self.store.reserve.check_commit()?;
            }
            match change {
                Some(value) => {
                    self.store.presence.note(&key);
                    batch.insert(key, value);
                }
                None => batch.remove(key),
            }
            in_batch += 1;
            if in_batch == per_batch {
                apply_batch(self.store, std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        if in_batch > 0 {
            apply_batch(self.store, batch)?;
        }
        Ok(())
    }
}

/// Applies one batch of a write set (counted, for tests).
fn apply_batch(store: &Store, batch: sled::Batch) -> Result<()> {
    #[cfg(feature = "test-support")]
    store.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(store.tree.apply_batch(batch)?)
}
