//! The webhook over an in-process federation of two members (alerts raised at member 1, the
//! webhook member 1's): deliveries are signed with every key held, queue while the receiver is
//! down and arrive in order once it is back, survive a node restart, a full queue sends a
//! resync marker then the newest events, `/metrics`-facing figures count it all, an alert
//! reaches the receiver within a second, and no raw identifier or token travels.

use std::time::{Duration, Instant};

use crossmatch_node::api;
use crossmatch_node::daemon::{Node, WebhookSettings};
use crossmatch_node::http_client::TlsFiles;
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::test_support::federation::{meshed_pair, raise};
use crossmatch_node::test_support::webhook::{Delivery, Receiver};
use crossmatch_node::test_support::{TempDir, account};

const LIMIT: Duration = Duration::from_secs(180);
const WAIT: Duration = Duration::from_secs(30);

fn keys() -> Vec<Vec<u8>> {
    vec![vec![0x11; 32], vec![0x22; 24]]
}

fn settings(receiver: &Receiver, max_queue: u64) -> WebhookSettings {
    WebhookSettings {
        url: receiver.url(),
        keys: keys(),
        max_queue,
        timeout: Duration::from_secs(5),
        max_backoff: Duration::from_millis(1500),
        tls: TlsFiles::default(),
        bodies: api::WEBHOOK_BODIES,
    }
}

/// Two meshed members, member 1 with a webhook to `receiver`.
async fn federation(name: &str, receiver: &Receiver, max_queue: u64) -> (TempDir, LocalFederation) {
    let webhook = settings(receiver, max_queue);
    meshed_pair(&format!("webhook-{name}"), |fed| fed.set_webhook(1, Some(webhook))).await
}

async fn wait_head(node: &Node, seq: u64) {
    let node = node.clone();
    wait_until("the event head", WAIT, || {
        let node = node.clone();
        async move { node.wait_event_head().await.map_or(0, |head| head.seq) >= seq }
    })
    .await
    .unwrap();
}

