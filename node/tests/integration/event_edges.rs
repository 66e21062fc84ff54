//! The alert event log's edges: a store put back under a newer data directory, or restored by
//! the backup runbook over a live directory or into an empty one, is caught by the high-water
//! file (a new incarnation, old cursors resync), a webhook new to a node with
//! history starts at the head with a `new_webhook` marker (and again for another URL) and gets
//! the events the start itself causes after it, and a
//! rotation's token move, which announces nothing, still wakes the pump (which never polls), and
//! a high-water file that cannot be written holds the head back and is counted in `/metrics`.

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
use crossmatch_node::test_support::{TempDir, http, record};
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

/// Waits until `node` has a durable head that stays the same across two reads a second
/// apart, and returns it.
async fn still_head(node: &Node) -> EventId {
    let mut last = head_at(node, 1).await;
    tokio::time::timeout(WAIT, async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = node.wait_event_head().await.unwrap();
            if now == last {
                return now;
            }
            last = now;
        }
    })
    .await
    .expect("the event head stands still")
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

/// Asserts that member 1's webhook cursor is already settled for `receiver`, at `head`, as
/// soon as its start returned: settled when the store was opened, before anything of this run
/// could stage an event.
async fn assert_settled_at(fed: &LocalFederation, receiver: &Receiver, head: EventId) {
    let node = fed.node(1).unwrap();
    let state = node.with_engine(|engine| engine.store().webhook_state()).await.unwrap().unwrap();
    let url = *blake3::hash(receiver.url().as_bytes()).as_bytes();
    assert_eq!(state.url_hash, Some(url), "the cursor is the new URL's at start");
    assert_eq!((state.incarnation, state.delivered_seq), (head.incarnation, head.seq));
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
        assert_settled_at(&fed, &receiver, history).await;
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
        // Settled before the start returned, so the event raised next is this run's, never
        // history (a cursor settled later by the worker would count it as history).
        assert_settled_at(&fed, &other, moved).await;
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

/// An event the start itself causes (member 0 left member 1's roster while it was stopped,
/// so the start withdraws its adds and the alert they raised changes) is this run's: a new
/// webhook gets it after its `new_webhook` marker, never counted as history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_start_causes_reaches_a_new_webhook_after_its_marker() {
    tokio::time::timeout(LIMIT, async {
        let (_root, mut fed) = federation("start-event").await;
        raise(&fed, "start_withdrawn").await;
        let node = fed.node(1).unwrap().clone();
        let history = still_head(&node).await;
        let alerts = node.with_engine(|engine| engine.alerts(None, None)).await.unwrap().unwrap();
        assert_eq!(alerts.len(), 1);
        let alert = alerts[0].id;
        drop(node);
        fed.stop(1).await.unwrap();
        let receiver = Receiver::start(keys()).await;
        fed.set_webhook(1, Some(webhook(&receiver)));
        fed.set_roster(1, &[1]);
        fed.start(1).await.unwrap();
        let accepted = receiver.wait_accepted(2, WAIT).await;
        assert_eq!(accepted[0].id, format!("resync-{history}"), "the marker first");
        assert_eq!(accepted[0].json()["data"]["reason"], "new_webhook");
        assert_eq!(seq_of(&accepted[1]), history.seq + 1, "the start's event, not history");
        let json = accepted[1].json();
        assert!(
            json["type"] == "alert.closed" || json["type"] == "alert.updated",
            "the withdrawal's event: {json}"
        );
        assert_eq!(json["data"]["alert"]["id"], alert);
        let figures = fed.node(1).unwrap().webhook_figures().await.unwrap();
        assert_eq!(figures.dropped_events_total, 0);
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

/// At open, against the high-water file: a missing file on a store that never wrote one (the
/// first start of a version that writes it) keeps the incarnation and is written, on a store
/// that did draws a new one; a file naming a later seq or another
/// incarnation, or one the node did not write, draws a new one; a store ahead of the file (events
/// committed after the last head published) is no restore.
#[test]
fn the_high_water_file_decides_the_incarnation_at_open() {
    use crossmatch_node::engine::{Engine, EngineConfig};
    use crossmatch_node::store::events::EVENT_HIGH_WATER_WRITTEN;
    use crossmatch_node::store::events::high_water::{
        HIGH_WATER_FILE_NAME, HighWater, HighWaterFile, read_high_water, write_high_water,
    };
    use crossmatch_node::store::keys;
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
    // No file on a store that never wrote one (the first start of a version that writes it):
    // kept, written, and the store's flag set again.
    let flag = || keys::meta(EVENT_HIGH_WATER_WRITTEN);
    let engine = open(&b_dir, 2);
    assert_eq!(engine.store().get::<bool>(&flag()).unwrap(), Some(true), "set at open");
    let mut txn = engine.store().txn();
    txn.remove(flag());
    txn.commit_durable().unwrap();
    drop(engine);
    std::fs::remove_file(b_dir.path().join(HIGH_WATER_FILE_NAME)).unwrap();
    assert_eq!(reopen(), first);
    assert_eq!(read_high_water(b_dir.path()).unwrap(), mark(first));
    let engine = open(&b_dir, 2);
    assert_eq!(engine.store().get::<bool>(&flag()).unwrap(), Some(true), "set once written");
    drop(engine);
    // No file on a store that wrote one (restored into a directory without it): a new one.
    std::fs::remove_file(b_dir.path().join(HIGH_WATER_FILE_NAME)).unwrap();
    let missing = reopen();
    assert_ne!(missing.incarnation, first.incarnation);
    assert_eq!(read_high_water(b_dir.path()).unwrap(), mark(missing));
    // A mark past the store: a new incarnation from the next seq, and the mark names it.
    let ahead = HighWater { incarnation: missing.incarnation, seq: missing.seq + 5 };
    write_high_water(b_dir.path(), ahead).unwrap();
    let renewed = reopen();
    assert_ne!(renewed.incarnation, missing.incarnation);
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

/// Puts the data directory `from` into `to` with each top-level entry not in `skip` replacing
/// its counterpart in `to` (a directory whole: this models replacing `db/` under a live data
/// directory, the misuse the README's runbook forbids, rather than `tar -x`, which would merge
/// the store's files); what `to` holds that the copy lacks is kept.
fn unpack_over(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if skip.iter().any(|name| entry.file_name() == *name) {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if target.exists() {
                std::fs::remove_dir_all(&target).unwrap();
            }
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The backup runbook's copy (README, "Backup and restore": the data directory without
/// `own-feed.log` and `event-log.head`), taken with the node stopped: unpacked over the live
/// directory that moved on since, the live `event-log.head` stays and the store is behind it,
/// so a new incarnation is drawn; unpacked into an empty directory with `own-feed.log` kept
/// (which hides the restore from the feed's guard), the missing file on a store that wrote
/// one draws a new incarnation too; a plain restart keeps it.
#[test]
fn a_store_restored_by_the_runbook_gets_a_new_incarnation_over_a_live_or_an_empty_directory() {
    use crossmatch_node::engine::{Engine, EngineConfig};
    use crossmatch_node::store::events::EventMeta;
    use crossmatch_node::test_support::{ManualClock, T0, record_until};
    use std::sync::Arc;

    let (a_dir, b_dir) =
        (TempDir::new("event-edges-runbook-a"), TempDir::new("event-edges-runbook-b"));
    let clock = Arc::new(ManualClock::new(T0));
    let open =
        |dir: &Path, n: u8| Engine::open(dir, EngineConfig::for_test(n), clock.clone()).unwrap();
    let meta_after_open = |dir: &Path| -> EventMeta {
        let engine = open(dir, 2);
        let meta = engine.store().event_meta().unwrap();
        drop(engine);
        meta
    };
    let mut a = open(a_dir.path(), 1);
    let shared = |handle: &str| record_until(&[handle], true, T0 + 30 * DAY_MS);
    // Two alerts at B, then one more, each through a batch of A's.
    let mut raise_at_b = |handles: &[&str]| {
        let mut b = open(b_dir.path(), 2);
        for handle in handles {
            b.add_record(shared(handle), "ben").unwrap();
            a.add_record(shared(handle), "ana").unwrap();
        }
        for wire in a.publish().unwrap().iter().map(|batch| batch.to_wire()) {
            b.ingest(&wire).unwrap();
        }
        let meta = b.store().event_meta().unwrap();
        drop(b);
        meta
    };
    let backed_up = raise_at_b(&["runbook_one", "runbook_two"]);
    assert_eq!(backed_up.seq, 2);
    // The backup, node stopped; `own-feed.log` copied too, for the restore that keeps it.
    let backup = TempDir::new("event-edges-runbook-backup");
    copy_dir(b_dir.path(), backup.path());
    std::fs::remove_file(backup.path().join("event-log.head")).unwrap();
    let live = raise_at_b(&["runbook_three"]);
    assert_eq!(live.seq, 3);
    // An ordinary restart keeps the incarnation (and moves the file to seq 3).
    let restarted = meta_after_open(b_dir.path());
    assert_eq!(restarted, live, "a restart is no restore");
    // Over the live directory: its own-feed.log and event-log.head stay.
    unpack_over(backup.path(), b_dir.path(), &["own-feed.log"]);
    let over_live = meta_after_open(b_dir.path());
    assert_eq!(over_live.seq, backed_up.seq, "the old store is back");
    assert_ne!(over_live.incarnation, live.incarnation, "over a live directory: a new incarnation");
    assert_eq!(meta_after_open(b_dir.path()), over_live, "then a restart keeps it");
    // Into an empty directory, own-feed.log kept: no file, on a store that wrote one.
    let empty = TempDir::new("event-edges-runbook-empty");
    unpack_over(backup.path(), empty.path(), &[]);
    assert!(empty.path().join("own-feed.log").exists());
    let into_empty = meta_after_open(empty.path());
    assert_eq!(into_empty.seq, backed_up.seq);
    assert_ne!(into_empty.incarnation, backed_up.incarnation, "into an empty directory: new");
    assert_eq!(meta_after_open(empty.path()), into_empty, "then a restart keeps it");
}

/// The figure `name` in the node's `/metrics` text.
async fn metric(port: u16, bearer: &str, name: &str) -> u64 {
    let reply = http::request_off_workers(port, "GET", "/metrics", Some(bearer), "", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let prefix = format!("{name} ");
    reply
        .body
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {}", reply.body))
}

/// The high-water file cannot be replaced (a directory stands in its place, as a full disk
/// would fail the write): the pump holds the head where it was, so the new event does not go
/// out, and counts each failed pass in `/metrics`; once the file can be written again the head
/// moves on by itself (the pump retries). A restart with nothing new then leaves the file as
/// it was: the pump starts from the mark open left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_high_water_write_holds_the_head_and_is_counted() {
    tokio::time::timeout(LIMIT, async {
        let (_root, mut fed) = federation("high-water-failure").await;
        raise(&fed, "failure_one").await;
        let node = fed.node(1).unwrap().clone();
        // A raise may stage more than one event: the file is swapped once the head stood still.
        let before = still_head(&node).await;
        let (address, bearer) = fed.serve_api(1).await.unwrap();
        let failures = "crossmatch_alert_high_water_failures_total";
        assert_eq!(metric(address.port(), &bearer, failures).await, 0);
        let file = fed.data_dir(1).join("event-log.head");
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        std::fs::write(file.join("blocker"), b"x").unwrap();
        raise(&fed, "failure_two").await;
        let failed_passes = |at_least: u64| {
            let node = node.clone();
            wait_until("failed passes counted", WAIT, move || {
                let node = node.clone();
                async move { node.alert_head_failures() >= at_least }
            })
        };
        failed_passes(2).await.unwrap();
        assert!(metric(address.port(), &bearer, failures).await >= 2);
        // Once a pass failed nothing newer is published: the head holds (at `before`, or past
        // it if a late event of the first raise went out before the swap) while more fail.
        let held = (*node.event_head().borrow()).expect("a head");
        assert_eq!(held.incarnation, before.incarnation);
        assert!(held.seq >= before.seq, "{held} after {before}");
        failed_passes(node.alert_head_failures() + 2).await.unwrap();
        assert_eq!(*node.event_head().borrow(), Some(held), "the head waits for the file");
        std::fs::remove_dir_all(&file).unwrap();
        let after = head_at(&node, held.seq + 1).await;
        assert_eq!(after.incarnation, before.incarnation);
        let written = std::fs::read_to_string(&file).unwrap();
        assert_eq!(written, format!("{after}\n"), "the file names the head published");
        // A restart with nothing new: open finds the file naming the store, and the pump starts
        // from that mark, so the file is not replaced (a replacement is a new inode).
        drop(node);
        fed.stop(1).await.unwrap();
        let inode =
            |path: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap());
        let stopped = inode(&file);
        fed.start(1).await.unwrap();
        let again = fed.node(1).unwrap().wait_event_head().await.unwrap();
        assert_eq!(again, after);
        assert_eq!(inode(&file), stopped, "a start with no new event writes the file no more");
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("bounded");
}
