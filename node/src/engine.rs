//! The matching engine: local records, the publisher, ingest of remote batches, alerts and
//! retention. Synchronous and free of networking: the daemon drives it from blocking tasks, and
//! tests drive it directly with an injected clock.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use crossmatch_protocol::limits::{MAX_BATCH_BYTES, MAX_ENTRIES_PER_BATCH};
use crossmatch_protocol::{
    Add, BatchError, BatchHash, BatchPosition, Canonical, Entry, EntryProblem, EpochKey,
    Evaluation, FederationId, FederationSecret, ForkError, Handling, Op, Position, PublicKey,
    Retract, RetractReason, SigningKey, Status, StatusUpdate, Token, VerifiedBatch,
    claimed_batch_hash, encode_fork_evidence, fork_evidence_manifests, position, sign_batch,
    verify_batch, verify_fork_evidence,
};
use serde::{Deserialize, Serialize};

use crate::audit::{Action, AuditError, AuditLog, AuditOptions, AuditSubject, AuditUser};
use crate::clock::{Clock, DAY_MS};
use crate::store::{
    self, Alert, AlertState, BatchLocation, ChainRecord, Counterpart, ForkEvidence, OutboxItem,
    OwnLog, Quota, Record, RecordId, RemoteAdd, Store, StoredIdentifier, Txn, keys,
};

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
    /// Expiry must lie in the future and within the retention limit.
    #[error("expiry must be in the future and at most {max_days} days ahead")]
    Expiry {
        /// The limit in days.
        max_days: u64,
    },
    /// Category outside its alphabet or length.
    #[error("category must be 1-64 of a-z 0-9 _ . / - starting with a letter or digit")]
    Category,
    /// No such record.
    #[error("no record {0}")]
    NoRecord(RecordId),
    /// The audit log refused or failed; the action was not taken.
    #[error(transparent)]
    Audit(#[from] AuditError),
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
        /// Origin.
        origin: PublicKey,
        /// Generation.
        generation: u32,
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
    /// Over the origin's daily quota: refused, nothing stored.
    QuotaExceeded,
    /// Refused as a whole.
    Rejected(BatchError),
    /// A gossiped batch with a redacted or altered entry: refused (only sync may carry
    /// redactions, and nobody may carry altered entries).
    IncompleteGossip,
}

/// What a `range` answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RangeOutcome {
    /// Batches applied (held successors included).
    pub applied: usize,
    /// A batch did not verify or was not the one asked for: penalise the peer.
    pub mismatch: bool,
}

/// A peer's signed head that lies beyond this node's copy of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadClaim {
    /// Origin key.
    pub origin: [u8; 32],
    /// Generation.
    pub generation: u32,
    /// First seq this node lacks.
    pub from_seq: u64,
    /// The peer's head seq.
    pub to_seq: u64,
    /// The chain is this node's own feed (recovery).
    pub own: bool,
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
    /// Duplicates seen.
    pub duplicates: u64,
    /// Batches rejected.
    pub rejected: u64,
    /// Batches refused over quota.
    pub quota_refused: u64,
    /// Entries skipped as invalid (redacted ones not counted).
    pub skipped_entries: u64,
    /// Forks found.
    pub forks: u64,
    /// Held batches dropped because the window was full.
    pub held_dropped: u64,
}

/// What forwarded fork evidence did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkOutcome {
    /// New: the generation is frozen and the evidence kept (forward it).
    Recorded,
    /// New, and the generation is frozen, but the origin (or the node) is at its evidence
    /// limit: not kept, and not forwarded, so one member's stream of forks cannot flood the
    /// federation.
    OverLimit,
    /// Held already, or the generation was frozen before the contested seq.
    Known,
    /// Not evidence of a fork (penalise the sender).
    Invalid(ForkError),
}

/// A change to an alert, sent to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    /// The alert after the change.
    pub alert: Alert,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
struct OwnFeed {
    generation: u32,
    seq: u64,
    hash: BatchHash,
    outbox_last: u64,
}

/// The engine. One per node; not shared between threads without a lock.
#[derive(Debug)]
pub struct Engine {
    store: Store,
    own_log: OwnLog,
    config: EngineConfig,
    epoch_key: EpochKey,
    roster: HashMap<[u8; 32], PublicKey>,
    own_key: [u8; 32],
    clock: Arc<dyn Clock>,
    own: OwnFeed,
    /// The last batch appended to the own-feed log: what compaction keeps.
    last_logged: Option<store::own_log::Logged>,
    held: BTreeMap<([u8; 32], u32, u64), VerifiedBatch>,
    /// Fork evidence found here and not yet forwarded.
    outgoing_forks: Vec<Vec<u8>>,
    /// Digests of fork evidence checked since start: a copy offered again is known without
    /// verifying it again (cleared when it reaches `MAX_FORK_EVIDENCE` entries).
    known_forks: std::collections::HashSet<[u8; 32]>,
    counters: Counters,
    restored: bool,
    audit: AuditLog,
    stored_reverifications: std::cell::Cell<u64>,
    alert_sink: Option<AlertSink>,
}

/// What applying a batch's entries left to do when the batch is stored.
#[derive(Debug, Default)]
struct Applied {
    /// Entries to store as `null`.
    redact: Vec<usize>,
    /// When to redact the others.
    expiries: Expiries,
    /// Alert changes to announce after the commit.
    events: Vec<AlertEvent>,
}

/// Where this node's own live `add` of a token sits in its own feed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct OwnAdd {
    generation: u32,
    seq: u64,
    index: u32,
}

/// The entries of one batch grouped by the time they expire: one index key per distinct time,
/// so a batch from one import costs one key, not one per entry.
#[derive(Debug, Default)]
struct Expiries(BTreeMap<u64, Vec<u32>>);

impl Expiries {
    fn add(&mut self, at_ms: u64, index: usize) {
        self.0.entry(at_ms).or_default().push(index as u32);
    }

    /// Adds the groups to the batch's expiry keys (merging with groups already there).
    fn write(self, txn: &mut Txn<'_>, origin: &[u8; 32], generation: u32, seq: u64) -> Result<()> {
        for (at_ms, mut indices) in self.0 {
            let key = keys::expiry(at_ms, origin, generation, seq);
            let mut merged: Vec<u32> = txn.get(&key)?.unwrap_or_default();
            merged.append(&mut indices);
            merged.sort_unstable();
            merged.dedup();
            txn.put(key, &merged);
        }
        Ok(())
    }
}

/// Writes a batch's wire form with its hash and location indexes.
fn put_stored_batch(txn: &mut Txn<'_>, batch: &VerifiedBatch) {
    let origin = batch.origin().to_bytes();
    let header = batch.header();
    txn.put_raw(keys::batch(&origin, header.generation, header.seq), batch.to_wire());
    txn.put_raw(keys::batch_hash(&origin, header.generation, header.seq), batch.hash().0.to_vec());
    txn.put(
        keys::batch_location(&batch.hash()),
        &BatchLocation {
            origin,
            generation: header.generation,
            seq: header.seq,
            complete: batch.is_complete(),
        },
    );
}

fn random_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    // The OS random source does not fail on supported platforms; a zero salt would only make
    // two equal entries share a digest.
    let _ = getrandom::fill(&mut salt);
    salt
}

impl Engine {
    /// Opens the engine over the store in `dir`, replaying the own-feed log.
    pub fn open(dir: &Path, config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(store::Error::Io)?;
        let store = Store::open(dir)?;
        let (own_log, logged) =
            OwnLog::open(&dir.join("own-feed.log")).map_err(store::Error::Io)?;
        let epoch_key = EpochKey::derive(&config.federation_id, &config.secret, config.epoch);
        let roster = config.members.iter().map(|m| (m.key.to_bytes(), m.key)).collect();
        let own_key = config.key.public_key().to_bytes();
        let own = store
            .get::<OwnFeed>(&keys::meta("own"))?
            .unwrap_or(OwnFeed { generation: 1, ..OwnFeed::default() });
        let audit = AuditLog::open(
            &dir.join("audit"),
            config.key.clone(),
            clock.clone(),
            AuditOptions::default(),
        )?;
        let mut engine = Self {
            store,
            own_log,
            config,
            epoch_key,
            roster,
            own_key,
            clock,
            own,
            last_logged: logged.last().cloned(),
            held: BTreeMap::new(),
            outgoing_forks: Vec::new(),
            known_forks: std::collections::HashSet::new(),
            counters: Counters::default(),
            restored: own.seq > 0 && logged.is_empty(),
            audit,
            stored_reverifications: std::cell::Cell::new(0),
            alert_sink: None,
        };
        engine.replay_own_log(logged)?;
        engine.compact_own_log()?;
        Ok(engine)
    }

