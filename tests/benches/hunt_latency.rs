//! The hunt inside a running member: the ingest rate with every chunk's write committed, the
//! p99 of the API and of gossip while recomputes run back to back (against the same member at
//! rest), and freshness (how long a new account takes to show in the analytics on the timer).
//!
//! `cargo bench -p crossmatch-tests --bench hunt_latency [-- --accounts N --posts-per-day N
//! --days N --probes N]` (defaults: 50,000 accounts, 100,000 posts a day, 7 days: the structure
//! window; 400 probes a phase).
//!
//! Two members on loopback. Member 1 holds the observations, serves the API and watches every
//! handle member 0 adds. A phase sends `probes` adds from member 0 at 20 ms intervals (each one
//! timed from the return of `add_record` to member 1's alert) and, at the same time, `probes`
//! API requests to member 1 one after another (`GET /v1/status`, which takes an engine lane, and
//! `GET /v1/analytics/accounts?limit=50`, which reads the results), each timed from connect to
//! the last byte of the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossmatch_node::api::{self, Role, User, Users};
use crossmatch_node::daemon::Node;
use crossmatch_node::test_support::{account, federation, http, record};

const TOKEN: &str = "cmt_bench-analyst";
const DAY_MS: u64 = 86_400_000;
const ADD_INTERVAL: Duration = Duration::from_millis(20);
const CHUNK: usize = 1_000;

struct Settings {
    accounts: u64,
    posts_per_day: u64,
    days: u64,
    probes: usize,
}

impl Settings {
    fn from_args() -> Self {
        let mut settings =
            Settings { accounts: 50_000, posts_per_day: 100_000, days: 7, probes: 400 };
        let args: Vec<String> = std::env::args().skip(1).collect();
        for pair in args.windows(2) {
            let value = || pair[1].parse().expect("a number after the flag");
            match pair[0].as_str() {
                "--accounts" => settings.accounts = value(),
                "--posts-per-day" => settings.posts_per_day = value(),
                "--days" => settings.days = value(),
                "--probes" => settings.probes = value() as usize,
                _ => {}
            }
        }
        settings
    }
}

/// splitmix64: a seeded stream, so every run sees the same corpus.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A skewed pick in `0..n`: low indices far more often (activity follows a power law).
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64) * u.powi(3)) as u64 % n.max(1)
    }
}

