//! The mesh: the only module that knows libp2p. It connects roster members, gossips batches on
//! the federation's topic and serves sync requests, and talks to the node through a [`Client`]
//! (bounded commands in) and a closed set of [`Event`]s (bounded channel out).
//!
//! `new` builds the swarm and returns `(Client, Receiver<Event>, EventLoop)`; the node spawns
//! `EventLoop::run(shutdown)`, which alone owns the `Swarm`. The mesh moves bytes and reports
//! events: it knows nothing of storage, matching or verification. Gossip is validated by the
//! node (`Client::report_validation`); sync requests are answered by the node through the
//! `oneshot` inside `Event::SyncRequest`.
//!
//! What the mesh enforces on its own:
//! - only roster members connect, either way (an allow list of their keys); connection limits
//!   keep outsiders cheap, and refusals are counted with a bounded record of the last ones;
//!   pending inbound connections from addresses known as a member's do not wait for the slots
//!   outsiders can take (`per_ip`);
//! - members announce `/crossmatch/1/<federation hex>` through identify; a member that
//!   announces another federation is reported once (`Event::RosterMismatch`) and gets no sync,
//!   either way; a member counts as connected (`Event::PeerConnected`) once it announced this
//!   federation. The roster's version and hash are the node's to exchange: members on
//!   consecutive roster versions keep talking during a roster change;
//! - the members can change while the mesh runs (`Client::set_members`): a new member is
//!   allowed and dialled, a removed one disconnected at once and refused from then on, a moved
//!   one dialled at its new addresses;
//! - gossipsub peer scoring: `Reject` verdicts and `Client::penalize` lower a peer's score, and
//!   a peer below `ban_score_threshold` is disconnected and refused for `ban_secs`;
//! - every inbound sync request is checked against the peer's budget and answered
//!   `Refused("busy")` when over it, without reaching the node;
//! - when the node does not keep up (its event channel is full) a gossip message is ignored and
//!   counted (sync recovers it), a sync request is refused; the swarm never waits on the node.

mod behaviour;
mod budget;
mod dialer;
mod event_loop;
mod outbound;
mod peers;
mod per_ip;

use std::fmt;
use std::sync::Arc;

use crossmatch_protocol::FederationId;
use tokio::sync::{mpsc, oneshot};

#[cfg(feature = "test-support")]
pub use behaviour::codec_in_memory;
pub use budget::SyncBudget;
// The sync protocol's messages, limits and names are defined in `protocol`; the mesh carries
// them, and re-exports them for its callers.
pub use crossmatch_protocol::{
    MAX_GOSSIP_BYTES, MAX_RANGE_BATCHES, MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES,
    SYNC_PROTOCOL, SyncRequest, SyncResponse,
};
pub use event_loop::EventLoop;

/// How many refused connections are remembered in full (the count is kept regardless).
pub const MAX_RECENT_REFUSALS: usize = 32;

/// The batch-hash function: gossipsub's message id, so duplicates are dropped by id.
pub type MessageIdFn = Arc<dyn Fn(&[u8]) -> [u8; 32] + Send + Sync>;

/// A member's identity on the mesh: its 32-byte Ed25519 roster public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub [u8; 32]);

impl PeerKey {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Prints the first 4 bytes in hex: enough to tell members apart in a log, never the whole key.
impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerKey({self})")
    }
}

/// One roster member as the mesh sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshMember {
    /// The member's Ed25519 roster public key.
    pub public_key: [u8; 32],
    /// Multiaddrs to dial it at, e.g. `/dns4/node.example/tcp/7400` or `/ip4/10.0.0.5/tcp/7400`.
    /// May be empty: such a member is allowed in but never dialled.
    pub addresses: Vec<String>,
}

