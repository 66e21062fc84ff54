//! The store's own share of its data directory: live keys and value bytes per tree and key
//! prefix (the layout table's first byte), measured against the directory's size to tell sled's
//! space amplification from the store's values. A full scan: for benchmarks and tests, never
//! the running node's path.

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

impl Store {
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
