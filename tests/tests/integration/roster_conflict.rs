//! Roster conflict evidence (docs/PROTOCOL.md §3.6 and §4.4): two conflicting rosters of one
//! version are both refused once a node sees both, an alarm is raised everywhere the evidence
//! reaches, a member given neither takes the evidence by sync and adopts neither (also from its
//! roster file at a restart), a forged pair costs the peer that served it a penalty and is not
//! kept, a pair of a version the node cannot judge costs nothing, and a node that sees both
//! rosters of the next version from two peers before adopting either adopts neither, and a node
//! whose peer does not answer `roster_conflict` fetches nothing newer from it until it does; a
//! roster file of the stored version with another hash is checked as a conflict at start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::mesh::{Event, PeerKey, SyncRequest, SyncResponse};
use crossmatch_node::test_support::{TempDir, federation, http};
use crossmatch_protocol::{SignedRoster, decode_roster_conflict};

use super::api_client::{ADMIN, MONITOR, error_code, now_ms, request_typed, serve};

const LIMIT: Duration = Duration::from_secs(60);

/// `POST /v1/roster` with `roster`'s wire form, as the admin.
async fn post_roster(port: u16, roster: &SignedRoster) -> http::Reply {
    request_typed(port, "POST", "/v1/roster", ADMIN, "application/cbor", Some(roster.to_wire()))
        .await
}

/// `GET path` as the monitor.
async fn get(port: u16, path: &str) -> http::Reply {
    request_typed(port, "GET", path, MONITOR, "application/cbor", None).await
}

/// Whether member `i` has banned `peer` or scored it below zero (a penalty).
async fn penalised(fed: &LocalFederation, i: usize, peer: PeerKey) -> bool {
    let stats = fed.node(i).unwrap().mesh().stats().await.unwrap();
    stats.bans.iter().any(|ban| ban.peer == peer)
        || stats.peer_scores.iter().any(|(scored, score)| *scored == peer && *score < 0.0)
}

/// A federation of 3 members (k = 2) named `name`, its founding roster and two valid,
/// conflicting successors of version 2: `x` signed by members 0 and 1, `y` by members 1 and 2.
fn forked_three(
    name: &str,
) -> (TempDir, LocalFederation, SignedRoster, SignedRoster, SignedRoster) {
    let (dir, fed) = federation(name, 3);
    let expires = now_ms() + 365 * DAY_MS;
    let v1 = fed.sign_roster(fed.roster_body(&[0, 1, 2], 1, 2, expires), &[0, 1, 2]);
    let x = fed.sign_roster(fed.roster_body(&[0, 1, 2], 2, 2, expires + DAY_MS), &[0, 1]);
    let y = fed.sign_roster(fed.roster_body(&[0, 1, 2], 2, 2, expires + 2 * DAY_MS), &[1, 2]);
    (dir, fed, v1, x, y)
}

fn peer(fed: &LocalFederation, i: usize) -> PeerKey {
    PeerKey(fed.key(i).to_bytes())
}

/// The two hashes of the conflict member `i` holds, in order; `None` when it holds none.
fn held_conflict(fed: &LocalFederation, i: usize) -> Option<(u64, [[u8; 32]; 2])> {
    let (version, wire) = fed.node(i).unwrap().roster_conflict()?;
    let (first, second) = decode_roster_conflict(&wire).expect("held evidence decodes");
    let mut hashes = [first.hash(), second.hash()];
    hashes.sort_unstable();
    Some((version, hashes))
}

fn sorted(a: &SignedRoster, b: &SignedRoster) -> [[u8; 32]; 2] {
    let mut hashes = [a.hash(), b.hash()];
    hashes.sort_unstable();
    hashes
}