    /// Shrinks the own-feed log to its last batch once the store holds everything durably.
    fn compact_own_log(&mut self) -> Result<()> {
        self.store.flush()?;
        self.own_log.compact(self.last_logged.as_ref()).map_err(store::Error::Io)?;
        Ok(())
    }

    /// Batches that reached the fsynced log but not the store (a crash in between) are applied.
    fn replay_own_log(&mut self, logged: Vec<store::own_log::Logged>) -> Result<()> {
        for record in logged {
            let Ok(batch) = verify_batch(&record.wire, &self.config.federation_id, &self.roster)
            else {
                continue;
            };
            let header = batch.header();
            let ahead = (header.generation, header.seq) > (self.own.generation, self.own.seq);
            if batch.origin().to_bytes() == self.own_key && ahead {
                let store = self.store.clone();
                let mut txn = store.txn();
                self.record_own_batch(&mut txn, &batch, record.outbox_last)?;
                txn.commit_durable()?;
            }
        }
        Ok(())
    }

    /// The engine's counters.
    pub fn counters(&self) -> Counters {
        Counters {
            stored_reverifications: self.stored_reverifications.get(),
            ..self.counters.clone()
        }
    }

    /// A stored batch, verified again on the way out of the store (data is checked after read).
    fn stored_batch(
        &self,
        txn: &Txn<'_>,
        origin: &[u8; 32],
        generation: u32,
        seq: u64,
    ) -> Result<Option<VerifiedBatch>> {
        let Some(wire) = txn.get_raw(&keys::batch(origin, generation, seq))? else {
            return Ok(None);
        };
        self.stored_reverifications.set(self.stored_reverifications.get() + 1);
        match verify_batch(&wire, &self.config.federation_id, &self.roster) {
            Ok(batch) => Ok(Some(batch)),
            Err(_) => Err(store::Error::Corrupt { prefix: 'b' }.into()),
        }
    }

    /// The store (read access for the API and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This node's feed position: (generation, seq).
    pub fn own_head(&self) -> (u32, u64) {
        (self.own.generation, self.own.seq)
    }

    /// Sets where alert changes are announced once committed (replacing any earlier sink).
    pub fn set_alert_sink(&mut self, sink: AlertSink) {
        self.alert_sink = Some(sink);
    }

    /// The token of a canonical identifier in the current epoch.
    pub fn token(&self, canonical: &Canonical) -> Token {
        self.epoch_key.token(canonical)
    }

    fn next_counter(&self, txn: &mut Txn<'_>, name: &str) -> Result<u64> {
        let next = txn.get::<u64>(&keys::meta(name))?.unwrap_or(0) + 1;
        txn.put(keys::meta(name), &next);
        Ok(next)
    }

    fn enqueue(&self, txn: &mut Txn<'_>, op: Op) -> Result<()> {
        let seq = self.next_counter(txn, "outbox")?;
        let entry = Entry { salt: random_salt(), op };
        txn.put(keys::outbox(seq), &OutboxItem { epoch: self.config.epoch, entry: entry.encode() });
        Ok(())
    }

    /// The `add` a shared record makes of one of its identifiers.
    fn add_of(&self, record: &Record, identifier: &StoredIdentifier) -> Result<Add> {
        let corrupt = || store::Error::Corrupt { prefix: 'r' };
        let canonical: Canonical = identifier.canonical.parse().map_err(|_| corrupt())?;
        Ok(Add {
            token: identifier.token,
            kind: canonical.kind(),
            category: record.category.clone(),
            handling: record.handling.parse().map_err(|_| corrupt())?,
            evaluation: record.evaluation.parse().map_err(|_| corrupt())?,
            activity_per_day: record.activity_per_day,
            expires_at_ms: record.expires_at_ms,
        })
    }

    /// The shared records holding `token`.
    fn shared_holders(&self, txn: &Txn<'_>, token: &Token) -> Result<Vec<Record>> {
        let mut shared = Vec::new();
        for (key, ()) in txn.scan::<()>(&keys::holdings(token))? {
            let id = u64::from_be_bytes(key[33..41].try_into().unwrap_or_default());
            if let Some(record) = txn.get::<Record>(&keys::record(id))?
                && record.shared
            {
                shared.push(record);
            }
        }
        Ok(shared)
    }

    /// Adds a local record: writes it, its holdings and (if shared, H0–H2) its outbox entries in
    /// one atomic, flushed write, then matches it against what other origins hold. Durable
    /// against a process crash when it returns.
    pub fn add_record(&mut self, new: NewRecord, user: &str) -> Result<RecordId> {
        let user = AuditUser::new(user)?;
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let (record, events) = self.stage_record(&mut txn, new, &user, now)?;
        // Audit first: a crash can leave an audit line for an action that did not complete,
        // never an action without its audit line.
        let action = if record.shared { Action::Share } else { Action::Watch };
        self.audit.append(&user, action, &AuditSubject::record(record.id))?;
        txn.commit_durable()?;
        self.notify(events);
        Ok(record.id)
    }

    /// Adds many records in one atomic, flushed write with one `import` audit line: the bulk
    /// path for imports. All or nothing: one invalid record refuses the whole set.
    pub fn add_records(&mut self, records: Vec<NewRecord>, user: &str) -> Result<Vec<RecordId>> {
        let user = AuditUser::new(user)?;
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let mut ids = Vec::with_capacity(records.len());
        let mut events = Vec::new();
        for new in records {
            let (record, record_events) = self.stage_record(&mut txn, new, &user, now)?;
            ids.push(record.id);
            events.extend(record_events);
        }
        let subject = AuditSubject::new(&format!("records:{}", ids.len()))?;
        self.audit.append(&user, Action::Import, &subject)?;
        txn.commit_durable()?;
        self.notify(events);
        Ok(ids)
    }

    /// Validates a record and stages it, its holdings, its outbox entries and its alerts.
    fn stage_record(
        &self,
        txn: &mut Txn<'_>,
        new: NewRecord,
        user: &AuditUser,
        now: u64,
    ) -> Result<(Record, Vec<AlertEvent>)> {
        if new.identifiers.is_empty() {
            return Err(Error::NoIdentifiers);
        }
        if new.expires_at_ms <= now || new.expires_at_ms - now > self.config.max_retention_ms {
            return Err(Error::Expiry { max_days: self.config.max_retention_ms / DAY_MS });
        }
        if !crossmatch_protocol::is_valid_category(&new.category) {
            return Err(Error::Category);
        }
        let share = new.share && new.handling != Handling::H3;
        let id = self.next_counter(txn, "record")?;
        let mut identifiers = Vec::new();
        for canonical in &new.identifiers {
            let token = self.token(canonical);
            if identifiers.iter().any(|i: &StoredIdentifier| i.token == token) {
                continue;
            }
            // The federation learns of a token once, and again whenever a new record keeps it
            // longer than the records already sharing it.
            let held_until =
                self.shared_holders(txn, &token)?.iter().map(|r| r.expires_at_ms).max();
            if share && held_until.is_none_or(|until| new.expires_at_ms > until) {
                self.enqueue(
                    txn,
                    Op::Add(Add {
                        token,
                        kind: canonical.kind(),
                        category: new.category.clone(),
                        handling: new.handling,
                        evaluation: new.evaluation,
                        activity_per_day: new.activity_per_day,
                        expires_at_ms: new.expires_at_ms,
                    }),
                )?;
            }
            identifiers.push(StoredIdentifier {
                canonical: canonical.to_string(),
                token,
                epoch: self.config.epoch,
            });
        }
        let record = Record {
            id,
            identifiers,
            category: new.category,
            handling: new.handling.as_str().to_owned(),
            evaluation: new.evaluation.to_string(),
            notes: new.notes,
            activity_per_day: new.activity_per_day,
            expires_at_ms: new.expires_at_ms,
            shared: share,
            created_at_ms: now,
            created_by: user.as_str().to_owned(),
        };
        txn.put(keys::record(id), &record);
        txn.put(keys::record_expiry(record.expires_at_ms, id), &());
        let mut events = Vec::new();
        for identifier in &record.identifiers {
            txn.put(keys::holding(&identifier.token, id), &());
            events.extend(self.refresh_alert(txn, &identifier.token, now, true)?);
        }
        Ok((record, events))
    }

