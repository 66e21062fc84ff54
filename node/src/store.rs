//! The node's store: one typed module over sled 0.34, the only code that knows sled.
//!
//! # Layout
//! One tree, `crossmatch-v1`, with prefixed keys, so that every logical operation is one
//! atomic `sled::Batch`. The layout table, with a builder and a parser per prefix, is in
//! [`keys`]; the typed values are in [`records`].
//!
//! Schema 2 added an index of remote adds by chain (`p`: origin ‖ generation ‖ seq ‖ token), so
//! that a fork or a removed member read only its chain's or origin's adds. Schema 4 dropped it:
//! the index cost ingest a second row per remote add, as much again as the add itself, for
//! reads that come seldom. A fork, a withdrawal and a republication allowance's count read the
//! origin's stored batches instead (`engine/live_adds.rs`), which every live add sits in, and
//! keep the entries whose `t` row still places the add there. A schema 3 store (or 1 or 2) is
//! migrated at open: the version is written, then the `p` rows are deleted in slices (tried
//! again at every later open while any is left); an older build refuses a migrated store.
//!
//! Schema 3 dropped the row kept per record an import created (`j`): the record now holds
//! its fingerprint then ([`imports::RecordImport`]), and the import's job the range of ids it
//! created ([`imports::ImportJob::created`]), so an import writes one row fewer a record (six
//! for a record of one identifier).
//! A schema 2 store is migrated at open (`store/migrate.rs`): the rows are copied into records
//! and jobs in slices, then version 3 is written, then the rows are deleted in slices (tried
//! again at every later open while any is left, whenever the disk has room; schema 3 reads
//! none). Until the version is written, a schema 2 build can still run the store whole.
//!
//! Schema 5 keeps a batch's tombstones (the entries it redacted for good, which no copy may
//! refill) in one row per batch (`v`, a bit per entry), not one row per entry (`z`): a
//! purge of a million entries wrote a million more rows, about 50 bytes of key each, kept for
//! the life of the store. A schema 4 store (or older) is migrated at open: the `z` rows are
//! folded into `v` rows in slices, then the version is written, then they are deleted.
//!
//! The hunt's rows (`n`, `l`, `d`, `y`, `s`, `g`) came without a schema change: they are new
//! prefixes only, which a schema 2 build without the hunt never reads (it reads by prefix), and
//! a store without them is an empty ledger. Schema 2 stayed 2. So did the curation's (`L`, `N`),
//! and community shares: remote tags (`G`) and own snapshots (`H`) are new prefixes, and the
//! `algorithmic` flags of records and remote adds are written only when true, so values without
//! them keep their bytes.
//!
//! # Durability contract
//! * Every mutating call here applies one `sled::Batch` (atomic: all or nothing after a crash),
//!   except `Txn::commit_durable_in_slices`, each of whose batches is (the hunt's retention
//!   purge, which the next purge completes).
//! * Calls marked *durable* also `flush` sled before returning, and [`Store::flush`] then syncs
//!   sled's files itself: `fdatasync` of the data file `db/db`, and of every blob file not
//!   synced before (then the blob directory). sled 0.34's own flush writes its log and calls
//!   only `sync_file_range`, which survives a process crash but not a power loss (it flushes
//!   neither the drive's cache nor the file's metadata), and it never syncs blob files. So a
//!   durable write, and every API answer `201`/`204` that rests on one, survives a power loss
//!   once it returns. We chose to sync the files rather than only to derive ids from a durable
//!   counter, because a counter keeps an id from being reused but still lets an acknowledged
//!   record vanish. [`Store::syncs`] counts the syncs, so tests can see one happen before an
//!   answer.
//! * Record ids are nevertheless never reused, even for a write lost between its audit line and
//!   its store write (a crash in that window, which any order of "audit first" has): the engine
//!   reserves ids in durable blocks before it audits them and resumes past the reservation at
//!   open (`engine/records.rs`), so the audit log cannot name an id that is issued again.
//! * A community share (`engine/tags.rs`) writes its algorithmic records, their holdings and
//!   outbox entries, its tags' outbox entries and its snapshot (`H`) in one durable write after
//!   its audit line, with record ids reserved as for any record; the share answers `201` only
//!   then. Its preview is memory only: a crash forgets it, and nothing was published for it.
//!   Remote tags (`G`) are written with the batch that carries them, like remote adds.
//! * Alert ids are not reserved. An alert raised by ingest is written without a sync (it is
//!   durable only once a later durable write syncs the store), so a power loss can lose a new
//!   alert and its id, and a later alert can then take that id. The audit log never names such
//!   an id: it records raised alerts by token, and an acknowledgement (the one audit line that
//!   names an alert id) flushes the store before its audit line, so the alert it names is
//!   durable first. What can happen is only that an id read through the API in the moment
//!   before a power loss later names another alert. That is acceptable: alerts are derived
//!   state, rebuilt from the records and the remote adds (which peers send again), and the
//!   audit log stays unambiguous.
//! * The alert event log's rows (`E`) and its counter `m/event-seq` are written by ingest (and
//!   every other writer of an alert row) in the alert row's batch, without a flush. They are
//!   made durable by the event pump (`daemon/events.rs`), which reads the seq and then flushes
//!   the store before it publishes that seq as the durable head; readers (the stream, the
//!   webhook) never go past that head, so no event is delivered before it is durable, and an
//!   unflushed event lost in a crash (its seq then issued again) was never delivered. The
//!   webhook's delivery state (`D`, its cursor) is written durably on each delivery, after the
//!   receiver's `2xx` and before the next one is sent.
//! * After a routine key change (`engine/own_key.rs`), the old key's retirement, the new own
//!   feed and the republication cursor (`K`) land in one durable write; each slice of the
//!   republication under the new key then lands in the outbox in one durable write with the
//!   cursor moved past it, so after a crash no slice is enqueued twice and none is skipped. A
//!   rotation's steps likewise commit each slice with its cursor in the plan (`U`), the own
//!   snapshots' move to the new tokens included. Republication allowances are written with the
//!   batch charged to them; counts in progress are memory only and start again after a crash.
//! * Own-feed batches, which peers may already hold, also go to [`own_log`], which `fsync`s
//!   each batch before it is published. The log is compacted to its last batch once the store
//!   has flushed (at open and at every retention sweep), so it never keeps a token much longer
//!   than the store does.
//! * Every key set in the tree is first noted in the presence filter (`store/presence.rs`),
//!   which a look-up of a token-keyed prefix consults before it reads sled; the filter is
//!   rebuilt from the keys present at every open, so it is never stale after a crash.
//! * Opening waits up to [`LOCK_WAIT`] for sled's file lock, which a store dropped a moment
//!   ago in this process may still hold; a store another process holds is refused.
//! * Ingest writes the chain head last, in the same batch as the entries it covers; replaying
//!   a batch after a crash is a duplicate, or a next that applies again with the same result.
//! * A remote add is one row (`t`), written in the batch that applies its stored batch (`b`), so
//!   after a crash every live add sits in a stored batch at the place it names.
//! * The hunt's rows for a batch of observation lines (counts, edges, evidence, accounts,
//!   aliases) and the seen hashes of the posts they count are written in one durable batch
//!   ([`hunt`]), so after a crash the store holds a post's counts exactly when it holds its seen
//!   hash, and re-ingesting the file counts only the posts not yet held.
//! * An analyst's curation (a label, pin, merge, split or "not a target" mark; `L` and `N`,
//!   [`curation`]) lands in one durable batch with the counters it moved, after its audit line
//!   and before the API answers. A crash between the two leaves an audit line for a change
//!   that was not made; mark and split ids are taken from counters written in that batch, so an
//!   id the audit log names is reused only if that write was lost.
//! * A token's identification (`I`) and the statuses asserted for it (`T`) are written in the
//!   batch of what taught them: an own record's or status's durable write, or a remote batch's
//!   apply (for a remote add, its `t` row is its source until the add leaves the store, whose
//!   write stores the source under `I`). A crash that loses a remote batch's apply loses its
//!   identification and statuses with it; sync fetches the batch again and the identification
//!   is then the new receipt's.
//! * A rotation of the secret and epoch (`engine/rotation.rs`) keeps its plan under `U`: written
//!   durably when the rotation begins, and again by every step (the changeover, with the
//!   node's epoch `m`/`epoch`; a slice of records tokenised again, with their holdings, token
//!   pairs `u`, moved alert rows and takedown facts; a slice of alerts computed again; a
//!   republication slice with its outbox entries; a slice of stored batches purged) in the same
//!   durable batch as the progress (the cursor) it records; a token moved ahead of the cursor
//!   (a record removed or given a status mid-rotation) is moved in that change's own durable
//!   write. The token pairs go at the end in durable slices, deleted in key order, and the plan
//!   last. A crash between steps resumes at open from the stored progress; every step is
//!   idempotent (a token already under the new epoch is left, a purged entry is already
//!   redacted, a deleted pair is gone). The plan
//!   holds both epochs' secrets until the old epoch is purged, in the owner-only store that
//!   holds the raw records anyway; then it holds neither. A republication allowance (`U`) is
//!   written with the first batch charged to it.
//! * A member removed from the roster (`engine/members.rs`) is marked under `X` (one row per
//!   origin) durably before the change returns; each withdrawal step forgets a slice of its
//!   live adds (`t`), read from its stored batches, with the alerts they change and the mark's
//!   cursor (the next entry to read) in one durable batch, and the origin's last step removes
//!   its tags (`G`) and marks it done in the same batch. A crash between steps leaves the
//!   mark: the engine reads the marks at open, their adds count for no alert, and the steps
//!   resume from the cursor (forgetting an add already forgotten changes nothing). A done mark
//!   stays while the origin stays outside the roster, so it is not marked again.
//! * A roster version this node adopts (`V`, [`roster`]) and the member records that came with
//!   it (`W`) are written in one durable batch before the adoption is audited and applied, so
//!   a roster the node ran is never lost and never rolled back: a crash between the write and
//!   the audit line leaves the version adopted at the next start without its audit line. A
//!   member record taken alone (posted, gossiped or fetched from a peer; several fetched in one
//!   write) is written durably before it is applied or forwarded, and this node's own record,
//!   signed anew at start, lands in the start's durable write before the node connects to
//!   anyone, so a seq it announced is never signed again for other details after a crash.
//! * Every write of an alert row (`a`) appends its event to the alert event log (`E`, with
//!   `m`/`event-seq`, [`events`]) in the same batch, so a crash keeps both or neither. Ingest's
//!   batches are not flushed, so an event may be lost and its seq issued again: the daemon
//!   delivers an event (stream, webhook) only once a flush after its write has returned, and
//!   only once the node is ready. The incarnation (`m`/`event-incarnation`) is drawn in a
//!   durable write at open when none is stored; when the own-feed log is missing, or is empty
//!   while the store has published (the engine's `restored`: a restore); when the high-water file beside it
//!   (`<data_dir>/event-log.head`, [`events::high_water`]: written by the engine at open,
//!   after a flush, to name what the store holds, and by the daemon's pump, synced and renamed
//!   into place, after the flush that made its head durable and before that head is
//!   published) names a later seq or another incarnation, or is unreadable; or when the file is
//!   missing although `m`/`event-high-water-written` says it was written. That flag is set in a
//!   durable write only after the file is durable in place, so a crash between the two leaves a
//!   file without the flag, never the flag without a file. So a cursor into events that may be
//!   gone is refused. A webhook's cursor (`D`), when none is kept for its URL, is settled in a
//!   durable write at the daemon's start, before anything of that run can stage an event. The
//!   webhook's cursor and drop counters are written durably after each acknowledged delivery,
//!   so a delivery is repeated after a crash at most once.
//! * An import (`engine/imports.rs`) commits each chunk's records, their import rows (`R`,
//!   `Q`) and the job's cursor, counts and created range (`M`) in one durable write after
//!   the import's one audit line, so a resumed job never applies a row twice; an undo or
//!   release step lands with its cursor likewise. The export's ids (`S`) are durable before returned.
//! * Outside the store: a new epoch's secret taken by the node (`daemon/secrets.rs`) is a 0600
//!   file under `<data_dir>/secrets/`, written to a temporary file that is synced, renamed
//!   over and its directory synced, before its audit line and before the intake answers; the
//!   rotation it completes is begun (its plan written durably under `U`) only after that. A
//!   crash between the file and the audit line leaves the secret held without its audit line;
//!   one before the rotation began begins it at the next start, from the stored roster and the
//!   held secret.

