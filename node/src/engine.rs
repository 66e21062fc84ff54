//! The matching engine: local records, the publisher, ingest of remote batches, fork evidence,
//! alerts and retention. Synchronous and free of networking and of async: the daemon drives it
//! from blocking tasks, and tests drive it directly with an injected clock.
//!
//! This file holds the [`Engine`] itself, its configuration, errors and outcome types. Its jobs
//! are `impl Engine` blocks in the files under `engine/`, one job each:
//! - `records.rs`: local records and watches (add, remove, status, read), and the outbox entries
//!   they make;
//! - `publish.rs`: the own feed: the outbox signed into batches, the fsynced own-feed log, new
//!   generations;
//! - `ingest.rs`: remote batches verified, placed in their chain and applied (held out of order
//!   within bounds, holes filled from complete copies, quotas);
//! - `forks.rs`: forks found or forwarded: evidence, frozen chains, repair of the own feed;
//! - `imports.rs`: imports committed in chunks with their cursor, paced shares, undo;
//!   `export.rs`: the STIX export's stored ids and tombstones;
//! - `members.rs`: the roster's members changed while the node runs: the origins accepted, and
//!   the withdrawal of a removed member's live adds;
//! - `alerts.rs`: the alert state machine, a pure function, and the code that feeds it from the
//!   store and announces changes;
//! - `retention.rs`: expiry of entries and records;
//! - `serve.rs`: what peers ask for: heads, ranges, stored batches and chains, and judging
//!   their heads (fork evidence is served by `forks.rs`);
//! - `takedowns.rs`: the takedown clock's facts (identification times, statuses asserted,
//!   peers' clock skew) and, in `takedowns/report.rs`, the report computed from them;
//! - `rotation.rs`: rotation of the secret and epoch (a durable plan carried out in bounded
//!   steps, at most [`SLICE_ROWS`] rows per call),
//!   with the purge at the grace period's end in `rotation/purge.rs` and the paced
//!   republication and its quota allowance in `rotation/republish.rs`.

mod alerts;
mod allowance;
mod export;
mod forks;
mod imports;
mod ingest;
mod live_adds;
mod members;
mod origins;
mod own_key;
mod publish;
mod records;
mod retention;
pub mod rotation;
mod serve;
mod tags;
pub mod takedowns;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crossmatch_protocol::limits::MAX_ACTIVITY_PER_DAY;
use crossmatch_protocol::{
    BatchError, BatchId, Canonical, EpochKey, Evaluation, FederationId, FederationSecret, FeedId,
    FinalHead, ForkError, Handling, OriginKeys, PublicKey, SigningKey, Token, VerifiedBatch,
    verify_batch,
};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditError, AuditLog, AuditOptions};
use crate::clock::Clock;
use crate::store::{self, Alert, OwnFeed, OwnLog, RecordId, Store, Txn, keys};

pub use alerts::{AlertChange, AlertFacts, next_alert};
pub use allowance::{
    AllowanceFor, REPUBLICATION_BYTES_PER_ENTRY, REPUBLICATION_MARGIN_ENTRIES,
    RepublicationAllowance,
};
pub use export::StixSighting;
pub use imports::{ImportChunk, KeyedRow, OWN_QUOTA_PERCENT, OwnQuota, plan_undo};
pub use live_adds::EntryPlace;
pub use members::{MembersChange, Withdrawal};
pub use own_key::{OwnKeyChange, OwnKeys, RetiredOwnKey, stored_own_final_head};
pub use retention::ENTRY_PURGE_SLICE;
pub use rotation::{Rotation, RotationProblem, RotationView};
pub use serve::MAX_HEADS_JUDGED;
pub use tags::{
    CommunityShare, MAX_OWN_SNAPSHOTS, MAX_SHARED_ACCOUNTS, MAX_TAGS_PER_ORIGIN, ShareHolding,
    ShareOutcome, SharedAccount, TagView, TokenFacts,
};

