//! The store's reserve of free space. Every write set is refused while the file system that
//! holds the data directory has less than [`RESERVE_BYTES`] available, with an error that
//! says the disk is full. sled (0.34) must never meet a full disk itself: a log buffer whose
//! write fails with `ENOSPC` records the error without waking the flush that waits for that
//! buffer, so the flush, and with it the engine lock and every API call and peer after it,
//! waits for ever, even once space is back. Refused before sled writes, the node answers
//! errors while the disk is full and takes work again by itself once space returns.

use std::io;
use std::path::{Path, PathBuf};

/// The free space a write set needs left on the data directory's file system: room for
/// sled's log buffers and segments (512 KiB each) and a chunk of an import, many times over.
pub const RESERVE_BYTES: u64 = 16 << 20;

/// The check of one store's file system.
#[derive(Debug, Clone)]
pub(super) struct Reserve {
    dir: PathBuf,
}

impl Reserve {
    /// The reserve of the file system holding `dir`.
    pub(super) fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    /// `Ok` while the file system has at least [`RESERVE_BYTES`] available; a `StorageFull`
    /// error saying so otherwise (or the error of asking). What a caller checks before it
    /// does anything a refused write could not undo (an audit line, a signed batch).
    pub(super) fn check(&self) -> io::Result<()> {
        enough(self.available()?, RESERVE_BYTES)
    }

    /// The check of a write set itself, at [`COMMIT_BYTES`]: a write that passed
    /// [`Reserve::check`] a moment before is not refused after its audit line by the few
    /// bytes written in between.
    pub(super) fn check_commit(&self) -> io::Result<()> {
        #[cfg(any(test, feature = "test-support"))]
        if let Some(bytes) = simulated::available_to_commits(&self.dir) {
            return enough(bytes, COMMIT_BYTES);
        }
        enough(self.available()?, COMMIT_BYTES)
    }

    fn available(&self) -> io::Result<u64> {
        #[cfg(any(test, feature = "test-support"))]
        if let Some(bytes) = simulated::available(&self.dir) {
            return Ok(bytes);
        }
        fs2::available_space(&self.dir)
    }
}

/// Whether `error` comes from the store's refusal of a write while the disk is full: an I/O
/// error of kind `StorageFull` among its sources.
pub fn is_disk_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        let io = error.downcast_ref::<io::Error>();
        if io.is_some_and(|io| io.kind() == io::ErrorKind::StorageFull) {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The free space a write set itself needs: half the reserve, the room left for the writes
/// between a caller's check and its commit.
pub const COMMIT_BYTES: u64 = RESERVE_BYTES / 2;

/// Whether `available` bytes leave `needed` free.
fn enough(available: u64, needed: u64) -> io::Result<()> {
    if available >= needed {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::StorageFull,
        format!(
            "the disk is full: the data directory's file system has {} KiB available, under \
             the {} KiB the store keeps free; nothing was written (free space: the node takes \
             work again by itself)",
            available / 1024,
            needed / 1024
        ),
    ))
}

/// Tests' stand-in for the file system's free space, per data directory: lets a test make
/// the reserve (or the commit's own check) refuse without filling a disk.
#[cfg(any(test, feature = "test-support"))]
pub mod simulated {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, PoisonError};

    type Figures = Mutex<Option<HashMap<PathBuf, u64>>>;

    static AVAILABLE: Figures = Mutex::new(None);
    static AVAILABLE_TO_COMMITS: Figures = Mutex::new(None);

    /// From now on the store in `dir` sees `bytes` available (`None`: the real figure again).
    pub fn set_available(dir: &Path, bytes: Option<u64>) {
        set(&AVAILABLE, dir, bytes);
    }

    /// As [`set_available`], for write sets' own check only: the disk filling between a
    /// caller's check and its commit.
    pub fn set_available_to_commits(dir: &Path, bytes: Option<u64>) {
        set(&AVAILABLE_TO_COMMITS, dir, bytes);
    }

    pub(super) fn available(dir: &Path) -> Option<u64> {
        get(&AVAILABLE, dir)
    }

    pub(super) fn available_to_commits(dir: &Path) -> Option<u64> {
        get(&AVAILABLE_TO_COMMITS, dir)
    }

    fn set(figures: &Figures, dir: &Path, bytes: Option<u64>) {
        let mut map = figures.lock().unwrap_or_else(PoisonError::into_inner);
        let map = map.get_or_insert_with(HashMap::new);
        match bytes {
            Some(bytes) => map.insert(dir.to_owned(), bytes),
            None => map.remove(dir),
        };
    }

    fn get(figures: &Figures, dir: &Path) -> Option<u64> {
        let map = figures.lock().unwrap_or_else(PoisonError::into_inner);
        map.as_ref()?.get(dir).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_refused_below_the_reserve_and_the_error_says_the_disk_is_full() {
        assert!(enough(RESERVE_BYTES, RESERVE_BYTES).is_ok());
        assert!(enough(u64::MAX, RESERVE_BYTES).is_ok());
        let error = enough(RESERVE_BYTES - 1, RESERVE_BYTES).expect_err("one byte short");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(error.to_string().contains("the disk is full"), "{error}");
        assert!(enough(0, COMMIT_BYTES).is_err());
    }

    #[test]
    fn the_reserve_of_a_roomy_directory_lets_writes_through() {
        let reserve = Reserve::new(&std::env::temp_dir());
        let available = fs2::available_space(std::env::temp_dir()).expect("statvfs");
        assert_eq!(reserve.check().is_ok(), available >= RESERVE_BYTES);
    }

    #[test]
    fn a_commit_passes_between_half_the_reserve_and_the_reserve_where_a_check_is_refused() {
        let dir = std::env::temp_dir().join("crossmatch-space-simulated");
        let reserve = Reserve::new(&dir);
        simulated::set_available(&dir, Some(RESERVE_BYTES - 1));
        assert!(reserve.check().is_err());
        assert!(reserve.check_commit().is_ok());
        simulated::set_available(&dir, Some(COMMIT_BYTES - 1));
        assert!(reserve.check_commit().is_err());
        simulated::set_available(&dir, None);
    }
}
