//! The alert event log (`E`) and the webhook's delivery state (`D`): the rows, and the reads
//! the daemon's pump, stream and webhook make without the engine lock. The engine appends
//! (`engine/alerts.rs`), always in the write that changes the alert row the event reports.
//! The high-water file beside the store, which catches a store put back from a copy, is in
//! `events/high_water.rs`.

pub mod high_water;

use serde::{Deserialize, Serialize};

use super::{Alert, AlertState, Counterpart, RecordId, Result, Store, keys};

/// The `m` key holding the last event seq issued.
pub const EVENT_SEQ: &str = "event-seq";
/// The `m` key holding the store's event incarnation (drawn at random, see [`EventMeta`]).
pub const EVENT_INCARNATION: &str = "event-incarnation";
/// The `m` key holding the first seq of the current incarnation.
pub const EVENT_INCARNATION_FROM: &str = "event-incarnation-from";
/// The `m` key set (to `true`) once the high-water file beside the store has been written:
/// from then on a missing file means the store was put in a directory that lacks it (a
/// restore), not the first start of a version that writes it.
pub const EVENT_HIGH_WATER_WRITTEN: &str = "event-high-water-written";

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A new alert.
    AlertOpened,
    /// Any other change of an alert (members joining or leaving, statuses, a token moved by a
    /// rotation).
    AlertUpdated,
    /// An alert became closed, or its row was deleted.
    AlertClosed,
    /// A closed alert matched again.
    AlertReopened,
    /// An analyst acknowledged an alert.
    AlertAcknowledged,
    /// A record's takedown clock passed a budget.
    TakedownWarning,
}

impl EventKind {
    /// The wire name (`alert.opened`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::AlertOpened => "alert.opened",
            EventKind::AlertUpdated => "alert.updated",
            EventKind::AlertClosed => "alert.closed",
            EventKind::AlertReopened => "alert.reopened",
            EventKind::AlertAcknowledged => "alert.acknowledged",
            EventKind::TakedownWarning => "takedown.warning",
        }
    }
}

/// An alert as an event keeps it: everything but the full token, of which only the first
/// four bytes are kept (as the audit log does), so an expired token leaves no byte behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAlert {
    /// Alert id.
    pub id: u64,
    /// The token's first four bytes.
    pub token_prefix: [u8; 4],
    /// State.
    pub state: AlertState,
    /// Acknowledged by an analyst.
    pub acknowledged: bool,
    /// Local records holding the token.
    pub records: Vec<RecordId>,
    /// Counterparts (origin key and add).
    pub counterparts: Vec<Counterpart>,
    /// First raised (Unix ms).
    pub opened_at_ms: u64,
    /// Last changed (Unix ms).
    pub updated_at_ms: u64,
    /// The alert's version: strictly rising per alert.
    pub version: u64,
}

impl EventAlert {
    /// The event form of `alert` (a copy; [`EventAlert::from`] moves an alert in instead).
    pub fn of(alert: &Alert) -> Self {
        Self::from(alert.clone())
    }
}

impl From<Alert> for EventAlert {
    /// The event form of `alert`, its records and counterparts moved, not copied.
    fn from(alert: Alert) -> Self {
        let mut token_prefix = [0; 4];
        token_prefix.copy_from_slice(&alert.token.as_bytes()[..4]);
        Self {
            id: alert.id,
            token_prefix,
            state: alert.state,
            acknowledged: alert.acknowledged,
            records: alert.records,
            counterparts: alert.counterparts,
            opened_at_ms: alert.opened_at_ms,
            updated_at_ms: alert.updated_at_ms,
            version: alert.version,
        }
    }
}

/// A takedown warning as an event keeps it: a record, a token prefix and the deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTakedown {
    /// The record.
    pub record: RecordId,
    /// The token's first four bytes, as hex.
    pub token_short: String,
    /// The budget's deadline (Unix ms).
    pub deadline_ms: u64,
    /// Past the deadline already.
    pub overdue: bool,
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventBody {
    /// An alert's full state after the change.
    Alert(EventAlert),
    /// A takedown warning.
    Takedown(EventTakedown),
}

/// One row of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// What it reports.
    pub kind: EventKind,
    /// When (Unix ms).
    pub at_ms: u64,
    /// What it carries.
    pub body: EventBody,
}

/// The log's bookkeeping, from `m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventMeta {
    /// The store's incarnation: drawn anew whenever what was delivered before may not be in
    /// the store (first start, a restore, a store behind the high-water file beside it,
    /// [`high_water`]). 0: none yet.
    pub incarnation: u64,
    /// The first seq of this incarnation.
    pub incarnation_from: u64,
    /// The last seq issued (0: none).
    pub seq: u64,
}

/// The webhook's delivery state: its durable cursor and counters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WebhookState {
    /// The incarnation `delivered_seq` belongs to.
    pub incarnation: u64,
    /// The last seq delivered (acknowledged with a 2xx).
    pub delivered_seq: u64,
    /// A resync marker is owed before the next event: the seq the cursor jumped to.
    pub pending_resync: Option<u64>,
    /// Why the marker is owed (`queue_full`, `behind_log`, `unknown_incarnation`).
    #[serde(default)]
    pub pending_reason: Option<String>,
    /// Events dropped since the pending marker was set (reported in it).
    #[serde(default)]
    pub pending_dropped: u64,
    /// Events skipped because the queue was full or had fallen behind, ever.
    pub dropped_total: u64,
    /// Resync markers delivered, ever.
    pub markers_total: u64,
    /// The BLAKE3 hash of the URL this cursor was kept for: a webhook configured with another
    /// URL starts anew. None: written before the hash was kept (taken as the current URL's).
    #[serde(default)]
    pub url_hash: Option<[u8; 32]>,
}

impl Store {
    /// The event log's bookkeeping.
    pub fn event_meta(&self) -> Result<EventMeta> {
        Ok(EventMeta {
            incarnation: self.get(&keys::meta(EVENT_INCARNATION))?.unwrap_or(0),
            incarnation_from: self.get(&keys::meta(EVENT_INCARNATION_FROM))?.unwrap_or(0),
            seq: self.get(&keys::meta(EVENT_SEQ))?.unwrap_or(0),
        })
    }

    /// The oldest event kept, if any.
    pub fn first_event_seq(&self) -> Result<Option<u64>> {
        Ok(self.scan_keys_first(&keys::all_events())?.and_then(|key| keys::parse_event(&key)))
    }

    /// Up to `limit` events with a seq in `(after, through]`, in seq order.
    pub fn events_between(
        &self,
        after: u64,
        through: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>> {
        if after >= through {
            return Ok(Vec::new());
        }
        let from = keys::event(after.saturating_add(1));
        let to = keys::event(through.saturating_add(1));
        let mut events = Vec::new();
        for item in self.tree.range(from..to).take(limit) {
            let (key, value) = item?;
            let Some(seq) = keys::parse_event(&key) else { continue };
            events.push((seq, self.decode(&key, &value)?));
        }
        Ok(events)
    }

    /// The webhook's delivery state (the default before the first delivery).
    pub fn webhook_state(&self) -> Result<WebhookState> {
        Ok(self.get(&keys::webhook_state())?.unwrap_or_default())
    }

    /// Writes the webhook's delivery state durably.
    pub fn put_webhook_state(&self, state: &WebhookState) -> Result<()> {
        let mut txn = self.txn();
        txn.put(keys::webhook_state(), state);
        txn.commit_durable()
    }

    fn scan_keys_first(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.scan_prefix(prefix).keys().next().transpose()?.map(|key| key.to_vec()))
    }
}
