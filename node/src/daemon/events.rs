//! The alert event log in the node: event ids, the events as callers read them, and the pump
//! that publishes the durable head. Nothing leaves the node before it is durable and the node
//! is ready: the pump reads the last seq issued, flushes the store (ingest commits without a
//! flush), writes that head to the high-water file beside the store
//! (`store/events/high_water.rs`, which catches a store put back from a copy at the next
//! open), and only then publishes it, the first time only once own-feed recovery made the
//! node ready. Readers ([`Node::events_after`]) never go past the head and read the store
//! directly, never under the engine lock.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::view::{AlertView, Roster, TokenPrefix};
use super::{Error, Node, Result};
use crate::engine::Engine;
use crate::store::Store;
use crate::store::events::high_water::{
    HighWater, HighWaterFile, read_high_water, write_high_water,
};
use crate::store::events::{EventBody, EventKind, EventMeta, EventTakedown, StoredEvent};

/// Most events one read returns.
pub const MAX_EVENTS_PER_READ: usize = 256;
/// How soon the pump tries again after a failed flush or high-water write.
const EVENT_RETRY: Duration = Duration::from_secs(1);

/// An event's id: the store's incarnation and the event's seq, written
/// `<incarnation as 16 lowercase hex digits>-<seq in decimal>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId {
    /// The store's incarnation.
    pub incarnation: u64,
    /// The event's seq (0: before the first event).
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.incarnation, self.seq)
    }
}

/// A malformed event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event id is 16 lowercase hex digits, a dash and a decimal seq")]
pub struct BadEventId;

impl FromStr for EventId {
    type Err = BadEventId;

    fn from_str(text: &str) -> Result<Self, BadEventId> {
        let (incarnation, seq) = text.split_once('-').ok_or(BadEventId)?;
        let hex_digit = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if incarnation.len() != 16 || !incarnation.chars().all(hex_digit) {
            return Err(BadEventId);
        }
        if seq.is_empty() || seq.len() > 20 || !seq.chars().all(|c| c.is_ascii_digit()) {
            return Err(BadEventId);
        }
        Ok(Self {
            incarnation: u64::from_str_radix(incarnation, 16).map_err(|_| BadEventId)?,
            seq: seq.parse().map_err(|_| BadEventId)?,
        })
    }
}

/// Why a reader must re-read `/v1/alerts` and continue from a new cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// The cursor is of another incarnation of the store.
    UnknownIncarnation,
    /// The cursor is older than the oldest event kept.
    BehindLog,
    /// The cursor is past the durable head (a restore nobody noticed).
    AheadOfLog,
    /// The cursor is not an event id.
    InvalidCursor,
    /// The webhook's queue was full: its oldest events were dropped.
    QueueFull,
    /// The webhook is new (no cursor was kept for its URL): it starts at the head, without the
    /// log's history.
    NewWebhook,
}

impl ResyncReason {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResyncReason::UnknownIncarnation => "unknown_incarnation",
            ResyncReason::BehindLog => "behind_log",
            ResyncReason::AheadOfLog => "ahead_of_log",
            ResyncReason::InvalidCursor => "invalid_cursor",
            ResyncReason::QueueFull => "queue_full",
            ResyncReason::NewWebhook => "new_webhook",
        }
    }

    /// The reason of a wire name, as [`as_str`](Self::as_str) writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            ResyncReason::UnknownIncarnation,
            ResyncReason::BehindLog,
            ResyncReason::AheadOfLog,
            ResyncReason::InvalidCursor,
            ResyncReason::QueueFull,
            ResyncReason::NewWebhook,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == name)
    }
}

/// An alert as an event carries it: its full state, counterparts resolved from the roster, and
/// only a prefix of its token.
pub type EventAlertView = AlertView<TokenPrefix>;

/// What an event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventViewBody {
    /// An alert's full state after the change.
    Alert(EventAlertView),
    /// A takedown warning.
    Takedown(EventTakedown),
}

