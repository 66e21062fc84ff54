//! The engine's member set changed while it runs (`Engine::set_members`): a removed origin's
//! live adds are withdrawn and exactly its alerts change, twice changes nothing, the change
//! survives a restart, and a retired key's feed stays matchable.

use std::sync::Arc;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::{Engine, EngineConfig, IngestOutcome, Member, MembersChange};
use crossmatch_node::store::{Alert, AlertState, keys};
use crossmatch_node::test_support::{
    FEDERATION, ManualClock, T0, TempDir, account, key, members, record_until,
};
use crossmatch_protocol::{FinalHead, claimed_batch_hash};

struct Node {
    engine: Engine,
    _dir: TempDir,
}

fn node(n: u8, name: &str) -> Node {
    node_with(EngineConfig::for_test(n), name)
}

fn node_with(config: EngineConfig, name: &str) -> Node {
    let dir = TempDir::new(&format!("members-{name}"));
    let engine = Engine::open(dir.path(), config, Arc::new(ManualClock::new(T0))).unwrap();
    Node { engine, _dir: dir }
}

/// Adds a shared record of `handles` and returns the batches it published.
fn share(node: &mut Node, handles: &[&str]) -> Vec<Vec<u8>> {
    node.engine.add_record(record_until(handles, true, T0 + 90 * DAY_MS), "ana").unwrap();
    node.engine.publish().unwrap().iter().map(|batch| batch.to_wire()).collect()
}

fn ingest_all(engine: &mut Engine, wires: &[Vec<u8>]) {
    for wire in wires {
        let outcome = engine.ingest(wire).unwrap();
        assert!(matches!(outcome, IngestOutcome::Applied { .. }), "{outcome:?}");
    }
}

/// The alerts by id: (id, state, counterparts' member keys' first bytes).
fn alerts(engine: &Engine) -> Vec<(u64, AlertState, Vec<u8>)> {
    let summary = |alert: Alert| {
        let origins = alert.counterparts.iter().map(|c| c.origin.to_bytes()[0]).collect();
        (alert.id, alert.state, origins)
    };
    engine.alerts(None, None).unwrap().into_iter().map(summary).collect()
}

fn without(n: u8) -> Vec<Member> {
    members(3).into_iter().filter(|member| member.key != key(n).public_key()).collect()
}

#[test]
fn removing_an_origin_closes_exactly_its_alerts_once_and_for_good() {
    let (mut a, mut c) = (node(1, "remove-a"), node(3, "remove-c"));
    let dir = TempDir::new("members-remove-b");
    let clock = Arc::new(ManualClock::new(T0));
    let mut b = Engine::open(dir.path(), EngineConfig::for_test(2), clock.clone()).unwrap();
    // B holds three accounts: one both A and C share, one only A shares, one only C shares.
    for handle in ["shared_by_both", "shared_by_a", "shared_by_c"] {
        b.add_record(record_until(&[handle], false, T0 + 90 * DAY_MS), "ben").unwrap();
    }
    let from_a = share(&mut a, &["shared_by_both", "shared_by_a"]);
    let from_c = share(&mut c, &["shared_by_both", "shared_by_c"]);
    ingest_all(&mut b, &from_a);
    ingest_all(&mut b, &from_c);
    let before = alerts(&b);
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.iter().all(|(_, state, _)| *state != AlertState::Closed));
    let both = before.iter().find(|(_, _, origins)| origins.len() == 2).unwrap().0;
    let only = |n: u8| {
        let byte = key(n).public_key().to_bytes()[0];
        before.iter().find(|(_, _, origins)| *origins == vec![byte]).unwrap().0
    };
    let (only_a, only_c) = (only(1), only(3));

    // The roster drops A: its withdrawal begins, and the steps carry it out.
    let change = b.set_members(without(1)).unwrap();
    assert_eq!(change, MembersChange { withdrawn_origins: 1, ..MembersChange::default() });
    let change = b.finish_withdrawals().unwrap();
    assert_eq!(
        change,
        MembersChange { withdrawn_origins: 1, withdrawn_adds: 2, alerts_changed: 2 },
        "A's two live adds, and the two alerts they were in"
    );
    let after = alerts(&b);
    assert_eq!(after.len(), 3, "no alert is deleted: {after:?}");
    let state = |id: u64| after.iter().find(|(alert, _, _)| *alert == id).cloned().unwrap();
    let c_byte = key(3).public_key().to_bytes()[0];
    assert_eq!(state(only_a).1, AlertState::Closed, "A's only alert is closed");
    assert_eq!(state(both).1, AlertState::Updated, "the shared one loses A, keeps C");
    assert_eq!(state(both).2, vec![c_byte]);
    assert_eq!(state(only_c), before.iter().find(|(id, _, _)| *id == only_c).cloned().unwrap());
    let closed = after.iter().filter(|(_, state, _)| *state == AlertState::Closed).count();
    assert_eq!(closed, 1, "exactly one alert closed");
    let token = b.token(&account("shared_by_a"));
    assert_eq!(b.remote_holders(&token).unwrap(), 0, "A's add is withdrawn");

    // Idempotent: the same set again changes nothing.
    assert_eq!(b.set_members(without(1)).unwrap(), MembersChange::default());
    assert_eq!(b.finish_withdrawals().unwrap(), MembersChange::default());
    assert_eq!(alerts(&b), after);
    // A's new batches are ignored as from outside the roster, and match nothing.
    let more = share(&mut a, &["shared_by_c"]);
    assert_eq!(b.ingest(&more[0]).unwrap(), IngestOutcome::UnknownOrigin);
    assert_eq!(alerts(&b), after);

    // Durable: reopened on the same roster, nothing is withdrawn again or reopened.
    drop(b);
    let mut config = EngineConfig::for_test(2);
    config.members = without(1);
    let mut reopened = Engine::open(dir.path(), config, clock).unwrap();
    assert_eq!(alerts(&reopened), after);
    assert_eq!(reopened.set_members(without(1)).unwrap(), MembersChange::default());
    assert_eq!(reopened.finish_withdrawals().unwrap(), MembersChange::default());
}

