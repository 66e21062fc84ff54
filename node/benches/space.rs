//! sled's files against the live bytes they hold, for the shapes of keys and values the store
//! writes per remote entry: what the disk goal of a million remote entries can expect of sled
//! whatever the store's own encoding.
//!
//! `cargo bench -p crossmatch-node --bench space` (a bench command). Each shape is written into
//! a fresh raw sled tree, with the store's page cache, segment size and flush period, one
//! `sled::Batch` per batch of (at most) 256 entries as ingest writes them, then flushed; the
//! data directory's allocated blocks are read against the keys' and values' bytes.
//! `SPACE_BENCH_ENTRIES=N` writes N entries instead of a million; `SPACE_BENCH_SEGMENT_KIB=K`
//! gives sled log segments of K KiB (a power of two) instead of the store's.
//!
//! The shapes:
//! - `adds`: one row per entry keyed as the store keys its remote adds (`t`: the token, then
//!   the origin's 32 bytes; 65 bytes in all) with an 83-byte value (the store's positional
//!   `RemoteAdd`, as the catch-up bench's footprint measures it); the tokens arrive in random
//!   order;
//! - `small adds`: the same rows with a 4-byte origin number after the token and a 48-byte
//!   value, an assumed denser encoding (the category's text and the times' full width left
//!   out), not a design: what the smallest row an add could keep would leave;
//! - `batches`: one row per batch, keyed by origin, generation and seq (45 bytes), with a value
//!   of 34,770 bytes per 256 entries: the batches kept whole for serving (`b`), in seq order;
//! - `adds and batches`: both, in the same `sled::Batch`es, as ingest writes them;
//! - `small adds, batches`: the denser rows beside the batches.

use std::time::Instant;

use crossmatch_node::test_support::{TempDir, disk_usage, knob};

const PER_BATCH: u64 = 256;
/// A full batch's wire form, bytes (the catch-up bench's 135.9 MB for 3,908 batches).
const BATCH_BYTES: u64 = 34_770;
const ORIGINS: u64 = 4;

/// One shape of rows: the bytes of a per-entry row's origin field (none: no such rows) and
/// value, and whether the batch rows are written.
struct Shape {
    name: &'static str,
    origin_bytes: Option<usize>,
    value_bytes: usize,
    batches: bool,
}

const SHAPES: [Shape; 5] = [
    Shape { name: "adds", origin_bytes: Some(32), value_bytes: 83, batches: false },
    Shape { name: "small adds", origin_bytes: Some(4), value_bytes: 48, batches: false },
    Shape { name: "batches", origin_bytes: None, value_bytes: 0, batches: true },
    Shape { name: "adds and batches", origin_bytes: Some(32), value_bytes: 83, batches: true },
    Shape { name: "small adds, batches", origin_bytes: Some(4), value_bytes: 48, batches: true },
];

/// `n` pseudo-random bytes from `seed` (tokens and values that do not compress or sort).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof().fill(&mut bytes);
    bytes
}

fn batch_key(origin: u64, seq: u64) -> Vec<u8> {
    [&[b'b'][..], &[origin as u8; 32], &1u32.to_be_bytes(), &seq.to_be_bytes()].concat()
}

/// As `keys::remote_add`: the prefix, the token, then the origin.
fn add_key(origin: u64, origin_bytes: usize, entry: u64) -> Vec<u8> {
    [&[b't'][..], &noise(entry, 32), &vec![origin as u8; origin_bytes]].concat()
}

/// The entries of batch `b` of `entries` in all.
fn entries_of(b: u64, entries: u64) -> u64 {
    PER_BATCH.min(entries - b * PER_BATCH)
}

/// Writes `entries` in `shape`: the live bytes written.
fn write(tree: &sled::Tree, shape: &Shape, entries: u64) -> u64 {
    let mut live = 0u64;
    for b in 0..entries.div_ceil(PER_BATCH) {
        let (origin, seq) = (b % ORIGINS, b / ORIGINS);
        let count = entries_of(b, entries);
        let mut batch = sled::Batch::default();
        if shape.batches {
            let value = noise(u64::MAX - b, (BATCH_BYTES * count / PER_BATCH) as usize);
            live += (batch_key(origin, seq).len() + value.len()) as u64;
            batch.insert(batch_key(origin, seq), value);
        }
        if let Some(origin_bytes) = shape.origin_bytes {
            for i in 0..count {
                let entry = b * PER_BATCH + i;
                let key = add_key(origin, origin_bytes, entry);
                let value = noise(entry ^ (1 << 63), shape.value_bytes);
                live += (key.len() + value.len()) as u64;
                batch.insert(key, value);
            }
        }
        tree.apply_batch(batch).expect("apply");
    }
    live
}

fn report(name: &str, live: u64, files: u64, entries: u64, secs: f64) {
    println!(
        "{name:>20}: {:>7.1} MB live ({:>3.0} B/entry), {:>7.1} MB of files ({:>4.0} B/entry): \
         files / live {:.2}x, written in {secs:.1} s",
        live as f64 / 1e6,
        live as f64 / entries as f64,
        files as f64 / 1e6,
        files as f64 / entries as f64,
        files as f64 / live as f64,
    );
}

fn main() {
    let entries = knob("SPACE_BENCH_ENTRIES", 1_000_000);
    assert!(entries > 0, "SPACE_BENCH_ENTRIES: 1 or more entries");
    let store_kib = crossmatch_node::store::SEGMENT_BYTES as u64 >> 10;
    let segment_kib = knob("SPACE_BENCH_SEGMENT_KIB", store_kib);
    println!(
        "{entries} entries in {} batches of at most {PER_BATCH}, {ORIGINS} origins, \
         segments of {segment_kib} KiB",
        entries.div_ceil(PER_BATCH)
    );
    let dir = TempDir::new("bench-space");
    for (number, shape) in SHAPES.iter().enumerate() {
        let path = dir.path().join(number.to_string());
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(crossmatch_node::store::DEFAULT_CACHE_BYTES)
            .flush_every_ms(Some(200))
            .segment_size(segment_kib as usize * 1024)
            .open()
            .expect("open sled");
        let tree = db.open_tree("space").expect("open tree");
        let started = Instant::now();
        let live = write(&tree, shape, entries);
        db.flush().expect("flush");
        let (_, files) = disk_usage(&path).expect("the store's size on disk");
        report(shape.name, live, files, entries, started.elapsed().as_secs_f64());
    }
}