/// One event, as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    /// Its id.
    pub id: EventId,
    /// What it reports.
    pub kind: EventKind,
    /// When (Unix ms).
    pub at_ms: u64,
    /// What it carries.
    pub body: EventViewBody,
}

impl EventView {
    fn new(id: EventId, event: StoredEvent, roster: &Roster) -> Self {
        let body = match event.body {
            EventBody::Alert(alert) => EventViewBody::Alert(AlertView::of_event(alert, roster)),
            EventBody::Takedown(takedown) => EventViewBody::Takedown(takedown),
        };
        Self { id, kind: event.kind, at_ms: event.at_ms, body }
    }
}

/// What a read of the log gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRead {
    /// The events after the cursor, in seq order (none: the reader is at the head).
    Events(Vec<EventView>),
    /// The reader must re-read `/v1/alerts` and continue from `cursor` (the head now).
    Resync {
        /// Where to continue from.
        cursor: EventId,
        /// Why.
        reason: ResyncReason,
    },
}

/// The log's handles in the node: the store (read without the engine lock), the data
/// directory (for the high-water file), the pump's wake-up, the durable head and the count of
/// the pump's failed passes.
#[derive(Debug)]
pub(super) struct EventLog {
    store: Store,
    data_dir: PathBuf,
    wake: Notify,
    head: watch::Sender<Option<EventId>>,
    /// Pump passes whose flush or high-water write failed (`/metrics`): while they fail, the
    /// head stays where it was and no new event goes out.
    head_failures: AtomicU64,
}

impl EventLog {
    pub(super) fn new(store: Store, data_dir: PathBuf) -> Self {
        Self {
            store,
            data_dir,
            wake: Notify::new(),
            head: watch::Sender::new(None),
            head_failures: AtomicU64::new(0),
        }
    }

    /// The store, for reads without the engine lock.
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Wakes the pump when the engine call that just ended staged an event: every write of
    /// the log (an announced alert change, a rotation's token move, a takedown warning) goes
    /// through an engine call, so the pump never needs to poll.
    pub(super) fn wake_if_staged(&self, engine: &Engine) {
        if engine.take_events_staged() {
            self.wake.notify_one();
        }
    }
}

/// Judges a reader's cursor against the log: `Ok(())` when the events after it are all kept.
fn check_cursor(
    cursor: EventId,
    head: EventId,
    meta: &EventMeta,
    first_kept: Option<u64>,
) -> Result<(), ResyncReason> {
    if cursor.incarnation != head.incarnation {
        return Err(ResyncReason::UnknownIncarnation);
    }
    if cursor.seq > head.seq {
        return Err(ResyncReason::AheadOfLog);
    }
    if cursor.seq == head.seq {
        return Ok(());
    }
    let first_needed = cursor.seq + 1;
    if first_needed < meta.incarnation_from || first_kept.is_none_or(|first| first > first_needed) {
        return Err(ResyncReason::BehindLog);
    }
    Ok(())
}

/// Judges a read of the events in `(after, through]`: they must start at `after + 1` and follow
/// one another (every seq has its event), or the ring was trimmed past the cursor after it was
/// checked and the reader would skip events silently.
fn check_read(
    after: u64,
    through: u64,
    seqs: impl IntoIterator<Item = u64>,
) -> Result<(), ResyncReason> {
    let mut expected = after.saturating_add(1);
    for seq in seqs {
        if seq != expected {
            return Err(ResyncReason::BehindLog);
        }
        expected = expected.saturating_add(1);
    }
    if expected == after.saturating_add(1) && after < through {
        // Nothing read although events were due: all of them were trimmed.
        return Err(ResyncReason::BehindLog);
    }
    Ok(())
}

