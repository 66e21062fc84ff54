//! Harness for federation-level tests: members with keys and a roster, nodes in temporary
//! directories listening on `127.0.0.1:0`, and waits on conditions, each under a timeout.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossmatch_node::daemon::{self, Node, Settings, Tasks};
use crossmatch_node::engine::{DAY_MS, EngineConfig, Member, NewRecord, SystemClock};
use crossmatch_node::mesh::{MeshMember, PeerKey};
use crossmatch_protocol::{
    Canonical, Evaluation, FederationId, FederationSecret, Handling, Kind, SigningKey, canonicalize,
};

/// Longest any single wait in a federation test may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// Waits until `condition` holds, polling every 50 ms; panics with `what` after [`WAIT`].
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let polled = async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(WAIT, polled).await.is_err() {
        panic!("timed out after {WAIT:?} waiting until {what}");
    }
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after `name` and the process.
    pub fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("crossmatch-fed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("temp dir: {e}"));
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A federation of `n` members: keys, roster, and the nodes currently running.
#[derive(Debug)]
pub struct Federation {
    /// Member keys, by index.
    pub keys: Vec<SigningKey>,
    /// Running nodes (`None` when stopped).
    pub nodes: Vec<Option<(Node, Tasks)>>,
    /// Where each member keeps its data.
    pub dir: TempDir,
    /// Federation id.
    pub federation_id: FederationId,
}

impl Federation {
    /// Creates the roster of `n` members; no node runs yet.
    pub fn new(name: &str, n: usize) -> Self {
        let keys = (0..n).map(|i| SigningKey::from_seed(&[i as u8 + 1; 32])).collect();
        Self {
            keys,
            nodes: (0..n).map(|_| None).collect(),
            dir: TempDir::new(name),
            federation_id: FederationId([0x42; 32]),
        }
    }

    fn settings(&self, i: usize) -> Settings {
        let members = self
            .keys
            .iter()
            .enumerate()
            .map(|(j, key)| Member {
                id: format!("M{j}"),
                key: key.public_key(),
                contact: format!("desk-{j}@example.invalid"),
            })
            .collect();
        Settings {
            data_dir: self.dir.0.join(format!("member-{i}")),
            engine: EngineConfig {
                federation_id: self.federation_id,
                secret: FederationSecret([0x17; 32]),
                epoch: 1,
                key: self.keys[i].clone(),
                members,
                max_retention_ms: 180 * DAY_MS,
                quota_entries_per_day: 10_000_000,
                quota_bytes_per_day: 1 << 34,
            },
            roster_hash: [0x99; 32],
            mesh_members: self
                .keys
                .iter()
                .map(|key| MeshMember {
                    public_key: key.public_key().to_bytes(),
                    addresses: vec![],
                })
                .collect(),
            listen_addresses: vec!["/ip4/127.0.0.1/tcp/0".into()],
            publish_linger_ms: 5,
            sync_interval_secs: 2,
            recovery_deadline_secs: 3,
            clock: Arc::new(SystemClock),
        }
    }

    /// Starts member `i` and introduces it to every running member (both ways).
    pub async fn start(&mut self, i: usize) {
        let (node, tasks) =
            daemon::start(self.settings(i)).await.unwrap_or_else(|e| panic!("start {i}: {e}"));
        let address = node.mesh().listen_addresses().await.unwrap_or_default();
        for (j, other) in self.nodes.iter().enumerate() {
            let Some((other, _)) = other else { continue };
            let other_address = other.mesh().listen_addresses().await.unwrap_or_default();
            for a in &other_address {
                let _ = node
                    .mesh()
                    .add_address(PeerKey(self.keys[j].public_key().to_bytes()), a.clone())
                    .await;
            }
            for a in &address {
                let _ = other
                    .mesh()
                    .add_address(PeerKey(self.keys[i].public_key().to_bytes()), a.clone())
                    .await;
            }
        }
        self.nodes[i] = Some((node, tasks));
    }

    /// Starts every member.
    pub async fn start_all(&mut self) {
        for i in 0..self.keys.len() {
            self.start(i).await;
        }
    }

    /// Stops member `i` and waits for its tasks to end.
    pub async fn stop(&mut self, i: usize) {
        if let Some((node, tasks)) = self.nodes[i].take() {
            node.shutdown();
            tokio::time::timeout(WAIT, tasks.join())
                .await
                .unwrap_or_else(|_| panic!("member {i} did not stop"));
        }
    }

    /// The running node of member `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i].as_ref().unwrap_or_else(|| panic!("member {i} is not running")).0
    }

    /// Waits until every running member has `k` connected peers and is ready.
    pub async fn wait_meshed(&self, k: usize) {
        for (i, node) in self.nodes.iter().enumerate() {
            let Some((node, _)) = node else { continue };
            wait_until(&format!("member {i} has {k} peers"), || async {
                node.mesh().connected_peers().await.map(|p| p.len() >= k).unwrap_or(false)
            })
            .await;
            tokio::time::timeout(WAIT, node.wait_ready())
                .await
                .unwrap_or_else(|_| panic!("member {i} never ready"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Every running member's view of every origin's chain heads (origin, generation) → seq.
    pub async fn heads(&self, i: usize) -> Vec<(usize, u32, u64)> {
        let keys: Vec<_> = self.keys.iter().map(SigningKey::public_key).collect();
        self.node(i)
            .with_engine(move |engine| {
                let mut heads = Vec::new();
                for (j, key) in keys.iter().enumerate() {
                    for generation in 1..=4 {
                        let seq = engine.chain(key, generation).map(|c| c.seq).unwrap_or(0);
                        if seq > 0 {
                            heads.push((j, generation, seq));
                        }
                    }
                }
                heads
            })
            .await
            .unwrap_or_default()
    }
}

/// An x account's canonical form.
pub fn account(handle: &str) -> Canonical {
    canonicalize(Kind::Account, Some("x"), None, handle).unwrap_or_else(|e| panic!("{e}"))
}

/// A shared (or watched) record of one or more x accounts, expiring in 30 days.
pub fn record(handles: &[&str], share: bool) -> NewRecord {
    let now = crossmatch_node::engine::Clock::now_ms(&SystemClock);
    NewRecord {
        identifiers: handles.iter().map(|h| account(h)).collect(),
        category: "terrorism/propaganda".into(),
        handling: Handling::H1,
        evaluation: Evaluation::new('B', 2).unwrap_or_else(|| panic!("evaluation")),
        notes: String::new(),
        activity_per_day: Some(30),
        expires_at_ms: now + 30 * DAY_MS,
        share,
    }
}
