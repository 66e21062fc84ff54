//! Harness for federation-level tests, over the node's in-process [`LocalFederation`]: a
//! fresh temporary root per test, records of x accounts, and alert queries.

use std::path::PathBuf;

use crossmatch_node::clock::{Clock, DAY_MS, SystemClock};
use crossmatch_node::engine::NewRecord;
pub use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::store::Alert;
use crossmatch_protocol::{Canonical, Evaluation, Handling, Kind, canonicalize};

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after `name` and the process.
    pub fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("crossmatch-fed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A federation of members `M0`…, with its temporary root (dropped after the federation).
pub fn federation(name: &str, n: usize) -> (LocalFederation, TempDir) {
    let dir = TempDir::new(name);
    let ids: Vec<String> = (0..n).map(|i| format!("M{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    (LocalFederation::new(&dir.0, &ids), dir)
}

/// An x account's canonical form.
pub fn account(handle: &str) -> Canonical {
    canonicalize(Kind::Account, Some("x"), None, handle).unwrap_or_else(|e| panic!("{e}"))
}

/// A shared (or watched) record of x accounts, expiring in 30 days.
pub fn record(handles: &[&str], share: bool) -> NewRecord {
    NewRecord {
        identifiers: handles.iter().map(|h| account(h)).collect(),
        category: "terrorism/propaganda".into(),
        handling: Handling::H1,
        evaluation: Evaluation::new('B', 2).unwrap_or_else(|| panic!("evaluation")),
        notes: String::new(),
        activity_per_day: Some(30),
        expires_at_ms: SystemClock.now_ms() + 30 * DAY_MS,
        share,
    }
}

/// Member `i`'s alerts.
pub async fn alerts(fed: &LocalFederation, i: usize) -> Vec<Alert> {
    match fed.node(i) {
        Ok(node) => {
            node.with_engine(|e| e.alerts(None, None).unwrap_or_default()).await.unwrap_or_default()
        }
        Err(_) => Vec::new(),
    }
}
