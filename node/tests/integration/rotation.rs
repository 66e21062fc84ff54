//! Rotation of the secret and epoch, at the engine with injected clocks: matches and alert ids
//! kept across the changeover while adds keep flowing, a departed member's tokens, a node
//! without the new secret, a crash while tokenising again, the purge at the grace period's end,
//! and republication past a peer's daily quota.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::rotation::{REPUBLICATION_MARGIN_ENTRIES, Stage};
use crossmatch_node::engine::{Engine, EngineConfig, IngestOutcome, Rotation};
use crossmatch_node::store::{Alert, AlertState, Record, RemoteAdd, keys};
use crossmatch_node::test_support::{
    FEDERATION, ManualClock, SECRET, T0, TempDir, account, record_until,
};
use crossmatch_protocol::{EpochKey, FederationSecret, RetractReason, Token};

const NEW_SECRET: FederationSecret = FederationSecret::from_bytes([0x77; 32]);
const HOUR: u64 = 3_600_000;
const GRACE: u64 = 2 * DAY_MS;

struct Node {
    engine: Engine,
    clock: Arc<ManualClock>,
    dir: TempDir,
}

fn node_with(config: EngineConfig, name: &str) -> Node {
    let dir = TempDir::new(&format!("rotation-{name}"));
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Engine::open(dir.path(), config, clock.clone()).unwrap();
    Node { engine, clock, dir }
}

fn node(n: u8, name: &str) -> Node {
    node_with(EngineConfig::for_test(n), name)
}

/// The rotation to epoch 2 under [`NEW_SECRET`], changing over at `changeover_at_ms`.
fn rotation(changeover_at_ms: u64) -> Rotation {
    Rotation { new_epoch: 2, new_secret: NEW_SECRET, changeover_at_ms, grace_ms: GRACE }
}

fn share(node: &mut Node, handles: &[&str]) -> u64 {
    let until = T0 + 90 * DAY_MS;
    node.engine.add_record(record_until(handles, true, until), "ana").unwrap()
}

fn publish(node: &mut Node) -> Vec<Vec<u8>> {
    node.engine.publish().unwrap().iter().map(|b| b.to_wire()).collect()
}

fn deliver(to: &mut Node, wires: &[Vec<u8>]) -> Vec<IngestOutcome> {
    wires.iter().map(|wire| to.engine.ingest(wire).unwrap()).collect()
}

/// Alerts by the records they are for: (id, state, counterpart count).
fn alerts_by_record(node: &Node) -> BTreeMap<Vec<u64>, Vec<(u64, AlertState, usize)>> {
    let mut out: BTreeMap<Vec<u64>, Vec<(u64, AlertState, usize)>> = BTreeMap::new();
    for alert in node.engine.alerts(None, None).unwrap() {
        out.entry(alert.records.clone()).or_default().push((
            alert.id,
            alert.state,
            alert.counterparts.len(),
        ));
    }
    out
}

