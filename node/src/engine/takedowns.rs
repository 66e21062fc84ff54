//! The takedown clock's facts, as the engine keeps them: when this node first learned of each
//! token (its identification, `I`), the statuses members asserted for it (`T`), and each peer's
//! clock skew from fresh gossip (in memory); and [`Engine::takedown_inputs`], what the report
//! (`takedowns/report.rs`, a pure function of them, the ledger's sightings and the time) is
//! computed from.
//!
//! - An identification is kept once per (token, source), from the write that made the node
//!   learn of it: its own record's (durable before the call returns) or the remote add's batch
//!   (applied atomically; a batch a crash loses is fetched again by sync, and its time is then
//!   the new receipt's). Nothing moves it later: a republished add after a fork, a longer
//!   expiry, an add across H2, the add's expiry, a `no_longer_held` retraction or the
//!   member's withdrawal leave it; only a retraction as `erroneous` removes that source, and
//!   the token's identification goes with its last source.
//! - An own record's source is written under `I` at once. Another member's live add is its own
//!   source: its `t` row keeps its first receipt and `created_at` (and its latest receipt, the
//!   touch), so ingest writes one row per add, not two. Every write that removes a live add,
//!   or replaces it with one learned anew across H2, stores its source under `I` first
//!   ([`Engine::retire_remote_add`], [`Engine::keep_source`]); an `erroneous` retraction alone
//!   does not. [`Engine::identification`] reads both, a stored source first.
//!   Tokens belong to an epoch; the node does not rotate epochs yet (it refuses to start under
//!   another), so a token's identification is the identifier's.
//! - Both are stored under a pseudonym of the token ([`FACTS_KEY_CONTEXT`], `Facts::open`),
//!   never the token, so expiry still removes every byte of a token from the store; the facts
//!   themselves are forgotten once nothing has touched them for the node's retention. The
//!   pseudonyms' key is kept in the store, so a routine change of the node's key keeps them.
//! - Times from other members are claims: a `created_at` or status `at` after this node's
//!   receipt is taken as the receipt time.

mod report;

use std::collections::{HashMap, VecDeque};

use crossmatch_protocol::{Kind, SigningKey, Status, Token};
use serde::{Deserialize, Serialize};

pub use report::{
    AccountClock, FederationTotals, Percentiles, TakedownReport, TakedownSettings, TakedownState,
    TakedownSummary, TakedownWarning, TimeTo, evaluate, percentile,
};

use super::{Engine, Result};
use crate::store::{self, Record, RecordId, RemoteAdd, Store, Txn, compact, keys};

/// Domain of the key the takedown facts' token pseudonyms are made with, derived from the
/// node's key at a store's first open and kept in the store (`Facts::open`).
pub const FACTS_KEY_CONTEXT: &str = "crossmatch takedown facts v1";

/// Most clock-skew samples kept per peer: the estimate is their median.
pub const MAX_SKEW_SAMPLES: usize = 64;

/// When this node first learned of a token, per source (stored under `I`, as an array:
/// [`compact`](crate::store::compact); a map by field name, the form written before, still
/// reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identification {
    /// One per origin that added the token (this node's own key for its records); at most one
    /// per roster member.
    pub sources: Vec<IdentificationSource>,
    /// When an add of the token last reached this node (Unix ms): what retention counts from.
    pub touched_at_ms: u64,
}

/// One origin's first add of a token, as this node learned of it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IdentificationSource {
    /// The origin's key (this node's own for its records).
    pub origin: [u8; 32],
    /// When this node learned of it (its own clock).
    pub learned_at_ms: u64,
    /// The add's `created_at` (the origin's claim), no later than `learned_at_ms`.
    pub created_at_ms: u64,
}

