//! The logs of real `crossmatch run` processes, in JSON at debug level, while a federation of two
//! does an analyst's whole day: identifiers of all six kinds in messy forms, a match both ways, a
//! status, a read, a retraction, observations and a restart; member 1's alerts followed on its
//! stream and delivered by its webhook to a receiver that refuses (5xx) before it accepts, a
//! stream opened with a bad cursor (a resync) and one whose token a reload revokes. Every line
//! must parse as JSON, and no line may carry a raw input, a canonical form (or its value), a
//! token in full, an API bearer token or a webhook key; nor may the stream or a delivery carry
//! an identifier.

use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossmatch_node::config::parse_webhook_secrets;
use crossmatch_node::keyfile;
use crossmatch_node::roster_file;
use crossmatch_node::test_support::sse::open_stream;
use crossmatch_node::test_support::webhook::Receiver;
use crossmatch_node::test_support::{TempDir, http};
use crossmatch_protocol::{EpochKey, Kind, canonicalize};

use crate::run::{self, Member};

/// The identifiers both members hold, of all six kinds, in messy forms: (kind, platform,
/// region, raw input).
const IDENTIFIERS: [(Kind, Option<&str>, Option<&str>, &str); 6] = [
    (Kind::Account, Some("x"), None, "https://mobile.twitter.com/LogsProbeAlpha?s=20"),
    (Kind::AccountId, Some("x"), None, " 4242424242424242 "),
    (Kind::Email, None, None, "  Logs.Probe.Mailbox@Example-Mail.TEST "),
    (Kind::Phone, None, Some("FR"), "06 47 58 69 31"),
    (Kind::Url, None, None, "HTTPS://Logs-Probe-Site.example/Path/Probe-Page?utm_source=tw"),
    (Kind::Domain, None, None, "WWW.Logs-Probe-Domain.EXAMPLE"),
];

/// Accounts only observed (the hunt's input), never records.
const OBSERVED: [&str; 2] = ["@ProbePosterLg", "@ProbeBoostLg"];

fn record_body(share: bool) -> serde_json::Value {
    let identifiers: Vec<serde_json::Value> = IDENTIFIERS
        .iter()
        .map(|(kind, platform, region, value)| {
            let mut identifier = serde_json::json!({ "kind": kind.as_str(), "value": value });
            if let Some(platform) = platform {
                identifier["platform"] = (*platform).into();
            }
            if let Some(region) = region {
                identifier["region"] = (*region).into();
            }
            identifier
        })
        .collect();
    serde_json::json!({
        "identifiers": identifiers,
        "category": "terrorism/propaganda",
        "handling": "H1",
        "evaluation": "B2",
        "notes": "Logs_Probe_Note_Text",
        "expires_in_days": 30,
        "share": share,
    })
}

/// What no log line may contain, lower-cased: raw inputs, canonical forms and their values,
/// and the tokens' hex.
fn forbidden(dir: &std::path::Path) -> Vec<String> {
    let roster = roster_file::read(&dir.join("roster.toml")).unwrap();
    let secret = keyfile::read_federation_secret(&dir.join("federation.secret")).unwrap();
    let body = &roster.roster.body;
    let key = EpochKey::derive(&body.federation_id, &secret, body.epoch);
    let mut forbidden = vec!["logs_probe_note_text".to_owned()];
    for (kind, platform, region, input) in IDENTIFIERS {
        let canonical = canonicalize(kind, platform, region, input).unwrap();
        forbidden.push(input.trim().to_lowercase());
        forbidden.push(canonical.as_str().to_lowercase());
        forbidden.push(canonical.value().to_lowercase());
        forbidden.push(key.token(&canonical).to_string());
    }
    forbidden.extend(OBSERVED.iter().map(|handle| handle.to_lowercase()));
    forbidden.extend(OBSERVED.iter().map(|handle| handle.trim_start_matches('@').to_lowercase()));
    forbidden
}

/// What no log line may contain besides [`forbidden`]'s: the API bearer tokens (without
/// their common `cmt_` prefix) and the webhook's signing key (its base64), lower-cased.
fn secrets(dir: &std::path::Path, bearers: &[&str]) -> Vec<String> {
    let key = std::fs::read_to_string(dir.join("webhook.secret")).unwrap();
    assert_eq!(parse_webhook_secrets(&key).unwrap().len(), 1);
    let key = key.trim().trim_start_matches("whsec_").to_lowercase();
    let mut secrets: Vec<String> = bearers
        .iter()
        .map(|bearer| bearer.split_once('_').map_or(*bearer, |(_, rest)| rest).to_lowercase())
        .collect();
    secrets.push(key);
    secrets
}