    /// Removes a local record; a token no shared record holds any more is retracted.
    pub fn remove_record(&mut self, id: RecordId, reason: RetractReason, user: &str) -> Result<()> {
        let user = AuditUser::new(user)?;
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let record: Record = txn.get(&keys::record(id))?.ok_or(Error::NoRecord(id))?;
        txn.remove(keys::record(id));
        txn.remove(keys::record_expiry(record.expires_at_ms, id));
        let mut events = Vec::new();
        for identifier in &record.identifiers {
            txn.remove(keys::holding(&identifier.token, id));
            if record.shared {
                let remaining = self.shared_holders(&txn, &identifier.token)?;
                match remaining.iter().max_by_key(|r| r.expires_at_ms) {
                    None => self.enqueue(
                        &mut txn,
                        Op::Retract(Retract { token: identifier.token, reason }),
                    )?,
                    // The federation was told of a later expiry than is now held: correct it.
                    Some(longest) if longest.expires_at_ms < record.expires_at_ms => {
                        let add = self.add_of(longest, identifier)?;
                        self.enqueue(&mut txn, Op::Add(add))?;
                    }
                    Some(_) => {}
                }
            }
            events.extend(self.refresh_alert(&mut txn, &identifier.token, now, false)?);
        }
        let action = if record.shared { Action::Retract } else { Action::Unwatch };
        self.audit.append(&user, action, &AuditSubject::record(id))?;
        txn.commit_durable()?;
        self.notify(events);
        Ok(())
    }

    /// Publishes a referral or takedown status for every token of a shared record.
    pub fn set_status(&mut self, id: RecordId, status: Status, user: &str) -> Result<()> {
        let user = AuditUser::new(user)?;
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let record: Record = txn.get(&keys::record(id))?.ok_or(Error::NoRecord(id))?;
        if record.shared {
            for identifier in &record.identifiers {
                self.enqueue(
                    &mut txn,
                    Op::Status(StatusUpdate { token: identifier.token, status, at_ms: now }),
                )?;
            }
        }
        self.audit.append(&user, Action::Status, &AuditSubject::record(id))?;
        txn.commit_durable()?;
        Ok(())
    }

    /// Number of entries waiting to be published.
    pub fn outbox_len(&self) -> Result<usize> {
        Ok(self.store.scan_keys(b"o")?.len())
    }

    /// Starts a new generation of the own feed (after a fork of it, or when its history cannot
    /// be confirmed). Its first batch names the last batch this node knew in `prev`.
    pub fn start_new_generation(&mut self) -> Result<u32> {
        self.own.generation += 1;
        self.own.seq = 0;
        let mut txn = self.store.txn();
        txn.put(keys::meta("own"), &self.own);
        txn.commit_durable()?;
        Ok(self.own.generation)
    }

    /// Drains the outbox into signed batches: each is appended to the fsynced own-feed log, then
    /// recorded in the store, then returned for publishing.
    pub fn publish(&mut self) -> Result<Vec<VerifiedBatch>> {
        self.publish_batches(usize::MAX)
    }

    /// As [`Engine::publish`], stopping after `limit` batches so a caller holding a lock over
    /// the engine can let other work in between.
    pub fn publish_batches(&mut self, limit: usize) -> Result<Vec<VerifiedBatch>> {
        let mut published = Vec::new();
        while published.len() < limit {
            // One batch's worth at most: the outbox can hold a whole import.
            let items = self.store.scan_first::<OutboxItem>(b"o", MAX_ENTRIES_PER_BATCH + 1)?;
            let Some((_, first)) = items.first() else { break };
            let epoch = first.epoch;
            let mut entries = Vec::new();
            let mut outbox_last = 0;
            // Wire overhead: manifest (~200 bytes) + per entry its bytes, digest and framing.
            let mut bytes = 512;
            let now = self.clock.now_ms();
            for (key, item) in &items {
                let seq = u64::from_be_bytes(key[1..9].try_into().unwrap_or_default());
                let Ok(entry) = Entry::decode(&item.entry, now) else {
                    // An own entry that no longer fits the rules at signing time (an add that
                    // expired while waiting) is dropped from the outbox.
                    let mut txn = self.store.txn();
                    txn.remove(key.clone());
                    txn.commit()?;
                    continue;
                };
                let cost = item.entry.len() + 32 + 8;
                if item.epoch != epoch
                    || entries.len() == MAX_ENTRIES_PER_BATCH
                    || bytes + cost > MAX_BATCH_BYTES
                {
                    break;
                }
                bytes += cost;
                entries.push(entry);
                outbox_last = seq;
            }
            if entries.is_empty() {
                continue;
            }
            let batch_position = BatchPosition {
                generation: self.own.generation,
                seq: self.own.seq + 1,
                prev: self.own.hash,
                epoch,
                created_at_ms: now,
            };
            let Ok(batch) =
                sign_batch(&self.config.key, &self.config.federation_id, batch_position, &entries)
            else {
                break;
            };
            let wire = batch.to_wire();
            self.own_log.append(outbox_last, &wire).map_err(store::Error::Io)?;
            self.last_logged = Some(store::own_log::Logged { outbox_last, wire });
            let store = self.store.clone();
            let mut txn = store.txn();
            self.record_own_batch(&mut txn, &batch, outbox_last)?;
            txn.commit_durable()?;
            published.push(batch);
        }
        Ok(published)
    }

    fn record_own_batch(
        &mut self,
        txn: &mut Txn<'_>,
        batch: &VerifiedBatch,
        outbox_last: u64,
    ) -> Result<()> {
        let header = batch.header();
        let consumed = outbox_last.saturating_add(1);
        for key in self.store.range_keys(&keys::outbox(0), &keys::outbox(consumed), usize::MAX)? {
            txn.remove(key);
        }
        let all: Vec<usize> = (0..header.entry_digests.len()).collect();
        let Applied { redact, expiries, .. } =
            self.apply_entries(txn, batch, &all, header.created_at_ms)?;
        expiries.write(txn, &self.own_key, header.generation, header.seq)?;
        // Peers get the complete batch; this node keeps it without what it already retracted.
        put_stored_batch(txn, &batch.redacted(&redact));
        txn.put(
            keys::chain(&self.own_key, header.generation),
            &ChainRecord { seq: header.seq, hash: batch.hash(), ..ChainRecord::default() },
        );
        self.own = OwnFeed {
            generation: header.generation,
            seq: header.seq,
            hash: batch.hash(),
            outbox_last,
        };
        txn.put(keys::meta("own"), &self.own);
        Ok(())
    }

    /// Ingests a batch's wire form from the network: verify, place in its chain, apply.
    pub fn ingest(&mut self, wire: &[u8]) -> Result<IngestOutcome> {
        self.ingest_wire(wire, false)
    }

    /// Shared by sync and gossip: count, skip what is held complete already, verify once, and
    /// for gossip refuse anything but the intact batch its origin signed.
    fn ingest_wire(&mut self, wire: &[u8], gossip: bool) -> Result<IngestOutcome> {
        self.counters.received += 1;
        if self.held_complete(wire)?.is_some() {
            // Held complete already: nothing this copy could add, no verification spent.
            self.counters.duplicates += 1;
            return Ok(IngestOutcome::Duplicate { filled: 0 });
        }
        self.counters.verifications += 1;
        match verify_batch(wire, &self.config.federation_id, &self.roster) {
            Ok(batch) if !gossip || batch.is_intact() => self.ingest_verified(batch),
            Ok(_) => {
                self.counters.rejected += 1;
                Ok(IngestOutcome::IncompleteGossip)
            }
            Err(error) => {
                self.counters.rejected += 1;
                Ok(IngestOutcome::Rejected(error))
            }
        }
    }