impl Serialize for Identification {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        compact::positional::<_, IdentificationRow, _>(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Identification {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        compact::named_or_positional::<_, IdentificationNamed, IdentificationRow, _>(deserializer)
    }
}

/// [`Identification`] as written now: `[[[origin bytes, learned, created], …], touched]`.
#[derive(Serialize, Deserialize)]
struct IdentificationRow(Vec<SourceRow>, u64);

/// An [`IdentificationSource`] as written now.
#[derive(Serialize, Deserialize)]
struct SourceRow(#[serde(with = "compact::bytes32")] [u8; 32], u64, u64);

/// [`Identification`] as written before: maps by field name, the origin an array of integers.
#[derive(Deserialize)]
struct IdentificationNamed {
    sources: Vec<IdentificationSource>,
    #[serde(default)]
    touched_at_ms: u64,
}

impl From<Identification> for IdentificationRow {
    fn from(identification: Identification) -> Self {
        let sources = identification.sources.into_iter();
        let rows = sources.map(|s| SourceRow(s.origin, s.learned_at_ms, s.created_at_ms));
        Self(rows.collect(), identification.touched_at_ms)
    }
}

impl From<IdentificationRow> for Identification {
    fn from(IdentificationRow(sources, touched_at_ms): IdentificationRow) -> Self {
        let sources = sources.into_iter().map(|SourceRow(origin, learned_at_ms, created_at_ms)| {
            IdentificationSource { origin, learned_at_ms, created_at_ms }
        });
        Self { sources: sources.collect(), touched_at_ms }
    }
}

impl From<IdentificationNamed> for Identification {
    fn from(named: IdentificationNamed) -> Self {
        Self { sources: named.sources, touched_at_ms: named.touched_at_ms }
    }
}

impl Identification {
    /// The earliest add by any member: where the federation clock starts.
    pub fn federation_start_ms(&self) -> Option<u64> {
        self.sources.iter().map(|source| source.created_at_ms).min()
    }

    /// When anything last touched the token's identification (Unix ms).
    pub fn last_touched_ms(&self) -> u64 {
        self.sources.iter().map(|s| s.learned_at_ms).fold(self.touched_at_ms, u64::max)
    }

    /// When this node first learned of the token from `origin`.
    pub fn learned_from(&self, origin: &[u8; 32]) -> Option<u64> {
        self.sources.iter().find(|s| s.origin == *origin).map(|s| s.learned_at_ms)
    }

    /// Notes `source` unless a source of its origin is known (that one is the earlier), and a
    /// touch at `touched_at_ms`.
    fn note(&mut self, source: IdentificationSource, touched_at_ms: u64) {
        self.touched_at_ms = self.touched_at_ms.max(touched_at_ms);
        if !self.sources.iter().any(|known| known.origin == source.origin) {
            self.sources.push(source);
        }
    }
}

/// The statuses members asserted for a token (stored under `T`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakedownStatuses {
    /// One per (origin, status); at most four per roster member.
    pub assertions: Vec<Assertion>,
}

/// What one origin asserted of a token, and when (clamped to the receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assertion {
    /// The origin's key (this node's own for its own statuses).
    pub origin: [u8; 32],
    /// The status's name (`referred`, `ordered`, `removed`, `reinstated`).
    pub status: String,
    /// The earliest `at` asserted.
    pub first_at_ms: u64,
    /// The latest `at` asserted.
    pub last_at_ms: u64,
    /// When this node last received or made the assertion (Unix ms): what retention counts
    /// from.
    #[serde(default)]
    pub touched_at_ms: u64,
}

impl Assertion {
    /// The status, if this version knows its name.
    pub fn status(&self) -> Option<Status> {
        self.status.parse().ok()
    }
}

/// The takedown facts' state in memory: the key their pseudonyms are made with, and the
/// peers' clock-skew samples (receipt time minus `created_at` of fresh gossip).
pub(super) struct Facts {
    key: [u8; 32],
    skews: HashMap<[u8; 32], VecDeque<i64>>,
}