/// The live remote adds (`t`) by epoch.
fn remote_adds_by_epoch(node: &Node) -> BTreeMap<u32, usize> {
    let mut out = BTreeMap::new();
    for (_, add) in node.engine.store().scan::<RemoteAdd>(&keys::all_remote_adds()).unwrap() {
        *out.entry(add.epoch).or_insert(0) += 1;
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn old_token(handle: &str) -> Token {
    EpochKey::derive(&FEDERATION, &SECRET, 1).token(&account(handle))
}

fn new_token(handle: &str) -> Token {
    EpochKey::derive(&FEDERATION, &NEW_SECRET, 2).token(&account(handle))
}

#[test]
fn matches_and_alert_ids_survive_a_rotation_under_load() {
    let mut a = node(1, "load-a");
    let mut b = node(2, "load-b");
    let handles: Vec<String> = (0..40).map(|i| format!("shared_{i}")).collect();
    for handle in &handles {
        share(&mut a, &[handle]);
        share(&mut b, &[handle]);
    }
    let (from_a, from_b) = (publish(&mut a), publish(&mut b));
    deliver(&mut b, &from_a);
    deliver(&mut a, &from_b);
    let before_a = alerts_by_record(&a);
    let before_b = alerts_by_record(&b);
    assert_eq!(before_a.len(), 40);
    assert!(before_a.values().all(|alerts| alerts.len() == 1 && alerts[0].2 == 1));

    // Both plan the rotation; nothing changes before the changeover.
    let changeover = T0 + HOUR;
    for n in [&mut a, &mut b] {
        let view = n.engine.begin_rotation(rotation(changeover)).unwrap().unwrap();
        assert_eq!(view.stage, Stage::Planned);
        assert_eq!(n.engine.epoch(), 1);
    }
    // Adds keep flowing across the changeover: one before it, matched at both.
    share(&mut a, &["pre_change"]);
    share(&mut b, &["pre_change"]);

    // A changes over first and publishes: its new add first, then its republished feed.
    a.clock.set(changeover + 1);
    b.clock.set(changeover + 1);
    share(&mut a, &["post_change"]);
    let from_a = publish(&mut a);
    assert_eq!(a.engine.epoch(), 2, "the publish step changed A over");
    assert!(!a.engine.republishing(), "the whole feed went out");
    // B is not past its own changeover step yet: A's new-epoch adds are kept, nothing changes.
    let outcomes = deliver(&mut b, &from_a);
    assert!(outcomes.iter().all(|o| matches!(o, IngestOutcome::Applied { .. })), "{outcomes:?}");
    assert_eq!(b.engine.epoch(), 1);
    let pending = remote_adds_by_epoch(&b);
    assert!(pending.get(&2).copied().unwrap_or(0) >= 41, "{pending:?}");

    // B changes over: its stored epoch-2 adds of A match at once, under the same alert ids.
    share(&mut b, &["post_change"]);
    let from_b = publish(&mut b);
    assert_eq!(b.engine.epoch(), 2);
    deliver(&mut a, &from_b);
    for (node, before) in [(&a, &before_a), (&b, &before_b)] {
        let after = alerts_by_record(node);
        for (records, alerts) in before {
            let now = &after[records];
            assert_eq!(now.len(), 1, "one alert per record, no duplicate");
            assert_eq!(now[0].0, alerts[0].0, "the alert keeps its id");
            assert_eq!(now[0].1, AlertState::Open, "never closed and reopened");
            assert_eq!(now[0].2, 1, "one counterpart, whichever epoch");
        }
        assert_eq!(after.len(), 42, "the two adds around the changeover matched too");
    }
    let closed_or_reopened = |node: &Node| {
        node.engine
            .alerts(None, None)
            .unwrap()
            .iter()
            .filter(|a| matches!(a.state, AlertState::Closed | AlertState::Reopened))
            .count()
    };
    assert_eq!(closed_or_reopened(&a) + closed_or_reopened(&b), 0);

    // The grace period ends: the old epoch's entries go, every match stays.
    for n in [&mut a, &mut b] {
        n.clock.set(changeover + GRACE + 1);
        n.engine.expire().unwrap();
        n.engine.advance_rotation().unwrap();
        assert_eq!(n.engine.rotation_view(), None, "the rotation is over");
        assert_eq!(remote_adds_by_epoch(n).get(&1), None, "no epoch-1 add is left");
        let after = alerts_by_record(n);
        assert_eq!(after.len(), 42);
        assert!(after.values().all(|alerts| alerts.len() == 1 && alerts[0].2 == 1));
        let dump = n.engine.store().dump().unwrap();
        for handle in handles.iter().take(5) {
            let token = old_token(handle);
            assert!(
                !dump.iter().any(|(k, v)| contains(k, &token.0) || contains(v, &token.0)),
                "no byte of an old token is left"
            );
        }
    }
    // Ids carried on across the changeover.
    for (records, alerts) in &before_a {
        assert_eq!(alerts_by_record(&a)[records][0].0, alerts[0].0);
    }
}

#[test]
fn a_departed_member_matches_nothing_after_the_grace_period() {
    let mut a = node(1, "departed-a");
    let mut c = node(3, "departed-c");
    share(&mut a, &["watched_one", "watched_two"]);
    a.engine.begin_rotation(rotation(T0)).unwrap();
    a.engine.advance_rotation().unwrap();
    assert_eq!(a.engine.epoch(), 2);
    // C left and never got the new secret: it computes the old epoch's tokens only.
    assert_eq!(c.engine.token(&account("watched_one")), old_token("watched_one"));
    assert_ne!(old_token("watched_one"), new_token("watched_one"));
    assert_eq!(a.engine.token(&account("watched_one")), new_token("watched_one"));

    // During the grace period, its old-epoch add still counts.
    share(&mut c, &["watched_one"]);
    deliver(&mut a, &publish(&mut c));
    let alerts = a.engine.alerts(None, None).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].token, new_token("watched_one"), "kept under the record's new token");

    // After it, the match goes, and C's new adds match nothing.
    a.clock.set(T0 + GRACE + 1);
    c.clock.set(T0 + GRACE + 1);
    a.engine.expire().unwrap();
    a.engine.advance_rotation().unwrap();
    share(&mut c, &["watched_two"]);
    deliver(&mut a, &publish(&mut c));
    let open: Vec<Alert> = a
        .engine
        .alerts(None, None)
        .unwrap()
        .into_iter()
        .filter(|alert| alert.state != AlertState::Closed)
        .collect();
    assert!(open.is_empty(), "{open:?}");
    assert_eq!(remote_adds_by_epoch(&a).get(&1), None, "its late adds are not even indexed");
    assert!(a.engine.counters().skipped_entries >= 1);
}