    /// Where the batch `wire` claims to be is stored, if it is stored complete already: then no
    /// copy can add anything, and no signature verification is spent on it.
    fn held_complete(&self, wire: &[u8]) -> Result<Option<BatchLocation>> {
        let Some(hash) = claimed_batch_hash(wire, &self.config.federation_id) else {
            return Ok(None);
        };
        let location: Option<BatchLocation> = self.store.get(&keys::batch_location(&hash))?;
        Ok(location.filter(|location| location.complete))
    }

    /// Ingests a batch received by gossip: as [`Engine::ingest`], but a batch with a redacted
    /// entry, or an entry that does not match its digest, is refused: gossip carries exactly
    /// what the origin signed (only sync may carry redactions).
    pub fn ingest_gossip(&mut self, wire: &[u8]) -> Result<IngestOutcome> {
        self.ingest_wire(wire, true)
    }

    /// Judges a head a peer claims, given as its signed manifest: `Some` when it verifies and
    /// lies beyond what this node holds of that chain (so a range should be fetched), `None`
    /// otherwise. An unsigned or unverifiable claim counts for nothing.
    pub fn head_ahead(&self, manifest: &[u8]) -> Result<Option<HeadClaim>> {
        let Ok((origin, header, _)) = crossmatch_protocol::verify_manifest(
            manifest,
            &self.config.federation_id,
            &self.roster,
        ) else {
            return Ok(None);
        };
        let origin = origin.to_bytes();
        let chain: ChainRecord =
            self.store.get(&keys::chain(&origin, header.generation))?.unwrap_or_default();
        // Past a proved fork there is nothing to fetch.
        let to_seq = chain.limit().map_or(header.seq, |limit| header.seq.min(limit));
        let ahead = !chain.frozen && to_seq > chain.seq;
        Ok(ahead.then_some(HeadClaim {
            origin,
            generation: header.generation,
            from_seq: chain.seq + 1,
            to_seq,
            own: origin == self.own_key,
        }))
    }

    /// True when the store holds own-feed batches the own-feed log does not: the store came
    /// from a backup (or the log was lost), so what this node signed after it is unknown.
    pub fn restored_from_backup(&self) -> bool {
        self.restored
    }

    /// Whether this node has ever signed a batch (its own feed is not empty).
    pub fn has_own_feed(&self) -> bool {
        self.own.seq > 0 || self.own.generation > 1
    }

    /// Ingests a `range` answer: batches `from_seq`, `from_seq + 1`, … of (origin, generation),
    /// as sync (redacted entries allowed). Stops at the first batch that does not verify or is
    /// not the one asked for, and reports it, so the caller penalises the peer that served it.
    pub fn ingest_range(
        &mut self,
        origin: &[u8; 32],
        generation: u32,
        from_seq: u64,
        wires: &[Vec<u8>],
    ) -> Result<RangeOutcome> {
        let mut outcome = RangeOutcome::default();
        for (offset, wire) in wires.iter().enumerate() {
            let expected = (*origin, generation, from_seq + offset as u64);
            self.counters.received += 1;
            if let Some(location) = self.held_complete(wire)? {
                if (location.origin, location.generation, location.seq) != expected {
                    outcome.mismatch = true;
                    break;
                }
                self.counters.duplicates += 1;
                continue;
            }
            self.counters.verifications += 1;
            let Ok(batch) = verify_batch(wire, &self.config.federation_id, &self.roster) else {
                self.counters.rejected += 1;
                outcome.mismatch = true;
                break;
            };
            let header = batch.header();
            if (batch.origin().to_bytes(), header.generation, header.seq) != expected {
                outcome.mismatch = true;
                break;
            }
            if let IngestOutcome::Applied { applied } = self.ingest_verified(batch)? {
                outcome.applied += applied;
            }
        }
        Ok(outcome)
    }

    /// Every origin's newest head this node holds (its highest generation with a batch), as its
    /// signed manifest: the answer to `heads`. One manifest per roster member at most, so the
    /// answer stays small however many generations an origin starts.
    pub fn heads(&self) -> Result<Vec<Vec<u8>>> {
        let txn = self.store.txn();
        let mut manifests = Vec::new();
        for (origin, generation, seq) in self.head_positions()? {
            if let Some(batch) = self.stored_batch(&txn, &origin.to_bytes(), generation, seq)? {
                manifests.push(batch.manifest_bytes().to_vec());
            }
        }
        Ok(manifests)
    }

    /// Every origin's newest position this node holds: (origin, generation, seq), in origin
    /// order. Contiguous: every batch up to `seq` of that generation is stored.
    pub fn head_positions(&self) -> Result<Vec<(PublicKey, u32, u64)>> {
        let mut newest: BTreeMap<[u8; 32], (u32, u64)> = BTreeMap::new();
        for (key, chain) in self.store.scan::<ChainRecord>(b"c")? {
            let (Ok(origin), Ok(generation)) =
                (<[u8; 32]>::try_from(&key[1..33]), key[33..37].try_into().map(u32::from_be_bytes))
            else {
                continue;
            };
            if chain.seq > 0 {
                newest.insert(origin, (generation, chain.seq));
            }
        }
        Ok(newest
            .into_iter()
            .filter_map(|(origin, (generation, seq))| {
                Some((PublicKey::from_bytes(&origin).ok()?, generation, seq))
            })
            .collect())
    }

    /// Up to `max` stored batches of (origin, generation) from `from_seq` on, in seq order and
    /// at most `max_bytes` in all (at least one batch if any): the answer to `range`.
    pub fn range(
        &self,
        origin: &[u8; 32],
        generation: u32,
        from_seq: u64,
        max: u32,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let mut batches = Vec::new();
        let mut bytes = 0;
        for seq in from_seq..from_seq.saturating_add(u64::from(max)) {
            let Some(wire) = self.store.get_raw(&keys::batch(origin, generation, seq))? else {
                break;
            };
            bytes += wire.len() + 9;
            if bytes > max_bytes && !batches.is_empty() {
                break;
            }
            batches.push(wire);
        }
        Ok(batches)
    }

    /// Ingests a batch that has already been verified.
    pub fn ingest_verified(&mut self, batch: VerifiedBatch) -> Result<IngestOutcome> {
        let origin = batch.origin().to_bytes();
        let header = batch.header().clone();
        let chain: ChainRecord =
            self.store.get(&keys::chain(&origin, header.generation))?.unwrap_or_default();
        if chain.limit().is_some_and(|limit| header.seq > limit) {
            // Past a proved fork of this generation.
            return Ok(IngestOutcome::Ignored);
        }
        let held_at = |seq| -> Option<BatchHash> {
            let bytes =
                self.store.get_raw(&keys::batch_hash(&origin, header.generation, seq)).ok()??;
            Some(BatchHash(bytes.try_into().ok()?))
        };
        match position(&chain.state(), held_at, &header, batch.hash()) {
            Position::Next => {
                if !self.within_quota(&batch)? {
                    self.counters.quota_refused += 1;
                    return Ok(IngestOutcome::QuotaExceeded);
                }
                self.apply(&batch)?;
                let applied = 1 + self.apply_held(origin, header.generation)?;
                Ok(IngestOutcome::Applied { applied })
            }
            Position::Duplicate => {
                self.counters.duplicates += 1;
                let filled = self.fill_holes(&batch)?;
                Ok(IngestOutcome::Duplicate { filled })
            }
            Position::Gap { missing_from, missing_to } => {
                let origin = batch.origin();
                self.hold(batch);
                Ok(IngestOutcome::Gap {
                    origin,
                    generation: header.generation,
                    missing_from,
                    missing_to,
                })
            }
            Position::Fork { seq, ours } => {
                self.record_fork(&batch, seq, ours)?;
                Ok(IngestOutcome::Fork { seq })
            }
            Position::Frozen | Position::Unjudgeable => Ok(IngestOutcome::Ignored),
        }
    }

