//! A roster change with zero restarts, under load: a running five-member federation adds a
//! sixth member and then removes one, each member adopting the signed successor live
//! (`Node::adopt_roster`, what `POST /v1/roster` calls: verified, audited, persisted, applied)
//! while one member keeps adding records throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossmatch_node::clock::{Clock, DAY_MS, SystemClock};
use crossmatch_node::daemon::{Adopter, Node};
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::mesh::PeerKey;
use crossmatch_node::store::{Alert, AlertState};
use crossmatch_node::test_support::{account, federation, record};
use crossmatch_protocol::SignedRoster;

const LIMIT: Duration = Duration::from_secs(90);
/// At most this many records of load, whatever happens.
const MAX_LOAD: u64 = 3_000;

/// The alert of `handle`'s token at member `i`, if any.
async fn alert_of(fed: &LocalFederation, i: usize, handle: &str) -> Option<Alert> {
    let canonical = account(handle);
    let node = fed.node(i).ok()?;
    node.with_engine(move |engine| {
        let token = engine.token(&canonical);
        engine.alerts(None, None).ok()?.into_iter().find(|alert| alert.token == token)
    })
    .await
    .ok()
    .flatten()
}

/// Member `i`'s running node.
fn node(fed: &LocalFederation, i: usize) -> Node {
    fed.node(i).unwrap().clone()
}

/// Member `i` shares a record of the account `handle`.
async fn share(fed: &LocalFederation, i: usize, handle: &str) {
    node(fed, i).add_record(record(&[handle], true), "analyst".into()).await.unwrap();
}

/// Waits until member `i`'s alert of `handle` is in `state`.
async fn wait_alert(fed: &LocalFederation, i: usize, handle: &str, state: AlertState) -> Alert {
    let what = format!("member {i}'s alert of {handle} is {state:?}");
    wait_until(&what, LIMIT, || async {
        alert_of(fed, i, handle).await.is_some_and(|alert| alert.state == state)
    })
    .await
    .unwrap();
    alert_of(fed, i, handle).await.unwrap()
}

/// Whether member `i` is connected to member `j` now.
async fn connected(fed: &LocalFederation, i: usize, j: usize) -> bool {
    let key = PeerKey(fed.key(j).to_bytes());
    let node = fed.node(i).unwrap();
    node.mesh().connected_peers().await.is_ok_and(|peers| peers.contains(&key))
}

/// Member `i` adopts `roster` as an admin would post it; it may have fetched it from a peer
/// already (then the adoption changes nothing). Either way it runs it afterwards.
async fn adopt(fed: &LocalFederation, i: usize, roster: &SignedRoster) {
    let node = node(fed, i);
    node.adopt_roster(roster.clone(), Vec::new(), Adopter::User("coordinator".into()))
        .await
        .unwrap_or_else(|error| panic!("member {i} refused the roster: {error}"));
    assert_eq!(node.roster_identity(), (roster.body.version, roster.hash()), "at member {i}");
}