/// The bound of the engine's background work per call: a rotation step
/// (`engine/rotation.rs`) or a withdrawal step (`engine/members.rs`) looks at no more than
/// this many records, stored entries, token pairs or remote adds (a stored batch is not split:
/// a purge step may end up to one batch past it), so ingest, the API and sync wait for one
/// step at most, however large the store, not for the whole rotation or removal of a member
/// (`node/benches/rotation.rs` measures the longest step).
pub const SLICE_ROWS: usize = 1000;

/// Most batches held out of order per origin while their gap is filled.
pub const MAX_HELD_PER_ORIGIN: usize = 64;
/// Most batches held out of order in all.
pub const MAX_HELD_TOTAL: usize = 1024;
/// Most forks kept as evidence: each is a frozen generation an operator must look at.
pub const MAX_FORK_EVIDENCE: usize = 1024;
/// Most forks kept per origin, so that one member forking its own feed over and over cannot
/// crowd out the evidence against others. One proved fork is enough to act on.
pub const MAX_FORKS_PER_ORIGIN: usize = 4;
/// Most forks found and not yet forwarded; beyond this, peers learn of them by sync.
pub const MAX_OUTGOING_FORKS: usize = 16;

/// A roster member as the engine needs it.
#[derive(Debug, Clone)]
pub struct Member {
    /// Member id (`DE`).
    pub id: String,
    /// Its key.
    pub key: PublicKey,
    /// Its earlier node keys, from routine key changes: their feeds stay matchable and their
    /// batches still verify.
    pub retired_keys: Vec<PublicKey>,
    /// Where each retired key's feed ends (from its key change; none: the key never signed a
    /// batch). A retired key's batch past its final head, or of a retired key not listed here,
    /// is ignored: a leaked retired key cannot extend the old feed.
    pub retired_heads: Vec<(PublicKey, Option<FinalHead>)>,
    /// Its contact.
    pub contact: String,
}

/// Everything the engine is configured with.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Federation id.
    pub federation_id: FederationId,
    /// Federation secret.
    pub secret: FederationSecret,
    /// Current token epoch.
    pub epoch: u32,
    /// This node's key.
    pub key: SigningKey,
    /// The roster's members (this node included).
    pub members: Vec<Member>,
    /// Longest this node keeps anything (ms): `min(roster maximum, local maximum)`.
    pub max_retention_ms: u64,
    /// Per-origin daily quota of accepted entries.
    pub quota_entries_per_day: u64,
    /// Per-origin daily quota of accepted batch bytes.
    pub quota_bytes_per_day: u64,
    /// The most the store's page cache holds (bytes; the config's top-level `store_cache_mib`).
    pub store_cache_bytes: u64,
}

/// The limits a roster sets that the engine enforces (docs/PROTOCOL.md §4): what
/// [`Engine::set_limits`] changes when another roster is adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineLimits {
    /// Longest this node keeps anything (ms): `min(roster maximum, local maximum)`.
    pub max_retention_ms: u64,
    /// Per-origin daily quota of accepted entries.
    pub quota_entries_per_day: u64,
    /// Per-origin daily quota of accepted batch bytes.
    pub quota_bytes_per_day: u64,
}

