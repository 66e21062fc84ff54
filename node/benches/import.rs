//! Import benchmark (docs/BENCHMARKS.md, Imports): one in-process member serving its API.
//! 26,000 rows (x handles, a `;` CSV) from the upload's first byte to the job reading `done`,
//! polled every 10 ms, then 26,000 records and their entries in the outbox or the own feed;
//! the median of 5 fresh members, with the plan/apply split seen by the polls; then the same
//! through the `crossmatch import` command, from its start to its exit. Then 1,000,000
//! rows (the file generated first): wall time, chunks and the peak RSS the import added
//! (`VmHWM` of this process, which hosts the node). `cargo bench -p crossmatch-node --bench
//! import` (release); `IMPORT_BENCH_MILLION=0` skips the million.

use std::time::{Duration, Instant};

use crossmatch_node::import::limits::CHUNK_RECORDS;
use crossmatch_node::local::wait_until;
use crossmatch_node::store::{Record, keys};
use crossmatch_node::test_support::api_node::{ANALYST_TOKEN, serve_api};
use crossmatch_node::test_support::federation::federation;
use crossmatch_node::test_support::http;

const RUNS: usize = 5;
const SMALL: usize = 26_000;
const MILLION: usize = 1_000_000;
const QUERY: &str = "/v1/imports?format=csv&source=bench&share=true&category=terrorism/propaganda&handling=H1&evaluation=B2&expires_in_days=30";

fn csv(rows: usize, run: usize) -> Vec<u8> {
    let mut text = String::with_capacity(rows * 40);
    text.push_str("kind;platform;value\n");
    for n in 0..rows {
        text.push_str(&format!("account;x;bench_{run}_{n}\n"));
    }
    text.into_bytes()
}

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How the file reaches the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `POST /v1/imports`, then `GET /v1/imports/{id}` every 10 ms until `done`.
    Api,
    /// The `crossmatch import` command (release binary), from its start to its exit (it
    /// follows the job to its end, polling every 50 ms).
    Cli,
}

/// One import into a fresh member: (total, plan, apply) times and the records it holds.
/// Through the command, the plan/apply split is not seen (plan is the total).
async fn run(
    rows: usize,
    run: usize,
    route: Route,
) -> (Duration, Duration, Duration, usize, usize) {
    let (dir, mut fed) = federation(&format!("import-bench-{run}-{route:?}"), 1);
    // A node's default period (the test federation's is 2 s): each tick sweeps expiry and the
    // takedown clocks over every record, which an import should meet as often as in service.
    fed.sync_interval_secs = 30;
    fed.start_all().await.expect("starting the member");
    let node = fed.node(0).expect("the member").clone();
    node.wait_ready().await.expect("ready");
    let (port, _server) = serve_api(&node, "M0").await;
    let body = csv(rows, run);
    let started;
    let mut applying_at = None;
    match route {
        Route::Api => {
            started = Instant::now();
            let id = upload(port, body).await;
            poll(port, id, started, &mut applying_at).await;
        }
        Route::Cli => {
            let file = dir.path().join("bench.csv");
            std::fs::write(&file, &body).expect("writing the file");
            started = Instant::now();
            let api = format!("http://127.0.0.1:{port}");
            let status = tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_crossmatch"))
                    .arg("import")
                    .arg(&file)
                    .args(["--share", "--source", "bench", "--category", "terrorism/propaganda"])
                    .args(["--handling", "H1", "--evaluation", "B2", "--expires-in-days", "30"])
                    .args(["--api", &api])
                    .env("CROSSMATCH_TOKEN", ANALYST_TOKEN)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
            })
            .await
            .expect("the command's thread")
            .expect("running crossmatch import");
            assert!(status.success(), "crossmatch import: {status}");
        }
    }
    let total = started.elapsed();
    let plan = applying_at.unwrap_or(total);
    let records = node
        .with_engine(|engine| engine.store().scan_keys(&keys::all_records()).map(|k| k.len()))
        .await
        .expect("the engine")
        .expect("the store");
    // Every shared record's entry is in the outbox or already in the own feed.
    wait_until("the entries are published", Duration::from_secs(600), || async {
        node.with_engine(|engine| {
            engine.store().scan_keys(&keys::all_outbox()).map(|k| k.is_empty())
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false)
    })
    .await
    .expect("publishing");
    let shared = node
        .with_engine(|engine| engine.store().scan::<Record>(&keys::all_records()))
        .await
        .expect("the engine")
        .expect("the store")
        .iter()
        .filter(|(_, record)| record.shared)
        .count();
    fed.stop_all().await.expect("stopping");
    (total, plan, total.saturating_sub(plan), records, shared)
}

/// Uploads `body` as a CSV import; the job's id.
async fn upload(port: u16, body: Vec<u8>) -> u64 {
    let reply = tokio::task::spawn_blocking(move || {
        http::request_typed(port, "POST", QUERY, Some(ANALYST_TOKEN), "text/csv", Some(&body))
    })
    .await
    .expect("the upload's thread")
    .expect("the upload");
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.json()["id"].as_u64().expect("a job id")
}

/// Polls job `id` every 10 ms until it is `done`, noting when it was first seen `applying`.
async fn poll(port: u16, id: u64, started: Instant, applying_at: &mut Option<Duration>) {
    let path = format!("/v1/imports/{id}");
    loop {
        let job = tokio::task::spawn_blocking({
            let path = path.clone();
            move || http::request(port, "GET", &path, Some(ANALYST_TOKEN), None)
        })
        .await
        .expect("the poll's thread")
        .expect("the poll")
        .json();
        match job["state"].as_str() {
            Some("applying") if applying_at.is_none() => *applying_at = Some(started.elapsed()),
            Some("done") => return,
            Some(state @ ("refused" | "failed")) => panic!("the import ended {state}: {job}"),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "no end within an hour");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A run's time, with the plan/apply split where the polls saw it (not through the command).
fn split(total: Duration, plan: Duration, apply: Duration) -> String {
    match plan == total {
        true => format!("{:.3} s", total.as_secs_f64()),
        false => format!(
            "{:.3} s (plan {:.3} s, apply {:.3} s)",
            total.as_secs_f64(),
            plan.as_secs_f64(),
            apply.as_secs_f64()
        ),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        for route in [Route::Api, Route::Cli] {
            let mut times = Vec::new();
            for n in 0..RUNS {
                let (total, plan, apply, records, shared) = run(SMALL, n, route).await;
                assert_eq!((records, shared), (SMALL, SMALL), "run {n}");
                println!("import 26,000 rows ({route:?}), run {n}: {}", split(total, plan, apply));
                times.push((total, plan, apply));
            }
            times.sort();
            let (total, plan, apply) = times[RUNS / 2];
            let median = split(total, plan, apply);
            println!("import 26,000 rows ({route:?}), median of {RUNS}: {median}; goal 2 s");
        }
        if std::env::var("IMPORT_BENCH_MILLION").as_deref() == Ok("0") {
            return;
        }
        let before = peak_rss_kib();
        let (total, plan, apply, records, _) = run(MILLION, RUNS, Route::Api).await;
        assert_eq!(records, MILLION);
        println!(
            "import 1,000,000 rows: {:.1} s (plan {:.1} s, apply {:.1} s), {} chunks, peak RSS +{} MiB",
            total.as_secs_f64(),
            plan.as_secs_f64(),
            apply.as_secs_f64(),
            MILLION.div_ceil(CHUNK_RECORDS),
            peak_rss_kib().saturating_sub(before) / 1024
        );
    });
}
