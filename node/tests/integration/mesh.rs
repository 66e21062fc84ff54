//! Integration tests of the mesh alone: real nodes on 127.0.0.1, every wait under a timeout.

use std::sync::Arc;
use std::time::Duration;

use crossmatch_node::mesh::{
    self, Client, Event, MeshConfig, MeshMember, MeshStats, PeerKey, PublishError, RefusalReason,
    RequestError, SyncBudget, SyncRequest, SyncResponse, Verdict,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};

/// Every single wait; generous, since two cores are shared.
const WAIT: Duration = Duration::from_secs(15);

/// How long a message that must not arrive is given to arrive: past a gossipsub heartbeat
/// (1 s), at which a message would be announced.
const QUIET: Duration = Duration::from_millis(2_500);

const FEDERATION: [u8; 32] = [0xfe; 32];

struct Node {
    key: PeerKey,
    client: Client,
    events: mpsc::Receiver<Event>,
    address: String,
    _shutdown: oneshot::Sender<()>,
}

fn key_of(seed: u8) -> PeerKey {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    PeerKey(signing.verifying_key().to_bytes())
}

fn config(seed: u8, roster_seeds: &[u8], federation: [u8; 32]) -> MeshConfig {
    let members = roster_seeds
        .iter()
        .map(|&member| MeshMember { public_key: key_of(member).0, addresses: Vec::new() })
        .collect();
    let mut config = MeshConfig::new(
        [seed; 32],
        federation,
        members,
        vec!["/ip4/127.0.0.1/tcp/0".to_string()],
        Arc::new(|data: &[u8]| *blake3::hash(data).as_bytes()),
    );
    config.redial_initial_ms = 200;
    config.redial_max_ms = 2_000;
    config
}

/// Starts a node and waits for the address it bound.
async fn start(config: MeshConfig) -> Node {
    let key = key_of(config.keypair_seed[0]);
    let (client, events, event_loop) = mesh::new(config).expect("mesh starts");
    let (shutdown, stop) = oneshot::channel::<()>();
    tokio::spawn(event_loop.run(async move {
        let _ = stop.await;
    }));
    let addresses = timeout(WAIT, client.listen_addresses()).await.expect("bound in time");
    let address = addresses.expect("mesh running").first().cloned().expect("one address");
    Node { key, client, events, address, _shutdown: shutdown }
}

/// Tells `node` where `other` listens.
async fn introduce(node: &Node, other: &Node) {
    node.client.add_address(other.key, other.address.clone()).await.expect("member address");
}