/// Everything the mesh needs, as plain data. [`MeshConfig::new`] fills the tuning fields with
/// their defaults; [`MeshConfig::validate`] says which values are refused (counts and limits
/// of zero among them).
#[derive(Clone)]
pub struct MeshConfig {
    /// The node's Ed25519 roster key seed: the mesh identity is that key.
    pub keypair_seed: [u8; 32],
    /// The roster; this node may be among them (it is skipped).
    pub members: Vec<MeshMember>,
    /// Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/7400`, or `/ip4/127.0.0.1/tcp/0` in tests.
    pub listen_addresses: Vec<String>,
    /// The federation id: it names the gossip topic and is announced at connect.
    pub federation_id: [u8; 32],
    /// The batch-hash function, used as gossipsub's message id.
    pub message_id: MessageIdFn,
    /// Capacity of the command channel (client to event loop).
    pub command_capacity: usize,
    /// Capacity of the event channel (event loop to node).
    pub event_capacity: usize,
    /// A peer whose gossipsub score falls below this (negative) value is banned.
    pub ban_score_threshold: f64,
    /// How long a ban lasts, at most [`MAX_BAN_SECS`].
    pub ban_secs: u64,
    /// Budget of inbound sync requests, per peer.
    pub sync_budget: SyncBudget,
    /// How long an outbound sync request may take, including the peer's work.
    pub sync_request_timeout_secs: u64,
    /// The first redial wait; it doubles per failed attempt.
    pub redial_initial_ms: u64,
    /// The redial wait's cap, at most [`MAX_REDIAL_MS`].
    pub redial_max_ms: u64,
    /// Established connections per peer (2 lets simultaneous dials both succeed).
    pub max_connections_per_peer: u32,
    /// Connections being set up, inbound, from addresses not known as a member's. An address
    /// a member is listed at (in the roster or by `Client::add_address`), or that it last
    /// connected from or was reached at, has no share in these: it is limited only by
    /// `max_inbound_per_ip`, so outsiders that hold every one of these slots cannot keep a
    /// member out.
    pub max_pending_incoming: u32,
    /// Inbound connections, pending and established, from one remote IP address.
    pub max_inbound_per_ip: u32,
    /// Loopback addresses are not limited per IP (a local federation shares 127.0.0.1).
    pub per_ip_exempts_loopback: bool,
    /// Connections being set up, outbound.
    pub max_pending_outgoing: u32,
}

impl MeshConfig {
    /// A configuration with default tuning.
    pub fn new(
        keypair_seed: [u8; 32],
        federation_id: [u8; 32],
        members: Vec<MeshMember>,
        listen_addresses: Vec<String>,
        message_id: MessageIdFn,
    ) -> Self {
        MeshConfig {
            keypair_seed,
            members,
            listen_addresses,
            federation_id,
            message_id,
            command_capacity: 256,
            event_capacity: 1024,
            ban_score_threshold: DEFAULT_BAN_SCORE_THRESHOLD,
            ban_secs: 600,
            sync_budget: SyncBudget::default(),
            sync_request_timeout_secs: 30,
            redial_initial_ms: 500,
            redial_max_ms: 30_000,
            max_connections_per_peer: 2,
            max_pending_incoming: 32,
            max_inbound_per_ip: 8,
            per_ip_exempts_loopback: true,
            max_pending_outgoing: 64,
        }
    }

    /// The gossip topic of batches ([`crossmatch_protocol::batch_topic`]).
    pub fn topic(&self) -> String {
        crossmatch_protocol::batch_topic(&FederationId(self.federation_id))
    }

    /// The gossip topic of fork evidence ([`crossmatch_protocol::fork_topic`]).
    pub fn fork_topic(&self) -> String {
        crossmatch_protocol::fork_topic(&FederationId(self.federation_id))
    }

    /// The gossip topic of roster announcements ([`crossmatch_protocol::roster_topic`]).
    pub fn roster_topic(&self) -> String {
        crossmatch_protocol::roster_topic(&FederationId(self.federation_id))
    }

    /// The gossip topic of members' own records ([`crossmatch_protocol::record_topic`]).
    pub fn record_topic(&self) -> String {
        crossmatch_protocol::record_topic(&FederationId(self.federation_id))
    }

    /// What members announce at connect ([`crossmatch_protocol::announced_version`]).
    pub fn announced_version(&self) -> String {
        crossmatch_protocol::announced_version(&FederationId(self.federation_id))
    }
}

/// The most members the mesh keeps in its peer table: the roster's bound.
pub const MAX_MEMBERS: usize = 256;

/// The longest ban: a year. Longer would be a removal from the roster, which is the
/// coordinator's to make; the cap also keeps a ban's end representable as an `Instant`.
pub const MAX_BAN_SECS: u64 = 365 * 24 * 60 * 60;

/// The longest redial wait: a day. A member that cannot be reached for longer still gets a
/// try every day; the cap also keeps the next dial's time representable as an `Instant`.
pub const MAX_REDIAL_MS: u64 = 24 * 60 * 60 * 1000;

