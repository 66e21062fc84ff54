//! The store's own share of its data directory: live keys and value bytes per tree and key
//! prefix (the layout table's first byte), and sled's files against the pages it counts live,
//! to tell sled's space amplification from the store's values. Full scans: for benchmarks,
//! tests and copies of a store (`examples/store_footprint.rs`), never the running node's path.

use std::collections::BTreeMap;

use super::{Result, Store};

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
    /// sled's files and the pages live in them. sled 0.34 gives its pages' size only inside
    /// its space amplification, `file ÷ (pages + one segment)`, read back out here with the
    /// file's size read on both sides of it (sled's cleaner may change it meanwhile: a few
    /// tries, then the last). Reads every page not cached, as [`Store::footprint`] does.
    pub fn sled_space(&self) -> Result<SledSpace> {
        let mut tries = 0;
        let (file_bytes, ratio) = loop {
            let before = self.db.size_on_disk()?;
            let ratio = self.db.space_amplification()?;
            tries += 1;
            if self.db.size_on_disk()? == before || tries == 5 {
                break (before, ratio);
            }
        };
        let pages = if ratio > 0.0 { file_bytes as f64 / ratio } else { 0.0 };
        let page_bytes = (pages.round() as u64).saturating_sub(self.segment_bytes as u64);
        Ok(SledSpace { file_bytes, page_bytes })
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
