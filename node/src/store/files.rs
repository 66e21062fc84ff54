//! sled's files, which the store syncs itself after every flush (the durability contract in
//! the store's module docs): sled 0.34's own flush stops at `sync_file_range`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Result, sync_dir};

/// sled's data file and blob directory, which this module syncs itself: sled 0.34's `flush`
/// ends in `sync_file_range`, which neither flushes the drive's cache nor the file's metadata,
/// and writes blobs (values too large for a log segment) without syncing them at all.
#[derive(Debug)]
pub(super) struct SledFiles {
    /// The log and page file, `db/db`, open for syncing only.
    data: std::fs::File,
    /// `db/blobs`.
    blobs: std::path::PathBuf,
    /// Blob files synced already (of those present at the last sync).
    pub(super) synced_blobs: std::sync::Mutex<std::collections::HashSet<std::ffi::OsString>>,
    /// Syncs completed since open.
    pub(super) syncs: AtomicU64,
}

impl SledFiles {
    /// Opens sled's files under `db` for syncing, syncs its settings file (`conf`, which sled
    /// never syncs), the directory and its parent (the data directory), so the entries of the
    /// files sled just created, and of `db` itself, are durable too: a power loss after the
    /// first start cannot lose the store while the audit log beside it stays.
    pub(super) fn open(db: &Path) -> Result<Self> {
        let data = std::fs::File::open(db.join("db"))?;
        // sled writes its settings (the segment size) once, at the store's creation, unsynced.
        std::fs::File::open(db.join("conf"))?.sync_data()?;
        sync_dir(db)?;
        if let Some(parent) = db.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        let files = Self {
            data,
            blobs: db.join("blobs"),
            synced_blobs: std::sync::Mutex::new(std::collections::HashSet::new()),
            syncs: AtomicU64::new(0),
        };
        files.sync()?;
        Ok(files)
    }

    /// `fdatasync`s every blob file not synced before and the blob directory when it gained
    /// one, then the data file: blobs first, so that a durable log never points at a blob
    /// that is not. Remembers only the blobs present now, so names sled has deleted are
    /// forgotten rather than kept for the life of the process.
    pub(super) fn sync(&self) -> Result<()> {
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut present = std::collections::HashSet::with_capacity(synced.len());
        let mut new_blobs = false;
        let entries = match std::fs::read_dir(&self.blobs) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            entries => Some(entries?),
        };
        for entry in entries.into_iter().flatten() {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match std::fs::File::open(self.blobs.join(&name)) {
                    // sled deletes blobs it no longer needs meanwhile: nothing to sync.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    file => file?.sync_data()?,
                }
                new_blobs = true;
            }
            present.insert(name);
        }
        *synced = present;
        if new_blobs {
            sync_dir(&self.blobs)?;
        }
        self.data.sync_data()?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
