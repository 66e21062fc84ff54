//! Catch-up and footprint: five members on loopback; the last is stopped while the other four,
//! in this process, publish `CATCHUP_ENTRIES` shared entries between them (records added in bulk
//! through the engine, published in full batches). The late member then starts again as a
//! process of its own (this bench binary run again, with `CATCHUP_LATE` set), dials the four
//! and pulls them all, as a member on its own machine would.
//!
//! Measures the catch-up time (from its start until it holds every publisher's head), the
//! payload bytes the publishers sent meanwhile against the encoded size of the batches it
//! missed, and its footprint: the data directory and the late member's own resident memory,
//! after catch-up and after a retention purge of every entry (its manual clock, set where the
//! publishers' stands, is moved past their expiry).
//!
//! `cargo bench -p crossmatch-tests --bench catchup`, with the environment knobs
//! `CATCHUP_ENTRIES` (default 1,000,000), `CATCHUP_MEMBERS` (default 5),
//! `CATCHUP_SYNC_SECS` (the sync timer's mean period, default 30 as in the config),
//! `CATCHUP_LIMIT_SECS` (the longest wait for catch-up, default 1,800) and `CATCHUP_CACHE_MIB`
//! (the late member's store page cache, default the node's, 256).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossmatch_node::clock::{Clock, DAY_MS, SystemClock};
use crossmatch_node::engine::Counters;
use crossmatch_node::local::LocalFederation;
use crossmatch_node::store::DEFAULT_CACHE_BYTES;
use crossmatch_node::test_support::{ManualClock, disk_usage, federation, knob, record_until};
use crossmatch_protocol::VerifiedBatch;
use crossmatch_protocol::limits::MAX_ENTRIES_PER_BATCH;

/// Records added and published per engine call: ten full batches.
const CHUNK: usize = 10 * MAX_ENTRIES_PER_BATCH;

