//! The alert event log: every write of an alert row appends exactly one event in the same
//! write (lost together in a crash), events mirror the rows they report, the ring keeps the
//! last `event_log_keep`, acknowledging bumps the version, a new incarnation is drawn when the
//! own-feed log is missing; and in a running node the pump publishes a durable head only once
//! the node is ready, and readers resume exactly or are told to resync.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::daemon::{EventId, EventRead, EventViewBody, ResyncReason};
use crossmatch_node::engine::{AlertEvent, AlertSink, Engine, EngineConfig};
use crossmatch_node::local::wait_until;
use crossmatch_node::store::events::{EventBody, EventKind, StoredEvent};
use crossmatch_node::store::{Alert, AlertState};
use crossmatch_node::test_support::federation::{meshed_pair, raise};
use crossmatch_node::test_support::{ManualClock, T0, TempDir, record, record_until};
use crossmatch_protocol::RetractReason;

const LIMIT: Duration = Duration::from_secs(120);

struct Member {
    engine: Engine,
    clock: Arc<ManualClock>,
    dir: TempDir,
}

fn member(n: u8, name: &str) -> Member {
    let dir = TempDir::new(&format!("events-{name}"));
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Engine::open(dir.path(), EngineConfig::for_test(n), clock.clone()).unwrap();
    Member { engine, clock, dir }
}

fn shared(handles: &[&str]) -> crossmatch_node::engine::NewRecord {
    record_until(handles, true, T0 + 30 * DAY_MS)
}

fn wires(member: &mut Member) -> Vec<Vec<u8>> {
    member.engine.publish().unwrap().iter().map(|b| b.to_wire()).collect()
}

fn events(engine: &Engine) -> Vec<(u64, StoredEvent)> {
    engine.store().events_between(0, u64::MAX - 1, usize::MAX).unwrap()
}

/// Collects what the engine announces.
fn announced(engine: &mut Engine) -> Arc<std::sync::Mutex<Vec<AlertEvent>>> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    engine.set_alert_sink(AlertSink::new(move |event| sink.lock().unwrap().push(event)));
    seen
}

/// The log mirrors the rows: seqs run 1..=event-seq with no hole; the last event of each live
/// alert carries its row's state, acknowledgement and version; an alert with no row ended with
/// a closed event; and every alert's versions rise strictly along the log.
fn check_mirror(engine: &Engine) {
    let log = events(engine);
    let meta = engine.store().event_meta().unwrap();
    let seqs: Vec<u64> = log.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=meta.seq).collect::<Vec<_>>(), "consecutive seqs from 1");
    let mut last: BTreeMap<u64, (EventKind, crossmatch_node::store::events::EventAlert)> =
        BTreeMap::new();
    for (_, event) in log {
        let EventBody::Alert(alert) = event.body else { continue };
        if let Some((_, before)) = last.get(&alert.id) {
            assert!(alert.version > before.version, "versions rise strictly per alert");
        }
        last.insert(alert.id, (event.kind, alert));
    }
    let rows: Vec<Alert> = engine.alerts(None, None).unwrap();
    for row in &rows {
        let (_, event) = last.get(&row.id).expect("every alert row has an event");
        assert_eq!(
            (event.state, event.acknowledged, event.version, event.records.clone()),
            (row.state, row.acknowledged, row.version, row.records.clone()),
            "the last event of alert {} is its row",
            row.id
        );
        assert_eq!(event.token_prefix, row.token.as_bytes()[..4]);
    }
    for (id, (kind, _)) in &last {
        if !rows.iter().any(|row| row.id == *id) {
            assert_eq!(*kind, EventKind::AlertClosed, "a deleted alert ends closed");
        }
    }
}

