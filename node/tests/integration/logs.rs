//! The logs of real `crossmatch run` processes, in JSON at debug level, while a federation of two
//! does an analyst's whole day: identifiers of all six kinds in messy forms, a match both ways, a
//! status, a read, a retraction, observations and a restart. Every line must parse as JSON, and
//! no line may carry a raw input, a canonical form (or its value) or a token in full.

use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossmatch_node::keyfile;
use crossmatch_node::roster_file;
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

#[test]
fn no_log_line_carries_an_identifier_a_canonical_form_or_a_token() {
    let dir = TempDir::new("logs");
    let members = run::setup(dir.path(), 2, 2);
    for member in &members {
        let text = std::fs::read_to_string(&member.config).unwrap();
        run::write_private(&member.config, &format!("log_format = \"json\"\n{text}"));
    }
    let mut nodes: Vec<_> = members.iter().map(spawn_json).collect();
    for member in &members {
        run::wait_for("both nodes ready and connected", || ready_with_peer(member));
    }

    // The same account at both members: a match both ways.
    let at_0 = add(&members[0], &record_body(true));
    let at_1 = add(&members[1], &record_body(true));
    run::wait_for("the match at both members", || {
        run::alerted_records(&members[0]).contains(&at_0)
            && run::alerted_records(&members[1]).contains(&at_1)
    });

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

    // A restart of member 1, then both stop.
    let mut lines = Vec::new();
    let mut stopped = vec![nodes.pop().unwrap()];
    run::stop_all(&mut stopped);
    for (_, receiver) in stopped {
        drain(receiver, &mut lines);
    }
    nodes.push(spawn_json(&members[1]));
    run::wait_for("member 1 back and connected", || ready_with_peer(&members[1]));
    std::thread::sleep(Duration::from_millis(500));
    run::stop_all(&mut nodes);
    for (_, receiver) in nodes {
        drain(receiver, &mut lines);
    }

    let forbidden = forbidden(dir.path());
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
    for expected in ["node running", "API listening", "member connected", "stopping"] {
        assert!(
            messages.iter().any(|message| message.starts_with(expected)),
            "no {expected:?} line among {} lines",
            lines.len()
        );
    }
}
