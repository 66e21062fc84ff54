//! Import benchmark (docs/BENCHMARKS.md, Imports): one in-process member serving its API.
//! 26,000 rows (x handles, a `;` CSV) from the upload's first byte to the job reading `done`,
//! polled every 10 ms, then 26,000 records and their entries in the outbox or the own feed;
//! the median of 5 fresh members, with the plan/apply split seen by the polls; then the same
//! through the `crossmatch import` command, from its start to its exit. Then 1,000,000
//! rows (the file generated first): wall time, chunks and the peak RSS the import added
//! (`VmHWM` of this process, which hosts the node), with the resident set and the store's files
//! sampled while it runs. `cargo bench -p crossmatch-node --bench import` (release);
//! `IMPORT_BENCH_MILLION=0` skips the million, `IMPORT_BENCH_SMALL=0` the 26,000-row part,
//! `IMPORT_BENCH_ROWS=N` imports N rows instead of a million, `IMPORT_BENCH_SAMPLE_SECS=S`
//! samples every S seconds (15 unless set) and `IMPORT_BENCH_CACHE_MIB=M` gives the member's
//! store a page cache of M MiB (the node's default unless set).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossmatch_node::import::limits::CHUNK_RECORDS;
use crossmatch_node::local::wait_until;
use crossmatch_node::store::{self, Record, keys};
use crossmatch_node::test_support::api_node::{ANALYST_TOKEN, serve_api};
use crossmatch_node::test_support::federation::federation;
use crossmatch_node::test_support::{http, knob};

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
    status_kib("VmHWM:")
}

/// One figure of this process's `/proc/self/status` (`VmHWM:`, `VmRSS:`), in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The bytes of every file under `dir` (a file removed meanwhile counts nothing).
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => bytes_under(&entry.path()),
            Ok(_) => entry.metadata().map(|metadata| metadata.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// A thread that prints the resident set and the bytes of the files under `dir` every
/// `every`, from its start until the flag it returns is set.
fn sample(dir: PathBuf, every: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let started = Instant::now();
    std::thread::spawn(move || {
        while !stopped.load(Ordering::Relaxed) {
            println!(
                "  sample {:>6.0} s: RSS {} MiB, store files {} MiB",
                started.elapsed().as_secs_f64(),
                status_kib("VmRSS:") / 1024,
                bytes_under(&dir) >> 20
            );
            let slice = Instant::now();
            while slice.elapsed() < every && !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    stop
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
/// With `sample_every`, the resident set and the store's files are printed that often.
async fn run(
    rows: usize,
    run: usize,
    route: Route,
    sample_every: Option<Duration>,
) -> (Duration, Duration, Duration, usize, usize) {
    let (dir, mut fed) = federation(&format!("import-bench-{run}-{route:?}"), 1);
    // A node's default period (the test federation's is 2 s): each tick sweeps expiry and the
    // takedown clocks over every record, which an import should meet as often as in service.
    fed.sync_interval_secs = 30;
    fed.store_cache_bytes = knob("IMPORT_BENCH_CACHE_MIB", store::DEFAULT_CACHE_BYTES >> 20) << 20;
    fed.start_all().await.expect("starting the member");
    // The store's own files (sled's, under `db`), not the rest of the data directory.
    let sampling = sample_every.map(|every| sample(fed.data_dir(0).join("db"), every));
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
    // Every shared record's entry is in the outbox or already in the own feed.
    wait_until("the entries are published", Duration::from_secs(1800), || async {
        node.with_engine(|engine| engine.store().any_with_prefix(&keys::all_outbox()))
            .await
            .ok()
            .and_then(Result::ok)
            .is_some_and(|queued| !queued)
    })
    .await
    .expect("publishing");
    // Counted one record at a time: a million decoded records would be the bench's own peak.
    let (records, shared) = node
        .with_engine(|engine| {
            let mut counts = (0, 0);
            engine
                .store()
                .scan_each(&keys::all_records(), |_, record: Record| {
                    counts.0 += 1;
                    counts.1 += usize::from(record.shared);
                    Ok::<_, store::Error>(())
                })
                .map(|()| counts)
        })
        .await
        .expect("the engine")
        .expect("the store");
    if let Some(stop) = sampling {
        stop.store(true, Ordering::Relaxed);
    }
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
        let routes = match knob("IMPORT_BENCH_SMALL", 1) {
            0 => &[][..],
            _ => &[Route::Api, Route::Cli][..],
        };
        for &route in routes {
            let mut times = Vec::new();
            for n in 0..RUNS {
                let (total, plan, apply, records, shared) = run(SMALL, n, route, None).await;
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
        let rows = usize::try_from(knob("IMPORT_BENCH_ROWS", MILLION as u64)).expect("rows");
        let every = Duration::from_secs(knob("IMPORT_BENCH_SAMPLE_SECS", 15).max(1));
        let before = peak_rss_kib();
        let (total, plan, apply, records, shared) = run(rows, RUNS, Route::Api, Some(every)).await;
        assert_eq!((records, shared), (rows, rows));
        println!(
            "import {rows} rows: {:.1} s (plan {:.1} s, apply {:.1} s), {} chunks, peak RSS +{} MiB",
            total.as_secs_f64(),
            plan.as_secs_f64(),
            apply.as_secs_f64(),
            rows.div_ceil(CHUNK_RECORDS),
            peak_rss_kib().saturating_sub(before) / 1024
        );
    });
}