impl Facts {
    /// Reads the facts' key from the store (`m` `facts-key`). A store without one (a new
    /// store, or one an earlier build wrote) gets one derived from the node's key, the key
    /// every pseudonym in such a store was made with, and keeps it: the pseudonyms then
    /// outlive a routine change of the node's key. It is kept only when the node's key is the
    /// one the store's own feed is signed with (or the store has none yet): opened under
    /// another key (a key change adopted at this very start, or a retired key given by
    /// mistake, which the open then refuses), the key derived serves this run unkept, and the
    /// next open under the adopted key keeps it.
    pub(super) fn open(store: &Store, node_key: &SigningKey) -> Result<Self> {
        if let Some(key) = store.get::<[u8; 32]>(&keys::facts_key())? {
            return Ok(Self { key, skews: HashMap::new() });
        }
        let key = blake3::derive_key(FACTS_KEY_CONTEXT, &node_key.seed());
        let signed_with = store.get::<super::OwnKeys>(&keys::own_keys())?.map(|keys| keys.current);
        if signed_with.is_none_or(|current| current == node_key.public_key().to_bytes()) {
            let mut txn = store.txn();
            txn.put(keys::facts_key(), &key);
            txn.commit_durable()?;
        }
        Ok(Self { key, skews: HashMap::new() })
    }
}

impl std::fmt::Debug for Facts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts").field("skews", &self.skews).finish_non_exhaustive()
    }
}

/// A peer's estimated clock skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSkew {
    /// The peer's key.
    pub origin: [u8; 32],
    /// Median of receipt time minus `created_at` over the recent samples (ms): transit time
    /// plus how far the peer's clock is behind (negative: ahead).
    pub median_ms: i64,
    /// Samples the median is over (at most [`MAX_SKEW_SAMPLES`]).
    pub samples: usize,
}

/// One local record, as the takedown report needs it: no raw identifier but the canonical
/// forms of its accounts (looked up in the hunt's ledger, never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordClockInput {
    /// The record.
    pub record: RecordId,
    /// Its first token's log-safe prefix.
    pub token_short: String,
    /// The canonical forms of its `account` and `account_id` identifiers.
    pub accounts: Vec<String>,
    /// From a bulk import of old lists.
    pub backlog: bool,
    /// Where the unit clock starts: this node's first own record of any of its tokens.
    pub unit_start_ms: u64,
    /// Where the federation clock starts: the earliest add of any of its tokens by any member.
    pub federation_start_ms: u64,
    /// Every status asserted for its tokens, by any member.
    pub assertions: Vec<Assertion>,
}

/// What the takedown report is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakedownInputs {
    /// Every local record.
    pub records: Vec<RecordClockInput>,
    /// Every token's statuses, records or not: the federation-wide totals.
    pub all_statuses: Vec<TakedownStatuses>,
}

/// The identification of a token from what is stored under `I` and its live adds `live`
/// (key, add): each live add's origin a source unless the stored ones name it.
fn merged_identification(
    stored: Option<Identification>,
    live: Vec<(Vec<u8>, RemoteAdd)>,
) -> Option<Identification> {
    let mut identification = stored.unwrap_or_default();
    for (key, add) in live {
        let Some((_, origin)) = keys::parse_remote_add(&key) else { continue };
        identification.note(source_of(origin, &add), add.touched_at_ms);
    }
    (!identification.sources.is_empty()).then_some(identification)
}

/// The source a live add of `origin` is: learned at its receipt (kept while it stays on its
/// side of H2), made at its `created_at`, no later than the receipt.
fn source_of(origin: [u8; 32], add: &RemoteAdd) -> IdentificationSource {
    IdentificationSource {
        origin,
        learned_at_ms: add.received_at_ms,
        created_at_ms: add.created_at_ms.min(add.received_at_ms),
    }
}

/// Takedown facts removed per write set by [`Engine::purge_takedown_facts`].
const FACTS_PURGE_SLICE: usize = 10_000;