/// Engine errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A record needs at least one identifier.
    #[error("a record needs at least one identifier")]
    NoIdentifiers,
    /// The configured node key is one this node retired in a routine key change.
    #[error(
        "this node key was retired by a routine key change and never signs again; configure the new key"
    )]
    RetiredKey,
    /// Expiry must lie in the future and within the retention limit.
    #[error("expiry must be in the future and at most {max_days} days ahead")]
    Expiry {
        /// The limit in days.
        max_days: u64,
    },
    /// Category outside its alphabet or length.
    #[error("category must be 1-64 of a-z 0-9 _ . / - starting with a letter or digit")]
    Category,
    /// Activity beyond what an entry may state.
    #[error("activity_per_day is at most {MAX_ACTIVITY_PER_DAY}")]
    Activity,
    /// No such record.
    #[error("no record {0}")]
    NoRecord(RecordId),
    /// The audit log refused or failed; the action was not taken.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A community share's accounts are held otherwise than its preview saw: preview again.
    #[error("the records changed since the share was previewed; preview it again")]
    ShareChanged,
    /// A community share includes no account, or too many.
    #[error("a community share includes 1 to {max} accounts")]
    ShareSize {
        /// The limit.
        max: usize,
    },
    /// A community share must be shared: H0 to H2.
    #[error("a community share is handled H0, H1 or H2 (H3 is never shared)")]
    ShareHandling,
    /// The node keeps this many snapshots of its shares already.
    #[error("at most {max} community snapshots are kept; wait for older ones to expire")]
    TooManySnapshots {
        /// The limit.
        max: usize,
    },
    /// A rotation was refused.
    #[error(transparent)]
    Rotation(#[from] RotationProblem),
    /// The store holds records tokenised under another epoch than the configured one, and no
    /// rotation between the two is under way. Their tokens would never match again, so the
    /// node does not start.
    #[error(
        "the store holds records tokenised under epoch {stored}, but the node is configured for \
         epoch {configured} and no rotation between them is under way: run with epoch \
         {stored} and rotate, or start from an empty data directory and add the records again"
    )]
    EpochChanged {
        /// The epoch of the stored records.
        stored: u32,
        /// The configured epoch.
        configured: u32,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A record to add.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Canonical identifiers.
    pub identifiers: Vec<Canonical>,
    /// Category label.
    pub category: String,
    /// Handling code (H3 is never shared).
    pub handling: Handling,
    /// Evaluation.
    pub evaluation: Evaluation,
    /// Notes (local only).
    pub notes: String,
    /// Posts per day.
    pub activity_per_day: Option<u64>,
    /// Expiry (Unix ms).
    pub expires_at_ms: u64,
    /// Share with the federation (false: watch only).
    pub share: bool,
    /// From a bulk import of old lists: kept out of the takedown clock's budget figures.
    pub backlog: bool,
}

/// What ingest did with a batch; maps onto the gossip verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Applied (and any held successors after it): `applied` batches in all.
    Applied {
        /// Batches applied.
        applied: usize,
    },
    /// Already held; `filled` redacted entries were restored from this copy.
    Duplicate {
        /// Holes filled.
        filled: usize,
    },
    /// Held until seqs `missing_from..=missing_to` arrive.
    Gap {
        /// The feed with the gap.
        feed: FeedId,
        /// First missing seq.
        missing_from: u64,
        /// Last missing seq.
        missing_to: u64,
    },
    /// The origin equivocated; the chain is frozen and evidence kept.
    Fork {
        /// The contested seq.
        seq: u64,
    },
    /// Nothing to do (frozen chain, or nothing to judge against).
    Ignored,
    /// Signed, it claims, by a key that is not on this node's roster: perhaps a member that a
    /// newer roster added (or an older one had), relayed by a member already running that
    /// roster. Ignored before any signature check, stored nowhere and not forwarded; not the
    /// fault of a relay on another roster (one on this roster would not have forwarded it).
    UnknownOrigin,
    /// Over the origin's daily quota: refused, nothing stored.
    QuotaExceeded,
    /// Over the origin's daily quota while the republication allowance it may draw on (a
    /// rotation's or a key change's) is still being counted: refused, nothing stored, as
    /// [`IngestOutcome::QuotaExceeded`], and taken when offered again once the count is done.
    /// Never the relay's fault: each node counts its allowance from what it holds, so an honest
    /// relay forwards what its own allowance let in. A batch beyond an allowance known (used
    /// up) is [`IngestOutcome::QuotaExceeded`].
    RepublicationOverQuota,
    /// Refused as a whole.
    Rejected(BatchError),
    /// Gossip with a redacted or altered entry: refused (only sync may carry redactions).
    IncompleteGossip,
    /// A genuine own batch gossiped during own-feed recovery: not stored, free for its sender.
    LeftToRecovery,
}

