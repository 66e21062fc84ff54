//! The hunt in the running node: the ledger of observations (under its own lock, never the
//! engine's), its durable rows in the store, the latest analytics, and the task that recomputes
//! them.
//!
//! - **Ingest.** A chunk of lines is parsed without any lock, then counted under the ledger
//!   lock, noting the rows it touched; the rows and the chunk's seen post hashes land in one
//!   durable store write before the call returns. Chunks are written one at a time (the writer
//!   lock), so a later chunk's rows never land before an earlier one's. If the write fails, the
//!   ledger is rebuilt from the store, so memory never holds what the store lost.
//! - **Recompute** runs on a blocking thread: the ledger lock is held only to take a
//!   [`Snapshot`]; communities and PageRank run without it, and the results are swapped in
//!   whole. At most one runs at a time. The task recomputes every `recompute_interval_secs`
//!   when something changed, and at once after an ingest when the last computation is that old.
//! - **Retention** (from the timer's sweep): days older than the node's retention go; accounts
//!   that are not records lose their days older than `observation_retention_days`, then their
//!   names ([`Ledger::purge_unrecorded`]). The purge walks the whole ledger, so each sweep runs
//!   it only when it can have work ([`Hunt::purge_due`]): none landed whole since start (or
//!   the last failed), a boundary moved (a new day, another retention), an ingest counted a
//!   follow snapshot or a post dated before either boundary, records were deleted or expired,
//!   or an hour of the node's clock passed (the backstop for what the hunt does not see).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::{Clock, DAY_MS};
use crate::hunt::ledger::{Day, Ingested, LedgerLimits, LedgerRows, Touched};
use crate::hunt::observation::{LineRule, MAX_LINE_BYTES, Observation, Parsed, parse_line};
use crate::hunt::successors::{RemovedAccount, SuccessorSettings, SuccessorSnapshot, Successors};
use crate::hunt::suggestions::{Link, SuggestionSettings, links};
use crate::hunt::{Analytics, AnalyticsSettings, Confidence, Curation, Ledger, Snapshot};
use crate::store::{self, Store};

/// Most lines counted and written in one store write; a request's body is cut into chunks of
/// at most this many lines.
pub const MAX_LINES_PER_WRITE: usize = 1_000;
/// Refused lines kept (by number and rule) per request; the count covers them all.
pub const MAX_REFUSALS_KEPT: usize = 1_000;
/// Most rows of a retention purge applied in one store batch: sled frees the leaf copies a batch
/// makes only when it ends, so the batch bounds sled's share of the purge's peak memory (the
/// write set and the purge's own sets are held whatever its size; docs/BENCHMARKS.md, "Soak").
const PURGE_SLICE: usize = 250;
/// How far past now an observation's time may be (clock skew), in ms.
pub const FUTURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;
/// The longest the retention purge waits, by the node's clock, when nothing it sees changed.
const PURGE_RECHECK_MS: u64 = 60 * 60 * 1000;

/// The boundaries a retention purge ran at, and when (the node's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PurgeMark {
    /// The first day kept for every account.
    first_kept: Day,
    /// The first day kept for accounts that are not records.
    unrecorded_first_kept: Day,
    at_ms: u64,
}

/// One line of an observations body (numbered `number`), checked as the hunt takes it at
/// `now_ms`: `None` for a blank line.
pub fn observation_line(number: u64, line: &[u8], now_ms: u64) -> Option<Result<Parsed, LineRule>> {
    let text = std::str::from_utf8(line).map(str::trim);
    Some(match text {
        _ if line.len() > MAX_LINE_BYTES => Err(LineRule::TooLong),
        Err(_) => Err(LineRule::NotAnObject),
        Ok("") => return None,
        Ok(text) => {
            parse_line(text, number, now_ms, FUTURE_TOLERANCE_MS).map_err(|refusal| refusal.rule)
        }
    })
}

/// How the hunt runs in the node (the config's `[hunt]` section).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HuntSettings {
    /// Seconds between recomputations (default 300).
    pub recompute_interval_secs: u64,
    /// Every how many recomputations the seeded runs that give membership confidence run
    /// (default 12: hourly at the default interval); the others run once and carry them.
    pub confidence_every: u32,
    /// Windows, communities, weights.
    pub analytics: AnalyticsSettings,
    /// How long the days of observed accounts that are not records are kept (default 60).
    pub observation_retention_days: u64,
    /// Evidence and language limits.
    pub limits: LedgerLimits,
    /// When an account is suggested for a labelled community.
    pub suggestions: SuggestionSettings,
    /// The membership confidence an account needs to be included in a community share
    /// (default 0.8).
    pub share_min_confidence: f64,
    /// The priority score's weights.
    pub priority: crate::hunt::priority::PriorityWeights,
    /// The successor search (its circle window is the structure window).
    pub successors: SuccessorSettings,
    /// The handling code whose mark every analytics export carries (default H1; the marks are
    /// [`crate::hunt::export::handling_mark`]'s).
    pub export_handling: crossmatch_protocol::Handling,
}