impl MeshConfig {
    /// Checks every value `mesh::new` relies on: member keys and addresses parse, channel
    /// capacities and connection limits are at least 1, the ban threshold is negative, bans,
    /// timeouts and redials are positive and bounded, and the sync budget is positive.
    pub fn validate(&self) -> Result<(), MeshError> {
        let refuse = |reason| Err(MeshError::BadSetting(reason));
        validate_members(&self.members)?;
        for address in &self.listen_addresses {
            event_loop::parse_address(address)?;
        }
        if self.command_capacity == 0 {
            return refuse("command_capacity must be at least 1");
        }
        if self.event_capacity == 0 {
            return refuse("event_capacity must be at least 1");
        }
        if self.ban_score_threshold >= 0.0 || self.ban_score_threshold.is_nan() {
            return refuse("ban_score_threshold must be negative");
        }
        if self.ban_secs == 0 || self.ban_secs > MAX_BAN_SECS {
            return refuse("ban_secs must be at least 1 and at most a year");
        }
        let budget = &self.sync_budget;
        if !(budget.requests_per_sec > 0.0
            && budget.requests_burst >= 1.0
            && budget.response_bytes_per_sec > 0.0
            && budget.response_bytes_burst > 0.0)
        {
            return refuse("sync budget rates and bursts must be positive");
        }
        if self.sync_request_timeout_secs == 0 {
            return refuse("sync_request_timeout_secs must be at least 1");
        }
        if self.redial_initial_ms == 0 || self.redial_initial_ms > self.redial_max_ms {
            return refuse("redial_initial_ms must be at least 1 and at most redial_max_ms");
        }
        if self.redial_max_ms > MAX_REDIAL_MS {
            return refuse("redial_max_ms must be at most a day");
        }
        if self.max_connections_per_peer == 0 {
            return refuse("max_connections_per_peer must be at least 1");
        }
        if self.max_pending_incoming == 0 || self.max_pending_outgoing == 0 {
            return refuse("max_pending_incoming and max_pending_outgoing must be at least 1");
        }
        if self.max_inbound_per_ip == 0 {
            return refuse("max_inbound_per_ip must be at least 1");
        }
        Ok(())
    }
}

/// Checks a member list: at most [`MAX_MEMBERS`], every key an Ed25519 key, every address a
/// multiaddr.
pub fn validate_members(members: &[MeshMember]) -> Result<(), MeshError> {
    if members.len() > MAX_MEMBERS {
        return Err(MeshError::BadSetting("at most 256 members"));
    }
    for (index, member) in members.iter().enumerate() {
        if peers::peer_id_of(&member.public_key).is_none() {
            return Err(MeshError::BadMemberKey { index });
        }
        for address in &member.addresses {
            event_loop::parse_address(address)?;
        }
    }
    Ok(())
}

/// Checks one address as the mesh dials it: a multiaddr, e.g. `/dns4/host/tcp/7400`. Callers
/// outside the mesh (a member's record, the ceremony tools) check with this before keeping one.
pub fn validate_address(address: &str) -> Result<(), MeshError> {
    event_loop::parse_address(address).map(|_| ())
}

/// The default ban threshold. One `Reject` costs 10 points, squared by count (gossipsub's
/// P₄ with weight −10), one `penalize` 20; a well-behaved peer earns at most +20. Three rejects
/// (−90) or three penalties (−60) in a row ban a peer; one or two are forgiven as they decay.
pub const DEFAULT_BAN_SCORE_THRESHOLD: f64 = -50.0;

impl fmt::Debug for MeshConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshConfig")
            .field("keypair_seed", &"<secret>")
            .field("members", &self.members.len())
            .field("listen_addresses", &self.listen_addresses)
            .field("topic", &self.topic())
            .field("ban_score_threshold", &self.ban_score_threshold)
            .field("ban_secs", &self.ban_secs)
            .field("sync_budget", &self.sync_budget)
            .finish_non_exhaustive()
    }
}

/// What the mesh tells the node. A closed set: everything else stays inside the mesh.
#[derive(Debug)]
pub enum Event {
    /// A gossip message, held by gossipsub until the node reports its verdict with
    /// [`Client::report_validation`] (within a few seconds, or it is forgotten).
    Gossip {
        /// Which topic it came on.
        kind: GossipKind,
        /// The member that forwarded it (not necessarily its origin).
        source: PeerKey,
        /// The batch hash, as computed by the configured message id function.
        message_id: [u8; 32],
        /// The message bytes.
        data: Vec<u8>,
    },
    /// A member asks for sync data; answer through `reply` (a dropped reply is sent as
    /// `Refused("unavailable")`).
    SyncRequest {
        /// The asking member.
        peer: PeerKey,
        /// What it asks for, already checked against the protocol's bounds.
        request: SyncRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<SyncResponse>,
    },
    /// A member connected and announced the same federation.
    PeerConnected(PeerKey),
    /// A member's last connection closed.
    PeerDisconnected(PeerKey),
    /// A member announced another federation: no sync with it until that changes.
    RosterMismatch(PeerKey),
    /// A member scored below the threshold: it is disconnected and refused until then.
    PeerBanned {
        /// The banned member.
        peer: PeerKey,
        /// When the ban ends, in Unix milliseconds.
        until_unix_ms: u64,
    },
}