/// The pump: publishes the durable head, first once the node is ready, then whenever it is
/// woken (an engine call staged an event; again a second later when a flush or the
/// high-water file failed). It never polls.
pub(super) async fn pump(node: Node, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    tokio::select! {
        () = &mut stop => return,
        ready = node.wait_ready() => if ready.is_err() { return },
    }
    let log = node.events.clone();
    // The mark last written: the file is replaced only when the head moved. It starts as the
    // file the engine wrote at open, so a start with no new event costs no second write.
    let data_dir = log.data_dir.clone();
    let opened = tokio::task::spawn_blocking(move || read_high_water(&data_dir)).await;
    let mut written: Option<HighWater> = match opened {
        Ok(Ok(HighWaterFile::At(mark))) => Some(mark),
        Ok(Ok(_)) => None,
        Ok(Err(_)) | Err(_) => {
            // The next write then replaces the file whatever it holds.
            tracing::warn!("event log: the high-water file could not be read at start");
            None
        }
    };
    loop {
        let (store, data_dir) = (log.store.clone(), log.data_dir.clone());
        // The seq is read before the flush, so everything up to it is durable after it; the
        // high-water file names it only then, and the head is published only once it does.
        let flushed = tokio::task::spawn_blocking(move || {
            let meta = store.event_meta()?;
            store.flush()?;
            let mark = HighWater { incarnation: meta.incarnation, seq: meta.seq };
            if written != Some(mark) {
                write_high_water(&data_dir, mark)?;
            }
            Ok::<_, crate::store::Error>(mark)
        })
        .await;
        let retry = match flushed {
            Ok(Ok(mark)) => {
                written = Some(mark);
                let head = EventId { incarnation: mark.incarnation, seq: mark.seq };
                log.head.send_if_modified(|current| {
                    let changed = *current != Some(head);
                    *current = Some(head);
                    changed
                });
                false
            }
            Ok(Err(error)) => {
                log.head_failures.fetch_add(1, Relaxed);
                tracing::error!(%error, "event log: store flush or high-water file failed; retrying");
                true
            }
            Err(_) => return,
        };
        tokio::select! {
            () = &mut stop => return,
            () = log.wake.notified() => {}
            () = tokio::time::sleep(EVENT_RETRY), if retry => {}
        }
    }
}

impl Node {
    /// The durable head of the event log: `None` until the node is ready and the first head
    /// is durable; then every event up to it may be delivered.
    pub fn event_head(&self) -> watch::Receiver<Option<EventId>> {
        self.events.head.subscribe()
    }

    /// How many passes of the event pump failed to flush the store or write the high-water
    /// file (a full disk): while they fail, no new alert event goes out.
    pub fn alert_head_failures(&self) -> u64 {
        self.events.head_failures.load(Relaxed)
    }

    /// Waits for the first durable head (the node is ready).
    pub async fn wait_event_head(&self) -> Result<EventId> {
        let mut head = self.event_head();
        let seen = head.wait_for(Option::is_some).await.map_err(|_| Error::Closed)?;
        (*seen).ok_or(Error::Closed)
    }

    /// Up to `limit` (at most [`MAX_EVENTS_PER_READ`]) events after `after`, never past the
    /// durable head; `after` none: nothing (the reader starts at the head). A cursor that is
    /// of another incarnation, older than the oldest event kept or past the head gets a
    /// resync naming the head.
    pub async fn events_after(&self, after: Option<EventId>, limit: usize) -> Result<EventRead> {
        let head = self.wait_event_head().await?;
        let Some(after) = after else { return Ok(EventRead::Events(Vec::new())) };
        let store = self.events.store.clone();
        let limit = limit.clamp(1, MAX_EVENTS_PER_READ);
        let read = tokio::task::spawn_blocking(move || {
            let meta = store.event_meta()?;
            if let Err(reason) = check_cursor(after, head, &meta, store.first_event_seq()?) {
                return Ok(Err(reason));
            }
            let events = store.events_between(after.seq, head.seq, limit)?;
            // The ring may have been trimmed between the cursor's check and the read.
            if let Err(reason) = check_read(after.seq, head.seq, events.iter().map(|(seq, _)| *seq))
            {
                return Ok(Err(reason));
            }
            Ok::<_, crate::store::Error>(Ok(events))
        })
        .await
        .map_err(|_| Error::EngineTask)?
        .map_err(|error| Error::Engine(error.into()))?;
        match read {
            Err(reason) => Ok(EventRead::Resync { cursor: head, reason }),
            Ok(events) => {
                let roster = self.roster.current();
                Ok(EventRead::Events(
                    events
                        .into_iter()
                        .map(|(seq, event)| {
                            let id = EventId { incarnation: head.incarnation, seq };
                            EventView::new(id, event, &roster)
                        })
                        .collect(),
                ))
            }
        }
    }

