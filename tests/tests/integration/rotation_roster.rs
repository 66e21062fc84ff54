//! A roster's rotation drives the engine's: three members, one removed by a rotation roster
//! (new epoch, new secret) posted through `POST /v1/roster` at the two that remain, the new
//! secret posted sealed through `POST /v1/secret`, under a steady stream of adds. Alerts keep
//! their ids, no match is lost or duplicated, the departed member's new adds match nothing,
//! and the member that got the roster but not yet the secret alarms (`/readyz` degraded) and
//! keeps matching on the old epoch until its secret comes, then rotates, also across a
//! restart. Also: a node given the rotation roster with only the old secret runs the old
//! epoch; a secret its roster does not name is refused at start; two rotation rosters adopted
//! before their secrets are carried out in turn; a node waiting for a secret verifies each
//! roster version once, at its adoption, not at every check of the wait.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossmatch_node::daemon::{Adopter, Node};
use crossmatch_node::local::wait_until;
use crossmatch_node::test_support::{account, federation, http, record};
use crossmatch_protocol::{
    FederationSecret, RosterBody, Rotation, SignedRoster, seal_secret, secret_fingerprint,
};

use crossmatch_node::clock::DAY_MS;

use super::api_client::{ADMIN, MONITOR, error_code, now_ms, request_typed, serve};
const LIMIT: Duration = Duration::from_secs(90);
const OLD_SECRET: FederationSecret = FederationSecret::from_bytes([0x17; 32]);
const NEW_SECRET: FederationSecret = FederationSecret::from_bytes([0x71; 32]);

/// One request with a body the node reads by its bytes, off the async workers.
async fn request(
    port: u16,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Vec<u8>>,
) -> http::Reply {
    request_typed(port, method, path, bearer, "application/octet-stream", body).await
}

/// The rotation roster: version 2 of `members`, epoch 2 under the new secret, changing over
/// at once, with a grace period of `grace_ms`.
fn rotation_roster(
    fed: &crossmatch_node::local::LocalFederation,
    members: &[usize],
    grace_ms: u64,
) -> RosterBody {
    let mut body = fed.roster_body(members, 2, 2, now_ms() + 365 * DAY_MS);
    body.epoch = 2;
    body.secret_fingerprint = secret_fingerprint(&NEW_SECRET);
    body.rotation = Some(Rotation {
        previous_epoch: 1,
        previous_secret_fingerprint: secret_fingerprint(&OLD_SECRET),
        changeover_at_ms: now_ms(),
        grace_ms,
    });
    body
}

/// The sealed copy of `secret` for member `i`, as the text `crossmatch secret seal` writes.
fn sealed_for(
    fed: &crossmatch_node::local::LocalFederation,
    i: usize,
    secret: &FederationSecret,
    epoch: u32,
) -> Vec<u8> {
    let member = &fed.members()[i];
    let sealed = seal_secret(
        secret,
        &fed.federation_id(),
        epoch,
        &member.id,
        &member.key.public_key().to_x25519(),
        &[i as u8 + 90; 32],
    )
    .unwrap();
    let hex: String = sealed.to_wire().iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{hex}\n").into_bytes()
}

/// Alerts by record at member `i`: record id → (alert id, counterparts).
async fn alerts_by_record(node: &Node) -> BTreeMap<u64, (u64, usize)> {
    let alerts = node.with_engine(|e| e.alerts(None, None).unwrap()).await.unwrap();
    let mut by_record = BTreeMap::new();
    for alert in alerts {
        for record in &alert.records {
            let previous = by_record.insert(*record, (alert.id, alert.counterparts.len()));
            assert!(previous.is_none(), "a record with two alerts");
        }
    }
    by_record
}

