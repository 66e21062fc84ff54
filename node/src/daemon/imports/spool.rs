//! An import's upload spooled to `<data_dir>/imports/` (0700): written to an `upload-*.part`
//! file (0600) in buffered steps off the async workers, counted against
//! `limits::MAX_IMPORT_BYTES`, synced, and renamed to `<id>.src` (the directory synced) once its
//! job exists. A spool dropped before that deletes its file; a crash's leftovers are deleted at
//! the next start ([`clean_leftovers`]), and so are the files of jobs that ended
//! ([`clean_orphans`]).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::import::limits::{MAX_IMPORT_BYTES, MAX_LINE_BYTES};
use crate::store::imports::ImportId;

use super::ImportError;

/// The imports' directory under the data directory.
pub const IMPORTS_DIR: &str = "imports";
/// Bytes gathered before they are written to the spool file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Suffix of a spool being written.
const PART_SUFFIX: &str = ".part";

/// Names spool files apart within the process (one node per data directory).
static NEXT_SPOOL: AtomicU64 = AtomicU64::new(0);

/// A job's spooled file.
pub(super) fn source_path(dir: &Path, id: ImportId) -> PathBuf {
    dir.join(format!("{id}.src"))
}

/// Deletes `upload-*.part` files a crash left behind; returns how many.
pub(super) fn clean_leftovers(dir: &Path) -> std::io::Result<usize> {
    let mut deleted = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "part") {
            std::fs::remove_file(&path)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes the `<id>.src` files of jobs not in `active` (ended while their file's deletion
/// failed, or before a crash deleted it: raw identifiers have no business staying); returns
/// how many.
pub(super) fn clean_orphans(
    dir: &Path,
    active: &std::collections::BTreeSet<ImportId>,
) -> std::io::Result<usize> {
    let mut deleted = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let id = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".src"))
            .and_then(|id| id.parse::<ImportId>().ok());
        if id.is_some_and(|id| !active.contains(&id)) {
            std::fs::remove_file(&path)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// An upload being written to the imports' directory.
#[derive(Debug)]
pub struct Spool {
    /// The file, between writes (`None` while a write runs on a blocking thread).
    file: Option<std::fs::File>,
    path: PathBuf,
    buffer: Vec<u8>,
    bytes: u64,
    /// The file's first bytes, for format detection.
    head: Vec<u8>,
    /// Renamed into place: no longer deleted when dropped.
    kept: bool,
}

impl Spool {
    /// Creates a new, empty spool file in `dir` (blocking).
    pub(super) fn create(dir: &Path) -> std::io::Result<Self> {
        let n = NEXT_SPOOL.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("upload-{}-{n}{PART_SUFFIX}", std::process::id()));
        let file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        Ok(Self {
            file: Some(file),
            path,
            buffer: Vec::new(),
            bytes: 0,
            head: Vec::new(),
            kept: false,
        })
    }

    /// Bytes spooled so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The file's first bytes (up to one line's limit).
    pub(super) fn head(&self) -> &[u8] {
        &self.head
    }

    /// Where the spool is now.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `data`; past `MAX_IMPORT_BYTES` it refuses ([`ImportError::TooLarge`]) and the
    /// spool is deleted when dropped.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ImportError> {
        self.bytes = self.bytes.saturating_add(data.len() as u64);
        if self.bytes > MAX_IMPORT_BYTES {
            return Err(ImportError::TooLarge);
        }
        if self.head.len() < MAX_LINE_BYTES {
            let take = (MAX_LINE_BYTES - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
        }
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            self.flush(false).await?;
        }
        Ok(())
    }

    /// Writes what is buffered (and syncs the file when `sync`) on a blocking thread.
    async fn flush(&mut self, sync: bool) -> Result<(), ImportError> {
        let mut file = self.file.take().ok_or_else(|| {
            ImportError::Spool(std::io::Error::other("an earlier spool write failed"))
        })?;
        let buffer = std::mem::take(&mut self.buffer);
        let (file, mut buffer) = tokio::task::spawn_blocking(move || {
            file.write_all(&buffer)?;
            if sync {
                file.sync_all()?;
            }
            Ok::<_, std::io::Error>((file, buffer))
        })
        .await
        .map_err(|_| ImportError::Spool(std::io::Error::other("the spool write failed")))?
        .map_err(ImportError::Spool)?;
        buffer.clear();
        (self.file, self.buffer) = (Some(file), buffer);
        Ok(())
    }

    /// Writes the rest and syncs the file.
    pub(super) async fn finish(&mut self) -> Result<(), ImportError> {
        self.flush(true).await
    }

    /// Renames the (finished) spool to `to` and syncs the directory (blocking): from then on the
    /// file is the job's.
    pub(super) fn keep_as(&mut self, to: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, to)?;
        self.kept = true;
        if let Some(dir) = to.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.kept {
            // Raw identifiers: the file goes whatever happened to the upload.
            drop(self.file.take());
            if let Err(error) = std::fs::remove_file(&self.path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(%error, "an import upload's spool file could not be deleted");
            }
        }
    }
}
