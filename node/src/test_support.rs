//! Fixtures shared by the tests and benches of the workspace, compiled only with the
//! `test-support` feature (which only tests and benches enable): temporary directories, a clock
//! set by hand, the test federation's keys, members and engine configuration, sample records
//! and entries, a local federation under a temporary root (`federation`, with two meshed
//! members and an alert raised between them), members serving their API in-process with the
//! hunt's sample observations (`api_node`), a blocking HTTP client for the API (`http`), signed
//! roster files (`roster_file`), a mutual-TLS reverse proxy in front of a member's API
//! (`tls_proxy`), a client of the alert stream (`sse`) and a webhook receiver that checks
//! signatures (`webhook`); and the benches' knobs from the environment (`knob`) and a
//! directory's size on disk (`disk_usage`).

pub mod api_node;
pub mod federation;
pub mod fuzz;
pub mod http;
pub mod roster_file;
pub mod sse;
pub mod tls_proxy;
pub mod webhook;

pub use federation::{alerts, federation};

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crossmatch_protocol::{
    Add, Canonical, Entry, Evaluation, FederationId, FederationSecret, Handling, Kind, Op,
    SigningKey, Token, canonicalize,
};

use crate::clock::{Clock, DAY_MS, SystemClock};
use crate::engine::{EngineConfig, Member, NewRecord};

/// The test federation's id.
pub const FEDERATION: FederationId = FederationId([9; 32]);

/// The test federation's secret.
pub const SECRET: FederationSecret = FederationSecret::from_bytes([5; 32]);

/// A bench's knob: the number in the environment variable `name` (`_` may group its digits,
/// as in `1_000_000`), or `default` when it is not set. A value that is not a number stops the
/// bench rather than run it with the default unnoticed.
pub fn knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: a whole number is expected")),
        Err(_) => default,
    }
}

/// `n` distinct loopback ports that were free a moment ago, for processes a test starts: every
/// port is held until all are picked, so no two are the same (a port picked, freed and picked
/// again would give two nodes one port).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port")).collect();
    held.iter().map(|listener| listener.local_addr().expect("a bound port").port()).collect()
}

/// A directory's size, summed over every file under it: (apparent bytes, allocated bytes).
/// A file or directory that vanishes during the walk (a running store removes its own)
/// counts as nothing; any other failure to read is an error.
pub fn disk_usage(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let gone = |error: &std::io::Error| error.kind() == std::io::ErrorKind::NotFound;
    let mut sizes = (0, 0);
    for entry in std::fs::read_dir(path)? {
        let meta = match entry.and_then(|entry| Ok((entry.metadata()?, entry.path()))) {
            Ok(found) => found,
            Err(error) if gone(&error) => continue,
            Err(error) => return Err(error),
        };
        let (apparent, allocated) = match meta {
            (meta, path) if meta.is_dir() => match disk_usage(&path) {
                Err(error) if gone(&error) => continue,
                sizes => sizes?,
            },
            (meta, _) => (meta.len(), meta.blocks() * 512),
        };
        sizes = (sizes.0 + apparent, sizes.1 + allocated);
    }
    Ok(sizes)
}

/// A fixed instant for manual clocks: 2027-01-15T08:00:00Z, in Unix milliseconds.
pub const T0: u64 = 1_800_000_000_000;

