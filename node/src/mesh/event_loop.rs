//! The event loop: owns the `Swarm` and the peer table, runs the node's commands, translates
//! libp2p events into the mesh's [`Event`]s, and applies the side effects of bans and redials.
//! A change of the members is applied in `event_loop/membership.rs`.

mod membership;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossmatch_protocol::REFUSED_BUSY;
use libp2p::futures::StreamExt;
use libp2p::futures::stream::FuturesUnordered;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionDenied, DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, allow_block_list, connection_limits, gossipsub, identify, ping};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, trace, warn};

use super::outbound::Outbound;

use super::behaviour::{self, BehaviourEvent, Swarm};
use super::dialer::Jitter;
use super::peers::{
    PeerSettings, PeerTable, RosterState, application_score, key_of_peer_id, peer_id_of,
};
use super::{
    AddressError, Ban, Command, Event, GossipKind, MAX_GOSSIP_BYTES, MAX_RECENT_REFUSALS,
    MAX_SYNC_RESPONSE_BYTES, MeshConfig, MeshError, MeshStats, PeerKey, PublishError, Refusal,
    RefusalReason, RequestError, SyncRequest, SyncResponse, Verdict,
};

/// How often the loop redials, lifts bans, decays penalties and checks scores.
const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(250);

/// Inbound sync requests handed to the node and not yet answered, over all peers.
const MAX_PENDING_INBOUND_REQUESTS: usize = 64;

/// Outbound sync requests in flight, over all peers.
const MAX_PENDING_OUTBOUND_REQUESTS: usize = 256;

/// Control events (connected, banned, …) waiting for room in the node's channel; beyond this
/// the oldest is dropped and counted.
const MAX_QUEUED_EVENTS: usize = 1024;

/// Callers of `listen_addresses` waiting for the first bound address.
const MAX_LISTEN_WAITERS: usize = 16;

type PendingReply = Pin<Box<dyn Future<Output = InboundReply> + Send>>;

/// The loop that owns the `Swarm`. Spawn [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    queued_events: VecDeque<Event>,
    /// The gossip topics, indexed by [`GossipKind`].
    topics: [gossipsub::IdentTopic; GossipKind::ALL.len()],
    announced_version: String,
    /// Every roster member's state: roster, ban, penalties, budget, redial.
    peers: PeerTable,
    pending_replies: FuturesUnordered<PendingReply>,
    outbound: Outbound<OutboundRequestId>,
    listen_waiters: Vec<oneshot::Sender<Vec<String>>>,
    refusals: VecDeque<Refusal>,
    counters: Counters,
    settings: Settings,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop").field("peers", &self.peers).finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Counters {
    refused_connections: u64,
    gossip_dropped_busy: u64,
    sync_refused_busy: u64,
    sync_inbound_failures: u64,
    events_dropped: u64,
    payload_bytes_sent: u64,
    gossip_bytes_published: u64,
}

#[derive(Debug)]
struct Settings {
    ban_score_threshold: f64,
    /// How long the node has to answer an inbound request: under the requester's timeout.
    reply_timeout: Duration,
    /// Established connections per member, for the total limit when the members change.
    max_connections_per_peer: u32,
}

struct InboundReply {
    peer: PeerId,
    channel: ResponseChannel<SyncResponse>,
    response: Option<SyncResponse>,
}