fn seq_of(delivery: &Delivery) -> u64 {
    delivery.id.rsplit_once('-').and_then(|(_, seq)| seq.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_queue_while_the_receiver_is_down_and_arrive_in_order_signed_by_both_keys() {
    tokio::time::timeout(LIMIT, async {
        let receiver = Receiver::start(keys()).await;
        receiver.answer(503);
        let (_root, fed) = federation("order", &receiver, 100).await;
        let node = fed.node(1).unwrap().clone();
        let handles = ["Order_One", "order_two", "ORDER_three"];
        for handle in handles {
            raise(&fed, handle).await;
        }
        wait_head(&node, 3).await;
        // Refused attempts, retried with backoff; nothing acknowledged yet.
        receiver.wait_requests(2, WAIT).await;
        let figures = node.webhook_figures().await.unwrap();
        assert_eq!(figures.configured, 1);
        assert!(figures.attempt_failures_total >= 1);
        assert_eq!(figures.deliveries_total, 0);
        assert_eq!(figures.queue_capacity, 100);
        receiver.answer(200);
        let accepted = receiver.wait_accepted(3, WAIT).await;
        let seqs: Vec<u64> = accepted.iter().map(seq_of).collect();
        assert_eq!(seqs, vec![1, 2, 3], "first in, first out, each once acknowledged");
        for delivery in &accepted {
            assert!(delivery.verified, "signed with both keys: {}", delivery.signature);
            assert_eq!(delivery.signature.split(' ').count(), 2);
            assert!(delivery.signature.split(' ').all(|s| s.starts_with("v1,")));
            assert_eq!(delivery.content_type, "application/json");
            assert!(delivery.user_agent.starts_with("crossmatch/"));
            assert_eq!(delivery.path, "/hook/", "exactly the configured path, its `/` kept");
            let json = delivery.json();
            assert_eq!(json["id"], delivery.id.as_str());
            assert_eq!(json["type"], "alert.opened");
            assert_eq!(json["data"]["alert"]["counterparts"][0]["member"], "M0");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(delivery.timestamp.abs_diff(now) < 120);
        }
        // Live: an alert raised now reaches the receiver within a second.
        let started = Instant::now();
        raise(&fed, "order_live").await;
        let accepted = receiver.wait_accepted(4, WAIT).await;
        let took = started.elapsed();
        assert_eq!(seq_of(&accepted[3]), 4);
        assert!(took < Duration::from_secs(1), "the webhook took {took:?}");
        // No handle, canonical form or token in any byte sent.
        let wire: Vec<u8> = receiver
            .deliveries()
            .iter()
            .flat_map(|d| [d.body.clone(), d.id.clone().into_bytes()].concat())
            .collect();
        let wire = String::from_utf8_lossy(&wire).to_lowercase();
        for handle in handles.into_iter().chain(["order_live"]) {
            let canonical = account(handle);
            assert!(!wire.contains(&handle.to_lowercase()));
            assert!(!wire.contains(&canonical.as_str().to_lowercase()));
            let token = node.with_engine(move |engine| engine.token(&canonical)).await.unwrap();
            let token = hex::encode(token.as_bytes());
            assert!(!wire.contains(&token) && wire.contains(&token[..8]));
        }
        // Counted once the answer is in and the cursor durable, a moment after the receiver.
        wait_until("four deliveries counted", WAIT, || {
            let node = node.clone();
            async move { node.webhook_figures().await.is_ok_and(|f| f.deliveries_total == 4) }
        })
        .await
        .unwrap();
        let figures = node.webhook_figures().await.unwrap();
        assert_eq!((figures.deliveries_total, figures.queue_events), (4, 0));
        assert!(figures.last_delivery_timestamp_seconds > 0);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_across_a_restart_are_delivered_afterwards() {
    tokio::time::timeout(LIMIT, async {
        let receiver = Receiver::start(keys()).await;
        receiver.answer(500);
        let (_root, mut fed) = federation("restart", &receiver, 100).await;
        raise(&fed, "restart_one").await;
        raise(&fed, "restart_two").await;
        wait_head(fed.node(1).unwrap(), 2).await;
        receiver.wait_requests(1, WAIT).await;
        fed.stop(1).await.unwrap();
        assert!(receiver.accepted().is_empty());
        receiver.answer(200);
        fed.start(1).await.unwrap();
        let accepted = receiver.wait_accepted(2, WAIT).await;
        assert_eq!(accepted.iter().map(seq_of).collect::<Vec<_>>(), vec![1, 2]);
        // Acknowledged once: nothing is sent again after another restart.
        fed.stop(1).await.unwrap();
        fed.start(1).await.unwrap();
        raise(&fed, "restart_three").await;
        let accepted = receiver.wait_accepted(3, WAIT).await;
        assert_eq!(accepted.iter().map(seq_of).collect::<Vec<_>>(), vec![1, 2, 3]);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_sends_a_resync_marker_then_the_newest_events() {
    tokio::time::timeout(LIMIT, async {
        let receiver = Receiver::start(keys()).await;
        receiver.answer(503);
        let (_root, fed) = federation("full", &receiver, 5).await;
        let node = fed.node(1).unwrap().clone();
        for i in 0..20 {
            raise(&fed, &format!("full_{i}")).await;
        }
        wait_head(&node, 20).await;
        // Let the worker see the final head before the receiver comes back.
        wait_until("the queue cut to 5", WAIT, || {
            let node = node.clone();
            async move { node.webhook_figures().await.is_ok_and(|f| f.dropped_events_total == 15) }
        })
        .await
        .unwrap();
        receiver.answer(200);
        let accepted = receiver.wait_accepted(6, WAIT).await;
        let marker = &accepted[0];
        assert!(marker.id.starts_with("resync-"), "{}", marker.id);
        assert!(marker.verified);
        let json = marker.json();
        assert_eq!(json["type"], "resync");
        assert_eq!(json["data"]["reason"], "queue_full");
        assert_eq!(json["data"]["dropped"], 15);
        assert!(json["data"]["cursor"].as_str().unwrap().ends_with("-15"));
        let seqs: Vec<u64> = accepted[1..].iter().map(seq_of).collect();
        assert_eq!(seqs, vec![16, 17, 18, 19, 20]);
        // The node counts a delivery once the receiver's answer is in and its cursor durable,
        // a moment after the receiver has it.
        wait_until("six deliveries counted", WAIT, || {
            let node = node.clone();
            async move { node.webhook_figures().await.is_ok_and(|f| f.deliveries_total == 6) }
        })
        .await
        .unwrap();
        let figures = node.webhook_figures().await.unwrap();
        assert_eq!((figures.dropped_events_total, figures.resync_markers_total), (15, 1));
    })
    .await
    .expect("bounded");
}

/// A receiver that takes the connection and never answers does not hold the node's shutdown
/// for the attempt's timeout: the attempt is abandoned (and sent again after a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_hold_the_node_from_stopping() {
    tokio::time::timeout(LIMIT, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::channel(16);
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
                let _ = accepted_tx.try_send(());
            }
        });
        let mut webhook = settings(&Receiver::start(keys()).await, 100);
        webhook.url = format!("http://127.0.0.1:{port}/hook");
        webhook.timeout = Duration::from_secs(300);
        let (_root, mut fed) =
            meshed_pair("webhook-silent", |fed| fed.set_webhook(1, Some(webhook))).await;
        raise(&fed, "silent_receiver").await;
        tokio::time::timeout(WAIT, accepted_rx.recv()).await.unwrap().unwrap();
        let started = Instant::now();
        fed.stop(1).await.unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "stopping took {took:?}");
        silent.abort();
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("bounded");
}

/// A webhook whose client cannot be built (a missing CA file, a client certificate over plain
/// http) fails the node's start, rather than running with nothing delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_cannot_be_used_fails_the_start() {
    tokio::time::timeout(LIMIT, async {
        let root = TempDir::new("webhook-unusable");
        let receiver = Receiver::start(keys()).await;
        let mut missing_ca = settings(&receiver, 100);
        missing_ca.url = "https://hooks.example/hook".to_owned();
        missing_ca.tls.ca_file = Some(root.path().join("missing-ca.pem"));
        let mut plain_client_cert = settings(&receiver, 100);
        plain_client_cert.tls.client_cert = Some(root.path().join("client.pem"));
        plain_client_cert.tls.client_key = Some(root.path().join("client.key"));
        for (name, webhook) in [("ca", missing_ca), ("plain", plain_client_cert)] {
            let mut fed = LocalFederation::new(&root.path().join(name), &["M0"]);
            fed.set_webhook(0, Some(webhook));
            let error = fed.start(0).await.expect_err(name);
            assert!(error.to_string().contains("webhook"), "{name}: {error}");
        }
    })
    .await
    .expect("bounded");
}

/// The README's receiver, run as written, takes a real delivery, drops a repeat and refuses a
/// tampered body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_receiver_verifies_a_delivery_and_drops_a_repeat() {
    use std::io::BufRead;

    use base64::Engine as _;
    use http_body_util::Full;
    use hyper::body::Bytes;

    tokio::time::timeout(LIMIT, async {
        let root = TempDir::new("webhook-readme");
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
        )
        .unwrap();
        let section = readme.split("## Receiving alerts").nth(1).expect("the README section");
        let script = section.split("```python\n").nth(1).unwrap().split("```").next().unwrap();
        let script_path = root.path().join("receiver.py");
        std::fs::write(&script_path, script).unwrap();
        let secret_path = root.path().join("webhook.secret");
        let lines: String = keys()
            .iter()
            .map(|key| format!("whsec_{}\n", base64::engine::general_purpose::STANDARD.encode(key)))
            .collect();
        std::fs::write(&secret_path, lines).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new("python3")
            .arg(&script_path)
            .arg(&secret_path)
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs the README's receiver");
        let stdout = child.stdout.take().unwrap();
        let child = KillOnDrop(child);
        let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<String>(64);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        wait_until("the receiver listens", WAIT, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await
        .unwrap();
        // Deliveries go to the script; a copy of each also goes to the recording receiver, to
        // replay it.
        let mut webhook = settings(&Receiver::start(keys()).await, 100);
        webhook.url = format!("http://127.0.0.1:{port}/");
        let (_root_fed, mut fed) =
            meshed_pair("webhook-readme-fed", |fed| fed.set_webhook(1, Some(webhook))).await;
        raise(&fed, "readme_receiver").await;
        let line = tokio::time::timeout(WAIT, lines_rx.recv()).await.unwrap().unwrap();
        let (kind, id) = line.split_once(' ').unwrap();
        assert_eq!(kind, "alert.opened");
        assert!(id.ends_with("-1"), "{id}");
        // A replay of the same id with a fresh valid signature: 200, not handled again; a
        // tampered body: 401.
        let client = crossmatch_node::http_client::Client::new(
            &format!("http://127.0.0.1:{port}"),
            &TlsFiles::default(),
        )
        .unwrap();
        let post = |body: &'static [u8], signed: &'static [u8]| {
            let client = &client;
            let id = id.to_owned();
            async move {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let signature =
                    crossmatch_node::daemon::signature_header(&keys(), &id, now, signed);
                let request = client
                    .request(hyper::Method::POST, "/")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", now.to_string())
                    .header("webhook-signature", signature)
                    .body(Full::new(Bytes::from_static(body)))
                    .unwrap();
                client.send(request, WAIT).await.unwrap().status().as_u16()
            }
        };
        let event = br#"{"type":"alert.opened","id":"x"}"#;
        assert_eq!(post(event, event).await, 200, "a repeat is acknowledged");
        assert_eq!(post(event, b"{}").await, 401, "a body that is not the one signed");
        // Nothing more was handled.
        assert!(tokio::time::timeout(Duration::from_millis(500), lines_rx.recv()).await.is_err());
        drop(child);
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("bounded");
}

/// A child process killed (and reaped) when the test ends, passing or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn webhook_secret_new_writes_a_private_key_file_and_prints_nothing_secret() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new("webhook-secret");
    let out = dir.path().join("webhook.secret");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_crossmatch"))
            .args(["webhook-secret", "new", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let keys = crossmatch_node::config::parse_webhook_secrets(&text).unwrap();
    assert_eq!((keys.len(), keys[0].len()), (1, 32));
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let printed = [first.stdout, first.stderr].concat();
    let encoded = text.trim().trim_start_matches("whsec_");
    assert!(!String::from_utf8_lossy(&printed).contains(encoded), "the key is never printed");
    // Never overwritten.
    assert!(!run().status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
}