/// What a `range` answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RangeOutcome {
    /// Batches applied (held successors included).
    pub applied: usize,
    /// Batches that verified at the positions asked for, whether or not this node held them
    /// already: what the peer served. Two pulls often ask two peers for the same range, so an
    /// honest answer may bring only duplicates.
    pub served: usize,
    /// A batch did not verify or was not the one asked for: penalise the peer.
    pub mismatch: bool,
}

/// A peer's signed head that lies beyond this node's copy of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadClaim {
    /// The feed.
    pub feed: FeedId,
    /// First seq this node lacks.
    pub from_seq: u64,
    /// The peer's head seq.
    pub to_seq: u64,
    /// The chain is this node's own feed (recovery).
    pub own: bool,
}

/// What a peer's `heads` answer proves of this node's own feed, for own-feed recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnWitness {
    /// Nothing: no head of the own feed, or one behind this node's.
    #[default]
    Nothing,
    /// The peer holds the own head (the same batch at the same position), or, the current
    /// generation being empty here, holds an earlier generation of this node and nothing of
    /// the current one.
    Confirms,
    /// The peer holds the own feed further, up to (generation, seq): fetch it. This node
    /// lost own batches (every batch it signs is fsynced here before it leaves), so it cannot
    /// know how far its feed went: peers out of reach may hold more, and recovery starts a
    /// new generation after restoring.
    Ahead(u32, u64),
    /// The peer holds another batch at the own head's position: the own feed was forked.
    Contradicts,
}

/// A peer's `heads` answer, judged: the chains to fetch, what it proves of the own feed, and
/// how many manifests it carried beyond the bound (one head per roster member), none of which
/// was looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadsJudgement {
    /// The chains the peer holds further than this node, within the bound.
    pub claims: Vec<HeadClaim>,
    /// What the answer proves of the own feed.
    pub own: OwnWitness,
    /// Manifests beyond the bound: more than the roster's members, or a second of one origin.
    pub excess: usize,
}

/// Counters, for metrics and for proving "verify once".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Batches received by `ingest`.
    pub received: u64,
    /// Signature verifications of received batches (duplicates of complete stored batches are
    /// recognised by their claimed hash and not verified again).
    pub verifications: u64,
    /// Verifications of batches read back from the store before redacting or filling them.
    pub stored_reverifications: u64,
    /// Batches applied.
    pub applied: u64,
    /// Batches applied from sync answers (`range`), the batches they released included.
    #[serde(default)]
    pub applied_by_sync: u64,
    /// Batches applied from gossip, the batches they released included.
    #[serde(default)]
    pub applied_by_gossip: u64,
    /// Duplicates seen.
    pub duplicates: u64,
    /// Batches rejected.
    pub rejected: u64,
    /// Batches refused over quota.
    pub quota_refused: u64,
    /// Batches refused, before their signature was checked, on what they claim: past a fork's
    /// limit, or over the origin's quota (those are counted in `quota_refused` too).
    pub refused_unverified: u64,
    /// Batches and fork evidence claiming an origin outside this node's roster: ignored
    /// before any signature check.
    pub unknown_origin: u64,
    /// Batches of a retired node key past the final head its key change names (only a leaked
    /// retired key signs those): ignored, and counted in `refused_unverified` too when refused
    /// on their claim.
    #[serde(default)]
    pub past_final_head: u64,
    /// Entries skipped as invalid (redacted ones not counted).
    pub skipped_entries: u64,
    /// Forks found.
    pub forks: u64,
    /// Held batches dropped because the window was full.
    pub held_dropped: u64,
    /// Tags of other origins not kept: their origin was at [`MAX_TAGS_PER_ORIGIN`].
    #[serde(default)]
    pub tags_over_bound: u64,
    /// Own outbox entries dropped unsigned: adds that expired while waiting, or entries under a
    /// damaged key. Records never stage an entry the rules refuse, so this stays 0 otherwise.
    pub outbox_dropped: u64,
}

