//! `crossmatch alerts --follow` against a small Server-Sent Events server that speaks the
//! stream's wire form (`hello`, `resync`, alert events with ids `<16 hex>-<seq>`,
//! `Last-Event-ID`): it resumes after SIGKILL without a gap or a repeat, survives the API's
//! restart on the same port, prints a resync with a snapshot, stops with exit 3 when
//! refused, and streams through the mutual-TLS proxy; and against the node's own stream, end
//! to end.

use std::convert::Infallible;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::BIN;
use crossmatch_node::test_support::TempDir;
use crossmatch_node::test_support::sse::{EventStream, open_stream};

const TOKEN: &str = "cmt_follower";
const INCARNATION: u64 = 0x0123_4567_89ab_cdef;
const LIMIT: Duration = Duration::from_secs(120);
/// Longest wait for one line of the follower.
const LINE_LIMIT: Duration = Duration::from_secs(30);

fn event_id(seq: u64) -> String {
    format!("{INCARNATION:016x}-{seq}")
}

/// The stream's state: the events logged so far (seq from 1), and the cursors clients sent.
#[derive(Default)]
struct Log {
    events: Vec<Value>,
    resumed_from: Vec<Option<String>>,
}

#[derive(Clone, Default)]
struct Stream {
    log: Arc<Mutex<Log>>,
    grown: Arc<tokio::sync::Notify>,
}

impl Stream {
    /// Appends an `alert.opened` event for alert `seq`.
    fn append(&self) {
        let mut log = self.log.lock().unwrap();
        let seq = log.events.len() as u64 + 1;
        log.events.push(json!({
            "id": event_id(seq),
            "type": "alert.opened",
            "at_ms": 1_800_000_000_000u64 + seq,
            "data": {"alert": {"id": seq, "token_short": "9f2c01ab", "state": "open",
                               "records": [seq], "version": 1}},
        }));
        drop(log);
        self.grown.notify_waiters();
    }

    fn head(&self) -> u64 {
        self.log.lock().unwrap().events.len() as u64
    }