pub(crate) mod compact;
pub mod curation;
pub mod events;
mod files;
pub mod footprint;
pub mod hunt;
pub mod imports;
pub mod keys;
mod migrate;
pub mod own_log;
mod presence;
pub mod records;
pub mod roster;
pub mod space;
mod tombstones;
mod txn;

pub use tombstones::Tombstones;
pub use txn::Txn;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Serialize, de::DeserializeOwned};

use files::SledFiles;
pub use own_log::OwnLog;
pub use records::{
    Alert, AlertState, BatchLocation, ChainRecord, Counterpart, ForkEvidence, OutboxItem, OwnAdd,
    OwnFeed, OwnSnapshot, Quota, Record, RecordId, RemoteAdd, RemoteTag, StoredIdentifier,
    UnknownAlertState,
};

/// Version of the key layout and value encodings. Bumped on any incompatible change. Version 2
/// added the index of remote adds by chain (`p`); version 3 dropped the row per imported record
/// (`j`); version 4 dropped the index again; version 5 keeps a batch's tombstones in one row
/// (`v`), not one per entry (`z`). An older store is migrated at open (`store/migrate.rs`).
pub const SCHEMA_VERSION: u32 = 5;
const TREE: &str = "crossmatch-v1";

/// Store errors. Messages name the problem, never a raw identifier.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// The store was written by another schema version.
    #[error(
        "store schema version {found} is not supported (this build reads version {SCHEMA_VERSION}); \
         restore a matching backup or run a matching release"
    )]
    Schema {
        /// The version found.
        found: u32,
    },
    /// A value failed to decode: the store is damaged.
    #[error("store value under prefix {prefix:?} is damaged")]
    Corrupt {
        /// The key prefix.
        prefix: char,
    },
    /// I/O on the own-feed log or the data directory.
    #[error("own-feed log or data directory: {0}")]
    Io(#[from] std::io::Error),
    /// Another process holds the store.
    #[error("the store at {path} is in use by another process (waited for its lock)")]
    Locked {
        /// The store's path.
        path: std::path::PathBuf,
    },
    /// sled's log is there but its settings file is not (see `open_db`).
    #[error(
        "the store at {path} has a log but no settings file (`conf`, missing or empty): it \
         cannot be opened safely; restore the data directory from a backup (or, if the node's \
         very first start was cut short and it never held data, remove {path})"
    )]
    NoSledSettings {
        /// The store's path.
        path: std::path::PathBuf,
    },
    /// [`Store::open_existing`] found no store to open.
    #[error("no store at {path}: no sled log with data, or no schema version in it")]
    NoStore {
        /// The store's path.
        path: std::path::PathBuf,
    },
    /// [`Store::sled_space`] found sled's files changing under every read.
    #[error("sled's files changed while their space was read ({tries} tries); read a copy")]
    SpaceUnsettled {
        /// The reads tried.
        tries: u32,
    },
    /// The data directory can be read by group or others.
    #[error(
        "data directory {path} has mode {mode:o}; it holds raw identifiers and must not be \
         readable by group or others (chmod 700)"
    )]
    NotPrivate {
        /// The directory.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long opening waits for sled's lock on its files. A store just dropped in this process
/// may still hold it for a moment: sled's background threads outlive the last handle briefly,
/// longer on a loaded machine. Another process holding it is refused after the wait.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// sled's page cache when the config sets none (the top-level `store_cache_mib`): 256 MiB. sled's own
/// default, 1 GiB, let a large store take a gigabyte of memory the node never needs.
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// The size of sled's log segments in a store created by this build: 64 KiB, not sled's
/// 512 KiB. sled cleans a segment once at most half of it is live, and smaller segments mix
/// fewer live rows with dead ones: a million remote adds with their batches took 506 MB of
/// files against 682 MB (`cargo bench -p crossmatch-node --bench space`, docs/BENCHMARKS.md).
/// sled writes a page over a quarter of a segment as a file of its own (`blobs/`): at this size,
/// each leaf holding a kept batch.
pub const SEGMENT_BYTES: usize = 64 << 10;

/// sled's own segment size, which every store created before [`SEGMENT_BYTES`] has: sled keeps
/// a store's segment size for its life and refuses to open it with another.
const SLED_DEFAULT_SEGMENT_BYTES: usize = 512 << 10;

/// Every segment size a store was created with, newest first: a new store gets the first, an
/// older one opens with the size sled says it has, tried in this order. A build that changes
/// [`SEGMENT_BYTES`] puts the new size first and keeps the others.
const SEGMENT_SIZES: [usize; 2] = [SEGMENT_BYTES, SLED_DEFAULT_SEGMENT_BYTES];
const _: () = assert!(SEGMENT_SIZES[0] != SEGMENT_SIZES[1], "each size is tried once");

/// Opens sled at `path` with a page cache of `cache_bytes`, waiting up to `wait` for its lock:
/// a new store with [`SEGMENT_BYTES`], an older one with the size it was created with. Returns
/// the database and its segment size.
fn open_db(path: &Path, cache_bytes: u64, wait: std::time::Duration) -> Result<(sled::Db, usize)> {
    refuse_a_log_without_settings(path)?;
    let deadline = std::time::Instant::now() + wait;
    let config = sled::Config::new().path(path).flush_every_ms(Some(200));
    let mut size = 0;
    loop {
        let segment_bytes = SEGMENT_SIZES[size];
        match config.clone().cache_capacity(cache_bytes).segment_size(segment_bytes).open() {
            // sled refuses another segment size than the store's (checked before its lock).
            Err(sled::Error::Unsupported(why))
                if why.contains("io buffer size") && size + 1 < SEGMENT_SIZES.len() =>
            {
                size += 1;
            }
            // sled reports a held lock as an I/O error of kind `Other` with this text.
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Io(error)) if error.to_string().contains("could not acquire lock") => {
                return Err(Error::Locked { path: path.to_owned() });
            }
            result => return Ok((result?, segment_bytes)),
        }
    }
}

