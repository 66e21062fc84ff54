//! `GET /v1/alerts/stream` over an in-process federation of two members: `hello` and the four
//! resyncs, exact resumption after a dropped client and after a node restart, heartbeats, the
//! stream's exemption from the request timeout, the in-flight cap and the idle timeout, its own
//! cap, its end when the node stops or its token is revoked (also while a backlog drains to a
//! slow reader), and an alert raised at one member reaching the other's stream within a second
//! with no raw identifier or token on the wire.

use std::time::{Duration, Instant};

use crossmatch_node::api::{self, Role, StreamLimits, User, Users, UsersHandle};
use crossmatch_node::daemon::{EventId, MAX_EVENTS_PER_READ, Node};
use crossmatch_node::http_client::sse::SseItem;
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::test_support::federation::{meshed_pair, raise};
use crossmatch_node::test_support::sse::{EventStream, Next, open_stream, open_stream_slowly};
use crossmatch_node::test_support::{TempDir, account, http, record};

const LIMIT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(20);
const ANALYST: &str = "cmt_stream-analyst";
const MONITOR: &str = "cmt_stream-monitor";

fn users() -> Users {
    Users::new([
        (api::token_hash(ANALYST), User { name: "ana".into(), role: Role::Analyst }),
        (api::token_hash(MONITOR), User { name: "mo".into(), role: Role::Monitor }),
    ])
}

struct Served {
    port: u16,
    users: UsersHandle,
    server: tokio::task::JoinHandle<()>,
}

/// Serves `node`'s API on a loopback port with the given limits.
async fn serve(
    node: &Node,
    requests: api::RequestLimits,
    streams: StreamLimits,
    connections: api::ConnectionLimits,
) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let users = UsersHandle::new(users());
    let router = api::router_with_streams(node.clone(), users.clone(), "M1", requests, streams);
    let server = tokio::spawn(api::serve_with(listener, router, node.clone(), connections));
    Served { port, users, server }
}

async fn serve_default(node: &Node) -> Served {
    serve(node, Default::default(), Default::default(), Default::default()).await
}

/// Two meshed members; member 1's API is what the tests stream from.
async fn federation(name: &str) -> (TempDir, LocalFederation) {
    meshed_pair(&format!("stream-{name}"), |_| {}).await
}

async fn head_seq(node: &Node) -> u64 {
    node.wait_event_head().await.unwrap().seq
}

async fn wait_head(node: &Node, seq: u64) {
    let node = node.clone();
    wait_until("the event head", WAIT, || {
        let node = node.clone();
        async move { head_seq(&node).await >= seq }
    })
    .await
    .unwrap();
}

