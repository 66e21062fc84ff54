//! Imports of real rows through one member's API (they need the readers and the engine's
//! import chunks): a dry run writes nothing (every store key and value, the own feed's head,
//! the audit position and `audit.log`'s bytes, an empty `imports/`: before = after); round
//! trips through CSV (`,` with a byte-order mark and `;`, mixed identifiers in a subject) and
//! JSON lines, the records read back equal to the rows; a re-import changes nothing; a STIX
//! bundle's TLP:RED indicator becomes a watch, a newer `modified` updates a record in place
//! and `revoked` removes it; bad rows are listed by position and rule without their values; an
//! import stopped mid-apply resumes without duplicates.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crossmatch_node::audit::LOG_FILE_NAME;
use crossmatch_node::daemon::{IMPORTS_DIR, JobState, Node};
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::store::{Record, keys};
use crossmatch_node::test_support::api_node::{ANALYST_TOKEN, serve_api};
use crossmatch_node::test_support::federation::federation;
use crossmatch_node::test_support::http::{self, Reply};
use crossmatch_protocol::{Kind, canonicalize};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(240);
const WAIT: Duration = Duration::from_secs(60);
const DEFAULTS: &str = "category=terrorism/propaganda&handling=H1&evaluation=B2&expires_in_days=30";

async fn upload(port: u16, query: &str, body: Vec<u8>) -> Reply {
    let path = format!("/v1/imports?{query}");
    http::request_off_workers(port, "POST", &path, Some(ANALYST_TOKEN), "text/csv", Some(body))
        .await
}

async fn get(port: u16, path: &str) -> Value {
    let reply =
        http::request_off_workers(port, "GET", path, Some(ANALYST_TOKEN), "application/json", None)
            .await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()
}

/// Uploads and waits for the job's end; returns the job.
async fn import(port: u16, query: &str, body: Vec<u8>) -> Value {
    let reply = upload(port, query, body).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["id"].as_u64().unwrap();
    wait_job(port, id).await
}

async fn wait_job(port: u16, id: u64) -> Value {
    let path = format!("/v1/imports/{id}");
    wait_until("the import ends", WAIT, || async {
        let state = get(port, &path).await["state"].as_str().unwrap_or_default().to_owned();
        ["done", "refused", "failed", "undone"].contains(&state.as_str())
    })
    .await
    .unwrap();
    get(port, &path).await
}

async fn records(node: &Node) -> Vec<Record> {
    node.with_engine(|engine| engine.store().scan::<Record>(&keys::all_records()))
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

/// Each record's sorted canonical forms.
fn groups(records: &[Record]) -> BTreeSet<Vec<String>> {
    records
        .iter()
        .map(|record| {
            let mut forms: Vec<String> =
                record.identifiers.iter().map(|i| i.canonical.clone()).collect();
            forms.sort();
            forms
        })
        .collect()
}

fn canonical(kind: Kind, platform: Option<&str>, region: Option<&str>, value: &str) -> String {
    canonicalize(kind, platform, region, value).unwrap().as_str().to_owned()
}

fn group(forms: &[String]) -> Vec<String> {
    let mut forms = forms.to_vec();
    forms.sort();
    forms
}

/// Most log bytes kept: the capture serves every test of the binary once it is on.
const MAX_CAPTURED_LOG_BYTES: usize = 64 << 20;

/// A writer that appends to the captured log, up to its bound.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut logs = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if logs.len() + data.len() <= MAX_CAPTURED_LOG_BYTES {
            logs.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log of every node in this test binary from the first call on, at debug level (a global
/// subscriber: the nodes' tasks run on runtime threads, where a scoped one would see nothing).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("crossmatch_node=debug"))
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .try_init()
            .expect("no other subscriber in this binary");
        logs
    })
    .clone()
}

async fn start(name: &str) -> (crossmatch_node::test_support::TempDir, LocalFederation, u16) {
    let (dir, mut fed) = federation(name, 1);
    fed.start_all().await.unwrap();
    let (port, _server) = serve_api(fed.node(0).unwrap(), "M0").await;
    (dir, fed, port)
}

/// Everything a dry run must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    store: Vec<(Vec<u8>, Vec<u8>)>,
    own_head: (u32, u64),
    audit: (u64, u64),
    audit_log: Vec<u8>,
    imports: Vec<String>,
}

