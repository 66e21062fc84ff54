//! The local HTTP API over an in-process federation of two members: roles and tokens are
//! enforced, bad input is refused without being echoed, and records added through it match.

use std::time::Duration;

use crossmatch_node::api;
use crossmatch_node::audit;
use crossmatch_node::local::wait_until;
use crossmatch_node::test_support::api_node::{
    ADMIN_TOKEN as ADMIN, ANALYST_TOKEN as ANALYST, ApiMembers, MONITOR_TOKEN as MONITOR,
    api_members, api_users as users,
};
use crossmatch_node::test_support::http;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

/// Two meshed members, each serving the API on a loopback port of its own.
async fn federation(name: &str) -> ApiMembers {
    api_members(&format!("api-{name}")).await
}

/// One request, off the async workers.
async fn call(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> http::Reply {
    let body = body.map(|b| serde_json::to_vec(&b).unwrap());
    http::request_off_workers(port, method, path, bearer, "application/json", body).await
}

async fn raw(port: u16, method: &str, path: &str, bearer: &str, body: Vec<u8>) -> http::Reply {
    http::request_off_workers(port, method, path, Some(bearer), "application/json", Some(body))
        .await
}

fn error_code(reply: &http::Reply) -> String {
    reply.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_tokens_are_enforced() {
    tokio::time::timeout(LIMIT, async {
        let f = federation("roles").await;
        let port = f.ports[0];
        // Health needs no token.
        assert_eq!(call(port, "GET", "/livez", None, None).await.status, 200);
        assert_eq!(call(port, "GET", "/readyz", None, None).await.status, 200);
        // Everything else does, and a wrong one is as good as none.
        for bearer in [None, Some("cmt_wrong"), Some("")] {
            let reply = call(port, "GET", "/v1/status", bearer, None).await;
            assert_eq!(reply.status, 401, "{bearer:?}");
            assert!(reply.headers.to_ascii_lowercase().contains("www-authenticate: bearer"));
            assert_eq!(error_code(&reply), "unauthorized");
        }
        // A monitor reads status and metrics, and nothing else.
        let status = call(port, "GET", "/v1/status", Some(MONITOR), None).await;
        assert_eq!(status.status, 200);
        assert_eq!(status.json()["member_id"], "DE");
        assert_eq!(status.json()["peers"], 1);
        assert_eq!(status.json()["api_auth_failures"], 3);
        assert_eq!(status.json()["roster_mismatches"], json!([]));
        let metrics = call(port, "GET", "/metrics", Some(MONITOR), None).await;
        assert_eq!(metrics.status, 200);
        assert!(metrics.body.contains("\ncrossmatch_peers 1\n"), "{}", metrics.body);
        assert!(metrics.body.contains("# TYPE crossmatch_verifications_total counter"));
        let add = call(
            port,
            "POST",
            "/v1/records",
            Some(MONITOR),
            Some(http::account_record("@a", true)),
        )
        .await;
        assert_eq!((add.status, error_code(&add).as_str()), (403, "forbidden"));
        assert_eq!(call(port, "GET", "/v1/alerts", Some(MONITOR), None).await.status, 403);
        // An analyst works with records and alerts, not fork evidence; an admin may.
        assert_eq!(call(port, "GET", "/v1/alerts", Some(ANALYST), None).await.status, 200);
        assert_eq!(call(port, "GET", "/v1/forks", Some(ANALYST), None).await.status, 403);
        let forks = call(port, "GET", "/v1/forks", Some(ADMIN), None).await;
        assert_eq!(forks.status, 200);
        assert_eq!(forks.json()["forks"], json!([]));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_without_being_echoed() {
    tokio::time::timeout(LIMIT, async {
        let f = federation("input").await;
        let port = f.ports[0];
        let secret = "handle_nobody_may_see";
        let post = |body: Vec<u8>| raw(port, "POST", "/v1/records", ANALYST, body);

        let mut refusals = Vec::new();
        // Malformed JSON around an identifier.
        refusals.push((
            "invalid_json",
            post(format!("{{\"identifiers\": [\"@{secret}\"").into_bytes()).await,
        ));
        // The identifier where a boolean belongs.
        let mut record = http::account_record("@ok_handle", true);
        record["share"] = json!(format!("@{secret}"));
        refusals.push(("invalid_json", post(serde_json::to_vec(&record).unwrap()).await));
        // An unknown field.
        let mut record = http::account_record("@ok_handle", true);
        record[secret] = json!(1);
        refusals.push(("invalid_json", post(serde_json::to_vec(&record).unwrap()).await));
        // An identifier the canonical rules refuse.
        let record = http::account_record(&format!("@{secret} with spaces"), true);
        refusals.push(("identifier_refused", post(serde_json::to_vec(&record).unwrap()).await));
        // An unknown kind.
        let mut record = http::account_record("@ok_handle", true);
        record["identifiers"][0]["kind"] = json!(secret);
        refusals.push(("unknown_kind", post(serde_json::to_vec(&record).unwrap()).await));
        // No identifier, no expiry, a bad handling code.
        let mut record = http::account_record("@ok_handle", true);
        record["identifiers"] = json!([]);
        refusals.push(("invalid_record", post(serde_json::to_vec(&record).unwrap()).await));
        let mut record = http::account_record("@ok_handle", true);
        record["expires_in_days"] = json!(0);
        refusals.push(("invalid_record", post(serde_json::to_vec(&record).unwrap()).await));
        let mut record = http::account_record("@ok_handle", true);
        record["expires_in_days"] = json!(100_000);
        refusals.push(("invalid_record", post(serde_json::to_vec(&record).unwrap()).await));
        let mut record = http::account_record("@ok_handle", true);
        record["handling"] = json!("H9");
        refusals.push(("invalid_record", post(serde_json::to_vec(&record).unwrap()).await));
        // An activity over the protocol's limit: the batch could not carry it, so the record is
        // refused here, not stored and then dropped at publish.
        let mut record = http::account_record("@ok_handle", true);
        record["activity_per_day"] = json!(crossmatch_protocol::limits::MAX_ACTIVITY_PER_DAY + 1);
        refusals.push(("invalid_record", post(serde_json::to_vec(&record).unwrap()).await));
        for (code, reply) in &refusals {
            assert_eq!(reply.status, 400, "{code}: {}", reply.body);
            assert_eq!(error_code(reply), *code, "{}", reply.body);
            assert!(!reply.body.contains(secret), "the refusal echoes its input: {}", reply.body);
        }

        // A body over the limit is refused before it is parsed.
        let huge = post(vec![b' '; api::MAX_BODY_BYTES + 1]).await;
        assert_eq!((huge.status, error_code(&huge).as_str()), (413, "too_large"));
        // Unknown records and alerts, a bad state filter, a bad retraction reason.
        assert_eq!(call(port, "GET", "/v1/records/999", Some(ANALYST), None).await.status, 404);
        assert_eq!(call(port, "DELETE", "/v1/records/999", Some(ANALYST), None).await.status, 404);
        assert_eq!(call(port, "POST", "/v1/alerts/999/ack", Some(ANALYST), None).await.status, 404);
        let bad_state = call(port, "GET", "/v1/alerts?state=gone", Some(ANALYST), None).await;
        assert_eq!((bad_state.status, error_code(&bad_state).as_str()), (400, "invalid_state"));
        let bad_query = call(port, "GET", "/v1/alerts?limit=many", Some(ANALYST), None).await;
        assert_eq!((bad_query.status, error_code(&bad_query).as_str()), (400, "invalid_query"));
        let bad_id = call(port, "GET", "/v1/records/seven", Some(ANALYST), None).await;
        assert_eq!((bad_id.status, error_code(&bad_id).as_str()), (404, "not_found"));

        // Nothing refused was stored.
        let status = call(port, "GET", "/v1/status", Some(MONITOR), None).await.json();
        assert_eq!(status["own_feed"]["seq"], 0, "{status}");
        assert_eq!(status["outbox"], 0, "{status}");
        let records = f
            .fed
            .node(0)
            .unwrap()
            .with_engine(|e| e.store().scan_keys(&[crossmatch_node::store::keys::prefix::RECORD]))
            .await
            .unwrap()
            .unwrap();
        assert!(records.is_empty(), "a refused record was stored");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_added_through_the_api_match_across_members() {
    tokio::time::timeout(LIMIT, async {
        let f = federation("match").await;
        let (de, fr) = (f.ports[0], f.ports[1]);
        let add = |port: u16, handle: &'static str| async move {
            let reply = call(
                port,
                "POST",
                "/v1/records",
                Some(ANALYST),
                Some(http::account_record(handle, true)),
            )
            .await;
            assert_eq!(reply.status, 201, "{}", reply.body);
            reply.json()["id"].as_u64().unwrap()
        };
        // That a 201 rests on a write synced to the disk is shown at the engine, where no
        // background task syncs meanwhile (`engine::an_added_record_is_synced_…`).
        let at_de = add(de, "@Shared_Handle").await;
        let at_fr = add(fr, "@shared_handle").await;
        let alerts = |port: u16| async move {
            call(port, "GET", "/v1/alerts", Some(ANALYST), None).await.json()["alerts"].clone()
        };
        wait_until("both members alerted", LIMIT, || async {
            alerts(de).await.as_array().is_some_and(|a| a.len() == 1)
                && alerts(fr).await.as_array().is_some_and(|a| a.len() == 1)
        })
        .await
        .unwrap();
        let alert = alerts(fr).await[0].clone();
        assert_eq!(alert["records"], json!([at_fr]));
        assert_eq!(alert["counterparts"][0]["member"], "DE");
        assert_eq!(alert["counterparts"][0]["handling"], "H1");
        assert_eq!(alert["token_short"].as_str().unwrap().len(), 8);
        assert!(!alert.to_string().contains("shared_handle"), "alerts carry no raw identifier");

        // Reading the raw record is possible, and audited under the API user's name.
        let audit_before =
            f.fed.node(1).unwrap().with_engine(|e| e.audit_position().0).await.unwrap();
        let record = call(fr, "GET", &format!("/v1/records/{at_fr}"), Some(ANALYST), None).await;
        assert_eq!(record.status, 200);
        assert_eq!(record.json()["identifiers"][0]["canonical"], "v1|account|x|shared_handle");
        assert_eq!(record.json()["created_by"], "ana");
        // Added through the API, not an import: nothing pending, no import.
        assert_eq!(
            (record.json()["pending_share"].clone(), record.json()["import"].clone()),
            (json!(false), Value::Null)
        );
        let audit_after =
            f.fed.node(1).unwrap().with_engine(|e| e.audit_position().0).await.unwrap();
        assert_eq!(audit_after, audit_before + 1);

        // Acknowledge, flag a referral, and retract: the counterpart's alert closes.
        let id = alert["id"].as_u64().unwrap();
        let audit_before =
            f.fed.node(1).unwrap().with_engine(|e| e.audit_position().0).await.unwrap();
        assert_eq!(
            call(fr, "POST", &format!("/v1/alerts/{id}/ack"), Some(ANALYST), None).await.status,
            204
        );
        assert_eq!(alerts(fr).await[0]["acknowledged"], true);
        // The acknowledgement is audited: an `alert` action by the API user on `alert:<id>`,
        // in a log that still verifies.
        let audit_after =
            f.fed.node(1).unwrap().with_engine(|e| e.audit_position().0).await.unwrap();
        assert_eq!(audit_after, audit_before + 1);
        let audit_dir = f.fed.data_dir(1).join("audit");
        let log = std::fs::read_to_string(audit_dir.join(audit::LOG_FILE_NAME)).unwrap();
        let acknowledged = log
            .lines()
            .filter(|line| line.split('\t').any(|field| field == format!("alert:{id}")))
            .filter(|line| line.split('\t').any(|field| field == "ana"))
            .filter(|line| line.split('\t').any(|field| field == "alert"))
            .count();
        assert_eq!(acknowledged, 1, "no audit line for the acknowledgement:\n{log}");
        let report = audit::verify(
            &audit_dir.join(audit::LOG_FILE_NAME),
            &audit_dir.join(audit::HEAD_FILE_NAME),
            &f.fed.key(1),
        );
        assert!(report.is_ok(), "{report:?}");
        let referral = call(
            de,
            "POST",
            &format!("/v1/records/{at_de}/status"),
            Some(ANALYST),
            Some(json!({ "status": "referred" })),
        )
        .await;
        assert_eq!(referral.status, 204, "{}", referral.body);
        wait_until("the referral reaches FR", LIMIT, || async {
            alerts(fr).await[0]["counterparts"][0]["status"] == "referred"
        })
        .await
        .unwrap();
        let removed = call(
            de,
            "DELETE",
            &format!("/v1/records/{at_de}?reason=erroneous"),
            Some(ANALYST),
            None,
        )
        .await;
        assert_eq!(removed.status, 204, "{}", removed.body);
        wait_until("the retraction closes FR's alert", LIMIT, || async {
            alerts(fr).await[0]["state"] == "closed"
        })
        .await
        .unwrap();
        assert_eq!(
            call(de, "GET", &format!("/v1/records/{at_de}"), Some(ANALYST), None).await.status,
            404
        );
    })
    .await
    .expect("test timed out");
}

/// A connection that sent half a request head and stalls.
fn stalled(port: u16) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_and_stalled_ones_do_not_hold_up_shutdown() {
    tokio::time::timeout(LIMIT, async {
        let mut f = federation("stalled").await;
        let port = f.ports[0];
        let mut held: Vec<_> = (0..api::MAX_CONNECTIONS).map(|_| stalled(port)).collect();
        // Every slot is taken: a new request waits, unanswered.
        let waiting = tokio::task::spawn_blocking(move || {
            http::request(port, "GET", "/livez", None, None).map(|reply| reply.status)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "answered while every connection slot was taken");
        // One stalled connection goes: the waiting request is served.
        held.pop();
        assert_eq!(waiting.await.unwrap().unwrap(), 200);

        // The node stops while connections stall: the API still stops, within its grace.
        f.fed.node(0).unwrap().shutdown();
        let server = f.servers.remove(0);
        tokio::time::timeout(api::SHUTDOWN_GRACE + Duration::from_secs(10), server)
            .await
            .expect("the API stopped despite stalled connections")
            .unwrap();
        drop(held);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_and_frees_its_slot() {
    tokio::time::timeout(LIMIT, async {
        let f = federation("idle").await;
        let node = f.fed.node(0).unwrap().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let limits = api::ConnectionLimits {
            max_connections: 1,
            idle_timeout: Duration::from_secs(1),
            head_timeout: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(1),
            ..api::ConnectionLimits::default()
        };
        tokio::spawn(api::serve_with(
            listener,
            api::router(node.clone(), users(), "DE"),
            node,
            limits,
        ));
        // The one slot is taken by a client that stalls mid-head; it is closed once idle.
        let mut stream = stalled(port);
        let closed = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buffer = [0u8; 256];
            let started = std::time::Instant::now();
            let read = stream.read(&mut buffer);
            (read.map_err(|e| e.kind()), started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Meanwhile the next client waits for the slot, and is served once it is freed.
        let served = call(port, "GET", "/livez", None, None).await;
        assert_eq!(served.status, 200);
        let (read, after) = closed.await.unwrap();
        assert!(matches!(read, Ok(0)), "the idle connection is closed, not answered: {read:?}");
        assert!(after < Duration::from_secs(5), "closed after {after:?}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_trickle_a_request_head_cannot_hold_every_slot() {
    tokio::time::timeout(LIMIT, async {
        let f = federation("trickle").await;
        let node = f.fed.node(0).unwrap().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let limits = api::ConnectionLimits {
            idle_timeout: Duration::from_secs(2),
            head_timeout: Duration::from_secs(2),
            ..api::ConnectionLimits::default()
        };
        tokio::spawn(api::serve_with(
            listener,
            api::router(node.clone(), users(), "DE"),
            node,
            limits,
        ));
        // Every slot is taken by a client that sends its request head one byte a second, well
        // within the idle timeout, and never finishes it.
        let mut tricklers = tokio::task::JoinSet::new();
        for _ in 0..limits.max_connections {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tricklers.spawn(async move {
                use tokio::io::AsyncWriteExt;
                let head = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ";
                for &byte in head.iter().chain(std::iter::repeat(&b'a')) {
                    if stream.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A 129th, authorised request is answered: the trickling heads time out as a whole.
        let started = std::time::Instant::now();
        let answered = tokio::task::spawn_blocking(move || {
            http::request(port, "GET", "/v1/status", Some(MONITOR), None)
        })
        .await
        .unwrap();
        let status = answered.map(|reply| reply.status).map_err(|error| error.kind());
        assert_eq!(status, Ok(200), "not answered after {:?}", started.elapsed());
        tricklers.abort_all();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_keep_sending_slow_whole_requests_cannot_hold_every_slot() {
    tokio::time::timeout(LIMIT, async {
        let f = federation("keepalive").await;
        let node = f.fed.node(0).unwrap().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let limits = api::ConnectionLimits {
            max_connections: 4,
            idle_timeout: Duration::from_secs(2),
            head_timeout: Duration::from_secs(2),
            ..api::ConnectionLimits::default()
        };
        tokio::spawn(api::serve_with(
            listener,
            api::router(node.clone(), users(), "DE"),
            node,
            limits,
        ));
        // Every slot is taken by a client that sends a whole request head in two parts a second
        // apart, well within the head timeout, reads the answer and starts again on the same
        // connection; when the connection is closed it opens another at once. `/livez` needs no
        // token.
        let mut holders = tokio::task::JoinSet::new();
        for _ in 0..limits.max_connections {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            holders.spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                loop {
                    let mut buffer = [0u8; 1024];
                    let served = async {
                        stream.write_all(b"GET /livez HTTP/1.1\r\n").await?;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        stream.write_all(b"Host: x\r\n\r\n").await?;
                        match stream.read(&mut buffer).await? {
                            0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
                            _ => Ok::<_, std::io::Error>(()),
                        }
                    };
                    if served.await.is_err() {
                        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                            Ok(again) => stream = again,
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // An authorised request is answered all the same, long before the holders give up.
        let started = std::time::Instant::now();
        let answered = tokio::time::timeout(
            Duration::from_secs(15),
            tokio::task::spawn_blocking(move || {
                http::request(port, "GET", "/v1/status", Some(MONITOR), None)
            }),
        )
        .await;
        holders.abort_all();
        let status = answered
            .expect("not answered within 15 s")
            .unwrap()
            .map(|reply| reply.status)
            .map_err(|error| error.kind());
        assert_eq!(status, Ok(200), "not answered after {:?}", started.elapsed());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_time_out_leave_a_bounded_number_of_engine_calls_outstanding() {
    // The engine is held for HOLD while requests, each timing out after a second, keep coming:
    // the same as holding it for 40 s against the default 30 s request timeout, only shorter.
    // The last wave is sent at about 6 s: the hold outlasts it by far, even on a loaded machine.
    const HOLD: Duration = Duration::from_secs(15);
    tokio::time::timeout(LIMIT, async {
        let f = federation("held").await;
        let node = f.fed.node(0).unwrap().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let limits = api::RequestLimits {
            request_timeout: Duration::from_secs(1),
            ..api::RequestLimits::default()
        };
        tokio::spawn(api::serve(
            listener,
            api::router_with(node.clone(), users(), "DE", limits),
            node.clone(),
        ));
        // A test hook holds the engine lock.
        let (held, holding) = std::sync::mpsc::channel();
        let holder = tokio::spawn({
            let node = node.clone();
            async move {
                node.with_engine(move |_| {
                    let _ = held.send(());
                    std::thread::sleep(HOLD);
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || holding.recv_timeout(LIMIT)).await.unwrap().unwrap();
        // 200 status requests, 40 at a time, one wave a second; each times out.
        let sampler = tokio::spawn({
            let node = node.clone();
            async move {
                let mut peak = 0;
                while !holder.is_finished() {
                    peak = peak.max(node.engine_calls().api_outstanding);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                peak
            }
        });
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..5 {
            for _ in 0..40 {
                requests.spawn_blocking(move || {
                    http::request(port, "GET", "/v1/status", Some(MONITOR), None).map(|r| r.status)
                });
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let mut statuses = Vec::new();
        while let Some(status) = requests.join_next().await {
            statuses.push(status.unwrap().unwrap());
        }
        assert!(statuses.iter().all(|&status| status == 503), "{statuses:?}");
        let peak = sampler.await.unwrap();
        assert!(peak <= 64, "{peak} engine calls outstanding");
        // Once the engine is free, the calls of requests that timed out do nothing and go.
        wait_until("the abandoned calls drain", LIMIT, || async {
            node.engine_calls().api_outstanding == 0
        })
        .await
        .unwrap();
        assert!(node.engine_calls().abandoned > 0);
        let metrics = call(port, "GET", "/metrics", Some(MONITOR), None).await;
        assert_eq!(metrics.status, 200);
        assert!(
            metrics.body.contains("\ncrossmatch_api_engine_calls_outstanding 0\n"),
            "{}",
            metrics.body
        );
        assert!(metrics.body.contains("# TYPE crossmatch_engine_calls_abandoned_total counter"));
    })
    .await
    .expect("test timed out");
}

/// Serves `node`'s API on a port of its own until the test ends, so that it can still be asked
/// after the node stopped; returns the port.
async fn serve_outliving(node: &crossmatch_node::daemon::Node) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(api::serve_until(
        listener,
        api::router(node.clone(), users(), "DE"),
        std::future::pending(),
        api::ConnectionLimits::default(),
    ));
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_engine_shows_in_health_and_metrics_and_stops_the_node() {
    tokio::time::timeout(LIMIT, async {
        let f = federation("failed").await;
        let node = f.fed.node(0).unwrap().clone();
        let port = serve_outliving(&node).await;
        assert_eq!(call(port, "GET", "/readyz", None, None).await.status, 200);
        // A test hook poisons the engine lock: an engine call panics while it holds it.
        let poisoned = node.with_engine(|_| panic!("the engine fails, as a test asked")).await;
        assert!(poisoned.is_err());
        // The node fails and stops by itself, and says what failed.
        tokio::time::timeout(Duration::from_secs(10), node.stopped())
            .await
            .expect("the failed node did not stop");
        assert_eq!(node.failures(), ["engine"]);
        let ready = call(port, "GET", "/readyz", None, None).await;
        assert_eq!((ready.status, ready.body.as_str()), (503, "failed: engine\n"));
        assert_eq!(call(port, "GET", "/livez", None, None).await.status, 503);
        let metrics = call(port, "GET", "/metrics", Some(MONITOR), None).await;
        assert_eq!(metrics.status, 200, "{}", metrics.body);
        let metrics = metrics.body;
        assert!(metrics.contains("\ncrossmatch_failed 1\n"), "{metrics}");
        assert!(metrics.contains("\ncrossmatch_ready 0\n"), "{metrics}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_that_cannot_be_gathered_fail_the_scrape_unless_the_node_failed() {
    tokio::time::timeout(LIMIT, async {
        let f = federation("scrape").await;
        let node = f.fed.node(0).unwrap().clone();
        let port = serve_outliving(&node).await;
        let metrics = call(port, "GET", "/metrics", Some(MONITOR), None).await;
        assert_eq!(metrics.status, 200);
        assert!(metrics.body.contains("\ncrossmatch_peers 1\n"), "{}", metrics.body);
        // The node stops without failing: its status cannot be gathered any more. The scrape
        // fails as a whole rather than answer the health figures alone, so no series comes and
        // goes while nothing failed.
        node.shutdown();
        tokio::time::timeout(Duration::from_secs(10), node.stopped())
            .await
            .expect("the node did not stop");
        assert!(node.failures().is_empty());
        let metrics = call(port, "GET", "/metrics", Some(MONITOR), None).await;
        assert_eq!(metrics.status, 503, "{}", metrics.body);
        assert!(!metrics.body.contains("crossmatch_ready"), "{}", metrics.body);
    })
    .await
    .expect("test timed out");
}