/// Directories handed out so far in this process: part of every name, so that tests sharing
/// one process never share a directory.
static TEMP_DIRS: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty directory under the system temp dir, removed on drop. Its name holds the
/// caller's name, the process id and a counter, so it is unique among the tests of one process
/// and among processes.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `crossmatch-{name}-{pid}-{counter}` under the system temp dir.
    pub fn new(name: &str) -> Self {
        let count = TEMP_DIRS.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("crossmatch-{name}-{}-{count}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        // Owner-only, as the node requires of its data directory.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Keeps the directory (it is not removed on drop), for a failed test's evidence.
    pub fn keep(self) -> PathBuf {
        let path = self.0.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A clock that reads what the test set: it moves only by [`set`](Self::set) and
/// [`advance`](Self::advance).
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self(AtomicU64::new(now_ms))
    }

    /// Sets the time to `now_ms`.
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time `ms` milliseconds on.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Signing key number `n`: the seed is `n` repeated.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

/// The first `n` members of the test federation: `A` holds `key(1)`, `B` `key(2)`, …, and each
/// is reached at `desk@{id}.example`.
pub fn members(n: u8) -> Vec<Member> {
    (1..=n)
        .map(|i| {
            let id = char::from(b'A' + (i - 1)).to_string();
            Member {
                contact: format!("desk@{id}.example"),
                key: key(i).public_key(),
                retired_keys: Vec::new(),
                retired_heads: Vec::new(),
                id,
            }
        })
        .collect()
}

impl EngineConfig {
    /// Member `n`'s engine configuration in the test federation of three members
    /// ([`members`]`(3)`, [`FEDERATION`], [`SECRET`], epoch 1): key `key(n)`, 180 days'
    /// retention, and quotas of a million entries and 1 GiB a day.
    pub fn for_test(n: u8) -> Self {
        Self {
            federation_id: FEDERATION,
            secret: SECRET,
            epoch: 1,
            key: key(n),
            members: members(3),
            max_retention_ms: 180 * DAY_MS,
            quota_entries_per_day: 1_000_000,
            quota_bytes_per_day: 1 << 30,
            store_cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
        }
    }
}

/// An x account's canonical form.
pub fn account(handle: &str) -> Canonical {
    canonicalize(Kind::Account, Some("x"), None, handle).unwrap_or_else(|e| panic!("{e}"))
}

/// A shared (or watched) record of x accounts, expiring at `expires_at_ms`: category
/// `terrorism/propaganda`, handling H1, evaluation B2, 30 posts a day, no notes.
pub fn record_until(handles: &[&str], share: bool, expires_at_ms: u64) -> NewRecord {
    NewRecord {
        identifiers: handles.iter().map(|h| account(h)).collect(),
        category: "terrorism/propaganda".into(),
        handling: Handling::H1,
        evaluation: Evaluation::new('B', 2).unwrap_or_else(|| panic!("evaluation")),
        notes: String::new(),
        activity_per_day: Some(30),
        expires_at_ms,
        share,
        backlog: false,
    }
}

/// A shared (or watched) record of x accounts, expiring in 30 days by the system clock.
pub fn record(handles: &[&str], share: bool) -> NewRecord {
    record_until(handles, share, SystemClock.now_ms() + 30 * DAY_MS)
}

/// An add entry of token `[n; 32]` with salt `[n; 16]`, expiring at `expires_at_ms`: an
/// account, category `terrorism/propaganda`, handling H0, evaluation B2.
pub fn add_entry(n: u8, expires_at_ms: u64) -> Entry {
    Entry {
        salt: [n; 16],
        op: Op::Add(Add {
            token: Token([n; 32]),
            kind: Kind::Account,
            category: "terrorism/propaganda".into(),
            handling: Handling::H0,
            evaluation: Evaluation::new('B', 2).unwrap_or_else(|| panic!("evaluation")),
            activity_per_day: None,
            expires_at_ms,
            algorithmic: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_usage_sums_every_file_under_a_directory_and_refuses_a_missing_one() {
        let dir = TempDir::new("disk-usage");
        std::fs::write(dir.path().join("a"), vec![1; 5_000]).unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        std::fs::write(dir.path().join("nested/b"), vec![2; 300]).unwrap();
        let (apparent, allocated) = disk_usage(dir.path()).unwrap();
        assert_eq!(apparent, 5_300);
        assert!(allocated >= 5_300, "{allocated} bytes allocated for 5,300 written");
        let missing = disk_usage(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_knob_falls_back_when_unset_and_stops_on_a_value_that_is_not_a_number() {
        assert_eq!(knob("CROSSMATCH_TEST_KNOB_THAT_IS_NEVER_SET", 7), 7);
        // `PATH` is set in every test run and is not a number.
        assert!(std::panic::catch_unwind(|| knob("PATH", 1)).is_err());
    }
}
