//! The alert event log's edges: a store put back under a newer data directory is caught by the
//! high-water file (a new incarnation, old cursors resync), a webhook new to a node with
//! history starts at the head with a `new_webhook` marker (and again for another URL), and a
//! rotation's token move, which announces nothing, still wakes the pump (which never polls).

use std::path::Path;
use std::time::Duration;

use crossmatch_node::api;
use crossmatch_node::clock::DAY_MS;
use crossmatch_node::daemon::{EventId, EventRead, Node, ResyncReason, WebhookSettings};
use crossmatch_node::engine::Rotation;
use crossmatch_node::http_client::TlsFiles;
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::test_support::sse::{EventStream, open_stream};
use crossmatch_node::test_support::webhook::{Delivery, Receiver};
use crossmatch_node::test_support::{TempDir, record};
use crossmatch_protocol::FederationSecret;

const LIMIT: Duration = Duration::from_secs(180);
const WAIT: Duration = Duration::from_secs(30);

/// Two meshed members; member 1 watches.
async fn federation(name: &str) -> (TempDir, LocalFederation) {
    let root = TempDir::new(&format!("event-edges-{name}"));
    let mut fed = LocalFederation::new(root.path(), &["M0", "M1"]);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    (root, fed)
}

/// Raises an alert at member 1: it holds `handle` unshared (its own feed does not change),
/// member 0 shares it.
async fn raise(fed: &LocalFederation, handle: &str) {
    let watcher = fed.node(1).unwrap();
    watcher.add_record(record(&[handle], false), "ana".into()).await.unwrap();
    fed.node(0).unwrap().add_record(record(&[handle], true), "ana".into()).await.unwrap();
}

