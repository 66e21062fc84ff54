//! A rolling roster change: members run two rosters for a while, the newer one adding a member.
//! The newcomer's batches, a bulk import of more batches than a peer may send of ignorable
//! gossip included, reach members on the older roster through members already on the newer
//! one; they are ignored there at no cost, and nobody is penalised for relaying them.
//!
//! Signed rosters adopted at run time: through `POST /v1/roster` with zero restarts (too few
//! signatures, a replay and an older roster given at start refused; the newcomer connected by
//! everyone), and an expired roster that degrades `/readyz` without stopping the node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossmatch_node::daemon::Adopter;
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::mesh::PeerKey;
use crossmatch_node::roster_file;
use crossmatch_node::test_support::{ManualClock, TempDir, federation, http, record, record_until};
use crossmatch_protocol::{FeedId, SignedRoster};

use crossmatch_node::clock::DAY_MS;

use super::api_client::{ADMIN, MONITOR, error_code, now_ms, request_typed, serve};
const LIMIT: Duration = Duration::from_secs(60);
/// Batches of the newcomer's bulk import.
const BULK_BATCHES: u64 = 800;
/// How many of them must reach the member on the older roster: more than the burst of
/// ignorable gossip a peer may send (600) and what refills while they come.
const BULK_RECEIVED: u64 = 700;

