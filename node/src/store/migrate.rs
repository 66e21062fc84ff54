//! The migrations the store runs when it opens an older schema, each to the next version (a
//! schema 1 store, which has no index by chain, skips version 3).
//!
//! Each writes in slices, then flushes, then writes its version, then flushes: a crash part way
//! leaves the older version with part of the work done, and the next open runs the migration
//! again. Nothing a migration deletes is deleted before its version is written, so the store
//! stays whole for the older build until then. None needs more than one slice in memory.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, btree_map};

use crossmatch_protocol::BatchId;

use super::imports::{ImportId, ImportJob, ImportedRecord, RecordImport};
use super::{Error, Record, Result, Store, Tombstones, encode, keys};

/// A job's created range (`ImportJob::created`).
type Created = Option<(super::RecordId, super::RecordId)>;

/// Rows a migration writes per `sled::Batch`: sled holds a batch's copies of the leaves it
/// touches until the batch ends (`Txn::commit_durable_in_slices`).
const SLICE: usize = 1_000;

impl Store {
    /// Schema 2 to 3: the row schema 2 kept per record an import created (`j`: import id ‖
    /// record id, with the record's fingerprint then) is replaced. Its fingerprint is copied
    /// into the record's [`RecordImport`], and its record id into the job's created range, in
    /// slices, the rows kept; then the version is written; then the rows are deleted
    /// (`Store::drop_rows_of_old_schema`). Until the version is written the store is a whole
    /// schema 2 store that an older build can still run (and the copy is redone from the rows
    /// at the next open, whatever such a build rewrote meanwhile); after it, a schema 3 store
    /// that older builds refuse. An import then writes one row fewer per record.
    ///
    /// A schema 1 store (before the index by chain) is written version `then` = 4 at once, never
    /// 3: a schema 3 build would take it for whole and find no index.
    pub(super) fn migrate_from_2(&self, then: u32) -> Result<()> {
        let (mut from, to) = keys::all_imported_records_range();
        loop {
            let rows = self
                .tree
                .range(from.clone()..to.clone())
                .take(SLICE)
                .collect::<sled::Result<Vec<_>>>()?;
            let Some((last, _)) = rows.last() else { break };
            from = [last.as_ref(), &[0]].concat();
            let mut batch = sled::Batch::default();
            let mut jobs: HashMap<ImportId, Option<(Created, ImportJob)>> = HashMap::new();
            for (key, value) in rows {
                let (import, id) = keys::parse_imported_record(&key)
                    .ok_or(Error::Corrupt { prefix: keys::prefix_of(&key) })?;
                let made: ImportedRecord = self.decode(&key, &value)?;
                let record_key = keys::record(id);
                let Some(mut record) = self.get::<Record>(&record_key)? else { continue };
                let Some(created) = record.import.filter(|created| created.import == import) else {
                    continue;
                };
                // A copy run again (after one cut short) rewrites only what is not there yet.
                let fingerprint = Some(made.fingerprint);
                if created.fingerprint != fingerprint {
                    record.import = Some(RecordImport { fingerprint, ..created });
                    batch.insert(record_key, encode(&record));
                }
                let job = match jobs.entry(import) {
                    Entry::Occupied(job) => job.into_mut(),
                    Entry::Vacant(job) => {
                        let stored: Option<ImportJob> = self.get(&keys::import_job(import))?;
                        job.insert(stored.map(|job| (job.created, job)))
                    }
                };
                if let Some((_, job)) = job {
                    job.note_created(id);
                }
            }
            let widened = jobs.into_values().flatten().filter(|(was, job)| *was != job.created);
            for (_, job) in widened {
                batch.insert(keys::import_job(job.id), encode(&job));
            }
            self.reserve.check_commit()?;
            self.tree.apply_batch(batch)?;
        }
        self.set_schema(then)?;
        self.drop_rows_of_old_schema(keys::all_imported_records());
        Ok(())
    }