impl Engine {
    /// Notes that this node learned of `token` from its own record now, unless it had before:
    /// never moved once written. Another origin's add is noted by
    /// [`Engine::touch_identification`] instead: its source is its live add.
    pub(super) fn note_identification(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        origin: [u8; 32],
        created_at_ms: u64,
        now: u64,
    ) -> Result<()> {
        let key = keys::identification(&self.facts_id(token));
        let mut identification: Identification = txn.get(&key)?.unwrap_or_default();
        let created_at_ms = created_at_ms.min(now);
        identification
            .note(IdentificationSource { origin, learned_at_ms: now, created_at_ms }, now);
        txn.put(key, &identification);
        Ok(())
    }

    /// Notes that another origin's add of `token` reached this node now. Nothing is written
    /// for the add itself: while it lives, its `t` row is its source ([`source_of`], read by
    /// [`Engine::identification`]). An identification already stored is touched, as
    /// every add touched it when every add wrote one, so its retention counts from this add.
    pub(super) fn touch_identification(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        now: u64,
    ) -> Result<()> {
        let key = keys::identification(&self.facts_id(token));
        if let Some(mut identification) = txn.get::<Identification>(&key)?
            && identification.touched_at_ms < now
        {
            identification.touched_at_ms = now;
            txn.put(key, &identification);
        }
        Ok(())
    }

    /// Removes `origin`'s live add of `token`, known to be `add`, keeping its source: the
    /// stored identification gains it (unless it holds one of `origin` already, which is
    /// earlier) and counts its retention from the add's latest touch. Every way an add leaves
    /// the store but a retraction as `erroneous` comes through here or [`Engine::keep_source`].
    pub(super) fn retire_remote_add(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        origin: &[u8; 32],
        add: &RemoteAdd,
    ) -> Result<()> {
        self.keep_source(txn, token, origin, add)?;
        txn.forget_remote_add(token, origin);
        Ok(())
    }

    /// Writes the source `origin`'s live add of `token` is, before the add leaves the store or
    /// is replaced by one that counts as learned anew (across H2). The row written is the
    /// token's whole identification, the other live adds' sources and latest receipts with it:
    /// the row each add kept up to date when every add wrote one, so the facts' retention
    /// counts from the token's latest add, whichever member's it was.
    pub(super) fn keep_source(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        origin: &[u8; 32],
        add: &RemoteAdd,
    ) -> Result<()> {
        let key = keys::identification(&self.facts_id(token));
        let mut identification = self.identification_in(txn, token)?.unwrap_or_default();
        identification.note(source_of(*origin, add), add.touched_at_ms);
        txn.put(key, &identification);
        Ok(())
    }

    /// Voids `origin`'s identification of `token` (its add was retracted as erroneous); the
    /// token's identification goes with its last source. While another source is left, the
    /// row written is the token's whole identification but `origin`'s source (its touch kept,
    /// the voided add's with it), as the row every add kept up to date held it.
    pub(super) fn void_identification(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        origin: &[u8; 32],
    ) -> Result<()> {
        let key = keys::identification(&self.facts_id(token));
        let Some(mut identification) = self.identification_in(txn, token)? else {
            return Ok(());
        };
        identification.sources.retain(|source| source.origin != *origin);
        if identification.sources.is_empty() {
            txn.remove(key);
        } else {
            txn.put(key, &identification);
        }
        Ok(())
    }

    /// Carries a token's takedown facts over to its new token in a rotation (`rotation.rs`):
    /// copied where the new token has none yet, so its clocks keep running; the old token's
    /// facts are purged as untouched ones are.
    pub(super) fn carry_takedown_facts(
        &self,
        txn: &mut Txn<'_>,
        old: &Token,
        new: &Token,
    ) -> Result<()> {
        let (old_id, new_id) = (self.facts_id(old), self.facts_id(new));
        if let Some(identification) = self.identification_in(txn, old)?
            && self.identification_in(txn, new)?.is_none()
        {
            txn.put(keys::identification(&new_id), &identification);
        }
        let statuses = txn.get::<TakedownStatuses>(&keys::takedown(&old_id))?;
        if let Some(statuses) = statuses
            && txn.get_raw(&keys::takedown(&new_id))?.is_none()
        {
            txn.put(keys::takedown(&new_id), &statuses);
        }
        Ok(())
    }

