//! The store's own share of its data directory: live keys and value bytes per tree and key
//! prefix (the layout table's first byte), and sled's files against the pages it counts live,
//! to tell sled's space amplification from the store's values. Full scans: for benchmarks,
//! tests and copies of a store (`examples/store_footprint.rs`), never the running node's path.

use std::collections::BTreeMap;

use super::{Error, Result, Store};

/// How many times [`Store::sled_space`] reads before it gives up on files that keep changing.
pub const SPACE_TRIES: u32 = 5;

/// Live keys under one prefix and the bytes they and their values hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixFootprint {
    /// Keys.
    pub keys: u64,
    /// Bytes of the keys.
    pub key_bytes: u64,
    /// Bytes of their values.
    pub value_bytes: u64,
}

impl PrefixFootprint {
    /// Key and value bytes together.
    pub fn bytes(&self) -> u64 {
        self.key_bytes + self.value_bytes
    }
}

/// sled's files against what it counts live in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SledSpace {
    /// The log file and its blob files.
    pub file_bytes: u64,
    /// sled's in-memory estimate of every live page, pending updates merged: each page's node,
    /// its bounds, its keys less their shared prefix, and its values.
    pub page_bytes: u64,
}

impl Store {
    /// sled's files and the pages live in them. sled 0.34 (pinned for this) gives its pages'
    /// size only inside its space amplification, `file ÷ (pages + one segment)`, read back out
    /// here with the file's size read on both sides of it: sled's flusher and cleaner may
    /// change it meanwhile, so a read whose sizes differ (or whose ratio is not above 0) is
    /// tried again, at most [`SPACE_TRIES`] times in all, then [`Error::SpaceUnsettled`].
    /// (Equal sizes on both sides do not prove the size sled read in between was the same,
    /// only make it likely.)
    /// Reads every page not cached, as [`Store::footprint`] does.
    pub fn sled_space(&self) -> Result<SledSpace> {
        for _ in 0..SPACE_TRIES {
            let before = self.db.size_on_disk()?;
            let ratio = self.db.space_amplification()?;
            // The denominator holds at least one segment, so a file of any size gives a finite
            // ratio, and a file with data one above 0: anything else is no reading either.
            if self.db.size_on_disk()? != before || !(ratio.is_finite() && ratio > 0.0) {
                continue;
            }
            let pages = (before as f64 / ratio).round() as u64;
            let page_bytes = pages.saturating_sub(self.segment_bytes as u64);
            return Ok(SledSpace { file_bytes: before, page_bytes });
        }
        Err(Error::SpaceUnsettled { tries: SPACE_TRIES })
    }

    /// The live keys and bytes of every tree, per (tree name, first key byte). Reads every key
    /// and value once; holds only the counts.
    pub fn footprint(&self) -> Result<BTreeMap<(String, u8), PrefixFootprint>> {
        let mut counts: BTreeMap<(String, u8), PrefixFootprint> = BTreeMap::new();
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name)?;
            let name = String::from_utf8_lossy(&name).into_owned();
            for item in tree.iter() {
                let (key, value) = item?;
                let prefix = key.first().copied().unwrap_or(0);
                let entry = counts.entry((name.clone(), prefix)).or_default();
                entry.keys += 1;
                entry.key_bytes += key.len() as u64;
                entry.value_bytes += value.len() as u64;
            }
        }
        Ok(counts)
    }
}