#[test]
fn a_node_without_the_new_secret_works_on_the_old_epoch_until_it_gets_it() {
    let mut a = node(1, "nosecret-a");
    let mut b = node(2, "nosecret-b");
    let mut c = node(3, "nosecret-c");
    // A rotates, then shares; B and C have not got the new secret.
    a.engine.begin_rotation(rotation(T0)).unwrap();
    share(&mut a, &["late_joiner"]);
    let from_a = publish(&mut a);
    let epochs: Vec<u32> = from_a
        .iter()
        .map(|w| crossmatch_protocol::claimed_batch(w, &FEDERATION).unwrap().0.header.epoch)
        .collect();
    assert!(from_a.len() == 1, "one batch, under the new epoch only: {epochs:?}");

    // B and C still match each other on the old epoch.
    share(&mut b, &["old_friends"]);
    share(&mut c, &["old_friends"]);
    let (from_b, from_c) = (publish(&mut b), publish(&mut c));
    deliver(&mut b, &from_c);
    deliver(&mut c, &from_b);
    assert_eq!(b.engine.alerts(None, None).unwrap().len(), 1);
    assert_eq!(c.engine.alerts(None, None).unwrap().len(), 1);
    // And A, in its grace period, matches B's old-epoch add.
    deliver(&mut a, &from_b);
    share(&mut a, &["old_friends"]);
    assert_eq!(a.engine.alerts(None, None).unwrap().len(), 1);

    // C holds A's new-epoch add without matching it, and keeps working.
    share(&mut c, &["late_joiner"]);
    let outcomes = deliver(&mut c, &from_a);
    assert!(outcomes.iter().all(|o| matches!(o, IngestOutcome::Applied { .. })));
    assert_eq!(c.engine.epoch(), 1);
    assert_eq!(c.engine.alerts(None, None).unwrap().len(), 1, "not matched under epoch 1");
    // C gets the secret: at its changeover, the add it kept matches.
    c.engine.begin_rotation(rotation(T0)).unwrap();
    c.engine.advance_rotation().unwrap();
    let alerts = c.engine.alerts(None, None).unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(alerts.iter().any(|alert| alert.token == new_token("late_joiner")));
}

/// Records, holdings and pairs: what tokenising again writes.
fn rotated_rows(engine: &Engine) -> BTreeSet<(Vec<u8>, Vec<u8>)> {
    engine
        .store()
        .dump()
        .unwrap()
        .into_iter()
        .filter(|(key, _)| matches!(key.first(), Some(b'r' | b'h' | b'u' | b'a')))
        .collect()
}

