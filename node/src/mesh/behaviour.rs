//! The libp2p behaviours the mesh combines, and their settings: gossipsub with scoring, sync
//! over request-response, identify, ping, the roster allow list, bans and connection limits.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    PeerId, StreamProtocol, allow_block_list, connection_limits, gossipsub, identify, ping,
};

use super::peers::peer_id_of;
use super::{
    MAX_GOSSIP_BYTES, MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES, MeshConfig, MeshError,
    SYNC_PROTOCOL, SyncRequest, SyncResponse, per_ip,
};

/// Weight of one `Reject` verdict, squared by their count (gossipsub's P₄ component).
const INVALID_MESSAGE_WEIGHT: f64 = -10.0;

/// How long rejects and penalties weigh on a score: they decay to a tenth over this time.
pub(crate) const MISBEHAVIOUR_MEMORY: Duration = Duration::from_secs(600);

/// Largest positive score a peer earns from the topic (first deliveries; time in the mesh
/// would count too, but nodes keep none), so that a long-standing member cannot bank credit
/// against rejects.
const TOPIC_SCORE_CAP: f64 = 20.0;

/// Most message ids in one announcement (IHAVE) or request (IWANT). Gossipsub refuses an RPC
/// whose control part is over 16 KiB and drops the stream it came on, but sends up to 5,000
/// ids in one; at 34 bytes an id on the wire, 400 ids and a topic name stay well inside the
/// limit. What a heartbeat cannot name of a burst is left to sync.
const MAX_IDS_PER_CONTROL: usize = 400;

/// Concurrent sync streams per connection: a peer rarely has more than a few requests out.
const MAX_CONCURRENT_SYNC_STREAMS: usize = 16;

/// How often each connection is pinged, and how long a ping may go unanswered. A sync request
/// that times out while the peer answered no ping since it went out failed with the link (a
/// partition: no reset, no error), not through the peer, and costs no penalty
/// (`outbound.rs`); a connection whose ping fails is closed (`event_loop`; libp2p passes over
/// a connection's first failure, so 25–30 s after the link went silent), and the dialer
/// redials once the link is back.
const PING_INTERVAL: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections idle this long are closed; a member's gossip keeps real ones busy (pings do
/// not keep a connection alive).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// The mesh's libp2p behaviours, polled together by the swarm. The order matters: the allow
/// list and the block list refuse a connection before any protocol sees it.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) per_ip: per_ip::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) gossipsub:
        gossipsub::Behaviour<gossipsub::IdentityTransform, gossipsub::WhitelistSubscriptionFilter>,
    pub(crate) sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
}

pub(crate) type Swarm = libp2p::Swarm<Behaviour>;

/// Builds the swarm: TCP + Noise + Yamux, DNS, and the behaviours.
pub(crate) fn build_swarm(
    keypair: Keypair,
    config: &MeshConfig,
    members: &[PeerId],
    topics: &[gossipsub::IdentTopic],
) -> Result<Swarm, MeshError> {
    let behaviour = build_behaviour(&keypair, config, members, topics)?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|error| MeshError::Setup(error.to_string()))?
        .with_dns()
        .map_err(MeshError::Dns)?
        .with_behaviour(|_| behaviour)
        .map_err(|error| MeshError::Setup(error.to_string()))?
        .with_swarm_config(|swarm_config| {
            swarm_config.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
        })
        .build();
    Ok(swarm)
}