/// What a gossip message carries, by the topic it came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipKind {
    /// A batch's wire form.
    Batch = 0,
    /// Fork evidence: two contradicting manifests.
    ForkEvidence = 1,
    /// A roster announcement: the sender's roster version and hash (never forwarded).
    Roster = 2,
    /// A member's own signed record (forwarded once verified as new).
    Record = 3,
}

impl GossipKind {
    /// Every kind, in topic order.
    pub const ALL: [GossipKind; 4] =
        [GossipKind::Batch, GossipKind::ForkEvidence, GossipKind::Roster, GossipKind::Record];
}

/// The node's verdict on a gossip message (see the verdict table in the design).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: deliver and forward.
    Accept,
    /// Invalid: drop, and lower the sender's score.
    Reject,
    /// Drop without penalty (duplicate, fork evidence handled elsewhere, node busy).
    Ignore,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The peer is not a roster member.
    NotInRoster,
    /// The peer is banned.
    Banned,
    /// A connection limit was reached.
    LimitReached,
    /// Any other refusal by a protocol.
    Other,
}

/// One refused connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The peer's Ed25519 key, when its identity was known and was an Ed25519 key.
    pub peer: Option<PeerKey>,
    /// The remote address.
    pub address: String,
    /// Why it was refused.
    pub reason: RefusalReason,
    /// When, in Unix milliseconds.
    pub at_unix_ms: u64,
}

/// A ban in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The banned member.
    pub peer: PeerKey,
    /// When the ban ends, in Unix milliseconds.
    pub until_unix_ms: u64,
}

/// Counters and state for the operator surface and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshStats {
    /// Members connected with a matching roster.
    pub connected_peers: Vec<PeerKey>,
    /// Connected members subscribed to the federation's batch topic: those a batch published
    /// here goes to, but for a member whose score fell below gossipsub's publish threshold
    /// (−50, the default ban threshold).
    pub gossip_topic_peers: Vec<PeerKey>,
    /// Gossipsub score of each connected member.
    pub peer_scores: Vec<(PeerKey, f64)>,
    /// Connections refused since start.
    pub refused_connections: u64,
    /// The last refused connections, oldest first, at most [`MAX_RECENT_REFUSALS`].
    pub recent_refusals: Vec<Refusal>,
    /// Members that announced another federation.
    pub roster_mismatches: Vec<PeerKey>,
    /// Bans in force.
    pub bans: Vec<Ban>,
    /// Gossip messages ignored because the node's event channel was full.
    pub gossip_dropped_busy: u64,
    /// Inbound sync requests refused as `busy` (over budget, or the node's channel was full).
    pub sync_refused_busy: u64,
    /// Inbound sync requests that failed after they were read (the response could not be
    /// sent). Oversized or undecodable requests are dropped by libp2p before this point.
    pub sync_inbound_failures: u64,
    /// Other events dropped because the node's event channel stayed full.
    pub events_dropped: u64,
    /// Payload bytes this node sent: what it published by gossip (batches, fork evidence,
    /// roster announcements, member records; once each, however many peers gossipsub sends
    /// them to), and sync answers (their encoded size,
    /// within 41 bytes), counted before Noise and Yamux framing: the bytes on the wire are more.
    pub payload_bytes_sent: u64,
    /// Of [`payload_bytes_sent`](Self::payload_bytes_sent), what this node published by gossip
    /// (once each): the data its peers need of it, without the sync answers.
    pub gossip_bytes_published: u64,
}

