//! A federation of nodes in one process on loopback: what `crossmatch demo` shows and what the
//! federation tests drive. Each member gets a key, a data directory under one root, and a port
//! the operating system picks; members are introduced to each other once they are listening.
//! A member may run a roster of only some members, set before it starts (`set_roster`) or
//! while it runs (`apply_roster`, through `Node::apply_membership`, with no restart): a member
//! that joins later is one that the others' rosters name only from some point on.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossmatch_protocol::{
    FederationId, FederationSecret, PublicKey, RosterBody, RosterMember, SignedRoster, SigningKey,
    secret_fingerprint, sign_roster,
};

use crate::api;
use crate::clock::{Clock, DAY_MS, SystemClock};
use crate::daemon::{
    self, CHAIN_WAIT, GivenRoster, HuntSettings, MAX_RANGE_REQUESTS_PER_PULL, Membership,
    MembershipMember, MembershipOutcome, Node, Settings, Tasks, WebhookSettings,
};
use crate::engine::takedowns::TakedownSettings;
use crate::engine::{EngineConfig, Member};
use crate::mesh::{MeshMember, SyncBudget};

/// The roster hash of a local federation's full roster (its roster exists only in memory).
const ROSTER_HASH: [u8; 32] = [0x99; 32];

/// The hash of a roster of the members `on_roster` (`None`: every member).
fn roster_hash_of(on_roster: Option<&[usize]>) -> [u8; 32] {
    match on_roster {
        None => ROSTER_HASH,
        Some(members) => {
            let listed: Vec<u8> = members.iter().map(|&j| j as u8).collect();
            blake3::derive_key("crossmatch local roster v1", &listed)
        }
    }
}