impl EventLoop {
    pub(super) fn new(
        config: MeshConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
    ) -> Result<Self, MeshError> {
        // `mesh::new` validated the config (`MeshConfig::validate`).
        let mut seed = config.keypair_seed;
        let keypair = Keypair::ed25519_from_bytes(&mut seed).map_err(|_| MeshError::BadKey)?;
        let local_peer = keypair.public().to_peer_id();

        let now = Instant::now();
        let peer_settings = PeerSettings {
            ban: Duration::from_secs(config.ban_secs),
            budget: config.sync_budget,
            redial_initial: Duration::from_millis(config.redial_initial_ms),
            redial_max: Duration::from_millis(config.redial_max_ms),
        };
        let mut peers = PeerTable::new(peer_settings, Jitter::from_entropy(), now);
        for (index, member) in config.members.iter().enumerate() {
            let peer = peer_id_of(&member.public_key).ok_or(MeshError::BadMemberKey { index })?;
            let mut addresses = Vec::with_capacity(member.addresses.len());
            for address in &member.addresses {
                addresses.push(parse_address(address)?);
            }
            if peer == local_peer {
                continue;
            }
            peers.insert_member(PeerKey(member.public_key), peer, addresses, now);
        }

        let topics = [
            gossipsub::IdentTopic::new(config.topic()),
            gossipsub::IdentTopic::new(config.fork_topic()),
            gossipsub::IdentTopic::new(config.roster_topic()),
            gossipsub::IdentTopic::new(config.record_topic()),
        ];
        let member_ids: Vec<PeerId> = peers.peer_ids().collect();
        let mut swarm = behaviour::build_swarm(keypair, &config, &member_ids, &topics)?;
        for address in &config.listen_addresses {
            let multiaddr = parse_address(address)?;
            let listening = match behaviour::ensure_port_free(&multiaddr) {
                Ok(()) => swarm.listen_on(multiaddr).map(drop).map_err(Box::from),
                Err(in_use) => Err(Box::from(in_use)),
            };
            listening.map_err(|source| MeshError::Listen { address: address.clone(), source })?;
        }

        let request_timeout = Duration::from_secs(config.sync_request_timeout_secs);
        let settings = Settings {
            ban_score_threshold: config.ban_score_threshold,
            reply_timeout: request_timeout.mul_f64(0.75),
            max_connections_per_peer: config.max_connections_per_peer,
        };
        info!(
            members = peers.len(),
            topic = %config.topic(),
            "mesh set up"
        );
        Ok(EventLoop {
            swarm,
            commands,
            events,
            queued_events: VecDeque::new(),
            topics,
            announced_version: config.announced_version(),
            peers,
            pending_replies: FuturesUnordered::new(),
            outbound: Outbound::default(),
            listen_waiters: Vec::new(),
            refusals: VecDeque::new(),
            counters: Counters::default(),
            settings,
        })
    }