/// Refuses a sled log whose settings file (`conf`, with the segment size) is missing or
/// shorter than sled reads: sled would take the store for a new one and write settings of its
/// own, and a log written with another segment size would then open empty.
fn refuse_a_log_without_settings(path: &Path) -> Result<()> {
    // sled 0.34 reads a `conf` of 8 bytes or fewer as none.
    if sled_file_length(path, "db")? > 0 && sled_file_length(path, "conf")? <= 8 {
        return Err(Error::NoSledSettings { path: path.to_owned() });
    }
    Ok(())
}

/// The length of one of sled's files in `path` (its log `db`, its settings `conf`), 0 if absent.
fn sled_file_length(path: &Path, file: &str) -> std::io::Result<u64> {
    match std::fs::metadata(path.join(file)) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        metadata => metadata.map(|metadata| metadata.len()),
    }
}

/// Whether sled's database holds the store's tree (opening it would make it).
fn holds_store_tree(db: &sled::Db) -> bool {
    db.tree_names().iter().any(|name| name.as_ref() == TREE.as_bytes())
}

/// Creates the data directory owner-only (0700), or checks that an existing one is: the store,
/// the own-feed log and the audit log under it hold raw identifiers and notes. The directories
/// it creates are made durable: each one's parent is synced once it holds it.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        let missing: Vec<&Path> = dir.ancestors().take_while(|path| !path.exists()).collect();
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        for created in missing.iter().rev() {
            if let Some(parent) = created.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::NotPrivate { path: dir.to_owned(), mode });
    }
    Ok(())
}

