//! The harness of federation-level tests, over the in-process [`LocalFederation`]: a fresh
//! temporary root per federation, and alert queries.

use crate::local::LocalFederation;
use crate::store::Alert;

use super::TempDir;

/// A federation of members `M0`…, with its temporary root (dropped after the federation).
pub fn federation(name: &str, n: usize) -> (LocalFederation, TempDir) {
    let dir = TempDir::new(&format!("fed-{name}"));
    let ids: Vec<String> = (0..n).map(|i| format!("M{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    (LocalFederation::new(dir.path(), &ids), dir)
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