/// Refuses a TCP address to listen on that another socket already holds. libp2p's TCP
/// transport sets `SO_REUSEPORT` on its listeners, so a second node given the same port would
/// bind it beside the first, and the kernel would share the incoming connections between the
/// two, each node getting some of its members' dials. A bind without that option fails while
/// any socket listens on the port: that is the check. It binds as the transport does otherwise
/// (`SO_REUSEADDR`, and an IPv6 address for IPv6 alone, so a node's own listener on the IPv4
/// wildcard is no clash for its IPv6 wildcard). Port 0, and addresses that are not an IP
/// address and a TCP port, pass.
pub(crate) fn ensure_port_free(address: &libp2p::Multiaddr) -> std::io::Result<()> {
    use libp2p::multiaddr::Protocol;
    use socket2::{Domain, Socket, Type};
    let (mut ip, mut port) = (None, None);
    for protocol in address {
        match protocol {
            Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(std::net::IpAddr::V6(v6)),
            Protocol::Tcp(tcp) => port = Some(tcp),
            _ => {}
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else { return Ok(()) };
    if port == 0 {
        return Ok(());
    }
    let address = std::net::SocketAddr::new(ip, port);
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())
}

fn build_behaviour(
    keypair: &Keypair,
    config: &MeshConfig,
    members: &[PeerId],
    topics: &[gossipsub::IdentTopic],
) -> Result<Behaviour, MeshError> {
    let mut allowed = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
    for member in members {
        allowed.allow_peer(*member);
    }

    let per_peer = config.max_connections_per_peer;
    // Pending inbound connections are limited by `per_ip`, which knows members' addresses.
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_pending_outgoing(Some(config.max_pending_outgoing))
        .with_max_established_per_peer(Some(per_peer))
        .with_max_established(Some(established_limit(members.len(), per_peer)));

    let identify = identify::Behaviour::new(
        identify::Config::new(config.announced_version(), keypair.public())
            .with_agent_version(format!("crossmatch/{}", env!("CARGO_PKG_VERSION")))
            // No cache of the addresses peers say they listen on: libp2p would add them to a
            // dial made for a request, so a node could reach a member around the addresses its
            // signed record announces (a relay, a NAT's mapping). Only announced ones are dialled.
            .with_cache_size(0),
    );

    let sync = request_response::Behaviour::with_codec(
        sync_codec(),
        [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(config.sync_request_timeout_secs))
            .with_max_concurrent_streams(MAX_CONCURRENT_SYNC_STREAMS),
    );

    Ok(Behaviour {
        allowed,
        blocked: allow_block_list::Behaviour::default(),
        limits: connection_limits::Behaviour::new(limits),
        per_ip: per_ip::Behaviour(per_ip::Counts::new(
            config.max_inbound_per_ip,
            config.max_pending_incoming,
            config.per_ip_exempts_loopback,
            listed_addresses(config, &keypair.public().to_peer_id()),
        )),
        identify,
        ping: ping::Behaviour::new(
            ping::Config::new().with_interval(PING_INTERVAL).with_timeout(PING_TIMEOUT),
        ),
        gossipsub: build_gossipsub(config, topics)?,
        sync,
    })
}

/// Established connections in all: every member's share, and a few for members' connections
/// that are closing while their successors open. Set again when the members change.
pub(crate) fn established_limit(n_members: usize, per_peer: u32) -> u32 {
    let n_members = u32::try_from(n_members).unwrap_or(u32::MAX);
    n_members.saturating_mul(per_peer).saturating_add(8)
}

/// Each other roster member's peer id with the addresses it is listed at (those that parse;
/// `MeshConfig::validate` has refused the config otherwise). This node's own addresses are
/// no member's: connections from them share the pending slots.
fn listed_addresses(config: &MeshConfig, own: &PeerId) -> Vec<(PeerId, Vec<libp2p::Multiaddr>)> {
    config
        .members
        .iter()
        .filter_map(|member| {
            let peer = peer_id_of(&member.public_key).filter(|peer| peer != own)?;
            let addresses = member.addresses.iter().filter_map(|a| a.parse().ok()).collect();
            Some((peer, addresses))
        })
        .collect()
}

/// Sync's CBOR codec, bounded by the protocol's request and response limits.
fn sync_codec() -> request_response::cbor::codec::Codec<SyncRequest, SyncResponse> {
    request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(MAX_SYNC_REQUEST_BYTES)
        .set_response_size_maximum(MAX_SYNC_RESPONSE_BYTES)
}

/// Sync's codec over bytes in memory, as the fuzz targets drive it: what the codec reads from
/// a peer's stream and writes back. Reading memory never waits, so each call is polled once.
#[cfg(feature = "test-support")]
pub mod codec_in_memory {
    use std::future::Future;
    use std::io;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use crossmatch_protocol::{SYNC_PROTOCOL, SyncRequest, SyncResponse};
    use libp2p::StreamProtocol;
    use libp2p::futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    /// Polls a future over memory once: it is ready, or the read is refused.
    fn ready<T>(future: impl Future<Output = io::Result<T>>) -> io::Result<T> {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::Error::other("a read from memory waited")),
        }
    }

    /// A sync request read from `bytes` as from a peer's stream.
    pub fn read_request(bytes: &[u8]) -> io::Result<SyncRequest> {
        let protocol = StreamProtocol::new(SYNC_PROTOCOL);
        ready(super::sync_codec().read_request(&protocol, &mut Cursor::new(bytes)))
    }

    /// A sync response read from `bytes` as from a peer's stream.
    pub fn read_response(bytes: &[u8]) -> io::Result<SyncResponse> {
        let protocol = StreamProtocol::new(SYNC_PROTOCOL);
        ready(super::sync_codec().read_response(&protocol, &mut Cursor::new(bytes)))
    }

    /// A sync request as written to a peer's stream.
    pub fn write_request(request: SyncRequest) -> io::Result<Vec<u8>> {
        let protocol = StreamProtocol::new(SYNC_PROTOCOL);
        let mut written = Cursor::new(Vec::new());
        ready(super::sync_codec().write_request(&protocol, &mut written, request))?;
        Ok(written.into_inner())
    }

    /// A sync response as written to a peer's stream.
    pub fn write_response(response: SyncResponse) -> io::Result<Vec<u8>> {
        let protocol = StreamProtocol::new(SYNC_PROTOCOL);
        let mut written = Cursor::new(Vec::new());
        ready(super::sync_codec().write_response(&protocol, &mut written, response))?;
        Ok(written.into_inner())
    }
}

