//! Ingest benchmark: full batches into a store already holding a million entries, against raw
//! sled batched inserts of the same keys in the same run (the keys per entry are printed from
//! the store's footprint), plus local match look-ups.
//!
//! `cargo bench -p crossmatch-node --bench ingest [-- ENTRIES]` (default 1,000,000 prefilled).
//! `INGEST_BENCH_CACHE_MIB=M` gives both stores a page cache of M MiB (the node's default
//! unless set).

use std::sync::Arc;
use std::time::Instant;

use crossmatch_node::clock::{Clock, DAY_MS, SystemClock};
use crossmatch_node::engine::{Engine, EngineConfig};
use crossmatch_node::store::keys;
use crossmatch_node::test_support::{FEDERATION, TempDir, key, knob};
use crossmatch_protocol::limits::MAX_ENTRIES_PER_BATCH;
use crossmatch_protocol::{
    Add, BatchHash, BatchPosition, Entry, Evaluation, Handling, Kind, Op, SigningKey, Token,
    VerifiedBatch, sign_batch,
};

const MEASURED_BATCHES: u64 = 200;

fn token(n: u64) -> Token {
    Token(*blake3::hash(&n.to_be_bytes()).as_bytes())
}

fn batches(key: &SigningKey, count: u64, now: u64) -> Vec<VerifiedBatch> {
    let mut prev = BatchHash::ZERO;
    (0..count)
        .map(|b| {
            let entries: Vec<Entry> = (0..MAX_ENTRIES_PER_BATCH as u64)
                .map(|i| Entry {
                    salt: [(i % 251) as u8; 16],
                    op: Op::Add(Add {
                        token: token(b * MAX_ENTRIES_PER_BATCH as u64 + i),
                        kind: Kind::Account,
                        category: "terrorism/propaganda".into(),
                        handling: Handling::H1,
                        evaluation: Evaluation::new('B', 2).unwrap(),
                        activity_per_day: Some(40),
                        expires_at_ms: now + 30 * DAY_MS,
                        algorithmic: false,
                    }),
                })
                .collect();
            let position =
                BatchPosition { generation: 1, seq: b + 1, prev, epoch: 1, created_at_ms: now };
            let batch = sign_batch(key, &FEDERATION, position, &entries).unwrap();
            prev = batch.hash();
            batch
        })
        .collect()
}