/// Waits until `node`'s durable head reaches `seq`, and returns it.
async fn head_at(node: &Node, seq: u64) -> EventId {
    let waiting = node.clone();
    wait_until("the event head", WAIT, || {
        let node = waiting.clone();
        async move { node.wait_event_head().await.map_or(0, |head| head.seq) >= seq }
    })
    .await
    .unwrap();
    node.wait_event_head().await.unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A store copied aside, then put back over the data directory that moved on (its
/// `own-feed.log` and everything else kept): the high-water file beside it names a seq the
/// store is behind, so the node draws a new incarnation and a reader holding the last cursor is
/// told to resync, even once new events have taken the old seqs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_put_back_under_a_newer_data_directory_gets_a_new_incarnation() {
    tokio::time::timeout(LIMIT, async {
        let (root, mut fed) = federation("restore").await;
        raise(&fed, "restore_one").await;
        let first = head_at(fed.node(1).unwrap(), 1).await;
        fed.stop(1).await.unwrap();
        let db = fed.data_dir(1).join("db");
        let aside = root.path().join("db-aside");
        copy_dir(&db, &aside);
        fed.start(1).await.unwrap();
        raise(&fed, "restore_two").await;
        raise(&fed, "restore_three").await;
        let last = head_at(fed.node(1).unwrap(), 3).await;
        assert_eq!(last.incarnation, first.incarnation, "a plain restart keeps the incarnation");
        fed.stop(1).await.unwrap();
        // The old store back, over the live directory.
        std::fs::remove_dir_all(&db).unwrap();
        copy_dir(&aside, &db);
        fed.start(1).await.unwrap();
        let node = fed.node(1).unwrap().clone();
        // New events take the seqs the reader saw before: without the new incarnation its
        // cursor would resume into events that are not the ones it was given.
        raise(&fed, "restore_four").await;
        raise(&fed, "restore_five").await;
        let head = head_at(&node, last.seq).await;
        assert_ne!(head.incarnation, last.incarnation, "the incarnation changed");
        match node.events_after(Some(last), 10).await.unwrap() {
            EventRead::Resync { cursor, reason } => {
                assert_eq!(reason, ResyncReason::UnknownIncarnation);
                assert_eq!(cursor.incarnation, head.incarnation);
            }
            other => panic!("a cursor from before the restore must resync, got {other:?}"),
        }
        let (meta, _) = node.event_log_figures().await.unwrap();
        assert_eq!(meta.incarnation_from, first.seq + 1, "seqs continue from the old store's");
        // A plain restart after that keeps the new incarnation.
        drop(node);
        fed.stop(1).await.unwrap();
        fed.start(1).await.unwrap();
        let again = fed.node(1).unwrap().wait_event_head().await.unwrap();
        assert_eq!(again.incarnation, head.incarnation);
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("bounded");
}

fn keys() -> Vec<Vec<u8>> {
    vec![vec![0x31; 32]]
}

fn webhook(receiver: &Receiver) -> WebhookSettings {
    WebhookSettings {
        url: receiver.url(),
        keys: keys(),
        max_queue: 100,
        timeout: Duration::from_secs(5),
        max_backoff: Duration::from_millis(1500),
        tls: TlsFiles::default(),
        bodies: api::WEBHOOK_BODIES,
    }
}

fn seq_of(delivery: &Delivery) -> u64 {
    delivery.id.rsplit_once('-').and_then(|(_, seq)| seq.parse().ok()).unwrap_or(0)
}

/// A webhook configured on a node with history gets a `new_webhook` marker at the head, then
/// only what happens after; given another URL, the new receiver starts the same way; a
/// restart with the same URL sends nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_webhook_starts_at_the_head_with_a_marker_instead_of_history() {
    tokio::time::timeout(LIMIT, async {
        let (_root, mut fed) = federation("new-webhook").await;
        raise(&fed, "history_one").await;
        raise(&fed, "history_two").await;
        let history = head_at(fed.node(1).unwrap(), 2).await;
        fed.stop(1).await.unwrap();
        let receiver = Receiver::start(keys()).await;
        fed.set_webhook(1, Some(webhook(&receiver)));
        fed.start(1).await.unwrap();
        let accepted = receiver.wait_accepted(1, WAIT).await;
        let marker = &accepted[0];
        assert_eq!(marker.id, format!("resync-{history}"));
        let json = marker.json();
        assert_eq!(json["type"], "resync");
        assert_eq!(json["data"]["reason"], "new_webhook");
        assert_eq!(json["data"]["cursor"], history.to_string());
        assert_eq!(json["data"]["dropped"], 0);
        raise(&fed, "live_three").await;
        let accepted = receiver.wait_accepted(2, WAIT).await;
        assert_eq!(seq_of(&accepted[1]), history.seq + 1, "no history, the new event");
        assert_eq!(accepted[1].json()["type"], "alert.opened");
        let figures = fed.node(1).unwrap().webhook_figures().await.unwrap();
        assert_eq!(figures.dropped_events_total, 0, "history is not counted as dropped");
        // The same URL after a restart: the cursor is its own, nothing is sent again.
        fed.stop(1).await.unwrap();
        fed.start(1).await.unwrap();
        raise(&fed, "live_four").await;
        let accepted = receiver.wait_accepted(3, WAIT).await;
        assert_eq!(seq_of(&accepted[2]), history.seq + 2);
        assert!(!accepted[2].id.starts_with("resync-"));
        // Another URL: a new receiver, which starts at the head with its own marker.
        let moved = head_at(fed.node(1).unwrap(), history.seq + 2).await;
        fed.stop(1).await.unwrap();
        let other = Receiver::start(keys()).await;
        fed.set_webhook(1, Some(webhook(&other)));
        fed.start(1).await.unwrap();
        raise(&fed, "live_five").await;
        let accepted = other.wait_accepted(2, WAIT).await;
        assert_eq!(accepted[0].id, format!("resync-{moved}"));
        assert_eq!(accepted[0].json()["data"]["reason"], "new_webhook");
        assert_eq!(seq_of(&accepted[1]), moved.seq + 1);
        assert_eq!(receiver.accepted().len(), 3, "the old URL gets nothing more");
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("bounded");
}

/// A rotation moves the alert's row to the new token in a write that announces nothing; the
/// engine call that staged its event wakes the pump, so the `alert.updated` reaches a stream
/// already open (there is no poll to fall back on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotations_token_move_reaches_the_stream() {
    tokio::time::timeout(LIMIT, async {
        let (_root, fed) = federation("rotation-wake").await;
        raise(&fed, "rotated_target").await;
        let node = fed.node(1).unwrap().clone();
        let opened = head_at(&node, 1).await;
        let (address, bearer) = fed.serve_api(1).await.unwrap();
        let cursor = opened.to_string();
        let mut stream = open_stream(address.port(), &bearer, Some(&cursor), "").await;
        assert_eq!(stream.status, 200);
        assert_eq!(stream.event(WAIT).await.event, "hello");
        let alerts = node.with_engine(|engine| engine.alerts(None, None)).await.unwrap().unwrap();
        let (alert, before) = (alerts[0].id, alerts[0].version);
        node.begin_rotation(Rotation {
            new_epoch: 2,
            new_secret: FederationSecret::from_bytes([0x77; 32]),
            changeover_at_ms: 0,
            grace_ms: 2 * DAY_MS,
        })
        .await
        .unwrap();
        let event = stream.event(WAIT).await;
        assert_eq!(event.event, "alert.updated");
        let json = EventStream::json(&event);
        assert_eq!(json["data"]["alert"]["id"], alert);
        assert_eq!(json["data"]["alert"]["version"], before + 1, "the move's event");
        drop((stream, node));
        let mut fed = fed;
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("bounded");
}

/// The wake's source: every engine call that stages an event says so once, the rotation's
/// token move (which announces nothing) included; one that stages none does not.
#[test]
fn every_staged_event_is_reported_once_to_the_daemon_rotation_moves_included() {
    use crossmatch_node::engine::{Engine, EngineConfig};
    use crossmatch_node::test_support::{ManualClock, T0, record_until};
    use std::sync::Arc;

    let open = |n: u8, name: &str| {
        let dir = TempDir::new(&format!("event-edges-staged-{name}"));
        let clock = Arc::new(ManualClock::new(T0));
        let engine = Engine::open(dir.path(), EngineConfig::for_test(n), clock.clone()).unwrap();
        (dir, clock, engine)
    };
    let (_a_dir, _a_clock, mut a) = open(1, "a");
    let (_b_dir, b_clock, mut b) = open(2, "b");
    let shared = |handle: &str| record_until(&[handle], true, T0 + 30 * DAY_MS);
    b.add_record(shared("staged_target"), "ben").unwrap();
    assert!(!b.take_events_staged(), "a record with no match stages nothing");
    a.add_record(shared("staged_target"), "ana").unwrap();
    let wires: Vec<Vec<u8>> = a.publish().unwrap().iter().map(|batch| batch.to_wire()).collect();
    b.ingest(&wires[0]).unwrap();
    assert!(b.take_events_staged(), "the alert opened");
    assert!(!b.take_events_staged(), "reported once");
    let seq = b.store().event_meta().unwrap().seq;
    b.begin_rotation(Rotation {
        new_epoch: 2,
        new_secret: FederationSecret::from_bytes([0x77; 32]),
        changeover_at_ms: T0,
        grace_ms: 2 * DAY_MS,
    })
    .unwrap();
    b_clock.advance(1);
    // The move happens in whichever call gets to it (the first step, or the begin itself).
    let mut staged = b.take_events_staged();
    for _ in 0..1_000 {
        if b.store().event_meta().unwrap().seq > seq {
            break;
        }
        // The slice worker's step, else the publisher's (which carries a rotation too).
        if !b.background_step().unwrap() {
            b.publish().unwrap();
        }
        staged |= b.take_events_staged();
    }
    assert!(b.store().event_meta().unwrap().seq > seq, "the move wrote its event");
    assert!(staged, "and the call that wrote it says so");
    assert!(!b.take_events_staged(), "reported once");
}

/// At open, against the high-water file: a missing file (the first start of a version that
/// writes it) keeps the incarnation and is written; a file naming a later seq or another
/// incarnation, or one the node did not write, draws a new one; a store ahead of the file (events
/// committed after the last head published) is no restore.
#[test]
fn the_high_water_file_decides_the_incarnation_at_open() {
    use crossmatch_node::engine::{Engine, EngineConfig};
    use crossmatch_node::store::events::high_water::{
        HIGH_WATER_FILE_NAME, HighWater, HighWaterFile, read_high_water, write_high_water,
    };
    use crossmatch_node::test_support::{ManualClock, T0, record_until};
    use std::sync::Arc;

    let (a_dir, b_dir) = (TempDir::new("event-edges-mark-a"), TempDir::new("event-edges-mark-b"));
    let clock = Arc::new(ManualClock::new(T0));
    let open = |dir: &TempDir, n: u8| {
        Engine::open(dir.path(), EngineConfig::for_test(n), clock.clone()).unwrap()
    };
    let (mut a, mut b) = (open(&a_dir, 1), open(&b_dir, 2));
    let shared = |handle: &str| record_until(&[handle], true, T0 + 30 * DAY_MS);
    for handle in ["mark_one", "mark_two"] {
        b.add_record(shared(handle), "ben").unwrap();
        a.add_record(shared(handle), "ana").unwrap();
    }
    for wire in a.publish().unwrap().iter().map(|batch| batch.to_wire()) {
        b.ingest(&wire).unwrap();
    }
    let first = b.store().event_meta().unwrap();
    assert_eq!(first.seq, 2);
    let mark = |meta: crossmatch_node::store::events::EventMeta| {
        HighWaterFile::At(HighWater { incarnation: meta.incarnation, seq: meta.seq })
    };
    drop(b);
    let reopen = || {
        let engine = open(&b_dir, 2);
        let meta = engine.store().event_meta().unwrap();
        drop(engine);
        meta
    };
    // The store is ahead of the mark written at the first open (seq 0): kept, the mark moved.
    assert_eq!(reopen(), first);
    assert_eq!(read_high_water(b_dir.path()).unwrap(), mark(first));
    // No file: kept, and written.
    std::fs::remove_file(b_dir.path().join(HIGH_WATER_FILE_NAME)).unwrap();
    assert_eq!(reopen(), first);
    assert_eq!(read_high_water(b_dir.path()).unwrap(), mark(first));
    // A mark past the store: a new incarnation from the next seq, and the mark names it.
    let ahead = HighWater { incarnation: first.incarnation, seq: first.seq + 5 };
    write_high_water(b_dir.path(), ahead).unwrap();
    let renewed = reopen();
    assert_ne!(renewed.incarnation, first.incarnation);
    assert_eq!((renewed.incarnation_from, renewed.seq), (3, 2));
    assert_eq!(read_high_water(b_dir.path()).unwrap(), mark(renewed));
    assert_eq!(reopen(), renewed, "then a plain restart keeps it");
    // A mark of another incarnation, and a file the node did not write: new ones too.
    let other = HighWater { incarnation: renewed.incarnation ^ 1, seq: renewed.seq };
    write_high_water(b_dir.path(), other).unwrap();
    let third = reopen();
    assert_ne!(third.incarnation, renewed.incarnation);
    std::fs::write(b_dir.path().join(HIGH_WATER_FILE_NAME), b"not a mark\n").unwrap();
    let fourth = reopen();
    assert_ne!(fourth.incarnation, third.incarnation);
    assert_eq!(read_high_water(b_dir.path()).unwrap(), mark(fourth));
}
