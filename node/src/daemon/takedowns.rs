//! The takedown clocks in the node: the report (the engine's inputs, the hunt's sightings, then
//! the pure evaluation, with no lock held across both), the audited read behind
//! `GET /v1/takedowns`, and the sweep the timer runs: budget warnings, grouped into one log line
//! per sweep and kept in a bounded event list (for the live alert stream), the figures
//! `/metrics` shows (a time-to-removal histogram on the unit clock, the overdue gauge), and,
//! once an hour, the purge of the takedown facts of tokens nothing holds any more.
//!
//! Warnings and the histogram live in memory: after a restart, a record past the warning share
//! warns once more, and removals are observed again into the fresh histogram (as every
//! Prometheus counter starts again at a restart).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use crate::engine::takedowns::{TakedownReport, TakedownSettings, evaluate};

use super::{Error, Lane, Node, Result};

/// Most warnings kept for readers; the oldest go first.
pub const MAX_TAKEDOWN_EVENTS: usize = 4096;
/// Upper bounds (seconds) of the time-to-removal histogram's buckets, around the 2-hour goal.
pub const TIME_TO_REMOVAL_BUCKETS_SECS: [u64; 9] =
    [600, 1_800, 3_600, 5_400, 7_200, 10_800, 21_600, 43_200, 86_400];
/// How often the sweep purges the takedown facts of tokens nothing holds any more.
const PURGE_EVERY_MS: u64 = 3_600_000;
/// Most records named in one grouped warning line (the count is always whole).
const RECORDS_PER_LOG_LINE: usize = 20;

/// One budget warning, for the live alert stream: never a raw identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakedownEvent {
    /// Increasing from 1 since start.
    pub seq: u64,
    /// When the sweep raised it (Unix ms).
    pub at_ms: u64,
    /// The record.
    pub record: u64,
    /// Its token prefix.
    pub token_short: String,
    /// The deadline it warns of (Unix ms).
    pub deadline_ms: u64,
    /// Past the deadline already when raised.
    pub overdue: bool,
}

/// The figures `/metrics` shows, as of the last sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakedownMetrics {
    /// Removals observed per bucket of [`TIME_TO_REMOVAL_BUCKETS_SECS`] (not cumulative), and
    /// one more for those beyond the last bound.
    pub removal_buckets: Vec<u64>,
    /// Sum of the observed times to removal (ms).
    pub removal_sum_ms: u64,
    /// Non-backlog records overdue at the last sweep.
    pub overdue: u64,
    /// Warnings raised since start.
    pub warnings: u64,
    /// Sweeps done since start.
    pub sweeps: u64,
}

/// The report with the asserting members resolved, for the API.
#[derive(Debug, Clone)]
pub struct TakedownView {
    /// The report.
    pub report: TakedownReport,
    /// Per account (same order), the member id that asserted the removal in force.
    pub removed_by: Vec<Option<String>>,
}

/// What the sweeps keep between them.
#[derive(Debug, Default)]
struct Watched {
    warned: HashSet<(u64, u64)>,
    events: VecDeque<TakedownEvent>,
    next_seq: u64,
    observed_removals: HashSet<u64>,
    metrics: TakedownMetrics,
    /// When the takedown facts of forgotten tokens were last purged (Unix ms).
    last_purge_ms: u64,
}

/// The node's takedown watch.
#[derive(Debug)]
pub(super) struct TakedownWatch {
    settings: TakedownSettings,
    watched: Mutex<Watched>,
}

impl TakedownWatch {
    pub(super) fn new(settings: TakedownSettings) -> Self {
        let metrics = TakedownMetrics {
            removal_buckets: vec![0; TIME_TO_REMOVAL_BUCKETS_SECS.len() + 1],
            ..TakedownMetrics::default()
        };
        Self { settings, watched: Mutex::new(Watched { metrics, ..Watched::default() }) }
    }
}

impl Node {
    /// The report now: the engine's inputs (and, when `audit_user` is given, the read's audit
    /// line, before anything is read), then the hunt's sightings of the records' accounts,
    /// then the evaluation, each step under its own lock only. Without `audit_user` (the
    /// sweep's report) it holds the budgeted records only, and no federation totals: all the
    /// sweep reads.
    async fn takedown_report(&self, audit_user: Option<String>) -> Result<TakedownReport> {
        let inputs = self
            .call(Lane::Api, move |engine| match audit_user {
                Some(user) => {
                    engine.audit_hunt(&user, crate::audit::Action::ReadAnalytics, "takedowns")?;
                    engine.takedown_inputs()
                }
                None => engine.budgeted_takedown_inputs(),
            })
            .await??;
        let names: Vec<String> =
            inputs.records.iter().flat_map(|record| record.accounts.iter().cloned()).collect();
        let hunt = self.hunt.clone();
        let seen = tokio::task::spawn_blocking(move || hunt.last_seen(&names))
            .await
            .map_err(|_| Error::EngineTask)??;
        let now = self.clock.now_ms();
        let settings = self.takedowns.settings;
        Ok(evaluate(&inputs, |name| seen.get(name).copied(), now, &settings))
    }

