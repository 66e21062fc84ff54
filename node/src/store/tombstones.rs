//! Tombstones: the entries of a stored batch this node redacted for good (expired, retracted,
//! or unusable here), which no peer's copy may refill. One row per batch (`v`), a bit per
//! entry, written only when a bit is set, never deleted while the batch is kept.
//!
//! A mark reads the row and writes it back whole, so two write sets that mark the same batch at
//! once would lose one's bits. None do: every writer is an engine flow, run under the engine's
//! exclusive borrow, and a write set reads its own writes.
//!
//! Schema 4 kept a row per entry (`z`), about 50 bytes of key for one bit: a million entries
//! purged left a million rows for the life of the store, and each purge wrote one more row per
//! entry. The migration to schema 5 (`store/migrate.rs`) folds them into these.

use crossmatch_protocol::BatchId;
use crossmatch_protocol::limits::MAX_ENTRIES_PER_BATCH;

use super::{Error, Result, Store, Txn, keys};

/// Bytes of a batch's tombstones, fixed by the schema: a bit for each entry a batch may hold.
const BYTES: usize = 32;
const _: () = assert!(MAX_ENTRIES_PER_BATCH <= BYTES * 8, "a row has a bit per entry");

/// The entries of one batch redacted for good: bit `i % 8` of byte `i / 8` for entry `i`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tombstones([u8; BYTES]);

impl Tombstones {
    /// Whether entry `index` is redacted for good (false past the last entry a batch may hold).
    pub fn contains(&self, index: usize) -> bool {
        self.0.get(index / 8).is_some_and(|byte| byte & (1 << (index % 8)) != 0)
    }

    /// Marks entry `index`; whether it was not marked before. An index past the last entry a
    /// batch may hold is no entry of any stored batch (decoding refuses such batches) and
    /// marks nothing.
    pub fn insert(&mut self, index: u32) -> bool {
        let index = index as usize;
        let Some(byte) = self.0.get_mut(index / 8) else { return false };
        let bit = 1 << (index % 8);
        let new = *byte & bit == 0;
        *byte |= bit;
        new
    }

    /// How many entries are marked.
    pub fn len(&self) -> usize {
        self.0.iter().map(|byte| byte.count_ones() as usize).sum()
    }

    /// Whether no entry is marked.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&byte| byte == 0)
    }

    /// Reads a stored row: exactly [`BYTES`] bytes, or damage.
    pub(super) fn from_row(key: &[u8], bytes: &[u8]) -> Result<Self> {
        let bits = bytes.try_into().map_err(|_| Error::Corrupt { prefix: keys::prefix_of(key) })?;
        Ok(Self(bits))
    }

    /// The stored row.
    pub(super) fn to_row(self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl Store {
    /// The tombstones of batch `id` (none marked when it has no row).
    pub fn tombstones(&self, id: &BatchId) -> Result<Tombstones> {
        let key = keys::tombstones(id);
        self.get_raw(&key)?
            .map_or(Ok(Tombstones::default()), |row| Tombstones::from_row(&key, &row))
    }
}

impl Txn<'_> {
    /// The tombstones of batch `id`, seeing this set's own changes.
    pub fn tombstones(&self, id: &BatchId) -> Result<Tombstones> {
        let key = keys::tombstones(id);
        self.get_raw(&key)?
            .map_or(Ok(Tombstones::default()), |row| Tombstones::from_row(&key, &row))
    }

    /// Marks entries `indices` of batch `id` redacted for good: its row is written only when
    /// one of them was not marked already.
    pub fn put_tombstones(
        &mut self,
        id: &BatchId,
        indices: impl IntoIterator<Item = u32>,
    ) -> Result<()> {
        let mut tombstones = self.tombstones(id)?;
        let mut changed = false;
        for index in indices {
            changed |= tombstones.insert(index);
        }
        if changed {
            self.put_raw(keys::tombstones(id), tombstones.to_row());
        }
        Ok(())
    }

    /// Marks entry `index` of batch `id` redacted for good.
    pub fn put_tombstone(&mut self, id: &BatchId, index: u32) -> Result<()> {
        self.put_tombstones(id, [index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bit_per_entry_and_nothing_past_the_last_entry_a_batch_may_hold() {
        let mut tombstones = Tombstones::default();
        assert!(tombstones.is_empty());
        assert!(tombstones.insert(0) && tombstones.insert(9) && tombstones.insert(255));
        assert!(!tombstones.insert(9), "marked already");
        assert!(!tombstones.insert(256) && !tombstones.insert(u32::MAX), "no such entry");
        let marked: Vec<usize> = (0..300).filter(|&i| tombstones.contains(i)).collect();
        assert_eq!(marked, [0, 9, 255]);
        assert_eq!(tombstones.len(), 3);
        let row = tombstones.to_row();
        assert_eq!(row.len(), 32);
        assert_eq!(Tombstones::from_row(b"v", &row).unwrap(), tombstones);
        assert!(matches!(
            Tombstones::from_row(b"v", &row[1..]),
            Err(Error::Corrupt { prefix: 'v' })
        ));
    }

    #[test]
    fn marks_in_one_write_set_add_up() {
        let dir = std::env::temp_dir().join(format!("crossmatch-txn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let id = BatchId::new([3; 32], 1, 1);
        let mut txn = store.txn();
        txn.put_tombstone(&id, 1).unwrap();
        txn.put_tombstones(&id, [2, 200]).unwrap();
        txn.put_tombstone(&id, 1).unwrap();
        txn.commit().unwrap();
        let tombstones = store.tombstones(&id).unwrap();
        assert_eq!((0..256).filter(|&i| tombstones.contains(i)).collect::<Vec<_>>(), [1, 2, 200]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