/// Syncs the directory `dir`, so that the entries it holds (files and directories created or
/// renamed in it) survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Makes everything under `dir` owner-only: directories 0700, files 0600. sled creates its
/// files with the process's umask, so this runs after the store opens and at every retention
/// sweep; the directory itself is owner-only already, so nobody else could reach them.
pub fn make_private(dir: &Path) -> Result<()> {
    // sled's background threads create and delete files (snapshots) meanwhile: a file gone
    // between listing and changing it needs nothing.
    let gone = |error: &std::io::Error| error.kind() == std::io::ErrorKind::NotFound;
    let entries = match std::fs::read_dir(dir) {
        Err(error) if gone(&error) => return Ok(()),
        entries => entries?,
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let metadata = match std::fs::symlink_metadata(&path) {
            Err(error) if gone(&error) => continue,
            metadata => metadata?,
        };
        if metadata.file_type().is_symlink() {
            continue;
        }
        let wanted = if metadata.is_dir() { 0o700 } else { 0o600 };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & wanted)) {
                Err(error) if gone(&error) => continue,
                changed => changed?,
            }
        }
        if metadata.is_dir() {
            make_private(&path)?;
        }
    }
    Ok(())
}

/// Encodes a value for the store.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serialising our own plain structs into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(value, &mut out);
    out
}

