//! Publish-to-alert latency: from the moment the origin's `add_record` returns to the moment
//! the alert is stored at a counterpart that already holds the token, on loopback, with 1,000
//! adds at ~50 per second. Also reports the floor (one hop of verify + store + match) and the
//! verifications per unique batch.
//!
//! `cargo bench -p crossmatch-tests --bench latency [-- MEMBERS...]` (default 5 10 28).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossmatch_node::test_support::{account, federation, record};

const ADDS: usize = 1000;
const INTERVAL: Duration = Duration::from_millis(20);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn run(members: usize) {
    let (_dir, mut fed) = federation(&format!("latency-{members}"), members);
    fed.wait_limit = Duration::from_secs(300);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let counterpart = members - 1;
    let handles: Vec<String> = (0..ADDS).map(|i| format!("lat_{i}")).collect();
    let watched = handles.iter().map(|h| record(&[h], false)).collect();
    fed.node(counterpart).unwrap().add_records(watched, "bench".into()).await.unwrap();
    let token_of: HashMap<_, usize> = {
        let canon: Vec<_> = handles.iter().map(|h| account(h)).collect();
        let tokens = fed
            .node(counterpart)
            .unwrap()
            .with_engine(move |e| canon.iter().map(|c| e.token(c)).collect::<Vec<_>>())
            .await
            .unwrap();
        tokens.into_iter().enumerate().map(|(i, t)| (t, i)).collect()
    };
    let mut alerts = fed.node(counterpart).unwrap().subscribe();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::channel::<(usize, Instant)>(ADDS * 2);
    tokio::spawn(async move {
        while let Ok(event) = alerts.recv().await {
            if let Some(index) = token_of.get(&event.alert.token) {
                let _ = seen_tx.send((*index, Instant::now())).await;
            }
        }
    });
    let origin = fed.node(0).unwrap().clone();
    let mut returned = vec![None; ADDS];
    let mut ticker = tokio::time::interval(INTERVAL);
    for (i, handle) in handles.iter().enumerate() {
        ticker.tick().await;
        origin.add_record(record(&[handle], true), "bench".into()).await.unwrap();
        returned[i] = Some(Instant::now());
    }
    let mut latencies = Vec::with_capacity(ADDS);
    let mut seen = vec![false; ADDS];
    while latencies.len() < ADDS {
        let Ok(Some((index, at))) =
            tokio::time::timeout(Duration::from_secs(60), seen_rx.recv()).await
        else {
            break;
        };
        if !seen[index] {
            seen[index] = true;
            if let Some(returned) = returned[index] {
                latencies.push(at.saturating_duration_since(returned));
            }
        }
    }
    latencies.sort();
    let counters = fed.node(counterpart).unwrap().with_engine(|e| e.counters()).await.unwrap();
    println!(
        "{members:>2} members: {} alerts, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         counterpart verified {} of {} received batches for {} applied",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        counters.verifications,
        counters.received,
        counters.applied,
    );
    fed.stop_all().await.unwrap();
}

async fn floor() {
    // One hop with no network: sign at one engine, ingest and match at another.
    let (_dir, mut fed) = federation("latency-floor", 2);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    fed.node(1).unwrap().add_record(record(&["floor_x"], false), "bench".into()).await.unwrap();
    fed.stop(1).await.unwrap();
    let batches = fed
        .node(0)
        .unwrap()
        .with_engine(|e| {
            let mut wires = Vec::new();
            for i in 0..200 {
                let _ = e.add_record(record(&[&format!("floor_{i}")], true), "bench");
                wires.extend(e.publish().unwrap_or_default().iter().map(|b| b.to_wire()));
            }
            wires
        })
        .await
        .unwrap();
    fed.stop(0).await.unwrap();
    fed.start(1).await.unwrap();
    let started = Instant::now();
    let count = batches.len();
    fed.node(1)
        .unwrap()
        .with_engine(move |e| {
            for wire in &batches {
                let _ = e.ingest_gossip(wire);
            }
        })
        .await
        .unwrap();
    println!(
        "floor: one hop of verify + store + match: {:.0} µs per single-entry batch",
        started.elapsed().as_secs_f64() * 1e6 / count as f64
    );
    fed.stop_all().await.unwrap();
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![5, 10, 28] } else { sizes };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        floor().await;
        for members in sizes {
            run(members).await;
        }
    });
}