#[test]
fn a_crash_while_tokenising_again_resumes_to_the_same_result() {
    let handles: Vec<String> = (0..600).map(|i| format!("many_{i}")).collect();
    let mut reference = node(1, "crash-reference");
    let mut crashed = node(1, "crash-crashed");
    for n in [&mut reference, &mut crashed] {
        let until = T0 + 90 * DAY_MS;
        let records = handles.iter().map(|h| record_until(&[h.as_str()], true, until)).collect();
        n.engine.add_records(records, "ana").unwrap();
    }
    reference.engine.begin_rotation(rotation(T0)).unwrap();
    reference.engine.advance_rotation().unwrap();

    // The changeover is one step: the node runs under the new epoch from it on.
    let view = crashed.engine.begin_rotation(rotation(T0)).unwrap().unwrap();
    assert_eq!(view.stage, Stage::Retokenising { after: 0 });
    assert_eq!(crashed.engine.epoch(), 2, "switched at the changeover");
    crashed.engine.stop_retokenising_after(300);
    assert!(crashed.engine.rotation_step().unwrap());
    let view = crashed.engine.rotation_view().unwrap();
    assert!(matches!(view.stage, Stage::Retokenising { after } if after > 0 && after < 600));
    let Node { engine, clock, dir } = crashed;
    drop(engine);
    // Reopened with the old configuration: the plan resumes the rotation.
    let mut engine = Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone()).unwrap();
    assert_eq!(engine.epoch(), 2);
    engine.advance_rotation().unwrap();
    assert_eq!(rotated_rows(&engine), rotated_rows(&reference.engine));
    for (_, record) in engine.store().scan::<Record>(&keys::all_records()).unwrap() {
        let identifier = &record.identifiers[0];
        assert_eq!(identifier.epoch, 2);
        assert_eq!(identifier.token, new_token(identifier.canonical.rsplit('|').next().unwrap()));
    }
    // A foreign epoch is still refused.
    drop(engine);
    let mut config = EngineConfig::for_test(1);
    config.epoch = 5;
    assert!(Engine::open(dir.path(), config, clock).is_err());
}

#[test]
fn a_retraction_in_the_grace_period_goes_out_under_both_epochs() {
    let mut a = node(1, "retract-a");
    let mut b = node(2, "retract-b");
    let record = share(&mut a, &["to_retract"]);
    share(&mut b, &["to_retract"]);
    deliver(&mut b, &publish(&mut a));
    assert_eq!(b.engine.alerts(None, None).unwrap().len(), 1);
    a.engine.begin_rotation(rotation(T0)).unwrap();
    deliver(&mut b, &publish(&mut a));
    a.engine.remove_record(record, RetractReason::NoLongerHeld, "ana").unwrap();
    let batches = a.engine.publish().unwrap();
    let epochs: BTreeSet<u32> = batches.iter().map(|b| b.header().epoch).collect();
    assert_eq!(epochs, BTreeSet::from([1, 2]));
    // B, still on the old epoch, sees the retraction of the add it matched.
    deliver(&mut b, &batches.iter().map(|b| b.to_wire()).collect::<Vec<_>>());
    let alerts = b.engine.alerts(None, None).unwrap();
    assert_eq!(alerts[0].state, AlertState::Closed);
}