/// The mesh could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The key seed is not a valid Ed25519 seed.
    #[error("the node key cannot be used as a mesh identity")]
    BadKey,
    /// A member key is not a valid Ed25519 public key.
    #[error("roster member {index} has an invalid public key")]
    BadMemberKey {
        /// Position in `members`.
        index: usize,
    },
    /// An address is not a multiaddr.
    #[error("invalid address {address:?}: expected a multiaddr such as /dns4/host/tcp/7400")]
    BadAddress {
        /// The address as given.
        address: String,
    },
    /// A tuning value is out of range.
    #[error("invalid mesh setting: {0}")]
    BadSetting(&'static str),
    /// The system DNS configuration could not be read.
    #[error("cannot read the DNS configuration")]
    Dns(#[source] std::io::Error),
    /// Setting up the transport or a protocol failed.
    #[error("cannot set up the mesh: {0}")]
    Setup(String),
    /// Listening on an address failed.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address as given.
        address: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The event loop has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the mesh has stopped")]
pub struct Closed;

/// A publish that did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No member subscribed to the topic is connected.
    #[error("no peers to publish to")]
    NoPeers,
    /// Larger than [`MAX_GOSSIP_BYTES`].
    #[error("message larger than {MAX_GOSSIP_BYTES} bytes")]
    TooLarge,
    /// The same message id was published or seen recently.
    #[error("message already published")]
    Duplicate,
    /// Every peer's send queue is full.
    #[error("all peer queues are full")]
    QueuesFull,
    /// Any other gossipsub failure.
    #[error("publish failed: {0}")]
    Failed(String),
    /// The event loop has stopped.
    #[error("the mesh has stopped")]
    Closed,
}

/// An address that was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The peer is not a roster member (or is this node).
    #[error("peer is not a roster member")]
    UnknownPeer,
    /// The address is not a multiaddr.
    #[error("invalid address {0:?}: expected a multiaddr such as /dns4/host/tcp/7400")]
    BadAddress(String),
    /// The event loop has stopped.
    #[error("the mesh has stopped")]
    Closed,
}

/// A sync request that got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The peer is not a roster member.
    #[error("peer is not a roster member")]
    UnknownPeer,
    /// The peer is not connected (or its roster is not yet confirmed).
    #[error("peer is not connected")]
    NotConnected,
    /// The peer announced another federation or roster.
    #[error("peer announced another federation")]
    RosterMismatch,
    /// The request is outside the protocol's bounds.
    #[error("request outside the protocol's bounds")]
    BadRequest,
    /// Too many requests are outstanding.
    #[error("too many outstanding requests")]
    Busy,
    /// No response in time.
    #[error("request timed out")]
    Timeout,
    /// The connection closed before the response.
    #[error("connection closed before the response")]
    ConnectionClosed,
    /// The peer does not speak the sync protocol.
    #[error("peer does not support the sync protocol")]
    Unsupported,
    /// The response could not be read (e.g. too large or undecodable).
    #[error("request failed: {0}")]
    Failed(String),
    /// The event loop has stopped.
    #[error("the mesh has stopped")]
    Closed,
}

/// A command to the event loop; each carries its reply channel.
#[derive(Debug)]
enum Command {
    Publish {
        kind: GossipKind,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), PublishError>>,
    },
    ReportValidation {
        message_id: [u8; 32],
        source: PeerKey,
        verdict: Verdict,
    },
    Request {
        peer: PeerKey,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, RequestError>>,
    },
    Penalize {
        peer: PeerKey,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerKey>>,
    },
    Stats {
        reply: oneshot::Sender<MeshStats>,
    },
    ListenAddresses {
        reply: oneshot::Sender<Vec<String>>,
    },
    AddAddress {
        peer: PeerKey,
        address: String,
        reply: oneshot::Sender<Result<(), AddressError>>,
    },
    SetMembers {
        members: Vec<MeshMember>,
        reply: oneshot::Sender<MembershipChange>,
    },
}

/// What [`Client::set_members`] changed, in counts (no key goes into a log line whole).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipChange {
    /// Members new to the peer table: allowed, and dialled when they have addresses.
    pub added: usize,
    /// Members no longer listed: disconnected, forgotten, refused from now on.
    pub removed: usize,
    /// Members whose addresses changed: dialled at the new ones.
    pub readdressed: usize,
}

/// Members that were not set.
#[derive(Debug, thiserror::Error)]
pub enum SetMembersError {
    /// The list is refused as [`MeshConfig::validate`] would refuse it.
    #[error(transparent)]
    Invalid(#[from] MeshError),
    /// The event loop has stopped.
    #[error("the mesh has stopped")]
    Closed,
}

/// The node's handle on the mesh: a cheap clone; every call is one bounded send.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
}

impl Client {
    /// Publishes a batch's wire form on the federation's batch topic.
    pub async fn publish(&self, data: Vec<u8>) -> Result<(), PublishError> {
        self.publish_on(GossipKind::Batch, data).await
    }

