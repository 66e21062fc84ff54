//! The hunt ledger's keys (`n`, `l`, `d`, `y`, `s`, `g`): one builder and one parser per
//! prefix. Their rows are in the layout table of [`keys`](super); `pub use hunt::*` keeps every
//! path `keys::hunt_*`.

use super::{Reader, join, prefix};

/// An observed account.
pub fn hunt_account(index: u32) -> Vec<u8> {
    join(prefix::HUNT_ACCOUNT, &[&index.to_be_bytes()])
}
/// The index of an observed account key.
pub fn parse_hunt_account(key: &[u8]) -> Option<u32> {
    let mut reader = Reader::new(key, prefix::HUNT_ACCOUNT)?;
    let index = reader.u32()?;
    reader.end(index)
}

/// An observed account's alias.
pub fn hunt_alias(canonical: &str) -> Vec<u8> {
    join(prefix::HUNT_ALIAS, &[canonical.as_bytes()])
}
/// The canonical form of an alias key.
pub fn parse_hunt_alias(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(Reader::new(key, prefix::HUNT_ALIAS)?.rest()).ok()
}

/// An observed account's day.
pub fn hunt_day_account(day: u32, account: u32) -> Vec<u8> {
    join(prefix::HUNT_DAY_ACCOUNT, &[&day.to_be_bytes(), &account.to_be_bytes()])
}
/// (day, account) of a day-account key.
pub fn parse_hunt_day_account(key: &[u8]) -> Option<(u32, u32)> {
    let mut reader = Reader::new(key, prefix::HUNT_DAY_ACCOUNT)?;
    let day = reader.u32()?;
    let account = reader.u32()?;
    reader.end((day, account))
}

/// An interaction edge's day.
pub fn hunt_edge(day: u32, from: u32, to: u32) -> Vec<u8> {
    join(prefix::HUNT_EDGE, &[&day.to_be_bytes(), &from.to_be_bytes(), &to.to_be_bytes()])
}
/// (day, from, to) of an edge key.
pub fn parse_hunt_edge(key: &[u8]) -> Option<(u32, u32, u32)> {
    let mut reader = Reader::new(key, prefix::HUNT_EDGE)?;
    let day = reader.u32()?;
    let from = reader.u32()?;
    let to = reader.u32()?;
    reader.end((day, from, to))
}

/// A seen post.
pub fn hunt_seen(day: u32, post_hash: u64) -> Vec<u8> {
    join(prefix::HUNT_SEEN, &[&day.to_be_bytes(), &post_hash.to_be_bytes()])
}
/// (day, post hash) of a seen key.
pub fn parse_hunt_seen(key: &[u8]) -> Option<(u32, u64)> {
    let mut reader = Reader::new(key, prefix::HUNT_SEEN)?;
    let day = reader.u32()?;
    let hash = reader.u64()?;
    reader.end((day, hash))
}

/// A follow snapshot.
pub fn hunt_follows(account: u32) -> Vec<u8> {
    join(prefix::HUNT_FOLLOWS, &[&account.to_be_bytes()])
}
/// The account of a follow snapshot key.
pub fn parse_hunt_follows(key: &[u8]) -> Option<u32> {
    let mut reader = Reader::new(key, prefix::HUNT_FOLLOWS)?;
    let account = reader.u32()?;
    reader.end(account)
}
