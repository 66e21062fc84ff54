//! The harness of federation-level tests, over the in-process [`LocalFederation`]: a fresh
//! temporary root per federation, two meshed members, an alert raised between them, and alert
//! queries.

use crate::local::LocalFederation;
use crate::store::Alert;

use super::{TempDir, record};

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

/// Two members, `M0` and `M1`, set up by `configure` (a webhook, a clock, …), started and
/// meshed: the federation [`raise`] raises alerts in.
pub async fn meshed_pair(
    name: &str,
    configure: impl FnOnce(&mut LocalFederation),
) -> (TempDir, LocalFederation) {
    let (dir, mut fed) = federation(name, 2);
    configure(&mut fed);
    fed.start_all().await.unwrap_or_else(|error| panic!("starting {name}: {error}"));
    fed.wait_meshed().await.unwrap_or_else(|error| panic!("meshing {name}: {error}"));
    (dir, fed)
}

/// Raises one alert at member 1: it watches `handle` (a record it does not share), then
/// member 0 shares it. Member 0 raises none (member 1 shares nothing).
pub async fn raise(fed: &LocalFederation, handle: &str) {
    let member = |i: usize| fed.node(i).unwrap_or_else(|error| panic!("member {i}: {error}"));
    member(1)
        .add_record(record(&[handle], false), "ana".into())
        .await
        .unwrap_or_else(|error| panic!("the watch: {error}"));
    member(0)
        .add_record(record(&[handle], true), "ana".into())
        .await
        .unwrap_or_else(|error| panic!("the share: {error}"));
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
