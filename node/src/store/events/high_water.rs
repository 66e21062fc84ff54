//! The event log's high-water file, `<data_dir>/event-log.head`: the newest head the daemon's
//! pump published (its incarnation and seq), kept outside the store so that a store put back
//! from a copy is caught. The pump writes it after the store flush that made the head durable
//! and before the head is published, so it never names a seq the store could have lost;
//! replaced atomically (a temporary file written and synced, renamed over, the directory
//! synced), as `audit.head` is. At open, a store whose `event-seq` is behind it, or whose
//! incarnation it does not name, or that says it was written while it is missing, cannot hold
//! every event readers may have been given: the engine draws a new incarnation
//! (`engine/alerts.rs`), and then writes the file itself, after a flush, to name the store.

use std::fs;
use std::io;
use std::path::Path;

use crate::keyfile::{self, Existing};

/// The file's name in the data directory.
pub const HIGH_WATER_FILE_NAME: &str = "event-log.head";
/// The temporary name it is written under before being renamed into place.
const HIGH_WATER_TEMP_FILE_NAME: &str = "event-log.head.tmp";
/// Longer than any file this module writes: a larger one is not read.
const MAX_FILE_BYTES: u64 = 64;

/// A head published by the pump: an incarnation and the last seq delivered under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HighWater {
    /// The store's event incarnation.
    pub incarnation: u64,
    /// The last seq that may have been delivered.
    pub seq: u64,
}

/// What the data directory says of the high-water mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HighWaterFile {
    /// No file: the first start of a version that writes it, or, on a store that says it was
    /// written (`m`/`event-high-water-written`), a store restored into a directory without it.
    Missing,
    /// The mark.
    At(HighWater),
    /// A file that is not one this module wrote: the node cannot tell which head it last
    /// published, so the engine takes it as a restore and draws a new incarnation.
    Unreadable,
}

impl HighWater {
    /// The file's one line: `<incarnation as 16 lowercase hex digits>-<seq>\n`, an event id.
    fn line(self) -> String {
        format!("{:016x}-{}\n", self.incarnation, self.seq)
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        let line = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
        let (incarnation, seq) = line.split_once('-')?;
        let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if incarnation.len() != 16 || !incarnation.chars().all(lower_hex) {
            return None;
        }
        if seq.is_empty() || !seq.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            incarnation: u64::from_str_radix(incarnation, 16).ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// Reads the high-water file of the data directory `dir`.
pub fn read_high_water(dir: &Path) -> io::Result<HighWaterFile> {
    let path = dir.join(HIGH_WATER_FILE_NAME);
    let file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(HighWaterFile::Missing),
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES + 1), &mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Ok(HighWaterFile::Unreadable);
    }
    Ok(HighWater::parse(&bytes).map_or(HighWaterFile::Unreadable, HighWaterFile::At))
}

/// Replaces the high-water file of `dir` with `mark`, atomically and durably: a crash leaves
/// the old mark or the new one, never a torn file. The caller must have made every event up
/// to `mark.seq` durable first.
pub fn write_high_water(dir: &Path, mark: HighWater) -> io::Result<()> {
    keyfile::replace_private_file(
        &dir.join(HIGH_WATER_FILE_NAME),
        &dir.join(HIGH_WATER_TEMP_FILE_NAME),
        mark.line().as_bytes(),
        Existing::Replace,
    )
    .map_err(|error| error.source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    #[test]
    fn the_mark_is_written_whole_and_read_back() {
        let temp = TempDir::new("high-water-round-trip");
        let dir = temp.path();
        assert_eq!(read_high_water(dir).unwrap(), HighWaterFile::Missing);
        let mark = HighWater { incarnation: 0x9f2c_01ab_77e0_d3c4, seq: 1042 };
        write_high_water(dir, mark).unwrap();
        assert_eq!(read_high_water(dir).unwrap(), HighWaterFile::At(mark));
        let text = fs::read_to_string(dir.join(HIGH_WATER_FILE_NAME)).unwrap();
        assert_eq!(text, "9f2c01ab77e0d3c4-1042\n");
        let later = HighWater { seq: 1043, ..mark };
        write_high_water(dir, later).unwrap();
        assert_eq!(read_high_water(dir).unwrap(), HighWaterFile::At(later));
        assert!(!dir.join(HIGH_WATER_TEMP_FILE_NAME).exists(), "the temporary was renamed");
        let mode = fs::metadata(dir.join(HIGH_WATER_FILE_NAME)).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }

    #[test]
    fn a_file_this_module_did_not_write_is_unreadable() {
        let temp = TempDir::new("high-water-unreadable");
        let dir = temp.path();
        for bad in [
            &b""[..],
            b"9f2c01ab77e0d3c4-1042",
            b"9F2C01AB77E0D3C4-1042\n",
            b"9f2c01ab77e0d3c4-\n",
            b"9f2c01ab77e0d3c4-12x\n",
            b"9f2c01ab77e0d3c4-99999999999999999999999\n",
            &[b'1'; 100],
        ] {
            fs::write(dir.join(HIGH_WATER_FILE_NAME), bad).unwrap();
            assert_eq!(read_high_water(dir).unwrap(), HighWaterFile::Unreadable, "{bad:?}");
        }
    }
}