async fn epoch(node: &Node) -> u32 {
    node.with_engine(|e| e.epoch()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_roster_rotates_the_remaining_members_under_load() {
    let (_dir, mut fed) = federation("roster-rotation", 3);
    let v1 =
        fed.sign_roster(fed.roster_body(&[0, 1, 2], 1, 2, now_ms() + 365 * DAY_MS), &[0, 1, 2]);
    for i in 0..3 {
        fed.set_signed_roster(i, Some(v1.clone()));
    }
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let (a, b, departed) = (0, 1, 2);
    let port_a = serve(fed.node(a).unwrap()).await;
    let port_b = serve(fed.node(b).unwrap()).await;

    // Matches before the rotation: pre_i at a and b (and at the departed member for i < 2).
    let mut before_a = Vec::new();
    for i in 0..4 {
        let handle = format!("pre_{i}");
        before_a.push(
            fed.node(a).unwrap().add_record(record(&[&handle], true), "ana".into()).await.unwrap(),
        );
        fed.node(b).unwrap().add_record(record(&[&handle], true), "ana".into()).await.unwrap();
    }
    wait_until("the matches before the rotation", LIMIT, || async {
        let at_a = alerts_by_record(fed.node(a).unwrap()).await;
        before_a.iter().all(|id| at_a.contains_key(id))
    })
    .await
    .unwrap();
    let alert_ids_before = alerts_by_record(fed.node(a).unwrap()).await;

    // A steady stream of adds at a, half of them also at b, through the whole rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let streamed = Arc::new(AtomicU64::new(0));
    let stream = {
        let (node_a, node_b) = (fed.node(a).unwrap().clone(), fed.node(b).unwrap().clone());
        let (stop, streamed) = (stop.clone(), streamed.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let handle = format!("stream_{i}");
                let id = node_a.add_record(record(&[&handle], true), "ana".into()).await.unwrap();
                if i.is_multiple_of(2) {
                    node_b.add_record(record(&[&handle], true), "ana".into()).await.unwrap();
                }
                ids.push((i, id));
                i += 1;
                streamed.store(i, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ids
        })
    };
    wait_until("the stream runs", LIMIT, || async { streamed.load(Ordering::Relaxed) >= 10 })
        .await
        .unwrap();

    // The rotation roster removes the departed member; a and b adopt it, only a gets the secret.
    let v2 = fed.sign_roster(rotation_roster(&fed, &[a, b], DAY_MS), &[0, 1]);
    for port in [port_a, port_b] {
        let adopted = request(port, "POST", "/v1/roster", ADMIN, Some(v2.to_wire())).await;
        assert_eq!(adopted.status, 200, "{}", adopted.body);
    }
    let degraded = request(port_a, "GET", "/readyz", MONITOR, None).await;
    assert_eq!(degraded.body, "ready, degraded: roster secret_missing\n");
    let posted =
        request(port_a, "POST", "/v1/secret", ADMIN, Some(sealed_for(&fed, a, &NEW_SECRET, 2)))
            .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert_eq!(posted.json()["rotation_alarm"], serde_json::Value::Null);
    wait_until("a switches to epoch 2", LIMIT, || async { epoch(fed.node(a).unwrap()).await == 2 })
        .await
        .unwrap();
    let ready = request(port_a, "GET", "/readyz", MONITOR, None).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    // b has the roster but not the secret: alarmed, on epoch 1, and still matching there.
    let degraded = request(port_b, "GET", "/readyz", MONITOR, None).await;
    assert_eq!(
        (degraded.status, degraded.body.as_str()),
        (200, "ready, degraded: roster secret_missing\n")
    );
    let metrics = request(port_b, "GET", "/metrics", MONITOR, None).await;
    assert!(metrics.body.contains("crossmatch_rotation_alarm 1\n"), "{}", metrics.body);
    assert_eq!(epoch(fed.node(b).unwrap()).await, 1);
    let late =
        fed.node(b).unwrap().add_record(record(&["pre_0"], true), "ana".into()).await.unwrap();
    wait_until("b matches a's old-epoch add while it waits for the secret", LIMIT, || async {
        alerts_by_record(fed.node(b).unwrap()).await.contains_key(&late)
    })
    .await
    .unwrap();

    // b's secret: refused when it is not b's, or not the roster's; taken, then b rotates.
    let wrong_member =
        request(port_b, "POST", "/v1/secret", ADMIN, Some(sealed_for(&fed, a, &NEW_SECRET, 2)))
            .await;
    assert_eq!((wrong_member.status, error_code(&wrong_member)), (400, "not_for_this_node".into()));
    let wrong_secret = request(
        port_b,
        "POST",
        "/v1/secret",
        ADMIN,
        Some(sealed_for(&fed, b, &FederationSecret::from_bytes([9; 32]), 2)),
    )
    .await;
    assert_eq!(
        (wrong_secret.status, error_code(&wrong_secret)),
        (400, "fingerprint_mismatch".into())
    );
    let posted =
        request(port_b, "POST", "/v1/secret", ADMIN, Some(sealed_for(&fed, b, &NEW_SECRET, 2)))
            .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    wait_until("b switches to epoch 2", LIMIT, || async { epoch(fed.node(b).unwrap()).await == 2 })
        .await
        .unwrap();

    // Stop the stream a while after both switched, then check every match.
    let at_switch = streamed.load(Ordering::Relaxed);
    wait_until("the stream goes on after the switch", LIMIT, || async {
        streamed.load(Ordering::Relaxed) >= at_switch + 10
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let ids = tokio::time::timeout(LIMIT, stream).await.unwrap().unwrap();
    wait_until("every streamed match, once", LIMIT, || async {
        let at_a = alerts_by_record(fed.node(a).unwrap()).await;
        ids.iter().all(|(i, id)| i.is_multiple_of(2) == at_a.contains_key(id))
    })
    .await
    .unwrap();
    let at_a = alerts_by_record(fed.node(a).unwrap()).await;
    for (i, id) in &ids {
        if i.is_multiple_of(2) {
            assert_eq!(at_a[id].1, 1, "stream_{i}: one counterpart, b");
        }
    }
    for (record, (alert, _)) in &alert_ids_before {
        assert_eq!(at_a[record].0, *alert, "an alert kept its id across the rotation");
    }
    assert_eq!(at_a[&ids[0].1].1, 1, "stream_0: b alone");

    // The departed member's new adds (under the old epoch) match nothing after the changeover,
    // while a match between a and b made at the same time does.
    let node = |i: usize| fed.node(i).unwrap();
    let departed_match =
        node(a).add_record(record(&["after_0"], true), "ana".into()).await.unwrap();
    node(departed).add_record(record(&["after_0"], true), "ana".into()).await.unwrap();
    let control = node(a).add_record(record(&["after_1"], true), "ana".into()).await.unwrap();
    node(departed).add_record(record(&["after_1"], true), "ana".into()).await.unwrap();
    node(b).add_record(record(&["after_1"], true), "ana".into()).await.unwrap();
    wait_until("a and b match after the changeover", LIMIT, || async {
        alerts_by_record(node(a)).await.contains_key(&control)
    })
    .await
    .unwrap();
    let at_a = alerts_by_record(node(a)).await;
    assert!(!at_a.contains_key(&departed_match), "the departed member's add matched");
    assert_eq!(at_a[&control].1, 1, "after_1: b alone, not the departed member");
    // Its batches reach nobody (it is off the roster), and were one relayed, its tokens are of
    // the old epoch: without the new secret it cannot compute the token a and b now share.
    let token_of = |i: usize| {
        let canonical = account("after_0");
        async move { node(i).with_engine(move |e| e.token(&canonical)).await.unwrap() }
    };
    assert_eq!(epoch(node(departed)).await, 1);
    assert_ne!(token_of(departed).await, token_of(a).await);
    assert_eq!(token_of(a).await, token_of(b).await);

    // A restart keeps the new epoch (the config's secret is the old one; the held one wins),
    // and begins no second rotation.
    fed.stop(b).await.unwrap();
    fed.start(b).await.unwrap();
    assert_eq!(epoch(fed.node(b).unwrap()).await, 2);
    assert_eq!(fed.node(b).unwrap().rotation_alarm(), None);
    let audit = std::fs::read_to_string(fed.data_dir(b).join("audit").join("audit.log"))
        .unwrap_or_default();
    assert_eq!(audit.matches("\tbegin_rotation\t").count(), 1, "{audit}");
    assert_eq!(audit.matches("\topen_secret\t").count(), 1, "{audit}");
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_endpoint_refuses_bad_input_and_a_dropped_file_is_taken() {
    let (_dir, mut fed) = federation("secret-endpoint", 2);
    let v1 = fed.sign_roster(fed.roster_body(&[0, 1], 1, 2, now_ms() + 365 * DAY_MS), &[0, 1]);
    for i in 0..2 {
        fed.set_signed_roster(i, Some(v1.clone()));
    }
    fed.start(0).await.unwrap();
    let port = serve(fed.node(0).unwrap()).await;
    let sealed = sealed_for(&fed, 0, &NEW_SECRET, 2);

    let forbidden = request(port, "POST", "/v1/secret", MONITOR, Some(sealed.clone())).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    let garbage = request(port, "POST", "/v1/secret", ADMIN, Some(b"garbage".to_vec())).await;
    assert_eq!((garbage.status, error_code(&garbage)), (400, "invalid_sealed_secret".into()));
    // Before the roster names epoch 2, its secret is refused.
    let early = request(port, "POST", "/v1/secret", ADMIN, Some(sealed.clone())).await;
    assert_eq!((early.status, error_code(&early)), (409, "unknown_epoch".into()));
    // A roster that bumps the epoch without a rotation block is refused by the protocol; one
    // whose rotation does not start from the node's secret is adopted, alarmed, never rotated.
    let mut mismatched = rotation_roster(&fed, &[0, 1], 2_000);
    if let Some(rotation) = &mut mismatched.rotation {
        rotation.previous_secret_fingerprint =
            secret_fingerprint(&FederationSecret::from_bytes([3; 32]));
    }
    let refused = fed.sign_roster(mismatched, &[0, 1]);
    let posted = request(port, "POST", "/v1/roster", ADMIN, Some(refused.to_wire())).await;
    assert_eq!((posted.status, error_code(&posted)), (400, "invalid_roster".into()));

    // A grace period of two seconds: the rotation ends soon after the changeover.
    let v2: SignedRoster = fed.sign_roster(rotation_roster(&fed, &[0, 1], 2_000), &[0, 1]);
    let adopted = request(port, "POST", "/v1/roster", ADMIN, Some(v2.to_wire())).await;
    assert_eq!(adopted.status, 200, "{}", adopted.body);
    assert_eq!(fed.node(0).unwrap().rotation_alarm(), Some("secret_missing"));
    // The sealed file dropped into the state directory is taken at the next tick.
    let dropped = fed.data_dir(0).join("secrets").join("M0.sealed");
    std::fs::write(&dropped, &sealed).unwrap();
    wait_until("the dropped secret is taken and the rotation begins", LIMIT, || async {
        fed.node(0).unwrap().rotation_alarm().is_none() && !dropped.exists()
    })
    .await
    .unwrap();
    wait_until("the node switches", LIMIT, || async { epoch(fed.node(0).unwrap()).await == 2 })
        .await
        .unwrap();
    let held = fed.data_dir(0).join("secrets").join("epoch-2.secret");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&held).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // Posted again: held already.
    let again = request(port, "POST", "/v1/secret", ADMIN, Some(sealed)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["held_already"], true);
    // Once the rotation is over (the plan and its secrets gone), a restart opens the engine
    // with the held secret of epoch 2, though the config's secret is epoch 1's.
    wait_until("the rotation ends", LIMIT, || async {
        fed.node(0).unwrap().with_engine(|e| e.rotation_view()).await.unwrap().is_none()
    })
    .await
    .unwrap();
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    assert_eq!(epoch(fed.node(0).unwrap()).await, 2);
    assert_eq!(fed.node(0).unwrap().rotation_alarm(), None);
    fed.stop_all().await.unwrap();
}

/// A node given a rotation roster (one version ahead of its stored roster) and only the old
/// secret runs the old epoch (the config's secret runs the epoch whose fingerprint it has) and
/// alarms `secret_missing`, never the new epoch under the old secret; a node whose secret is
/// not the one its roster names for the epoch it would run refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_roster_with_only_the_old_secret_runs_the_old_epoch() {
    let (_dir, mut fed) = federation("rotation-old-secret", 2);
    let v1 = fed.sign_roster(fed.roster_body(&[0, 1], 1, 2, now_ms() + 365 * DAY_MS), &[0, 1]);
    fed.set_signed_roster(0, Some(v1.clone()));
    fed.start(0).await.unwrap();
    let added = fed.node(0).unwrap().add_record(record(&["old_0"], true), "ana".into()).await;
    added.unwrap();
    fed.stop(0).await.unwrap();

    // The roster file is now the rotation roster; the secret file still the old secret.
    let v2 = fed.sign_roster(rotation_roster(&fed, &[0, 1], DAY_MS), &[0, 1]);
    assert_eq!(crossmatch_node::config::configured_epoch(&v2.body, &OLD_SECRET), 1);
    assert_eq!(crossmatch_node::config::configured_epoch(&v2.body, &NEW_SECRET), 2);
    fed.set_signed_roster(0, Some(v2));
    fed.start(0).await.unwrap();
    let node = fed.node(0).unwrap();
    assert_eq!(node.roster_view().unwrap().version, 2);
    assert_eq!(epoch(node).await, 1);
    assert_eq!(node.rotation_alarm(), Some("secret_missing"));
    // The new secret comes, posted eight times at once: taken once (one intake at a time),
    // and the node rotates.
    let sealed = sealed_for(&fed, 0, &NEW_SECRET, 2);
    let takes: Vec<_> = (0..8)
        .map(|_| {
            let (node, sealed) = (node.clone(), sealed.clone());
            tokio::spawn(async move { node.take_secret(&sealed, Adopter::Node).await })
        })
        .collect();
    let mut fresh = 0;
    for take in takes {
        fresh += usize::from(!take.await.unwrap().unwrap().held_already);
    }
    assert_eq!(fresh, 1, "one intake took it, the others found it held");
    wait_until("the node switches", LIMIT, || async { epoch(fed.node(0).unwrap()).await == 2 })
        .await
        .unwrap();
    let audit = std::fs::read_to_string(fed.data_dir(0).join("audit").join("audit.log")).unwrap();
    assert_eq!(audit.matches("\topen_secret\t").count(), 1, "{audit}");
    fed.stop(0).await.unwrap();

    // A roster naming another secret for epoch 1 than the node's: refused at start.
    let mut other = fed.roster_body(&[0, 1], 1, 2, now_ms() + 365 * DAY_MS);
    other.secret_fingerprint = secret_fingerprint(&FederationSecret::from_bytes([5; 32]));
    fed.set_signed_roster(1, Some(fed.sign_roster(other, &[0, 1])));
    let refused = fed.start(1).await.map(|_| ()).unwrap_err().to_string();
    assert!(refused.contains("is not the one the adopted roster names for it"), "{refused}");
    assert!(fed.node(1).is_err());
}

/// Two rotation rosters adopted before the first secret comes (epoch 1 → 2, then 2 → 3): the
/// node carries out the first once its secret is held, alarms `previous_rotation_under_way`
/// through its grace period, then carries out the second; once that is over, the held secret
/// of epoch 2 is deleted. On a manual clock, so the grace periods end when the test says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotation_rosters_adopted_before_the_secrets_are_carried_out_in_turn() {
    let (_dir, mut fed) = federation("rotation-two", 2);
    let start = now_ms();
    let clock = Arc::new(crossmatch_node::test_support::ManualClock::new(start));
    fed.set_clock(0, clock.clone());
    let expires = start + 365 * DAY_MS;
    let v1 = fed.sign_roster(fed.roster_body(&[0, 1], 1, 2, expires), &[0, 1]);
    fed.set_signed_roster(0, Some(v1));
    fed.start(0).await.unwrap();
    let node = fed.node(0).unwrap().clone();
    let kept = node.add_record(record(&["kept_0"], true), "ana".into()).await.unwrap();

    let third = FederationSecret::from_bytes([0x33; 32]);
    let grace_ms = 60_000;
    let mut v2 = rotation_roster(&fed, &[0, 1], grace_ms);
    v2.expires_at_ms = expires;
    if let Some(rotation) = &mut v2.rotation {
        rotation.changeover_at_ms = start;
    }
    let mut v3 = fed.roster_body(&[0, 1], 3, 2, expires);
    v3.epoch = 3;
    v3.secret_fingerprint = secret_fingerprint(&third);
    v3.rotation = Some(Rotation {
        previous_epoch: 2,
        previous_secret_fingerprint: secret_fingerprint(&NEW_SECRET),
        changeover_at_ms: start,
        grace_ms,
    });
    for body in [v2, v3] {
        let signed = fed.sign_roster(body, &[0, 1]);
        node.adopt_roster(signed, Vec::new(), Adopter::Node).await.unwrap();
    }
    assert_eq!(node.rotation_alarm(), Some("secret_missing"));
    // Epoch 3's secret first: the rotation from the node's epoch still waits for epoch 2's.
    node.take_secret(&sealed_for(&fed, 0, &third, 3), Adopter::Node).await.unwrap();
    assert_eq!(node.rotation_alarm(), Some("secret_missing"));
    assert_eq!(epoch(&node).await, 1);
    node.take_secret(&sealed_for(&fed, 0, &NEW_SECRET, 2), Adopter::Node).await.unwrap();
    wait_until("epoch 2, the next rotation waiting for the grace period", LIMIT, || async {
        epoch(&node).await == 2 && node.rotation_alarm() == Some("previous_rotation_under_way")
    })
    .await
    .unwrap();

    // The grace period of the first rotation ends: the second is carried out.
    clock.advance(grace_ms + 1);
    wait_until("epoch 3, no alarm", LIMIT, || async {
        epoch(&node).await == 3 && node.rotation_alarm().is_none()
    })
    .await
    .unwrap();
    // Its changeover and grace period are past already: once it is over, epoch 2's secret goes.
    let secrets = fed.data_dir(0).join("secrets");
    wait_until("the rotation to epoch 3 is over and epoch 2's secret deleted", LIMIT, || async {
        let over = node.with_engine(|e| e.rotation_view()).await.unwrap().is_none();
        over && !secrets.join("epoch-2.secret").exists()
    })
    .await
    .unwrap();
    assert!(secrets.join("epoch-3.secret").exists());
    let alerts = node.with_engine(|e| e.alerts(None, None).unwrap()).await.unwrap();
    assert!(alerts.iter().all(|alert| !alert.records.contains(&kept)), "no counterpart");

    // A restart runs epoch 3 with its held secret (the config's is epoch 1's).
    drop(node);
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    assert_eq!(epoch(fed.node(0).unwrap()).await, 3);
    assert_eq!(fed.node(0).unwrap().rotation_alarm(), None);
    let audit = std::fs::read_to_string(fed.data_dir(0).join("audit").join("audit.log")).unwrap();
    assert_eq!(audit.matches("\tbegin_rotation\t").count(), 2, "{audit}");
    assert_eq!(audit.matches("\topen_secret\t").count(), 2, "{audit}");
    fed.stop_all().await.unwrap();
}

/// A node that waits for a rotation's secret does not verify its roster chain again per check:
/// the chain is verified once at start and each adoption verifies its one new version, however
/// often the wait is checked (here twenty intakes of a secret the node holds already, each
/// followed by the rotation check the timer also runs, and each asking the chain which
/// fingerprint it names for the secret's epoch) and however far back the rotation roster is.
/// Counted, not timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waiting_for_a_secret_verifies_its_chain_once_per_adoption() {
    let (_dir, mut fed) = federation("rotation-wait", 2);
    let expires = now_ms() + 365 * DAY_MS;
    let v1 = fed.sign_roster(fed.roster_body(&[0, 1], 1, 2, expires), &[0, 1]);
    fed.set_signed_roster(0, Some(v1));
    fed.start(0).await.unwrap();
    let node = fed.node(0).unwrap().clone();
    assert_eq!(node.roster_verifications(), 1, "the founding roster, once");

    // Version 2 rotates to epoch 2; versions 3 to 5 keep epoch 2 without a rotation block, so
    // the rotation the node waits for is three versions back.
    let signed = fed.sign_roster(rotation_roster(&fed, &[0, 1], DAY_MS), &[0, 1]);
    node.adopt_roster(signed, Vec::new(), Adopter::Node).await.unwrap();
    let later = |version: u64| {
        let mut body = fed.roster_body(&[0, 1], version, 2, expires);
        body.epoch = 2;
        body.secret_fingerprint = secret_fingerprint(&NEW_SECRET);
        fed.sign_roster(body, &[0, 1])
    };
    for version in 3..=5 {
        node.adopt_roster(later(version), Vec::new(), Adopter::Node).await.unwrap();
    }
    assert_eq!(node.roster_verifications(), 5, "one verification per adoption");
    assert_eq!(node.rotation_alarm(), Some("secret_missing"));

    let old_sealed = sealed_for(&fed, 0, &OLD_SECRET, 1);
    for _ in 0..20 {
        let taken = node.take_secret(&old_sealed, Adopter::Node).await.unwrap();
        assert!(taken.held_already);
        assert_eq!(node.rotation_alarm(), Some("secret_missing"));
    }
    assert_eq!(node.roster_verifications(), 5, "the wait verified nothing again");

    // The next adoption verifies its one version; the secret then comes and the node rotates
    // with no verification more.
    node.adopt_roster(later(6), Vec::new(), Adopter::Node).await.unwrap();
    assert_eq!(node.roster_verifications(), 6);
    node.take_secret(&sealed_for(&fed, 0, &NEW_SECRET, 2), Adopter::Node).await.unwrap();
    wait_until("the node switches", LIMIT, || async { epoch(&node).await == 2 }).await.unwrap();
    assert_eq!(node.rotation_alarm(), None);
    assert_eq!(node.roster_verifications(), 6);

    // A restart verifies the stored chain once, in one pass: six versions.
    drop(node);
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    let node = fed.node(0).unwrap();
    assert_eq!(node.roster_verifications(), 6, "one forward pass over six versions");
    assert_eq!(epoch(node).await, 2);
    fed.stop_all().await.unwrap();
}