impl Default for HuntSettings {
    fn default() -> Self {
        Self {
            recompute_interval_secs: 300,
            confidence_every: 12,
            analytics: AnalyticsSettings::default(),
            observation_retention_days: 60,
            limits: LedgerLimits::default(),
            suggestions: SuggestionSettings::default(),
            share_min_confidence: 0.8,
            priority: crate::hunt::priority::PriorityWeights::default(),
            successors: SuccessorSettings::default(),
            export_handling: crossmatch_protocol::Handling::H1,
        }
    }
}

/// What ingesting a chunk of lines did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserveCounts {
    /// Lines accepted: new posts and follow snapshots.
    pub accepted: u64,
    /// Posts already counted (and follow snapshots not newer than the one held).
    pub duplicates: u64,
    /// Lines refused.
    pub refused_count: u64,
    /// The first [`MAX_REFUSALS_KEPT`] lines refused: (line number, rule). Never the line.
    pub refused: Vec<(u64, LineRule)>,
    /// References dropped from accepted lines.
    pub dropped_references: u64,
}

impl ObserveCounts {
    /// Adds another chunk's counts.
    pub fn add(&mut self, other: ObserveCounts) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.refused_count += other.refused_count;
        let room = MAX_REFUSALS_KEPT.saturating_sub(self.refused.len());
        self.refused.extend(other.refused.into_iter().take(room));
        self.dropped_references += other.dropped_references;
    }
}

/// Why the hunt failed a call.
#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    /// The store failed; nothing of the chunk was kept.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A lock was poisoned by a panic.
    #[error("the hunt's state is poisoned")]
    Poisoned,
}

/// The hunt's state, shared by the node's clones.
#[derive(Debug)]
pub(super) struct Hunt {
    pub(super) store: Store,
    pub(super) ledger: Mutex<Ledger>,
    /// Held across a chunk's count and write, so writes land in count order.
    writer: Mutex<()>,
    results: Mutex<Arc<Analytics>>,
    /// The analysts' curation as stored (accounts as the analyst named them).
    pub(super) curation: Mutex<Curation>,
    /// The curation with accounts as the analytics show them now, and the latest computation's
    /// strong links to labelled communities (`hunt::suggestions`).
    pub(super) shown: Mutex<(Arc<Curation>, Arc<Vec<Link>>)>,
    /// Held across a curation's audit line and write, so curations land one at a time.
    pub(super) curating: tokio::sync::Mutex<()>,
    /// The removed accounts the successor search runs for (from the records' statuses).
    removed: Mutex<Arc<Vec<RemovedAccount>>>,
    successors: Mutex<Arc<Successors>>,
    computing: AtomicBool,
    changed: AtomicBool,
    last_computed_ms: AtomicU64,
    recomputes: AtomicU64,
    pub(super) wake: Notify,
    pub(super) settings: HuntSettings,
    pub(super) clock: Arc<dyn Clock>,
    /// Community share previews not yet used or expired (`daemon/share.rs`).
    pub(super) previews: Mutex<super::share::Previews>,
    /// The last purge that landed whole; `None` before the first and after a failed one.
    purged: Mutex<Option<PurgeMark>>,
    /// An ingest since the last purge counted what that purge would have removed.
    purge_work: AtomicBool,
    /// Records were deleted or expired since the records the last purge read.
    records_gone: AtomicBool,
}