async fn snapshot(fed: &LocalFederation) -> Snapshot {
    let node = fed.node(0).unwrap();
    let (store, own_head, audit) = node
        .with_engine(|engine| {
            (engine.store().dump().unwrap(), engine.own_head(), engine.audit_position())
        })
        .await
        .unwrap();
    let dir = fed.data_dir(0);
    let mut imports: Vec<String> = std::fs::read_dir(dir.join(IMPORTS_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    imports.sort();
    let audit_log = std::fs::read(dir.join("audit").join(LOG_FILE_NAME)).unwrap();
    Snapshot { store, own_head, audit, audit_log, imports }
}

async fn outbox_empty(node: &Node) -> bool {
    node.with_engine(|engine| engine.store().scan_keys(&keys::all_outbox()).map(|k| k.is_empty()))
        .await
        .unwrap()
        .unwrap()
}

fn csv(separator: char, rows: &[[&str; 5]]) -> Vec<u8> {
    let mut text = ["kind", "platform", "region", "value", "subject"].join(&separator.to_string());
    for row in rows {
        text.push('\n');
        text.push_str(&row.join(&separator.to_string()));
    }
    text.push('\n');
    text.into_bytes()
}

/// Mixed identifiers in one subject, and a subject of one.
const MIXED: [[&str; 5]; 4] = [
    ["account", "x", "", "mixed_handle_1", "s1"],
    ["email", "", "", "Mixed.Person@Example.org", "s1"],
    ["url", "", "", "https://example.org/mixed", "s1"],
    ["phone", "", "FR", "06 12 34 56 78", "s2"],
];

fn mixed_groups() -> BTreeSet<Vec<String>> {
    BTreeSet::from([
        group(&[
            canonical(Kind::Account, Some("x"), None, "mixed_handle_1"),
            canonical(Kind::Email, None, None, "Mixed.Person@Example.org"),
            canonical(Kind::Url, None, None, "https://example.org/mixed"),
        ]),
        group(&[canonical(Kind::Phone, None, Some("FR"), "06 12 34 56 78")]),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed, port) = start("imports-dry-run").await;
        // A real import first: an import key, rows and records to classify against.
        let job = import(
            port,
            &format!("format=csv&source=first&share=true&{DEFAULTS}"),
            csv(';', &MIXED),
        )
        .await;
        assert_eq!(job["state"], "done", "{job}");
        let node = fed.node(0).unwrap().clone();
        wait_until("the outbox is published", WAIT, || outbox_empty(&node)).await.unwrap();
        let before = snapshot(&fed).await;
        let rows = [
            ["account", "x", "", "dry_handle", "d1"],
            ["account", "x", "", "mixed_handle_1", "s1"],
        ];
        let reply = upload(
            port,
            &format!("format=csv&source=first&share=true&dry_run=true&{DEFAULTS}"),
            csv(';', &rows),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let plan = reply.json();
        assert_eq!((plan["id"].clone(), plan["dry_run"].clone()), (Value::Null, Value::Bool(true)));
        assert_eq!(plan["summary"]["added"], 1, "{plan}");
        assert_eq!(plan["summary"]["updated"], 1, "{plan}");
        assert_eq!(plan["quota"]["fits_today"], true, "{plan}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(snapshot(&fed).await, before);
        assert_eq!(get(port, "/v1/imports").await["imports"].as_array().unwrap().len(), 1);
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_json_lines_round_trip_and_a_reimport_changes_nothing() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed, port) = start("imports-round-trip").await;
        let node = fed.node(0).unwrap().clone();
        // `;` with mixed identifiers.
        let job = import(port, &format!("format=csv&source=semi&share=true&{DEFAULTS}"), csv(';', &MIXED)).await;
        assert_eq!((job["state"].clone(), job["summary"]["added"].clone()), ("done".into(), 2.into()), "{job}");
        assert_eq!(groups(&records(&node).await), mixed_groups());
        for record in records(&node).await {
            assert!(record.shared && record.backlog && record.import.is_some(), "{record:?}");
            assert_eq!((record.category.as_str(), record.handling.as_str()), ("terrorism/propaganda", "H1"));
        }
        // `,` with a byte-order mark, under another source: new records of the same accounts.
        let mut comma = b"\xEF\xBB\xBF".to_vec();
        comma.extend(csv(',', &[["account", "x", "", "comma_handle", ""]]));
        let job = import(port, &format!("source=comma&share=false&{DEFAULTS}"), comma).await;
        assert_eq!((job["format"].clone(), job["summary"]["added"].clone()), ("csv".into(), 1.into()), "{job}");
        // JSON lines in the API's record shape, with a subject.
        let jsonl = [
            r#"{"subject":"j1","identifiers":[{"kind":"account","platform":"x","value":"jsonl_handle"},{"kind":"domain","value":"jsonl.example"}],"share":true}"#,
            r#"{"subject":"j2","identifiers":[{"kind":"email","value":"jsonl@example.org"}],"share":false,"handling":"H3"}"#,
        ]
        .join("\n");
        let job = import(port, &format!("format=jsonl&source=lines&share=true&{DEFAULTS}"), jsonl.clone().into_bytes()).await;
        assert_eq!((job["state"].clone(), job["summary"]["added"].clone()), ("done".into(), 2.into()), "{job}");
        let all = records(&node).await;
        let mut expected = mixed_groups();
        expected.insert(vec![canonical(Kind::Account, Some("x"), None, "comma_handle")]);
        expected.insert(group(&[
            canonical(Kind::Account, Some("x"), None, "jsonl_handle"),
            canonical(Kind::Domain, None, None, "jsonl.example"),
        ]));
        expected.insert(vec![canonical(Kind::Email, None, None, "jsonl@example.org")]);
        assert_eq!(groups(&all), expected);
        // The same file again: nothing added or updated, the records untouched.
        let job = import(port, &format!("format=jsonl&source=lines&share=true&{DEFAULTS}"), jsonl.into_bytes()).await;
        assert_eq!(
            (job["summary"]["added"].clone(), job["summary"]["updated"].clone(), job["summary"]["present"].clone()),
            (0.into(), 0.into(), 2.into()),
            "{job}"
        );
        assert_eq!(records(&node).await, all);
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}

const TLP_RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const TLP_GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const RED_INDICATOR: &str = "indicator--6a0e5b2a-4c1e-4f57-9d0f-1a2b3c4d5e6f";
const GREEN_INDICATOR: &str = "indicator--7b1f6c3b-5d2f-4a68-8e1a-2b3c4d5e6f70";

fn indicator(id: &str, marking: &str, modified: &str, handle: &str, revoked: bool) -> Value {
    serde_json::json!({
        "type": "indicator", "spec_version": "2.1", "id": id,
        "created": "2026-01-02T00:00:00.000Z", "modified": modified,
        "pattern": format!("[user-account:account_login = '{handle}' AND user-account:account_type = 'twitter']"),
        "pattern_type": "stix", "valid_from": "2026-01-02T00:00:00Z",
        "object_marking_refs": [marking], "revoked": revoked,
    })
}

fn bundle(objects: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "bundle", "id": "bundle--0e1d2c3b-4a59-4867-9f5e-4d3c2b1a0f9e", "objects": objects,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stix_bundle_marks_updates_and_revokes() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed, port) = start("imports-stix").await;
        let node = fed.node(0).unwrap().clone();
        let query = format!("share=true&{DEFAULTS}");
        let first = bundle(vec![
            indicator(RED_INDICATOR, TLP_RED, "2026-01-02T00:00:00.000Z", "red_handle", false),
            indicator(
                GREEN_INDICATOR,
                TLP_GREEN,
                "2026-01-02T00:00:00.000Z",
                "green_handle",
                false,
            ),
        ]);
        let job = import(port, &query, first).await;
        assert_eq!(
            (job["format"].clone(), job["summary"]["added"].clone()),
            ("stix".into(), 2.into()),
            "{job}"
        );
        let by_handle = |records: &[Record], handle: &str| {
            let form = canonical(Kind::Account, Some("x"), None, handle);
            records.iter().find(|r| r.identifiers.iter().any(|i| i.canonical == form)).cloned()
        };
        let all = records(&node).await;
        let red = by_handle(&all, "red_handle").expect("the red indicator's record");
        assert!(!red.shared, "TLP:RED must be a watch: {red:?}");
        let green = by_handle(&all, "green_handle").expect("the green indicator's record");
        assert!(green.shared);
        // A newer `modified` with another account: the same record, updated in place.
        let newer = bundle(vec![indicator(
            GREEN_INDICATOR,
            TLP_GREEN,
            "2026-02-01T00:00:00.000Z",
            "green_handle_2",
            false,
        )]);
        let job = import(port, &query, newer).await;
        assert_eq!(job["summary"]["updated"], 1, "{job}");
        let all = records(&node).await;
        let updated = by_handle(&all, "green_handle_2").expect("the updated record");
        assert_eq!(updated.id, green.id);
        assert!(by_handle(&all, "green_handle").is_none());
        // An older version changes nothing; `revoked` removes the record.
        let older = bundle(vec![indicator(
            GREEN_INDICATOR,
            TLP_GREEN,
            "2026-01-03T00:00:00.000Z",
            "green_handle",
            false,
        )]);
        assert_eq!(import(port, &query, older).await["summary"]["present"], 1);
        let revoked = bundle(vec![indicator(
            GREEN_INDICATOR,
            TLP_GREEN,
            "2026-03-01T00:00:00.000Z",
            "green_handle_2",
            true,
        )]);
        assert_eq!(import(port, &query, revoked).await["summary"]["removed"], 1);
        let all = records(&node).await;
        assert!(all.iter().all(|r| r.id != green.id), "the revoked record stayed");
        assert!(by_handle(&all, "red_handle").is_some());
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_listed_by_position_without_their_values() {
    tokio::time::timeout(LIMIT, async {
        let logs = captured_logs();
        let (_dir, mut fed, port) = start("imports-bad-rows").await;
        let values = ["bad handle with spaces!", "not-an-email", "carrier_pigeon_value"];
        let rows = [
            ["account", "x", "", "good_handle", ""],
            ["account", "x", "", values[0], ""],
            ["email", "", "", values[1], ""],
            ["pigeon", "", "", values[2], ""],
        ];
        let reply =
            upload(port, &format!("format=csv&source=bad&share=true&{DEFAULTS}"), csv(',', &rows))
                .await;
        assert_eq!(reply.status, 202);
        let id = reply.json()["id"].as_u64().unwrap();
        let job = wait_job(port, id).await;
        assert_eq!(
            (job["summary"]["added"].clone(), job["refused_count"].clone()),
            (1.into(), 3.into()),
            "{job}"
        );
        let positions: Vec<&str> = job["refused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["position"].as_str().unwrap())
            .collect();
        assert_eq!(positions, ["line 3", "line 4", "line 5"]);
        assert_eq!(job["refused"][2]["rule"], "unknown_kind");
        let listing = get(port, "/v1/imports").await.to_string();
        for value in values {
            assert!(!job.to_string().contains(value) && !listing.contains(value), "{value} echoed");
        }
        // Nor in the node's logs, which did log this import (by its id).
        let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert!(logged.contains(&format!("import={id}")), "the capture saw nothing");
        for value in values.iter().chain(["good_handle", "source=bad"].iter()) {
            assert!(!logged.contains(value), "{value} logged");
        }
        // A row that would outlive the roster's retention is refused at the plan, as the apply
        // would refuse it: a dry run says what the import will do.
        let long = "category=terrorism/propaganda&handling=H1&evaluation=B2&expires_in_days=36500";
        let query = format!("format=csv&source=long&share=true&dry_run=true&{long}");
        let plan = upload(port, &query, csv(',', &rows[..1])).await.json();
        assert_eq!(plan["planned"]["added"], 0, "{plan}");
        assert_eq!(plan["refused"][0]["rule"], "expiry", "{plan}");
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stopped_while_applying_resumes_without_duplicates() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed, port) = start("imports-resume").await;
        const ROWS: usize = 30_000;
        let mut text = String::from("kind;platform;value;subject\n");
        for n in 0..ROWS {
            text += &format!("account;x;rh_{n};s{n}\n");
        }
        let reply = upload(
            port,
            &format!("format=csv&source=resume&share=false&{DEFAULTS}"),
            text.into_bytes(),
        )
        .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        let id = reply.json()["id"].as_u64().unwrap();
        let path = format!("/v1/imports/{id}");
        wait_until("the first chunk is applied", WAIT, || async {
            get(port, &path).await["summary"]["records"].as_u64().unwrap_or(0) > 0
        })
        .await
        .unwrap();
        fed.stop(0).await.unwrap();
        // The stop came mid-apply: the stored job is still applying, with some records and
        // not all (else the resume below proves nothing).
        {
            let store = crossmatch_node::store::Store::open(&fed.data_dir(0)).unwrap();
            let stopped = crossmatch_node::store::imports::job(&store, id).unwrap().unwrap();
            assert_eq!(stopped.state, JobState::Applying, "{stopped:?}");
            assert!(
                stopped.done.records > 0 && stopped.done.records < ROWS as u64,
                "stopped at {} of {ROWS} records",
                stopped.done.records
            );
        }
        fed.start(0).await.unwrap();
        let (port, _server) = serve_api(fed.node(0).unwrap(), "M0").await;
        let job = wait_job(port, id).await;
        assert_eq!(
            (job["state"].clone(), job["summary"]["added"].clone()),
            ("done".into(), ROWS.into()),
            "{job}"
        );
        let node = fed.node(0).unwrap().clone();
        let all = records(&node).await;
        assert_eq!(all.len(), ROWS);
        assert_eq!(groups(&all).len(), ROWS, "a row was applied twice");
        let log =
            std::fs::read_to_string(fed.data_dir(0).join("audit").join(LOG_FILE_NAME)).unwrap();
        let lines = log.lines().filter(|line| line.contains(&format!("import:{id}_a"))).count();
        assert_eq!(lines, 1, "one import line (a stop between plan and apply may add a second)");
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}