#[test]
fn an_origin_removed_while_the_node_was_stopped_is_withdrawn_at_start() {
    let mut a = node(1, "stopped-a");
    let dir = TempDir::new("members-stopped-b");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let mut b = Engine::open(dir.path(), EngineConfig::for_test(2), clock.clone()).unwrap();
        b.add_record(record_until(&["seen_by_a"], false, T0 + 90 * DAY_MS), "ben").unwrap();
        for wire in share(&mut a, &["seen_by_a"]) {
            assert!(matches!(b.ingest(&wire).unwrap(), IngestOutcome::Applied { .. }));
        }
        assert_eq!(b.alerts(Some(AlertState::Open), None).unwrap().len(), 1);
    }
    let mut config = EngineConfig::for_test(2);
    config.members = without(1);
    let mut b = Engine::open(dir.path(), config, clock).unwrap();
    // Opening withdraws nothing (the configured members may be an older roster's): the
    // daemon's start does, once it knows the roster it runs.
    assert_eq!(b.alerts(Some(AlertState::Open), None).unwrap().len(), 1);
    b.withdraw_removed_members().unwrap();
    b.finish_withdrawals().unwrap();
    let alerts = b.alerts(None, None).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].state, AlertState::Closed);
}

#[test]
fn a_retired_keys_feed_still_ingests_and_matches() {
    // Member A changed its node key from key(1) to key(11) in a routine key change.
    let mut old_a = node(1, "retired-old-a");
    let mut new_a = node(11, "retired-new-a");
    let old_feed = share(&mut old_a, &["old_feed"]);
    let (generation, seq) = old_a.engine.own_head();
    let hash = claimed_batch_hash(old_feed.last().unwrap(), &FEDERATION).unwrap();
    let last = FinalHead { generation, seq, hash };
    let mut roster = members(3);
    roster[0].key = key(11).public_key();
    roster[0].retired_keys = vec![key(1).public_key()];
    roster[0].retired_heads = vec![(key(1).public_key(), Some(last))];
    let mut config = EngineConfig::for_test(2);
    config.members = roster.clone();
    let mut b = node_with(config, "retired-b");
    let b = &mut b.engine;
    b.add_record(record_until(&["old_feed", "new_feed"], false, T0 + 90 * DAY_MS), "ben").unwrap();
    // The old key's batches still verify and match (up to the final head of its key change);
    // so do the new key's.
    ingest_all(b, &old_feed);
    ingest_all(b, &share(&mut new_a, &["new_feed"]));
    let found = alerts(b);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|(_, state, _)| *state == AlertState::Open));
    // Setting the same roster withdraws nothing of the retired key's feed.
    assert_eq!(b.set_members(roster.clone()).unwrap(), MembersChange::default());
    assert_eq!(b.finish_withdrawals().unwrap(), MembersChange::default());
    assert_eq!(alerts(b), found);
    // The old key's counterpart is resolved to member A.
    let origin = key(1).public_key();
    assert_eq!(b.member(&origin).map(|m| m.id.as_str()), Some("A"));
    assert_eq!(b.member(&key(11).public_key()).map(|m| m.id.as_str()), Some("A"));
    // Once the retired key is dropped too, its feed is withdrawn like a removed member's.
    roster[0].retired_keys.clear();
    assert_eq!(b.set_members(roster).unwrap().withdrawn_origins, 1);
    let change = b.finish_withdrawals().unwrap();
    assert_eq!((change.withdrawn_origins, change.withdrawn_adds), (1, 1));
}