/// What forwarded fork evidence did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkOutcome {
    /// New: the generation is frozen and the evidence kept (forward it).
    Recorded,
    /// New, but the origin (or the node) is at its evidence limit: not kept and not forwarded,
    /// so one member's stream of forks cannot flood the federation. A generation this node
    /// holds batches of is frozen all the same; one it holds nothing of is left without a chain
    /// record, so such evidence creates no state.
    OverLimit {
        /// The signer, when it is past its own limit with a fork of a generation nothing here
        /// named yet: it has equivocated more often than the limit allows, so penalise it. Not
        /// the relay, which may be honest: nodes fill their limits in different orders.
        penalise: Option<[u8; 32]>,
    },
    /// Held already, or the generation was frozen before the contested seq. Decided on what
    /// the evidence claims, before its signatures are checked, when this node holds evidence
    /// of that position or froze the generation before it already.
    Known,
    /// About an origin outside this node's roster (see [`IngestOutcome::UnknownOrigin`]):
    /// ignored before any signature check, not the fault of a relay on another roster.
    UnknownOrigin,
    /// Not evidence of a fork (penalise the sender).
    Invalid(ForkError),
}

/// A change to an alert, sent to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    /// The alert after the change.
    pub alert: Alert,
    /// The seq of its event in the event log (`E`), written in the same write.
    pub seq: u64,
}

/// Events the alert event log keeps (a ring; see [`Engine::set_event_log_keep`]).
pub const EVENT_LOG_KEEP: u64 = 100_000;
/// The fewest events the log may be set to keep.
pub const MIN_EVENT_LOG_KEEP: u64 = 16;

/// Where the engine announces alert changes once they are committed. The daemon forwards them
/// to its subscribers; the engine itself knows no channel. It must not block.
pub struct AlertSink(Box<dyn FnMut(AlertEvent) + Send>);

impl AlertSink {
    /// A sink calling `announce` for each change.
    pub fn new(announce: impl FnMut(AlertEvent) + Send + 'static) -> Self {
        Self(Box::new(announce))
    }
}

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertSink")
    }
}

/// The engine. One per node; not shared between threads without a lock.
#[derive(Debug)]
pub struct Engine {
    /// The data directory: owner-only.
    dir: std::path::PathBuf,
    store: Store,
    own_log: OwnLog,
    config: EngineConfig,
    epoch_key: EpochKey,
    roster: HashMap<[u8; 32], PublicKey>,
    /// The roster's origins resolved to members (`origins.rs`).
    origins: origins::Origins,
    own_key: [u8; 32],
    clock: Arc<dyn Clock>,
    own: OwnFeed,
    /// The last batch appended to the own-feed log: what compaction keeps.
    last_logged: Option<store::own_log::Logged>,
    /// Whether `last_logged` may lie past the store's head (its commit was refused, or not
    /// yet replayed): committed again before anything new is signed (`publish.rs`).
    logged_ahead: bool,
    /// The own-feed log's batches the start could not replay (the disk was full): all of
    /// them are committed, in order, before anything new is signed.
    unreplayed: Vec<store::own_log::Logged>,
    /// The lowest record id that may be issued, and the last id reserved durably (`records.rs`).
    record_ids: records::RecordIds,
    /// Verified batches waiting for their predecessor, bounded per origin and in all.
    held: BTreeMap<BatchId, VerifiedBatch>,
    /// Fork evidence found here and not yet forwarded.
    outgoing_forks: Vec<Vec<u8>>,
    /// Digests of fork evidence checked since start: a copy offered again is known without
    /// verifying it again (cleared when it reaches `MAX_FORK_EVIDENCE` entries).
    known_forks: HashSet<[u8; 32]>,
    counters: Counters,
    restored: bool,
    audit: AuditLog,
    stored_reverifications: std::cell::Cell<u64>,
    alert_sink: Option<AlertSink>,
    /// The takedown facts' key and the peers' clock-skew samples (`takedowns.rs`).
    facts: takedowns::Facts,
    /// The rotation under way, as stored (`rotation.rs`).
    rotation: Option<rotation::RotationPlan>,
    /// What the last open did about a new own key (`own_key.rs`).
    own_key_change: Option<OwnKeyChange>,
    /// Test hook: records the next rotation step may still tokenise again before it stops.
    retokenise_budget: Option<usize>,
    /// Republication allowances computed and not yet stored, or found not due, by (origin,
    /// epoch): at most two epochs per member, cleared when the epoch changes.
    allowances: allowance::AllowanceMemo,
    /// How often a quota decision asked whether an epoch is a republication epoch (tests).
    republication_checks: std::cell::Cell<u64>,
    /// Index rows allowance counts looked at since open (tests).
    allowance_rows: std::cell::Cell<u64>,
    /// Origins outside the roster whose live adds are being withdrawn (`X`, `members.rs`).
    withdrawing: HashSet<[u8; 32]>,
    /// How many events the alert event log keeps (`alerts.rs`).
    event_log_keep: u64,
    /// An event was staged since the daemon last asked (`alerts.rs`, `take_events_staged`).
    events_staged: std::cell::Cell<bool>,
}