#[test]
fn every_alert_path_appends_exactly_one_event_in_the_same_write() {
    let mut a = member(1, "paths-a");
    let mut b = member(2, "paths-b");
    let mut c = member(3, "paths-c");
    let seen = announced(&mut b.engine);
    let mut expected_kinds = Vec::new();

    // A local add with nothing to match: no alert, no event.
    let b_record = b.engine.add_record(shared(&["paths_target"]), "ben").unwrap();
    b.engine.add_record(shared(&["paths_other"]), "ben").unwrap();
    assert!(events(&b.engine).is_empty());
    // Ingest opens.
    let a_id = a.engine.add_record(shared(&["paths_target"]), "ana").unwrap();
    b.clock.advance(10);
    b.engine.ingest(&wires(&mut a)[0]).unwrap();
    expected_kinds.push(EventKind::AlertOpened);
    check_mirror(&b.engine);
    // Acknowledging bumps the version; again, nothing.
    let alert = b.engine.alerts(None, None).unwrap().remove(0);
    assert_eq!(alert.version, 1);
    assert!(b.engine.acknowledge(alert.id, "ben").unwrap());
    expected_kinds.push(EventKind::AlertAcknowledged);
    assert_eq!(b.engine.alerts(None, None).unwrap()[0].version, 2);
    assert!(b.engine.acknowledge(alert.id, "ben").unwrap());
    check_mirror(&b.engine);
    // A status reported by the counterpart updates it.
    a.engine.set_status(a_id, crossmatch_protocol::Status::Referred, "ana").unwrap();
    for wire in wires(&mut a) {
        b.engine.ingest(&wire).unwrap();
    }
    expected_kinds.push(EventKind::AlertUpdated);
    check_mirror(&b.engine);
    // The counterpart's retraction closes it; a third member's add reopens it.
    a.engine.remove_record(a_id, RetractReason::NoLongerHeld, "ana").unwrap();
    for wire in wires(&mut a) {
        b.engine.ingest(&wire).unwrap();
    }
    expected_kinds.push(EventKind::AlertClosed);
    check_mirror(&b.engine);
    c.engine.add_record(shared(&["paths_target"]), "cat").unwrap();
    b.engine.ingest(&wires(&mut c)[0]).unwrap();
    expected_kinds.push(EventKind::AlertReopened);
    check_mirror(&b.engine);
    // A second local record of the token (a local add): updated.
    b.engine.add_record(shared(&["paths_target"]), "ben").unwrap();
    expected_kinds.push(EventKind::AlertUpdated);
    check_mirror(&b.engine);
    // Removing one local record updates; removing the last deletes the row: closed.
    b.engine.remove_record(b_record, RetractReason::NoLongerHeld, "ben").unwrap();
    expected_kinds.push(EventKind::AlertUpdated);
    check_mirror(&b.engine);
    // Expiry of the rest ends the alert, and every event still mirrors its row.
    let other = b.engine.add_record(shared(&["paths_late"]), "ben").unwrap();
    c.engine.add_record(shared(&["paths_late"]), "cat").unwrap();
    b.engine.ingest(&wires(&mut c)[0]).unwrap();
    expected_kinds.push(EventKind::AlertOpened);
    assert!(other > 0);
    check_mirror(&b.engine);
    b.clock.set(T0 + 31 * DAY_MS);
    b.engine.expire().unwrap();
    check_mirror(&b.engine);
    assert!(b.engine.alerts(None, None).unwrap().is_empty());

    let kinds: Vec<EventKind> = events(&b.engine).into_iter().map(|(_, e)| e.kind).collect();
    assert_eq!(kinds[..expected_kinds.len()], expected_kinds[..]);
    // Expiry closes both alerts (their counterparts' adds and the records expire).
    let closing = &kinds[expected_kinds.len()..];
    assert!(closing.len() >= 2 && closing.iter().all(|kind| *kind == EventKind::AlertClosed));
    // Each announced change names the seq of its event, in order, one each.
    let announced: Vec<u64> = seen.lock().unwrap().iter().map(|event| event.seq).collect();
    assert_eq!(announced, (1..=kinds.len() as u64).collect::<Vec<_>>());
}

#[test]
fn an_alert_row_and_its_event_are_lost_together() {
    let mut a = member(1, "lost-a");
    let mut b = member(2, "lost-b");
    b.engine.add_record(shared(&["lost_target"]), "ben").unwrap();
    a.engine.add_record(shared(&["lost_target"]), "ana").unwrap();
    let from_a = wires(&mut a);
    b.engine.store().keep_last_batch();
    b.engine.ingest(&from_a[0]).unwrap();
    assert_eq!((events(&b.engine).len(), b.engine.alerts(None, None).unwrap().len()), (1, 1));
    // The ingest's write never reached the disk: the alert and its event go together.
    b.engine.store().drop_last_batch().unwrap();
    assert_eq!((events(&b.engine).len(), b.engine.alerts(None, None).unwrap().len()), (0, 0));
    assert_eq!(b.engine.store().event_meta().unwrap().seq, 0);
    // After the crash, the batch comes again: the alert and its event, seq 1 again (it was
    // never delivered: nothing leaves before a flush).
    let incarnation = b.engine.store().event_meta().unwrap().incarnation;
    drop(b.engine);
    b.engine = Engine::open(b.dir.path(), EngineConfig::for_test(2), b.clock.clone()).unwrap();
    assert_eq!(b.engine.store().event_meta().unwrap().incarnation, incarnation);
    b.engine.ingest(&from_a[0]).unwrap();
    assert_eq!(events(&b.engine).iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![1]);
    check_mirror(&b.engine);
    // An acknowledgement lost in a crash loses its event and its version bump too.
    let alert = b.engine.alerts(None, None).unwrap().remove(0);
    b.engine.store().keep_last_batch();
    assert!(b.engine.acknowledge(alert.id, "ben").unwrap());
    assert_eq!(events(&b.engine).len(), 2);
    b.engine.store().drop_last_batch().unwrap();
    let after = b.engine.alerts(None, None).unwrap().remove(0);
    assert_eq!((after.acknowledged, after.version), (false, alert.version));
    assert_eq!(events(&b.engine).len(), 1);
    check_mirror(&b.engine);
}