/// Errors of a local federation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A node failed.
    #[error(transparent)]
    Node(#[from] daemon::Error),
    /// A condition did not hold in time.
    #[error("timed out waiting until {0}")]
    TimedOut(String),
    /// A member index that is not running.
    #[error("member {0} is not running")]
    NotRunning(usize),
    /// A member's API could not listen, or no bearer token could be drawn.
    #[error("member {member}'s API could not start: {reason}")]
    Api {
        /// The member's index.
        member: usize,
        /// Why.
        reason: String,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Waits until `condition` holds, polling every 20 ms, for at most `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let polled = async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(limit, polled).await.map_err(|_| Error::TimedOut(what.to_owned()))
}

/// A member of a local federation.
#[derive(Debug, Clone)]
pub struct LocalMember {
    /// Short id (`DE`).
    pub id: String,
    /// Contact shown in alerts.
    pub contact: String,
    /// Key.
    pub key: SigningKey,
}

/// An in-process federation.
#[derive(Debug)]
pub struct LocalFederation {
    members: Vec<LocalMember>,
    /// The members on each member's roster, by index; `None`: every member.
    rosters: Vec<Option<Vec<usize>>>,
    /// The version of each member's roster: 1 at first, one more per `apply_roster`.
    versions: Vec<u64>,
    /// The signed roster each member is given at its next start (`set_signed_roster`).
    given: Vec<Option<GivenRoster>>,
    /// What each member announces in its own record from its next start (`set_announce`).
    announce: Vec<Option<(Vec<String>, String)>>,
    nodes: Vec<Option<(Node, Tasks)>>,
    root: PathBuf,
    federation_id: FederationId,
    clock: Arc<dyn Clock>,
    /// How long each wait may take.
    pub wait_limit: Duration,
    /// The members' background pull period (s), for members started from now on.
    pub sync_interval_secs: u64,
    /// The most each member's store page cache holds (bytes), for members started from now on.
    pub store_cache_bytes: u64,
    /// The members' own-feed recovery deadline (s), for members started from now on.
    pub recovery_deadline_secs: u64,
    /// The most range requests one of the members' pulls makes, for members started from now
    /// on.
    pub pages_per_pull: usize,
    /// How long one of the members' pulls waits for a chain another job fetches, for members
    /// started from now on.
    pub chain_wait: Duration,
    /// What each peer may ask of the members' sync, for members started from now on.
    pub sync_budget: SyncBudget,
    /// The members' hunt settings, for members started from now on.
    pub hunt: HuntSettings,
    /// The members' takedown clock settings, for members started from now on.
    pub takedown: TakedownSettings,
    /// A clock of its own per member (`None`: the federation's), for members started from now
    /// on.
    clocks: Vec<Option<Arc<dyn Clock>>>,
    /// A webhook per member (`None`: none), for members started from now on.
    webhooks: Vec<Option<WebhookSettings>>,
}

impl LocalFederation {
    /// A federation of `members` keeping their data under `root`; no node runs yet. Keys are
    /// derived from the index, so a member restarted later keeps its identity.
    pub fn new(root: &Path, ids: &[&str]) -> Self {
        let members = ids
            .iter()
            .enumerate()
            .map(|(i, id)| LocalMember {
                id: (*id).to_owned(),
                contact: format!("duty-desk@{}.example", id.to_lowercase()),
                key: SigningKey::from_seed(&[i as u8 + 1; 32]),
            })
            .collect::<Vec<_>>();
        Self {
            nodes: members.iter().map(|_| None).collect(),
            rosters: members.iter().map(|_| None).collect(),
            versions: members.iter().map(|_| 1).collect(),
            given: members.iter().map(|_| None).collect(),
            announce: members.iter().map(|_| None).collect(),
            members,
            root: root.to_owned(),
            federation_id: FederationId([0x42; 32]),
            clock: Arc::new(SystemClock),
            wait_limit: Duration::from_secs(60),
            sync_interval_secs: 2,
            store_cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
            recovery_deadline_secs: 3,
            pages_per_pull: MAX_RANGE_REQUESTS_PER_PULL,
            chain_wait: CHAIN_WAIT,
            sync_budget: SyncBudget::default(),
            hunt: HuntSettings::default(),
            takedown: TakedownSettings::default(),
            clocks: ids.iter().map(|_| None).collect(),
            webhooks: ids.iter().map(|_| None).collect(),
        }
    }

    /// The federation id.
    pub fn federation_id(&self) -> FederationId {
        self.federation_id
    }

    /// Runs member `i` (from its next start) on a roster of only the members `on_roster`, as
    /// during a rolling roster change; it must name `i`. Its roster hash differs from the full
    /// roster's; it syncs and gossips with every member both rosters name.
    pub fn set_roster(&mut self, i: usize, on_roster: &[usize]) {
        self.rosters[i] = Some(on_roster.to_vec());
    }

    /// Makes the roster of running member `i` the members `on_roster` now, with no restart
    /// ([`Node::apply_membership`]), at the next version; it must name `i`. Members it adds
    /// are dialled at the addresses they listen on (if they run); members it drops are
    /// disconnected and refused, and their live adds withdrawn from matching at `i`. The
    /// roster stays `i`'s at its next start.
    pub async fn apply_roster(
        &mut self,
        i: usize,
        on_roster: &[usize],
    ) -> Result<MembershipOutcome> {
        let membership = self.membership(i, on_roster, self.versions[i] + 1).await;
        let outcome = self.node(i)?.apply_membership(membership).await?;
        self.versions[i] += 1;
        self.rosters[i] = Some(on_roster.to_vec());
        Ok(outcome)
    }

    /// The member set of `on_roster` at `version`, as member `i` would run it: each member's
    /// contact, key and the addresses it listens on now (none if it is not running).
    pub async fn membership(&self, i: usize, on_roster: &[usize], version: u64) -> Membership {
        let mut members = Vec::with_capacity(on_roster.len());
        for &j in on_roster {
            let addresses = match self.node(j) {
                Ok(node) if j != i => node.listen_addresses().await.unwrap_or_default(),
                _ => Vec::new(),
            };
            let member = &self.members[j];
            members.push(MembershipMember {
                id: member.id.clone(),
                node_key: member.key.public_key(),
                retired_node_keys: Vec::new(),
                retired_heads: Vec::new(),
                contact: member.contact.clone(),
                addresses,
            });
        }
        Membership { version, roster_hash: roster_hash_of(Some(on_roster)), members }
    }

    /// Gives member `i` a signed roster at its next start, as its config's roster file would
    /// (`None`: none; the member set is then this federation's, as above).
    pub fn set_signed_roster(&mut self, i: usize, roster: Option<SignedRoster>) {
        self.given[i] = roster.map(|roster| GivenRoster {
            roster,
            records: Vec::new(),
            max_retention_ms: u64::MAX,
            announce: None,
        });
    }

    /// Makes member `i` announce `addresses` and `contact` in its own signed record from its
    /// next start on a signed roster, as its config's `announce_addresses` and `contact` do.
    pub fn set_announce(&mut self, i: usize, addresses: Vec<String>, contact: &str) {
        self.announce[i] = Some((addresses, contact.to_owned()));
    }

    /// Member `i`'s governance key, derived from its index as its node key is.
    pub fn governance_key(&self, i: usize) -> SigningKey {
        SigningKey::from_seed(&[i as u8 + 129; 32])
    }

    /// A roster body of the members `on_roster` at `version`, needing `threshold` governance
    /// signatures for its successor and expiring at `expires_at_ms`; the federation's secret
    /// and limits.
    pub fn roster_body(
        &self,
        on_roster: &[usize],
        version: u64,
        threshold: u32,
        expires_at_ms: u64,
    ) -> RosterBody {
        let mut members: Vec<RosterMember> = on_roster
            .iter()
            .map(|&j| {
                let node_key = self.key(j);
                RosterMember {
                    id: self.members[j].id.clone(),
                    name: self.members[j].contact.clone(),
                    node_key,
                    governance_key: self.governance_key(j).public_key(),
                    sealing_key: node_key.to_x25519(),
                    retired_node_keys: Vec::new(),
                }
            })
            .collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        RosterBody {
            federation_id: self.federation_id,
            version,
            epoch: 1,
            expires_at_ms,
            threshold,
            max_retention_days: 180,
            quota_entries_per_day: 10_000_000,
            quota_bytes_per_day: 1 << 34,
            secret_fingerprint: secret_fingerprint(&FederationSecret::from_bytes([0x17; 32])),
            rotation: None,
            members,
        }
    }

    /// `body` signed by the governance keys of the members `signers`.
    pub fn sign_roster(&self, body: RosterBody, signers: &[usize]) -> SignedRoster {
        let signatures = signers
            .iter()
            .map(|&j| sign_roster(&body, &self.members[j].id, &self.governance_key(j)))
            .collect();
        SignedRoster { body, signatures, key_changes: Vec::new() }
    }

    /// Runs member `i` (from its next start) on a clock of its own, as tests of clock skew and
    /// of the takedown clock do.
    pub fn set_clock(&mut self, i: usize, clock: Arc<dyn Clock>) {
        self.clocks[i] = Some(clock);
    }

    /// Whether member `j` is on member `i`'s roster.
    fn on_roster(&self, i: usize, j: usize) -> bool {
        self.rosters[i].as_ref().is_none_or(|members| members.contains(&j))
    }

    /// The members.
    pub fn members(&self) -> &[LocalMember] {
        &self.members
    }

    /// Member `i`'s public key.
    pub fn key(&self, i: usize) -> PublicKey {
        self.members[i].key.public_key()
    }

    /// Member `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.root.join(format!("member-{i}"))
    }

    fn settings(&self, i: usize) -> Settings {
        let members = self
            .members
            .iter()
            .enumerate()
            .filter(|(j, _)| self.on_roster(i, *j))
            .map(|(_, m)| Member {
                id: m.id.clone(),
                key: m.key.public_key(),
                retired_keys: Vec::new(),
                retired_heads: Vec::new(),
                contact: m.contact.clone(),
            })
            .collect();
        Settings {
            data_dir: self.data_dir(i),
            engine: EngineConfig {
                federation_id: self.federation_id,
                secret: FederationSecret::from_bytes([0x17; 32]),
                epoch: 1,
                key: self.members[i].key.clone(),
                members,
                max_retention_ms: 180 * DAY_MS,
                quota_entries_per_day: 10_000_000,
                quota_bytes_per_day: 1 << 34,
                store_cache_bytes: self.store_cache_bytes,
            },
            roster_version: self.versions[i],
            roster_hash: roster_hash_of(self.rosters[i].as_deref()),
            roster: self.given[i].clone().map(|given| GivenRoster {
                announce: self.announce[i].clone().or(given.announce),
                ..given
            }),
            mesh_members: self
                .members
                .iter()
                .enumerate()
                .filter(|(j, _)| self.on_roster(i, *j))
                .map(|(_, m)| MeshMember {
                    public_key: m.key.public_key().to_bytes(),
                    addresses: vec![],
                })
                .collect(),
            listen_addresses: vec!["/ip4/127.0.0.1/tcp/0".into()],
            publish_linger_ms: 5,
            sync_interval_secs: self.sync_interval_secs,
            recovery_deadline_secs: self.recovery_deadline_secs,
            pages_per_pull: self.pages_per_pull,
            chain_wait: self.chain_wait,
            sync_budget: self.sync_budget,
            clock: self.clocks[i].clone().unwrap_or_else(|| self.clock.clone()),
            hunt: self.hunt,
            takedown: self.takedown,
            webhook: self.webhooks.get(i).cloned().flatten(),
        }
    }

    /// Member `i` delivers its alerts to `webhook` from its next start on.
    pub fn set_webhook(&mut self, i: usize, webhook: Option<WebhookSettings>) {
        if let Some(slot) = self.webhooks.get_mut(i) {
            *slot = webhook;
        }
    }

    /// Starts member `i` and introduces it to every running member, both ways. The member
    /// runs until [`LocalFederation::stop`].
    pub async fn start(&mut self, i: usize) -> Result<()> {
        let (node, tasks) = daemon::start(self.settings(i), std::future::pending()).await?;
        let addresses = node.listen_addresses().await.unwrap_or_default();
        for (j, other) in self.nodes.iter().enumerate() {
            let Some((other, _)) = other else { continue };
            for address in other.listen_addresses().await.unwrap_or_default() {
                let _ = node.add_member_address(&self.key(j), address).await;
            }
            for address in &addresses {
                let _ = other.add_member_address(&self.key(i), address.clone()).await;
            }
        }
        self.nodes[i] = Some((node, tasks));
        Ok(())
    }

    /// Starts every member.
    pub async fn start_all(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            self.start(i).await?;
        }
        Ok(())
    }

    /// Stops member `i` and waits for its tasks to end.
    pub async fn stop(&mut self, i: usize) -> Result<()> {
        if let Some((node, tasks)) = self.nodes[i].take() {
            node.shutdown();
            tasks.join_within(self.wait_limit).await.map_err(|running| {
                Error::TimedOut(format!(
                    "member {i} stopped ({} still running)",
                    running.join(", ")
                ))
            })?;
        }
        Ok(())
    }

    /// Stops every member.
    pub async fn stop_all(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            self.stop(i).await?;
        }
        Ok(())
    }

    /// Serves running member `i`'s HTTP API on a loopback port the operating system picks,
    /// until the node stops, to one admin user with a new random bearer token (held nowhere but
    /// in what this returns): the address and the token.
    pub async fn serve_api(&self, i: usize) -> Result<(SocketAddr, String)> {
        let token = api::new_bearer_token()
            .map_err(|error| Error::Api { member: i, reason: error.to_string() })?;
        self.serve_api_on(i, SocketAddr::from(([127, 0, 0, 1], 0)), token).await
    }

    /// Serves member `i`'s API on `address` with the admin `token`: after a restart of the
    /// member (its API ends with its node), again where its analysts were told to find it.
    pub async fn serve_api_on(
        &self,
        i: usize,
        address: SocketAddr,
        token: String,
    ) -> Result<(SocketAddr, String)> {
        let node = self.node(i)?.clone();
        let failed = |reason: String| Error::Api { member: i, reason };
        let user = api::User {
            name: format!("admin-{}", self.members[i].id.to_lowercase()),
            role: api::Role::Admin,
        };
        let users = api::Users::new([(api::token_hash(&token), user)]);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| failed(error.to_string()))?;
        let address = listener.local_addr().map_err(|error| failed(error.to_string()))?;
        let router = api::router(node.clone(), users, &self.members[i].id);
        tokio::spawn(api::serve(listener, router, node));
        Ok((address, token))
    }

    /// The running node of member `i`.
    pub fn node(&self, i: usize) -> Result<&Node> {
        self.nodes.get(i).and_then(Option::as_ref).map(|(node, _)| node).ok_or(Error::NotRunning(i))
    }

    /// Waits until every running member is connected to every other running member and ready.
    pub async fn wait_meshed(&self) -> Result<()> {
        let running = self.nodes.iter().filter(|n| n.is_some()).count();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some((node, _)) = node else { continue };
            wait_until(
                &format!("member {i} is connected to {} peers", running - 1),
                self.wait_limit,
                || async {
                    node.connected_members().await.map(|n| n + 1 >= running).unwrap_or(false)
                },
            )
            .await?;
            tokio::time::timeout(self.wait_limit, node.wait_ready())
                .await
                .map_err(|_| Error::TimedOut(format!("member {i} ready")))??;
        }
        Ok(())
    }

    /// Member `i`'s view of every member's chains: (member index, generation, head seq), for
    /// every generation up to the later of member `i`'s own and the fourth.
    pub async fn heads(&self, i: usize) -> Result<Vec<(usize, u32, u64)>> {
        let keys: Vec<PublicKey> = (0..self.members.len()).map(|j| self.key(j)).collect();
        let heads = self.node(i)?.chain_heads(keys.clone(), 4).await?;
        Ok(heads
            .into_iter()
            .filter_map(|head| {
                let j = keys.iter().position(|key| *key == head.origin)?;
                Some((j, head.generation, head.seq))
            })
            .collect())
    }

    /// Waits until every running member holds the same heads as member `reference`.
    pub async fn wait_converged(&self, reference: usize) -> Result<()> {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.is_none() || i == reference {
                continue;
            }
            wait_until(&format!("member {i} converged"), self.wait_limit, || async {
                matches!((self.heads(i).await, self.heads(reference).await), (Ok(a), Ok(b)) if a == b)
            })
            .await?;
        }
        Ok(())
    }
}