impl Engine {
    /// Opens the engine over the store in `dir`, replaying the own-feed log, then takes one
    /// bounded rotation step (a changeover that came while the node was stopped).
    pub fn open(dir: &Path, config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        let mut engine = Self::open_without_rotation_step(dir, config, clock)?;
        engine.rotation_step()?;
        Ok(engine)
    }

    /// [`Engine::open`] without its rotation step, which may stage alert events: the daemon
    /// takes the step itself once a new webhook's cursor is settled, so the webhook counts
    /// nothing of this run as history.
    pub fn open_without_rotation_step(
        dir: &Path,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        store::create_private_dir(dir)?;
        let store = Store::open_with_cache(dir, config.store_cache_bytes)?;
        let plan = rotation::stored_plan(&store)?;
        check_epoch(&store, config.epoch, plan.as_ref())?;
        let record_ids = records::resume_record_ids(&store)?;
        // Without the own-feed log (a first start, or a restore that left it out, as the
        // runbook says), events delivered before may not be in this store: a new incarnation.
        let own_log_missing = !dir.join("own-feed.log").exists();
        let (own_log, logged) =
            OwnLog::open(&dir.join("own-feed.log")).map_err(store::Error::Io)?;
        let epoch_key = EpochKey::derive(&config.federation_id, &config.secret, config.epoch);
        let roster = members::accepted_origins(&config.members);
        let own_key = config.key.public_key().to_bytes();
        let withdrawing = members::stored_withdrawals(&store)?;
        let own = store
            .get::<OwnFeed>(&keys::meta(OWN_FEED))?
            .unwrap_or(OwnFeed { generation: 1, ..OwnFeed::default() });
        // Heads written before a routine key change are signed by a key this node retired.
        let earlier_keys = own_key::earlier_keys(&store, &own_key)?;
        let facts = takedowns::Facts::open(&store, &config.key)?;
        let audit = AuditLog::open_after_key_changes(
            &dir.join("audit"),
            config.key.clone(),
            &earlier_keys,
            clock.clone(),
            AuditOptions::default(),
        )?;
        let mut engine = Self {
            dir: dir.to_owned(),
            store,
            own_log,
            config,
            epoch_key,
            roster,
            origins: Default::default(),
            own_key,
            clock,
            own,
            last_logged: logged.last().cloned(),
            logged_ahead: true,
            unreplayed: Vec::new(),
            record_ids,
            held: BTreeMap::new(),
            outgoing_forks: Vec::new(),
            known_forks: HashSet::new(),
            counters: Counters::default(),
            restored: own.seq > 0 && logged.is_empty(),
            audit,
            stored_reverifications: std::cell::Cell::new(0),
            alert_sink: None,
            facts,
            rotation: plan,
            own_key_change: None,
            retokenise_budget: None,
            allowances: Default::default(),
            republication_checks: std::cell::Cell::new(0),
            allowance_rows: std::cell::Cell::new(0),
            withdrawing,
            event_log_keep: EVENT_LOG_KEEP,
            events_staged: std::cell::Cell::new(false),
        };
        engine.resolve_origins();
        // A rotation under way decides the epoch and key; one cut short by a crash resumes.
        engine.adopt_running_epoch();
        engine.replay_logged_at_open(logged)?;
        engine.compact_own_log()?;
        engine.adopt_own_key()?;
        engine.settle_event_incarnation(own_log_missing)?;
        // An origin removed from the roster while the node was stopped is withdrawn by the
        // first `set_members` after open (`withdraw_removed_members`, or the adopted roster's),
        // not here: the configured members may be an older roster file's, and a member that a
        // stored, newer roster added must not lose its adds to it.
        store::make_private(&engine.dir)?;
        // The entries of the store, the own-feed log and the audit log in the data directory
        // are durable before any action is taken: a power loss cannot keep one and lose another.
        store::sync_dir(&engine.dir)?;
        Ok(engine)
    }

