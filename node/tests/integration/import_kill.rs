//! A `crossmatch run` killed with SIGKILL in the middle of an import: twice, once after its
//! first chunks and once past half of the file, each time restarted on the same data
//! directory. The job resumes where its last committed chunk left it and ends `done` with
//! every row added once: a dry run of the same file finds every row present, the other member
//! receives the whole own feed without a fork, its watched accounts from the first, a middle
//! and the last chunk all match, and the store holds one record and one own add per row.

use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossmatch_node::store::{Store, keys};
use crossmatch_node::test_support::{TempDir, http};
use serde_json::Value;

use super::run::{Member, Nodes, alerted_records, setup, spawn, status, stop_all, wait_for};

/// Rows in the file: 20 chunks of 1,000, so a chunk's commit leaves room to kill between two.
const ROWS: usize = 20_000;
const QUERY: &str = "/v1/imports?format=csv&source=kill.csv&share=true\
    &category=terrorism/propaganda&handling=H1&evaluation=B2&expires_in_days=30";
/// The longest the import may take in all, kills and restarts included.
const LIMIT: Duration = Duration::from_secs(300);

fn handle(n: usize) -> String {
    format!("killed_{n}")
}

fn csv() -> Vec<u8> {
    let mut text = String::from("kind;platform;value\n");
    for n in 0..ROWS {
        text.push_str(&format!("account;x;{}\n", handle(n)));
    }
    text.into_bytes()
}

fn job(member: &Member, id: u64) -> Option<Value> {
    let path = format!("/v1/imports/{id}");
    let reply = http::request(member.api_port, "GET", &path, Some(&member.bearer), None).ok()?;
    (reply.status == 200).then(|| reply.json())
}

/// Polls the job until `ready(job)`; panics on a job that ended before.
fn poll(member: &Member, id: u64, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(job) = job(member, id) {
            if ready(&job) {
                return job;
            }
            let state = job["state"].as_str().unwrap_or_default();
            if matches!(state, "done" | "refused" | "failed") {
                let list = http::request(
                    member.api_port,
                    "GET",
                    "/v1/imports",
                    Some(&member.bearer),
                    None,
                )
                .map(|r| r.body);
                panic!("{what}: the job is {job}; all: {list:?}");
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn added(job: &Value) -> u64 {
    job["summary"]["added"].as_u64().unwrap_or(0)
}

/// Kills the node once the job is applying and has committed at least `chunks` chunks;
/// returns the rows added by then.
fn kill_mid_apply(
    node: &mut (Child, mpsc::Receiver<String>),
    member: &Member,
    id: u64,
    at: u64,
) -> u64 {
    let job = poll(member, id, "the apply to pass its mark", |job| {
        job["state"] == "applying" && added(job) >= at
    });
    node.0.kill().unwrap();
    node.0.wait().unwrap();
    let added = added(&job);
    assert!(added < ROWS as u64, "killed before the end: {job}");
    added
}

#[test]
fn an_import_killed_twice_mid_apply_resumes_without_duplicates() {
    let dir = TempDir::new("import-kill");
    let members = setup(dir.path(), 2, 2);
    let mut nodes = Nodes(members.iter().map(|m| spawn(&m.config)).collect());
    for member in &members {
        wait_for("both nodes ready with a peer", || {
            status(member).is_some_and(|s| s["ready"] == true && s["peers"] == 1)
        });
    }
    let (importer, watcher) = (&members[0], &members[1]);
    let watched: Vec<u64> = [0, ROWS / 2 + 7, ROWS - 1]
        .iter()
        .map(|&n| {
            let record = http::account_record(&handle(n), false);
            let reply =
                http::call(watcher.api_port, "POST", "/v1/records", &watcher.bearer, Some(&record));
            assert_eq!(reply.status, 201, "{}", reply.body);
            reply.json()["id"].as_u64().unwrap()
        })
        .collect();

    let file = csv();
    let reply = http::request_typed(
        importer.api_port,
        "POST",
        QUERY,
        Some(&importer.bearer),
        "text/csv",
        Some(&file),
    )
    .unwrap();
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["id"].as_u64().unwrap();

    let first = kill_mid_apply(&mut nodes.0[0], importer, id, 1);
    nodes.0[0] = spawn(&importer.config);
    let second = kill_mid_apply(&mut nodes.0[0], importer, id, (ROWS / 2) as u64);
    assert!(second > first, "the second kill came later in the file ({first}, {second})");
    nodes.0[0] = spawn(&importer.config);

    let done = poll(importer, id, "the job to end", |job| job["state"] == "done");
    assert_eq!(added(&done), ROWS as u64, "every row added once: {done}");
    assert_eq!(done["summary"]["refused"], 0, "{done}");

    // Every row's share published, and the other member holds the whole own feed, unforked.
    wait_for("the outbox to drain", || status(importer).is_some_and(|s| s["outbox"] == 0));
    let own = status(importer).unwrap()["own_feed"].clone();
    wait_for("the other member to hold the whole own feed", || {
        status(watcher).is_some_and(|s| {
            s["heads"].as_array().unwrap().iter().any(|head| {
                head["member"] == "M0"
                    && head["generation"] == own["generation"]
                    && head["seq"] == own["seq"]
            })
        })
    });
    for member in &members {
        let status = status(member).unwrap();
        assert_eq!(status["forks"], 0, "no seq was reused: {status}");
        assert_eq!(status["counters"]["rejected"], 0, "{status}");
    }
    wait_for("the watched accounts of the first, a middle and the last chunk to match", || {
        let alerted = alerted_records(watcher);
        watched.iter().all(|id| alerted.contains(id))
    });

    // The same file again, as a dry run: every row is already there, nothing would be added.
    let reply = http::request_typed(
        importer.api_port,
        "POST",
        &format!("{QUERY}&dry_run=true"),
        Some(&importer.bearer),
        "text/csv",
        Some(&file),
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let summary = &reply.json()["summary"];
    assert_eq!(
        (summary["present"].as_u64(), summary["added"].as_u64()),
        (Some(ROWS as u64), Some(0)),
        "{summary}"
    );

    stop_all(&mut nodes.0);
    // The store, read once the node stopped: one record and one own add per row.
    let store = Store::open(&dir.path().join("data-0")).unwrap();
    assert_eq!(store.scan_keys(&keys::all_records()).unwrap().len(), ROWS, "one record per row");
    assert_eq!(store.scan_keys(&keys::all_own_adds()).unwrap().len(), ROWS, "one share per row");
    assert!(store.scan_keys(&keys::all_outbox()).unwrap().is_empty());
}