/// Waits until `check` holds for the node's stats.
async fn until_stats(node: &Node, what: &str, check: impl Fn(&MeshStats) -> bool) -> MeshStats {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = node.client.stats().await.expect("mesh running");
        if check(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the node has exactly these peers connected and subscribed to the batch topic.
async fn until_subscribed(node: &Node, peers: &[PeerKey]) {
    let mut want = peers.to_vec();
    want.sort();
    until_stats(node, "connected and subscribed peers", |stats| {
        stats.connected_peers == want && stats.gossip_topic_peers == want
    })
    .await;
}

/// The next event that `pick` accepts; other events are skipped.
async fn next_event<T>(node: &mut Node, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = timeout(remaining, node.events.recv())
            .await
            .expect("timed out waiting for an event")
            .expect("event channel open");
        if let Some(value) = pick(event) {
            return value;
        }
    }
}

async fn next_gossip(node: &mut Node) -> (PeerKey, [u8; 32], Vec<u8>) {
    next_event(node, |event| match event {
        Event::Gossip { source, message_id, data, .. } => Some((source, message_id, data)),
        _ => None,
    })
    .await
}

/// Asserts that no gossip reaches the node for [`QUIET`].
async fn no_gossip(node: &mut Node) {
    let deadline = Instant::now() + QUIET;
    while let Ok(Some(event)) =
        timeout(deadline.saturating_duration_since(Instant::now()), node.events.recv()).await
    {
        assert!(!matches!(event, Event::Gossip { .. }), "unexpected gossip: {event:?}");
    }
}

/// Three members in a line: A and C know only B's address, so A's messages reach C only
/// through B.
async fn line_of_three() -> (Node, Node, Node) {
    let roster = [1, 2, 3];
    let a = start(config(1, &roster, FEDERATION)).await;
    let b = start(config(2, &roster, FEDERATION)).await;
    let c = start(config(3, &roster, FEDERATION)).await;
    introduce(&a, &b).await;
    introduce(&c, &b).await;
    until_subscribed(&b, &[a.key, c.key]).await;
    until_subscribed(&a, &[b.key]).await;
    until_subscribed(&c, &[b.key]).await;
    (a, b, c)
}

#[tokio::test]
async fn gossip_is_forwarded_only_after_accept() {
    let (a, mut b, mut c) = line_of_three().await;
    assert!(a.client.connected_peers().await.expect("running") == vec![b.key]);

    // Accepted at B: passed on to C (B keeps no forwarding mesh, so it announces the message
    // by IHAVE at its next heartbeat and C fetches it by IWANT).
    let first = b"batch one".to_vec();
    a.client.publish(first.clone()).await.expect("published");
    let (source, id, data) = next_event(&mut b, |event| match event {
        Event::Gossip { source, message_id, data, .. } => Some((source, message_id, data)),
        _ => None,
    })
    .await;
    assert_eq!((source, id, &data), (a.key, *blake3::hash(&first).as_bytes(), &first));
    no_gossip(&mut c).await;
    b.client.report_validation(id, source, Verdict::Accept).await.expect("running");
    let (source, forwarded_id, data) = next_gossip(&mut c).await;
    assert_eq!((source, forwarded_id, data), (b.key, id, first.clone()));
    c.client.report_validation(id, source, Verdict::Accept).await.expect("running");

    // A duplicate is dropped by id.
    assert_eq!(a.client.publish(first).await, Err(PublishError::Duplicate));

    // Ignored or rejected at B: not passed on (neither announced nor served).
    for (data, verdict) in
        [(b"batch two".to_vec(), Verdict::Ignore), (b"bad".to_vec(), Verdict::Reject)]
    {
        a.client.publish(data.clone()).await.expect("published");
        let (source, id, received) = next_gossip(&mut b).await;
        assert_eq!(received, data);
        b.client.report_validation(id, source, verdict).await.expect("running");
        no_gossip(&mut c).await;
    }

    // Too large for gossip.
    let too_large = vec![0u8; mesh::MAX_GOSSIP_BYTES + 1];
    assert_eq!(a.client.publish(too_large).await, Err(PublishError::TooLarge));

    // A's payload bytes: what it published, once each ("batch one", "batch two", "bad"); not
    // the duplicate nor the one too large. B only forwarded: nothing of its own.
    let (stats_a, stats_b) =
        (a.client.stats().await.expect("running"), b.client.stats().await.expect("running"));
    assert_eq!(stats_a.payload_bytes_sent, 9 + 9 + 3);
    assert_eq!(stats_a.gossip_bytes_published, 9 + 9 + 3, "all of it by gossip");
    assert_eq!((stats_b.payload_bytes_sent, stats_b.gossip_bytes_published), (0, 0));
}

/// A burst larger than one announcement can name: gossipsub refuses a control message over
/// 16 KiB, about 480 ids, so an announcement of a whole burst would be refused and break the
/// stream it came on. Announcements are capped below that; the rest of a burst is left to
/// sync.
#[tokio::test]
async fn a_burst_is_announced_in_announcements_a_peer_accepts() {
    // Below the node's event channel (1,024), so B sees every message of it.
    const BURST: usize = 1_000;
    // C learns A's messages only from B's announcements.
    let (a, mut b, mut c) = line_of_three().await;

    // B takes the whole burst in, then accepts it at once (well within gossipsub's cache of
    // five heartbeats), so its next announcement has the whole burst to name.
    let accept_all = async {
        let mut burst = Vec::with_capacity(BURST);
        for _ in 0..BURST {
            let (source, id, _) = next_gossip(&mut b).await;
            burst.push((source, id));
        }
        for (source, id) in burst {
            b.client.report_validation(id, source, Verdict::Accept).await.expect("running");
        }
        b
    };
    let publish_all = async {
        for i in 0..BURST {
            a.client.publish(format!("burst {i}").into_bytes()).await.expect("published");
        }
    };
    // C counts what reaches it until the announcements stop (three heartbeats), accepting.
    let count_at_c = async {
        let mut received = 0;
        let mut gap = WAIT;
        while let Ok(Some(event)) = timeout(gap, c.events.recv()).await {
            if let Event::Gossip { source, message_id, .. } = event {
                received += 1;
                gap = Duration::from_secs(4);
                c.client.report_validation(message_id, source, Verdict::Accept).await.expect("up");
            }
        }
        (c, received)
    };
    let (mut b, (), (mut c, received)) = tokio::join!(accept_all, publish_all, count_at_c);
    assert!(received >= 400, "C fetched {received} of the burst's {BURST} by announcement");

    // And the link still carries what comes next.
    let after = b"after the burst".to_vec();
    a.client.publish(after.clone()).await.expect("published");
    let (source, id, _) = next_gossip(&mut b).await;
    b.client.report_validation(id, source, Verdict::Accept).await.expect("running");
    let (_, _, data) = next_gossip(&mut c).await;
    assert_eq!(data, after);
}

#[tokio::test]
async fn a_peer_outside_the_roster_is_refused() {
    let roster = [11, 12];
    let mut a = start(config(11, &roster, FEDERATION)).await;
    let b = start(config(12, &roster, FEDERATION)).await;
    // The outsider knows A as a member of its own roster, and dials it.
    let outsider = start(config(19, &[11, 19], FEDERATION)).await;
    introduce(&b, &a).await;
    introduce(&outsider, &a).await;
    until_subscribed(&a, &[b.key]).await;

    let stats = until_stats(&a, "the outsider refused", |stats| {
        stats.recent_refusals.iter().any(|refusal| refusal.peer == Some(outsider.key))
    })
    .await;
    assert!(stats.refused_connections >= 1);
    let refusal = stats.recent_refusals.iter().find(|refusal| refusal.peer == Some(outsider.key));
    assert_eq!(refusal.map(|refusal| refusal.reason), Some(RefusalReason::NotInRoster));
    assert_eq!(stats.connected_peers, vec![b.key]);
    assert!(outsider.client.connected_peers().await.expect("running").is_empty());

    // A cannot be pointed at the outsider either: it is not a member.
    let error = a.client.add_address(outsider.key, outsider.address.clone()).await;
    assert_eq!(error, Err(mesh::AddressError::UnknownPeer));

    // Nothing the outsider publishes reaches A; a member's message still does.
    assert_eq!(outsider.client.publish(b"spam".to_vec()).await, Err(PublishError::NoPeers));
    no_gossip(&mut a).await;
    b.client.publish(b"from a member".to_vec()).await.expect("published");
    let (source, _, data) = next_gossip(&mut a).await;
    assert_eq!((source, data), (b.key, b"from a member".to_vec()));
}

#[tokio::test]
async fn another_federation_is_reported_and_stops_sync() {
    let roster = [21, 22];
    let mut a = start(config(21, &roster, FEDERATION)).await;
    let mut b = start(config(22, &roster, [0x71; 32])).await;
    introduce(&b, &a).await;

    let peer = next_event(&mut a, |event| match event {
        Event::RosterMismatch(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(peer, b.key);
    let peer = next_event(&mut b, |event| match event {
        Event::RosterMismatch(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(peer, a.key);

    let stats = a.client.stats().await.expect("running");
    assert_eq!(stats.roster_mismatches, vec![b.key]);
    assert!(stats.connected_peers.is_empty());
    assert_eq!(
        b.client.request(a.key, SyncRequest::Heads).await,
        Err(RequestError::RosterMismatch)
    );
    // Another federation's topics are other topics: nothing B publishes reaches A.
    assert_eq!(b.client.publish(b"elsewhere".to_vec()).await, Err(PublishError::NoPeers));
    no_gossip(&mut a).await;
}

/// The members as `MeshMember`s, each at the address given (if any).
fn listed(members: &[(u8, Option<&str>)]) -> Vec<MeshMember> {
    members
        .iter()
        .map(|&(seed, address)| MeshMember {
            public_key: key_of(seed).0,
            addresses: address.map(|a| vec![a.to_owned()]).unwrap_or_default(),
        })
        .collect()
}

#[tokio::test]
async fn a_removed_member_is_disconnected_and_its_reconnection_refused() {
    let roster = [71, 72];
    let mut a = start(config(71, &roster, FEDERATION)).await;
    let b = start(config(72, &roster, FEDERATION)).await;
    introduce(&b, &a).await;
    introduce(&a, &b).await;
    until_subscribed(&a, &[b.key]).await;

    // A's roster drops B: B is disconnected at once, and A tells its node.
    let change = a.client.set_members(listed(&[(71, None)])).await.expect("running");
    assert_eq!((change.added, change.removed, change.readdressed), (0, 1, 0));
    let gone = next_event(&mut a, |event| match event {
        Event::PeerDisconnected(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(gone, b.key);
    until_stats(&b, "B lost A", |stats| stats.connected_peers.is_empty()).await;

    // B still lists A and redials it (every 200 ms to 2 s): each attempt is refused as from
    // outside the roster, and B never counts as connected again.
    let stats = until_stats(&a, "B's reconnection refused", |stats| {
        stats.recent_refusals.iter().any(|refusal| {
            refusal.peer == Some(b.key) && refusal.reason == RefusalReason::NotInRoster
        })
    })
    .await;
    assert!(stats.connected_peers.is_empty(), "{stats:?}");
    let deadline = Instant::now() + QUIET;
    while Instant::now() < deadline {
        let stats = a.client.stats().await.expect("running");
        assert!(stats.connected_peers.is_empty(), "B reconnected: {stats:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A knows B no more: no address, no request.
    let error = a.client.add_address(b.key, b.address.clone()).await;
    assert_eq!(error, Err(mesh::AddressError::UnknownPeer));
    let error = a.client.request(b.key, SyncRequest::Heads).await;
    assert_eq!(error, Err(RequestError::UnknownPeer));
    // Removing it again changes nothing.
    let again = a.client.set_members(listed(&[(71, None)])).await.expect("running");
    assert_eq!(again, mesh::MembershipChange::default());
}

#[tokio::test]
async fn a_member_added_or_moved_while_running_is_dialled() {
    let mut a = start(config(81, &[81], FEDERATION)).await;
    let b = start(config(82, &[81, 82], FEDERATION)).await;
    let c = start(config(83, &[81, 83], FEDERATION)).await;
    // B is added with its address: A dials it.
    let change =
        a.client.set_members(listed(&[(81, None), (82, Some(&b.address))])).await.expect("running");
    assert_eq!((change.added, change.removed), (1, 0));
    until_subscribed(&a, &[b.key]).await;
    let joined = next_event(&mut a, |event| match event {
        Event::PeerConnected(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(joined, b.key);

    // C is added at an address where nothing listens, then moves to its real one.
    let nowhere = "/ip4/127.0.0.1/tcp/9".to_owned();
    let members = [(81, None), (82, Some(b.address.as_str())), (83, Some(nowhere.as_str()))];
    let change = a.client.set_members(listed(&members)).await.expect("running");
    assert_eq!((change.added, change.removed, change.readdressed), (1, 0, 0));
    let members = [(81, None), (82, Some(b.address.as_str())), (83, Some(c.address.as_str()))];
    let change = a.client.set_members(listed(&members)).await.expect("running");
    assert_eq!((change.added, change.removed, change.readdressed), (0, 0, 1));
    let mut both = vec![b.key, c.key];
    both.sort();
    until_subscribed(&a, &both).await;

    // A list the mesh would refuse at start changes nothing.
    let mut bad = listed(&[(81, None)]);
    bad[0].addresses.push("node:7400".into());
    assert!(matches!(a.client.set_members(bad).await, Err(mesh::SetMembersError::Invalid(_))));
    until_subscribed(&a, &both).await;
}

/// Answers A's sync requests as a node would, until the test ends.
fn serve(mut node: Node) -> Node {
    let (events_for_test, events) = mpsc::channel(16);
    let mut incoming = std::mem::replace(&mut node.events, events);
    tokio::spawn(async move {
        while let Some(event) = incoming.recv().await {
            match event {
                Event::SyncRequest { request: SyncRequest::Heads, reply, .. } => {
                    let _ = reply.send(SyncResponse::Heads(vec![b"manifest".to_vec()]));
                }
                Event::SyncRequest {
                    request: SyncRequest::Range { from_seq, max, .. },
                    reply,
                    ..
                } => {
                    // A peer asking for more than 1000 batches gets far more than 1 MiB.
                    let size = if max > 100 { 64 * 1024 } else { 10 };
                    let batches =
                        (0..u64::from(max)).map(|i| vec![(from_seq + i) as u8; size]).collect();
                    let _ = reply.send(SyncResponse::Batches(batches));
                }
                other => {
                    if events_for_test.send(other).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    node
}

#[tokio::test]
async fn sync_requests_are_answered_bounded_and_budgeted() {
    let roster = [31, 32];
    let mut config_a = config(31, &roster, FEDERATION);
    config_a.sync_budget =
        SyncBudget { requests_per_sec: 0.01, requests_burst: 3.0, ..SyncBudget::default() };
    let a = serve(start(config_a).await);
    let b = start(config(32, &roster, FEDERATION)).await;
    introduce(&b, &a).await;
    until_stats(&a, "B connected", |stats| stats.connected_peers == vec![b.key]).await;
    until_stats(&b, "A connected", |stats| stats.connected_peers == vec![a.key]).await;

    let heads = timeout(WAIT, b.client.request(a.key, SyncRequest::Heads)).await.expect("in time");
    assert_eq!(heads, Ok(SyncResponse::Heads(vec![b"manifest".to_vec()])));

    let range = SyncRequest::Range { origin: [5; 32], generation: 1, from_seq: 7, max: 3 };
    let batches = timeout(WAIT, b.client.request(a.key, range)).await.expect("in time");
    assert_eq!(batches, Ok(SyncResponse::Batches(vec![vec![7; 10], vec![8; 10], vec![9; 10]])));

    // Over the protocol's bounds: refused before it leaves B.
    let too_many = SyncRequest::Range {
        origin: [5; 32],
        generation: 1,
        from_seq: 1,
        max: mesh::MAX_RANGE_BATCHES + 1,
    };
    assert_eq!(b.client.request(a.key, too_many).await, Err(RequestError::BadRequest));

    // A node reply over 1 MiB is not sent: the peer is told it is too large.
    let huge = SyncRequest::Range { origin: [5; 32], generation: 1, from_seq: 1, max: 200 };
    let refused = timeout(WAIT, b.client.request(a.key, huge)).await.expect("in time");
    assert_eq!(refused, Ok(SyncResponse::Refused("response too large".to_string())));

    // B's request budget (a burst of 3, refilled once a minute or so) is spent: A answers busy
    // without bothering its node.
    let busy = timeout(WAIT, b.client.request(a.key, SyncRequest::Heads)).await.expect("in time");
    assert_eq!(busy, Ok(SyncResponse::Refused("busy".to_string())));
    let stats = a.client.stats().await.expect("running");
    assert_eq!(stats.sync_refused_busy, 1);
    // A's payload bytes: its answers (the heads, three batches of 10 bytes, the refusal sent
    // instead of the answer over 1 MiB) with their encoding, not the answer it did not send.
    let answered = 8 + 3 * 10 + "response too large".len() as u64;
    assert!(
        (answered..answered + 200).contains(&stats.payload_bytes_sent),
        "{}",
        stats.payload_bytes_sent
    );
    assert_eq!(stats.gossip_bytes_published, 0, "answers are not published by gossip");
}

#[tokio::test]
async fn rejects_ban_a_peer_and_its_redials_are_refused_until_the_ban_ends() {
    let roster = [41, 42];
    let mut a = start(config(41, &roster, FEDERATION)).await;
    let mut config_b = config(42, &roster, FEDERATION);
    // Long enough that A's redials (every 0.2 to 2 s) reach B within the ban on a loaded machine.
    config_b.ban_secs = 8;
    let mut b = start(config_b).await;
    // Both know each other's address; A will keep redialling B.
    introduce(&a, &b).await;
    introduce(&b, &a).await;
    until_subscribed(&a, &[b.key]).await;
    until_subscribed(&b, &[a.key]).await;

    // Two rejects are forgiven; the third bans.
    for (round, data) in [b"bad 1", b"bad 2", b"bad 3"].into_iter().enumerate() {
        a.client.publish(data.to_vec()).await.expect("published");
        let (source, id, _) = next_gossip(&mut b).await;
        b.client.report_validation(id, source, Verdict::Reject).await.expect("running");
        if round < 2 {
            let stats = b.client.stats().await.expect("running");
            assert!(stats.bans.is_empty(), "banned after {} rejects: {stats:?}", round + 1);
        }
    }
    let (peer, until_unix_ms) = next_event(&mut b, |event| match event {
        Event::PeerBanned { peer, until_unix_ms } => Some((peer, until_unix_ms)),
        _ => None,
    })
    .await;
    assert_eq!(peer, a.key);
    assert!(until_unix_ms > 0);
    let peer = next_event(&mut a, |event| match event {
        Event::PeerDisconnected(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(peer, b.key);

    // A redials; B refuses it as banned.
    let stats = until_stats(&b, "A's redial refused", |stats| {
        stats
            .recent_refusals
            .iter()
            .any(|refusal| refusal.peer == Some(a.key) && refusal.reason == RefusalReason::Banned)
    })
    .await;
    assert!(stats.connected_peers.is_empty());
    assert_eq!(stats.bans.len(), 1);

    // After the ban, A is back with a clean slate.
    let peer = next_event(&mut a, |event| match event {
        Event::PeerConnected(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(peer, b.key);
    // The ban's end as B announced it, on the same machine's clock: 20 ms for B's two clock
    // reads (its Instant, then the wall clock) and the clock's slewing over the ban.
    let now_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    assert!(
        now_unix_ms + 20 >= until_unix_ms,
        "reconnected {} ms before the ban's end",
        until_unix_ms - now_unix_ms
    );
    let stats = until_stats(&b, "ban lifted", |stats| stats.connected_peers == vec![a.key]).await;
    assert!(stats.bans.is_empty());
}

#[tokio::test]
async fn repeated_penalties_ban_a_peer() {
    let roster = [51, 52];
    let a = start(config(51, &roster, FEDERATION)).await;
    let mut b = start(config(52, &roster, FEDERATION)).await;
    introduce(&a, &b).await;
    until_stats(&b, "A connected", |stats| stats.connected_peers == vec![a.key]).await;

    b.client.penalize(a.key).await.expect("running");
    b.client.penalize(a.key).await.expect("running");
    let stats = b.client.stats().await.expect("running");
    assert!(stats.bans.is_empty(), "two penalties ban: {stats:?}");
    b.client.penalize(a.key).await.expect("running");
    let peer = next_event(&mut b, |event| match event {
        Event::PeerBanned { peer, .. } => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(peer, a.key);
    until_stats(&b, "A disconnected", |stats| stats.connected_peers.is_empty()).await;
    assert!(a.client.request(b.key, SyncRequest::Heads).await.is_err());
}

/// What a mesh client never sends: a request padded past the 4 KiB limit.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum RawRequest {
    #[serde(rename = "heads")]
    Heads,
    #[serde(rename = "padding")]
    Padding(String),
}

/// A member that skips identify and speaks raw request-response: it gets no sync until its
/// roster is confirmed, and a request over the limit fails without reaching the node.
#[tokio::test]
async fn raw_requests_unconfirmed_or_oversized_are_refused() {
    use libp2p::futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;

    let roster = [61, 62];
    let mut a = start(config(61, &roster, FEDERATION)).await;
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes([62u8; 32]).expect("valid seed");
    let mut raw = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("transport")
        .with_behaviour(|_| {
            request_response::cbor::Behaviour::<RawRequest, SyncResponse>::new(
                [(libp2p::StreamProtocol::new(mesh::SYNC_PROTOCOL), ProtocolSupport::Outbound)],
                request_response::Config::default(),
            )
        })
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(WAIT))
        .build();
    raw.dial(a.address.parse::<libp2p::Multiaddr>().expect("multiaddr")).expect("dial starts");

    // Sends `request` once connected, and returns the response or the failure.
    let mut exchange = async |request: RawRequest| {
        let mut pending = Some(request);
        loop {
            let connected = raw.connected_peers().next().copied();
            if let Some(peer) = connected
                && let Some(request) = pending.take()
            {
                raw.behaviour_mut().send_request(&peer, request);
            }
            let event = timeout(WAIT, raw.select_next_some()).await.expect("raw peer event");
            match event {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => return Ok(response),
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => return Err(error.to_string()),
                _ => {}
            }
        }
    };

    let unconfirmed = exchange(RawRequest::Heads).await;
    assert_eq!(unconfirmed, Ok(SyncResponse::Refused("roster unconfirmed".to_string())));

    // Read up to 4 KiB, undecodable, dropped: the request is never answered.
    let oversized = exchange(RawRequest::Padding("x".repeat(8 * 1024))).await;
    assert!(oversized.is_err(), "an oversized request was answered: {oversized:?}");

    // The connection and the protocol still work for a request within bounds.
    let again = exchange(RawRequest::Heads).await;
    assert_eq!(again, Ok(SyncResponse::Refused("roster unconfirmed".to_string())));

    // Neither request reached A's node.
    while let Ok(event) = a.events.try_recv() {
        assert!(!matches!(event, Event::SyncRequest { .. }), "node bothered: {event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share_of_inbound_connections() {
    let mut config = config(1, &[1, 2], FEDERATION);
    config.per_ip_exempts_loopback = false;
    config.max_inbound_per_ip = 2;
    let a = start(config).await;
    let port: u16 = a.address.rsplit('/').next().and_then(|p| p.parse().ok()).expect("tcp port");

    // Two raw connections that never finish the handshake hold both slots of 127.0.0.1.
    let held: Vec<tokio::net::TcpStream> = {
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect"));
        }
        held
    };
    // A third is closed at once, before any handshake: well within the 10 s after which the
    // node drops any connection that stays silent.
    let mut third = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let mut buffer = [0u8; 64];
    let read =
        timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read(&mut third, &mut buffer))
            .await
            .expect("the third connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without a protocol byte: {read:?}");
    let stats = until_stats(&a, "the refusal recorded", |stats| {
        stats.recent_refusals.iter().any(|r| r.reason == RefusalReason::LimitReached)
    })
    .await;
    assert!(stats.refused_connections >= 1);

    // Once the address lets go of one, it may connect again.
    drop(held);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let open = timeout(QUIET, tokio::io::AsyncReadExt::read(&mut again, &mut buffer)).await;
        // Still open after the quiet period (or the node speaks first): admitted.
        if !matches!(open, Ok(Ok(0))) {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot is never reused");
    }
}

/// Opens connections to `port` from `ip` and holds each one, silent, until the node closes it;
/// then opens another, forever (the task is aborted when the test ends).
async fn hold_connections(ip: std::net::Ipv4Addr, port: u16) {
    loop {
        let connected = async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind((ip, 0).into())?;
            socket.connect(([127, 0, 0, 1], port).into()).await
        };
        if let Ok(mut stream) = connected.await {
            let mut buffer = [0u8; 256];
            while let Ok(1..) = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long a member may take to be admitted while outsiders hold every slot they can: a
/// handshake on loopback takes milliseconds, and outsiders hold a slot for the node's whole
/// 10 s handshake timeout.
const ADMISSION: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_holding_every_pending_slot_do_not_keep_a_member_out() {
    // The node counts loopback like any address, so that 127.0.0.2 to 127.0.0.5 are four
    // outsider addresses, and 127.0.0.1, which the member dials from, is the member's listed
    // address. The listed port answers nothing (bound, then closed): the member can only dial
    // in, as one behind a firewall does.
    let dead_port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port");
    let mut victim_config = config(31, &[31, 32], FEDERATION);
    victim_config.per_ip_exempts_loopback = false;
    victim_config.members[1].addresses = vec![format!("/ip4/127.0.0.1/tcp/{}", dead_port.port())];
    let (per_ip, pending) = (victim_config.max_inbound_per_ip, victim_config.max_pending_incoming);
    assert_eq!(4 * per_ip, pending, "four addresses can take every pending slot");
    let victim = start(victim_config).await;
    let port: u16 =
        victim.address.rsplit('/').next().and_then(|p| p.parse().ok()).expect("tcp port");

    // Each outsider address opens two more than its share, so that every slot that frees is
    // taken again at once.
    let mut outsiders = tokio::task::JoinSet::new();
    for last in 2..=5 {
        for _ in 0..per_ip + 2 {
            outsiders.spawn(hold_connections(std::net::Ipv4Addr::new(127, 0, 0, last), port));
        }
    }
    let full = until_stats(&victim, "outsiders fill the node's slots", |stats| {
        stats.refused_connections >= 16
            && stats.recent_refusals.iter().all(|r| r.reason == RefusalReason::LimitReached)
    })
    .await;
    assert!(full.connected_peers.is_empty());

    let mut member_config = config(32, &[31, 32], FEDERATION);
    member_config.redial_initial_ms = 100;
    member_config.redial_max_ms = 500;
    let member = start(member_config).await;
    let started = Instant::now();
    introduce(&member, &victim).await;
    loop {
        let stats = victim.client.stats().await.expect("mesh running");
        if stats.connected_peers == vec![member.key] {
            break;
        }
        assert!(
            started.elapsed() < ADMISSION,
            "the member was kept out for {:?} ({} refusals)",
            started.elapsed(),
            stats.refused_connections
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = started.elapsed();
    let stats = victim.client.stats().await.expect("mesh running");
    // The outsiders were still at it: the member did not slip through a lull.
    assert!(stats.refused_connections > full.refused_connections, "{stats:?}");
    eprintln!("member admitted after {waited:?} with outsiders holding the node's slots");
    outsiders.abort_all();
}