fn build_gossipsub(
    config: &MeshConfig,
    topics: &[gossipsub::IdentTopic],
) -> Result<
    gossipsub::Behaviour<gossipsub::IdentityTransform, gossipsub::WhitelistSubscriptionFilter>,
    MeshError,
> {
    let message_id = config.message_id.clone();
    let gossip_config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(move |message: &gossipsub::Message| {
            gossipsub::MessageId::from(message_id(&message.data).to_vec())
        })
        // The first heartbeat's announcements need not wait 5 s.
        .heartbeat_initial_delay(Duration::from_millis(100))
        .max_control_messages_sent(MAX_IDS_PER_CONTROL)
        .duplicate_cache_time(Duration::from_secs(300))
        // No eager forwarding (docs/PROTOCOL.md §3.2): a publisher sends each message straight
        // to every member it is connected to, and a validated message is only announced
        // (IHAVE) to the others at each heartbeat, for a member that lacks it to fetch (IWANT).
        // With a mesh of 6, members also forwarded what most of them had received from the
        // publisher already: 2 to 4 times the data at 28 members with the capitals' delays.
        .flood_publish(true)
        .mesh_n(0)
        .mesh_n_low(0)
        .mesh_n_high(0)
        .mesh_outbound_min(0)
        .build()
        .map_err(|error| MeshError::Setup(error.to_string()))?;

    let only_our_topics =
        gossipsub::WhitelistSubscriptionFilter(topics.iter().map(|topic| topic.hash()).collect());
    let mut gossipsub = gossipsub::Behaviour::new_with_subscription_filter(
        gossipsub::MessageAuthenticity::Anonymous,
        gossip_config,
        only_our_topics,
    )
    .map_err(|error| MeshError::Setup(error.to_string()))?;

    let (params, thresholds) = score_params(config, topics);
    gossipsub.with_peer_score(params, thresholds).map_err(MeshError::Setup)?;
    for topic in topics {
        gossipsub.subscribe(topic).map_err(|error| MeshError::Setup(error.to_string()))?;
    }
    Ok(gossipsub)
}