    /// Publishes `data` on the topic of `kind`.
    pub async fn publish_on(&self, kind: GossipKind, data: Vec<u8>) -> Result<(), PublishError> {
        let (reply, response) = oneshot::channel();
        let command = Command::Publish { kind, data, reply };
        self.send(command).await.map_err(|Closed| PublishError::Closed)?;
        response.await.map_err(|_| PublishError::Closed)?
    }

    /// Reports the node's verdict on a gossip message from `source`.
    pub async fn report_validation(
        &self,
        message_id: [u8; 32],
        source: PeerKey,
        verdict: Verdict,
    ) -> Result<(), Closed> {
        self.send(Command::ReportValidation { message_id, source, verdict }).await
    }

    /// Sends a sync request to `peer` and waits for its response.
    pub async fn request(
        &self,
        peer: PeerKey,
        request: SyncRequest,
    ) -> Result<SyncResponse, RequestError> {
        let (reply, response) = oneshot::channel();
        self.send(Command::Request { peer, request, reply })
            .await
            .map_err(|Closed| RequestError::Closed)?;
        response.await.map_err(|_| RequestError::Closed)?
    }

    /// Records that `peer` served data that does not verify or does not match the request;
    /// a few penalties in a row ban it.
    pub async fn penalize(&self, peer: PeerKey) -> Result<(), Closed> {
        self.send(Command::Penalize { peer }).await
    }

    /// Members connected with a matching roster.
    pub async fn connected_peers(&self) -> Result<Vec<PeerKey>, Closed> {
        let (reply, response) = oneshot::channel();
        self.send(Command::ConnectedPeers { reply }).await?;
        response.await.map_err(|_| Closed)
    }

    /// Counters and state.
    pub async fn stats(&self) -> Result<MeshStats, Closed> {
        let (reply, response) = oneshot::channel();
        self.send(Command::Stats { reply }).await?;
        response.await.map_err(|_| Closed)
    }

    /// The addresses the mesh listens on, once at least one is bound (so a node listening on
    /// port 0 can report its real port).
    pub async fn listen_addresses(&self) -> Result<Vec<String>, Closed> {
        let (reply, response) = oneshot::channel();
        self.send(Command::ListenAddresses { reply }).await?;
        response.await.map_err(|_| Closed)
    }

    /// Adds an address to dial a roster member at, and dials it if it is not connected (for a
    /// member whose address became known after start, such as a test node bound to port 0).
    pub async fn add_address(&self, peer: PeerKey, address: String) -> Result<(), AddressError> {
        let (reply, response) = oneshot::channel();
        self.send(Command::AddAddress { peer, address, reply })
            .await
            .map_err(|Closed| AddressError::Closed)?;
        response.await.map_err(|_| AddressError::Closed)?
    }

    /// Makes `members` the roster the mesh runs with, without a restart (this node may be
    /// among them; it is skipped). New members are allowed and dialled; members no longer
    /// listed are disconnected at once, forgotten with their addresses, bans and budgets, and
    /// refused from then on, either way; members whose addresses changed are dialled at the
    /// new ones once not connected. The list is checked first, as [`MeshConfig::validate`]
    /// checks it (at most [`MAX_MEMBERS`]): a refused list changes nothing.
    pub async fn set_members(
        &self,
        members: Vec<MeshMember>,
    ) -> Result<MembershipChange, SetMembersError> {
        validate_members(&members)?;
        let (reply, response) = oneshot::channel();
        self.send(Command::SetMembers { members, reply })
            .await
            .map_err(|Closed| SetMembersError::Closed)?;
        response.await.map_err(|_| SetMembersError::Closed)
    }

    async fn send(&self, command: Command) -> Result<(), Closed> {
        self.commands.send(command).await.map_err(|_| Closed)
    }
}

/// Builds the mesh: the client, the node's event receiver and the event loop to spawn.
/// The config is validated first ([`MeshConfig::validate`]). Listening starts here; dialling
/// starts when the loop runs.
pub fn new(config: MeshConfig) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), MeshError> {
    config.validate()?;
    let (command_sender, command_receiver) = mpsc::channel(config.command_capacity);
    let (event_sender, event_receiver) = mpsc::channel(config.event_capacity);
    let event_loop = EventLoop::new(config, command_receiver, event_sender)?;
    Ok((Client { commands: command_sender }, event_receiver, event_loop))
}

#[cfg(test)]
mod tests;