/// Member `origin`'s head as member `i` holds it.
async fn head_of(fed: &LocalFederation, i: usize, origin: usize) -> Vec<(u32, u64)> {
    let heads = fed.heads(i).await.unwrap();
    heads.into_iter().filter(|head| head.0 == origin).map(|head| (head.1, head.2)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joins_and_another_leaves_a_running_federation_under_load() {
    // Members 0 to 4 run; member 5, the newcomer, is on nobody's roster yet.
    let (_dir, mut fed) = federation("live-roster", 6);
    let (founders, newcomer, leaver) = ([0, 1, 2, 3, 4], 5, 4);
    let everyone = [0, 1, 2, 3, 4, 5];
    let remaining = [0, 1, 2, 3, 5];
    // The signed rosters: version 1 founded by the five (k = 3), version 2 adds the newcomer
    // (k = 4; signed by all six, so that the newcomer can install it as its founding roster),
    // version 3 removes the leaver (k = 3; signed by the five remaining, at least k = 4 of
    // version 2's members).
    let expires = SystemClock.now_ms() + 365 * DAY_MS;
    let v1 = fed.sign_roster(fed.roster_body(&founders, 1, 3, expires), &founders);
    let v2 = fed.sign_roster(fed.roster_body(&everyone, 2, 4, expires), &everyone);
    let v3 = fed.sign_roster(fed.roster_body(&remaining, 3, 3, expires), &remaining);
    for i in founders {
        fed.set_signed_roster(i, Some(v1.clone()));
    }
    for i in founders {
        fed.start(i).await.unwrap();
    }
    fed.wait_meshed().await.unwrap();

    // Matches made before any change: 1 and 2 share one account, the leaver shares one with
    // each of them, and 3 shares one the newcomer will share too.
    share(&fed, 1, "one_two").await;
    share(&fed, 2, "one_two").await;
    share(&fed, 1, "one_leaver").await;
    share(&fed, leaver, "one_leaver").await;
    share(&fed, 2, "two_leaver").await;
    share(&fed, leaver, "two_leaver").await;
    share(&fed, 3, "three_newcomer").await;
    let kept = wait_alert(&fed, 1, "one_two", AlertState::Open).await;
    let one_leaver = wait_alert(&fed, 1, "one_leaver", AlertState::Open).await;
    let two_leaver = wait_alert(&fed, 2, "two_leaver", AlertState::Open).await;

    // The load: member 0 adds a shared record every 20 ms until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let added = Arc::new(AtomicU64::new(0));
    let loader = {
        let (node, stop, added) = (node(&fed, 0), stop.clone(), added.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) && added.load(Ordering::Relaxed) < MAX_LOAD {
                let n = added.load(Ordering::Relaxed);
                let handle = format!("load_{n}");
                node.add_record(record(&[&handle], true), "loader".into()).await.unwrap();
                added.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // The newcomer starts on version 2 (the five and itself) and shares an account; the
    // founders adopt version 2 live, one after the other.
    fed.set_signed_roster(newcomer, Some(v2.clone()));
    fed.start(newcomer).await.unwrap();
    share(&fed, newcomer, "three_newcomer").await;
    for i in founders {
        adopt(&fed, i, &v2).await;
    }
    for i in founders {
        wait_until(&format!("member {i} and the newcomer connect"), LIMIT, || async {
            connected(&fed, i, newcomer).await && connected(&fed, newcomer, i).await
        })
        .await
        .unwrap();
    }
    // It gets the others' feeds by sync, and matches both ways.
    wait_alert(&fed, newcomer, "three_newcomer", AlertState::Open).await;
    wait_alert(&fed, 3, "three_newcomer", AlertState::Open).await;
    for origin in [1, 2, 3] {
        wait_until(&format!("the newcomer holds member {origin}'s feed"), LIMIT, || async {
            head_of(&fed, newcomer, origin).await == head_of(&fed, origin, origin).await
        })
        .await
        .unwrap();
    }

    // The leaver is removed: every other member adopts version 3, live.
    for i in remaining {
        adopt(&fed, i, &v3).await;
    }
    for i in remaining {
        wait_until(&format!("member {i} drops the leaver"), LIMIT, || async {
            !connected(&fed, i, leaver).await
        })
        .await
        .unwrap();
    }
    wait_until("the leaver is alone", LIMIT, || async {
        node(&fed, leaver).connected_members().await.is_ok_and(|n| n == 0)
    })
    .await
    .unwrap();
    // Its earlier matches are closed at the others, with the same alert ids.
    let closed = wait_alert(&fed, 1, "one_leaver", AlertState::Closed).await;
    assert_eq!(closed.id, one_leaver.id);
    let closed = wait_alert(&fed, 2, "two_leaver", AlertState::Closed).await;
    assert_eq!(closed.id, two_leaver.id);
    // Its new adds match nothing: it is cut off, and its head stays where it was.
    let leaver_head_at_one = head_of(&fed, 1, leaver).await;
    share(&fed, leaver, "one_two").await;
    share(&fed, leaver, "load_0").await;

    // The load goes on for a while, then stops; every remaining member holds all of it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(LIMIT, loader).await.unwrap().unwrap();
    let loaded = added.load(Ordering::Relaxed);
    assert!(loaded > 20, "the load kept flowing during the changes: {loaded} records");
    println!("member 0 added {loaded} records while the roster changed twice");
    for i in [1, 2, 3, 5] {
        wait_until(&format!("member {i} holds the whole load"), LIMIT, || async {
            head_of(&fed, i, 0).await == head_of(&fed, 0, 0).await
        })
        .await
        .unwrap();
    }
    // Nothing else was lost: the other matches stand, with their ids, and the leaver's last
    // adds reached nobody.
    let still = alert_of(&fed, 1, "one_two").await.unwrap();
    assert_eq!(still.id, kept.id);
    assert_ne!(still.state, AlertState::Closed);
    let counterparts: Vec<_> = still.counterparts.iter().map(|c| c.origin).collect();
    assert_eq!(counterparts, vec![fed.key(2)], "the leaver's new add is not a counterpart");
    assert_eq!(alert_of(&fed, 0, "load_0").await, None, "the leaver's add of load_0 matched");
    assert_eq!(head_of(&fed, 1, leaver).await, leaver_head_at_one);
    for i in [3, newcomer] {
        let alert = alert_of(&fed, i, "three_newcomer").await.unwrap();
        assert_ne!(alert.state, AlertState::Closed, "at member {i}");
    }
    // No node failed, and none restarted.
    for i in everyone {
        let node = node(&fed, i);
        assert!(node.failures().is_empty(), "member {i} failed: {:?}", node.failures());
        assert!(node.is_ready(), "member {i} is not ready");
    }
    fed.stop_all().await.unwrap();
}