#[test]
fn republication_past_the_daily_quota_is_let_through_and_a_flood_is_not() {
    let mut a = node(1, "quota-a");
    let mut config = EngineConfig::for_test(2);
    config.quota_entries_per_day = 300;
    let mut b = node_with(config, "quota-b");
    let until = T0 + 90 * DAY_MS;
    let records = (0..250).map(|i| record_until(&[&format!("quota_{i}")], true, until)).collect();
    a.engine.add_records(records, "ana").unwrap();
    let first = publish(&mut a);
    let outcomes = deliver(&mut b, &first);
    assert!(outcomes.iter().all(|o| matches!(o, IngestOutcome::Applied { .. })));

    // A node that plans no rotation gives no allowance: claiming the next epoch does not lift
    // the quota.
    let mut config = EngineConfig::for_test(3);
    config.quota_entries_per_day = 300;
    let mut c = node_with(config, "quota-c");
    let outcomes = deliver(&mut c, &first);
    assert!(outcomes.iter().all(|o| matches!(o, IngestOutcome::Applied { .. })));

    // The same day, A rotates and republishes its 250 adds: past B's quota of 300 a day. B
    // plans the same rotation (its changeover later), so it knows epoch 2 is coming.
    b.engine.begin_rotation(rotation(T0 + DAY_MS)).unwrap();
    a.engine.begin_rotation(rotation(T0)).unwrap();
    let republished = publish(&mut a);
    let unplanned = deliver(&mut c, &republished);
    assert!(unplanned.contains(&IngestOutcome::QuotaExceeded), "{unplanned:?}");
    let checks = b.engine.republication_epoch_checks();
    let outcomes = deliver(&mut b, &republished);
    assert!(outcomes.iter().all(|o| matches!(o, IngestOutcome::Applied { .. })), "{outcomes:?}");
    assert_eq!(b.engine.counters().quota_refused, 0);
    // Each batch over the daily quota asks whether its epoch may draw on an allowance once on
    // its claim and once after verification, not once per helper on the way.
    let asked = b.engine.republication_epoch_checks() - checks;
    assert_eq!(asked, 2 * republished.len() as u64);
    assert_eq!(remote_adds_by_epoch(&b).get(&2), Some(&250));

    // A flood beyond the allowance (250 adds + a batch's margin) is refused as over quota,
    // like any batch over quota: the allowance is used up, not being counted, so whoever
    // sends it draws on its budget of ignorable gossip.
    let flood = (0..(REPUBLICATION_MARGIN_ENTRIES as usize + 100))
        .map(|i| record_until(&[&format!("flood_{i}")], true, until))
        .collect();
    a.engine.add_records(flood, "ana").unwrap();
    let outcomes = deliver(&mut b, &publish(&mut a));
    assert!(outcomes.contains(&IngestOutcome::QuotaExceeded), "{outcomes:?}");
    assert!(!outcomes.contains(&IngestOutcome::RepublicationOverQuota), "{outcomes:?}");
    assert!(b.engine.counters().quota_refused >= 1);
}

/// The entries of `batches` by epoch: (epoch, op name, token).
fn entries_by_epoch(
    batches: &[crossmatch_protocol::VerifiedBatch],
) -> Vec<(u32, &'static str, Token)> {
    let mut out = Vec::new();
    for batch in batches {
        for entry in batch.entries().flatten() {
            let (name, token) = match entry.op {
                crossmatch_protocol::Op::Add(add) => ("add", add.token),
                crossmatch_protocol::Op::Retract(retract) => ("retract", retract.token),
                crossmatch_protocol::Op::Status(status) => ("status", status.token),
                crossmatch_protocol::Op::Tag(tag) => ("tag", tag.token),
            };
            out.push((batch.header().epoch, name, token));
        }
    }
    out
}

#[test]
fn a_fork_of_the_own_feed_in_a_rotation_publishes_again_under_the_running_epoch() {
    let mut a = node(1, "own-fork-rotation");
    let kept = share(&mut a, &["kept"]);
    let gone = share(&mut a, &["gone"]);
    let first = a.engine.publish().unwrap();
    a.engine.set_status(kept, crossmatch_protocol::Status::Referred, "ana").unwrap();
    a.engine.remove_record(gone, RetractReason::NoLongerHeld, "ana").unwrap();
    let second = a.engine.publish().unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].header().epoch, 1);
    // The rotation: switched, republished, in the grace period.
    a.engine.begin_rotation(rotation(T0)).unwrap();
    publish(&mut a);
    assert_eq!(a.engine.epoch(), 2);
    assert!(!a.engine.republishing());

    // A's own feed is shown forked at seq 2 (a restored backup signed it again).
    let position = crossmatch_protocol::BatchPosition {
        generation: 1,
        seq: 2,
        prev: first.last().unwrap().hash(),
        epoch: 1,
        created_at_ms: T0,
    };
    let other = crossmatch_protocol::sign_batch(
        &crossmatch_node::test_support::key(1),
        &FEDERATION,
        position,
        &[crossmatch_node::test_support::add_entry(9, T0 + DAY_MS)],
    )
    .unwrap();
    let evidence = crossmatch_protocol::encode_fork_evidence(
        second[0].manifest_bytes(),
        other.manifest_bytes(),
    );
    a.engine.ingest_fork_evidence(&evidence).unwrap();
    let repaired = entries_by_epoch(&a.engine.publish().unwrap());
    // What the fork withdrew goes out again under the epoch being published: the status of
    // the kept record under its new token, the retraction under the old epoch only (the grace
    // period: peers that have not changed over still hold the old add); never an old token in
    // a new-epoch batch.
    assert!(repaired.contains(&(2, "status", new_token("kept"))), "{repaired:?}");
    assert!(repaired.contains(&(2, "add", new_token("kept"))), "{repaired:?}");
    assert!(repaired.contains(&(1, "retract", old_token("gone"))), "{repaired:?}");
    for (epoch, _, token) in &repaired {
        if *epoch == 2 {
            assert!(*token != old_token("kept") && *token != old_token("gone"), "{repaired:?}");
        }
    }
}

