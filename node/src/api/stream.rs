//! `GET /v1/alerts/stream`: the alert event log as Server-Sent Events. A client resumes from
//! `Last-Event-ID` (or `?after=`); the first event is `hello` (the cursor it continues from
//! and the head) or `resync` (re-read `/v1/alerts`, then continue from the cursor named); then
//! every event in seq order, each carrying its alert's full state, and a `: heartbeat` comment
//! every [`STREAM_HEARTBEAT`], at which the user is checked again (a token revoked by a reload
//! ends its streams). Streams have a cap of their own, [`MAX_STREAMS`], are exempt from the
//! request timeout and the in-flight cap, and end when the node stops.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Api;
use super::alerts::AlertOut;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use crate::daemon::{
    EventId, EventRead, EventView, EventViewBody, MAX_EVENTS_PER_READ, ResyncReason, WebhookBodies,
};

/// Streams open at once; the next is answered `503 busy`.
pub const MAX_STREAMS: usize = 16;
/// How often a stream sends a heartbeat comment when it has nothing else to send.
pub const STREAM_HEARTBEAT: Duration = Duration::from_secs(15);

/// The limits of the alert streams.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Streams open at once.
    pub max_streams: usize,
    /// Heartbeat interval.
    pub heartbeat: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self { max_streams: MAX_STREAMS, heartbeat: STREAM_HEARTBEAT }
    }
}

/// The streams' slots and counters, shared by the API.
#[derive(Debug)]
pub(super) struct Streams {
    slots: Arc<Semaphore>,
    heartbeat: Duration,
    /// Streams open now.
    pub(super) open: AtomicU64,
    /// Streams refused because all slots were taken.
    pub(super) refused: AtomicU64,
    /// Resync events sent.
    pub(super) resyncs: AtomicU64,
}

impl Streams {
    pub(super) fn new(limits: StreamLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_streams)),
            heartbeat: limits.heartbeat,
            open: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
        }
    }
}

/// `GET /v1/alerts/stream` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamParams {
    #[serde(default)]
    after: Option<String>,
}

/// An event's JSON, as the stream's `data:` and the webhook's body carry it.
pub fn event_json(event: &EventView) -> serde_json::Value {
    let data = match &event.body {
        EventViewBody::Alert(alert) => json!({ "alert": AlertOut::from(alert.clone()) }),
        EventViewBody::Takedown(takedown) => json!({ "takedown": {
            "record": takedown.record,
            "token_short": takedown.token_short,
            "deadline_ms": takedown.deadline_ms,
            "overdue": takedown.overdue,
        }}),
    };
    json!({
        "id": event.id.to_string(),
        "type": event.kind.as_str(),
        "at_ms": event.at_ms,
        "data": data,
    })
}

/// The webhook's bodies: an event's JSON as the stream's, and the resync marker's.
pub const WEBHOOK_BODIES: WebhookBodies =
    WebhookBodies { event: webhook_event_body, resync: webhook_resync_body };

fn webhook_event_body(event: &EventView) -> Vec<u8> {
    event_json(event).to_string().into_bytes()
}

fn webhook_resync_body(cursor: EventId, reason: ResyncReason, dropped: u64) -> Vec<u8> {
    json!({
        "id": format!("resync-{cursor}"),
        "type": "resync",
        "data": { "cursor": cursor.to_string(), "reason": reason.as_str(), "dropped": dropped },
    })
    .to_string()
    .into_bytes()
}

/// Holds a stream's slot and counts it open while the body lives.
struct OpenStream {
    _slot: OwnedSemaphorePermit,
    streams: Arc<Streams>,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.streams.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a stream stands.
struct Cursor {
    api: Api,
    bearer: String,
    /// The cursor asked for, until the first event is sent.
    asked: Option<Option<String>>,
    /// The last event sent (or the cursor continued from).
    at: EventId,
    queue: VecDeque<Event>,
    next_heartbeat: tokio::time::Instant,
    _open: OpenStream,
}

/// `GET /v1/alerts/stream` → `text/event-stream`.
pub(super) async fn stream(
    State(api): State<Api>,
    user: User,
    headers: HeaderMap,
    Params(params): Params<StreamParams>,
) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    let streams = api.streams.clone();
    let Ok(slot) = streams.slots.clone().try_acquire_owned() else {
        streams.refused.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many streams open",
        ));
    };
    streams.open.fetch_add(1, Ordering::Relaxed);
    let open = OpenStream { _slot: slot, streams: streams.clone() };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|bearer| bearer.trim().to_owned())
        .unwrap_or_default();
    let last_event_id = headers
        .get("last-event-id")
        .map(|value| value.to_str().map(str::to_owned).unwrap_or_default());
    let asked = last_event_id.or(params.after);
    let cursor = Cursor {
        api,
        bearer,
        asked: Some(asked),
        at: EventId { incarnation: 0, seq: 0 },
        queue: VecDeque::new(),
        next_heartbeat: tokio::time::Instant::now() + streams.heartbeat,
        _open: open,
    };
    let body = futures_util::stream::unfold(cursor, next_event);
    let mut response = Sse::new(body).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn resync_event(cursor: EventId, reason: ResyncReason) -> Event {
    Event::default()
        .id(cursor.to_string())
        .event("resync")
        .data(json!({ "cursor": cursor.to_string(), "reason": reason.as_str() }).to_string())
}