/// How many values were decoded under each key prefix since the store opened: what a test
/// reads to prove an operation touched only the entries it should.
#[derive(Debug)]
struct DecodeCounts([AtomicU64; 256]);

impl DecodeCounts {
    fn new() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// The typed store. Cheap to clone; all methods block, so async callers use `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct Store {
    /// The presence filter's background fill, if any: first, so that dropping the last handle
    /// stops and joins it before the tree and the database drop (sled flushes on drop).
    filler: Option<Arc<presence::Filler>>,
    db: sled::Db,
    /// The log's segment size, fixed when the store was created.
    segment_bytes: usize,
    tree: sled::Tree,
    decoded: Arc<DecodeCounts>,
    /// sled's files, synced after every flush (see the durability contract).
    files: Arc<SledFiles>,
    /// The free space every write set needs (`store/space.rs`).
    reserve: space::Reserve,
    /// What the tree may hold under its token-keyed prefixes (`store/presence.rs`): every
    /// write notes its keys here before it is applied.
    presence: Arc<presence::Presence>,
    /// Test-only: the prior values of the last batch applied, so that a test can drop it.
    #[cfg(feature = "test-support")]
    last_batch: Arc<std::sync::Mutex<Option<PriorValues>>>,
    /// Test-only: the write sets' `sled::Batch`es applied since open (`Txn`).
    #[cfg(feature = "test-support")]
    batches: Arc<AtomicU64>,
}