impl Hunt {
    /// Opens the hunt: the ledger rebuilt from the store's rows.
    pub(super) fn open(
        store: Store,
        settings: HuntSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, HuntError> {
        let ledger = Ledger::from_rows(settings.limits, store.hunt_rows()?);
        let curation = store.curation()?;
        let changed = ledger.last_day().is_some();
        let shown = curation.resolved(|form| shown_form(&ledger, form));
        Ok(Self {
            store,
            ledger: Mutex::new(ledger),
            writer: Mutex::new(()),
            results: Mutex::new(Arc::new(Analytics::default())),
            curation: Mutex::new(curation),
            shown: Mutex::new((Arc::new(shown), Arc::new(Vec::new()))),
            curating: tokio::sync::Mutex::new(()),
            removed: Mutex::new(Arc::new(Vec::new())),
            successors: Mutex::new(Arc::new(Successors::default())),
            computing: AtomicBool::new(false),
            changed: AtomicBool::new(changed),
            last_computed_ms: AtomicU64::new(0),
            recomputes: AtomicU64::new(0),
            wake: Notify::new(),
            settings,
            clock,
            previews: Mutex::new(super::share::Previews::default()),
            purged: Mutex::new(None),
            purge_work: AtomicBool::new(false),
            records_gone: AtomicBool::new(false),
        })
    }

    /// Parses, counts and durably writes one chunk of (line number, line) pairs. Blocking.
    pub(super) fn ingest(&self, lines: &[(u64, Vec<u8>)]) -> Result<ObserveCounts, HuntError> {
        let now = self.clock.now_ms();
        let mut counts = ObserveCounts::default();
        let mut parsed = Vec::with_capacity(lines.len());
        for (number, line) in lines {
            let Some(result) = observation_line(*number, line, now) else { continue };
            match result {
                Ok(line) => {
                    counts.dropped_references += u64::from(line.dropped_references);
                    parsed.push(line.observation);
                }
                Err(rule) => {
                    counts.refused_count += 1;
                    if counts.refused.len() < MAX_REFUSALS_KEPT {
                        counts.refused.push((*number, rule));
                    }
                }
            }
        }
        let _writer = self.writer.lock().map_err(|_| HuntError::Poisoned)?;
        let rows = {
            let mut ledger = self.ledger.lock().map_err(|_| HuntError::Poisoned)?;
            let mut touched = Touched::default();
            // Counted work for the next purge: a follow snapshot (the accounts it names may
            // be seen nowhere else), or a post dated before the last purge's boundaries.
            let purged_before = self.purged_before()?;
            let mut purge_work = false;
            for observation in &parsed {
                match ledger.ingest_tracked(observation, &mut touched) {
                    Ingested::Post => {
                        counts.accepted += 1;
                        if let Observation::Post(post) = observation {
                            let day = Day::of_ms(post.at_ms);
                            purge_work |= purged_before.is_some_and(|before| day < before);
                        }
                    }
                    Ingested::Follows => {
                        counts.accepted += 1;
                        purge_work = true;
                    }
                    Ingested::DuplicatePost | Ingested::OlderFollows => counts.duplicates += 1,
                }
            }
            if purge_work {
                self.purge_work.store(true, Ordering::Release);
            }
            ledger.delta(&touched)
        };
        let mut txn = self.store.txn();
        txn.put_hunt_rows(&rows);
        if let Err(error) = txn.commit_durable() {
            self.reload()?;
            return Err(error.into());
        }
        if counts.accepted > 0 {
            self.changed.store(true, Ordering::Release);
            self.wake.notify_one();
        }
        Ok(counts)
    }

    /// Rebuilds the ledger from the store (after a failed write).
    fn reload(&self) -> Result<(), HuntError> {
        let rebuilt = Ledger::from_rows(self.settings.limits, self.store.hunt_rows()?);
        *self.ledger.lock().map_err(|_| HuntError::Poisoned)? = rebuilt;
        Ok(())
    }

    /// Recomputes the analytics now, unless a computation is running: with the seeded runs
    /// every `confidence_every`th time (the first time included), else with one run and the
    /// confidences carried. Blocking. Returns whether it computed.
    pub(super) fn recompute(&self) -> Result<bool, HuntError> {
        let every = u64::from(self.settings.confidence_every.max(1));
        self.compute(self.recomputes().is_multiple_of(every))
    }

    /// Computes, with the seeded runs when `runs`, else with one run and the confidences
    /// carried.
    pub(super) fn compute(&self, runs: bool) -> Result<bool, HuntError> {
        if self.computing.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        let _done = Finally(|| self.computing.store(false, Ordering::Release));
        self.changed.store(false, Ordering::Release);
        let now = self.clock.now_ms();
        let today = Day::of_ms(now);
        let removed = self.removed.lock().map(|held| held.clone()).unwrap_or_default();
        let successor_settings = SuccessorSettings {
            circle_days: self.settings.analytics.structure_days,
            ..self.settings.successors
        };
        // Two short holds of the ledger's lock rather than one long one, so an ingest or a
        // request that needs the ledger waits for one snapshot at most.
        let (snapshot, curation) = {
            let ledger = self.ledger.lock().map_err(|_| HuntError::Poisoned)?;
            let curation = self.curation.lock().map_err(|_| HuntError::Poisoned)?;
            let shown = curation.resolved(|form| shown_form(&ledger, form));
            (Snapshot::take(&ledger, today, self.settings.analytics), shown)
        };
        let successor_snapshot = {
            let ledger = self.ledger.lock().map_err(|_| HuntError::Poisoned)?;
            SuccessorSnapshot::take(&ledger, &removed, now, successor_settings)
        };
        let successors = successor_snapshot.compute();
        *self.successors.lock().map_err(|_| HuntError::Poisoned)? = Arc::new(successors);
        let previous = self.results();
        let confidence =
            if runs { Confidence::Runs } else { Confidence::Carried { previous: &previous } };
        let known = curation.previous(previous.known());
        match snapshot.compute_curated(&known, previous.next_id, confidence, &curation) {
            Ok(results) => {
                let strong = links(
                    &snapshot.graph().directed,
                    snapshot.names(),
                    &results,
                    self.settings.suggestions,
                );
                *self.shown.lock().map_err(|_| HuntError::Poisoned)? =
                    (Arc::new(curation), Arc::new(strong));
                *self.results.lock().map_err(|_| HuntError::Poisoned)? = Arc::new(results);
                self.last_computed_ms.store(now, Ordering::Release);
                self.recomputes.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                // Still changed: the next tick tries again.
                self.changed.store(true, Ordering::Release);
                tracing::error!(%error, "hunt recompute failed");
            }
        }
        Ok(true)
    }

    /// Notes that the analytics need recomputing (a curation changed).
    pub(super) fn mark_changed(&self) {
        self.changed.store(true, Ordering::Release);
    }

    /// Recomputes now, as [`Hunt::recompute`]; false when a computation was already running
    /// (it stays marked changed, so the task's next turn applies what changed).
    pub(super) fn compute_now(&self) -> Result<bool, HuntError> {
        let computed = self.recompute()?;
        if !computed {
            self.mark_changed();
        }
        Ok(computed)
    }

    /// Whether a recomputation is due at `now`: something changed and the last one is at
    /// least an interval old.
    fn due(&self, now: u64) -> bool {
        let interval = self.settings.recompute_interval_secs.saturating_mul(1000);
        self.changed.load(Ordering::Acquire)
            && now.saturating_sub(self.last_computed_ms.load(Ordering::Acquire)) >= interval
    }

    /// When the unit last saw each of `names` (canonical forms) post, for those the ledger
    /// knows: what the takedown clock checks a removal against. Blocking (the ledger's lock).
    pub(super) fn last_seen(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, u64>, HuntError> {
        let ledger = self.ledger.lock().map_err(|_| HuntError::Poisoned)?;
        Ok(names
            .iter()
            .filter_map(|name| {
                let canonical: crossmatch_protocol::Canonical = name.parse().ok()?;
                let (_, last) = ledger.seen(ledger.account_of(&canonical)?)?;
                Some((name.clone(), last))
            })
            .collect())
    }

    /// The latest analytics.
    pub(super) fn results(&self) -> Arc<Analytics> {
        self.results.lock().map(|held| held.clone()).unwrap_or_default()
    }

    /// The posts per day each of `accounts` (a record's identifiers each) made over the latest
    /// computation's activity window, rounded down to its bucket
    /// ([`crossmatch_protocol::activity_bucket`]); `None` for an account not observed there, or
    /// one whose figure rounds to 0. An identifier is looked up through the ledger's aliases,
    /// so an old handle or an account id finds its account.
    pub(super) fn observed_activity(
        &self,
        accounts: &[Vec<crossmatch_protocol::Canonical>],
    ) -> Result<Vec<Option<u64>>, HuntError> {
        let results = self.results();
        let days = results.activity_window.map_or(1, |w| w.last.0.saturating_sub(w.first.0) + 1);
        let by_name: std::collections::HashMap<&str, u32> = results
            .accounts
            .iter()
            .map(|account| (account.account.as_str(), account.activity.posts()))
            .collect();
        let ledger = self.ledger.lock().map_err(|_| HuntError::Poisoned)?;
        Ok(accounts
            .iter()
            .map(|identifiers| {
                let posts = identifiers.iter().find_map(|identifier| {
                    let display = ledger.display(ledger.account_of(identifier)?)?;
                    by_name.get(display.as_str()).copied()
                })?;
                let bucket =
                    crossmatch_protocol::activity_bucket(u64::from(posts) / u64::from(days));
                (bucket > 0).then_some(bucket)
            })
            .collect())
    }

    /// The latest successor search.
    pub(super) fn successors(&self) -> Arc<Successors> {
        self.successors.lock().map(|held| held.clone()).unwrap_or_default()
    }

    /// Sets the removed accounts the next computations search successors for; a change marks
    /// the hunt changed, so the next tick recomputes.
    pub(super) fn set_removed(&self, removed: Vec<RemovedAccount>) -> Result<(), HuntError> {
        let mut held = self.removed.lock().map_err(|_| HuntError::Poisoned)?;
        if **held != removed {
            *held = Arc::new(removed);
            self.changed.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Computations finished since start.
    pub(super) fn recomputes(&self) -> u64 {
        self.recomputes.load(Ordering::Relaxed)
    }

    /// The first days kept at `now`: for every account, and for accounts that are not records.
    fn boundaries(&self, now: u64, max_retention_ms: u64) -> (Day, Day) {
        let first_kept = Day::of_ms(now.saturating_sub(max_retention_ms).saturating_add(DAY_MS));
        let unrecorded_ms = self.settings.observation_retention_days.saturating_mul(DAY_MS);
        (first_kept, Day::of_ms(now.saturating_sub(unrecorded_ms).saturating_add(DAY_MS)))
    }

    /// The later of the last whole purge's boundaries: an observation dated before it is work
    /// for the next purge. `None` before the first purge, which is due anyway.
    fn purged_before(&self) -> Result<Option<Day>, HuntError> {
        let mark = *self.purged.lock().map_err(|_| HuntError::Poisoned)?;
        Ok(mark.map(|mark| mark.first_kept.max(mark.unrecorded_first_kept)))
    }

    /// Whether [`Hunt::purge`] can have work now: no purge landed whole yet, a boundary moved
    /// since the last (a new day, or another retention), an ingest since then counted what
    /// it would remove, records were noted gone ([`Hunt::note_records_gone`]), the clock went
    /// back past the last purge, or [`PURGE_RECHECK_MS`] of the node's clock passed (records
    /// that stopped being records by a way the hunt is not told of).
    pub(super) fn purge_due(&self, max_retention_ms: u64) -> bool {
        let now = self.clock.now_ms();
        let Ok(Some(mark)) = self.purged.lock().as_deref().copied() else { return true };
        let (first_kept, unrecorded_first_kept) = self.boundaries(now, max_retention_ms);
        self.purge_work.load(Ordering::Acquire)
            || self.records_gone.load(Ordering::Acquire)
            || (mark.first_kept, mark.unrecorded_first_kept) != (first_kept, unrecorded_first_kept)
            || now < mark.at_ms
            || now - mark.at_ms >= PURGE_RECHECK_MS
    }

    /// Notes that records were deleted or expired: their accounts may lose older days now.
    pub(super) fn note_records_gone(&self) {
        self.records_gone.store(true, Ordering::Release);
    }

    /// Takes the note of records gone, before the records are read for a purge (a record
    /// deleted after the read is noted for the next one).
    pub(super) fn take_records_gone(&self) -> bool {
        self.records_gone.swap(false, Ordering::AcqRel)
    }

    /// Applies retention at now: days before the node's retention go, and accounts that are
    /// not records (`records` holds the records' canonical forms) lose their older days and
    /// then their names. Blocking. Returns the rows deleted or rewritten.
    pub(super) fn purge(
        &self,
        max_retention_ms: u64,
        records: &std::collections::HashSet<String>,
    ) -> Result<usize, HuntError> {
        let now = self.clock.now_ms();
        let (first_kept, unrecorded_first_kept) = self.boundaries(now, max_retention_ms);
        let _writer = self.writer.lock().map_err(|_| HuntError::Poisoned)?;
        // Ingests wait for the writer lock: what they count from now on is the next purge's.
        self.purge_work.store(false, Ordering::Release);
        *self.purged.lock().map_err(|_| HuntError::Poisoned)? = None;
        let mark = PurgeMark { first_kept, unrecorded_first_kept, at_ms: now };
        let mut txn = self.store.txn();
        // The store's read first: once the ledger below has purged, only a reload could give
        // a failed purge's rows back to the next one.
        let mut count = txn.purge_hunt_days_before(first_kept)?;
        let (purged, mut unrecorded) = {
            let mut ledger = self.ledger.lock().map_err(|_| HuntError::Poisoned)?;
            let purged = ledger.purge_before_rows(first_kept);
            let is_record = |names: &[&crossmatch_protocol::Canonical]| {
                names.iter().any(|name| records.contains(name.as_str()))
            };
            (purged, ledger.purge_unrecorded(unrecorded_first_kept, &is_record))
        };
        // The seen hashes go last, in a write of their own: the write set lands in key order,
        // and `s` sorts before the edges (`y`), so in one write a crash between slices could
        // leave a purged post's edges without its seen hash, and the post, sent again, would
        // be counted twice there.
        let (seen_gone, seen_rewritten) =
            std::mem::take(&mut unrecorded.seen).into_iter().partition(|(_, row)| row.is_none());
        unrecorded.seen = seen_rewritten;
        let seen_gone = LedgerRows { seen: seen_gone, ..LedgerRows::default() };
        txn.put_hunt_rows(&purged);
        txn.put_hunt_rows(&unrecorded);
        count += purged.follows.len() + unrecorded.accounts.len() + unrecorded.day_accounts.len();
        count += unrecorded.edges.len() + unrecorded.aliases.len();
        count += unrecorded.seen.len() + seen_gone.seen.len();
        if count == 0 {
            *self.purged.lock().map_err(|_| HuntError::Poisoned)? = Some(mark);
            return Ok(0);
        }
        // In slices: a day's purge can be tens of thousands of rows (see
        // `Txn::commit_durable_in_slices`). A crash between two leaves rows that the next
        // purge, derived again from what the store holds, removes; aliases (`l`) sort before
        // the accounts they name (`n`), so none is left naming an account emptied, and a
        // rebuild keeps every slot a leftover edge (`y`) names out of reuse
        // (`Ledger::from_rows`).
        let committed = txn.commit_durable_in_slices(PURGE_SLICE).and_then(|()| {
            let mut txn = self.store.txn();
            txn.put_hunt_rows(&seen_gone);
            txn.commit_durable_in_slices(PURGE_SLICE)
        });
        if committed.is_err() {
            // Some slices may have landed: the ledger is read again.
            self.reload()?;
        }
        // Landed whole or in part, the ledger is new to analytics.
        self.changed.store(true, Ordering::Release);
        committed?;
        *self.purged.lock().map_err(|_| HuntError::Poisoned)? = Some(mark);
        Ok(count)
    }
}

/// How the ledger shows the account a canonical form names now (its newest handle), if known.
pub(super) fn shown_form(ledger: &Ledger, form: &str) -> Option<String> {
    let canonical: crossmatch_protocol::Canonical = form.parse().ok()?;
    let account = ledger.account_of(&canonical)?;
    ledger.display(account).map(|shown| shown.as_str().to_owned())
}

/// Runs a closure when dropped.
struct Finally<F: FnMut()>(F);

impl<F: FnMut()> Drop for Finally<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// The recompute task: every interval when something changed (the removed accounts read from
/// the records' statuses at each tick), and after an ingest when due.
pub(super) async fn recompute_task(node: super::Node, stop: impl Future<Output = ()>) {
    let hunt = node.hunt.clone();
    let mut stop = std::pin::pin!(stop);
    let interval = Duration::from_secs(hunt.settings.recompute_interval_secs.max(1));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = ticker.tick() => {
                if let Err(error) = node.refresh_removed().await {
                    tracing::error!(%error, "reading the removed accounts failed");
                }
            }
            () = hunt.wake.notified() => {
                if !hunt.due(hunt.clock.now_ms()) {
                    continue;
                }
            }
        }
        if !hunt.changed.load(Ordering::Acquire) {
            continue;
        }
        let working = hunt.clone();
        match tokio::task::spawn_blocking(move || working.recompute()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "hunt recompute failed"),
            Err(_) => tracing::error!("hunt recompute panicked"),
        }
    }
}

#[cfg(all(test, feature = "test-support"))]
mod tests {
    use super::*;
    use crate::hunt::Window;
    use crate::test_support::{ManualClock, TempDir};