    /// Notes a status `origin` asserted for `token` at `at_ms`, taken as `now` if later.
    pub(super) fn note_status(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        origin: [u8; 32],
        status: Status,
        at_ms: u64,
        now: u64,
    ) -> Result<()> {
        let at_ms = at_ms.min(now);
        let key = keys::takedown(&self.facts_id(token));
        let mut statuses: TakedownStatuses = txn.get(&key)?.unwrap_or_default();
        let name = status.as_str();
        match statuses.assertions.iter_mut().find(|a| a.origin == origin && a.status == name) {
            Some(held) => {
                held.first_at_ms = held.first_at_ms.min(at_ms);
                held.last_at_ms = held.last_at_ms.max(at_ms);
                held.touched_at_ms = held.touched_at_ms.max(now);
            }
            None => statuses.assertions.push(Assertion {
                origin,
                status: name.to_owned(),
                first_at_ms: at_ms,
                last_at_ms: at_ms,
                touched_at_ms: now,
            }),
        }
        txn.put(key, &statuses);
        Ok(())
    }

    /// Adds a clock-skew sample of `origin`: now minus the `created_at` of a batch of its that
    /// gossip brought fresh. The oldest sample goes past [`MAX_SKEW_SAMPLES`].
    pub(super) fn note_skew(&mut self, origin: [u8; 32], created_at_ms: u64) {
        if self.is_own(&origin) {
            return;
        }
        let now = i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX);
        let sample = now.saturating_sub(i64::try_from(created_at_ms).unwrap_or(i64::MAX));
        let samples = self.facts.skews.entry(origin).or_default();
        samples.push_back(sample);
        while samples.len() > MAX_SKEW_SAMPLES {
            samples.pop_front();
        }
    }

    /// Each peer's estimated clock skew (peers gossip has brought nothing from yet are left
    /// out), in key order.
    pub fn clock_skews(&self) -> Vec<PeerSkew> {
        let mut skews: Vec<PeerSkew> = self
            .facts
            .skews
            .iter()
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(origin, samples)| {
                let mut sorted: Vec<i64> = samples.iter().copied().collect();
                sorted.sort_unstable();
                PeerSkew {
                    origin: *origin,
                    median_ms: sorted[sorted.len() / 2],
                    samples: sorted.len(),
                }
            })
            .collect();
        skews.sort_by_key(|skew| skew.origin);
        skews
    }

    /// The pseudonym the takedown facts of `token` are stored under: BLAKE3 keyed by the
    /// facts' key (`Facts::open`), so the store keeps no byte of a token past its expiry (as
    /// retention requires), while the facts outlive the token for the retention.
    fn facts_id(&self, token: &Token) -> [u8; 32] {
        *blake3::keyed_hash(&self.facts.key, token.as_bytes()).as_bytes()
    }

    /// Forgets the takedown facts (`I`, `T`) nothing has touched for the node's retention: a
    /// token's facts outlive its expiry (which must not move them) but not for good. A record
    /// lives at most the retention, and every add or status of a token touches its facts, so
    /// no token still held loses them. Returns the entries forgotten.
    pub fn purge_takedown_facts(&mut self) -> Result<usize> {
        let before = self.clock.now_ms().saturating_sub(self.config.max_retention_ms);
        let mut stale = Vec::new();
        // The identifications are read one at a time, never all in memory (every token this
        // node ever learned of has one); only the keys of the stale ones are kept.
        self.store.scan_each(
            &keys::all_identifications(),
            |key, identification: Identification| {
                if identification.last_touched_ms() < before {
                    stale.push(key.to_vec());
                }
                Ok::<_, store::Error>(())
            },
        )?;
        for (key, statuses) in self.store.scan::<TakedownStatuses>(&keys::all_takedowns())? {
            let touched = statuses.assertions.iter().map(|a| a.touched_at_ms).max().unwrap_or(0);
            if touched < before {
                stale.push(key);
            }
        }
        // Removed in slices: no write set outgrows the store's reserve (`store/space.rs`).
        for slice in stale.chunks(FACTS_PURGE_SLICE) {
            let mut txn = self.store.txn();
            for key in slice {
                txn.remove(key.clone());
            }
            txn.commit()?;
        }
        Ok(stale.len())
    }

    /// The identification of `token`, if this node learned of it: the sources stored under
    /// `I` and those of the live adds (`t`), one per origin, a stored one first (it is the
    /// earlier).
    pub fn identification(&self, token: &Token) -> Result<Option<Identification>> {
        let stored = self.store.get(&keys::identification(&self.facts_id(token)))?;
        let live = self.store.scan::<RemoteAdd>(&keys::remote_adds(token))?;
        Ok(merged_identification(stored, live))
    }

    /// [`Engine::identification`], seeing the write set's own changes.
    fn identification_in(&self, txn: &Txn<'_>, token: &Token) -> Result<Option<Identification>> {
        let stored = txn.get(&keys::identification(&self.facts_id(token)))?;
        let live = txn.scan::<RemoteAdd>(&keys::remote_adds(token))?;
        Ok(merged_identification(stored, live))
    }

    /// The statuses asserted for `token`.
    pub fn takedown_statuses(&self, token: &Token) -> Result<TakedownStatuses> {
        Ok(self.store.get(&keys::takedown(&self.facts_id(token)))?.unwrap_or_default())
    }

    /// What the takedown report is computed from: every record with its clocks' starts and the
    /// statuses of its tokens, and every token's statuses for the federation-wide totals.
    pub fn takedown_inputs(&self) -> Result<TakedownInputs> {
        let mut inputs = TakedownInputs::default();
        self.store.scan_each(&keys::all_records(), |_, record: Record| {
            inputs.records.push(self.record_clock_input(record)?);
            Ok::<_, super::Error>(())
        })?;
        inputs.all_statuses = self
            .store
            .scan::<TakedownStatuses>(&keys::all_takedowns())?
            .into_iter()
            .map(|(_, statuses)| statuses)
            .collect();
        Ok(inputs)
    }

    /// What the timer's sweep needs: the clocks of records that are not backlog, read one at
    /// a time, and no federation totals. A backlog record (an import of old lists) never warns,
    /// is never overdue and counts in no figure the sweep keeps, so a store of imported lists
    /// costs the sweep a read per record but no memory per record.
    pub fn budgeted_takedown_inputs(&self) -> Result<TakedownInputs> {
        let mut inputs = TakedownInputs::default();
        self.store.scan_each(&keys::all_records(), |_, record: Record| {
            if !record.backlog {
                inputs.records.push(self.record_clock_input(record)?);
            }
            Ok::<_, super::Error>(())
        })?;
        Ok(inputs)
    }

    fn record_clock_input(&self, record: Record) -> Result<RecordClockInput> {
        let mut unit_start_ms = record.created_at_ms;
        let mut federation_start_ms = record.created_at_ms;
        let mut assertions = Vec::new();
        let mut accounts = Vec::new();
        for identifier in &record.identifiers {
            if let Some(identification) = self.identification(&identifier.token)? {
                if let Some(own) = identification.learned_from(&self.own_key) {
                    unit_start_ms = unit_start_ms.min(own);
                }
                if let Some(start) = identification.federation_start_ms() {
                    federation_start_ms = federation_start_ms.min(start);
                }
            }
            assertions.extend(self.takedown_statuses(&identifier.token)?.assertions);
            if let Ok(canonical) = identifier.canonical.parse::<crossmatch_protocol::Canonical>()
                && matches!(canonical.kind(), Kind::Account | Kind::AccountId)
            {
                accounts.push(identifier.canonical.clone());
            }
        }
        Ok(RecordClockInput {
            record: record.id,
            token_short: record.identifiers.first().map(|i| i.token.short()).unwrap_or_default(),
            accounts,
            backlog: record.backlog,
            unit_start_ms,
            federation_start_ms: federation_start_ms.min(unit_start_ms),
            assertions,
        })
    }
}