    /// Sets where alert changes are announced once committed (replacing any earlier sink).
    pub fn set_alert_sink(&mut self, sink: AlertSink) {
        self.alert_sink = Some(sink);
    }

    /// The engine's counters.
    pub fn counters(&self) -> Counters {
        Counters {
            stored_reverifications: self.stored_reverifications.get(),
            ..self.counters.clone()
        }
    }

    /// The roster's limits in force: retention and quotas.
    pub fn limits(&self) -> EngineLimits {
        EngineLimits {
            max_retention_ms: self.config.max_retention_ms,
            quota_entries_per_day: self.config.quota_entries_per_day,
            quota_bytes_per_day: self.config.quota_bytes_per_day,
        }
    }

    /// Enforces another roster's limits from now on (an adopted roster): records and entries
    /// taken from now on are bounded by them; what is held keeps the expiry it was given.
    pub fn set_limits(&mut self, limits: EngineLimits) {
        self.config.max_retention_ms = limits.max_retention_ms;
        self.config.quota_entries_per_day = limits.quota_entries_per_day;
        self.config.quota_bytes_per_day = limits.quota_bytes_per_day;
    }

    /// The store (read access for tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This node's feed position: (generation, seq).
    pub fn own_head(&self) -> (u32, u64) {
        (self.own.generation, self.own.seq)
    }

    /// The token of a canonical identifier in the current epoch.
    pub fn token(&self, canonical: &Canonical) -> Token {
        self.epoch_key.token(canonical)
    }

    /// Now, by the engine's clock (Unix ms).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The audit log's head: (last seq, last signed seq).
    pub fn audit_position(&self) -> (u64, u64) {
        (self.audit.last_seq(), self.audit.last_signed_seq())
    }

    /// The roster member with this key, as its node key or a retired one (`origins.rs`).
    pub fn member(&self, key: &PublicKey) -> Option<&Member> {
        let member = self.origins.member_key(&key.to_bytes())?;
        self.config.members.iter().find(|m| m.key == member)
    }

    /// Whether `origin` is this node's current own feed (its chain, its position). Whether an
    /// origin is this node at all, under a retired key too, is `origins.is_self`: what matching
    /// and member counts ask.
    pub(crate) fn is_own(&self, origin: &[u8; 32]) -> bool {
        *origin == self.own_key
    }

    /// Whether `origin` is on the current roster.
    fn is_member(&self, origin: &[u8; 32]) -> bool {
        self.roster.contains_key(origin)
    }

    /// A stored batch, verified again on the way out of the store (data is checked after read).
    /// It was verified against the roster when it came in; here it is checked against its own
    /// key, so that the batches of a member since removed from the roster still read (and
    /// expire) as they should.
    fn stored_batch(&self, txn: &Txn<'_>, id: &BatchId) -> Result<Option<VerifiedBatch>> {
        let Some(wire) = txn.get_raw(&keys::batch(id))? else {
            return Ok(None);
        };
        self.stored_reverifications.set(self.stored_reverifications.get() + 1);
        let origins = StoredOrigin { roster: &self.roster, origin: *id.origin() };
        match verify_batch(&wire, &self.config.federation_id, &origins) {
            Ok(batch) if batch.id() == *id => Ok(Some(batch)),
            _ => Err(store::Error::Corrupt { prefix: char::from(keys::prefix::BATCH) }.into()),
        }
    }