#[test]
fn the_own_snapshots_move_to_the_new_epoch_in_bounded_slices() {
    use crossmatch_node::engine::{CommunityShare, SLICE_ROWS, ShareHolding, SharedAccount};
    use crossmatch_protocol::{Evaluation, Handling};

    let mut a = node(1, "retag-slices");
    let handles: Vec<String> = (0..SLICE_ROWS + 200).map(|i| format!("tagged_{i}")).collect();
    let accounts = handles.iter().map(|h| SharedAccount {
        account: account(h),
        holding: ShareHolding::NotRecorded,
        activity_per_day: Some(20),
    });
    let share = CommunityShare {
        community: 7,
        accounts: accounts.collect(),
        category: "terrorism/propaganda".into(),
        handling: Handling::H1,
        evaluation: Evaluation::new('X', 4).unwrap(),
        expires_at_ms: T0 + 30 * DAY_MS,
        pseudonym: [0x5a; 16],
    };
    a.engine.share_community(share, "ana").unwrap();
    publish(&mut a);
    a.engine.begin_rotation(rotation(T0)).unwrap();
    // The slice worker's steps: the snapshot of more than a slice's tokens is moved in two.
    let mut retagging = Vec::new();
    while a.engine.background_step().unwrap() {
        if let Some(Stage::Retagging { index, .. }) = a.engine.rotation_view().map(|v| v.stage) {
            retagging.push(index);
        }
    }
    assert_eq!(retagging, [0, SLICE_ROWS], "begun, then one step per slice of tokens");
    assert_eq!(a.engine.rotation_view().map(|view| view.stage), Some(Stage::Switched));
    // Republished, the tags name every account's new-epoch token.
    let batches: Vec<_> = a.engine.publish().unwrap();
    let tagged: BTreeSet<Token> = entries_by_epoch(&batches)
        .into_iter()
        .filter(|(epoch, name, _)| *epoch == 2 && *name == "tag")
        .map(|(_, _, token)| token)
        .collect();
    let new_key = EpochKey::derive(&FEDERATION, &NEW_SECRET, 2);
    let expected: BTreeSet<Token> = handles.iter().map(|h| new_key.token(&account(h))).collect();
    assert_eq!(tagged, expected);
}

#[test]
fn an_alert_moved_to_the_new_token_is_dated_when_it_moved() {
    let mut a = node(1, "moved-a");
    let mut b = node(2, "moved-b");
    share(&mut a, &["moved_alert"]);
    share(&mut b, &["moved_alert"]);
    let (from_a, from_b) = (publish(&mut a), publish(&mut b));
    deliver(&mut b, &from_a);
    deliver(&mut a, &from_b);
    let changeover = T0 + HOUR;
    let before = a.engine.alerts(None, None).unwrap();
    assert_eq!(before.len(), 1);
    assert!(before[0].updated_at_ms < changeover);
    a.engine.begin_rotation(rotation(changeover)).unwrap().unwrap();
    a.clock.set(changeover + 5);
    a.engine.advance_rotation().unwrap();
    let after = a.engine.alerts(None, None).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].token, new_token("moved_alert"), "the alert moved");
    assert_eq!(after[0].id, before[0].id);
    assert_eq!(after[0].updated_at_ms, changeover + 5, "its change (and event) is dated now");
}
