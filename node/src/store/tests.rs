//! Unit tests of the store: reopening, sled's deleted blobs, a store held open elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crossmatch_protocol::Token;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crossmatch-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_store_reopens_at_once_after_it_is_dropped_even_under_load() {
    let dir = temp_dir("reopen");
    let stop = Arc::new(AtomicBool::new(false));
    // Keep both cores busy, so that sled's background threads are slow to let go.
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                }
                n
            })
        })
        .collect();
    let mut result = Ok(());
    for round in 0..200u64 {
        let opened = Store::open(&dir).and_then(|store| {
            let mut txn = store.txn();
            txn.put(keys::meta("round"), &round);
            txn.commit()
        });
        if let Err(error) = opened {
            result = Err(format!("round {round}: {error}"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for spinner in spinners {
        let _ = spinner.join();
    }
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap();
}

#[test]
fn blobs_sled_deleted_are_forgotten_by_the_next_sync() {
    let dir = temp_dir("blobs");
    let store = Store::open(&dir).unwrap();
    let blobs = dir.join("db").join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let synced = || store.files.synced_blobs.lock().unwrap().clone();
    for n in 0..3 {
        std::fs::write(blobs.join(format!("{n}")), b"blob").unwrap();
    }
    store.flush().unwrap();
    assert_eq!(synced().len(), 3);
    // sled deletes two blobs it no longer needs: the next sync remembers only the third.
    std::fs::remove_file(blobs.join("0")).unwrap();
    std::fs::remove_file(blobs.join("1")).unwrap();
    store.flush().unwrap();
    assert_eq!(synced(), [std::ffi::OsString::from("2")].into_iter().collect());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_held_open_elsewhere_is_refused_after_the_wait() {
    let dir = temp_dir("held");
    let path = dir.join("db");
    std::fs::create_dir_all(&dir).unwrap();
    let held = sled::Config::new().path(&path).open().unwrap();
    // The same process cannot take sled's lock twice: as if another process held it.
    let wait = std::time::Duration::from_millis(300);
    let started = std::time::Instant::now();
    let error = open_db(&path, DEFAULT_CACHE_BYTES, wait).unwrap_err();
    assert!(matches!(error, Error::Locked { .. }), "{error}");
    assert!(started.elapsed() >= wait, "it waited for the lock first");
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_store_has_small_segments_and_an_older_one_keeps_sled_default() {
    let segment_size = |db: &Path| {
        let conf = std::fs::read(db.join("conf")).unwrap();
        let text = String::from_utf8_lossy(&conf).into_owned();
        text.lines().find_map(|line| line.strip_prefix("segment_size: ")?.parse::<usize>().ok())
    };
    let new = temp_dir("segments-new");
    drop(Store::open(&new).unwrap());
    assert_eq!(segment_size(&new.join("db")), Some(SEGMENT_BYTES));
    // A store an older build created, with sled's default segment size, opens as it is.
    let old = temp_dir("segments-old");
    std::fs::create_dir_all(&old).unwrap();
    let path = old.join("db");
    let db = sled::Config::new().path(&path).open().unwrap();
    db.insert(b"kept", b"value").unwrap();
    db.flush().unwrap();
    drop(db);
    let (reopened, segment_bytes) = open_db(&path, DEFAULT_CACHE_BYTES, LOCK_WAIT).unwrap();
    assert_eq!(reopened.get(b"kept").unwrap().as_deref(), Some(&b"value"[..]));
    assert_eq!(segment_bytes, SLED_DEFAULT_SEGMENT_BYTES);
    drop(reopened);
    assert_eq!(segment_size(&path), Some(SLED_DEFAULT_SEGMENT_BYTES));
    // Its pages are told from its files with its own segment, not the new stores' 64 KiB.
    let store = Store::open(&old).unwrap();
    let space = store.sled_space().unwrap();
    assert!(space.page_bytes > 0 && space.page_bytes < 16 << 10, "{space:?}");
    drop(store);
    let _ = std::fs::remove_dir_all(&new);
    let _ = std::fs::remove_dir_all(&old);
}

#[test]
fn the_footprint_counts_live_keys_and_bytes_per_prefix() {
    let dir = temp_dir("footprint");
    let store = Store::open(&dir).unwrap();
    let mut txn = store.txn();
    txn.put_raw(vec![keys::prefix::EXPIRY, 1, 2], vec![0; 10]);
    txn.put_raw(vec![keys::prefix::EXPIRY, 3], vec![0; 5]);
    txn.put_raw(vec![keys::prefix::ENTRY_TOMBSTONE, 9], vec![]);
    txn.commit().unwrap();
    let mut txn = store.txn();
    txn.remove(vec![keys::prefix::ENTRY_TOMBSTONE, 9]);
    txn.commit().unwrap();
    let footprint = store.footprint().unwrap();
    let of = |prefix: u8| {
        footprint.iter().filter(|((_, first), _)| *first == prefix).map(|(_, counts)| *counts).fold(
            footprint::PrefixFootprint::default(),
            |sum, counts| footprint::PrefixFootprint {
                keys: sum.keys + counts.keys,
                key_bytes: sum.key_bytes + counts.key_bytes,
                value_bytes: sum.value_bytes + counts.value_bytes,
            },
        )
    };
    let expiries = of(keys::prefix::EXPIRY);
    assert_eq!((expiries.keys, expiries.key_bytes, expiries.value_bytes), (2, 5, 15));
    assert_eq!(expiries.bytes(), 20);
    assert_eq!(of(keys::prefix::ENTRY_TOMBSTONE).keys, 0, "a removed key is not live");
    // For these rows sled's estimate of its pages is the live bytes and a little more (its
    // nodes, the schema row: 1.12 times here), its files far more once pages are written over;
    // the segment in the ratio is taken back out (64 KiB, a third of the live bytes here).
    let mut txn = store.txn();
    for n in 0..2_000u32 {
        txn.put_raw([&[keys::prefix::EXPIRY][..], &n.to_be_bytes()].concat(), vec![7; 100]);
    }
    txn.commit().unwrap();
    for round in 0..3u8 {
        let mut txn = store.txn();
        for n in 0..2_000u32 {
            txn.put_raw([&[keys::prefix::EXPIRY][..], &n.to_be_bytes()].concat(), vec![round; 100]);
        }
        txn.commit().unwrap();
    }
    store.flush().unwrap();
    let live: u64 = store.footprint().unwrap().values().map(|counts| counts.bytes()).sum();
    let space = store.sled_space().unwrap();
    assert!(space.page_bytes >= live, "{space:?} against {live} live bytes");
    assert!(space.page_bytes < live * 5 / 4, "{space:?} against {live} live bytes");
    assert!(space.file_bytes > space.page_bytes, "{space:?}");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_presence_filter_skips_only_what_the_store_does_not_hold_before_and_after_a_reopen() {
    let dir = temp_dir("presence");
    let token = |n: u8| Token([n; 32]);
    let store = Store::open(&dir).unwrap();
    let mut txn = store.txn();
    txn.put(keys::holding(&token(1), 7), &());
    txn.put(keys::alert(&token(1)), &5u64);
    // Within the write set, its own keys are seen before the filter is asked.
    assert_eq!(txn.scan::<()>(&keys::holdings(&token(1))).unwrap().len(), 1);
    txn.commit().unwrap();
    let skipped = store.reads_skipped();
    assert_eq!(store.scan::<()>(&keys::holdings(&token(1))).unwrap().len(), 1);
    assert_eq!(store.get::<u64>(&keys::alert(&token(1))).unwrap(), Some(5));
    assert_eq!(store.reads_skipped(), skipped, "held keys are read from sled");
    assert!(store.scan::<()>(&keys::holdings(&token(2))).unwrap().is_empty());
    assert_eq!(store.get::<u64>(&keys::alert(&token(2))).unwrap(), None);
    assert_eq!(store.reads_skipped(), skipped + 2, "absent tokens skip sled");
    // Every prefix read skips sled alike.
    let absent = keys::holdings(&token(2));
    assert!(!store.any_with_prefix(&absent).unwrap());
    assert!(store.scan_first::<()>(&absent, 10).unwrap().is_empty());
    store.scan_each(&absent, |_, ()| Err::<(), _>(Error::Corrupt { prefix: 'h' })).unwrap();
    assert!(store.scan_keys(&absent).unwrap().is_empty());
    assert!(store.get_raw(&keys::alert(&token(2))).unwrap().is_none());
    assert!(store.txn().scan::<()>(&absent).unwrap().is_empty());
    assert_eq!(store.reads_skipped(), skipped + 8, "each read of an absent token skips sled");
    // A removal clears nothing: the key is read, and found gone.
    let mut txn = store.txn();
    txn.remove(keys::holding(&token(1), 7));
    txn.commit().unwrap();
    assert!(store.scan::<()>(&keys::holdings(&token(1))).unwrap().is_empty());
    assert_eq!(store.reads_skipped(), skipped + 8);
    store.flush().unwrap();
    drop(store);
    // Reopened, the filter is built from the keys present: the alert, not the holding.
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.get::<u64>(&keys::alert(&token(1))).unwrap(), Some(5));
    assert_eq!(store.reads_skipped(), 0);
    assert!(store.scan::<()>(&keys::holdings(&token(1))).unwrap().is_empty());
    assert_eq!(store.reads_skipped(), 1, "the removed holding is gone from the new filter");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_presence_filter_filled_in_the_background_answers_once_filled_and_lets_the_store_reopen() {
    let dir = temp_dir("presence-background");
    let token = |n: u8| Token([n; 32]);
    let mut store = Store::open(&dir).unwrap();
    let mut txn = store.txn();
    txn.put(keys::holding(&token(1), 7), &());
    txn.commit().unwrap();
    // As a store past the size filled at open is.
    store.fill_presence(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !store.presence_filled() {
        assert!(std::time::Instant::now() < deadline, "the background fill never ended");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(store.scan::<()>(&keys::holdings(&token(1))).unwrap().len(), 1);
    let skipped = store.reads_skipped();
    assert!(store.scan::<()>(&keys::holdings(&token(2))).unwrap().is_empty());
    assert_eq!(store.reads_skipped(), skipped + 1);
    // Dropped with a fill started (perhaps already ended, with one key), the store lets go of
    // sled's lock for the open that follows: the fill is joined with it.
    store.fill_presence(0);
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.scan::<()>(&keys::holdings(&token(1))).unwrap().len(), 1);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_write_in_slices_lands_whole_and_durable() {
    let dir = temp_dir("slices");
    let key = |n: u32| [&[keys::prefix::HUNT_DAY_ACCOUNT][..], &n.to_be_bytes()].concat();
    {
        let store = Store::open(&dir).unwrap();
        let mut txn = store.txn();
        for n in 0..2_500 {
            txn.put_raw(key(n), n.to_be_bytes().to_vec());
        }
        let batches = store.batches_applied();
        txn.commit_durable().unwrap();
        assert_eq!(store.batches_applied(), batches + 1, "one batch without slices");
        let syncs = store.syncs();
        // Every third key goes, the others change: 2,500 changes in three slices.
        let mut txn = store.txn();
        for n in 0..2_500 {
            if n % 3 == 0 {
                txn.remove(key(n));
            } else {
                txn.put_raw(key(n), (n + 1).to_be_bytes().to_vec());
            }
        }
        let batches = store.batches_applied();
        txn.commit_durable_in_slices(1_000).unwrap();
        assert_eq!(store.syncs(), syncs + 1, "one sync for the whole write");
        assert_eq!(store.batches_applied(), batches + 3, "2,500 changes in slices of 1,000");
    }
    let store = Store::open(&dir).unwrap();
    for n in 0..2_500u32 {
        let expected = (n % 3 != 0).then(|| (n + 1).to_be_bytes().to_vec());
        assert_eq!(store.get_raw(&key(n)).unwrap(), expected, "key {n}");
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opening_an_existing_store_makes_none_where_there_is_none() {
    // Every file under `dir` with its length, sorted.
    fn listing(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
        let mut files = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(next) = todo.pop() {
            for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
                let metadata = entry.metadata().unwrap();
                if metadata.is_dir() {
                    todo.push(entry.path());
                }
                files.push((entry.path(), if metadata.is_dir() { 0 } else { metadata.len() }));
            }
        }
        files.sort();
        files
    }
    let no_store = |dir: &Path| matches!(Store::open_existing(dir), Err(Error::NoStore { .. }));
    let real = temp_dir("existing-real");
    drop(Store::open(&real).unwrap());
    let conf = std::fs::read(real.join("db").join("conf")).unwrap();

    // No directory; a settings file without a log; the settings with an emptied log.
    let none = temp_dir("existing-none");
    assert!(no_store(&none) && !none.exists(), "nothing made where nothing was");
    std::fs::create_dir_all(none.join("db")).unwrap();
    std::fs::write(none.join("db").join("conf"), &conf).unwrap();
    let before = listing(&none);
    assert!(no_store(&none), "a settings file alone");
    assert_eq!(listing(&none), before, "nothing written beside a settings file alone");
    std::fs::write(none.join("db").join("db"), b"").unwrap();
    let before = listing(&none);
    assert!(no_store(&none), "an empty log");
    assert_eq!(listing(&none), before, "nothing written beside an empty log");

    // A sled database that is not a store: refused before the store writes its tree.
    let plain = temp_dir("existing-plain");
    std::fs::create_dir_all(&plain).unwrap();
    let db = sled::Config::new().path(plain.join("db")).open().unwrap();
    db.insert(b"kept", b"value").unwrap();
    db.flush().unwrap();
    drop(db);
    assert!(no_store(&plain), "a sled database without the store's tree");
    let (reopened, _) = open_db(&plain.join("db"), DEFAULT_CACHE_BYTES, LOCK_WAIT).unwrap();
    assert!(!holds_store_tree(&reopened), "the store's tree not made");
    assert_eq!(reopened.get(b"kept").unwrap().as_deref(), Some(&b"value"[..]));
    drop(reopened);

    // The store's tree without a schema version: refused before the version is written.
    let unversioned = temp_dir("existing-unversioned");
    std::fs::create_dir_all(&unversioned).unwrap();
    let (db, _) = open_db(&unversioned.join("db"), DEFAULT_CACHE_BYTES, LOCK_WAIT).unwrap();
    db.open_tree(TREE).unwrap().insert(b"kept", b"value").unwrap();
    db.flush().unwrap();
    drop(db);
    assert!(no_store(&unversioned), "the store's tree without a schema version");
    let (reopened, _) = open_db(&unversioned.join("db"), DEFAULT_CACHE_BYTES, LOCK_WAIT).unwrap();
    let tree = reopened.open_tree(TREE).unwrap();
    assert_eq!(tree.get(keys::meta("schema")).unwrap(), None, "no version written");
    assert_eq!(tree.get(b"kept").unwrap().as_deref(), Some(&b"value"[..]));
    drop(tree);
    drop(reopened);

    // A store opens as it is.
    let store = Store::open_existing(&real).unwrap();
    assert_eq!(store.get::<u32>(&keys::meta("schema")).unwrap(), Some(SCHEMA_VERSION));
    drop(store);
    for dir in [real, none, plain, unversioned] {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_log_without_its_settings_file_is_refused_not_opened_empty() {
    let dir = temp_dir("no-conf");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db");
    // A log of sled's default segments: opened with sled's settings of a new store, it reads empty.
    let db = sled::Config::new().path(&path).open().unwrap();
    db.insert(b"kept", b"value").unwrap();
    db.flush().unwrap();
    drop(db);
    let settings = std::fs::read(path.join("conf")).unwrap();
    for damage in ["emptied", "removed"] {
        if damage == "emptied" {
            std::fs::write(path.join("conf"), b"").unwrap();
        } else {
            std::fs::remove_file(path.join("conf")).unwrap();
        }
        let error = open_db(&path, DEFAULT_CACHE_BYTES, LOCK_WAIT).unwrap_err();
        assert!(matches!(error, Error::NoSledSettings { .. }), "{damage}: {error}");
    }
    std::fs::write(path.join("conf"), &settings).unwrap();
    let (reopened, _) = open_db(&path, DEFAULT_CACHE_BYTES, LOCK_WAIT).unwrap();
    assert_eq!(reopened.get(b"kept").unwrap().as_deref(), Some(&b"value"[..]), "nothing lost");
    drop(reopened);
    let _ = std::fs::remove_dir_all(&dir);
}