/// The resident memory of this process, in bytes (`VmRSS`), and its peak (`VmHWM`).
fn resident() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The store's live keys and bytes per key prefix (summed over sled's trees), largest first,
/// against what sled's files (the store's `db` directory, without the node's other files such
/// as the own-feed log) take on disk: allocated ÷ live, the space sled uses per live byte.
fn report_footprint(store: &crossmatch_node::store::Store, allocated: u64, entries: usize) {
    use crossmatch_node::store::footprint::PrefixFootprint;
    let mut by_prefix: std::collections::BTreeMap<u8, PrefixFootprint> = Default::default();
    for ((_, prefix), counts) in store.footprint().unwrap() {
        let sum = by_prefix.entry(prefix).or_default();
        sum.keys += counts.keys;
        sum.key_bytes += counts.key_bytes;
        sum.value_bytes += counts.value_bytes;
    }
    let mut rows: Vec<_> = by_prefix.into_iter().collect();
    rows.sort_by_key(|(_, counts)| std::cmp::Reverse(counts.bytes()));
    let live: u64 = rows.iter().map(|(_, counts)| counts.bytes()).sum();
    for (prefix, counts) in rows.iter().take(12) {
        println!(
            "    prefix {:?}: {} keys, {:.1} MB keys + {:.1} MB values ({:.0} B/entry)",
            char::from(*prefix),
            counts.keys,
            mb(counts.key_bytes),
            mb(counts.value_bytes),
            counts.bytes() as f64 / entries as f64
        );
    }
    println!(
        "    live keys and values {:.1} MB ({:.0} B/entry) of {:.1} MB allocated by sled's \
         files: allocated ÷ live {:.1}x",
        mb(live),
        live as f64 / entries as f64,
        mb(allocated),
        allocated as f64 / live.max(1) as f64
    );
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Publisher `p` adds `count` shared records expiring at `expires_at_ms` and publishes them in
/// full batches; every other publisher ingests its batches directly (the set-up, not the
/// measure). Returns the encoded bytes and the count of the batches published.
async fn publish(
    fed: &LocalFederation,
    publishers: usize,
    p: usize,
    count: usize,
    expires_at_ms: u64,
) -> (u64, u64) {
    let (mut bytes, mut batches) = (0, 0);
    let mut added = 0;
    while added < count {
        let n = CHUNK.min(count - added);
        let records = (added..added + n)
            .map(|i| record_until(&[&format!("cu{p}_{i}")], true, expires_at_ms))
            .collect();
        added += n;
        let wires = fed
            .node(p)
            .unwrap()
            .with_engine(move |e| {
                e.add_records(records, "bench").unwrap();
                e.publish().unwrap().iter().map(VerifiedBatch::to_wire).collect::<Vec<_>>()
            })
            .await
            .unwrap();
        batches += wires.len() as u64;
        bytes += wires.iter().map(|w| w.len() as u64).sum::<u64>();
        let wires = Arc::new(wires);
        for other in (0..publishers).filter(|&o| o != p) {
            let wires = wires.clone();
            fed.node(other)
                .unwrap()
                .with_engine(move |e| {
                    for wire in wires.iter() {
                        e.ingest(wire).unwrap();
                    }
                })
                .await
                .unwrap();
        }
    }
    (bytes, batches)
}

/// The payload bytes every running member but `except` has sent so far.
async fn sent_by_others(fed: &LocalFederation, members: usize, except: usize) -> u64 {
    let mut sent = 0;
    for i in (0..members).filter(|&i| i != except) {
        sent += fed.node(i).unwrap().status().await.unwrap().mesh.payload_bytes_sent;
    }
    sent
}

/// Whether member `i` holds every publisher's own head.
async fn holds_heads(fed: &LocalFederation, i: usize, heads: &[(usize, u32, u64)]) -> bool {
    let Ok(held) = fed.heads(i).await else { return false };
    heads.iter().all(|head| held.contains(head))
}

fn report_counters(counters: &Counters) {
    println!(
        "  member counters: received {}, verifications {}, applied {} (by sync {}, by gossip {}), \
         duplicates {}, rejected {}, refused unverified {}",
        counters.received,
        counters.verifications,
        counters.applied,
        counters.applied_by_sync,
        counters.applied_by_gossip,
        counters.duplicates,
        counters.rejected,
        counters.refused_unverified,
    );
}

async fn run() {
    let entries = knob("CATCHUP_ENTRIES", 1_000_000) as usize;
    let members = knob("CATCHUP_MEMBERS", 5).max(2) as usize;
    let sync_secs = knob("CATCHUP_SYNC_SECS", 30);
    let limit = Duration::from_secs(knob("CATCHUP_LIMIT_SECS", 1800));
    let late = members - 1;
    let publishers = members - 1;
    println!(
        "catch-up: {members} members, {entries} entries from {publishers} publishers, \
         sync timer {sync_secs} s"
    );

    let (_dir, mut fed) = federation("catchup", members);
    let start_ms = SystemClock.now_ms();
    let clock = Arc::new(ManualClock::new(start_ms));
    for i in 0..members {
        fed.set_clock(i, clock.clone());
    }
    fed.sync_interval_secs = sync_secs;
    fed.wait_limit = limit;
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    fed.stop(late).await.unwrap();
    let empty = disk_usage(&fed.data_dir(late)).expect("a data directory's size");
    println!(
        "the late member's data directory at its stop: {:.1} MB ({:.1} MB allocated)",
        mb(empty.0),
        mb(empty.1)
    );

    // Entries expire in two days; the purge moves the shared clock three days on.
    let expires_at_ms = start_ms + 2 * DAY_MS;
    let started = Instant::now();
    let (mut missing_bytes, mut missing_batches) = (0, 0);
    for p in 0..publishers {
        let share = entries / publishers + usize::from(p < entries % publishers);
        let (bytes, batches) = publish(&fed, publishers, p, share, expires_at_ms).await;
        missing_bytes += bytes;
        missing_batches += batches;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    println!(
        "published {entries} entries in {missing_batches} batches ({:.1} MB encoded) in \
         {publish_secs:.1} s, every publisher's batches ingested by the others",
        mb(missing_bytes)
    );
    let mut heads = Vec::new();
    for p in 0..publishers {
        let own = fed.heads(p).await.unwrap();
        heads.extend(own.into_iter().filter(|(j, _, seq)| *j == p && *seq > 0));
    }
    for p in 1..publishers {
        assert!(
            holds_heads(&fed, p, &heads).await,
            "publisher {p} holds every publisher's head after set-up"
        );
    }
    let (rss, _) = resident();
    let publisher_dir = disk_usage(&fed.data_dir(0)).expect("a data directory's size");
    println!(
        "before catch-up: process RSS {:.0} MB; publisher 0's data directory {:.0} MB \
         ({:.0} MB allocated)",
        mb(rss),
        mb(publisher_dir.0),
        mb(publisher_dir.1)
    );

    let mut peers = Vec::new();
    for p in 0..publishers {
        for address in fed.node(p).unwrap().listen_addresses().await.unwrap() {
            peers.push(format!("{p}={address}"));
        }
    }
    let heads_knob: Vec<String> =
        heads.iter().map(|(p, generation, seq)| format!("{p}:{generation}:{seq}")).collect();

    let sent_before = sent_by_others(&fed, members, late).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("CATCHUP_LATE", fed.data_dir(late).parent().unwrap())
        .env("CATCHUP_ENTRIES", entries.to_string())
        .env("CATCHUP_MEMBERS", members.to_string())
        .env("CATCHUP_SYNC_SECS", sync_secs.to_string())
        .env("CATCHUP_LIMIT_SECS", limit.as_secs().to_string())
        .env("CATCHUP_START_MS", start_ms.to_string())
        .env("CATCHUP_HEADS", heads_knob.join(","))
        .env("CATCHUP_PEERS", peers.join(","))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the late member's process starts");
    // The child's lines, echoed; its catch-up line is when the bytes the four sent are read.
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<String>(64);
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut received = None;
    while let Some(line) = lines.recv().await {
        println!("{line}");
        if line.starts_with("catch-up:") && received.is_none() {
            received = Some(sent_by_others(&fed, members, late).await - sent_before);
        }
    }
    reader.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the late member's process failed: {status}");
    let received = received.expect("the late member reported its catch-up");
    println!(
        "bytes: received {:.1} MB for {:.1} MB of missing batches: {:.2}x",
        mb(received),
        mb(missing_bytes),
        received as f64 / missing_bytes as f64
    );
    fed.stop_all().await.unwrap();
}

/// A list the parent sets for the late member's process.
fn list(name: &str) -> Vec<String> {
    let value = std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    value.split(',').map(str::to_owned).collect()
}

/// The late member, alone in this process: it starts on its data directory under `root`,
/// dials the publishers the parent named, and pulls until it holds every publisher's head;
/// then its footprint, before and after a retention purge.
async fn late_member(root: std::path::PathBuf) {
    let entries = knob("CATCHUP_ENTRIES", 1_000_000) as usize;
    let members = knob("CATCHUP_MEMBERS", 5).max(2) as usize;
    let limit = Duration::from_secs(knob("CATCHUP_LIMIT_SECS", 1800));
    let start_ms = knob("CATCHUP_START_MS", 0);
    let heads: Vec<(usize, u32, u64)> = list("CATCHUP_HEADS")
        .iter()
        .map(|head| {
            let mut parts = head.split(':');
            let mut next = || parts.next().unwrap().to_owned();
            (next().parse().unwrap(), next().parse().unwrap(), next().parse().unwrap())
        })
        .collect();
    let late = members - 1;
    let ids: Vec<String> = (0..members).map(|i| format!("M{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut fed = LocalFederation::new(&root, &ids);
    let clock = Arc::new(ManualClock::new(start_ms));
    fed.set_clock(late, clock.clone());
    fed.sync_interval_secs = knob("CATCHUP_SYNC_SECS", 30);
    fed.store_cache_bytes = knob("CATCHUP_CACHE_MIB", DEFAULT_CACHE_BYTES >> 20) << 20;
    fed.wait_limit = limit;
    let dir = fed.data_dir(late);
    let footprint = |label: &str| {
        let (apparent, allocated) = disk_usage(&dir).expect("a data directory's size");
        let (rss, peak) = resident();
        println!(
            "{label}: data directory {:.0} MB ({:.0} MB allocated, {:.0} B/entry); the late \
             member's process RSS {:.0} MB (peak {:.0} MB)",
            mb(apparent),
            mb(allocated),
            allocated as f64 / entries as f64,
            mb(rss),
            mb(peak)
        );
    };

    let started = Instant::now();
    fed.start(late).await.unwrap();
    footprint("started");
    let node = fed.node(late).unwrap().clone();
    for peer in list("CATCHUP_PEERS") {
        let (p, address) = peer.split_once('=').unwrap();
        node.add_member_address(&fed.key(p.parse().unwrap()), address.to_owned()).await.unwrap();
    }
    let deadline = started + limit;
    let mut progress = Instant::now();
    while !holds_heads(&fed, late, &heads).await {
        assert!(
            Instant::now() < deadline,
            "member {late} did not hold every publisher's head within {limit:?}"
        );
        if progress.elapsed() >= Duration::from_secs(2) {
            progress = Instant::now();
            let counters = node.with_engine(|e| e.counters()).await.unwrap();
            println!(
                "  {:.0} s: {} batches applied",
                started.elapsed().as_secs_f64(),
                counters.applied
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let catchup_secs = started.elapsed().as_secs_f64();
    println!(
        "catch-up: {entries} entries in {catchup_secs:.1} s ({:.0} entries/s)",
        entries as f64 / catchup_secs
    );
    let counters = node.with_engine(|e| e.counters()).await.unwrap();
    report_counters(&counters);

    node.with_engine(|e| e.store().flush().unwrap()).await.unwrap();
    footprint("after catch-up");
    let store = node.with_engine(|e| e.store().clone()).await.unwrap();
    let db = dir.join("db");
    report_footprint(&store, disk_usage(&db).expect("a data directory's size").1, entries);

    clock.advance(3 * DAY_MS);
    let started = Instant::now();
    let purged = node
        .with_engine(|e| {
            let purged = e.expire().unwrap();
            e.store().flush().unwrap();
            purged
        })
        .await
        .unwrap();
    println!(
        "retention purge: {} expiry groups (one per batch and expiry time) and {} records in \
         {:.1} s",
        purged.0,
        purged.1,
        started.elapsed().as_secs_f64()
    );
    footprint("after the purge");
    report_footprint(&store, disk_usage(&db).expect("a data directory's size").1, entries);
    drop(store);
    fed.stop_all().await.unwrap();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    match std::env::var_os("CATCHUP_LATE") {
        Some(root) => runtime.block_on(late_member(root.into())),
        None => runtime.block_on(run()),
    }
}