#[test]
fn the_ring_keeps_the_last_event_log_keep_events() {
    let mut a = member(1, "ring-a");
    let mut b = member(2, "ring-b");
    b.engine.set_event_log_keep(1);
    let handles: Vec<String> = (0..40).map(|i| format!("ring_{i}")).collect();
    for handle in &handles {
        b.engine.add_record(shared(&[handle.as_str()]), "ben").unwrap();
        a.engine.add_record(shared(&[handle.as_str()]), "ana").unwrap();
    }
    for wire in wires(&mut a) {
        b.engine.ingest(&wire).unwrap();
    }
    let meta = b.engine.store().event_meta().unwrap();
    assert_eq!(meta.seq, 40);
    // At least 16 are kept whatever is asked; exactly the newest 16.
    let kept: Vec<u64> = events(&b.engine).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(kept, (25..=40).collect::<Vec<_>>());
    assert_eq!(b.engine.store().first_event_seq().unwrap(), Some(25));
}

/// The incarnation is drawn at the first open and kept by a plain restart; a data directory
/// without its own-feed log (a restore done by the runbook) draws a new one, its seqs going on.
/// (The high-water file's cases are in `event_edges.rs`.)
#[test]
fn the_first_open_draws_an_incarnation_a_restart_keeps_it_and_a_missing_own_feed_log_renews_it() {
    let mut a = member(1, "incarnation-a");
    let mut b = member(2, "incarnation-b");
    b.engine.add_record(shared(&["inc_target"]), "ben").unwrap();
    a.engine.add_record(shared(&["inc_target"]), "ana").unwrap();
    b.engine.ingest(&wires(&mut a)[0]).unwrap();
    let first = b.engine.store().event_meta().unwrap();
    assert_ne!(first.incarnation, 0, "drawn at the first open");
    assert_eq!((first.incarnation_from, first.seq), (1, 1));
    let (clock, dir) = (b.clock.clone(), b.dir);
    drop(b.engine);
    let engine = Engine::open(dir.path(), EngineConfig::for_test(2), clock.clone()).unwrap();
    assert_eq!(engine.store().event_meta().unwrap(), first, "a plain restart keeps it");
    drop(engine);
    // A restore done by the runbook: the data directory without the own-feed log.
    std::fs::remove_file(dir.path().join("own-feed.log")).unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::for_test(2), clock).unwrap();
    let renewed = engine.store().event_meta().unwrap();
    assert_ne!(renewed.incarnation, first.incarnation);
    assert_eq!((renewed.incarnation_from, renewed.seq), (2, 1), "seqs continue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_publishes_a_durable_head_and_readers_resume_exactly() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed) = meshed_pair("events-node", |_| {}).await;
        let b = fed.node(1).unwrap().clone();
        let start = b.wait_event_head().await.unwrap();
        assert_eq!(start.seq, 0);
        let node = fed.node(0).unwrap().clone();
        for handle in ["resume_one", "resume_two", "resume_three"] {
            b.add_record(record(&[handle], true), "ben".into()).await.unwrap();
            node.add_record(record(&[handle], true), "ana".into()).await.unwrap();
        }
        let mut head = b.event_head();
        wait_until("three events durable at B", LIMIT, || {
            let seq = head.borrow_and_update().map_or(0, |head| head.seq);
            async move { seq >= 3 }
        })
        .await
        .unwrap();
        // Read from the start, one at a time: each once, in order, no gap.
        let mut cursor = start;
        let mut read = Vec::new();
        loop {
            let EventRead::Events(events) = b.events_after(Some(cursor), 1).await.unwrap() else {
                panic!("a valid cursor is never resynced");
            };
            let Some(event) = events.into_iter().next() else { break };
            assert_eq!(event.id.seq, cursor.seq + 1);
            cursor = event.id;
            read.push(event);
        }
        assert_eq!(read.len(), 3);
        assert!(read.iter().all(|event| event.kind == EventKind::AlertOpened));
        for event in &read {
            let EventViewBody::Alert(alert) = &event.body else { panic!("an alert event") };
            assert_eq!(alert.counterparts[0].member_id.as_deref(), Some("M0"));
            assert_eq!(alert.state, AlertState::Open);
        }
        // The four resyncs.
        let head = b.wait_event_head().await.unwrap();
        let resync = |after| {
            let b = b.clone();
            async move {
                match b.events_after(Some(after), 10).await.unwrap() {
                    EventRead::Resync { cursor, reason } => (cursor, reason),
                    other => panic!("expected a resync, got {other:?}"),
                }
            }
        };
        let other = EventId { incarnation: head.incarnation ^ 1, seq: 1 };
        assert_eq!(resync(other).await, (head, ResyncReason::UnknownIncarnation));
        let ahead = EventId { seq: head.seq + 5, ..head };
        assert_eq!(resync(ahead).await, (head, ResyncReason::AheadOfLog));
        // A restart keeps the incarnation: the cursor resumes exactly. (No handle on the old
        // node may outlive it: it holds the store.)
        drop((b, node));
        fed.stop(1).await.unwrap();
        fed.start(1).await.unwrap();
        let b = fed.node(1).unwrap().clone();
        let restarted = b.wait_event_head().await.unwrap();
        assert_eq!(restarted, head);
        let EventRead::Events(events) = b.events_after(Some(start), 10).await.unwrap() else {
            panic!("the log survives a restart");
        };
        assert_eq!(
            events.iter().map(|e| e.id).collect::<Vec<_>>(),
            read.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[test]
fn a_rotation_moving_an_alerts_token_bumps_its_version_with_an_event() {
    use crossmatch_node::engine::Rotation;
    use crossmatch_protocol::FederationSecret;

    let mut a = member(1, "rotation-a");
    let mut b = member(2, "rotation-b");
    b.engine.add_record(shared(&["rot_target"]), "ben").unwrap();
    a.engine.add_record(shared(&["rot_target"]), "ana").unwrap();
    b.engine.ingest(&wires(&mut a)[0]).unwrap();
    let before = b.engine.alerts(None, None).unwrap().remove(0);
    let rotation = Rotation {
        new_epoch: 2,
        new_secret: FederationSecret::from_bytes([0x77; 32]),
        changeover_at_ms: T0,
        grace_ms: 2 * DAY_MS,
    };
    b.engine.begin_rotation(rotation).unwrap();
    b.clock.advance(1);
    // The publish step carries the rotation: the changeover, then the records tokenised again.
    wires(&mut b);
    let after = b.engine.alerts(None, None).unwrap().remove(0);
    assert_eq!(after.id, before.id, "the alert keeps its id");
    assert_ne!(after.token, before.token, "its row moved to the new token");
    assert!(after.version > before.version, "the move is a change of the alert");
    check_mirror(&b.engine);
    let log = events(&b.engine);
    let moved = log
        .iter()
        .find_map(|(_, event)| match &event.body {
            EventBody::Alert(alert) if alert.version == before.version + 1 => {
                Some((event.kind, alert.token_prefix))
            }
            _ => None,
        })
        .expect("an event for the move");
    assert_eq!(moved, (EventKind::AlertUpdated, after.token.as_bytes()[..4].try_into().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_head_is_published_before_the_node_is_ready() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed) = meshed_pair("events-ready", |_| {}).await;
        raise(&fed, "ready_target").await;
        let b = fed.node(1).unwrap().clone();
        let mut head = b.event_head();
        wait_until("the event at B", LIMIT, || {
            let seq = head.borrow_and_update().map_or(0, |head| head.seq);
            async move { seq >= 1 }
        })
        .await
        .unwrap();
        let before = b.wait_event_head().await.unwrap();
        drop((b, head));
        // B starts again alone: own-feed recovery waits for its deadline (no peer answers), and
        // until then nothing is published, though the log holds an event.
        fed.stop_all().await.unwrap();
        fed.recovery_deadline_secs = 4;
        fed.start(1).await.unwrap();
        let b = fed.node(1).unwrap().clone();
        assert!(!b.is_ready());
        assert_eq!(*b.event_head().borrow(), None, "no head before the node is ready");
        let EventRead::Events(events) = b.events_after(Some(before), 10).await.unwrap() else {
            panic!("a read waits for the head, then resumes");
        };
        assert!(b.is_ready(), "the read waited for readiness");
        assert!(events.is_empty());
        assert_eq!(b.wait_event_head().await.unwrap(), before);
        drop(b);
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("bounded");
}