#[test]
fn heads_of_members_this_roster_lacks_are_ignored_not_counted_as_excess() {
    // A peer on a newer roster of five members answers `heads` with the heads of members 1,
    // 3, 4 and 5; this node (2) runs a roster of three. The newcomers' heads are ignored on
    // their claim, at no cost to the peer.
    let manifests: Vec<Vec<u8>> = [1, 3, 4, 5]
        .into_iter()
        .map(|n| {
            let mut peer = node(n, &format!("heads-{n}"));
            let expiry = T0 + DAY_MS;
            peer.engine
                .add_record(record_until(&[&format!("head_{n}")], true, expiry), "a")
                .unwrap();
            peer.engine.publish().unwrap()[0].manifest_bytes().to_vec()
        })
        .collect();
    let b = node(2, "heads-b");
    let judgement = b.engine.judge_heads(&manifests).unwrap();
    assert_eq!(judgement.excess, 0, "nobody is over the bound for running a newer roster");
    let mut judged: Vec<[u8; 32]> =
        judgement.claims.iter().map(|claim| claim.feed.origin).collect();
    judged.sort_unstable();
    let mut members: Vec<[u8; 32]> = [1, 3].map(|n| key(n).public_key().to_bytes()).to_vec();
    members.sort_unstable();
    assert_eq!(judged, members, "the heads of members 1 and 3 are judged");
    // Past the largest roster's size, manifests are excess whoever they claim; within it, the
    // members' manifests past one per member are.
    let max = crossmatch_node::engine::MAX_HEADS_JUDGED;
    let flood: Vec<Vec<u8>> = manifests.iter().cycle().take(max + 7).cloned().collect();
    let members_within = max / 4 * 2;
    assert_eq!(b.engine.judge_heads(&flood).unwrap().excess, 7 + members_within - 2);
}

#[test]
fn a_withdrawal_marked_by_an_earlier_build_resumes_from_the_first_batch() {
    let mut a = node(1, "earlier-mark-a");
    let dir = TempDir::new("members-earlier-mark-b");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let mut b = Engine::open(dir.path(), EngineConfig::for_test(2), clock.clone()).unwrap();
        b.add_record(record_until(&["marked_before"], false, T0 + 90 * DAY_MS), "ben").unwrap();
        for wire in share(&mut a, &["marked_before"]) {
            assert!(matches!(b.ingest(&wire).unwrap(), IngestOutcome::Applied { .. }));
        }
        // The mark as schema 3 wrote it: CBOR null, no cursor.
        let mut txn = b.store().txn();
        txn.put(keys::withdrawal(&key(1).public_key().to_bytes()), &());
        txn.commit_durable().unwrap();
    }
    let mut config = EngineConfig::for_test(2);
    config.members = without(1);
    let mut b = Engine::open(dir.path(), config, clock).unwrap();
    let done = b.finish_withdrawals().unwrap();
    assert_eq!((done.withdrawn_origins, done.withdrawn_adds), (1, 1));
    assert_eq!(b.alerts(None, None).unwrap()[0].state, AlertState::Closed);
}