    const NOW: u64 = 1_800_000_000_000;

    fn lines(text: &str) -> Vec<(u64, Vec<u8>)> {
        text.lines().enumerate().map(|(n, l)| (n as u64 + 1, l.as_bytes().to_vec())).collect()
    }

    fn post(account: &str, id: u32, at_ms: u64, repost_of: &str) -> String {
        format!(
            r#"{{"platform":"x","account":"@{account}","at":{at_ms},"post_id":"{id}","repost_of":"@{repost_of}"}}"#
        )
    }

    fn all_days() -> Window {
        Window { first: Day(0), last: Day(u32::MAX) }
    }

    fn posts_of(hunt: &Hunt, handle: &str) -> Option<u32> {
        let ledger = hunt.ledger.lock().unwrap();
        let account = ledger.account_of(&crate::test_support::account(handle))?;
        Some(ledger.window_activity(all_days()).get(&account).map_or(0, |a| a.posts()))
    }

    #[test]
    fn a_write_lost_in_a_crash_is_counted_once_when_the_file_is_sent_again() {
        let dir = TempDir::new("hunt-crash");
        let clock = Arc::new(ManualClock::new(NOW));
        let first: Vec<String> = (0..10).map(|i| post("a", i, NOW - 1000, "b")).collect();
        let second: Vec<String> = (10..20).map(|i| post("a", i, NOW - 1000, "c")).collect();
        {
            let store = Store::open(dir.path()).unwrap();
            store.keep_last_batch();
            let hunt = Hunt::open(store.clone(), HuntSettings::default(), clock.clone()).unwrap();
            assert_eq!(hunt.ingest(&lines(&first.join("\n"))).unwrap().accepted, 10);
            assert_eq!(hunt.ingest(&lines(&second.join("\n"))).unwrap().accepted, 10);
            // A crash that lost the second chunk's write: the store holds the first only.
            store.drop_last_batch().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let hunt = Hunt::open(store, HuntSettings::default(), clock.clone()).unwrap();
        assert_eq!(posts_of(&hunt, "@a"), Some(10), "the first chunk survived, whole");
        assert_eq!(posts_of(&hunt, "@c"), None, "nothing of the lost chunk");
        // The client sends the whole file again.
        let whole = [first, second].concat().join("\n");
        let counts = hunt.ingest(&lines(&whole)).unwrap();
        assert_eq!((counts.accepted, counts.duplicates), (10, 10));
        assert_eq!(posts_of(&hunt, "@a"), Some(20));
        let counts = hunt.ingest(&lines(&whole)).unwrap();
        assert_eq!((counts.accepted, counts.duplicates), (0, 20), "a third time changes nothing");
        drop(hunt);
        let hunt =
            Hunt::open(Store::open(dir.path()).unwrap(), HuntSettings::default(), clock).unwrap();
        assert_eq!(posts_of(&hunt, "@a"), Some(20), "and the counts survive a reopen");
        let ledger = hunt.ledger.lock().unwrap();
        let a = ledger.account_of(&crate::test_support::account("@a")).unwrap();
        let edges = ledger.window_edges(all_days(), &ledger.window_activity(all_days()), 0.5);
        let c = ledger.account_of(&crate::test_support::account("@c")).unwrap();
        assert_eq!(edges[&(a, c)], 10.0);
    }

    #[test]
    fn a_shared_accounts_activity_is_its_observed_posts_per_day_rounded_down_to_a_bucket() {
        let dir = TempDir::new("hunt-activity");
        let clock = Arc::new(ManualClock::new(NOW));
        let hunt =
            Hunt::open(Store::open(dir.path()).unwrap(), HuntSettings::default(), clock).unwrap();
        let corpus: Vec<String> = (0..37).map(|i| post("busy", i, NOW - 1000, "fan")).collect();
        hunt.ingest(&lines(&corpus.join("\n"))).unwrap();
        assert!(hunt.recompute().unwrap());
        let account = crate::test_support::account;
        let asked = [
            vec![account("@busy")],
            vec![account("@unseen"), account("@busy")],
            vec![account("@fan")],
            vec![account("@unseen")],
        ];
        // 37 posts in the one-day window: the bucket 20. The fan only was reposted: no figure.
        assert_eq!(hunt.observed_activity(&asked).unwrap(), vec![Some(20), Some(20), None, None]);
    }

    #[test]
    fn retention_purges_old_days_and_forgets_accounts_that_are_not_records_sooner() {
        let dir = TempDir::new("hunt-retention");
        let clock = Arc::new(ManualClock::new(NOW));
        let store = Store::open(dir.path()).unwrap();
        let hunt = Hunt::open(store, HuntSettings::default(), clock.clone()).unwrap();
        let corpus = [post("suspect", 1, NOW - 1000, "fan"), post("fan", 2, NOW - 1000, "suspect")];
        hunt.ingest(&lines(&corpus.join("\n"))).unwrap();
        let records: std::collections::HashSet<String> =
            [crate::test_support::account("@suspect").into_string()].into();
        let year = 365 * DAY_MS;
        // 59 days on: nothing is due.
        clock.advance(59 * DAY_MS);
        assert_eq!(hunt.purge(year, &records).unwrap(), 0);
        assert_eq!(posts_of(&hunt, "@fan"), Some(1));
        // 61 days on: the account that is not a record loses its day, then its name.
        clock.advance(2 * DAY_MS);
        assert!(hunt.purge(year, &records).unwrap() > 0);
        assert_eq!(posts_of(&hunt, "@fan"), Some(0), "still named: the record reposted it");
        assert_eq!(posts_of(&hunt, "@suspect"), Some(1), "the record's day stays");
        assert_eq!(hunt.ledger.lock().unwrap().post_count(), 1, "the fan's seen hash went too");
        drop(hunt);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.hunt_rows().unwrap().seen.len(), 1, "and its row");
        let reopened = Hunt::open(store, HuntSettings::default(), clock.clone()).unwrap();
        assert_eq!(posts_of(&reopened, "@fan"), Some(0), "the purge was written");
        assert_eq!(posts_of(&reopened, "@suspect"), Some(1));
        assert_eq!(reopened.ledger.lock().unwrap().post_count(), 1);
        // Past the node's retention, everything observed that day goes; re-sending it counts it
        // again only as new (the seen hashes went with the day), which is what retention means.
        clock.advance(year);
        assert!(reopened.purge(year, &records).unwrap() > 0);
        assert_eq!(posts_of(&reopened, "@suspect"), Some(0));
        assert_eq!(reopened.ledger.lock().unwrap().post_count(), 0);
        drop(reopened);
        let store = Store::open(dir.path()).unwrap();
        let rows = store.hunt_rows().unwrap();
        assert!(rows.day_accounts.is_empty() && rows.edges.is_empty() && rows.seen.is_empty());
        // The fan, no record and not seen for a year, is forgotten: no alias names it.
        assert!(
            rows.aliases.iter().all(|(alias, _)| !alias.ends_with("|fan")),
            "{:?}",
            rows.aliases
        );
    }