fn opened(event: &crossmatch_node::http_client::sse::SseEvent) -> serde_json::Value {
    assert_eq!(event.event, "alert.opened", "{event:?}");
    let json = EventStream::json(event);
    assert_eq!(json["type"], "alert.opened");
    assert_eq!(json["id"].as_str(), event.id.as_deref());
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_resumes_exactly_after_a_dropped_client_and_after_a_restart() {
    tokio::time::timeout(LIMIT, async {
        let (_root, mut fed) = federation("resume").await;
        let node = fed.node(1).unwrap().clone();
        let served = serve_default(&node).await;
        // No cursor: hello at the head.
        let mut stream = open_stream(served.port, ANALYST, None, "").await;
        assert_eq!(stream.status, 200);
        assert_eq!(stream.headers["cache-control"], "no-cache");
        assert_eq!(stream.headers["x-accel-buffering"], "no");
        assert_eq!(stream.headers["content-type"], "text/event-stream");
        let hello = stream.event(WAIT).await;
        assert_eq!(hello.event, "hello");
        let data = EventStream::json(&hello);
        assert_eq!(data["cursor"], data["head"]);
        assert_eq!(hello.id.as_deref(), data["cursor"].as_str());
        raise(&fed, "resume_one").await;
        let first = opened(&stream.event(WAIT).await);
        // The client drops; two alerts are raised meanwhile.
        let cursor = first["id"].as_str().unwrap().to_owned();
        drop(stream);
        raise(&fed, "resume_two").await;
        raise(&fed, "resume_three").await;
        wait_head(&node, 3).await;
        // Resuming by Last-Event-ID gives exactly the two missed, in order, then nothing.
        let mut stream = open_stream(served.port, ANALYST, Some(&cursor), "").await;
        let hello = stream.event(WAIT).await;
        assert_eq!(hello.event, "hello");
        assert_eq!(EventStream::json(&hello)["cursor"], cursor.as_str());
        let two = opened(&stream.event(WAIT).await);
        let three = opened(&stream.event(WAIT).await);
        let seq = |json: &serde_json::Value| {
            json["id"].as_str().unwrap().split_once('-').unwrap().1.parse::<u64>().unwrap()
        };
        assert_eq!((seq(&two), seq(&three)), (seq(&first) + 1, seq(&first) + 2));
        assert!(matches!(stream.next(Duration::from_millis(300)).await, Next::Silent));
        drop(stream);
        // `?after=` works as the header does.
        let query = format!("?after={}", two["id"].as_str().unwrap());
        let mut stream = open_stream(served.port, ANALYST, None, &query).await;
        assert_eq!(stream.event(WAIT).await.event, "hello");
        assert_eq!(opened(&stream.event(WAIT).await)["id"], three["id"]);
        drop(stream);
        // A restart of the node: the same cursor resumes exactly.
        served.server.abort();
        let _ = served.server.await;
        drop(node);
        fed.stop(1).await.unwrap();
        fed.start(1).await.unwrap();
        let node = fed.node(1).unwrap().clone();
        let served = serve_default(&node).await;
        let mut stream = open_stream(served.port, ANALYST, Some(&cursor), "").await;
        assert_eq!(stream.event(WAIT).await.event, "hello");
        assert_eq!(opened(&stream.event(WAIT).await)["id"], two["id"]);
        assert_eq!(opened(&stream.event(WAIT).await)["id"], three["id"]);
        raise(&fed, "resume_four").await;
        assert_eq!(seq(&opened(&stream.event(WAIT).await)), seq(&three) + 1);
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_resync_reason_names_the_head_to_continue_from() {
    tokio::time::timeout(LIMIT, async {
        let (_root, fed) = federation("resync").await;
        let node = fed.node(1).unwrap().clone();
        node.with_engine(|engine| engine.set_event_log_keep(16)).await.unwrap();
        let served = serve_default(&node).await;
        for i in 0..20 {
            raise(&fed, &format!("resync_{i}")).await;
        }
        wait_head(&node, 20).await;
        let head = node.wait_event_head().await.unwrap();
        let resync = |cursor: String| {
            let port = served.port;
            async move {
                let mut stream = open_stream(port, ANALYST, Some(&cursor), "").await;
                let event = stream.event(WAIT).await;
                assert_eq!(event.event, "resync", "{cursor}");
                let data = EventStream::json(&event);
                assert_eq!(data["cursor"], head.to_string());
                assert_eq!(event.id, Some(head.to_string()));
                data["reason"].as_str().unwrap().to_owned()
            }
        };
        let at = |seq: u64| format!("{:016x}-{seq}", head.incarnation);
        assert_eq!(resync(at(1)).await, "behind_log");
        assert_eq!(resync(at(head.seq + 1)).await, "ahead_of_log");
        assert_eq!(resync(format!("{:016x}-1", head.incarnation ^ 1)).await, "unknown_incarnation");
        assert_eq!(resync("not-a-cursor".into()).await, "invalid_cursor");
        // The oldest kept event's predecessor is still a valid cursor.
        let mut stream = open_stream(served.port, ANALYST, Some(&at(head.seq - 16)), "").await;
        assert_eq!(stream.event(WAIT).await.event, "hello");
        let metrics =
            http::request_off_workers(served.port, "GET", "/metrics", Some(MONITOR), "", None)
                .await;
        assert!(
            metrics.body.contains("crossmatch_alert_stream_resyncs_total 4"),
            "{}",
            metrics.body
        );
        assert!(metrics.body.contains(&format!("crossmatch_alert_event_seq {}", head.seq)));
        assert!(metrics.body.contains("\ncrossmatch_alert_streams_open "));
        // A monitor may not stream.
        assert_eq!(open_stream(served.port, MONITOR, None, "").await.status, 403);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_outlives_the_request_bounds_and_ends_with_the_node_or_its_token() {
    tokio::time::timeout(LIMIT, async {
        let (_root, fed) = federation("bounds").await;
        let node = fed.node(1).unwrap().clone();
        let requests =
            api::RequestLimits { max_in_flight: 1, request_timeout: Duration::from_secs(1) };
        let streams = StreamLimits { heartbeat: Duration::from_millis(200), ..Default::default() };
        let connections = api::ConnectionLimits {
            idle_timeout: Duration::from_secs(2),
            ..api::ConnectionLimits::default()
        };
        let served = serve(&node, requests, streams, connections).await;
        let mut stream = open_stream(served.port, ANALYST, None, "").await;
        assert_eq!(stream.event(WAIT).await.event, "hello");
        // Heartbeats at the test interval, for longer than the request timeout and the idle
        // timeout together.
        let started = Instant::now();
        let mut heartbeats = 0;
        while started.elapsed() < Duration::from_secs(4) {
            match stream.next(Duration::from_secs(2)).await {
                Next::Item(SseItem::Comment(comment)) => {
                    assert_eq!(comment, "heartbeat");
                    heartbeats += 1;
                }
                other => panic!("expected heartbeats, got {other:?}"),
            }
        }
        assert!(heartbeats >= 5, "{heartbeats} heartbeats in 4 s at a 200 ms interval");
        // With one request in flight allowed and the stream open, other requests are served.
        let status =
            http::request_off_workers(served.port, "GET", "/v1/status", Some(MONITOR), "", None)
                .await;
        assert_eq!(status.status, 200);
        // It still carries events after all that.
        raise(&fed, "bounds_one").await;
        opened(&stream.event(WAIT).await);
        // A token revoked by a reload ends its streams at the next heartbeat.
        let mut other = open_stream(served.port, ANALYST, None, "").await;
        assert_eq!(other.event(WAIT).await.event, "hello");
        served.users.replace(Users::new([(
            api::token_hash(MONITOR),
            User { name: "mo".into(), role: Role::Monitor },
        )]));
        assert!(other.ends_within(Duration::from_secs(5)).await, "a revoked token's stream ends");
        assert!(stream.ends_within(Duration::from_secs(5)).await);
        drop((stream, other));
        served.users.replace(users());
        // The node stopping ends the stream within a second.
        let mut stream = open_stream(served.port, ANALYST, None, "").await;
        assert_eq!(stream.event(WAIT).await.event, "hello");
        let stopping = Instant::now();
        node.shutdown();
        assert!(stream.ends_within(Duration::from_secs(5)).await);
        assert!(stopping.elapsed() < Duration::from_secs(1), "{:?}", stopping.elapsed());
    })
    .await
    .expect("bounded");
}

/// The user is checked again at each heartbeat also while a backlog drains (the stream is
/// never idle then): a reader far behind, whose token is revoked, does not get the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_ends_its_stream_while_a_backlog_drains() {
    tokio::time::timeout(LIMIT, async {
        let (_root, fed) = federation("drain").await;
        let node = fed.node(1).unwrap().clone();
        // 32 reads' worth of alerts, raised in bulk (member 1 watches, member 0 shares): some
        // 5 MB of events, more than the server's write buffer and a socket's largest send
        // buffer (4 MB by default) together can take.
        let backlog = 32 * MAX_EVENTS_PER_READ;
        let handles: Vec<String> = (0..backlog).map(|i| format!("drain_{i}")).collect();
        let records = |share| handles.iter().map(|h| record(&[h.as_str()], share)).collect();
        node.add_records(records(false), "ana".into()).await.unwrap();
        fed.node(0).unwrap().add_records(records(true), "ana".into()).await.unwrap();
        wait_until("the backlog durable", LIMIT, || {
            let node = node.clone();
            async move { head_seq(&node).await >= backlog as u64 }
        })
        .await
        .unwrap();
        let head = node.wait_event_head().await.unwrap();
        assert_eq!(head.seq, backlog as u64);
        let streams = StreamLimits { heartbeat: Duration::from_millis(100), ..Default::default() };
        let served = serve(&node, Default::default(), streams, Default::default()).await;
        // A slow reader from the log's start, through a small socket buffer. The server is
        // draining when the first heartbeat after the revocation is due: still reading the log,
        // or waiting, once the buffers between them are full, for the reader to read again.
        let start = EventId { seq: 0, ..head }.to_string();
        let mut stream = open_stream_slowly(served.port, ANALYST, Some(&start), 4096).await;
        assert_eq!(stream.status, 200);
        assert_eq!(stream.event(WAIT).await.event, "hello");
        served.users.replace(Users::new([(
            api::token_hash(MONITOR),
            User { name: "mo".into(), role: Role::Monitor },
        )]));
        // Several heartbeats pass while the server waits to write the backlog.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut received = Vec::new();
        loop {
            match stream.next(WAIT).await {
                Next::Item(SseItem::Event(event)) => received.push(opened(&event)),
                Next::Item(SseItem::Comment(_)) => {}
                Next::Ended => break,
                Next::Silent => panic!("the stream neither ended nor went on"),
            }
        }
        assert!(!received.is_empty(), "the events written before the revocation arrive");
        assert!(
            received.len() < backlog,
            "a revoked token's stream went on draining its backlog ({} of {backlog} sent)",
            received.len()
        );
        let first = received[0]["id"].as_str().unwrap_or_default();
        assert!(first.ends_with("-1"), "the backlog is sent from its start: {first}");
        // Refused from now on.
        assert_eq!(open_stream(served.port, ANALYST, None, "").await.status, 401);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seventeenth_stream_is_refused_busy() {
    tokio::time::timeout(LIMIT, async {
        let (_root, fed) = federation("cap").await;
        let node = fed.node(1).unwrap().clone();
        // A short heartbeat: a dropped client's stream notices at its next write.
        let streams = StreamLimits { heartbeat: Duration::from_millis(300), ..Default::default() };
        let served = serve(&node, Default::default(), streams, Default::default()).await;
        let mut open = Vec::new();
        for _ in 0..api::MAX_STREAMS {
            let mut stream = open_stream(served.port, ANALYST, None, "").await;
            assert_eq!(stream.event(WAIT).await.event, "hello");
            open.push(stream);
        }
        let mut refused = open_stream(served.port, ANALYST, None, "").await;
        assert_eq!(refused.status, 503);
        assert!(refused.ends_within(WAIT).await);
        assert!(String::from_utf8_lossy(&refused.bytes).contains("\"busy\""));
        open.pop();
        // A slot given back is taken again.
        let reply = wait_until("a slot is free again", WAIT, || async {
            open_stream(served.port, ANALYST, None, "").await.status == 200
        })
        .await;
        assert!(reply.is_ok());
        let metrics =
            http::request_off_workers(served.port, "GET", "/metrics", Some(MONITOR), "", None)
                .await;
        let refused: u64 = metrics
            .body
            .lines()
            .find_map(|line| line.strip_prefix("crossmatch_alert_streams_refused_total "))
            .and_then(|value| value.parse().ok())
            .unwrap();
        assert!(refused >= 1);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_reaches_the_other_members_stream_within_a_second_and_leaks_nothing() {
    tokio::time::timeout(LIMIT, async {
        let (_root, fed) = federation("latency").await;
        let node = fed.node(1).unwrap().clone();
        let served = serve_default(&node).await;
        let mut stream = open_stream(served.port, ANALYST, None, "").await;
        assert_eq!(stream.event(WAIT).await.event, "hello");
        let handles = ["Lat_Handle_One", "lat_handle_two"];
        // B holds both; A adds them later: B's alerts come from A's gossip.
        for handle in handles {
            node.add_record(record(&[handle], false), "ana".into()).await.unwrap();
        }
        let mut worst = Duration::ZERO;
        for handle in handles {
            let added = Instant::now();
            fed.node(0).unwrap().add_record(record(&[handle], true), "ana".into()).await.unwrap();
            let event = stream.event(WAIT).await;
            worst = worst.max(added.elapsed());
            let json = opened(&event);
            assert_eq!(json["data"]["alert"]["counterparts"][0]["member"], "M0");
            assert_eq!(json["data"]["alert"]["version"], 1);
        }
        assert!(worst < Duration::from_secs(1), "slowest alert took {worst:?}");
        // Not a handle, a canonical form or a token in any byte received.
        let wire = String::from_utf8_lossy(&stream.bytes).to_lowercase();
        for handle in handles {
            let canonical = account(handle);
            assert!(!wire.contains(&handle.to_lowercase()));
            assert!(!wire.contains(&canonical.as_str().to_lowercase()));
            let canonical = account(handle);
            let token = node.with_engine(move |engine| engine.token(&canonical)).await.unwrap();
            let token = hex::encode(token.as_bytes());
            assert!(!wire.contains(&token));
            assert!(wire.contains(&token[..8]), "the token prefix is what identifies it");
        }
    })
    .await
    .expect("bounded");
}