fn observations() -> Vec<u8> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let [poster, booster] = OBSERVED;
    (0..6)
        .map(|i| {
            format!(
                "{{\"platform\":\"x\",\"account\":\"{booster}\",\"at\":{},\"post_id\":\"p{i}\",\
                 \"repost_of\":\"{poster}\"}}\n",
                now - 60_000 - i
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// Every line a process wrote until it ended (the pipe closed), within the test's limit.
fn drain(lines: mpsc::Receiver<String>, into: &mut Vec<String>) {
    let deadline = Instant::now() + run::LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => into.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("a process's stderr stayed open"),
        }
    }
}

fn spawn_json(member: &Member) -> (Child, mpsc::Receiver<String>) {
    run::spawn_with_env(&member.config, &[("RUST_LOG", "debug,crossmatch_node=trace")])
}

fn add(member: &Member, body: &serde_json::Value) -> u64 {
    let reply = http::call(member.api_port, "POST", "/v1/records", &member.bearer, Some(body));
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_u64().unwrap()
}

fn ready_with_peer(member: &Member) -> bool {
    run::status(member).is_some_and(|s| s["ready"] == true && s["peers"] == 1)
}

/// Member 1's live-alert set-up: a webhook to `receiver` (signed with the keys in
/// `webhook.secret`, retried within a second), and a second analyst token, which a reload to
/// the tokens file kept in `m1-stream-token.toml` revokes. Returns that token's bearer.
fn live_alerts(dir: &std::path::Path, member: &Member, receiver: &Receiver) -> String {
    let printed = run::crossmatch(&["api-token", "new", "--name", "streamer", "--role", "analyst"]);
    let bearer = printed.lines().next().unwrap().trim_start_matches("bearer token:").trim();
    let entry = printed.split_once("[[tokens]]").unwrap().1;
    let tokens = dir.join("m1-tokens.toml");
    let kept = std::fs::read_to_string(&tokens).unwrap();
    run::write_private(&dir.join("m1-stream-token.toml"), &kept);
    run::write_private(&tokens, &format!("{kept}\n[[tokens]]{entry}"));
    let text = std::fs::read_to_string(&member.config).unwrap();
    let webhook = format!(
        "\n[webhook]\nurl = \"{}\"\nsecret_file = \"webhook.secret\"\nmax_backoff_secs = 1\n",
        receiver.url()
    );
    run::write_private(&member.config, &format!("{text}{webhook}"));
    bearer.to_owned()
}

/// Revokes the stream's token: member 1's tokens file loses it, and SIGHUP reloads it.
fn revoke_stream_token(dir: &std::path::Path, member: &Member, node: &Child, bearer: &str) {
    let kept = std::fs::read_to_string(dir.join("m1-stream-token.toml")).unwrap();
    run::write_private(&dir.join("m1-tokens.toml"), &kept);
    let pid = node.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    run::wait_for("the stream's token revoked", || {
        http::request(member.api_port, "GET", "/v1/status", Some(bearer), None)
            .is_ok_and(|reply| reply.status == 401)
    });
}

#[test]
fn no_log_line_carries_an_identifier_a_canonical_form_or_a_token() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = TempDir::new("logs");
    let members = run::setup(dir.path(), 2, 2);
    for member in &members {
        let text = std::fs::read_to_string(&member.config).unwrap();
        run::write_private(&member.config, &format!("log_format = \"json\"\n{text}"));
    }
    // Member 1's webhook: its receiver refuses until told otherwise.
    let secret = dir.path().join("webhook.secret");
    run::crossmatch(&["webhook-secret", "new", "--out", secret.to_str().unwrap()]);
    let keys = parse_webhook_secrets(&std::fs::read_to_string(&secret).unwrap()).unwrap();
    let receiver = runtime.block_on(Receiver::start(keys));
    receiver.answer(503);
    let streamer = live_alerts(dir.path(), &members[1], &receiver);
    let mut nodes: Vec<_> = members.iter().map(spawn_json).collect();
    for member in &members {
        run::wait_for("both nodes ready and connected", || ready_with_peer(member));
    }

    // Member 1's streams: one that follows, one whose token is revoked later, one that asks
    // with a bad cursor and is told to resync.
    let wait = Duration::from_secs(30);
    let port_1 = members[1].api_port;
    let (mut follower, mut revoked) = runtime.block_on(async {
        let mut follower = open_stream(port_1, &members[1].bearer, None, "").await;
        assert_eq!(follower.event(wait).await.event, "hello");
        let mut revoked = open_stream(port_1, &streamer, None, "").await;
        assert_eq!(revoked.event(wait).await.event, "hello");
        let mut resync = open_stream(port_1, &members[1].bearer, Some("not-a-cursor"), "").await;
        assert_eq!(resync.event(wait).await.event, "resync");
        (follower, revoked)
    });

    // The same account at both members: a match both ways.
    let at_0 = add(&members[0], &record_body(true));
    let at_1 = add(&members[1], &record_body(true));
    run::wait_for("the match at both members", || {
        run::alerted_records(&members[0]).contains(&at_0)
            && run::alerted_records(&members[1]).contains(&at_1)
    });
    // The match reaches member 1's stream, and its webhook once the receiver accepts.
    runtime.block_on(async {
        let opened = follower.event(wait).await;
        assert_eq!(opened.event, "alert.opened", "{opened:?}");
        receiver.wait_requests(2, wait).await;
        receiver.answer(200);
        receiver.wait_accepted(1, wait).await;
    });
    let deliveries = receiver.deliveries();
    assert!(deliveries.iter().any(|delivery| delivery.answered >= 500), "{deliveries:?}");
    assert!(deliveries.iter().all(|delivery| delivery.verified && delivery.path == "/hook/"));
    // The streamer's token revoked by a reload: its stream ends at its next heartbeat.
    revoke_stream_token(dir.path(), &members[1], &nodes[1].0, &streamer);
    runtime.block_on(async {
        assert!(revoked.ends_within(Duration::from_secs(40)).await, "a revoked stream ends");
    });
    assert_eq!(
        http::request(port_1, "GET", "/v1/alerts/stream", Some(&streamer), None).unwrap().status,
        401
    );

    // A read (audited), a status, observations, and a retraction.
    let (port, bearer) = (members[0].api_port, members[0].bearer.as_str());
    let read = http::call(port, "GET", &format!("/v1/records/{at_0}"), bearer, None);
    assert_eq!(read.status, 200, "{}", read.body);
    let referred = serde_json::json!({ "status": "referred" });
    let reply =
        http::call(port, "POST", &format!("/v1/records/{at_0}/status"), bearer, Some(&referred));
    assert_eq!(reply.status, 204, "{}", reply.body);
    let observed = http::request_typed(
        port,
        "POST",
        "/v1/observations",
        Some(bearer),
        "application/x-ndjson",
        Some(&observations()),
    )
    .unwrap();
    assert_eq!(observed.status, 200, "{}", observed.body);
    assert_eq!(observed.json()["accepted"], 6, "{}", observed.body);
    let reply = http::call(
        members[1].api_port,
        "DELETE",
        &format!("/v1/records/{at_1}?reason=erroneous"),
        &members[1].bearer,
        None,
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    run::wait_for("the retraction to reach member 0", || {
        let reply = http::call(port, "GET", "/v1/alerts", bearer, None);
        reply.status == 200 && reply.body.contains("\"closed\"")
    });
    // The same account kept as a local watch: matched at member 1 alone.
    add(&members[1], &record_body(false));

    // A restart of member 1 (its follower's stream ends with it), then both stop.
    let mut lines = Vec::new();
    let mut stopped = vec![nodes.pop().unwrap()];
    run::stop_all(&mut stopped);
    for (_, receiver) in stopped {
        drain(receiver, &mut lines);
    }
    runtime.block_on(async {
        assert!(follower.ends_within(wait).await, "a stream ends when its node stops");
    });
    let mut wire = follower.bytes.clone();
    nodes.push(spawn_json(&members[1]));
    run::wait_for("member 1 back and connected", || ready_with_peer(&members[1]));
    std::thread::sleep(Duration::from_millis(500));
    run::stop_all(&mut nodes);
    for (_, receiver) in nodes {
        drain(receiver, &mut lines);
    }

    let forbidden = forbidden(dir.path());
    // Neither the stream nor a delivery carries an identifier or a token in full.
    for delivery in receiver.deliveries() {
        wire.extend_from_slice(&delivery.body);
    }
    let wire = String::from_utf8_lossy(&wire).to_lowercase();
    assert!(wire.contains("alert.opened"), "{wire}");
    for needle in &forbidden {
        assert!(!wire.contains(needle.as_str()), "the stream or a delivery carries {needle:?}");
    }
    let mut forbidden = forbidden;
    forbidden.extend(secrets(dir.path(), &[&members[0].bearer, &members[1].bearer, &streamer]));
    assert!(lines.len() > 50, "a debug run logs plenty: {}", lines.len());
    let mut messages = Vec::new();
    for line in &lines {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
        assert!(parsed["level"].is_string() && parsed["timestamp"].is_string(), "{line}");
        messages.push(parsed["message"].as_str().unwrap_or_default().to_owned());
        let lower = line.to_lowercase();
        for needle in &forbidden {
            assert!(!lower.contains(needle.as_str()), "a log line carries {needle:?}: {line}");
        }
    }
    for expected in ["node running", "API listening", "member connected", "stopping", "reloaded"] {
        assert!(
            messages.iter().any(|message| message.starts_with(expected)),
            "no {expected:?} line among {} lines",
            lines.len()
        );
    }
}