    #[test]
    fn the_retention_purge_is_due_only_when_it_can_have_work() {
        let dir = TempDir::new("hunt-purge-due");
        // NOW is 8 hours into its day: an hour on stays within it.
        let clock = Arc::new(ManualClock::new(NOW));
        let store = Store::open(dir.path()).unwrap();
        let hunt = Hunt::open(store, HuntSettings::default(), clock.clone()).unwrap();
        let (year, records) = (365 * DAY_MS, std::collections::HashSet::new());
        hunt.ingest(&lines(&post("a", 1, NOW - 1000, "b"))).unwrap();
        assert!(hunt.purge_due(year), "no purge yet");
        assert_eq!(hunt.purge(year, &records).unwrap(), 0);
        assert!(!hunt.purge_due(year), "nothing changed");
        hunt.ingest(&lines(&post("a", 2, NOW - 500, "b"))).unwrap();
        clock.advance(PURGE_RECHECK_MS - 1);
        assert!(!hunt.purge_due(year), "a recent post is no work for the purge");
        assert!(hunt.purge_due(30 * DAY_MS), "another retention moves a boundary");
        // A post dated before the boundary of accounts that are not records (60 days).
        hunt.ingest(&lines(&post("old", 3, NOW - 90 * DAY_MS, "nobody"))).unwrap();
        assert!(hunt.purge_due(year));
        assert!(hunt.purge(year, &records).unwrap() > 0, "the old day goes");
        assert!(!hunt.purge_due(year));
        // A follow snapshot: the accounts it names may be seen nowhere else.
        let follows = format!(r#"{{"platform":"x","account":"@a","at":{NOW},"follows":["@z"]}}"#);
        hunt.ingest(&lines(&follows)).unwrap();
        assert!(hunt.purge_due(year));
        assert!(hunt.purge(year, &records).unwrap() > 0, "@z, seen nowhere else, is forgotten");
        assert!(!hunt.purge_due(year));
        // Records deleted or expired: their accounts may lose older days.
        hunt.note_records_gone();
        assert!(hunt.purge_due(year));
        assert!(hunt.take_records_gone() && !hunt.take_records_gone(), "taken once");
        assert!(!hunt.purge_due(year));
        // An hour of the clock: records may have stopped being records meanwhile.
        clock.advance(PURGE_RECHECK_MS);
        assert!(hunt.purge_due(year));
        assert_eq!(hunt.purge(year, &records).unwrap(), 0);
        // A minute before midnight nothing is due; two minutes on, a new day moves both
        // boundaries, an hour short of the recheck.
        clock.advance(DAY_MS - clock.now_ms() % DAY_MS - 60_000);
        hunt.purge(year, &records).unwrap();
        assert!(!hunt.purge_due(year));
        clock.advance(120_000);
        assert!(hunt.purge_due(year), "a new day moves both boundaries");
        hunt.purge(year, &records).unwrap();
        assert!(!hunt.purge_due(year));
    }
}
