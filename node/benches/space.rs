//! sled's files against the live bytes they hold, for the shapes of keys and values the store
//! writes per remote entry: what the disk goal of a million remote entries can expect of sled
//! whatever the store's own encoding.
//!
//! `cargo bench -p crossmatch-node --bench space` (a bench command). Each shape is written into
//! a fresh raw sled tree, with the store's page cache and flush period, one `sled::Batch` per
//! batch of 256 entries as ingest writes them, then flushed; the data directory's allocated
//! blocks are read against the keys' and values' bytes. `SPACE_BENCH_ENTRIES=N` writes N
//! entries instead of a million.
//!
//! The shapes:
//! - `adds`: one row per entry, keyed by origin and token (1 + 32 + 32 bytes) with an 83-byte
//!   value: the store's remote adds (`t`), whose tokens arrive in random order;
//! - `small adds`: the same count of rows, keyed by a 4-byte origin number and the token, with
//!   a 48-byte value: what a denser encoding of the same rows would leave;
//! - `batches`: one row per batch of 256 entries, keyed by origin, generation and seq, with a
//!   value of 34,770 bytes: the batches kept whole for serving (`b`), written in seq order;
//! - `adds and batches`: both, in the same `sled::Batch`es, as ingest writes them.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use crossmatch_node::test_support::TempDir;

const PER_BATCH: u64 = 256;
const BATCH_BYTES: usize = 34_770;
const ORIGINS: u64 = 4;

/// One shape of rows: the bytes of a per-entry row's origin field and value, and whether the
/// batch rows are written.
struct Shape {
    name: &'static str,
    origin_bytes: Option<usize>,
    value_bytes: usize,
    batches: bool,
}

const SHAPES: [Shape; 4] = [
    Shape { name: "adds", origin_bytes: Some(32), value_bytes: 83, batches: false },
    Shape { name: "small adds", origin_bytes: Some(4), value_bytes: 48, batches: false },
    Shape { name: "batches", origin_bytes: None, value_bytes: 0, batches: true },
    Shape { name: "adds and batches", origin_bytes: Some(32), value_bytes: 83, batches: true },
];

/// `n` pseudo-random bytes from `seed` (tokens and values that do not compress or sort).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof().fill(&mut bytes);
    bytes
}

/// The blocks the files under `dir` take on disk, bytes.
fn allocated(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => allocated(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn main() {
    let entries: u64 = std::env::var("SPACE_BENCH_ENTRIES")
        .ok()
        .map(|n| n.parse().expect("SPACE_BENCH_ENTRIES: a number of entries"))
        .unwrap_or(1_000_000);
    let batches = entries.div_ceil(PER_BATCH);
    println!("{entries} entries in {batches} batches of {PER_BATCH}, {ORIGINS} origins");
    let dir = TempDir::new("bench-space");
    for (number, shape) in SHAPES.iter().enumerate() {
        let path = dir.path().join(number.to_string());
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(crossmatch_node::store::DEFAULT_CACHE_BYTES)
            .flush_every_ms(Some(200))
            .open()
            .expect("open sled");
        let tree = db.open_tree("space").expect("open tree");
        let started = Instant::now();
        let mut live = 0u64;
        for b in 0..batches {
            let (origin, seq) = (b % ORIGINS, b / ORIGINS);
            let mut batch = sled::Batch::default();
            if shape.batches {
                let key =
                    [&[b'b'][..], &[origin as u8; 32], &1u32.to_be_bytes(), &seq.to_be_bytes()]
                        .concat();
                let value = noise(u64::MAX - b, BATCH_BYTES);
                live += (key.len() + value.len()) as u64;
                batch.insert(key, value);
            }
            if let Some(origin_bytes) = shape.origin_bytes {
                for i in 0..PER_BATCH {
                    let entry = b * PER_BATCH + i;
                    let key = [&[b't'][..], &vec![origin as u8; origin_bytes], &noise(entry, 32)]
                        .concat();
                    let value = noise(entry ^ (1 << 63), shape.value_bytes);
                    live += (key.len() + value.len()) as u64;
                    batch.insert(key, value);
                }
            }
            tree.apply_batch(batch).expect("apply");
        }
        db.flush().expect("flush");
        let secs = started.elapsed().as_secs_f64();
        drop(tree);
        drop(db);
        let files = allocated(&path);
        println!(
            "{:>16}: {:>7.1} MB live ({:>3.0} B/entry), {:>7.1} MB of files ({:>4.0} B/entry): \
             files / live {:.2}x, written in {secs:.1} s",
            shape.name,
            live as f64 / 1e6,
            live as f64 / entries as f64,
            files as f64 / 1e6,
            files as f64 / entries as f64,
            files as f64 / live as f64,
        );
    }
}
