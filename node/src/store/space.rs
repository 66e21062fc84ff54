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
    /// error saying so otherwise (or the error of asking).
    pub(super) fn check(&self) -> io::Result<()> {
        enough(fs2::available_space(&self.dir)?)
    }
}

/// Whether `available` bytes leave the reserve.
fn enough(available: u64) -> io::Result<()> {
    if available >= RESERVE_BYTES {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::StorageFull,
        format!(
            "the disk is full: the data directory's file system has {} KiB available, under \
             the {} KiB the store keeps free; nothing was written (free space: the node takes \
             work again by itself)",
            available / 1024,
            RESERVE_BYTES / 1024
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_refused_below_the_reserve_and_the_error_says_the_disk_is_full() {
        assert!(enough(RESERVE_BYTES).is_ok());
        assert!(enough(u64::MAX).is_ok());
        let error = enough(RESERVE_BYTES - 1).expect_err("one byte short of the reserve");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(error.to_string().contains("the disk is full"), "{error}");
        assert!(enough(0).is_err());
    }

    #[test]
    fn the_reserve_of_a_roomy_directory_lets_writes_through() {
        let reserve = Reserve::new(&std::env::temp_dir());
        let available = fs2::available_space(std::env::temp_dir()).expect("statvfs");
        assert_eq!(reserve.check().is_ok(), available >= RESERVE_BYTES);
    }
}