    /// One request: the stream, or the alerts page a resync reads.
    async fn answer(
        self,
        request: Request<Incoming>,
    ) -> Result<Response<http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>>, Infallible>
    {
        let authorised = request
            .headers()
            .get("authorization")
            .is_some_and(|value| value.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
        if !authorised {
            let body = r#"{"error":{"code":"unauthorized","message":"no valid bearer token"}}"#;
            return Ok(Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(Full::new(Bytes::from(body)).boxed_unsync())
                .unwrap());
        }
        if request.uri().path() == "/v1/alerts" {
            let alerts: Vec<Value> = self
                .log
                .lock()
                .unwrap()
                .events
                .iter()
                .map(|event| event["data"]["alert"].clone())
                .collect();
            let body = json!({ "alerts": alerts, "next_after_id": null }).to_string();
            return Ok(Response::new(Full::new(Bytes::from(body)).boxed_unsync()));
        }
        if request.uri().path() != "/v1/alerts/stream" {
            let mut response = Response::new(Full::new(Bytes::new()).boxed_unsync());
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
        let cursor = request
            .headers()
            .get("last-event-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        self.log.lock().unwrap().resumed_from.push(cursor.clone());
        let head = self.head();
        let parsed = cursor.as_deref().and_then(|cursor| {
            let (incarnation, seq) = cursor.split_once('-')?;
            Some((u64::from_str_radix(incarnation, 16).ok()?, seq.parse::<u64>().ok()?))
        });
        let (first, mut after) = match (cursor.as_deref(), parsed) {
            (None, _) => (hello(&event_id(head), head), head),
            (Some(_), Some((INCARNATION, seq))) if seq <= head => {
                (hello(&event_id(seq), head), seq)
            }
            (Some(_), Some((INCARNATION, _))) => (resync(head, "ahead_of_log"), head),
            (Some(_), Some(_)) => (resync(head, "unknown_incarnation"), head),
            (Some(_), None) => (resync(head, "invalid_cursor"), head),
        };
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(16);
        let body = StreamBody::new(futures_util::stream::unfold(receiver, |mut receiver| async {
            let bytes = receiver.recv().await?;
            Some((Ok::<_, Infallible>(Frame::data(bytes)), receiver))
        }));
        tokio::spawn(async move {
            if sender.send(Bytes::from(first)).await.is_err() {
                return;
            }
            loop {
                let grown = self.grown.notified();
                let next: Vec<Value> =
                    self.log.lock().unwrap().events.iter().skip(after as usize).cloned().collect();
                for event in next {
                    after += 1;
                    let frame = format!(
                        "id: {}\nevent: {}\ndata: {}\n\n",
                        event["id"].as_str().unwrap(),
                        event["type"].as_str().unwrap(),
                        event
                    );
                    if sender.send(Bytes::from(frame)).await.is_err() {
                        return;
                    }
                }
                // A heartbeat now and then, as the node sends every 15 s.
                if tokio::time::timeout(Duration::from_millis(500), grown).await.is_err()
                    && sender.send(Bytes::from(": heartbeat\n\n")).await.is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(body.boxed_unsync())
            .unwrap())
    }
}

fn hello(cursor: &str, head: u64) -> String {
    let data = json!({ "cursor": cursor, "head": event_id(head) });
    format!("id: {cursor}\nevent: hello\ndata: {data}\n\n")
}

fn resync(head: u64, reason: &str) -> String {
    let data = json!({ "cursor": event_id(head), "reason": reason });
    format!("id: {}\nevent: resync\ndata: {data}\n\n", event_id(head))
}

/// Serves `stream` on `address` until the task is aborted (its connections end with it).
async fn serve(stream: Stream, address: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    let stream = stream.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            stream.clone().answer(request)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    (address, task)
}

/// A follower process and its stdout, line by line.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    fn start(address: SocketAddr, cursor_file: &std::path::Path, token: &str) -> Self {
        Self::start_with(&format!("http://{address}"), cursor_file, &[("CROSSMATCH_TOKEN", token)])
    }

    fn start_with(api: &str, cursor_file: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .args(["alerts", "--follow", "--cursor-file", cursor_file.to_str().unwrap()])
            .env_clear()
            .env("CROSSMATCH_API", api)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = sync_channel(1024);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line, as JSON; fails the test after [`LINE_LIMIT`].
    async fn line(&self) -> Value {
        let lines = &self.lines;
        let line = tokio::task::block_in_place(|| lines.recv_timeout(LINE_LIMIT))
            .expect("the follower printed no line in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// SIGKILL, as a crash would.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Follower {
    /// A test that fails part way must not leave the process following forever: it is killed
    /// and reaped whether the test passes or not (after [`Follower::kill`], this does nothing).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_dropped_follower_is_killed_and_reaped() {
    let dir = TempDir::new("follow-dropped");
    // Nothing listens on the discard port: the follower retries forever.
    let closed: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let follower = Follower::start(closed, &dir.path().join("cursor"), TOKEN);
    let pid = follower.child.id();
    std::thread::sleep(Duration::from_millis(200));
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "it was following");
    drop(follower);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "killed and reaped");
}

/// Waits until the cursor file holds `cursor`.
async fn cursor_becomes(file: &std::path::Path, cursor: &str) {
    let deadline = tokio::time::Instant::now() + LINE_LIMIT;
    while std::fs::read_to_string(file).unwrap_or_default().trim() != cursor {
        assert!(tokio::time::Instant::now() < deadline, "the cursor never became {cursor}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_resumes_after_sigkill_and_after_the_api_restarts() {
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("cli-follow");
        let cursor_file = dir.path().join("cursor");
        let stream = Stream::default();
        for _ in 0..3 {
            stream.append();
        }
        // From the start of the log: the three events, one line each, the cursor after each.
        std::fs::write(&cursor_file, format!("{}\n", event_id(0))).unwrap();
        let (address, server) = serve(stream.clone(), "127.0.0.1:0".parse().unwrap()).await;
        let follower = Follower::start(address, &cursor_file, TOKEN);
        for seq in 1..=3 {
            let line = follower.line().await;
            assert_eq!(line["id"], event_id(seq), "{line}");
            assert_eq!(line["type"], "alert.opened");
            assert_eq!(line["data"]["alert"]["id"], seq);
        }
        cursor_becomes(&cursor_file, &event_id(3)).await;
        follower.kill();
        // Two events while it is dead; the restarted follower prints exactly those.
        stream.append();
        stream.append();
        let follower = Follower::start(address, &cursor_file, TOKEN);
        for seq in 4..=5 {
            assert_eq!(follower.line().await["id"], event_id(seq));
        }
        cursor_becomes(&cursor_file, &event_id(5)).await;
        assert_eq!(stream.log.lock().unwrap().resumed_from.last().unwrap(), &Some(event_id(3)));
        // The API stops (its connections with it) and comes back on the same port: the
        // follower reconnects with its cursor and prints what came meanwhile, once.
        server.abort();
        let _ = server.await;
        stream.append();
        let (_, server) = serve(stream.clone(), address).await;
        let line = follower.line().await;
        assert_eq!(line["id"], event_id(6), "{line}");
        stream.append();
        assert_eq!(follower.line().await["id"], event_id(7));
        assert_eq!(stream.log.lock().unwrap().resumed_from.last().unwrap(), &Some(event_id(5)));
        follower.kill();
        server.abort();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_prints_its_line_then_a_snapshot_then_goes_on() {
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("cli-resync");
        let cursor_file = dir.path().join("cursor");
        let stream = Stream::default();
        stream.append();
        stream.append();
        // A cursor of another incarnation (a restored node's, say).
        std::fs::write(&cursor_file, "00000000000000ff-9\n").unwrap();
        let (address, server) = serve(stream.clone(), "127.0.0.1:0".parse().unwrap()).await;
        let follower = Follower::start(address, &cursor_file, TOKEN);
        let line = follower.line().await;
        assert_eq!(line["type"], "resync", "{line}");
        assert_eq!(line["data"]["reason"], "unknown_incarnation");
        assert_eq!(line["data"]["cursor"], event_id(2));
        for id in 1..=2 {
            let line = follower.line().await;
            assert_eq!(line["type"], "alert.snapshot", "{line}");
            assert_eq!(line["data"]["alert"]["id"], id);
        }
        cursor_becomes(&cursor_file, &event_id(2)).await;
        stream.append();
        assert_eq!(follower.line().await["id"], event_id(3));
        cursor_becomes(&cursor_file, &event_id(3)).await;
        follower.kill();
        server.abort();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_follower_stops_with_exit_3() {
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("cli-follow-refused");
        let stream = Stream::default();
        let (address, server) = serve(stream.clone(), "127.0.0.1:0".parse().unwrap()).await;
        let mut follower = Follower::start(address, &dir.path().join("cursor"), "cmt_revoked");
        let status = tokio::task::block_in_place(|| {
            let deadline = std::time::Instant::now() + LINE_LIMIT;
            loop {
                if let Some(status) = follower.child.try_wait().unwrap() {
                    return status;
                }
                assert!(std::time::Instant::now() < deadline, "the follower did not stop");
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        assert_eq!(status.code(), Some(3));
        assert!(!dir.path().join("cursor").exists());
        server.abort();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_goes_through_the_mutual_tls_proxy() {
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("cli-follow-tls");
        let pki = super::pki(dir.path());
        let stream = Stream::default();
        stream.append();
        let (address, server) = serve(stream.clone(), "127.0.0.1:0".parse().unwrap()).await;
        let proxy =
            crossmatch_node::test_support::tls_proxy::start(address, &pki.certificates).await;
        let file = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
        let cursor_file = dir.path().join("cursor");
        std::fs::write(&cursor_file, format!("{}\n", event_id(0))).unwrap();
        let env = [
            ("CROSSMATCH_TOKEN", TOKEN),
            ("CROSSMATCH_CA_FILE", ca.as_str()),
            ("CROSSMATCH_CLIENT_CERT", cert.as_str()),
            ("CROSSMATCH_CLIENT_KEY", key.as_str()),
        ];
        let api = format!("https://localhost:{}", proxy.address.port());
        let follower = Follower::start_with(&api, &cursor_file, &env);
        assert_eq!(follower.line().await["id"], event_id(1));
        // Streamed through the proxy as it comes, not when the answer ends.
        stream.append();
        assert_eq!(follower.line().await["id"], event_id(2));
        cursor_becomes(&cursor_file, &event_id(2)).await;
        follower.kill();
        drop(proxy);
        server.abort();
    })
    .await
    .expect("test timed out");
}

/// The node's own stream, end to end: FR's follower prints the `alert.opened` of an account
/// both members hold; killed, it misses the next match and, restarted from its cursor file,
/// prints exactly that event first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_the_nodes_own_stream_and_resumes_after_sigkill() {
    tokio::time::timeout(LIMIT, async {
        let m = super::members("follow-node").await;
        let dir = TempDir::new("cli-follow-node");
        let cursor_file = dir.path().join("cursor");
        let (de, fr) = (super::analyst(m.ports[0]), super::analyst(m.ports[1]));
        // Follow from FR's head as it is now, before any alert.
        let mut hello = open_stream(m.ports[1], super::ANALYST, None, "").await;
        let event = hello.event(LINE_LIMIT).await;
        assert_eq!(event.event, "hello", "{event:?}");
        let head = EventStream::json(&event)["head"].as_str().unwrap().to_owned();
        drop(hello);
        std::fs::write(&cursor_file, format!("{head}\n")).unwrap();
        let follower = Follower::start_with(
            &super::api_url(m.ports[1]),
            &cursor_file,
            &[("CROSSMATCH_TOKEN", super::ANALYST)],
        );
        let add = |env: Vec<(&'static str, String)>, handle: &'static str| async move {
            let mut args = vec!["records", "add", "--kind", "account", "--json"];
            args.extend(super::RECORD_OPTIONS);
            let run = super::cli(&args, &super::env_ref(&env), &format!("{handle}\n")).await;
            assert_eq!(run.code, Some(0), "{run:?}");
            serde_json::from_str::<Value>(run.stdout.lines().next().unwrap()).unwrap()["id"]
                .as_u64()
                .unwrap()
        };
        add(de.clone(), "@follow_first").await;
        let first = add(fr.clone(), "@follow_first").await;
        let line = follower.line().await;
        assert_eq!(line["type"], "alert.opened", "{line}");
        assert_eq!(line["data"]["alert"]["records"], json!([first]), "{line}");
        let seen: u64 = line["id"].as_str().unwrap().rsplit_once('-').unwrap().1.parse().unwrap();
        cursor_becomes(&cursor_file, line["id"].as_str().unwrap()).await;
        follower.kill();
        // While it is dead, FR's second account matches DE's.
        let second = add(fr.clone(), "@follow_second").await;
        add(de.clone(), "@follow_second").await;
        super::alerts_until(m.ports[1], |alerts| alerts.len() == 2).await;
        let follower = Follower::start_with(
            &super::api_url(m.ports[1]),
            &cursor_file,
            &[("CROSSMATCH_TOKEN", super::ANALYST)],
        );
        let line = follower.line().await;
        let (incarnation, seq) = line["id"].as_str().unwrap().rsplit_once('-').unwrap();
        assert_eq!(format!("{incarnation}-{}", seq.parse::<u64>().unwrap()), line["id"]);
        assert_eq!(seq.parse::<u64>().unwrap(), seen + 1, "no gap, no repeat: {line}");
        assert_eq!(line["type"], "alert.opened", "{line}");
        assert_eq!(line["data"]["alert"]["records"], json!([second]), "{line}");
        follower.kill();
    })
    .await
    .expect("test timed out");
}