    fn hold(&mut self, batch: VerifiedBatch) {
        let origin = batch.origin().to_bytes();
        let key = (origin, batch.header().generation, batch.header().seq);
        let per_origin = self.held.keys().filter(|(o, _, _)| *o == origin).count();
        if self.held.contains_key(&key) {
            return;
        }
        if per_origin >= MAX_HELD_PER_ORIGIN || self.held.len() >= MAX_HELD_TOTAL {
            self.counters.held_dropped += 1;
            return;
        }
        self.held.insert(key, batch);
    }

    /// Applies the held successor of the chain's head, if any; applying it applies its own
    /// held successor in turn (at most `MAX_HELD_PER_ORIGIN` deep).
    fn apply_held(&mut self, origin: [u8; 32], generation: u32) -> Result<usize> {
        let chain: ChainRecord =
            self.store.get(&keys::chain(&origin, generation))?.unwrap_or_default();
        let mut applied = 0;
        if let Some(batch) = self.held.remove(&(origin, generation, chain.seq + 1))
            && let IngestOutcome::Applied { applied: n } = self.ingest_verified(batch)?
        {
            applied = n;
        }
        // Drop held batches the chain has moved past.
        let chain: ChainRecord =
            self.store.get(&keys::chain(&origin, generation))?.unwrap_or_default();
        self.held.retain(|(o, g, s), _| !(*o == origin && *g == generation && *s <= chain.seq));
        Ok(applied)
    }

    fn within_quota(&self, batch: &VerifiedBatch) -> Result<bool> {
        let origin = batch.origin().to_bytes();
        if origin == self.own_key {
            return Ok(true);
        }
        let day = (self.clock.now_ms() / DAY_MS) as u32;
        let used: Quota = self.store.get(&keys::quota(&origin, day))?.unwrap_or_default();
        let entries = batch.header().entry_digests.len() as u64;
        let bytes = batch.to_wire().len() as u64;
        Ok(used.entries + entries <= self.config.quota_entries_per_day
            && used.bytes + bytes <= self.config.quota_bytes_per_day)
    }

    /// Applies a `next` batch: entries, indexes, alerts, then the head, in one atomic write.
    fn apply(&mut self, batch: &VerifiedBatch) -> Result<()> {
        let now = self.clock.now_ms();
        let origin = batch.origin().to_bytes();
        let header = batch.header();
        let store = self.store.clone();
        let mut txn = store.txn();
        let freeze_at = txn
            .get::<ChainRecord>(&keys::chain(&origin, header.generation))?
            .and_then(|chain| chain.freeze_at);
        let all: Vec<usize> = (0..header.entry_digests.len()).collect();
        let Applied { redact, expiries, events } =
            self.apply_entries(&mut txn, batch, &all, now)?;
        expiries.write(&mut txn, &origin, header.generation, header.seq)?;
        let own = origin == self.own_key;
        let stored = batch.redacted(&redact);
        put_stored_batch(&mut txn, &stored);
        if !own {
            let day = (now / DAY_MS) as u32;
            let mut quota: Quota = txn.get(&keys::quota(&origin, day))?.unwrap_or_default();
            quota.entries += header.entry_digests.len() as u64;
            quota.bytes += batch.to_wire().len() as u64;
            txn.put(keys::quota(&origin, day), &quota);
        }
        if own && (header.generation, header.seq) > (self.own.generation, self.own.seq) {
            // A batch of our own feed that we had lost, restored from a peer: the own-feed log
            // learns it first, so its seq is never signed again.
            let wire = batch.to_wire();
            self.own_log.append(self.own.outbox_last, &wire).map_err(store::Error::Io)?;
            self.last_logged =
                Some(store::own_log::Logged { outbox_last: self.own.outbox_last, wire });
            self.own = OwnFeed {
                generation: header.generation,
                seq: header.seq,
                hash: batch.hash(),
                outbox_last: self.own.outbox_last,
            };
            txn.put(keys::meta("own"), &self.own);
        }
        // The head last: a crash before this commit replays the batch as `next`.
        txn.put(
            keys::chain(&origin, header.generation),
            &ChainRecord {
                seq: header.seq,
                hash: batch.hash(),
                frozen: freeze_at == Some(header.seq),
                freeze_at,
            },
        );
        txn.commit()?;
        self.counters.applied += 1;
        self.notify(events);
        Ok(())
    }

    /// Applies the entries at `indices` of a batch being stored: indexes, alerts, expiry and
    /// redaction. Used for a new batch (all entries) and for entries filled into a stored one.
    fn apply_entries(
        &mut self,
        txn: &mut Txn<'_>,
        batch: &VerifiedBatch,
        indices: &[usize],
        now: u64,
    ) -> Result<Applied> {
        let origin = batch.origin().to_bytes();
        let header = batch.header();
        let own = origin == self.own_key;
        let location = |index: usize| (header.generation, header.seq, index as u32);
        let retention_end = header
            .created_at_ms
            .saturating_add(self.config.max_retention_ms)
            .min(now + self.config.max_retention_ms);
        let mut applied = Applied::default();
        let entries: Vec<_> = batch.entries().collect();
        for &index in indices {
            let Some(entry) = entries.get(index) else { continue };
            let (generation, seq, index32) = location(index);
            let entry = match entry {
                Ok(entry) if header.epoch == self.config.epoch => entry.clone(),
                Ok(_) => {
                    // Another epoch's token: not matched here, forgotten at retention's end.
                    self.counters.skipped_entries += 1;
                    applied.expiries.add(retention_end, index);
                    continue;
                }
                Err(EntryProblem::Redacted) => continue,
                Err(EntryProblem::DigestMismatch | EntryProblem::TooLarge) => {
                    // Altered in transit: dropped, and refillable from a genuine copy.
                    self.counters.skipped_entries += 1;
                    applied.redact.push(index);
                    continue;
                }
                Err(_) => {
                    // Signed as it is but unusable here: dropped for good.
                    self.counters.skipped_entries += 1;
                    applied.redact.push(index);
                    txn.put(keys::tombstone(&origin, generation, seq, index32), &());
                    continue;
                }
            };
            let expires = match &entry.op {
                Op::Add(add) => add.expires_at_ms.min(now + self.config.max_retention_ms),
                _ => retention_end,
            };
            if expires <= now {
                applied.redact.push(index);
                txn.put(keys::tombstone(&origin, generation, seq, index32), &());
                continue;
            }
            applied.expiries.add(expires, index);
            let token = *entry.op.token();
            let holder_key =
                if own { keys::own_add(&token) } else { keys::remote(&token, &origin) };
            match entry.op {
                Op::Add(_) if own => {
                    txn.put(holder_key, &OwnAdd { generation, seq, index: index32 });
                }
                Op::Add(add) => {
                    let previous: Option<RemoteAdd> = txn.get(&holder_key)?;
                    txn.put(
                        holder_key,
                        &RemoteAdd {
                            generation,
                            seq,
                            index: index32,
                            epoch: header.epoch,
                            kind: add.kind.as_str().to_owned(),
                            category: add.category,
                            handling: add.handling.as_str().to_owned(),
                            evaluation: add.evaluation.to_string(),
                            activity_per_day: add.activity_per_day,
                            expires_at_ms: expires,
                            created_at_ms: previous
                                .as_ref()
                                .map_or(header.created_at_ms, |p| p.created_at_ms),
                            received_at_ms: previous.as_ref().map_or(now, |p| p.received_at_ms),
                            status: previous.and_then(|p| p.status),
                        },
                    );
                }
                Op::Retract(_) => {
                    let held = if own {
                        txn.get::<OwnAdd>(&holder_key)?.map(|a| (a.generation, a.seq, a.index))
                    } else {
                        txn.get::<RemoteAdd>(&holder_key)?.map(|a| (a.generation, a.seq, a.index))
                    };
                    if let Some((add_generation, add_seq, add_index)) = held {
                        txn.remove(holder_key);
                        if (add_generation, add_seq) == (generation, seq) {
                            // Added and retracted in this very batch: stored redacted at once.
                            applied.redact.push(add_index as usize);
                            txn.put(keys::tombstone(&origin, generation, seq, add_index), &());
                        } else {
                            self.redact_stored(
                                txn,
                                &origin,
                                add_generation,
                                add_seq,
                                &[add_index as usize],
                            )?;
                        }
                    }
                }
                Op::Status(_) if own => {}
                Op::Status(status) => {
                    if let Some(mut add) = txn.get::<RemoteAdd>(&holder_key)? {
                        add.status = Some((status.status.as_str().to_owned(), status.at_ms));
                        txn.put(holder_key, &add);
                    }
                }
            }
            if !own {
                applied.events.extend(self.refresh_alert(txn, &token, now, false)?);
            }
        }
        Ok(applied)
    }