/// A federation of `n` members whose version 1 (every member, the least majority as k,
/// expiring in a year, signed by every member) is the roster file of members `given`: the
/// founding set-up the tests share. The directory, the federation, the expiry and version 1.
fn founded(name: &str, n: usize, given: &[usize]) -> (TempDir, LocalFederation, u64, SignedRoster) {
    let (dir, mut fed) = federation(name, n);
    let expires = now_ms() + 365 * DAY_MS;
    let everyone: Vec<usize> = (0..n).collect();
    let threshold = u32::try_from(n / 2 + 1).unwrap();
    let v1 = fed.sign_roster(fed.roster_body(&everyone, 1, threshold, expires), &everyone);
    for &i in given {
        fed.set_signed_roster(i, Some(v1.clone()));
    }
    (dir, fed, expires, v1)
}

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
    wait_until("the relay and the old member share the batch topic", LIMIT, || async {
        let at_old = fed.node(old).unwrap().mesh().stats().await.unwrap();
        let at_relay = fed.node(relay).unwrap().mesh().stats().await.unwrap();
        at_old.gossip_topic_peers.contains(&relay_key)
            && at_relay.gossip_topic_peers.contains(&old_key)
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

/// One request with a CBOR body, off the async workers.
async fn request(
    port: u16,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Vec<u8>>,
) -> http::Reply {
    request_typed(port, method, path, bearer, "application/cbor", body).await
}

/// `POST /v1/roster` with `roster`'s wire form, as the admin.
async fn post_roster(port: u16, roster: &SignedRoster) -> http::Reply {
    request(port, "POST", "/v1/roster", ADMIN, Some(roster.to_wire())).await
}

/// Waits until every member in `members` is connected to every other one.
async fn wait_all_connected(fed: &LocalFederation, members: &[usize]) {
    for &i in members {
        for &j in members {
            if i == j {
                continue;
            }
            let key = PeerKey(fed.key(j).to_bytes());
            wait_until(&format!("member {i} is connected to member {j}"), LIMIT, || async {
                let node = fed.node(i).unwrap();
                node.mesh().connected_peers().await.is_ok_and(|peers| peers.contains(&key))
            })
            .await
            .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rosters_are_adopted_through_the_api_with_zero_restarts() {
    // Members 0, 1, 2 found the federation (version 1, k = 2); version 2 adds member 3.
    let (_dir, mut fed) = federation("adopt-api", 4);
    let expires = now_ms() + 365 * DAY_MS;
    let v1 = fed.sign_roster(fed.roster_body(&[0, 1, 2], 1, 2, expires), &[0, 1, 2]);
    let v2_body = fed.roster_body(&[0, 1, 2, 3], 2, 3, expires);
    // Signed by every member of version 2: the newcomer installs it by hand as its founding
    // roster, which needs every signature; the others need k = 2 of version 1's members.
    let v2 = fed.sign_roster(v2_body.clone(), &[0, 1, 2, 3]);
    for i in 0..3 {
        fed.set_signed_roster(i, Some(v1.clone()));
        fed.start(i).await.unwrap();
    }
    fed.set_signed_roster(3, Some(v2.clone()));
    fed.wait_meshed().await.unwrap();
    let mut ports = Vec::new();
    for i in 0..3 {
        ports.push(serve(fed.node(i).unwrap()).await);
    }

    let shown = request(ports[0], "GET", "/v1/roster", MONITOR, None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let shown = shown.json();
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["hash"], hex_of(&v1.hash()));
    assert_eq!(shown["members"].as_array().unwrap().len(), 3);
    assert_eq!(shown["alarms"], serde_json::json!([]));

    // Fewer than k signatures of version 1's members: refused, nothing changes.
    let short = fed.sign_roster(v2_body.clone(), &[0, 3]);
    let refused = post_roster(ports[0], &short).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(error_code(&refused), "invalid_roster");
    assert!(refused.body.contains("1 valid governance signatures of 2 needed"), "{}", refused.body);
    // Not a roster at all, larger than other bodies may be: refused as a roster, not as a size.
    let garbage = request(ports[0], "POST", "/v1/roster", ADMIN, Some(vec![0xa5; 100_000])).await;
    assert_eq!((garbage.status, error_code(&garbage)), (400, "invalid_roster".into()));
    let not_toml = request_typed(
        ports[0],
        "POST",
        "/v1/roster",
        ADMIN,
        "application/toml",
        Some(b"version = ".to_vec()),
    )
    .await;
    assert_eq!((not_toml.status, error_code(&not_toml)), (400, "invalid_roster".into()));
    // Only an admin adopts.
    let monitor = request(ports[0], "POST", "/v1/roster", MONITOR, Some(v2.to_wire())).await;
    assert_eq!(monitor.status, 403);
    assert_eq!(fed.node(0).unwrap().roster_identity(), (1, v1.hash()));

    // Member 0 adopts version 2 live; the newcomer starts on it. Members 1 and 2 hear of it
    // (member 0's announcement, the roster head asked at every pull) and may fetch it from a
    // peer before their own post arrives: either way they run it, and the post is no change.
    let adopted = post_roster(ports[0], &v2).await;
    assert_eq!(adopted.status, 200, "{}", adopted.body);
    assert_eq!(
        (adopted.json()["version"].clone(), adopted.json()["adopted"].clone()),
        (2.into(), true.into())
    );
    fed.start(3).await.unwrap();
    // Member 1 is posted the roster file (TOML), member 2 the wire form.
    let file =
        roster_file::render(&roster_file::RosterFile { roster: v2.clone(), records: vec![] });
    // The content type names no form: the first byte says it is text.
    let as_file =
        request_typed(ports[1], "POST", "/v1/roster", ADMIN, "text/plain", Some(file.into_bytes()))
            .await;
    let as_wire = post_roster(ports[2], &v2).await;
    for adopted in [as_file, as_wire] {
        assert_eq!(adopted.status, 200, "{}", adopted.body);
        assert_eq!(adopted.json()["version"], 2);
    }
    let again = post_roster(ports[0], &v2).await;
    assert_eq!((again.status, again.json()["adopted"].clone()), (200, serde_json::json!(false)));
    // A replayed older roster is refused.
    let replay = post_roster(ports[1], &v1).await;
    assert_eq!((replay.status, error_code(&replay)), (409, "stale_roster".into()));
    wait_all_connected(&fed, &[0, 1, 2, 3]).await;
    for i in 0..4 {
        assert_eq!(fed.node(i).unwrap().roster_identity(), (2, v2.hash()), "member {i}");
    }
    // The adoption is audited, by the admin who posted it.
    let audit = std::fs::read_to_string(fed.data_dir(0).join("audit").join("audit.log")).unwrap();
    let adopted: Vec<&str> =
        audit.lines().filter(|line| line.contains("\tadopt_roster\t")).collect();
    assert_eq!(adopted.len(), 2, "the founding roster at start, then version 2: {adopted:?}");
    assert!(adopted[0].contains("*node") && adopted[0].contains("roster:v1."), "{adopted:?}");
    assert!(adopted[1].contains("coordinator") && adopted[1].contains("roster:v2."), "{adopted:?}");

    // A member restarted with the older roster file still runs the stored version 2.
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, v2.hash()));
    wait_all_connected(&fed, &[0, 3]).await;
    fed.stop_all().await.unwrap();
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_roster_degrades_readyz_and_the_node_keeps_working() {
    let (_dir, mut fed) = federation("adopt-expiry", 2);
    let start = now_ms();
    let clocks: Vec<_> = (0..2).map(|_| Arc::new(ManualClock::new(start))).collect();
    let v1 = fed.sign_roster(fed.roster_body(&[0, 1], 1, 2, start + DAY_MS), &[0, 1]);
    for (i, clock) in clocks.iter().enumerate() {
        fed.set_clock(i, clock.clone());
        fed.set_signed_roster(i, Some(v1.clone()));
    }
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let port = serve(fed.node(0).unwrap()).await;
    let ready = request(port, "GET", "/readyz", MONITOR, None).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    // A successor that expired already is valid, but refused at run time with its own code.
    let stale_body = fed.roster_body(&[0, 1], 2, 2, start - 1);
    let expired_successor = post_roster(port, &fed.sign_roster(stale_body, &[0, 1])).await;
    assert_eq!(expired_successor.status, 409, "{}", expired_successor.body);
    assert!(expired_successor.body.contains("expired_roster"), "{}", expired_successor.body);

    // The roster's expiry passes: an alarm, /readyz degraded, and the node keeps working.
    for clock in &clocks {
        clock.advance(DAY_MS + 1);
    }
    let degraded = request(port, "GET", "/readyz", MONITOR, None).await;
    assert_eq!(
        (degraded.status, degraded.body.as_str()),
        (200, "ready, degraded: roster expired\n")
    );
    let shown = request(port, "GET", "/v1/roster", MONITOR, None).await.json();
    assert_eq!(shown["alarms"], serde_json::json!(["expired"]));
    let metrics = request(port, "GET", "/metrics", MONITOR, None).await;
    assert!(metrics.body.contains("crossmatch_roster_expired 1\n"), "{}", metrics.body);
    assert!(metrics.body.contains("crossmatch_roster_version 1\n"), "{}", metrics.body);
    fed.node(0).unwrap().add_record(record(&["expired_roster"], true), "ana".into()).await.unwrap();
    fed.node(1).unwrap().add_record(record(&["expired_roster"], true), "ana".into()).await.unwrap();
    wait_until("both members match under the expired roster", LIMIT, || async {
        let alerts = |i: usize| {
            fed.node(i).unwrap().with_engine(|e| e.alerts(None, None).map(|a| a.len()).unwrap_or(0))
        };
        alerts(0).await.unwrap_or(0) == 1 && alerts(1).await.unwrap_or(0) == 1
    })
    .await
    .unwrap();
    assert!(fed.node(0).unwrap().failures().is_empty());

    // A restart on the roster that expired meanwhile: the stored roster is still the one the
    // node runs (verification does not judge the clock), alarmed.
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    tokio::time::timeout(LIMIT, fed.node(0).unwrap().wait_ready()).await.unwrap().unwrap();
    let port = serve(fed.node(0).unwrap()).await;
    let degraded = request(port, "GET", "/readyz", MONITOR, None).await;
    assert_eq!(
        (degraded.status, degraded.body.as_str()),
        (200, "ready, degraded: roster expired\n")
    );
    assert_eq!(fed.node(0).unwrap().roster_view().map(|view| view.version), Some(1));

    // Its successor clears the alarm.
    let v2 = fed.sign_roster(fed.roster_body(&[0, 1], 2, 2, start + 30 * DAY_MS), &[0, 1]);
    assert_eq!(post_roster(port, &v2).await.status, 200);
    let ready = request(port, "GET", "/readyz", MONITOR, None).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_missed_two_versions_catches_up_by_sync() {
    let (_dir, mut fed, expires, _) = founded("adopt-catch-up", 3, &[0, 1, 2]);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    // Member 2 stops; members 0 and 1 adopt versions 2 and 3 (each signed by k = 2 members).
    fed.stop(2).await.unwrap();
    let v2 = fed.sign_roster(fed.roster_body(&[0, 1, 2], 2, 2, expires + DAY_MS), &[0, 1]);
    let v3 = fed.sign_roster(fed.roster_body(&[0, 1, 2], 3, 2, expires + 2 * DAY_MS), &[1, 2]);
    let ports = [serve(fed.node(0).unwrap()).await, serve(fed.node(1).unwrap()).await];
    for port in ports {
        for roster in [&v2, &v3] {
            let adopted = post_roster(port, roster).await;
            assert_eq!(adopted.status, 200, "{}", adopted.body);
        }
    }
    // It restarts on its stored version 1 (its roster file is version 1 too; the first pull
    // may adopt more before any check here, so the audit log below proves it) and reaches
    // version 3 with no operator step: each version fetched and verified in turn.
    fed.start(2).await.unwrap();
    wait_until("member 2 runs version 3", LIMIT, || async {
        fed.node(2).unwrap().roster_identity() == (3, v3.hash())
    })
    .await
    .unwrap();
    let audit = std::fs::read_to_string(fed.data_dir(2).join("audit").join("audit.log")).unwrap();
    let adopted: Vec<&str> =
        audit.lines().filter(|line| line.contains("\tadopt_roster\t")).collect();
    // The founding roster at its first start, then versions 2 and 3 fetched from peers.
    assert_eq!(adopted.len(), 3, "{adopted:?}");
    for (line, version) in adopted.iter().zip(["roster:v1.", "roster:v2.", "roster:v3."]) {
        assert!(line.contains(version) && line.contains("*node"), "{adopted:?}");
    }
    // Restarted again, it stays on version 3 whatever its roster file says.
    fed.stop(2).await.unwrap();
    fed.start(2).await.unwrap();
    assert_eq!(fed.node(2).unwrap().roster_identity(), (3, v3.hash()));
    // And the members go on matching.
    fed.wait_meshed().await.unwrap();
    for i in [0, 2] {
        fed.node(i)
            .unwrap()
            .add_record(record(&["after_catch_up"], true), "ana".into())
            .await
            .unwrap();
    }
    wait_until("members 0 and 2 match", LIMIT, || async {
        let alerts = |i: usize| {
            fed.node(i).unwrap().with_engine(|e| e.alerts(None, None).map(|a| a.len()).unwrap_or(0))
        };
        alerts(0).await.unwrap_or(0) == 1 && alerts(2).await.unwrap_or(0) == 1
    })
    .await
    .unwrap();
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_valid_rosters_of_one_version_raise_the_conflict_alarm() {
    // k = 2 of 3: two different valid successors need a member who signed both (member 2).
    let (_dir, mut fed, expires, _) = founded("adopt-conflict", 3, &[0, 1, 2]);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let ports = [serve(fed.node(0).unwrap()).await, serve(fed.node(1).unwrap()).await];
    let a = fed.sign_roster(fed.roster_body(&[0, 1, 2], 2, 2, expires + DAY_MS), &[0, 2]);
    let b = fed.sign_roster(fed.roster_body(&[0, 1, 2], 2, 2, expires + 2 * DAY_MS), &[1, 2]);
    let unsigned = fed.sign_roster(fed.roster_body(&[0, 1, 2], 2, 2, expires + 3 * DAY_MS), &[1]);
    // The first valid successor is adopted, as the node cannot know another will come; the
    // second raises the alarm (docs/PROTOCOL.md §3.6), and nothing is rolled back.
    assert_eq!(post_roster(ports[0], &a).await.status, 200);
    // Another roster of version 2 that is no valid successor: refused, and proves nothing.
    let refused = post_roster(ports[0], &unsigned).await;
    assert_eq!((refused.status, error_code(&refused)), (409, "conflicting_roster".into()));
    assert!(fed.node(0).unwrap().roster_alarms().is_empty());
    // The second valid version 2: refused, and the alarm is raised.
    let refused = post_roster(ports[0], &b).await;
    assert_eq!((refused.status, error_code(&refused)), (409, "conflicting_roster".into()));
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, a.hash()), "nothing rolled back");
    let ready = request(ports[0], "GET", "/readyz", MONITOR, None).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready, degraded: roster conflict\n"));
    let metrics = request(ports[0], "GET", "/metrics", MONITOR, None).await;
    assert!(metrics.body.contains("crossmatch_roster_conflict 1\n"), "{}", metrics.body);
    let (version, evidence) = fed.node(0).unwrap().roster_conflict().unwrap();
    assert_eq!(version, 2);
    let (first, second) = crossmatch_protocol::decode_roster_conflict(&evidence).unwrap();
    let mut hashes = [first.hash(), second.hash()];
    hashes.sort_unstable();
    let mut expected = [a.hash(), b.hash()];
    expected.sort_unstable();
    assert_eq!(hashes, expected);
    // Served in GET /v1/roster, and kept durably: the alarm and the pair survive a restart.
    let shown = |port: u16| async move {
        let view = request(port, "GET", "/v1/roster", MONITOR, None).await.json();
        view["conflict"].clone()
    };
    let expected_json = serde_json::json!({"version": 2, "hashes": [hex_of(&expected[0]), hex_of(&expected[1])], "adopted_neither": false});
    assert_eq!(shown(ports[0]).await, expected_json);
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    let port_0 = serve(fed.node(0).unwrap()).await;
    assert!(fed.node(0).unwrap().roster_alarms().contains(&"conflict"), "after a restart");
    assert_eq!(shown(port_0).await, expected_json);
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, a.hash()));
    // Member 1, given the other one, holds one of the two (fetched from member 0 before the
    // conflict was proved) and learns of the other by the post or by the evidence, or got the
    // evidence first and adopts neither: it raises the alarm either way.
    let _ = post_roster(ports[1], &b).await;
    wait_until("member 1 raises the conflict alarm", LIMIT, || async {
        fed.node(1).unwrap().roster_alarms().contains(&"conflict")
    })
    .await
    .unwrap();
    assert!(matches!(fed.node(1).unwrap().roster_identity().0, 1 | 2));
    for i in 0..3 {
        assert!(fed.node(i).unwrap().failures().is_empty(), "member {i} failed");
    }
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_a_roster_one_version_ahead_is_adopted_and_one_further_ahead_waits() {
    let (_dir, mut fed) = federation("adopt-start", 2);
    let expires = now_ms() + 365 * DAY_MS;
    let roster = |version: u64, signers: &[usize]| {
        fed.sign_roster(fed.roster_body(&[0, 1], version, 2, expires + version), signers)
    };
    let (v1, v2, v4) = (roster(1, &[0, 1]), roster(2, &[0, 1]), roster(4, &[0, 1]));
    let v2_short = roster(2, &[1]);
    fed.set_signed_roster(0, Some(v1.clone()));
    fed.start(0).await.unwrap();
    assert_eq!(fed.node(0).unwrap().roster_identity(), (1, v1.hash()));
    // A successor without enough signatures is not adopted at start: the stored one runs.
    fed.stop(0).await.unwrap();
    fed.set_signed_roster(0, Some(v2_short));
    fed.start(0).await.unwrap();
    assert_eq!(fed.node(0).unwrap().roster_identity(), (1, v1.hash()));
    // Exactly one version ahead and valid: adopted.
    fed.stop(0).await.unwrap();
    fed.set_signed_roster(0, Some(v2.clone()));
    fed.start(0).await.unwrap();
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, v2.hash()));
    // Two versions ahead: the node starts on its stored version 2 (peers bring version 3, and
    // version 4 is then checked against it; rosters carry no link to the version before, so
    // only the signatures say whether it follows).
    fed.stop(0).await.unwrap();
    fed.set_signed_roster(0, Some(v4));
    fed.start(0).await.unwrap();
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, v2.hash()));
    // No roster file at all: the stored one runs; an older one: the stored one wins.
    for given in [None, Some(v1.clone())] {
        fed.stop(0).await.unwrap();
        fed.set_signed_roster(0, given);
        fed.start(0).await.unwrap();
        assert_eq!(fed.node(0).unwrap().roster_identity(), (2, v2.hash()));
    }
    fed.stop(0).await.unwrap();
    let audit = std::fs::read_to_string(fed.data_dir(0).join("audit").join("audit.log")).unwrap();
    let adopted: Vec<&str> = audit.lines().filter(|l| l.contains("\tadopt_roster\t")).collect();
    assert_eq!(adopted.len(), 2, "{adopted:?}");
    assert!(adopted[0].contains("roster:v1.") && adopted[1].contains("roster:v2."), "{adopted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_own_record_changes_its_contact_live_and_survives_a_restart() {
    let (_dir, mut fed, _, v1) = founded("adopt-record", 2, &[0, 1]);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let record = |seq: u64, contact: &str, signer: usize| {
        crossmatch_protocol::MemberRecord {
            federation_id: fed.federation_id(),
            member: "M1".into(),
            seq,
            addresses: vec![],
            contact: contact.into(),
        }
        .sign(&fed.members()[signer].key)
        .unwrap()
    };
    let contact_of_1 = |fed: &LocalFederation| {
        let contacts = fed.node(0).unwrap().contacts();
        contacts.into_iter().find(|c| c.member_id == "M1").map(|c| c.contact)
    };
    let node = fed.node(0).unwrap().clone();
    assert_eq!(node.adopt_member_record(record(2, "night-desk@m1.example", 1)).await.unwrap(), 2);
    assert_eq!(contact_of_1(&fed).as_deref(), Some("night-desk@m1.example"));
    // Not newer, or not signed by the member's node key: refused, nothing changes.
    assert!(node.adopt_member_record(record(2, "other@m1.example", 1)).await.is_err());
    assert!(node.adopt_member_record(record(3, "forged@m1.example", 0)).await.is_err());
    assert_eq!(contact_of_1(&fed).as_deref(), Some("night-desk@m1.example"));
    assert_eq!(node.roster_view().unwrap().members[1].record_seq, Some(2));
    // A record whose address is not a multiaddr is refused with a clear error before anything
    // is stored: the held record stays, and the node still restarts.
    let mut bad = record(4, "typo@m1.example", 1).record;
    bad.addresses = vec!["10.0.0.5:7400".into()];
    let bad = bad.sign(&fed.members()[1].key).unwrap();
    let refused = node.adopt_member_record(bad).await.unwrap_err();
    assert!(
        matches!(refused, crossmatch_node::daemon::RosterError::BadAddress { index: 0 }),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("is not a multiaddr"), "{refused}");
    assert_eq!(node.roster_view().unwrap().members[1].record_seq, Some(2));
    assert_eq!(contact_of_1(&fed).as_deref(), Some("night-desk@m1.example"));
    // The adopted roster posted again with a newer record (a roster file): no new adoption,
    // and the record is taken.
    let again = node
        .adopt_roster(v1.clone(), vec![record(3, "day-desk@m1.example", 1)], Adopter::Node)
        .await
        .unwrap();
    assert_eq!((again.version, again.adopted), (1, false));
    assert_eq!(node.roster_view().unwrap().members[1].record_seq, Some(3));
    assert_eq!(contact_of_1(&fed).as_deref(), Some("day-desk@m1.example"));
    // It was stored durably: a restart keeps it (this handle would keep the store open).
    drop(node);
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    assert_eq!(contact_of_1(&fed).as_deref(), Some("day-desk@m1.example"));
    assert_eq!(fed.node(0).unwrap().roster_view().unwrap().members[1].record_seq, Some(3));
    fed.stop_all().await.unwrap();
}