fn main() {
    let prefill: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let per_batch = MAX_ENTRIES_PER_BATCH as u64;
    let prefill_batches = prefill.div_ceil(per_batch);
    // Member A's batches, into member B's store.
    let origin = key(1);
    let now = SystemClock.now_ms();
    let started = Instant::now();
    let all = batches(&origin, prefill_batches + MEASURED_BATCHES, now);
    println!("signed {} batches in {:.1} s", all.len(), started.elapsed().as_secs_f64());
    let wires: Vec<Vec<u8>> = all.iter().map(VerifiedBatch::to_wire).collect();

    let cache_mib =
        knob("INGEST_BENCH_CACHE_MIB", crossmatch_node::store::DEFAULT_CACHE_BYTES >> 20);
    assert!((1..=65_536).contains(&cache_mib), "INGEST_BENCH_CACHE_MIB: 1 to 65536 MiB");
    let cache_bytes = cache_mib << 20;
    println!("page cache: {} MiB", cache_bytes >> 20);
    let dir = TempDir::new("bench-ingest");
    let config = EngineConfig {
        quota_entries_per_day: u64::MAX,
        quota_bytes_per_day: u64::MAX,
        store_cache_bytes: cache_bytes,
        ..EngineConfig::for_test(2)
    };
    let mut engine = Engine::open(&dir.path().join("node"), config, Arc::new(SystemClock)).unwrap();
    let started = Instant::now();
    for wire in &wires[..prefill_batches as usize] {
        engine.ingest(wire).unwrap();
    }
    let prefill_secs = started.elapsed().as_secs_f64();
    println!(
        "prefill: {} entries in {prefill_secs:.1} s ({:.0} entries/s)",
        prefill_batches * per_batch,
        (prefill_batches * per_batch) as f64 / prefill_secs
    );

    let started = Instant::now();
    for wire in &wires[prefill_batches as usize..] {
        engine.ingest(wire).unwrap();
    }
    engine.store().flush().unwrap();
    let ingest_secs = started.elapsed().as_secs_f64();
    let measured = MEASURED_BATCHES * per_batch;
    let ingest_rate = measured as f64 / ingest_secs;
    let counters = engine.counters();
    println!(
        "ingest: {measured} entries in full batches into a store of {} entries: {ingest_rate:.0} entries/s",
        prefill_batches * per_batch
    );
    println!(
        "verifications per unique batch: {:.2} ({} verifications, {} batches applied)",
        counters.verifications as f64 / counters.applied as f64,
        counters.verifications,
        counters.applied
    );

    // Raw sled: the same keys ingest writes — per entry the remote add alone (a value of the
    // same size; the add is its token's identification source while it lives, so no `I` row
    // is written, and where it sits is read from the stored batch, so no `p` row), per batch
    // the expiry
    // group, the batch, its hash and location, the chain head and the quota — in one sled batch
    // per engine batch, into a store of the same size with the store's page cache and flush period.
    let raw = sled::Config::new()
        .path(dir.path().join("raw"))
        .cache_capacity(cache_bytes)
        .flush_every_ms(Some(200))
        .segment_size(crossmatch_node::store::SEGMENT_BYTES)
        .open()
        .unwrap();
    let tree = raw.open_tree("raw").unwrap();
    let origin_key = origin.public_key().to_bytes();
    let insert = |from: u64, to: u64| {
        for b in from..to {
            let mut batch = sled::Batch::default();
            for i in 0..per_batch {
                let token = token(b * per_batch + i);
                batch.insert(keys::remote_add(&token, &origin_key), vec![0x5a_u8; 83]);
            }
            let position = [&origin_key[..], &1u32.to_be_bytes(), &b.to_be_bytes()].concat();
            let hash = blake3::hash(&b.to_be_bytes());
            batch.insert(
                [&[b'x'][..], &(now + b).to_be_bytes(), &position].concat(),
                vec![0u8; 300],
            );
            batch.insert([&[b'b'][..], &position].concat(), wires[b as usize].clone());
            batch.insert([&[b'k'][..], &position].concat(), hash.as_bytes().to_vec());
            batch.insert([&[b'i'][..], hash.as_bytes()].concat(), position.clone());
            batch.insert([&[b'c'][..], &origin_key, &1u32.to_be_bytes()].concat(), vec![0u8; 48]);
            batch.insert([&[b'q'][..], &origin_key, &0u32.to_be_bytes()].concat(), vec![0u8; 16]);
            tree.apply_batch(batch).unwrap();
        }
    };
    insert(0, prefill_batches);
    let started = Instant::now();
    insert(prefill_batches, prefill_batches + MEASURED_BATCHES);
    raw.flush().unwrap();
    let raw_secs = started.elapsed().as_secs_f64();
    let raw_rate = measured as f64 / raw_secs;
    println!("raw sled: the same keys in batched inserts: {raw_rate:.0} entries/s");
    println!("ingest / raw sled: {:.0} %", 100.0 * ingest_rate / raw_rate);

    // Match look-ups: is this token held locally? Half hit remote tokens, none is local.
    let lookups = 1_000_000u64;
    let started = Instant::now();
    let mut held = 0;
    for n in 0..lookups {
        held += usize::from(engine.holds(&token(n * 7919 % (2 * prefill))).unwrap());
    }
    let lookup_secs = started.elapsed().as_secs_f64();
    println!("match look-ups: {:.0} per second ({held} held)", lookups as f64 / lookup_secs);

    // What the store holds per entry, by key prefix: the keys raw sled writes below.
    let footprint = engine.store().footprint().unwrap();
    let entries = (prefill_batches + MEASURED_BATCHES) * per_batch;
    for ((_, prefix), counts) in &footprint {
        if counts.keys >= entries {
            println!(
                "per entry: `{}` keys {:.2}, {:.0} B of key and {:.0} B of value each",
                char::from(*prefix),
                counts.keys as f64 / entries as f64,
                counts.key_bytes as f64 / counts.keys as f64,
                counts.value_bytes as f64 / counts.keys as f64,
            );
        }
    }
    drop(engine);
    drop(tree);
    drop(raw);

    // Opening again: the node's store (sled's recovery; the presence filter is filled from
    // every token-keyed key in the background) against raw sled's own open of its store.
    let started = Instant::now();
    let store = crossmatch_node::store::Store::open(&dir.path().join("node")).unwrap();
    let store_secs = started.elapsed().as_secs_f64();
    while !store.presence_filled() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let filled = if store.presence_filled() {
        format!("{:.2} s", started.elapsed().as_secs_f64())
    } else {
        "not within 120 s".to_owned()
    };
    drop(store);
    let started = Instant::now();
    let segments = crossmatch_node::store::SEGMENT_BYTES;
    let raw =
        sled::Config::new().path(dir.path().join("raw")).segment_size(segments).open().unwrap();
    let tree = raw.open_tree("raw").unwrap();
    let raw_open_secs = started.elapsed().as_secs_f64();
    drop((tree, raw));
    println!(
        "open again: the store {store_secs:.2} s (its presence filter filled at \
         {filled}), raw sled {raw_open_secs:.2} s"
    );
}
