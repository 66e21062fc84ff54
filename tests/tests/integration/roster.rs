//! A rolling roster change: members run two rosters for a while, the newer one adding a member.
//! The newcomer's batches, a bulk import of more batches than a peer may send of ignorable
//! gossip included, reach members on the older roster through members already on the newer
//! one; they are ignored there at no cost, and nobody is penalised for relaying them.

use std::time::{Duration, Instant};

use crossmatch_node::local::wait_until;
use crossmatch_node::mesh::PeerKey;
use crossmatch_node::test_support::{federation, record};
use crossmatch_protocol::FeedId;

const LIMIT: Duration = Duration::from_secs(60);
/// Batches of the newcomer's bulk import.
const BULK_BATCHES: u64 = 800;
/// How many of them must reach the member on the older roster: more than the burst of
/// ignorable gossip a peer may send (600) and what refills while they come.
const BULK_RECEIVED: u64 = 700;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_on_a_newer_roster_gets_nobody_banned() {
    // Member 0 still runs roster R1 = {0, 1}; members 1 and 2 run R2 = {0, 1, 2}, which adds
    // member 2, the newcomer M.
    let (_dir, mut fed) = federation("rolling-roster", 3);
    fed.set_roster(0, &[0, 1]);
    fed.start_all().await.unwrap();
    let (old, relay, newcomer) = (0, 1, 2);
    let relay_key = PeerKey(fed.key(relay).to_bytes());
    let old_key = PeerKey(fed.key(old).to_bytes());
    // The relay and the old member gossip and sync with each other (they announce the same
    // federation; the relay's heads of the newcomer are ignored at the old member on their
    // claim), and the relay and the newcomer are connected.
    wait_until("the relay and the old member share the gossip mesh", LIMIT, || async {
        let at_old = fed.node(old).unwrap().mesh().stats().await.unwrap();
        let at_relay = fed.node(relay).unwrap().mesh().stats().await.unwrap();
        at_old.gossip_mesh_peers.contains(&relay_key)
            && at_relay.gossip_mesh_peers.contains(&old_key)
    })
    .await
    .unwrap();
    tokio::time::timeout(LIMIT, fed.node(newcomer).unwrap().wait_ready()).await.unwrap().unwrap();

    // The newcomer publishes eight batches; the relay applies each and forwards it. A fresh
    // node that no peer could confirm signs in a new generation, so ask it which.
    let origin = fed.key(newcomer);
    let generation = fed.node(newcomer).unwrap().with_engine(|e| e.own_head().0).await.unwrap();
    for i in 0..8u64 {
        let node = fed.node(newcomer).unwrap();
        node.add_record(record(&[&format!("newcomer_{i}")], true), "mo".into()).await.unwrap();
        wait_until(&format!("the relay applies the newcomer's batch {}", i + 1), LIMIT, || async {
            let feed = FeedId::of(&origin, generation);
            let relay = fed.node(relay).unwrap();
            relay.with_engine(move |e| e.chain(feed).map(|c| c.seq).unwrap_or(0)).await.unwrap() > i
        })
        .await
        .unwrap();
    }
    // Then a bulk import, in more batches than a peer may send of ignorable gossip in a burst
    // (600) and faster than that budget refills (2 a second): one batch per record, each
    // added once the one before is signed.
    let node = fed.node(newcomer).unwrap();
    let signed = || async { node.with_engine(|e| e.own_head().1).await.unwrap() };
    let bulk_started = Instant::now();
    for i in 0..BULK_BATCHES {
        let before = signed().await;
        node.add_record(record(&[&format!("bulk_{i}")], true), "mo".into()).await.unwrap();
        wait_until("the newcomer signs the record", LIMIT, || async { signed().await > before })
            .await
            .unwrap();
    }
    let bulk_took = bulk_started.elapsed();
    let banned = |stats: &crossmatch_node::mesh::MeshStats| !stats.bans.is_empty();
    wait_until("the old member has judged the relayed batches (or banned)", LIMIT, || async {
        let node = fed.node(old).unwrap();
        let received = node.with_engine(|e| e.counters().received).await.unwrap();
        received >= BULK_RECEIVED || banned(&node.mesh().stats().await.unwrap())
    })
    .await
    .unwrap();
    println!("the newcomer signed {BULK_BATCHES} batches in {bulk_took:?}");
    // For a few seconds more (a score is checked at every Reject and every second), nobody is
    // banned and the relay's score at the old member has not dropped: no Reject, no penalty.
    // A ban needs a score below −50, so a score that stays at 0 or above proves none comes.
    let watch_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch_until {
        for member in [old, relay, newcomer] {
            let stats = fed.node(member).unwrap().mesh().stats().await.unwrap();
            assert!(!banned(&stats), "member {member} banned someone: {:?}", stats.bans);
        }
        let stats = fed.node(old).unwrap().mesh().stats().await.unwrap();
        let score = stats.peer_scores.iter().find(|(peer, _)| *peer == relay_key).map(|s| s.1);
        assert!(score.is_some_and(|s| s >= 0.0), "the relay's score at the old member: {score:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // At the old member the newcomer's batches cost no signature check, and nothing is kept.
    let feed = FeedId::of(&origin, generation);
    let (counters, seq) = fed
        .node(old)
        .unwrap()
        .with_engine(move |e| (e.counters(), e.chain(feed).map(|c| c.seq).unwrap_or(0)))
        .await
        .unwrap();
    assert_eq!((counters.verifications, counters.rejected, seq), (0, 0, 0), "{counters:?}");
    fed.stop_all().await.unwrap();
}