    /// Every record's takedown clock, totals and p50 / p90 on both clocks, and the federation's
    /// totals. No raw identifier; the read is audited under `user` all the same.
    pub async fn takedowns(&self, user: String) -> Result<TakedownView> {
        let report = self.takedown_report(Some(user)).await?;
        let removed_by = report
            .accounts
            .iter()
            .map(|clock| clock.removed_by.and_then(|origin| self.roster.member_id(&origin)))
            .collect();
        Ok(TakedownView { report, removed_by })
    }

    /// The sweep (the timer runs it; tests call it with an injected clock): raises the warnings
    /// due, in one grouped log line, observes new removals into the histogram and sets the
    /// overdue gauge. Returns the warnings raised.
    pub async fn sweep_takedowns(&self) -> Result<Vec<TakedownEvent>> {
        let now = self.clock.now_ms();
        let purge_due = self
            .takedowns
            .watched
            .lock()
            .map(|watched| now.saturating_sub(watched.last_purge_ms) >= PURGE_EVERY_MS)
            .unwrap_or(false);
        if purge_due {
            self.blocking(|engine| engine.purge_takedown_facts()).await??;
            if let Ok(mut watched) = self.takedowns.watched.lock() {
                watched.last_purge_ms = now;
            }
        }
        let report = self.takedown_report(None).await?;
        let watch = &self.takedowns;
        // The lock is held in this block only: the event log's write below awaits.
        let raised = {
            let mut watched = watch.watched.lock().map_err(|_| Error::EngineTask)?;
            let due = report.warnings_due(&watch.settings, &watched.warned);
            let mut raised = Vec::with_capacity(due.len());
            for warning in due {
                watched.warned.insert((warning.record, warning.deadline_ms));
                watched.next_seq += 1;
                let event = TakedownEvent {
                    seq: watched.next_seq,
                    at_ms: report.now_ms,
                    record: warning.record,
                    token_short: warning.token_short,
                    deadline_ms: warning.deadline_ms,
                    overdue: warning.overdue,
                };
                watched.events.push_back(event.clone());
                raised.push(event);
            }
            while watched.events.len() > MAX_TAKEDOWN_EVENTS {
                watched.events.pop_front();
            }
            // Forget warnings of records that are gone, so the set stays bounded by the records
            // (a backlog record, left out of the report, never warns nor is observed).
            let listed: HashSet<u64> = report.accounts.iter().map(|clock| clock.record).collect();
            watched.warned.retain(|(record, _)| listed.contains(record));
            for clock in report.accounts.iter().filter(|clock| !clock.backlog) {
                let Some(removal) = clock.time_to_removal else { continue };
                if clock.removed_at_ms.is_none() || !watched.observed_removals.insert(clock.record)
                {
                    continue;
                }
                let secs = removal.unit_ms / 1000;
                let bucket = TIME_TO_REMOVAL_BUCKETS_SECS
                    .iter()
                    .position(|bound| secs <= *bound)
                    .unwrap_or(TIME_TO_REMOVAL_BUCKETS_SECS.len());
                watched.metrics.removal_buckets[bucket] += 1;
                watched.metrics.removal_sum_ms += removal.unit_ms;
            }
            watched.observed_removals.retain(|record| listed.contains(record));
            watched.metrics.overdue = report.summary.overdue as u64;
            watched.metrics.warnings += raised.len() as u64;
            watched.metrics.sweeps += 1;
            raised
        };
        if !raised.is_empty() {
            // Into the alert event log too (one durable write), for the stream and the webhook.
            // Warnings are remembered in memory only: after a restart a record warns again.
            let warnings = raised
                .iter()
                .map(|event| crate::store::events::EventTakedown {
                    record: event.record,
                    token_short: event.token_short.clone(),
                    deadline_ms: event.deadline_ms,
                    overdue: event.overdue,
                })
                .collect();
            self.blocking(move |engine| engine.append_takedown_events(warnings)).await??;
            let named: Vec<String> = raised
                .iter()
                .take(RECORDS_PER_LOG_LINE)
                .map(|event| format!("{}:{}", event.record, event.token_short))
                .collect();
            tracing::warn!(
                count = raised.len(),
                overdue = raised.iter().filter(|event| event.overdue).count(),
                records = %named.join(","),
                share = watch.settings.warning_share,
                "takedown budget warning"
            );
        }
        Ok(raised)
    }

    /// The warnings raised since start with a seq after `after_seq`, oldest first (at most
    /// [`MAX_TAKEDOWN_EVENTS`] are kept).
    pub fn takedown_events(&self, after_seq: u64) -> Vec<TakedownEvent> {
        self.takedowns
            .watched
            .lock()
            .map(|watched| {
                watched.events.iter().filter(|event| event.seq > after_seq).cloned().collect()
            })
            .unwrap_or_default()
    }

    /// The takedown clock's budgets.
    pub fn takedown_settings(&self) -> TakedownSettings {
        self.takedowns.settings
    }

    /// The takedown figures as of the last sweep (`/metrics`).
    pub fn takedown_metrics(&self) -> TakedownMetrics {
        self.takedowns.watched.lock().map(|watched| watched.metrics.clone()).unwrap_or_default()
    }
}