/// A `roster-conflict` wire form of any two rosters (valid or not): `[bstr, bstr]`, in
/// deterministic CBOR.
fn pair_wire(a: &SignedRoster, b: &SignedRoster) -> Vec<u8> {
    let pair = ciborium::Value::Array(vec![
        ciborium::Value::Bytes(a.to_wire()),
        ciborium::Value::Bytes(b.to_wire()),
    ]);
    let mut wire = Vec::new();
    ciborium::into_writer(&pair, &mut wire).unwrap();
    wire
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_conflicting_successors_are_both_refused_and_the_evidence_reaches_every_member() {
    // n = 3, k = 2: members 0 and 1 sign one version 2, members 1 and 2 another (member 1
    // signed both, which the tools refuse).
    let (_dir, mut fed, v1, x, y) = forked_three("conflict-evidence");
    let both = sorted(&x, &y);
    for i in 0..3 {
        fed.set_signed_roster(i, Some(v1.clone()));
    }
    // Member 2 is away while the two are posted, one to member 0 and the other to member 1.
    fed.start(0).await.unwrap();
    fed.start(1).await.unwrap();
    fed.wait_meshed().await.unwrap();
    let ports = [serve(fed.node(0).unwrap()).await, serve(fed.node(1).unwrap()).await];
    let (posted_x, posted_y) = tokio::join!(post_roster(ports[0], &x), post_roster(ports[1], &y));
    // Each is adopted, or refused as another roster of the version its node took first from
    // the other member.
    for reply in [&posted_x, &posted_y] {
        let refused = reply.status == 409 && error_code(reply) == "conflicting_roster";
        assert!(reply.status == 200 || refused, "{} {}", reply.status, reply.body);
    }
    // Once the evidence reaches them, both alarm; each keeps the roster it adopted first.
    for i in 0..2 {
        wait_until(&format!("member {i} raises the conflict alarm"), LIMIT, || async {
            fed.node(i).unwrap().roster_alarms().contains(&"conflict")
        })
        .await
        .unwrap();
        assert_eq!(held_conflict(&fed, i), Some((2, both)), "member {i}");
        assert_eq!(fed.node(i).unwrap().roster_identity().0, 2, "nothing rolled back");
    }

    // Member 2 comes back, given neither: it takes the evidence by sync, verified against its
    // version 1, and adopts neither, however many pulls go by.
    fed.start(2).await.unwrap();
    wait_until("member 2 takes the evidence by sync", LIMIT, || async {
        held_conflict(&fed, 2).is_some()
    })
    .await
    .unwrap();
    assert_eq!(held_conflict(&fed, 2), Some((2, both)));
    // Eight seconds: four pulls at the federation's 2 s interval.
    let watch_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch_until {
        let node = fed.node(2).unwrap();
        assert_eq!(node.roster_identity(), (1, v1.hash()), "member 2 adopted a side");
        assert!(node.roster_alarms().contains(&"conflict"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let port = serve(fed.node(2).unwrap()).await;
    let view = get(port, "/v1/roster").await.json();
    assert_eq!(view["version"], 1);
    assert_eq!(view["conflict"]["version"], 2);
    assert_eq!(view["conflict"]["adopted_neither"], true);
    let ready = get(port, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready, degraded: roster conflict\n"));
    // Posted, either side is refused with a code that says why.
    for side in [&x, &y] {
        let refused = post_roster(port, side).await;
        assert_eq!((refused.status, error_code(&refused)), (409, "roster_forked".into()));
    }
    // Restarted with one side as its roster file: the stored evidence, verified again against
    // the stored version 1, blocks it.
    fed.stop(2).await.unwrap();
    fed.set_signed_roster(2, Some(x.clone()));
    fed.start(2).await.unwrap();
    assert_eq!(fed.node(2).unwrap().roster_identity(), (1, v1.hash()));
    assert_eq!(held_conflict(&fed, 2), Some((2, both)));
    assert!(fed.node(2).unwrap().roster_alarms().contains(&"conflict"));
    // Evidence that verifies costs nobody anything.
    for (i, j) in [(0, 1), (1, 0), (0, 2), (1, 2), (2, 0), (2, 1)] {
        assert!(!penalised(&fed, i, peer(&fed, j)).await, "member {i} penalised member {j}");
    }
    for i in 0..3 {
        assert!(fed.node(i).unwrap().failures().is_empty(), "member {i} failed");
    }
    fed.stop_all().await.unwrap();
}

/// What a raw member answers.
#[derive(Clone)]
struct Script {
    /// Its roster head; `None`: refuses `roster_head` (busy).
    head: Option<(u64, [u8; 32])>,
    /// Its conflict evidence.
    evidence: Vec<Vec<u8>>,
    /// Its rosters, by version.
    rosters: Vec<SignedRoster>,
    /// How many `roster_conflict` requests it answered.
    asked: Arc<AtomicUsize>,
    /// While set, it refuses `roster_conflict` (busy), counting each refusal in `asked`.
    refuses_conflict: Arc<AtomicBool>,
    /// Whether its head's hash changes after each `roster_conflict` it answered (so it is
    /// asked again at every pull).
    new_head_each_time: bool,
}

/// Starts a raw mesh as member `i` answering by `script`, and connects it to member 0.
async fn raw_member(
    fed: &LocalFederation,
    i: usize,
    script: Script,
) -> (crossmatch_node::mesh::Client, tokio::sync::watch::Sender<bool>) {
    let keys: Vec<[u8; 32]> = fed.members().iter().map(|m| m.key.public_key().to_bytes()).collect();
    let key = fed.members()[i].key.clone();
    let (client, mut events, stop) = crate::hostile::raw_member(fed, &key, keys).await;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Event::SyncRequest { request, reply, .. } = event else { continue };
            let answer = match request {
                SyncRequest::RosterHead => match script.head {
                    Some((version, mut hash)) => {
                        if script.new_head_each_time {
                            hash = [script.asked.load(Ordering::SeqCst) as u8; 32];
                        }
                        SyncResponse::RosterHead { version, hash }
                    }
                    None => SyncResponse::Refused("busy".into()),
                },
                SyncRequest::RosterConflict => {
                    script.asked.fetch_add(1, Ordering::SeqCst);
                    if script.refuses_conflict.load(Ordering::SeqCst) {
                        SyncResponse::Refused("busy".into())
                    } else {
                        SyncResponse::RosterConflict(script.evidence.clone())
                    }
                }
                SyncRequest::Rosters { from_version } => SyncResponse::Rosters(
                    script
                        .rosters
                        .iter()
                        .filter(|roster| roster.body.version >= from_version)
                        .map(SignedRoster::to_wire)
                        .collect(),
                ),
                SyncRequest::Heads => SyncResponse::Heads(vec![]),
                SyncRequest::Forks => SyncResponse::Forks(vec![]),
                _ => SyncResponse::Refused("unavailable".into()),
            };
            let _ = reply.send(answer);
        }
    });
    crate::hostile::connect_raw(fed, 0, &client, &key).await;
    (client, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_pair_costs_its_server_a_penalty_and_only_a_verified_one_is_kept() {
    // n = 4, k = 3. Member 0 runs version 1; members 1, 2 and 3 are raw meshes on version 1
    // too. Member 1 serves a forged pair (one side signed by two members only), member 2 a
    // pair of version 3 (which member 0 cannot judge: it holds no version 2), member 3 a valid
    // pair of version 2.
    let (_dir, mut fed) = federation("conflict-forged", 4);
    let expires = now_ms() + 365 * DAY_MS;
    let everyone = [0, 1, 2, 3];
    let body =
        |version: u64, day: u64| fed.roster_body(&everyone, version, 3, expires + day * DAY_MS);
    let v1 = fed.sign_roster(body(1, 0), &everyone);
    let x = fed.sign_roster(body(2, 1), &[0, 1, 2]);
    let y = fed.sign_roster(body(2, 2), &[1, 2, 3]);
    let short = fed.sign_roster(body(2, 3), &[1, 2]);
    let (later_a, later_b) =
        (fed.sign_roster(body(3, 4), &everyone), fed.sign_roster(body(3, 5), &everyone));
    fed.set_signed_roster(0, Some(v1.clone()));
    fed.start(0).await.unwrap();
    let head = Some((1, v1.hash()));
    let script = |evidence: Vec<u8>| Script {
        head,
        evidence: vec![evidence],
        rosters: vec![v1.clone()],
        asked: Arc::new(AtomicUsize::new(0)),
        refuses_conflict: Arc::new(AtomicBool::new(false)),
        new_head_each_time: false,
    };
    let (unjudged, valid) = (script(pair_wire(&later_a, &later_b)), script(pair_wire(&x, &y)));
    // The forger claims another hash of version 1 at every pull, so it is asked again each time
    // (one penalty may be offset by what the peer earned before; three in a row ban).
    let forged = Script { new_head_each_time: true, ..script(pair_wire(&x, &short)) };

    let (_forger, stop_1) = raw_member(&fed, 1, forged.clone()).await;
    wait_until("member 0 penalises the member serving a forged pair", LIMIT, || async {
        penalised(&fed, 0, peer(&fed, 1)).await
    })
    .await
    .unwrap();
    assert!(forged.asked.load(Ordering::SeqCst) >= 1);
    assert_eq!(held_conflict(&fed, 0), None, "a forged pair is not kept");
    assert!(fed.node(0).unwrap().roster_alarms().is_empty());

    let (_unjudged, stop_2) = raw_member(&fed, 2, unjudged.clone()).await;
    wait_until("member 0 asks the member holding a later pair", LIMIT, || async {
        unjudged.asked.load(Ordering::SeqCst) >= 1
    })
    .await
    .unwrap();
    // Asked once per roster head while connected, not at every pull (the federation pulls
    // every 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(unjudged.asked.load(Ordering::SeqCst), 1, "asked again at its head");
    assert!(!penalised(&fed, 0, peer(&fed, 2)).await, "a pair it cannot judge was penalised");
    assert_eq!(held_conflict(&fed, 0), None, "a pair it cannot judge is not kept");

    let (_valid, stop_3) = raw_member(&fed, 3, valid.clone()).await;
    wait_until("member 0 takes the valid pair", LIMIT, || async {
        held_conflict(&fed, 0).is_some()
    })
    .await
    .unwrap();
    assert_eq!(held_conflict(&fed, 0), Some((2, sorted(&x, &y))));
    assert!(fed.node(0).unwrap().roster_alarms().contains(&"conflict"));
    assert_eq!(fed.node(0).unwrap().roster_identity(), (1, v1.hash()), "neither adopted");
    assert!(!penalised(&fed, 0, peer(&fed, 2)).await, "a pair it cannot judge was penalised");
    assert!(!penalised(&fed, 0, peer(&fed, 3)).await, "a valid pair was penalised");
    for stop in [stop_1, stop_2, stop_3] {
        let _ = stop.send(true);
    }
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_sees_both_successors_before_adopting_either_adopts_neither() {
    // n = 3, k = 2. Member 0 runs version 1; raw member 2 runs version 2 = y (noted as its
    // announcement would be; it refuses `roster_head`, so no pull from it fetches y); raw
    // member 1 runs version 2 = x and serves it. Neither holds evidence. Before adopting x,
    // member 0 fetches y from member 2, proves the conflict and adopts neither.
    let (_dir, mut fed, v1, x, y) = forked_three("conflict-contest");
    fed.set_signed_roster(0, Some(v1.clone()));
    fed.start(0).await.unwrap();
    let side = |head, roster: &SignedRoster| Script {
        head,
        evidence: vec![],
        rosters: vec![v1.clone(), roster.clone()],
        asked: Arc::new(AtomicUsize::new(0)),
        refuses_conflict: Arc::new(AtomicBool::new(false)),
        new_head_each_time: false,
    };
    let (_holder_of_y, stop_2) = raw_member(&fed, 2, side(None, &y)).await;
    fed.node(0).unwrap().note_peer_roster(peer(&fed, 2), (2, y.hash()));
    let (_holder_of_x, stop_1) = raw_member(&fed, 1, side(Some((2, x.hash())), &x)).await;
    wait_until("member 0 proves the conflict", LIMIT, || async {
        held_conflict(&fed, 0).is_some()
    })
    .await
    .unwrap();
    assert_eq!(held_conflict(&fed, 0), Some((2, sorted(&x, &y))));
    let watch_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < watch_until {
        assert_eq!(fed.node(0).unwrap().roster_identity(), (1, v1.hash()), "a side adopted");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(fed.node(0).unwrap().roster_alarms().contains(&"conflict"));
    for i in [1, 2] {
        assert!(!penalised(&fed, 0, peer(&fed, i)).await, "member {i} penalised");
    }
    for stop in [stop_1, stop_2] {
        let _ = stop.send(true);
    }
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_refuses_the_conflict_request_is_not_followed_to_a_newer_roster() {
    // n = 3, k = 2. Member 0 runs version 1; raw member 1 runs a valid version 2 and serves
    // it, but refuses `roster_conflict` (busy). Member 0 asks it at several pulls and fetches
    // nothing newer from it (the check fails closed), with no penalty; once it answers, member
    // 0 adopts version 2 from it.
    let (_dir, mut fed) = federation("conflict-refused", 3);
    let expires = now_ms() + 365 * DAY_MS;
    let v1 = fed.sign_roster(fed.roster_body(&[0, 1, 2], 1, 2, expires), &[0, 1, 2]);
    let v2 = fed.sign_roster(fed.roster_body(&[0, 1, 2], 2, 2, expires + DAY_MS), &[0, 1]);
    fed.set_signed_roster(0, Some(v1.clone()));
    fed.start(0).await.unwrap();
    let script = Script {
        head: Some((2, v2.hash())),
        evidence: vec![],
        rosters: vec![v1.clone(), v2.clone()],
        asked: Arc::new(AtomicUsize::new(0)),
        refuses_conflict: Arc::new(AtomicBool::new(true)),
        new_head_each_time: false,
    };
    let (_holder, stop) = raw_member(&fed, 1, script.clone()).await;
    // Each pull asks again (a refusal is no answer), and each sees version 2 at the head.
    wait_until("member 0 asks the refusing member at three pulls", LIMIT, || async {
        script.asked.load(Ordering::SeqCst) >= 3
    })
    .await
    .unwrap();
    assert_eq!(
        fed.node(0).unwrap().roster_identity(),
        (1, v1.hash()),
        "a newer roster was fetched from a peer that did not answer roster_conflict"
    );
    assert!(!penalised(&fed, 0, peer(&fed, 1)).await, "a refusal was penalised");

    script.refuses_conflict.store(false, Ordering::SeqCst);
    wait_until("member 0 adopts version 2 once the peer answers", LIMIT, || async {
        fed.node(0).unwrap().roster_identity() == (2, v2.hash())
    })
    .await
    .unwrap();
    assert!(!penalised(&fed, 0, peer(&fed, 1)).await, "member 1 penalised");
    let _ = stop.send(true);
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_file_of_the_stored_version_with_another_hash_is_checked_as_a_conflict_at_start() {
    // n = 3, k = 2. Member 0 adopts x (version 2) by a post, alone; restarted with y (another
    // valid version 2) as its roster file, it keeps x, proves the conflict against its stored
    // version 1 and raises the alarm, which survives the next restart.
    let (_dir, mut fed, v1, x, y) = forked_three("conflict-at-start");
    fed.set_signed_roster(0, Some(v1.clone()));
    fed.start(0).await.unwrap();
    let port = serve(fed.node(0).unwrap()).await;
    assert_eq!(post_roster(port, &x).await.status, 200);
    assert_eq!(held_conflict(&fed, 0), None);
    fed.stop(0).await.unwrap();
    fed.set_signed_roster(0, Some(y.clone()));
    fed.start(0).await.unwrap();
    assert_eq!(fed.node(0).unwrap().roster_identity(), (2, x.hash()), "the stored one is kept");
    assert_eq!(held_conflict(&fed, 0), Some((2, sorted(&x, &y))));
    assert!(fed.node(0).unwrap().roster_alarms().contains(&"conflict"));
    // Stored as evidence: held again at the next start, given the adopted roster.
    fed.stop(0).await.unwrap();
    fed.set_signed_roster(0, Some(x.clone()));
    fed.start(0).await.unwrap();
    assert_eq!(held_conflict(&fed, 0), Some((2, sorted(&x, &y))));
    fed.stop_all().await.unwrap();
}
