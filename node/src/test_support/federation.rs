//! The harness of federation-level tests, over the in-process [`LocalFederation`]: a fresh
//! temporary root per federation, and alert queries.

use crate::local::LocalFederation;
use crate::store::Alert;

use super::TempDir;

/// A federation of members `M0`…, and its temporary root. Bind them in this order,
/// `let (_dir, fed) = federation(..)`: bindings of one pattern drop last-first, so the root is
/// then removed after the federation has stopped using it.
pub fn federation(name: &str, n: usize) -> (TempDir, LocalFederation) {
    let dir = TempDir::new(&format!("fed-{name}"));
    let ids: Vec<String> = (0..n).map(|i| format!("M{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let fed = LocalFederation::new(dir.path(), &ids);
    (dir, fed)
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
