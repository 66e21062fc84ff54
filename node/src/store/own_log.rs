//! The own-feed log: every batch this node signs is appended here and `fsync`ed before it is
//! published, so a published seq is never reused, even after a power loss.
//!
//! Record format: `len: u32 BE` ‖ `outbox_last: u64 BE` ‖ `wire: [u8; len − 8]` ‖
//! `check: [u8; 16]`, where `check` is the first 16 bytes of
//! `BLAKE3-derive_key("crossmatch own log v1", len ‖ outbox_last ‖ wire)`. On open, a torn or
//! damaged tail (a crash during an append, which was therefore never published) is cut off.
//! An append that fails (a full disk) is cut off at once, before the next append, so that a
//! torn record can never hide the records written after it; if even that fails, the log
//! refuses appends until it is reopened.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crossmatch_protocol::limits::MAX_BATCH_BYTES;

const CHECK_CONTEXT: &str = "crossmatch own log v1";
const CHECK_BYTES: usize = 16;

/// One logged batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The last outbox seq the batch consumed.
    pub outbox_last: u64,
    /// The batch's wire form.
    pub wire: Vec<u8>,
}

/// The append-only, fsynced log of this node's own batches.
#[derive(Debug)]
pub struct OwnLog {
    file: File,
    path: std::path::PathBuf,
    /// Bytes of intact records: where the next record starts.
    len: u64,
    /// A failed append could not be cut off: nothing more is appended until the log is
    /// reopened (which cuts the torn tail).
    poisoned: bool,
    /// Test hook: the next append writes this many bytes, then fails as a full disk would.
    #[cfg(test)]
    fail_after: Option<usize>,
}

fn check(len: &[u8], outbox_last: &[u8], wire: &[u8]) -> [u8; CHECK_BYTES] {
    let mut hasher = blake3::Hasher::new_derive_key(CHECK_CONTEXT);
    hasher.update(len).update(outbox_last).update(wire);
    let mut out = [0u8; CHECK_BYTES];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECK_BYTES]);
    out
}

impl OwnLog {
    /// Opens the log at `path`, returning every intact record; a damaged tail is truncated.
    pub fn open(path: &Path) -> std::io::Result<(Self, Vec<Logged>)> {
        let existed = path.exists();
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(path)?;
        if !existed && let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut records = Vec::new();
        let mut offset = 0;
        while let Some((record, next)) = Self::parse(&bytes, offset) {
            records.push(record);
            offset = next;
        }
        if offset < bytes.len() {
            file.set_len(offset as u64)?;
            file.sync_all()?;
            file.seek(SeekFrom::End(0))?;
        }
        Ok((Self::new(file, path.to_owned(), offset as u64), records))
    }

    fn new(file: File, path: std::path::PathBuf, len: u64) -> Self {
        Self {
            file,
            path,
            len,
            poisoned: false,
            #[cfg(test)]
            fail_after: None,
        }
    }

    fn parse(bytes: &[u8], offset: usize) -> Option<(Logged, usize)> {
        let len_bytes = bytes.get(offset..offset + 4)?;
        let len = u32::from_be_bytes(len_bytes.try_into().ok()?) as usize;
        if !(8..=8 + MAX_BATCH_BYTES).contains(&len) {
            return None;
        }
        let body = bytes.get(offset + 4..offset + 4 + len)?;
        let stored = bytes.get(offset + 4 + len..offset + 4 + len + CHECK_BYTES)?;
        let (outbox_last, wire) = body.split_at(8);
        if check(len_bytes, outbox_last, wire) != stored {
            return None;
        }
        let record = Logged {
            outbox_last: u64::from_be_bytes(outbox_last.try_into().ok()?),
            wire: wire.to_vec(),
        };
        Some((record, offset + 4 + len + CHECK_BYTES))
    }

    /// Replaces the log with `keep` alone (or nothing), atomically: a temporary file is written
    /// and `fsync`ed, renamed over the log, and the directory `fsync`ed. Call it only once the
    /// store holds every logged batch durably; it keeps old batches (and their tokens) from
    /// outliving retention in the log.
    pub fn compact(&mut self, keep: Option<&Logged>) -> std::io::Result<()> {
        let temporary = self.path.with_extension("compact");
        {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            let mut log = Self::new(file, temporary.clone(), 0);
            if let Some(keep) = keep {
                log.append(keep.outbox_last, &keep.wire)?;
            }
            log.file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().read(true).append(true).open(&self.path)?;
        self.len = self.file.metadata()?.len();
        self.poisoned = false;
        Ok(())
    }

    /// Appends a batch and `fsync`s it. Only after this returns may the batch be published.
    pub fn append(&mut self, outbox_last: u64, wire: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(8 + wire.len())
            .map_err(|_| std::io::Error::other("batch too large for the own-feed log"))?
            .to_be_bytes();
        let outbox_last = outbox_last.to_be_bytes();
        let mut record = Vec::with_capacity(4 + 8 + wire.len() + CHECK_BYTES);
        record.extend_from_slice(&len);
        record.extend_from_slice(&outbox_last);
        record.extend_from_slice(wire);
        record.extend_from_slice(&check(&len, &outbox_last, wire));
        if self.poisoned {
            return Err(std::io::Error::other(
                "an earlier append to the own-feed log could not be undone; reopen the node",
            ));
        }
        match self.write(&record) {
            Ok(()) => {
                self.len += record.len() as u64;
                Ok(())
            }
            Err(error) => {
                // Cut the torn record off now: left in place, it would hide every record
                // appended after it from the next open.
                let undone = self.file.set_len(self.len).and_then(|()| self.file.sync_data());
                self.poisoned = undone.is_err();
                Err(error)
            }
        }
    }

    fn write(&mut self, record: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(written) = self.fail_after.take() {
            self.file.write_all(&record[..written.min(record.len())])?;
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        self.file.write_all(record)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_cut_and_intact_records_survive() {
        let dir = std::env::temp_dir().join(format!("crossmatch-ownlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("own.log");
        let _ = std::fs::remove_file(&path);
        {
            let (mut log, records) = OwnLog::open(&path).unwrap();
            assert!(records.is_empty());
            log.append(3, b"first").unwrap();
            log.append(9, b"second").unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        let (mut log, records) = OwnLog::open(&path).unwrap();
        assert_eq!(records, vec![Logged { outbox_last: 3, wire: b"first".to_vec() }]);
        log.append(10, b"third").unwrap();
        let (mut log, records) = OwnLog::open(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].wire, b"third");
        log.compact(records.last()).unwrap();
        log.append(11, b"fourth").unwrap();
        let (_, records) = OwnLog::open(&path).unwrap();
        let wires: Vec<&[u8]> = records.iter().map(|r| r.wire.as_slice()).collect();
        assert_eq!(wires, vec![&b"third"[..], &b"fourth"[..]]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_append_is_cut_off_before_the_next() {
        let dir =
            std::env::temp_dir().join(format!("crossmatch-ownlog-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("own.log");
        let _ = std::fs::remove_file(&path);
        {
            let (mut log, _) = OwnLog::open(&path).unwrap();
            log.append(1, b"first").unwrap();
            // The disk fills in the middle of the second record.
            log.fail_after = Some(10);
            assert!(log.append(2, b"second").is_err());
            // Space again: the third is appended, fsynced and (by the node) published.
            log.append(3, b"third").unwrap();
        }
        let (_, records) = OwnLog::open(&path).unwrap();
        let wires: Vec<&[u8]> = records.iter().map(|r| r.wire.as_slice()).collect();
        assert_eq!(wires, vec![&b"first"[..], &b"third"[..]], "nothing fsynced is lost");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