/// Keys and the values they held before a batch (`None`: absent).
#[cfg(feature = "test-support")]
type PriorValues = Vec<(Vec<u8>, Option<sled::IVec>)>;

impl Store {
    /// Opens (or creates) the store in `dir` with the default page cache.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store in `dir`, checking the schema version; sled's page cache
    /// holds at most about `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self> {
        Self::open_or_create(dir, cache_bytes, true)
    }

    /// Opens the store in `dir` only if one is there (a sled log with data, holding a schema
    /// version), never making one; [`Error::NoStore`] otherwise. For tools that read copies of
    /// stores: opening still recovers and may migrate, so sled and the store may write to it.
    /// A path without a log with data is refused before sled opens anything; a database
    /// without the store's tree or schema version only after sled's own open has recovered its
    /// log, which may zero the log's tail, write a snapshot and make `blobs/` (sled 0.34 has
    /// no read-only open), but before the store writes its tree or schema.
    pub fn open_existing(dir: &Path) -> Result<Self> {
        Self::open_or_create(dir, DEFAULT_CACHE_BYTES, false)
    }

    fn open_or_create(dir: &Path, cache_bytes: u64, create: bool) -> Result<Self> {
        let no_store = || Error::NoStore { path: dir.to_owned() };
        let path = dir.join("db");
        if !create && (sled_file_length(&path, "db")? == 0 || sled_file_length(&path, "conf")? == 0)
        {
            return Err(no_store());
        }
        let (db, segment_bytes) = open_db(&path, cache_bytes, LOCK_WAIT)?;
        if !create && !holds_store_tree(&db) {
            return Err(no_store());
        }
        let tree = db.open_tree(TREE)?;
        let files = Arc::new(SledFiles::open(&path)?);
        let mut store = Self {
            filler: None,
            db,
            segment_bytes,
            tree,
            decoded: Arc::new(DecodeCounts::new()),
            files,
            reserve: space::Reserve::new(dir),
            presence: Arc::new(presence::Presence::placeholder()),
            #[cfg(feature = "test-support")]
            last_batch: Arc::default(),
            #[cfg(feature = "test-support")]
            batches: Arc::default(),
        };
        match store.get::<u32>(&keys::meta("schema"))? {
            // Rows a migration cut short may have left behind: deleted while there is room.
            Some(SCHEMA_VERSION) => store.drop_rows_of_old_schemas(),
            Some(found @ 1..=4) => {
                // A migration writes as it goes: only with room.
                store.reserve.check()?;
                match found {
                    1 => store.migrate_from_2(4)?,
                    2 => store.migrate_from_2(3)?,
                    _ => {}
                }
                if found <= 3 {
                    store.migrate_from_3()?;
                }
                store.migrate_from_4()?;
            }
            Some(found) => return Err(Error::Schema { found }),
            None if !create => return Err(no_store()),
            None => {
                store.reserve.check()?;
                store.tree.insert(keys::meta("schema"), encode(&SCHEMA_VERSION))?;
                store.flush()?;
            }
        }
        store.fill_presence(presence::FILL_AT_OPEN_BYTES);
        Ok(store)
    }

    /// Builds the presence filter once the schema is known good: for a store of at most
    /// `fill_at_open_bytes` on disk before this returns, for a larger one (or one whose size
    /// cannot be read, then sized as the smallest) in the background, answering "may hold"
    /// meanwhile.
    fn fill_presence(&mut self, fill_at_open_bytes: u64) {
        let disk_bytes = self
            .db
            .size_on_disk()
            .inspect_err(|error| tracing::warn!(%error, "the store's size on disk is unknown"))
            .ok();
        self.presence = Arc::new(presence::Presence::sized_for(disk_bytes.unwrap_or(0)));
        if disk_bytes.is_some_and(|bytes| bytes <= fill_at_open_bytes) {
            if let Err(error) = self.presence.fill(&self.tree) {
                tracing::warn!(%error, "the presence filter could not be filled");
            }
            return;
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        match presence::Presence::fill_in_background(&self.presence, self.tree.clone(), stop) {
            Ok(filler) => self.filler = Some(Arc::new(filler)),
            Err(error) => tracing::warn!(%error, "the presence filter is not filled: no thread"),
        }
    }

    /// Decodes the value stored under `key`, counting it under the key's prefix.
    fn decode<T: DeserializeOwned>(&self, key: &[u8], bytes: &[u8]) -> Result<T> {
        if let Some(&prefix) = key.first() {
            self.decoded.0[usize::from(prefix)].fetch_add(1, Ordering::Relaxed);
        }
        ciborium::de::from_reader(bytes)
            .map_err(|_| Error::Corrupt { prefix: keys::prefix_of(key) })
    }

    /// How many values stored under `prefix` (one prefix byte of [`keys::prefix`]) were decoded
    /// since the store opened, through any handle or write set of it.
    pub fn decoded(&self, prefix: u8) -> u64 {
        self.decoded.0[usize::from(prefix)].load(Ordering::Relaxed)
    }

    /// Reads and decodes one value.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        if self.known_absent(key) {
            return Ok(None);
        }
        self.tree.get(key)?.map(|bytes| self.decode(key, &bytes)).transpose()
    }

    /// Reads raw bytes.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.known_absent(key) {
            return Ok(None);
        }
        Ok(self.tree.get(key)?.map(|bytes| bytes.to_vec()))
    }

    /// Whether any key starts with `prefix`.
    pub fn any_with_prefix(&self, prefix: &[u8]) -> Result<bool> {
        Ok(self.scan_raw(prefix).next().transpose()?.is_some())
    }

    /// sled's scan of `prefix`, or nothing when the presence filter knows it holds nothing.
    fn scan_raw(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> {
        (!self.known_absent(prefix)).then(|| self.tree.scan_prefix(prefix)).into_iter().flatten()
    }

    /// Whether the presence filter knows the tree holds nothing at or under `key`. In debug
    /// builds (every test) each such answer is checked against sled, so a write that bypassed
    /// the filter fails the test that made it.
    fn known_absent(&self, key: &[u8]) -> bool {
        let absent = !self.presence.may_hold(key);
        // A writer notes a key before it applies it, so a key found now that the filter still
        // lacks was never noted (one written since the first answer is noted by now).
        debug_assert!(
            !absent
                || !matches!(self.tree.scan_prefix(key).next(), Some(Ok(_)))
                || self.presence.holds_bits(key),
            "the presence filter called a held key absent"
        );
        absent
    }

    /// Whether the presence filter answers yet (a large store's is filled in the background).
    pub fn presence_filled(&self) -> bool {
        self.presence.is_filled()
    }

    /// Look-ups answered from the presence filter since the store opened (`store/presence.rs`):
    /// keys and prefixes the store was known not to hold, so sled was not read.
    pub fn reads_skipped(&self) -> u64 {
        self.presence.skipped()
    }

    /// The first `limit` (key, decoded value) pairs under `prefix`, in key order.
    pub fn scan_first<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>> {
        self.scan_raw(prefix)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((key.to_vec(), self.decode(&key, &value)?))
            })
            .collect()
    }

    /// All (key, decoded value) pairs under `prefix`, in key order.
    pub fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        self.scan_raw(prefix)
            .map(|item| {
                let (key, value) = item?;
                Ok((key.to_vec(), self.decode(&key, &value)?))
            })
            .collect()
    }

    /// Calls `each` with every (key, decoded value) pair under `prefix`, in key order, one at a
    /// time: a scan of a prefix that can hold millions of values without holding them all.
    pub fn scan_each<T: DeserializeOwned, E: From<Error>>(
        &self,
        prefix: &[u8],
        mut each: impl FnMut(&[u8], T) -> Result<(), E>,
    ) -> Result<(), E> {
        for item in self.scan_raw(prefix) {
            let (key, value) = item.map_err(Error::from)?;
            each(&key, self.decode(&key, &value)?)?;
        }
        Ok(())
    }

    /// All keys under `prefix`, in key order.
    pub fn scan_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.scan_raw(prefix).map(|item| Ok(item?.0.to_vec())).collect()
    }

    /// Keys in `[from, to)`, at most `limit`.
    pub fn range_keys(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Vec<u8>>> {
        self.tree.range(from..to).keys().take(limit).map(|key| Ok(key?.to_vec())).collect()
    }

    /// `Ok` while the data directory's file system keeps the store's reserve free; the
    /// `StorageFull` error a write set would meet otherwise. Checked before anything a refused
    /// write could not undo (an audit line, a signed batch), since a write set itself is
    /// refused only under half the reserve (`store/space.rs`).
    pub fn check_space(&self) -> Result<()> {
        Ok(self.reserve.check()?)
    }

    /// Starts an atomic write set.
    pub fn txn(&self) -> Txn<'_> {
        Txn::new(self)
    }

    /// Flushes sled, then syncs its files (see the durability contract).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        self.files.sync()
    }

    /// How many times sled's files were synced since this store was opened: a write that
    /// [`flush`](Self::flush)es has been synced once this count has grown past it.
    pub fn syncs(&self) -> u64 {
        self.files.syncs.load(Ordering::Relaxed)
    }

    /// Test-only (the `test-support` feature): how many `sled::Batch`es write sets applied
    /// since this store was opened.
    #[cfg(feature = "test-support")]
    pub fn batches_applied(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Test-only (the `test-support` feature): from now on, keep the prior values of the last
    /// batch applied, for [`drop_last_batch`](Self::drop_last_batch).
    #[cfg(feature = "test-support")]
    pub fn keep_last_batch(&self) {
        let mut last = self.last_batch.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = Some(Vec::new());
    }

    /// Test-only (the `test-support` feature): undoes the last batch applied since
    /// [`keep_last_batch`](Self::keep_last_batch), as a crash that lost it would: the write a
    /// caller made last never reached the disk, while whatever it wrote elsewhere (its audit
    /// line) did.
    #[cfg(feature = "test-support")]
    pub fn drop_last_batch(&self) -> Result<()> {
        let prior = {
            let mut last = self.last_batch.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            last.as_mut().map(std::mem::take).unwrap_or_default()
        };
        let mut batch = sled::Batch::default();
        for (key, value) in prior {
            match value {
                Some(value) => {
                    self.presence.note(&key);
                    batch.insert(key, value);
                }
                None => batch.remove(key),
            }
        }
        self.tree.apply_batch(batch)?;
        self.flush()
    }

    /// Keeps the values `keys` hold now, when a test asked to (see
    /// [`keep_last_batch`](Self::keep_last_batch)).
    #[cfg(feature = "test-support")]
    fn remember_prior_values<'k>(&self, keys: impl Iterator<Item = &'k Vec<u8>>) -> Result<()> {
        let mut last = self.last_batch.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(prior) = last.as_mut() {
            prior.clear();
            for key in keys {
                prior.push((key.clone(), self.tree.get(key)?));
            }
        }
        Ok(())
    }

    /// Every key and value in the store, for tests that prove data is purged.
    pub fn dump(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut all = Vec::new();
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name)?;
            for item in tree.iter() {
                let (key, value) = item?;
                all.push((key.to_vec(), value.to_vec()));
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests;