    /// Schema 3 to 4: the index of remote adds by chain (`p`: origin ‖ generation ‖ seq ‖
    /// token, one row per live remote add) is dropped; a fork, a withdrawal and an allowance's
    /// count read the origin's stored batches instead (`engine/live_adds.rs`), so ingest writes
    /// one row per remote add, not two. Nothing is copied: the version is written, then the
    /// rows are deleted in slices. A schema 1 store (before the index) comes here at version 4.
    pub(super) fn migrate_from_3(&self) -> Result<()> {
        self.set_schema(4)?;
        self.drop_rows_of_old_schema(keys::all_remote_add_places());
        Ok(())
    }

    /// Schema 4 to 5: the tombstone row kept per redacted entry (`z`: origin ‖ generation ‖
    /// seq ‖ index) is folded into one row per batch (`v`, [`Tombstones`]), in slices, the rows
    /// kept; then the version is written; then the rows are deleted. A copy run again (after
    /// one cut short, or after a schema 4 build ran the store meanwhile) sets the bits it set
    /// before and those of any row written since, so nothing is lost.
    pub(super) fn migrate_from_4(&self) -> Result<()> {
        let mut from = keys::all_entry_tombstones();
        let to = vec![keys::prefix::ENTRY_TOMBSTONE + 1];
        loop {
            let rows = self
                .tree
                .range(from.clone()..to.clone())
                .keys()
                .take(SLICE)
                .collect::<sled::Result<Vec<_>>>()?;
            let Some(last) = rows.last() else { break };
            from = [last.as_ref(), &[0]].concat();
            let mut folded: BTreeMap<BatchId, Tombstones> = BTreeMap::new();
            for key in &rows {
                let (id, index) = keys::parse_entry_tombstone(key)
                    .ok_or(Error::Corrupt { prefix: keys::prefix_of(key) })?;
                let tombstones = match folded.entry(id) {
                    btree_map::Entry::Occupied(held) => held.into_mut(),
                    btree_map::Entry::Vacant(slot) => slot.insert(self.tombstones(&id)?),
                };
                tombstones.insert(index);
            }
            let mut batch = sled::Batch::default();
            for (id, tombstones) in folded {
                batch.insert(keys::tombstones(&id), tombstones.to_row());
            }
            self.reserve.check_commit()?;
            self.tree.apply_batch(batch)?;
        }
        self.set_schema(5)?;
        self.drop_rows_of_old_schema(keys::all_entry_tombstones());
        Ok(())
    }

    /// Deletes the rows older schemas kept and the current one reads none of: the `j` rows of
    /// schema 2, the `p` rows of schemas 2 and 3 and the `z` rows of schema 4 and before. Tried
    /// at every open of a current store while any is left (a migration cut short after its
    /// version was written).
    pub(super) fn drop_rows_of_old_schemas(&self) {
        self.drop_rows_of_old_schema(keys::all_imported_records());
        self.drop_rows_of_old_schema(keys::all_remote_add_places());
        self.drop_rows_of_old_schema(keys::all_entry_tombstones());
    }

    /// Deletes the rows under `prefix`, in slices: the last step of a migration, once its
    /// version is written (never before, so the older schema's store stays whole until then).
    /// A deletion that fails (the disk full, each slice checking the reserve as every write
    /// does) is logged and left to a later open, never an error.
    fn drop_rows_of_old_schema(&self, prefix: Vec<u8>) {
        if let Err(error) = self.try_drop_rows(&prefix) {
            tracing::warn!(%error, "rows of an older schema left to delete at a later start");
        }
    }

    fn try_drop_rows(&self, prefix: &[u8]) -> Result<()> {
        loop {
            let keys = self
                .tree
                .scan_prefix(prefix)
                .keys()
                .take(SLICE)
                .collect::<sled::Result<Vec<_>>>()?;
            if keys.is_empty() {
                return Ok(());
            }
            self.reserve.check_commit()?;
            let mut batch = sled::Batch::default();
            for key in keys {
                batch.remove(key);
            }
            self.tree.apply_batch(batch)?;
            self.flush()?;
        }
    }

    /// Flushes what a migration wrote, then writes and flushes the schema version.
    fn set_schema(&self, version: u32) -> Result<()> {
        self.flush()?;
        self.reserve.check_commit()?;
        self.tree.insert(keys::meta("schema"), encode(&version))?;
        self.flush()
    }
}