fn sse_event(event: &EventView) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(event.kind.as_str())
        .data(event_json(event).to_string())
}

/// The stream's next item, or `None` once it ends (the node stopped, the token was revoked, or
/// the log could not be read).
async fn next_event(mut cursor: Cursor) -> Option<(Result<Event, Infallible>, Cursor)> {
    loop {
        // While a backlog drains the idle branch below never runs: the user is checked again
        // here whenever the heartbeat is due, so a revoked token stops the stream in time.
        if tokio::time::Instant::now() >= cursor.next_heartbeat {
            let heartbeat = cursor.heartbeat()?;
            return Some((Ok(heartbeat), cursor));
        }
        if let Some(event) = cursor.queue.pop_front() {
            return Some((Ok(event), cursor));
        }
        let node = cursor.api.node.clone();
        if let Some(asked) = cursor.asked.take() {
            let head = tokio::select! {
                head = node.wait_event_head() => head.ok()?,
                () = node.stopped() => return None,
            };
            let first = match asked.map(|text| text.parse::<EventId>()) {
                None => {
                    cursor.at = head;
                    hello(head, head)
                }
                Some(Err(_)) => cursor.resync(head, ResyncReason::InvalidCursor),
                Some(Ok(after)) => match node.events_after(Some(after), 0).await.ok()? {
                    EventRead::Resync { cursor: at, reason } => cursor.resync(at, reason),
                    EventRead::Events(_) => {
                        cursor.at = after;
                        hello(after, head)
                    }
                },
            };
            return Some((Ok(first), cursor));
        }
        match node.events_after(Some(cursor.at), MAX_EVENTS_PER_READ).await.ok()? {
            EventRead::Resync { cursor: at, reason } => {
                let event = cursor.resync(at, reason);
                return Some((Ok(event), cursor));
            }
            EventRead::Events(events) if !events.is_empty() => {
                for event in &events {
                    cursor.queue.push_back(sse_event(event));
                }
                if let Some(last) = events.last() {
                    cursor.at = last.id;
                }
                continue;
            }
            EventRead::Events(_) => {}
        }
        let mut head = node.event_head();
        let at = cursor.at;
        tokio::select! {
            () = node.stopped() => return None,
            changed = head.wait_for(|head| head.is_some_and(|head| head != at)) => {
                changed.ok()?;
            }
            () = tokio::time::sleep_until(cursor.next_heartbeat) => {
                let heartbeat = cursor.heartbeat()?;
                return Some((Ok(heartbeat), cursor));
            }
        }
    }
}

fn hello(cursor: EventId, head: EventId) -> Event {
    Event::default()
        .id(cursor.to_string())
        .event("hello")
        .data(json!({ "cursor": cursor.to_string(), "head": head.to_string() }).to_string())
}

impl Cursor {
    /// The heartbeat, once the user is checked again: `None` when the token no longer allows
    /// the stream (revoked, or its role lowered).
    fn heartbeat(&mut self) -> Option<Event> {
        self.next_heartbeat = tokio::time::Instant::now() + self.api.streams.heartbeat;
        let users = self.api.users.current();
        let allowed = users.find(&self.bearer).is_some_and(|user| user.role >= Role::Analyst);
        allowed.then(|| Event::default().comment("heartbeat"))
    }

    fn resync(&mut self, at: EventId, reason: ResyncReason) -> Event {
        self.api.streams.resyncs.fetch_add(1, Ordering::Relaxed);
        self.at = at;
        resync_event(at, reason)
    }
}