    fn redact_stored(
        &self,
        txn: &mut Txn<'_>,
        origin: &[u8; 32],
        generation: u32,
        seq: u64,
        indices: &[usize],
    ) -> Result<()> {
        for &index in indices {
            txn.put(keys::tombstone(origin, generation, seq, index as u32), &());
        }
        if let Some(batch) = self.stored_batch(txn, origin, generation, seq)? {
            put_stored_batch(txn, &batch.redacted(indices));
        }
        Ok(())
    }

    fn fill_holes(&mut self, copy: &VerifiedBatch) -> Result<usize> {
        let origin = copy.origin().to_bytes();
        let header = copy.header();
        let Some(mut stored) =
            self.stored_batch(&self.store.txn(), &origin, header.generation, header.seq)?
        else {
            return Ok(0);
        };
        let chain: ChainRecord =
            self.store.get(&keys::chain(&origin, header.generation))?.unwrap_or_default();
        if stored.is_complete() || header.seq > chain.seq {
            // Nothing missing, or a batch a fork withdrew: nothing to fill.
            return Ok(0);
        }
        // An entry may be filled unless this node expired or retracted it (its tombstone).
        let mut dead = Vec::new();
        for index in 0..header.entry_digests.len() {
            let tombstone = keys::tombstone(&origin, header.generation, header.seq, index as u32);
            dead.push(self.store.get_raw(&tombstone)?.is_some());
        }
        let holes: Vec<usize> = (0..header.entry_digests.len())
            .filter(|&index| stored.raw_entries().get(index).is_some_and(Option::is_none))
            .collect();
        let filled = stored.fill_holes(copy, |index| !dead.get(index).copied().unwrap_or(true));
        if filled == 0 {
            return Ok(0);
        }
        // Filled entries are applied like any entry: matched, indexed for expiry, or dropped.
        let now = self.clock.now_ms();
        let filled_indices: Vec<usize> = holes
            .into_iter()
            .filter(|&index| stored.raw_entries().get(index).is_some_and(Option::is_some))
            .collect();
        let store = self.store.clone();
        let mut txn = store.txn();
        let Applied { redact, expiries, events } =
            self.apply_entries(&mut txn, &stored, &filled_indices, now)?;
        expiries.write(&mut txn, &origin, header.generation, header.seq)?;
        put_stored_batch(&mut txn, &stored.redacted(&redact));
        txn.commit()?;
        self.notify(events);
        Ok(filled)
    }

    /// A batch contradicts what this node holds at `seq`: keep both manifests as evidence,
    /// queue the evidence for forwarding, and freeze the generation.
    fn record_fork(
        &mut self,
        theirs: &VerifiedBatch,
        seq: u64,
        ours_hash: BatchHash,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let origin = theirs.origin().to_bytes();
        let generation = theirs.header().generation;
        let ours = self
            .stored_batch(&self.store.txn(), &origin, generation, seq)?
            .filter(|b| b.hash() == ours_hash)
            .map(|b| b.manifest_bytes().to_vec())
            .unwrap_or_default();
        let forwardable =
            (!ours.is_empty()).then(|| encode_fork_evidence(&ours, theirs.manifest_bytes()));
        let evidence =
            ForkEvidence { ours, theirs: theirs.manifest_bytes().to_vec(), found_at_ms: now };
        let kept = self.freeze(origin, generation, seq, evidence)?;
        if let Some(encoded) = forwardable.filter(|_| kept)
            && self.outgoing_forks.len() < MAX_OUTGOING_FORKS
        {
            self.outgoing_forks.push(encoded);
        }
        Ok(())
    }