    /// Runs until `shutdown` completes: dials the roster, serves commands, forwards events.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.peers.dial_all_now(Instant::now());
        let mut commands_open = true;
        loop {
            // Biased: the first ready branch wins, in this order.
            // 1. Shutdown, so the loop stops promptly however busy it is.
            // 2. The node's commands: the node waits on their replies, and gossip verdicts must
            //    land within gossipsub's validation window. They cannot starve what follows:
            //    each is a little work, and the node sends them in answer to events or waits
            //    on a reply before it sends another, so the queue drains faster than it fills.
            // 3. Replies to inbound sync requests: a peer is waiting; at most
            //    MAX_PENDING_INBOUND_REQUESTS, each ready once.
            // 4. Control events queued for the node: at most MAX_QUEUED_EVENTS, ready only while
            //    the node has room.
            // 5. The maintenance tick (lift bans, decay penalties, check scores, redial): ready
            //    at most every MAINTENANCE_INTERVAL, so it costs the swarm little, and above the
            //    swarm so that a flood of network events cannot stop it.
            // 6. The swarm last: it is the one source that remote peers (even refused ones)
            //    drive and that can stay ready indefinitely. Everything above is bounded or
            //    paced by the node, so the swarm is polled as soon as those drain, and a flood
            //    from the network cannot starve the node's work, answers or maintenance.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                command = self.commands.recv(), if commands_open => match command {
                    Some(command) => self.on_command(command),
                    None => commands_open = false,
                },
                Some(reply) = self.pending_replies.next(), if !self.pending_replies.is_empty() => {
                    self.on_reply(reply);
                }
                Ok(permit) = self.events.clone().reserve_owned(),
                    if !self.queued_events.is_empty() && !self.events.is_closed() =>
                {
                    if let Some(event) = self.queued_events.pop_front() {
                        permit.send(event);
                    }
                }
                _ = maintenance.tick() => self.maintain(),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
        }
        info!("mesh stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { kind, data, reply } => {
                let _ = reply.send(self.publish(kind, data));
            }
            Command::ReportValidation { message_id, source, verdict } => {
                self.report_validation(message_id, source, verdict);
            }
            Command::Request { peer, request, reply } => self.request(peer, request, reply),
            Command::Penalize { peer } => self.penalize(peer),
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.connected_keys());
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Command::AddAddress { peer, address, reply } => {
                let _ = reply.send(self.add_address(peer, &address));
            }
            Command::SetMembers { members, reply } => {
                let _ = reply.send(self.set_members(members));
            }
            Command::ListenAddresses { reply } => {
                let addresses: Vec<String> =
                    self.swarm.listeners().map(ToString::to_string).collect();
                if addresses.is_empty() && self.listen_waiters.len() < MAX_LISTEN_WAITERS {
                    self.listen_waiters.push(reply);
                } else {
                    let _ = reply.send(addresses);
                }
            }
        }
    }

    fn add_address(&mut self, key: PeerKey, address: &str) -> Result<(), AddressError> {
        let multiaddr: Multiaddr =
            address.parse().map_err(|_| AddressError::BadAddress(address.to_string()))?;
        let peer =
            self.peers.add_address(&key, multiaddr.clone()).ok_or(AddressError::UnknownPeer)?;
        self.swarm.behaviour_mut().per_ip.0.list_address(&peer, &multiaddr);
        let now = Instant::now();
        if !self.swarm.is_connected(&peer) && self.peers.dial_soon(&peer, now) {
            self.dial_due(now);
        }
        Ok(())
    }

    fn publish(&mut self, kind: GossipKind, data: Vec<u8>) -> Result<(), PublishError> {
        if data.len() > MAX_GOSSIP_BYTES {
            return Err(PublishError::TooLarge);
        }
        let n_bytes = data.len();
        let topic = self.topics[kind as usize].clone();
        match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_) => {
                self.counters.payload_bytes_sent += n_bytes as u64;
                self.counters.gossip_bytes_published += n_bytes as u64;
                debug!(n_bytes, ?kind, "published");
                Ok(())
            }
            Err(gossipsub::PublishError::Duplicate) => Err(PublishError::Duplicate),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Err(PublishError::NoPeers),
            Err(gossipsub::PublishError::MessageTooLarge) => Err(PublishError::TooLarge),
            Err(gossipsub::PublishError::AllQueuesFull(_)) => Err(PublishError::QueuesFull),
            Err(error) => Err(PublishError::Failed(error.to_string())),
        }
    }

    fn report_validation(&mut self, message_id: [u8; 32], source: PeerKey, verdict: Verdict) {
        let Some(peer) = self.peers.id_of(&source) else {
            debug!(peer = %source, "verdict for a peer outside the roster");
            return;
        };
        let acceptance = match verdict {
            Verdict::Accept => gossipsub::MessageAcceptance::Accept,
            Verdict::Reject => gossipsub::MessageAcceptance::Reject,
            Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
        };
        let known = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
            &gossipsub::MessageId::from(message_id.to_vec()),
            &peer,
            acceptance,
        );
        debug!(peer = %source, ?verdict, known, "gossip verdict");
        if verdict == Verdict::Reject {
            self.check_scores();
        }
    }

    fn request(
        &mut self,
        key: PeerKey,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, RequestError>>,
    ) {
        let Some(peer) = self.peers.id_of(&key) else {
            let _ = reply.send(Err(RequestError::UnknownPeer));
            return;
        };
        let refusal = match self.peers.roster_state(&peer) {
            Some(RosterState::Mismatched) => Some(RequestError::RosterMismatch),
            Some(RosterState::Unconfirmed) | None => Some(RequestError::NotConnected),
            Some(RosterState::Confirmed) if !request.is_well_formed() => {
                Some(RequestError::BadRequest)
            }
            Some(RosterState::Confirmed)
                if self.outbound.len() >= MAX_PENDING_OUTBOUND_REQUESTS =>
            {
                Some(RequestError::Busy)
            }
            Some(RosterState::Confirmed) => None,
        };
        if let Some(error) = refusal {
            let _ = reply.send(Err(error));
            return;
        }
        let request_id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.outbound.sent(request_id, reply, Instant::now());
    }

    fn penalize(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.id_of(&key) else {
            return;
        };
        self.decay_penalties(Instant::now());
        let Some(penalties) = self.peers.penalize(&peer) else {
            return;
        };
        let score = application_score(penalties);
        self.swarm.behaviour_mut().gossipsub.set_application_score(&peer, score);
        warn!(peer = %key, penalties, "peer penalised");
        self.check_scores();
    }

    fn decay_penalties(&mut self, now: Instant) {
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        for (peer, score) in self.peers.decay_penalties(now) {
            gossipsub.set_application_score(&peer, score);
        }
    }

    /// Bans every connected member whose score fell below the threshold.
    fn check_scores(&mut self) {
        let threshold = self.settings.ban_score_threshold;
        let below: Vec<(PeerId, f64)> = self
            .swarm
            .connected_peers()
            .filter(|peer| self.peers.is_member_not_banned(peer))
            .filter_map(|peer| {
                let score = self.swarm.behaviour().gossipsub.peer_score(peer)?;
                (score < threshold).then_some((*peer, score))
            })
            .collect();
        for (peer, score) in below {
            self.ban(peer, score);
        }
    }

    fn ban(&mut self, peer: PeerId, score: f64) {
        let Some(Ban { peer: key, until_unix_ms }) =
            self.peers.ban(&peer, Instant::now(), unix_now_ms())
        else {
            return;
        };
        let behaviour = self.swarm.behaviour_mut();
        behaviour.gossipsub.set_application_score(&peer, 0.0);
        behaviour.gossipsub.blacklist_peer(&peer);
        // Closes every connection to the peer, and refuses new ones both ways.
        behaviour.blocked.block_peer(peer);
        warn!(peer = %key, score, until_unix_ms, "peer banned");
        self.emit(Event::PeerBanned { peer: key, until_unix_ms });
    }

    fn maintain(&mut self) {
        let now = Instant::now();
        self.decay_penalties(now);

        for (peer, key) in self.peers.lift_expired_bans(now) {
            let behaviour = self.swarm.behaviour_mut();
            behaviour.blocked.unblock_peer(peer);
            behaviour.gossipsub.remove_blacklisted_peer(&peer);
            info!(peer = %key, "ban lifted");
        }

        self.check_scores();
        self.dial_due(now);
    }

    /// Dials every member whose redial time has come.
    fn dial_due(&mut self, now: Instant) {
        let swarm = &self.swarm;
        let dials = self.peers.due_dials(now, |peer| swarm.is_connected(peer));
        for dial in dials {
            let options = DialOpts::peer_id(dial.peer)
                .addresses(dial.addresses)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            match self.swarm.dial(options) {
                Ok(()) => debug!(peer = %dial.key, attempt = dial.attempt, "dialling"),
                Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(error) => debug!(peer = %dial.key, %error, "dial not started"),
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                let addresses: Vec<String> =
                    self.swarm.listeners().map(ToString::to_string).collect();
                for waiter in self.listen_waiters.drain(..) {
                    let _ = waiter.send(addresses.clone());
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                if let Some(key) = self.peers.on_connection_established(&peer_id) {
                    debug!(
                        peer = %key,
                        dialer = endpoint.is_dialer(),
                        n_connections = num_established.get(),
                        "connection established"
                    );
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                if num_established == 0 {
                    self.outbound.gone(&peer_id);
                    self.on_peer_gone(peer_id, cause.map(|error| error.to_string()));
                }
            }
            SwarmEvent::IncomingConnectionError { error, peer_id, send_back_addr, .. } => {
                match error {
                    ListenError::Denied { cause } => {
                        self.record_refusal(peer_id, send_back_addr.to_string(), cause);
                    }
                    error => debug!(address = %send_back_addr, %error, "inbound connection failed"),
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => match error {
                DialError::Denied { cause } => {
                    self.record_refusal(peer_id, "outbound".to_string(), cause);
                }
                error => {
                    let peer = peer_id.map(|peer| self.log_id(&peer)).unwrap_or_default();
                    debug!(%peer, %error, "dial failed");
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.on_identified(peer_id, &info.protocol_version),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossipsub(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            // A silent link (a ping unanswered, or its stream not opened, in time; not a peer
            // without ping): closed, so its requests fail at once and the dialer redials.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(error),
            })) if !matches!(error, ping::Failure::Unsupported) => {
                info!(peer = %self.log_id(&peer), %error, "ping failed: connection closed");
                self.swarm.close_connection(connection);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(_),
                ..
            })) => self.outbound.pinged(peer, Instant::now()),
            other => trace!(?other, "swarm event"),
        }
    }

    fn on_peer_gone(&mut self, peer: PeerId, cause: Option<String>) {
        let Some(gone) = self.peers.on_disconnected(&peer, Instant::now()) else {
            return;
        };
        let key = gone.key;
        info!(peer = %key, cause = cause.as_deref().unwrap_or("closed"), "peer disconnected");
        if gone.was_confirmed {
            self.emit(Event::PeerDisconnected(key));
        }
    }

    fn on_identified(&mut self, peer: PeerId, protocol_version: &str) {
        if protocol_version == self.announced_version {
            let Some(change) = self.peers.confirm_roster(&peer) else {
                return;
            };
            if change.previous != RosterState::Confirmed {
                info!(peer = %change.key, "peer connected");
                self.emit(Event::PeerConnected(change.key));
            }
        } else {
            let Some(change) = self.peers.mismatch_roster(&peer) else {
                return;
            };
            if change.previous != RosterState::Mismatched {
                // The announced string holds only public ids; it is cut to keep logs bounded,
                // and a control character (a forged line break) becomes `?`.
                let announced: String = protocol_version
                    .chars()
                    .take(160)
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                warn!(peer = %change.key, %announced, "peer announced another federation");
                if change.previous == RosterState::Confirmed {
                    self.emit(Event::PeerDisconnected(change.key));
                }
                self.emit(Event::RosterMismatch(change.key));
            }
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message { propagation_source, message_id, message } = event else {
            trace!(?event, "gossipsub event");
            return;
        };
        let source = self.peers.key_of(&propagation_source);
        let id = <[u8; 32]>::try_from(message_id.0.as_slice()).ok();
        let kind = GossipKind::ALL
            .into_iter()
            .find(|kind| message.topic == self.topics[*kind as usize].hash());
        let (Some(source), Some(id), Some(kind)) = (source, id, kind) else {
            self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                &message_id,
                &propagation_source,
                gossipsub::MessageAcceptance::Ignore,
            );
            return;
        };
        let n_bytes = message.data.len();
        match self.events.try_send(Event::Gossip {
            kind,
            source,
            message_id: id,
            data: message.data,
        }) {
            Ok(()) => trace!(peer = %source, n_bytes, "gossip received"),
            Err(_) => {
                self.counters.gossip_dropped_busy += 1;
                debug!(peer = %source, "node busy: gossip ignored, sync will recover it");
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    gossipsub::MessageAcceptance::Ignore,
                );
            }
        }
    }

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.on_sync_request(peer, request, channel);
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.outbound.answered(request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                debug!(peer = %self.log_id(&peer), %error, "sync request failed");
                let error = match error {
                    OutboundFailure::Timeout => RequestError::Timeout,
                    OutboundFailure::ConnectionClosed => RequestError::ConnectionClosed,
                    OutboundFailure::DialFailure => RequestError::NotConnected,
                    OutboundFailure::UnsupportedProtocols => RequestError::Unsupported,
                    error => RequestError::Failed(error.to_string()),
                };
                if let Some((reply, error)) = self.outbound.failed(request_id, &peer, error) {
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.counters.sync_inbound_failures += 1;
                debug!(peer = %self.log_id(&peer), %error, "inbound sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_sync_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let Some(key) = self.peers.key_of(&peer) else {
            return self.refuse(channel, "not a member");
        };
        match self.peers.roster_state(&peer) {
            Some(RosterState::Confirmed) => {}
            Some(RosterState::Mismatched) => return self.refuse(channel, "roster mismatch"),
            Some(RosterState::Unconfirmed) | None => {
                return self.refuse(channel, "roster unconfirmed");
            }
        }
        if !request.is_well_formed() {
            debug!(peer = %key, "malformed sync request");
            return self.refuse(channel, "bad request");
        }
        let within_budget = self.peers.try_sync_request(&peer, Instant::now());
        if !within_budget || self.pending_replies.len() >= MAX_PENDING_INBOUND_REQUESTS {
            self.counters.sync_refused_busy += 1;
            debug!(peer = %key, within_budget, "sync request refused: busy");
            return self.refuse(channel, REFUSED_BUSY);
        }
        let (reply, response) = oneshot::channel();
        match self.events.try_send(Event::SyncRequest { peer: key, request, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters.sync_refused_busy += 1;
                return self.refuse(channel, REFUSED_BUSY);
            }
            Err(TrySendError::Closed(_)) => return self.refuse(channel, "unavailable"),
        }
        let timeout = self.settings.reply_timeout;
        self.pending_replies.push(Box::pin(async move {
            let response = tokio::time::timeout(timeout, response).await.ok().and_then(Result::ok);
            InboundReply { peer, channel, response }
        }));
    }

    fn on_reply(&mut self, reply: InboundReply) {
        let InboundReply { peer, channel, response } = reply;
        let key = self.peers.key_of(&peer);
        let mut response =
            response.unwrap_or_else(|| SyncResponse::Refused("unavailable".to_string()));
        let mut n_bytes = response.encoded_len_max();
        if n_bytes as u64 > MAX_SYNC_RESPONSE_BYTES {
            warn!(?key, n_bytes, "sync response over the limit: refused instead");
            response = SyncResponse::Refused("response too large".to_string());
            n_bytes = response.encoded_len_max();
        }
        self.peers.charge_sync_response(&peer, Instant::now(), n_bytes);
        if self.swarm.behaviour_mut().sync.send_response(channel, response).is_err() {
            debug!(?key, "sync response not sent: the peer went away");
        } else {
            self.counters.payload_bytes_sent += n_bytes as u64;
        }
    }

    fn refuse(&mut self, channel: ResponseChannel<SyncResponse>, reason: &str) {
        let response = SyncResponse::Refused(reason.to_string());
        let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
    }

    fn record_refusal(&mut self, peer: Option<PeerId>, address: String, cause: ConnectionDenied) {
        let reason = match cause.downcast::<allow_block_list::NotAllowed>() {
            Ok(_) => RefusalReason::NotInRoster,
            Err(cause) => match cause.downcast::<allow_block_list::Blocked>() {
                Ok(_) => RefusalReason::Banned,
                Err(cause) => match cause.downcast::<connection_limits::Exceeded>() {
                    Ok(_) => RefusalReason::LimitReached,
                    Err(cause) => match cause.downcast::<super::per_ip::Refused>() {
                        Ok(_) => RefusalReason::LimitReached,
                        Err(_) => RefusalReason::Other,
                    },
                },
            },
        };
        let key = peer.as_ref().and_then(key_of_peer_id);
        self.counters.refused_connections += 1;
        let peer_log = peer.map(|peer| self.log_id(&peer)).unwrap_or_default();
        debug!(peer = %peer_log, %address, ?reason, "connection refused");
        if self.refusals.len() >= MAX_RECENT_REFUSALS {
            self.refusals.pop_front();
        }
        self.refusals.push_back(Refusal { peer: key, address, reason, at_unix_ms: unix_now_ms() });
    }

    /// Sends a control event, or queues it while the node's channel is full.
    fn emit(&mut self, event: Event) {
        if self.queued_events.is_empty() {
            if let Err(TrySendError::Full(event)) = self.events.try_send(event) {
                self.queue_event(event);
            }
        } else {
            self.queue_event(event);
        }
    }

    fn queue_event(&mut self, event: Event) {
        if self.queued_events.len() >= MAX_QUEUED_EVENTS {
            self.queued_events.pop_front();
            self.counters.events_dropped += 1;
        }
        self.queued_events.push_back(event);
    }

    fn connected_keys(&self) -> Vec<PeerKey> {
        self.peers.confirmed_keys()
    }

    fn stats(&self) -> MeshStats {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let batches = self.topics[GossipKind::Batch as usize].hash();
        let mut gossip_topic_peers: Vec<PeerKey> = gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&batches))
            .filter_map(|(peer, _)| self.key_of(peer))
            .collect();
        gossip_topic_peers.sort();
        let mut peer_scores: Vec<(PeerKey, f64)> = self
            .swarm
            .connected_peers()
            .filter_map(|peer| Some((self.key_of(peer)?, gossipsub.peer_score(peer)?)))
            .collect();
        peer_scores.sort_by_key(|(key, _)| *key);
        MeshStats {
            connected_peers: self.connected_keys(),
            gossip_topic_peers,
            peer_scores,
            refused_connections: self.counters.refused_connections,
            recent_refusals: self.refusals.iter().cloned().collect(),
            roster_mismatches: self.peers.mismatched_keys(),
            bans: self.peers.bans(),
            gossip_dropped_busy: self.counters.gossip_dropped_busy,
            sync_refused_busy: self.counters.sync_refused_busy,
            sync_inbound_failures: self.counters.sync_inbound_failures,
            events_dropped: self.counters.events_dropped,
            payload_bytes_sent: self.counters.payload_bytes_sent,
            gossip_bytes_published: self.counters.gossip_bytes_published,
        }
    }

    fn key_of(&self, peer: &PeerId) -> Option<PeerKey> {
        self.peers.key_of(peer)
    }

    /// A short, log-safe name for a peer: its key prefix, or the tail of its id.
    fn log_id(&self, peer: &PeerId) -> String {
        match self.key_of(peer).or_else(|| key_of_peer_id(peer)) {
            Some(key) => key.to_string(),
            None => {
                let text = peer.to_string();
                text[text.len().saturating_sub(8)..].to_string()
            }
        }
    }
}

pub(super) fn parse_address(address: &str) -> Result<Multiaddr, MeshError> {
    address.parse().map_err(|_| MeshError::BadAddress { address: address.to_string() })
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