/// Scoring: rejects (P₄) and penalties (the application score, P₅) dominate; delivering first
/// earns a little (time in the mesh is weighed too, but nodes keep no mesh: see
/// [`build_gossipsub`]); IP colocation is off (members sit behind shared NATs and
/// the roster already keeps sybils out), and mesh delivery quotas are off (a quiet federation
/// sends few batches).
fn score_params(
    config: &MeshConfig,
    topics: &[gossipsub::IdentTopic],
) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let memory_decay = gossipsub::score_parameter_decay(MISBEHAVIOUR_MEMORY);
    let topic_params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0027,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: memory_decay,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: memory_decay,
        ..gossipsub::TopicScoreParams::default()
    };
    // A banned peer is away for the whole ban; its retained score is forgotten before the ban
    // ends, so it comes back with a clean slate instead of being banned again at once
    // (gossipsub does not decay the scores of disconnected peers).
    let retain_score = Duration::from_secs(config.ban_secs / 2).max(Duration::from_secs(1));
    let mut params = gossipsub::PeerScoreParams {
        topic_score_cap: TOPIC_SCORE_CAP,
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: -1.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: 0.9,
        retain_score,
        ..gossipsub::PeerScoreParams::default()
    };
    // A reject costs the same on either topic: a forged batch and forged fork evidence are
    // equally hostile.
    for topic in topics {
        params.topics.insert(topic.hash(), topic_params.clone());
    }
    (params, gossipsub::PeerScoreThresholds::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    /// The sync vectors of one kind (`requests` or `responses`), as (name, CBOR bytes).
    fn sync_vectors(kind: &str) -> Vec<(String, Vec<u8>)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../protocol/tests/vectors/sync_messages.json");
        let text = std::fs::read_to_string(path).expect("the sync vectors are readable");
        let json: serde_json::Value = serde_json::from_str(&text).expect("the sync vectors parse");
        let vectors = json[kind].as_array().expect("a list of vectors");
        vectors
            .iter()
            .map(|vector| {
                let name = vector["name"].as_str().expect("a name").to_string();
                let bytes = hex::decode(vector["cbor_hex"].as_str().expect("hex")).expect("hex");
                (name, bytes)
            })
            .collect()
    }

    /// What goes on the wire is what the protocol's vectors say: the codec reads each one and
    /// writes it back byte for byte.
    #[tokio::test]
    async fn the_sync_codec_reads_and_writes_the_vectors_byte_for_byte() {
        let protocol = StreamProtocol::new(SYNC_PROTOCOL);
        let mut codec = sync_codec();
        let requests = sync_vectors("requests");
        assert!(requests.len() >= 3);
        for (name, bytes) in requests {
            let request = codec
                .read_request(&protocol, &mut Cursor::new(bytes.clone()))
                .await
                .unwrap_or_else(|error| panic!("request {name} reads: {error}"));
            let mut written = Cursor::new(Vec::new());
            codec.write_request(&protocol, &mut written, request).await.expect("writes");
            assert_eq!(hex::encode(written.into_inner()), hex::encode(bytes), "request {name}");
        }
        let responses = sync_vectors("responses");
        assert!(responses.len() >= 4);
        for (name, bytes) in responses {
            let response = codec
                .read_response(&protocol, &mut Cursor::new(bytes.clone()))
                .await
                .unwrap_or_else(|error| panic!("response {name} reads: {error}"));
            let mut written = Cursor::new(Vec::new());
            codec.write_response(&protocol, &mut written, response).await.expect("writes");
            assert_eq!(hex::encode(written.into_inner()), hex::encode(bytes), "response {name}");
        }
    }
}
