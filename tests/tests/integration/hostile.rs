//! Hostile and outside peers against honest members on real sockets: a roster member that
//! gossips invalid batches, forks its own feed and claims a huge head without a signature; and
//! a peer outside the roster. Honest members store and forward nothing invalid, keep the fork
//! evidence and pass it on (by gossip, and by sync to a member that joins later), and ban the
//! hostile member; a member that claims far more heads than the roster allows, serves a wiped
//! member's real head and answers every `range` slowly holds up neither that member's recovery
//! nor its sync with honest members; an answer that proves nothing of a node's own feed does not confirm it; and a member
//! that signs more forks than the evidence limit keeps, which every honest member it reaches
//! bans, while honest members keep each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossmatch_node::engine::MAX_FORKS_PER_ORIGIN;
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::mesh::{
    self, GossipKind, MeshConfig, MeshMember, PeerKey, SyncRequest, SyncResponse,
};
use crossmatch_node::test_support::{add_entry, federation, record};
use crossmatch_protocol::{BatchHash, BatchPosition, Entry, SigningKey, sign_batch};

const LIMIT: Duration = Duration::from_secs(60);

/// A raw mesh speaking with `key`, believing the roster to be `members`.
pub(crate) async fn raw_member(
    fed: &LocalFederation,
    key: &SigningKey,
    members: Vec<[u8; 32]>,
) -> (mesh::Client, tokio::sync::mpsc::Receiver<mesh::Event>, tokio::sync::watch::Sender<bool>) {
    let federation_id = fed.federation_id();
    let config = MeshConfig::new(
        key.seed(),
        federation_id.0,
        members
            .into_iter()
            .map(|public_key| MeshMember { public_key, addresses: vec![] })
            .collect(),
        vec!["/ip4/127.0.0.1/tcp/0".into()],
        Arc::new(move |data: &[u8]| {
            crossmatch_protocol::claimed_batch_hash(data, &federation_id)
                .map_or_else(|| *blake3::hash(data).as_bytes(), |h| h.0)
        }),
    );
    // Its own node may take its time: the mesh answers `unavailable` only after 45 s.
    let config = MeshConfig { sync_request_timeout_secs: 60, ..config };
    let (client, events, event_loop) = mesh::new(config).unwrap();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(event_loop.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    (client, events, stop)
}

fn add(n: u8) -> Entry {
    add_entry(n, now() + 86_400_000)
}

/// The position of a first batch of generation 1, signed now.
fn genesis() -> BatchPosition {
    BatchPosition { generation: 1, seq: 1, prev: BatchHash::ZERO, epoch: 1, created_at_ms: now() }
}

fn now() -> u64 {
    crossmatch_node::clock::Clock::now_ms(&crossmatch_node::clock::SystemClock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_member_is_contained_and_banned() {
    // Member 2 is the hostile one; member 3 joins after the fork.
    let (_dir, mut fed) = federation("hostile", 4);
    fed.start(0).await.unwrap();
    fed.start(1).await.unwrap();
    fed.wait_meshed().await.unwrap();
    let hostile_key = fed.members()[2].key.clone();
    let roster = fed.members().iter().map(|m| m.key.public_key().to_bytes()).collect();
    let (hostile, mut events, stop) = raw_member(&fed, &hostile_key, roster).await;
    // The hostile member reaches member 0 only; member 1 sees only what member 0 forwards.
    let address = fed.node(0).unwrap().mesh().listen_addresses().await.unwrap();
    hostile.add_address(PeerKey(fed.key(0).to_bytes()), address[0].clone()).await.unwrap();
    wait_until("the hostile member is connected", LIMIT, || async {
        !hostile.connected_peers().await.unwrap_or_default().is_empty()
    })
    .await
    .unwrap();
    // It answers every `heads` with a huge head that no signature backs.
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let mesh::Event::SyncRequest { request: SyncRequest::Heads, reply, .. } = event {
                let _ = reply.send(SyncResponse::Heads(vec![vec![0xd2; 300], vec![]]));
            } else if let mesh::Event::SyncRequest { request: SyncRequest::Forks, reply, .. } =
                event
            {
                // "Evidence" of two empty manifests.
                let _ = reply.send(SyncResponse::Forks(vec![vec![0x82, 0x40, 0x40]]));
            } else if let mesh::Event::SyncRequest { reply, .. } = event {
                let _ = reply.send(SyncResponse::Batches(vec![]));
            }
        }
    });

    let federation_id = fed.federation_id();
    let genesis = genesis();
    let honest_first = sign_batch(&hostile_key, &federation_id, genesis, &[add(1)]).unwrap();
    let forked_first = sign_batch(&hostile_key, &federation_id, genesis, &[add(2)]).unwrap();
    let wrong_signer =
        sign_batch(&SigningKey::from_seed(&[200; 32]), &federation_id, genesis, &[add(3)]).unwrap();
    // A bad signature on a generation nobody froze: judged only once its signature is checked
    // (a batch past the fork would be ignored on its claim, unverified).
    let second_generation = BatchPosition { generation: 2, ..genesis };
    let mut bad_signature =
        sign_batch(&hostile_key, &federation_id, second_generation, &[add(5)]).unwrap().to_wire();
    let at = bad_signature.len() - 10;
    bad_signature[at] ^= 1;
    let mut non_canonical = honest_first.to_wire();
    non_canonical.push(0);
    let oversized = vec![0x80u8; 58 * 1024];

    let hostile_origin = hostile_key.public_key();
    // It goes out once member 0's subscription reached the hostile member (a connection comes
    // before the subscriptions it carries).
    let first = honest_first.to_wire();
    wait_until("the hostile member's first batch is published", LIMIT, || async {
        hostile.publish(first.clone()).await.is_ok()
    })
    .await
    .unwrap();
    wait_until("member 1 applies the first batch (forwarded by member 0)", LIMIT, || async {
        fed.node(1)
            .unwrap()
            .with_engine(move |e| {
                e.chain(crossmatch_protocol::FeedId::of(&hostile_origin, 1))
                    .map(|c| c.seq)
                    .unwrap_or(0)
            })
            .await
            .unwrap()
            == 1
    })
    .await
    .unwrap();
    // A second, different batch for seq 1: a fork of its own feed.
    let _ = hostile.publish(forked_first.to_wire()).await;
    // Member 0 keeps the evidence and forwards it; member 1, which never saw the second batch,
    // freezes the chain on the evidence alone.
    for member in [0, 1] {
        wait_until(&format!("member {member} holds the fork evidence"), LIMIT, || async {
            fed.node(member)
                .unwrap()
                .with_engine(|e| e.forks().map(|f| f.len()).unwrap_or(0))
                .await
                .unwrap()
                == 1
        })
        .await
        .unwrap();
        let chain = fed
            .node(member)
            .unwrap()
            .with_engine(move |e| e.chain(crossmatch_protocol::FeedId::of(&hostile_origin, 1)))
            .await
            .unwrap()
            .unwrap();
        assert!(chain.frozen && chain.seq == 0, "member {member}: {chain:?}");
    }
    // A signer outside every roster is ignored (it may be a newer roster's member), and the
    // replay is a duplicate: neither is rejected.
    let replay = honest_first.to_wire();
    for wire in [bad_signature, non_canonical, oversized, wrong_signer.to_wire(), replay] {
        let _ = hostile.publish(wire).await;
    }
    let hostile_public = fed.members()[2].key.public_key();
    wait_until("member 0 bans the hostile member", LIMIT, || async {
        let stats = fed.node(0).unwrap().mesh().stats().await.unwrap();
        stats.bans.iter().any(|ban| ban.peer.0 == hostile_public.to_bytes())
    })
    .await
    .unwrap();
    for member in [0, 1] {
        let (counters, chain) = fed
            .node(member)
            .unwrap()
            .with_engine(move |e| {
                (
                    e.counters(),
                    e.chain(crossmatch_protocol::FeedId::of(&hostile_public, 1)).unwrap(),
                )
            })
            .await
            .unwrap();
        assert_eq!(chain.seq, 0, "member {member} withdrew the forked batch");
        if member == 1 {
            assert_eq!(counters.rejected, 0, "member 0 forwarded nothing invalid");
        } else {
            assert!(counters.rejected >= 3, "member 0 rejected the invalid batches: {counters:?}");
        }
        // No unsigned head claim made anyone fetch anything.
        assert!(chain.seq < 1000);
    }
    let _ = stop.send(true);

    // A member that joins later learns of the fork by sync: member 0 restarts (no gossip cache
    // survives), member 1 is gone, and the late joiner meets only member 0.
    fed.stop(1).await.unwrap();
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    fed.start(3).await.unwrap();
    wait_until("the late joiner holds the fork evidence", LIMIT, || async {
        fed.node(3).unwrap().with_engine(|e| e.forks().map(|f| f.len()).unwrap_or(0)).await.unwrap()
            == 1
    })
    .await
    .unwrap();
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_the_roster_gets_nothing_in() {
    let (_dir, mut fed) = federation("outsider", 2);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let outsider = SigningKey::from_seed(&[201; 32]);
    // The outsider believes itself and member 0 to be a federation, and dials member 0.
    let roster = vec![fed.key(0).to_bytes(), outsider.public_key().to_bytes()];
    let (client, _events, stop) = raw_member(&fed, &outsider, roster).await;
    let address = fed.node(0).unwrap().mesh().listen_addresses().await.unwrap();
    client.add_address(PeerKey(fed.key(0).to_bytes()), address[0].clone()).await.unwrap();
    let outsider_key = PeerKey(outsider.public_key().to_bytes());
    wait_until("member 0 refuses the outsider", LIMIT, || async {
        let stats = fed.node(0).unwrap().mesh().stats().await;
        stats.is_ok_and(|s| s.recent_refusals.iter().any(|r| r.peer == Some(outsider_key)))
    })
    .await
    .unwrap();
    let genesis = genesis();
    let batch = sign_batch(&outsider, &fed.federation_id(), genesis, &[add(9)]).unwrap();
    assert!(client.publish(batch.to_wire()).await.is_err(), "nobody to publish to");
    assert!(client.connected_peers().await.unwrap().is_empty());
    fed.node(0).unwrap().add_record(record(&["after_outsider"], true), "ana".into()).await.unwrap();
    let (received, stored) = fed
        .node(0)
        .unwrap()
        .with_engine(move |e| {
            (
                e.counters().received,
                e.chain(crossmatch_protocol::FeedId::of(&outsider.public_key(), 1)).unwrap().seq,
            )
        })
        .await
        .unwrap();
    assert_eq!((received, stored), (0, 0));
    let _ = stop.send(true);
    fed.stop_all().await.unwrap();
}

/// Waits until member `i` of `fed` is connected to the raw member `raw`.
pub(crate) async fn connect_raw(
    fed: &LocalFederation,
    i: usize,
    raw: &mesh::Client,
    raw_key: &SigningKey,
) {
    let address = raw.listen_addresses().await.unwrap();
    let node = fed.node(i).unwrap();
    node.add_member_address(&raw_key.public_key(), address[0].clone()).await.unwrap();
    let member = PeerKey(fed.key(i).to_bytes());
    wait_until("the raw member is connected", LIMIT, || async {
        raw.connected_peers().await.unwrap_or_default().contains(&member)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_member_claiming_many_heads_holds_up_neither_recovery_nor_sync() {
    // Short enough for a test, long enough that a recovery stuck on one 25 s answer, or a pull
    // queued behind it, misses its bound.
    const SYNC_INTERVAL_SECS: u64 = 5;
    const RECOVERY_DEADLINE_SECS: u64 = 5;
    const REPLY_DELAY: Duration = Duration::from_secs(25);
    let (_dir, mut fed) = federation("slow", 3);
    fed.sync_interval_secs = SYNC_INTERVAL_SECS;
    fed.recovery_deadline_secs = RECOVERY_DEADLINE_SECS;
    fed.start(0).await.unwrap();
    fed.start(1).await.unwrap();
    fed.wait_meshed().await.unwrap();
    // Member 1 signs a batch; the slow member gets its real head manifest (it can sign nothing
    // for member 1, but it can serve what member 1 signed).
    let member_1 = fed.key(1);
    fed.node(1).unwrap().add_record(record(&["slow_own"], true), "ana".into()).await.unwrap();
    wait_until("member 1 signs its batch", LIMIT, || async {
        fed.node(1).unwrap().with_engine(|e| e.own_head().1).await.unwrap() >= 1
    })
    .await
    .unwrap();
    let own_head_before = fed.node(1).unwrap().with_engine(|e| e.own_head()).await.unwrap();
    let federation_id = fed.federation_id();
    let heads_of_1 = fed.node(1).unwrap().with_engine(|e| e.heads(1 << 20, 0)).await.unwrap();
    let head_of_1 = heads_of_1
        .unwrap()
        .into_iter()
        .find(|manifest| {
            crossmatch_protocol::claimed_manifest(manifest, &federation_id)
                .is_some_and(|claim| claim.origin == member_1.to_bytes())
        })
        .expect("member 1's own head manifest");
    // Member 2 is slow and hostile: `heads` gets member 1's real head and then 100 manifests
    // of its own generations (the roster allows one head per member), and every `range` an
    // empty answer after 25 s.
    let hostile_key = fed.members()[2].key.clone();
    let manifests: Vec<Vec<u8>> = std::iter::once(head_of_1)
        .chain((1..=100u32).map(|generation| {
            let position = BatchPosition {
                generation,
                seq: 1000,
                prev: BatchHash([9; 32]),
                epoch: 1,
                created_at_ms: now(),
            };
            let batch = sign_batch(&hostile_key, &federation_id, position, &[add(1)]).unwrap();
            batch.manifest_bytes().to_vec()
        }))
        .collect();
    let roster = fed.members().iter().map(|m| m.key.public_key().to_bytes()).collect();
    let (hostile, mut events, stop) = raw_member(&fed, &hostile_key, roster).await;
    let ranges_asked = Arc::new(AtomicUsize::new(0));
    let own_ranges_asked = Arc::new(AtomicUsize::new(0));
    let (asked, own_asked) = (ranges_asked.clone(), own_ranges_asked.clone());
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let mesh::Event::SyncRequest { request, reply, .. } = event else { continue };
            match request {
                SyncRequest::Heads => {
                    let _ = reply.send(SyncResponse::Heads(manifests.clone()));
                }
                SyncRequest::Range { origin, .. } => {
                    asked.fetch_add(1, Ordering::SeqCst);
                    if origin == member_1.to_bytes() {
                        own_asked.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::spawn(async move {
                        tokio::time::sleep(REPLY_DELAY).await;
                        let _ = reply.send(SyncResponse::Batches(vec![]));
                    });
                }
                SyncRequest::Forks => {
                    let _ = reply.send(SyncResponse::Forks(vec![]));
                }
                SyncRequest::RosterHead
                | SyncRequest::Rosters { .. }
                | SyncRequest::RosterConflict
                | SyncRequest::RecordSeqs
                | SyncRequest::MemberRecords { .. } => {
                    let _ = reply.send(SyncResponse::Refused("unavailable".into()));
                }
            }
        }
    });
    connect_raw(&fed, 0, &hostile, &hostile_key).await;
    connect_raw(&fed, 1, &hostile, &hostile_key).await;

    // Member 1 goes down and loses its data, and misses what member 0 publishes meanwhile: an
    // honest gap.
    fed.stop(1).await.unwrap();
    std::fs::remove_dir_all(fed.data_dir(1)).unwrap();
    fed.node(0).unwrap().add_record(record(&["slow_gap"], true), "ana".into()).await.unwrap();
    wait_until("member 0 signs the batch", LIMIT, || async {
        fed.node(0).unwrap().with_engine(|e| e.own_head().1).await.unwrap() >= 1
    })
    .await
    .unwrap();
    let gap_head = fed.node(0).unwrap().with_engine(|e| e.own_head()).await.unwrap();
    fed.stop(0).await.unwrap();

    // Member 1 restarts with only the slow member to talk to, which proves member 1's head
    // beyond its (empty) store and answers the range of it in 25 s: member 1 is ready within
    // the recovery deadline and a margin, whatever the slow member claims, and, having lost
    // data it could not fetch back, in a new generation.
    let restarted = Instant::now();
    fed.start(1).await.unwrap();
    connect_raw(&fed, 1, &hostile, &hostile_key).await;
    let ready_within = Duration::from_secs(RECOVERY_DEADLINE_SECS + 10);
    let ready = tokio::time::timeout(
        ready_within.saturating_sub(restarted.elapsed()),
        fed.node(1).unwrap().wait_ready(),
    )
    .await;
    assert!(
        matches!(ready, Ok(Ok(()))),
        "member 1 not ready {:?} after its restart",
        restarted.elapsed()
    );
    assert!(
        own_ranges_asked.load(Ordering::SeqCst) >= 1,
        "recovery asked the slow member for the range of member 1's own feed"
    );
    let own_head_after = fed.node(1).unwrap().with_engine(|e| e.own_head()).await.unwrap();
    assert!(
        own_head_after.0 > own_head_before.0,
        "member 1 lost data and started a new generation: {own_head_before:?} then {own_head_after:?}"
    );

    // Member 0 comes back: member 1 fills the gap from it while its pull of the slow member
    // still waits for an answer.
    let back = Instant::now();
    fed.start(0).await.unwrap();
    let member_0 = fed.key(0);
    let filled_within = Duration::from_secs(3 * SYNC_INTERVAL_SECS);
    let filled = wait_until("member 1 fills the gap from member 0", filled_within, || async {
        fed.node(1)
            .unwrap()
            .with_engine(move |e| {
                e.chain(crossmatch_protocol::FeedId::of(&member_0, gap_head.0))
                    .map(|c| c.seq)
                    .unwrap_or(0)
            })
            .await
            .unwrap()
            >= gap_head.1
    })
    .await;
    assert!(filled.is_ok(), "gap not filled {:?} after member 0 came back", back.elapsed());
    assert!(ranges_asked.load(Ordering::SeqCst) >= 1, "the slow member was asked a range");
    let _ = stop.send(true);
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_peer_that_proves_the_own_feed_confirms_it() {
    let (_dir, mut fed) = federation("confirm", 3);
    // Long enough for the raw member to be connected and asked during recovery.
    fed.recovery_deadline_secs = 5;
    fed.start(0).await.unwrap();
    fed.start(1).await.unwrap();
    fed.wait_meshed().await.unwrap();
    let own_head = |fed: &LocalFederation| {
        let node = fed.node(0).unwrap().clone();
        async move { node.with_engine(|e| e.own_head()).await.unwrap() }
    };
    fed.node(0).unwrap().add_record(record(&["confirm_1"], true), "ana".into()).await.unwrap();
    let member_0 = fed.key(0);
    let held_by_1 = |fed: &LocalFederation, (generation, seq): (u32, u64)| {
        let node = fed.node(1).unwrap().clone();
        async move {
            node.with_engine(move |e| {
                e.chain(crossmatch_protocol::FeedId::of(&member_0, generation))
                    .map(|c| c.seq)
                    .unwrap_or(0)
            })
            .await
            .unwrap()
                >= seq
        }
    };
    wait_until("member 0 signs its first batch", LIMIT, || async { own_head(&fed).await.1 >= 1 })
        .await
        .unwrap();
    let first = own_head(&fed).await;
    wait_until("member 1 holds it", LIMIT, || held_by_1(&fed, first)).await.unwrap();
    fed.stop(1).await.unwrap();
    fed.stop(0).await.unwrap();

    // A peer that answers `heads` with nothing proves nothing of member 0's feed: member 0,
    // restarted with only that peer, starts a new generation.
    let raw_key = fed.members()[2].key.clone();
    let roster = fed.members().iter().map(|m| m.key.public_key().to_bytes()).collect();
    let (raw, mut events, stop) = raw_member(&fed, &raw_key, roster).await;
    fed.start(0).await.unwrap();
    let asked_before_ready = Arc::new(AtomicBool::new(false));
    let asked = asked_before_ready.clone();
    let node_0 = fed.node(0).unwrap().clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let mesh::Event::SyncRequest { request, reply, .. } = event else { continue };
            let response = match request {
                SyncRequest::Heads => {
                    if !node_0.is_ready() {
                        asked.store(true, Ordering::SeqCst);
                    }
                    SyncResponse::Heads(vec![])
                }
                SyncRequest::Range { .. } => SyncResponse::Batches(vec![]),
                SyncRequest::Forks => SyncResponse::Forks(vec![]),
                SyncRequest::RosterHead
                | SyncRequest::Rosters { .. }
                | SyncRequest::RosterConflict
                | SyncRequest::RecordSeqs
                | SyncRequest::MemberRecords { .. } => SyncResponse::Refused("unavailable".into()),
            };
            let _ = reply.send(response);
        }
    });
    connect_raw(&fed, 0, &raw, &raw_key).await;
    tokio::time::timeout(LIMIT, fed.node(0).unwrap().wait_ready()).await.unwrap().unwrap();
    assert!(asked_before_ready.load(Ordering::SeqCst), "the empty peer was asked in recovery");
    let after_empty = own_head(&fed).await;
    assert_eq!(after_empty, (first.0 + 1, 0), "an empty answer confirmed the own feed");
    let _ = stop.send(true);
    fed.stop(0).await.unwrap();

    // Member 1 holds nothing of the new generation but holds the one before: that proves the
    // node's state, and member 0 keeps its generation.
    fed.start(1).await.unwrap();
    fed.start(0).await.unwrap();
    fed.wait_meshed().await.unwrap();
    assert_eq!(own_head(&fed).await, after_empty, "an earlier generation held confirms");

    // Member 1 holds member 0's head: that proves it, and member 0 keeps its generation.
    fed.node(0).unwrap().add_record(record(&["confirm_2"], true), "ana".into()).await.unwrap();
    wait_until("member 0 signs in the new generation", LIMIT, || async {
        own_head(&fed).await.1 >= 1
    })
    .await
    .unwrap();
    let second = own_head(&fed).await;
    wait_until("member 1 holds it", LIMIT, || held_by_1(&fed, second)).await.unwrap();
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    fed.wait_meshed().await.unwrap();
    assert_eq!(own_head(&fed).await, second, "the head a peer proves confirms");
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_signs_forks_past_the_limit_is_banned_by_honest_members() {
    // Member 2 is hostile and reaches members 0 and 1 directly.
    let (_dir, mut fed) = federation("fork-flood", 3);
    fed.start(0).await.unwrap();
    fed.start(1).await.unwrap();
    fed.wait_meshed().await.unwrap();
    let hostile_key = fed.members()[2].key.clone();
    let hostile_peer = PeerKey(hostile_key.public_key().to_bytes());
    let roster = fed.members().iter().map(|m| m.key.public_key().to_bytes()).collect();
    let (hostile, _events, stop) = raw_member(&fed, &hostile_key, roster).await;
    for member in [0, 1] {
        let address = fed.node(member).unwrap().mesh().listen_addresses().await.unwrap();
        hostile.add_address(PeerKey(fed.key(member).to_bytes()), address[0].clone()).await.unwrap();
    }
    wait_until("the hostile member is connected to both", LIMIT, || async {
        hostile.connected_peers().await.unwrap_or_default().len() == 2
    })
    .await
    .unwrap();

    // Two batches at seq 1000 of generation after generation: each pair is valid evidence of a
    // fork, of a chain nobody holds anything of. Past the limit, each new one is the signer's.
    let federation_id = fed.federation_id();
    let evidences: Vec<Vec<u8>> = (2..=4 * MAX_FORKS_PER_ORIGIN as u32 + 1)
        .map(|generation| {
            let position = BatchPosition {
                generation,
                seq: 1000,
                prev: BatchHash([9; 32]),
                epoch: 1,
                created_at_ms: now(),
            };
            let one = sign_batch(&hostile_key, &federation_id, position, &[add(1)]).unwrap();
            let other = sign_batch(&hostile_key, &federation_id, position, &[add(2)]).unwrap();
            crossmatch_protocol::encode_fork_evidence(one.manifest_bytes(), other.manifest_bytes())
        })
        .collect();
    // The first goes out once both members are subscribed to the forks topic.
    let first = evidences[0].clone();
    wait_until("the first evidence is published", LIMIT, || async {
        hostile.publish_on(GossipKind::ForkEvidence, first.clone()).await.is_ok()
    })
    .await
    .unwrap();
    for evidence in &evidences[1..] {
        let _ = hostile.publish_on(GossipKind::ForkEvidence, evidence.clone()).await;
    }

    for member in [0, 1] {
        wait_until(&format!("member {member} bans the forking member"), LIMIT, || async {
            let stats = fed.node(member).unwrap().mesh().stats().await.unwrap();
            stats.bans.iter().any(|ban| ban.peer == hostile_peer)
        })
        .await
        .unwrap();
    }
    let _ = stop.send(true);
    let hostile_origin = hostile_key.public_key().to_bytes();
    for member in [0, 1] {
        let node = fed.node(member).unwrap();
        let stats = node.mesh().stats().await.unwrap();
        let banned: Vec<PeerKey> = stats.bans.iter().map(|ban| ban.peer).collect();
        assert_eq!(banned, vec![hostile_peer], "member {member} banned only the forking member");
        let other = PeerKey(fed.key(1 - member).to_bytes());
        assert!(
            stats.connected_peers.contains(&other),
            "member {member} keeps member {}",
            1 - member
        );
        let kept = node
            .with_engine(move |e| {
                e.forks().unwrap().iter().filter(|(id, _)| id.feed.origin == hostile_origin).count()
            })
            .await
            .unwrap();
        assert!(kept <= MAX_FORKS_PER_ORIGIN, "member {member} kept {kept} forks of one member");
    }
    fed.stop_all().await.unwrap();
}