    /// The log's bookkeeping and oldest kept seq (tests and metrics).
    pub async fn event_log_figures(&self) -> Result<(EventMeta, Option<u64>)> {
        let store = self.events.store.clone();
        tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::Error>((store.event_meta()?, store.first_event_seq()?))
        })
        .await
        .map_err(|_| Error::EngineTask)?
        .map_err(|error| Error::Engine(error.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_print_and_parse_back() {
        let id = EventId { incarnation: 0x9f2c_01ab_77e0_d3c4, seq: 1042 };
        assert_eq!(id.to_string(), "9f2c01ab77e0d3c4-1042");
        assert_eq!("9f2c01ab77e0d3c4-1042".parse::<EventId>(), Ok(id));
        for bad in ["", "9f2c01ab77e0d3c4", "9F2C01AB77E0D3C4-1", "9f2c01ab77e0d3c-1", "x-1"] {
            assert_eq!(bad.parse::<EventId>(), Err(BadEventId), "{bad:?}");
        }
        for bad in ["9f2c01ab77e0d3c4-", "9f2c01ab77e0d3c4--1", "9f2c01ab77e0d3c4-1a"] {
            assert_eq!(bad.parse::<EventId>(), Err(BadEventId), "{bad:?}");
        }
        assert_eq!("9f2c01ab77e0d3c4-99999999999999999999".parse::<EventId>(), Err(BadEventId));
    }

    #[test]
    fn cursors_are_judged_against_the_head_and_the_ring() {
        let head = EventId { incarnation: 7, seq: 100 };
        let meta = EventMeta { incarnation: 7, incarnation_from: 1, seq: 100 };
        let at = |seq| EventId { incarnation: 7, seq };
        assert_eq!(check_cursor(at(100), head, &meta, Some(85)), Ok(()));
        assert_eq!(check_cursor(at(84), head, &meta, Some(85)), Ok(()));
        assert_eq!(check_cursor(at(83), head, &meta, Some(85)), Err(ResyncReason::BehindLog));
        assert_eq!(check_cursor(at(101), head, &meta, Some(85)), Err(ResyncReason::AheadOfLog));
        let other = EventId { incarnation: 8, seq: 100 };
        assert_eq!(
            check_cursor(other, head, &meta, Some(85)),
            Err(ResyncReason::UnknownIncarnation)
        );
        // A new incarnation from seq 90: a cursor of it before 89 cannot exist.
        let renewed = EventMeta { incarnation_from: 90, ..meta };
        assert_eq!(check_cursor(at(80), head, &renewed, Some(1)), Err(ResyncReason::BehindLog));
        assert_eq!(check_cursor(at(89), head, &renewed, Some(1)), Ok(()));
        // Nothing kept and the reader behind: behind.
        assert_eq!(check_cursor(at(99), head, &meta, None), Err(ResyncReason::BehindLog));
    }

    #[test]
    fn a_read_must_start_right_after_the_cursor_and_follow_on() {
        assert_eq!(check_read(10, 20, [11, 12, 13]), Ok(()));
        assert_eq!(check_read(10, 10, []), Ok(()), "at the head, nothing to read");
        // Trimmed between the cursor's check and the read: the first event is gone.
        assert_eq!(check_read(10, 20, [12, 13]), Err(ResyncReason::BehindLog));
        assert_eq!(check_read(10, 20, []), Err(ResyncReason::BehindLog));
        assert_eq!(check_read(10, 20, [11, 13]), Err(ResyncReason::BehindLog));
        assert_eq!(check_read(0, 1, [1]), Ok(()));
    }
}