    /// The chain record of `feed` (default: empty), as `txn` sees it.
    fn chain_in(&self, txn: &Txn<'_>, feed: &FeedId) -> Result<store::ChainRecord> {
        Ok(txn.get(&keys::chain(feed))?.unwrap_or_default())
    }

    /// Takes the next value of a counter kept in the metadata.
    fn next_counter(&self, txn: &mut Txn<'_>, name: &str) -> Result<u64> {
        let next = txn.get::<u64>(&keys::meta(name))?.unwrap_or(0) + 1;
        txn.put(keys::meta(name), &next);
        Ok(next)
    }
}

/// The one key a stored batch is checked against: the origin it is stored under, whether or not
/// that origin is still on the roster (the batch was verified against the roster of its day).
struct StoredOrigin<'a> {
    roster: &'a HashMap<[u8; 32], PublicKey>,
    origin: [u8; 32],
}

impl OriginKeys for StoredOrigin<'_> {
    fn origin_key(&self, kid: &[u8; 32]) -> Option<PublicKey> {
        if *kid != self.origin {
            return None;
        }
        self.roster.get(kid).copied().or_else(|| PublicKey::from_bytes(kid).ok())
    }
}

/// Metadata names of the counters and of the own feed's position.
const RECORD_COUNTER: &str = "record";
/// Metadata name of the last record id reserved durably (see `reserve_record_ids`).
const RECORD_IDS_RESERVED: &str = "record-reserved";
/// Record ids reserved per durable write: one extra sync per this many adds, and at most this
/// many ids skipped at a restart.
pub const RECORD_IDS_RESERVED_AT_ONCE: u64 = 1024;
const OUTBOX_COUNTER: &str = "outbox";
const ALERT_COUNTER: &str = "alert";
const OWN_FEED: &str = "own";
const EPOCH: &str = "epoch";

/// Refuses to run under `epoch` while the store holds records of another, unless a rotation
/// between the two is under way (its plan then decides the epoch the node runs under). The
/// store notes the epoch its records were tokenised under (`m`/`epoch`); a store from before
/// that note is judged by its oldest record.
fn check_epoch(store: &Store, epoch: u32, plan: Option<&rotation::RotationPlan>) -> Result<()> {
    let noted: Option<u32> = store.get(&keys::meta(EPOCH))?;
    if let Some(plan) = plan {
        // Once the old epoch is purged, the plan no longer holds the new secret: the
        // configuration must.
        let done = plan.stage == rotation::Stage::Done;
        if epoch == plan.new_epoch || (epoch == plan.old_epoch && !done) {
            return Ok(());
        }
        let stored = noted.unwrap_or(plan.old_epoch);
        return Err(Error::EpochChanged { stored, configured: epoch });
    }
    let stored = match noted {
        Some(noted) => noted,
        None => store
            .scan_first::<store::Record>(&keys::all_records(), 1)?
            .first()
            .and_then(|(_, record)| record.identifiers.first().map(|i| i.epoch))
            .unwrap_or(epoch),
    };
    if stored != epoch && store.any_with_prefix(&keys::all_records())? {
        return Err(Error::EpochChanged { stored, configured: epoch });
    }
    if noted != Some(epoch) {
        let mut txn = store.txn();
        txn.put(keys::meta(EPOCH), &epoch);
        txn.commit_durable()?;
    }
    Ok(())
}

/// Writes a batch's wire form with its hash and location indexes.
fn put_stored_batch(txn: &mut Txn<'_>, batch: &VerifiedBatch) {
    let id = batch.id();
    txn.put_raw(keys::batch(&id), batch.to_wire());
    txn.put_raw(keys::batch_hash(&id), batch.hash().0.to_vec());
    txn.put(
        keys::batch_location(&batch.hash()),
        &store::BatchLocation {
            origin: *id.origin(),
            generation: id.generation(),
            seq: id.seq,
            complete: batch.is_complete(),
        },
    );
}