/// Whether member `i` has banned `peer` or scored it below zero (a penalty).
async fn penalised(fed: &LocalFederation, i: usize, peer: PeerKey) -> bool {
    let stats = fed.node(i).unwrap().mesh().stats().await.unwrap();
    stats.bans.iter().any(|ban| ban.peer == peer)
        || stats.peer_scores.iter().any(|(scored, score)| *scored == peer && *score < 0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_founded_on_a_later_version_is_not_penalised_by_one_behind_it() {
    // Member 0 runs version 1; member 1 was founded by hand on version 3 and holds nothing
    // before it. Member 0 asks it for the versions after 1 at every pull and gets version 3
    // first: nobody's fault, so nobody is penalised, and member 0 stays on version 1 until it
    // is given version 2.
    let (_dir, mut fed) = federation("adopt-later-founding", 2);
    let expires = now_ms() + 365 * DAY_MS;
    let roster = |version: u64| {
        fed.sign_roster(fed.roster_body(&[0, 1], version, 2, expires + version), &[0, 1])
    };
    let (v1, v2, v3) = (roster(1), roster(2), roster(3));
    fed.set_signed_roster(0, Some(v1.clone()));
    fed.set_signed_roster(1, Some(v3.clone()));
    fed.start_all().await.unwrap();
    wait_all_connected(&fed, &[0, 1]).await;
    let (key_0, key_1) = (PeerKey(fed.key(0).to_bytes()), PeerKey(fed.key(1).to_bytes()));
    // Twelve seconds: six pulls at the federation's 2 s interval; the review's proof banned
    // within nine (three penalties).
    let watch_until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < watch_until {
        assert!(!penalised(&fed, 0, key_1).await, "member 0 penalised member 1");
        assert!(!penalised(&fed, 1, key_0).await, "member 1 penalised member 0");
        assert_eq!(fed.node(0).unwrap().roster_identity(), (1, v1.hash()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Given version 2, it follows on to version 3 from member 1 (which serves it).
    let node = fed.node(0).unwrap().clone();
    node.adopt_roster(v2, vec![], Adopter::User("coordinator".into())).await.unwrap();
    wait_until("member 0 fetches version 3 from member 1", LIMIT, || async {
        fed.node(0).unwrap().roster_identity() == (3, v3.hash())
    })
    .await
    .unwrap();
    assert!(!penalised(&fed, 0, key_1).await && !penalised(&fed, 1, key_0).await);
    drop(node);
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_roster_sets_the_engines_limits_and_another_federations_roster_refuses_to_start()
{
    let (_dir, mut fed, expires, v1) = founded("adopt-limits", 2, &[0]);
    let mut shorter = fed.roster_body(&[0, 1], 2, 2, expires);
    shorter.max_retention_days = 30;
    shorter.quota_entries_per_day = 1_000;
    let v2 = fed.sign_roster(shorter, &[0, 1]);
    fed.start(0).await.unwrap();
    let limits = |fed: &LocalFederation| {
        let node = fed.node(0).unwrap().clone();
        async move { node.with_engine(|e| e.limits()).await.unwrap() }
    };
    assert_eq!(limits(&fed).await.max_retention_ms, 180 * DAY_MS);
    let node = fed.node(0).unwrap().clone();
    node.adopt_roster(v2.clone(), vec![], Adopter::User("coordinator".into())).await.unwrap();
    let adopted = limits(&fed).await;
    assert_eq!((adopted.max_retention_ms, adopted.quota_entries_per_day), (30 * DAY_MS, 1_000));
    // A record kept longer than the new maximum is refused.
    let long = record_until(&["kept_long"], true, now_ms() + 60 * DAY_MS);
    assert!(node.add_record(long, "ana".into()).await.is_err(), "60 days under a 30-day roster");
    drop(node);
    // Restarted with the older roster file, the stored version 2 runs, with its limits.
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, v2.hash()));
    assert_eq!(limits(&fed).await.max_retention_ms, 30 * DAY_MS);
    // A roster file of another federation: the node refuses to start, and says why.
    fed.stop(0).await.unwrap();
    let mut other = fed.roster_body(&[0, 1], 3, 2, expires);
    other.federation_id = crossmatch_protocol::FederationId([0xee; 32]);
    fed.set_signed_roster(0, Some(fed.sign_roster(other, &[0, 1])));
    let refused = fed.start(0).await.unwrap_err();
    assert!(refused.to_string().contains("another federation"), "{refused}");
    // Given its own federation's file again, it starts on the stored roster.
    fed.set_signed_roster(0, Some(v1));
    fed.start(0).await.unwrap();
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, v2.hash()));
    fed.stop_all().await.unwrap();
}

/// What a hostile member serves when asked `rosters`, claiming version 5 in `roster_head`.
#[derive(Clone)]
enum Served {
    /// Nothing at all.
    Nothing,
    /// Version 1, then a version 2 with too few signatures.
    ShortSigned(Vec<Vec<u8>>),
    /// Version 1, then version 3 (a gap).
    Gap(Vec<Vec<u8>>),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_serving_a_bad_roster_chain_is_penalised_and_nothing_is_adopted() {
    // Member 0 runs version 1 of {0, 1, 2, 3} (k = 3); members 1, 2 and 3 are raw meshes that
    // each claim version 5 and serve: nothing, a short-signed version 2, a gap.
    let (_dir, mut fed, expires, v1) = founded("adopt-hostile-chain", 4, &[0]);
    let everyone = [0, 1, 2, 3];
    let short = fed.sign_roster(fed.roster_body(&everyone, 2, 3, expires), &[1, 2]);
    let v3 = fed.sign_roster(fed.roster_body(&everyone, 3, 3, expires), &[0, 1, 2]);
    fed.start(0).await.unwrap();
    let served = [
        Served::Nothing,
        Served::ShortSigned(vec![v1.to_wire(), short.to_wire()]),
        Served::Gap(vec![v1.to_wire(), v3.to_wire()]),
    ];
    let keys: Vec<[u8; 32]> = fed.members().iter().map(|m| m.key.public_key().to_bytes()).collect();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut stops = Vec::new();
    let mut clients = Vec::new();
    for (i, served) in (1..=3).zip(served) {
        let key = fed.members()[i].key.clone();
        let (client, mut events, stop) = crate::hostile::raw_member(&fed, &key, keys.clone()).await;
        let asked = asked.clone();
        tokio::spawn(async move {
            use crossmatch_node::mesh::{Event, SyncRequest, SyncResponse};
            while let Some(event) = events.recv().await {
                let Event::SyncRequest { request, reply, .. } = event else { continue };
                let answer = match request {
                    SyncRequest::RosterHead => {
                        SyncResponse::RosterHead { version: 5, hash: [5; 32] }
                    }
                    SyncRequest::Rosters { .. } => {
                        asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        match &served {
                            Served::Nothing => SyncResponse::Rosters(vec![]),
                            Served::ShortSigned(wires) | Served::Gap(wires) => {
                                SyncResponse::Rosters(wires.clone())
                            }
                        }
                    }
                    SyncRequest::Heads => SyncResponse::Heads(vec![]),
                    SyncRequest::Forks => SyncResponse::Forks(vec![]),
                    // No conflict evidence (a peer that does not answer is not followed).
                    SyncRequest::RosterConflict => SyncResponse::RosterConflict(vec![]),
                    _ => SyncResponse::Refused("unavailable".into()),
                };
                let _ = reply.send(answer);
            }
        });
        crate::hostile::connect_raw(&fed, 0, &client, &key).await;
        clients.push(client);
        stops.push(stop);
    }
    for i in 1..=3 {
        let peer = PeerKey(fed.key(i).to_bytes());
        wait_until(&format!("member 0 penalises hostile member {i}"), LIMIT, || async {
            penalised(&fed, 0, peer).await
        })
        .await
        .unwrap();
    }
    assert!(asked.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    assert_eq!(fed.node(0).unwrap().roster_identity(), (1, v1.hash()), "nothing adopted");
    assert!(fed.node(0).unwrap().roster_alarms().is_empty());
    for stop in stops {
        let _ = stop.send(true);
    }
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_posted_disconnects_the_member_refuses_its_batches_and_closes_its_alerts() {
    let (_dir, mut fed, expires, v1) = founded("adopt-removal", 3, &[0, 1, 2]);
    let v2 = fed.sign_roster(fed.roster_body(&[0, 1], 2, 2, expires + DAY_MS), &[0, 1]);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let port = serve(fed.node(0).unwrap()).await;
    // Members 0 and 2 share one account: an open alert at member 0.
    for i in [0, 2] {
        fed.node(i)
            .unwrap()
            .add_record(record(&["leaver_match"], true), "ana".into())
            .await
            .unwrap();
    }
    let alert_state = |fed: &LocalFederation| {
        let node = fed.node(0).unwrap().clone();
        async move {
            node.with_engine(|e| {
                e.alerts(None, None).ok().and_then(|alerts| alerts.first().map(|a| a.state))
            })
            .await
            .ok()
            .flatten()
        }
    };
    wait_until("member 0 has an open alert with member 2", LIMIT, || async {
        alert_state(&fed).await == Some(crossmatch_node::store::AlertState::Open)
    })
    .await
    .unwrap();
    // Member 2's own record is held at member 0 until it is removed.
    let leaver_record = crossmatch_protocol::MemberRecord {
        federation_id: fed.federation_id(),
        member: "M2".into(),
        seq: 1,
        addresses: vec![],
        contact: "desk@m2.example".into(),
    }
    .sign(&fed.members()[2].key)
    .unwrap();
    fed.node(0).unwrap().adopt_member_record(leaver_record).await.unwrap();
    let stored_records = |fed: &LocalFederation| {
        let node = fed.node(0).unwrap().clone();
        async move {
            let records = node.with_engine(|e| e.store().member_records().unwrap()).await;
            records.unwrap().into_iter().map(|(member, _)| member).collect::<Vec<_>>()
        }
    };
    assert_eq!(stored_records(&fed).await, vec!["M2".to_owned()]);
    // Version 2 removes member 2, posted to member 0.
    let adopted = post_roster(port, &v2).await;
    assert_eq!(adopted.status, 200, "{}", adopted.body);
    // Version 2 keeps the epoch: member 2 can still compute tokens, and the node says so.
    let alarmed = |port: u16| async move {
        let view = request(port, "GET", "/v1/roster", MONITOR, None).await;
        let alarms = view.json()["alarms"].clone();
        let ready = request(port, "GET", "/readyz", MONITOR, None).await;
        let metrics = request(port, "GET", "/metrics", MONITOR, None).await;
        let gauge = metrics.body.contains("crossmatch_roster_removal_without_rotation 1\n");
        let listed = alarms.as_array().unwrap().iter().any(|a| a == "removal_without_rotation");
        let degraded = ready.body.contains("degraded: roster removal_without_rotation");
        assert_eq!((listed, degraded), (gauge, gauge), "{alarms} {}", ready.body);
        gauge
    };
    assert!(alarmed(port).await, "a removal without rotation raises the alarm");
    let leaver = PeerKey(fed.key(2).to_bytes());
    assert!(stored_records(&fed).await.is_empty(), "the removed member's record is deleted");
    wait_until("member 0 drops member 2", LIMIT, || async {
        let peers = fed.node(0).unwrap().mesh().connected_peers().await.unwrap_or_default();
        !peers.contains(&leaver)
    })
    .await
    .unwrap();
    wait_until("member 0 closes the alert with member 2", LIMIT, || async {
        alert_state(&fed).await == Some(crossmatch_node::store::AlertState::Closed)
    })
    .await
    .unwrap();
    // Member 2's feed is no longer accepted: its next batch, handed to member 0, is refused
    // before any signature check, and member 0's chain of it does not move.
    let leaver_key = fed.key(2);
    let leaver = fed.node(2).unwrap().clone();
    let (generation, before) = leaver.with_engine(|e| e.own_head()).await.unwrap();
    leaver.add_record(record(&["after_removal"], true), "ana".into()).await.unwrap();
    wait_until("member 2 signs its next batch", LIMIT, || async {
        leaver.with_engine(|e| e.own_head().1).await.unwrap() > before
    })
    .await
    .unwrap();
    let feed = FeedId::of(&leaver_key, generation);
    let id = crossmatch_protocol::BatchId { feed, seq: before + 1 };
    let wire = leaver.with_engine(move |e| e.batch(id)).await.unwrap().unwrap().unwrap();
    let node = fed.node(0).unwrap().clone();
    let outcome = node.with_engine(move |e| e.ingest(&wire)).await.unwrap().unwrap();
    assert_eq!(outcome, crossmatch_node::engine::IngestOutcome::UnknownOrigin);
    let held = node.with_engine(move |e| e.chain(feed).map(|c| c.seq)).await.unwrap();
    assert!(held.unwrap_or(0) <= before, "member 0 took member 2's batch after its removal");
    drop((node, leaver));
    // The alarm survives a restart (worked out from the stored chain) ...
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    let port = serve(fed.node(0).unwrap()).await;
    wait_until("member 0 is ready again", LIMIT, || async { fed.node(0).unwrap().is_ready() })
        .await
        .unwrap();
    assert!(alarmed(port).await, "the alarm survives a restart");
    // ... and a later roster that rotates the epoch ends it.
    let mut rotating = fed.roster_body(&[0, 1], 3, 2, expires + 2 * DAY_MS);
    let v1_secret = v1.body.secret_fingerprint;
    rotating.epoch = 2;
    rotating.secret_fingerprint = crossmatch_protocol::secret_fingerprint(
        &crossmatch_protocol::FederationSecret::from_bytes([9; 32]),
    );
    rotating.rotation = Some(crossmatch_protocol::Rotation {
        previous_epoch: 1,
        previous_secret_fingerprint: v1_secret,
        changeover_at_ms: now_ms() + DAY_MS,
        grace_ms: DAY_MS,
    });
    let v3 = fed.sign_roster(rotating, &[0, 1]);
    let adopted = post_roster(port, &v3).await;
    assert_eq!(adopted.status, 200, "{}", adopted.body);
    assert!(!alarmed(port).await, "a rotating roster ends the alarm");
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_roster_of_this_version_is_penalised_and_one_that_does_not_decode_is_not() {
    // Member 0 runs version 2 of {0, 1, 2} (k = 2), restarted so the version before comes from
    // its store. Member 1 (raw) claims version 2 with another hash at every pull and serves a
    // new forgery each time (signed by itself alone: no valid successor of version 1); member
    // 2 (raw) claims version 3 and serves bytes that are no roster (as a peer on newer
    // software might): member 1 is penalised, member 2 is not, and nothing is adopted.
    let (_dir, mut fed, expires, _) = founded("adopt-false-same-version", 3, &[0]);
    let everyone = [0, 1, 2];
    let v2 = fed.sign_roster(fed.roster_body(&everyone, 2, 2, expires + 1), &everyone);
    let forgeries: Vec<Vec<u8>> = (0..64)
        .map(|i| fed.sign_roster(fed.roster_body(&everyone, 2, 2, expires + 2 + i), &[1]).to_wire())
        .collect();
    fed.start(0).await.unwrap();
    let node = fed.node(0).unwrap().clone();
    node.adopt_roster(v2.clone(), vec![], Adopter::User("coordinator".into())).await.unwrap();
    drop(node);
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, v2.hash()));
    let keys: Vec<[u8; 32]> = fed.members().iter().map(|m| m.key.public_key().to_bytes()).collect();
    let asked = [
        Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    ];
    let mut stops = Vec::new();
    let mut clients = Vec::new();
    for i in 1..=2usize {
        let key = fed.members()[i].key.clone();
        let (client, mut events, stop) = crate::hostile::raw_member(&fed, &key, keys.clone()).await;
        let asked = asked[i - 1].clone();
        let forgeries = forgeries.clone();
        tokio::spawn(async move {
            use crossmatch_node::mesh::{Event, SyncRequest, SyncResponse};
            use std::sync::atomic::Ordering;
            while let Some(event) = events.recv().await {
                let Event::SyncRequest { request, reply, .. } = event else { continue };
                let count = asked.load(Ordering::SeqCst);
                let answer = match (i, request) {
                    (1, SyncRequest::RosterHead) => {
                        let mut hash = [0x11; 32];
                        hash[..8].copy_from_slice(&(count as u64).to_be_bytes());
                        SyncResponse::RosterHead { version: 2, hash }
                    }
                    (_, SyncRequest::RosterHead) => {
                        SyncResponse::RosterHead { version: 3, hash: [3; 32] }
                    }
                    (1, SyncRequest::Rosters { .. }) => {
                        asked.fetch_add(1, Ordering::SeqCst);
                        SyncResponse::Rosters(vec![forgeries[count % forgeries.len()].clone()])
                    }
                    (_, SyncRequest::Rosters { .. }) => {
                        asked.fetch_add(1, Ordering::SeqCst);
                        SyncResponse::Rosters(vec![vec![0xa1, 0x00, 0x00]])
                    }
                    (_, SyncRequest::Heads) => SyncResponse::Heads(vec![]),
                    (_, SyncRequest::Forks) => SyncResponse::Forks(vec![]),
                    // No conflict evidence (a peer that does not answer is not followed).
                    (_, SyncRequest::RosterConflict) => SyncResponse::RosterConflict(vec![]),
                    _ => SyncResponse::Refused("unavailable".into()),
                };
                let _ = reply.send(answer);
            }
        });
        crate::hostile::connect_raw(&fed, 0, &client, &key).await;
        clients.push(client);
        stops.push(stop);
    }
    let (forger, newer) = (PeerKey(fed.key(1).to_bytes()), PeerKey(fed.key(2).to_bytes()));
    wait_until("member 0 penalises the member serving forgeries", LIMIT, || async {
        penalised(&fed, 0, forger).await
    })
    .await
    .unwrap();
    // Three exchanges with the member on newer software, none of them penalised.
    wait_until("member 0 asks the newer member three times", LIMIT, || async {
        asked[1].load(std::sync::atomic::Ordering::SeqCst) >= 3
    })
    .await
    .unwrap();
    assert!(!penalised(&fed, 0, newer).await, "a roster that does not decode was penalised");
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, v2.hash()), "nothing adopted");
    assert!(fed.node(0).unwrap().roster_alarms().is_empty(), "a forgery proves no conflict");
    for stop in stops {
        let _ = stop.send(true);
    }
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_key_the_roster_does_not_list_refuses_to_start_saying_what_to_do() {
    // Member 1 is given a roster that lists only member 0 (as a node restarted under a new key
    // on a roster that does not name it yet): it refuses to start, and the error says which
    // roster file to start it with, or to run it with the old key.
    let (_dir, mut fed) = federation("adopt-not-listed", 2);
    let v1 = fed.sign_roster(fed.roster_body(&[0], 1, 1, now_ms() + 365 * DAY_MS), &[0]);
    fed.set_signed_roster(1, Some(v1));
    let refused = fed.start(1).await.unwrap_err().to_string();
    assert!(refused.contains("(version 1) does not list this node's key"), "{refused}");
    assert!(refused.contains("when version 2 is the one that names the new key"), "{refused}");
    assert!(refused.contains("old node key"), "{refused}");
}