    /// Checks fork evidence a peer forwarded and, when it is new, freezes the forked
    /// generation as if this node had found the fork itself.
    pub fn ingest_fork_evidence(&mut self, evidence: &[u8]) -> Result<ForkOutcome> {
        let digest = *blake3::hash(evidence).as_bytes();
        if self.known_forks.contains(&digest) {
            return Ok(ForkOutcome::Known);
        }
        let checked = verify_fork_evidence(evidence, &self.config.federation_id, &self.roster)
            .and_then(|fork| Ok((fork, fork_evidence_manifests(evidence)?)));
        let (fork, (ours, theirs)) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                self.counters.rejected += 1;
                return Ok(ForkOutcome::Invalid(error));
            }
        };
        let origin = fork.origin.to_bytes();
        let chain: ChainRecord =
            self.store.get(&keys::chain(&origin, fork.generation))?.unwrap_or_default();
        let frozen_before = chain.limit().is_some_and(|limit| limit < fork.seq);
        let outcome = if frozen_before
            || self.store.get_raw(&keys::fork(&origin, fork.generation, fork.seq))?.is_some()
        {
            ForkOutcome::Known
        } else {
            let evidence = ForkEvidence { ours, theirs, found_at_ms: self.clock.now_ms() };
            if self.freeze(origin, fork.generation, fork.seq, evidence)? {
                ForkOutcome::Recorded
            } else {
                ForkOutcome::OverLimit
            }
        };
        // Remembered only once it took effect: a failed freeze is tried again on the next copy.
        if self.known_forks.len() >= MAX_FORK_EVIDENCE {
            self.known_forks.clear();
        }
        self.known_forks.insert(digest);
        Ok(outcome)
    }

    /// How many forks this node holds evidence of.
    pub fn fork_count(&self) -> Result<usize> {
        Ok(self.store.scan_keys(b"f")?.len())
    }

    /// Fork evidence this node found since the last call, to forward to peers.
    pub fn take_fork_evidence(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outgoing_forks)
    }

    /// Every fork held, as forwardable evidence, up to `max_bytes` in all: the answer to
    /// `forks`. Evidence this node could not complete (its own copy was gone) is left out.
    pub fn fork_evidence(&self, max_bytes: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for (_, evidence) in self.store.scan::<ForkEvidence>(b"f")? {
            if evidence.ours.is_empty() {
                continue;
            }
            let encoded = encode_fork_evidence(&evidence.ours, &evidence.theirs);
            bytes += encoded.len() + 9;
            if bytes > max_bytes {
                break;
            }
            out.push(encoded);
        }
        Ok(out)
    }

    /// Freezes (origin, generation) just before `seq`, keeps the evidence (within
    /// [`MAX_FORKS_PER_ORIGIN`] and [`MAX_FORK_EVIDENCE`]), and withdraws every entry at or
    /// after `seq` from matching. A node that holds less of the chain still fetches it up to
    /// `seq − 1`. A fork of the own feed moves it to a new generation and publishes its
    /// withdrawn adds again there.
    fn freeze(
        &mut self,
        origin: [u8; 32],
        generation: u32,
        seq: u64,
        evidence: ForkEvidence,
    ) -> Result<bool> {
        self.counters.forks += 1;
        let now = self.clock.now_ms();
        let store = self.store.clone();
        let mut txn = store.txn();
        let per_origin = self.store.scan_keys(&[&b"f"[..], &origin].concat())?.len();
        let kept = per_origin < MAX_FORKS_PER_ORIGIN && self.fork_count()? < MAX_FORK_EVIDENCE;
        if kept {
            txn.put(keys::fork(&origin, generation, seq), &evidence);
        }
        let held: ChainRecord = txn.get(&keys::chain(&origin, generation))?.unwrap_or_default();
        let limit = seq.saturating_sub(1).min(held.limit().unwrap_or(u64::MAX));
        let frozen_head = if held.seq > limit {
            // Cut back to the batch before the fork.
            let hash = txn
                .get_raw(&keys::batch_hash(&origin, generation, limit))?
                .and_then(|bytes| bytes.try_into().ok())
                .map_or(BatchHash::ZERO, BatchHash);
            ChainRecord { seq: limit, hash, frozen: true, freeze_at: Some(limit) }
        } else {
            // At the limit: frozen now. Short of it: the honest batches before the fork are
            // still fetched, and the chain freezes when its head reaches the limit.
            ChainRecord { frozen: held.frozen || held.seq == limit, freeze_at: Some(limit), ..held }
        };
        let mut events = Vec::new();
        // Entries exist at or after the fork only if this node held that far.
        if held.seq >= seq && origin != self.own_key {
            for (key, add) in txn.scan::<RemoteAdd>(b"t")? {
                if key[33..65] == origin && add.generation == generation && add.seq >= seq {
                    txn.remove(key.clone());
                    let token = Token(key[1..33].try_into().unwrap_or_default());
                    events.extend(self.refresh_alert(&mut txn, &token, now, false)?);
                }
            }
        }
        txn.put(keys::chain(&origin, generation), &frozen_head);
        if origin == self.own_key {
            let own = self.repair_own_fork(&mut txn, generation, seq, held.seq)?;
            txn.commit_durable()?;
            self.own = own;
        } else {
            txn.commit()?;
        }
        // Held batches before the fork are still good; those past it never will be.
        self.held.retain(|(o, g, s), _| !(*o == origin && *g == generation && *s > limit));
        self.notify(events);
        Ok(kept)
    }

    /// Our own feed forked at (generation, seq) (a lost store signed a seq again, or a restored
    /// backup): every peer withdraws what we published there from `seq` on. The repair is a
    /// new generation, whose first batch names the last batch we know, in which our live adds
    /// from the fork on, and the retractions and statuses we published there, go out again.
    /// Returns the new own-feed position, to take effect once `txn` commits.
    fn repair_own_fork(
        &self,
        txn: &mut Txn<'_>,
        generation: u32,
        seq: u64,
        held_to: u64,
    ) -> Result<OwnFeed> {
        let mut own = self.own;
        if generation >= own.generation {
            own.generation = generation + 1;
            own.seq = 0;
            txn.put(keys::meta("own"), &own);
        }
        // Adds: the live ones the fork withdrew, as the records holding them now say.
        for (key, own_add) in txn.scan::<OwnAdd>(b"w")? {
            if own_add.generation == generation && own_add.seq >= seq {
                let token = Token(key[1..33].try_into().unwrap_or_default());
                self.enqueue_current_add(txn, &token)?;
            }
        }
        // Retractions and statuses: whatever still holds of them.
        let mut statuses: BTreeMap<[u8; 32], StatusUpdate> = BTreeMap::new();
        for at in seq..=held_to {
            let Some(batch) = self.stored_batch(txn, &self.own_key, generation, at)? else {
                continue;
            };
            for entry in batch.entries().flatten() {
                match entry.op {
                    Op::Retract(retract)
                        if self.shared_holders(txn, &retract.token)?.is_empty() =>
                    {
                        self.enqueue(txn, Op::Retract(retract))?;
                    }
                    Op::Status(status) => {
                        statuses.insert(*status.token.as_bytes(), status);
                    }
                    _ => {}
                }
            }
        }
        for status in statuses.into_values() {
            if !self.shared_holders(txn, &status.token)?.is_empty() {
                self.enqueue(txn, Op::Status(status))?;
            }
        }
        Ok(own)
    }

    /// Enqueues the `add` the longest-held shared record of `token` makes, if any. A record
    /// that cannot be read back is skipped (and logged), not allowed to stop the caller.
    fn enqueue_current_add(&self, txn: &mut Txn<'_>, token: &Token) -> Result<()> {
        let holders = self.shared_holders(txn, token)?;
        let Some(longest) = holders.iter().max_by_key(|r| r.expires_at_ms) else { return Ok(()) };
        let Some(identifier) = longest.identifiers.iter().find(|i| i.token == *token) else {
            return Ok(());
        };
        match self.add_of(longest, identifier) {
            Ok(add) => self.enqueue(txn, Op::Add(add)),
            Err(error) => {
                tracing::error!(%error, record = longest.id, "record unreadable: its add is not republished");
                Ok(())
            }
        }
    }

    /// Chains a proved fork cut short that this node has not yet caught up to the fork: what to
    /// fetch of each, from any peer.
    pub fn unfinished_forked_chains(&self) -> Result<Vec<HeadClaim>> {
        let mut claims = Vec::new();
        for (key, chain) in self.store.scan::<ChainRecord>(b"c")? {
            let (Ok(origin), Ok(generation)) =
                (<[u8; 32]>::try_from(&key[1..33]), key[33..37].try_into().map(u32::from_be_bytes))
            else {
                continue;
            };
            if let Some(limit) = chain.freeze_at.filter(|limit| !chain.frozen && *limit > chain.seq)
            {
                claims.push(HeadClaim {
                    origin,
                    generation,
                    from_seq: chain.seq + 1,
                    to_seq: limit,
                    // Not a head of the own feed: recovery must not read it as one.
                    own: false,
                });
            }
        }
        Ok(claims)
    }

    /// Fork evidence: (origin, generation, seq, evidence).
    pub fn forks(&self) -> Result<Vec<(PublicKey, u32, u64, ForkEvidence)>> {
        Ok(self
            .store
            .scan::<ForkEvidence>(b"f")?
            .into_iter()
            .filter_map(|(key, evidence)| {
                let origin = PublicKey::from_bytes(key[1..33].try_into().ok()?).ok()?;
                let generation = u32::from_be_bytes(key[33..37].try_into().ok()?);
                let seq = u64::from_be_bytes(key[37..45].try_into().ok()?);
                Some((origin, generation, seq, evidence))
            })
            .collect())
    }

    /// Clears fork evidence after an operator dealt with it. The generation stays frozen.
    pub fn clear_fork(&mut self, origin: &PublicKey, generation: u32, seq: u64) -> Result<bool> {
        let key = keys::fork(&origin.to_bytes(), generation, seq);
        let existed = self.store.get_raw(&key)?.is_some();
        let mut txn = self.store.txn();
        txn.remove(key);
        txn.commit_durable()?;
        Ok(existed)
    }

    /// Recomputes the alert of `token` from the local holdings and live remote adds.
    fn refresh_alert(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        now: u64,
        retro: bool,
    ) -> Result<Option<AlertEvent>> {
        let records: Vec<RecordId> = txn
            .scan::<()>(&keys::holdings(token))?
            .into_iter()
            .map(|(key, ())| u64::from_be_bytes(key[33..41].try_into().unwrap_or_default()))
            .collect();
        let existing: Option<Alert> = txn.get(&keys::alert(token))?;
        if records.is_empty() && existing.is_none() {
            // Not held here and never alerted: the common case on ingest, decided with two
            // look-ups and no scan of other origins' adds.
            return Ok(None);
        }
        let remotes: Vec<(String, RemoteAdd)> = txn
            .scan::<RemoteAdd>(&keys::remotes(token))?
            .into_iter()
            .filter(|(key, add)| key[33..65] != self.own_key && add.epoch == self.config.epoch)
            .map(|(key, add)| (hex::encode(&key[33..65]), add))
            .collect();
        let counterparts: Vec<Counterpart> = remotes
            .into_iter()
            .map(|(origin, add)| {
                let earlier = existing
                    .as_ref()
                    .and_then(|a| a.counterparts.iter().find(|c| c.origin == origin));
                let retro = earlier.map_or(retro, |c| c.retro);
                Counterpart { origin, add, retro }
            })
            .collect();
        if records.is_empty() {
            // No local record holds the token any more: the alert ends. Subscribers see it
            // closed, then it is deleted (with it the token's last local trace).
            let Some(old) = existing else { return Ok(None) };
            txn.remove(keys::alert(token));
            let alert = Alert {
                state: AlertState::Closed,
                records,
                counterparts: Vec::new(),
                updated_at_ms: now,
                version: old.version + 1,
                ..old
            };
            return Ok(Some(AlertEvent { alert }));
        }
        let matched = !counterparts.is_empty();
        let alert = match existing {
            None if !matched => return Ok(None),
            None => Alert {
                id: self.next_counter(txn, "alert")?,
                token: *token,
                state: AlertState::Open,
                records,
                counterparts,
                opened_at_ms: now,
                updated_at_ms: now,
                acknowledged: false,
                version: 1,
            },
            Some(old) => {
                let state = match (old.state, matched) {
                    (AlertState::Closed, false) => AlertState::Closed,
                    (AlertState::Closed, true) => AlertState::Reopened,
                    (_, false) => AlertState::Closed,
                    (state, true)
                        if old.counterparts.len() == counterparts.len()
                            && old.records == records
                            && old.counterparts.iter().zip(&counterparts).all(|(a, b)| {
                                a.origin == b.origin && a.add.status == b.add.status
                            }) =>
                    {
                        state
                    }
                    (_, true) => AlertState::Updated,
                };
                let changed = state != old.state
                    || old.records != records
                    || old.counterparts != counterparts;
                if !changed {
                    return Ok(None);
                }
                Alert {
                    state,
                    records,
                    counterparts,
                    updated_at_ms: now,
                    version: old.version + 1,
                    acknowledged: old.acknowledged && state == old.state,
                    ..old
                }
            }
        };
        txn.put(keys::alert(token), &alert);
        Ok(Some(AlertEvent { alert }))
    }

    fn notify(&mut self, events: Vec<AlertEvent>) {
        for event in events {
            if let Err(error) = self.audit.append(
                &AuditUser::node(),
                Action::Alert,
                &AuditSubject::token(&event.alert.token),
            ) {
                // The alert is stored; a failing audit log is reported loudly, not hidden.
                tracing::error!(%error, alert = event.alert.id, "audit log: alert not recorded");
            }
            if let Some(AlertSink(announce)) = &mut self.alert_sink {
                announce(event);
            }
        }
    }

    /// Alerts, optionally filtered by state and by last change at or after `since_ms`.
    pub fn alerts(&self, state: Option<AlertState>, since_ms: Option<u64>) -> Result<Vec<Alert>> {
        let mut alerts: Vec<Alert> = self
            .store
            .scan::<Alert>(b"a")?
            .into_iter()
            .map(|(_, alert)| alert)
            .filter(|a| {
                state.is_none_or(|s| a.state == s) && since_ms.is_none_or(|t| a.updated_at_ms >= t)
            })
            .collect();
        alerts.sort_by_key(|a| a.id);
        Ok(alerts)
    }

    /// Acknowledges an alert by id; false if there is none.
    pub fn acknowledge(&mut self, alert_id: u64) -> Result<bool> {
        let Some((key, mut alert)) =
            self.store.scan::<Alert>(b"a")?.into_iter().find(|(_, a)| a.id == alert_id)
        else {
            return Ok(false);
        };
        alert.acknowledged = true;
        let mut txn = self.store.txn();
        txn.put(key, &alert);
        txn.commit_durable()?;
        Ok(true)
    }

    /// The contact of a member, by key hex.
    pub fn contact(&self, origin_hex: &str) -> Option<&Member> {
        self.config.members.iter().find(|m| m.key.to_string() == origin_hex)
    }

    /// Enforces retention at `now`: entries whose time has come are redacted in their stored
    /// batches and forgotten by indexes and alerts; local records past expiry are deleted.
    /// Returns how many entries and records were purged.
    pub fn expire(&mut self) -> Result<(usize, usize)> {
        let now = self.clock.now_ms();
        let due = self.store.range_keys(
            b"x",
            &[b"x".as_slice(), &now.to_be_bytes()].concat(),
            usize::MAX,
        )?;
        let mut txn = self.store.txn();
        let mut events = Vec::new();
        let mut by_batch: BTreeMap<([u8; 32], u32, u64), Vec<usize>> = BTreeMap::new();
        for key in &due {
            let origin: [u8; 32] = key[9..41].try_into().unwrap_or_default();
            let generation = u32::from_be_bytes(key[41..45].try_into().unwrap_or_default());
            let seq = u64::from_be_bytes(key[45..53].try_into().unwrap_or_default());
            let indices: Vec<u32> = txn.get(key)?.unwrap_or_default();
            for index in indices {
                by_batch.entry((origin, generation, seq)).or_default().push(index as usize);
                txn.put(keys::tombstone(&origin, generation, seq, index), &());
            }
            txn.remove(key.clone());
        }
        for ((origin, generation, seq), indices) in &by_batch {
            let Some(batch) = self.stored_batch(&txn, origin, *generation, *seq)? else {
                continue;
            };
            for (index, entry) in batch.entries().enumerate() {
                if !indices.contains(&index) {
                    continue;
                }
                if let Ok(Entry { op: Op::Add(add), .. }) = entry {
                    let at = (*generation, *seq, index as u32);
                    if *origin == self.own_key {
                        let own_key = keys::own_add(&add.token);
                        let here = txn
                            .get::<OwnAdd>(&own_key)?
                            .is_some_and(|a| (a.generation, a.seq, a.index) == at);
                        if here {
                            txn.remove(own_key);
                        }
                        continue;
                    }
                    let remote_key = keys::remote(&add.token, origin);
                    let here = txn
                        .get::<RemoteAdd>(&remote_key)?
                        .is_some_and(|r| (r.generation, r.seq, r.index) == at);
                    if here {
                        txn.remove(remote_key);
                        events.extend(self.refresh_alert(&mut txn, &add.token, now, false)?);
                    }
                }
            }
            put_stored_batch(&mut txn, &batch.redacted(indices));
        }
        let due_records = self.store.range_keys(
            b"e",
            &[b"e".as_slice(), &now.to_be_bytes()].concat(),
            usize::MAX,
        )?;
        for key in &due_records {
            let id = u64::from_be_bytes(key[9..17].try_into().unwrap_or_default());
            txn.remove(key.clone());
            if let Some(record) = txn.get::<Record>(&keys::record(id))? {
                txn.remove(keys::record(id));
                for identifier in &record.identifiers {
                    txn.remove(keys::holding(&identifier.token, id));
                    events.extend(self.refresh_alert(&mut txn, &identifier.token, now, false)?);
                }
            }
        }
        txn.commit_durable()?;
        self.notify(events);
        self.compact_own_log()?;
        Ok((due.len(), due_records.len()))
    }

    /// Whether this node holds `token` locally (a shared record or a watch): the match look-up.
    pub fn holds(&self, token: &Token) -> Result<bool> {
        Ok(self.store.any_with_prefix(&keys::holdings(token))?)
    }

    /// How many other origins currently hold a live add of `token`.
    pub fn remote_holders(&self, token: &Token) -> Result<usize> {
        Ok(self.store.scan_keys(&keys::remotes(token))?.len())
    }

    /// A local record by id: raw data, so the read is audited under `user`.
    pub fn read_record(&mut self, id: RecordId, user: &str) -> Result<Option<Record>> {
        let user = AuditUser::new(user)?;
        self.audit.append(&user, Action::ReadRecord, &AuditSubject::record(id))?;
        Ok(self.store.get(&keys::record(id))?)
    }

    /// Now, by the engine's clock (Unix ms).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The audit log's head: (last seq, last signed seq).
    pub fn audit_position(&self) -> (u64, u64) {
        (self.audit.last_seq(), self.audit.last_signed_seq())
    }

    /// The stored wire form of a batch.
    pub fn batch(&self, origin: &PublicKey, generation: u32, seq: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.store.get_raw(&keys::batch(&origin.to_bytes(), generation, seq))?)
    }

    /// The chain record of (origin, generation).
    pub fn chain(&self, origin: &PublicKey, generation: u32) -> Result<ChainRecord> {
        Ok(self.store.get(&keys::chain(&origin.to_bytes(), generation))?.unwrap_or_default())
    }
}