/// The corpus, day by day: accounts in communities of 200, reposts and replies mostly within
/// the community and concentrated on a few amplifiers, some originals with a mention.
fn corpus(settings: &Settings, now_ms: u64) -> Vec<Vec<u8>> {
    const COMMUNITY: u64 = 200;
    let mut stream = Stream(42);
    let mut lines = Vec::with_capacity((settings.posts_per_day * settings.days) as usize);
    let first_day = now_ms / DAY_MS + 1 - settings.days;
    for day in 0..settings.days {
        let start = (first_day + day) * DAY_MS;
        let span = if day + 1 == settings.days { now_ms - start } else { DAY_MS };
        for n in 0..settings.posts_per_day {
            let author = stream.skewed(settings.accounts);
            let community = author / COMMUNITY;
            let partner = if stream.below(100) < 85 {
                community * COMMUNITY + stream.skewed(COMMUNITY.min(settings.accounts))
            } else {
                stream.below(settings.accounts)
            };
            let at = start + stream.below(span.max(1));
            let kind = stream.below(100);
            let reference = match kind {
                0..50 => format!(r#","repost_of":"@a{partner}""#),
                50..65 => format!(r#","reply_to":"@a{partner}""#),
                65..80 => format!(r#","mentions":["@a{partner}"]"#),
                _ => String::new(),
            };
            lines.push(
                format!(
                    r#"{{"platform":"x","account":"@a{author}","at":{at},"post_id":"{day}-{n}"{reference}}}"#
                )
                .into_bytes(),
            );
        }
    }
    lines
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(name: &str, mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "{name}: n {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    )
}

/// One phase: `probes` adds by member 0 timed to member 1's alert, and API requests to member 1
/// at the same time. `prefix` keeps each phase's handles apart.
async fn phase(
    origin: &Node,
    counterpart: &Node,
    port: u16,
    probes: usize,
    prefix: &str,
) -> String {
    let handles: Vec<String> = (0..probes).map(|i| format!("{prefix}_{i}")).collect();
    let watched = handles.iter().map(|h| record(&[h], false)).collect();
    counterpart.add_records(watched, "bench".into()).await.unwrap();
    let token_of: HashMap<_, usize> = {
        let canon: Vec<_> = handles.iter().map(|h| account(h)).collect();
        let tokens = counterpart
            .with_engine(move |e| canon.iter().map(|c| e.token(c)).collect::<Vec<_>>())
            .await
            .unwrap();
        tokens.into_iter().enumerate().map(|(i, t)| (t, i)).collect()
    };
    let mut alerts = counterpart.subscribe();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::channel::<(usize, Instant)>(probes * 2);
    let listener = tokio::spawn(async move {
        while let Ok(event) = alerts.recv().await {
            if let Some(index) = token_of.get(&event.alert.token) {
                let _ = seen_tx.send((*index, Instant::now())).await;
            }
        }
    });
    let api_done = Arc::new(AtomicBool::new(false));
    let api_probe = {
        let done = api_done.clone();
        tokio::task::spawn_blocking(move || {
            let (mut status, mut accounts) = (Vec::new(), Vec::new());
            for i in 0.. {
                if done.load(Ordering::Relaxed) || i >= probes * 2 {
                    break;
                }
                let (path, into) = if i % 2 == 0 {
                    ("/v1/status", &mut status)
                } else {
                    ("/v1/analytics/accounts?limit=50", &mut accounts)
                };
                let started = Instant::now();
                let reply = http::request(port, "GET", path, Some(TOKEN), None).unwrap();
                into.push(started.elapsed());
                assert_eq!(reply.status, 200, "{path}: {}", reply.body);
                std::thread::sleep(Duration::from_millis(10));
            }
            (status, accounts)
        })
    };
    let mut returned = vec![None; probes];
    let mut ticker = tokio::time::interval(ADD_INTERVAL);
    for (i, handle) in handles.iter().enumerate() {
        ticker.tick().await;
        origin.add_record(record(&[handle], true), "bench".into()).await.unwrap();
        returned[i] = Some(Instant::now());
    }
    let mut gossip = Vec::with_capacity(probes);
    let mut seen = vec![false; probes];
    while gossip.len() < probes {
        let Ok(Some((index, at))) =
            tokio::time::timeout(Duration::from_secs(60), seen_rx.recv()).await
        else {
            break;
        };
        if !std::mem::replace(&mut seen[index], true)
            && let Some(returned) = returned[index]
        {
            gossip.push(at.saturating_duration_since(returned));
        }
    }
    api_done.store(true, Ordering::Relaxed);
    let (status, accounts) = api_probe.await.unwrap();
    listener.abort();
    format!(
        "  {}\n  {}\n  {}",
        summary("gossip publish-to-alert", gossip),
        summary("GET /v1/status", status),
        summary("GET /v1/analytics/accounts", accounts)
    )
}

async fn run(settings: Settings) {
    let (_dir, mut fed) = federation("hunt-latency", 2);
    fed.wait_limit = Duration::from_secs(300);
    // The timer never recomputes during the phases: recomputes are started by the bench.
    fed.hunt.recompute_interval_secs = 86_400;
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let origin = fed.node(0).unwrap().clone();
    let counterpart = fed.node(1).unwrap().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let users =
        Users::new([(api::token_hash(TOKEN), User { name: "bench".into(), role: Role::Analyst })]);
    let server = tokio::spawn(api::serve(
        listener,
        api::router(counterpart.clone(), users, "M1"),
        counterpart.clone(),
    ));

    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let lines = corpus(&settings, now_ms - 60_000);
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let started = Instant::now();
    let mut accepted = 0;
    for (n, chunk) in lines.chunks(CHUNK).enumerate() {
        let numbered = chunk
            .iter()
            .enumerate()
            .map(|(i, line)| ((n * CHUNK + i + 1) as u64, line.clone()))
            .collect();
        accepted += counterpart.observe(numbered).await.unwrap().accepted;
    }
    let ingest = started.elapsed();
    println!(
        "ingest through the node, each chunk of {CHUNK} lines counted and committed durably: \
         {} lines ({:.0} MiB), {accepted} accepted, {:.1} s, {:.0} lines/s",
        lines.len(),
        bytes as f64 / (1 << 20) as f64,
        ingest.as_secs_f64(),
        lines.len() as f64 / ingest.as_secs_f64()
    );
    drop(lines);

    // The node's own task may already be computing after the ingest: `recompute_hunt` waits for
    // it, so each figure below is a computation that started after the previous one.
    for n in 1..=3 {
        let started = Instant::now();
        counterpart.recompute_hunt().await.unwrap();
        println!(
            "recompute {n} over the structure window (graph, Leiden, PageRank, curation, \
             suggestions' links, successors): {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }

    println!("at rest:\n{}", phase(&origin, &counterpart, port, settings.probes, "rest").await);

    let stop = Arc::new(AtomicBool::new(false));
    let recomputing = {
        let (stop, node) = (stop.clone(), counterpart.clone());
        tokio::spawn(async move {
            let before = node.hunt_recomputes();
            while !stop.load(Ordering::Relaxed) {
                node.recompute_hunt().await.unwrap();
            }
            node.hunt_recomputes() - before
        })
    };
    let during = phase(&origin, &counterpart, port, settings.probes, "busy").await;
    stop.store(true, Ordering::Relaxed);
    let recomputes = recomputing.await.unwrap();
    println!("during back-to-back recomputes ({recomputes} of them):\n{during}");

    server.abort();
    fed.stop_all().await.unwrap();
    freshness().await;
}

/// A new account's first posts, to its appearance in the analytics, with the timer at a 5 s
/// interval and the store otherwise idle.
async fn freshness() {
    let (_dir, mut fed) = federation("hunt-freshness", 1);
    fed.hunt.recompute_interval_secs = 5;
    fed.start_all().await.unwrap();
    let node = fed.node(0).unwrap().clone();
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let base: Vec<(u64, Vec<u8>)> = (0..200u64)
        .map(|i| {
            let line = format!(
                r#"{{"platform":"x","account":"@old{}","at":{},"post_id":"old{i}","repost_of":"@old{}"}}"#,
                i % 20,
                now_ms - 3_600_000 + i,
                (i + 1) % 20
            );
            (i + 1, line.into_bytes())
        })
        .collect();
    node.observe(base).await.unwrap();
    node.recompute_hunt().await.unwrap();
    let mut samples = Vec::new();
    for round in 0..5u64 {
        let name = format!("fresh{round}");
        let line = format!(
            r#"{{"platform":"x","account":"@{name}","at":{},"post_id":"{name}","repost_of":"@old1"}}"#,
            now_ms + round
        );
        let posted = Instant::now();
        node.observe(vec![(1, line.into_bytes())]).await.unwrap();
        let wanted = format!("v1|account|x|{name}");
        loop {
            let results = node.read_analytics("bench".into(), "bench".into()).await.unwrap();
            if results.accounts.iter().any(|a| a.account == wanted) {
                samples.push(posted.elapsed());
                break;
            }
            assert!(posted.elapsed() < Duration::from_secs(60), "{name} never showed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(2_500 * round)).await;
    }
    println!(
        "freshness at a 5 s recompute interval: {}",
        summary("first post to analytics", samples)
    );
    fed.stop_all().await.unwrap();
}

fn main() {
    let settings = Settings::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run(settings));
}
