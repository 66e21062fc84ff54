//! The webhook: the alert event log delivered to one URL, following the Standard Webhooks
//! scheme. Its queue is the log itself plus a durable cursor (`D`), so it is bounded and
//! survives a restart with no second copy. One request in flight, first in first out, at least
//! once: the cursor advances, durably, only after a 2xx; anything else is retried with capped
//! exponential backoff (1 s doubling, ±25 % jitter). When the receiver falls more than
//! `max_queue` events behind, or behind the ring, or the store's incarnation changed, the
//! cursor jumps forward, the skipped events are counted, and a resync marker goes out before
//! the next event; a read of the log that asks for a resync jumps it the same way (to just
//! before the oldest event kept when the ring was trimmed under the cursor, to the head for a
//! hole the ring does not explain), and the next attempt waits as after a failure, so a
//! resync that persists cannot spin. A webhook with no cursor kept for its URL (configured for
//! the first time, or given another URL) starts after the events the log held when the node
//! opened its store with it (`settle_webhook_cursor`), with a `new_webhook` marker first when
//! there were any: it never replays history (the stream's `?after=` reads it). Logs name only
//! the URL's scheme and host.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::Full;
use hyper::Method;
use hyper::body::Bytes;
use ring::hmac;

use super::events::{EventId, EventRead, EventView, ResyncReason};
use super::{Node, Result};
use crate::http_client::{Client, ClientError, TlsFiles};
use crate::store::Store;
use crate::store::events::{EventMeta, WebhookState};

/// First retry delay; it doubles per failure up to `max_backoff`.
pub const WEBHOOK_FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// How the webhook's bodies are written: the API's JSON shapes, handed in (the daemon knows no
/// JSON shape).
#[derive(Debug, Clone, Copy)]
pub struct WebhookBodies {
    /// An event's body.
    pub event: fn(&EventView) -> Vec<u8>,
    /// A resync marker's body: the cursor jumped to, why, and how many events were dropped.
    pub resync: fn(EventId, ResyncReason, u64) -> Vec<u8>,
}

/// The webhook's settings (`[webhook]`, `config/webhook.rs`).
#[derive(Clone)]
pub struct WebhookSettings {
    /// `https://…`, or `http://` to a loopback address.
    pub url: String,
    /// The signing keys: the current one first, the other during a rotation.
    pub keys: Vec<Vec<u8>>,
    /// Most events queued; beyond, the oldest are dropped and a marker sent.
    pub max_queue: u64,
    /// Longest one attempt may take to be answered.
    pub timeout: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Roots and client certificate for `https://`.
    pub tls: TlsFiles,
    /// How bodies are written.
    pub bodies: WebhookBodies,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("WebhookSettings")
            .field("url", &origin_of(&self.url))
            .field("keys", &self.keys.len())
            .field("max_queue", &self.max_queue)
            .finish_non_exhaustive()
    }
}

/// The webhook's live figures for `/metrics` (all 0 without a webhook).
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    /// 1 when a webhook is configured.
    pub configured: AtomicU64,
    /// Events waiting (head − delivered).
    pub queue_events: AtomicU64,
    /// The queue's bound.
    pub queue_capacity: AtomicU64,
    /// The wait before the next attempt (s), 0 when not backing off.
    pub backoff_seconds: AtomicU64,
    /// When the last delivery was acknowledged (Unix s).
    pub last_delivery_timestamp_seconds: AtomicU64,
    /// Age of the oldest event waiting (s).
    pub oldest_pending_age_seconds: AtomicU64,
    /// Deliveries acknowledged with a 2xx (markers included).
    pub deliveries_total: AtomicU64,
    /// Attempts that failed (no answer, or not a 2xx).
    pub attempt_failures_total: AtomicU64,
}

/// The webhook's figures, live and durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookFigures {
    /// 1 when a webhook is configured.
    pub configured: u64,
    /// Events waiting.
    pub queue_events: u64,
    /// The queue's bound.
    pub queue_capacity: u64,
    /// Current backoff (s).
    pub backoff_seconds: u64,
    /// Last acknowledged delivery (Unix s).
    pub last_delivery_timestamp_seconds: u64,
    /// Age of the oldest waiting event (s).
    pub oldest_pending_age_seconds: u64,
    /// Deliveries acknowledged.
    pub deliveries_total: u64,
    /// Failed attempts.
    pub attempt_failures_total: u64,
    /// Events dropped, ever (durable).
    pub dropped_events_total: u64,
    /// Resync markers delivered, ever (durable).
    pub resync_markers_total: u64,
}

/// The Standard Webhooks signature header's value: `v1,<base64 HMAC-SHA256 of
/// "id.timestamp.body">` per key, separated by a space.
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(id.len() + body.len() + 24);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    keys.iter()
        .map(|key| {
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &signed);
            format!("v1,{}", STANDARD.encode(tag.as_ref()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `scheme://host` of a URL, the only part logs name.
pub fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("?", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    format!("{scheme}://{host}")
}

/// Where the cursor must jump before the next delivery, if anywhere: (new delivered seq, why,
/// events skipped).
fn jump(
    state: &WebhookState,
    head: EventId,
    incarnation_from: u64,
    first_kept: Option<u64>,
    max_queue: u64,
) -> Option<(u64, ResyncReason, u64)> {
    let floor = head.seq.saturating_sub(max_queue);
    if state.incarnation != head.incarnation {
        // Events of another incarnation may be gone: continue within this one.
        let start = incarnation_from.saturating_sub(1);
        let target = floor.max(start);
        return Some((target, ResyncReason::UnknownIncarnation, target - start));
    }
    if state.delivered_seq > head.seq {
        return Some((floor, ResyncReason::AheadOfLog, 0));
    }
    let oldest_needed = state.delivered_seq + 1;
    if state.delivered_seq < head.seq && first_kept.is_none_or(|first| first > oldest_needed) {
        let target = floor.max(first_kept.map_or(head.seq, |first| first - 1));
        return Some((target, ResyncReason::BehindLog, target - state.delivered_seq));
    }
    if head.seq - state.delivered_seq > max_queue {
        return Some((floor, ResyncReason::QueueFull, floor - state.delivered_seq));
    }
    None
}

/// Moves the cursor to `target` in `head`'s incarnation and owes a marker saying why, the
/// `skipped` events counted as dropped.
fn jump_to(state: &mut WebhookState, target: EventId, reason: ResyncReason, skipped: u64) {
    state.incarnation = target.incarnation;
    state.delivered_seq = target.seq;
    state.pending_resync = Some(target.seq);
    state.pending_reason = Some(reason.as_str().to_owned());
    state.pending_dropped += skipped;
    state.dropped_total += skipped;
}

/// The hash of the URL a cursor is kept for.
fn url_hash(url: &str) -> [u8; 32] {
    *blake3::hash(url.as_bytes()).as_bytes()
}

/// At start: whether the stored cursor is this webhook's, and if not, the state it starts
/// from. A cursor kept for another URL, or none (`incarnation` 0: never delivered), makes a new
/// webhook: it starts after the last event the log holds now (`meta.seq`), with a
/// `new_webhook` marker owed when the log has any event, and its counters kept. A cursor
/// written before URLs were hashed is taken as this URL's. `None`: nothing to change.
fn settle_cursor(state: &WebhookState, meta: EventMeta, url: [u8; 32]) -> Option<WebhookState> {
    let known = state.incarnation != 0 && state.url_hash.is_none_or(|kept| kept == url);
    if known {
        return state
            .url_hash
            .is_none()
            .then(|| WebhookState { url_hash: Some(url), ..state.clone() });
    }
    let mut settled = WebhookState {
        incarnation: meta.incarnation,
        delivered_seq: meta.seq,
        url_hash: Some(url),
        dropped_total: state.dropped_total,
        markers_total: state.markers_total,
        ..WebhookState::default()
    };
    if meta.seq > 0 {
        let head = EventId { incarnation: meta.incarnation, seq: meta.seq };
        jump_to(&mut settled, head, ResyncReason::NewWebhook, 0);
    }
    Some(settled)
}

/// At start, right after the store is opened and before anything can stage an event of this
/// run (the start's rotation step, start-up withdrawals, the mesh, sync, the API): makes the stored cursor the webhook at
/// `url`'s ([`settle_cursor`]), durably, so a new webhook starts after the events written
/// before this start and every event of this run is delivered.
pub(super) fn settle_webhook_cursor(store: &Store, url: &str) -> crate::store::Result<()> {
    match settle_cursor(&store.webhook_state()?, store.event_meta()?, url_hash(url)) {
        Some(state) => store.put_webhook_state(&state),
        None => Ok(()),
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stepped {
    /// Nothing to deliver: wait for the head to move.
    Idle,
    /// An event was acknowledged: the next goes at once, the backoff starts again.
    Event,
    /// A resync marker was acknowledged: the next goes at once, the backoff as it was.
    Marker,
    /// An attempt failed: wait, then try again.
    Failed,
    /// The log asked for a resync: the cursor jumped and a marker is owed; wait as after a
    /// failure before sending it, so a resync that persists cannot spin.
    Resynced,
}

/// The worker's waits between attempts: from [`WEBHOOK_FIRST_BACKOFF`], doubling per failure
/// or resync up to `max`, jittered ±25 %.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self { next: WEBHOOK_FIRST_BACKOFF, max: max.max(WEBHOOK_FIRST_BACKOFF) }
    }

    /// The wait before the step after `stepped`: none after a delivery, a backoff after a
    /// failure or a resync; `None` after an idle step (wait for the head instead).
    fn after(&mut self, stepped: Stepped) -> Option<Duration> {
        match stepped {
            Stepped::Idle => None,
            Stepped::Event => {
                self.next = WEBHOOK_FIRST_BACKOFF;
                Some(Duration::ZERO)
            }
            Stepped::Marker => Some(Duration::ZERO),
            Stepped::Failed | Stepped::Resynced => {
                let wait = jittered(self.next);
                self.next = (self.next * 2).min(self.max);
                Some(wait)
            }
        }
    }
}

/// One POST; true on a 2xx.
async fn post(
    client: &Client,
    keys: &[Vec<u8>],
    id: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> bool {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let signature = signature_header(keys, id, timestamp, &body);
    let request = client
        .request_to_base(Method::POST)
        .header("content-type", "application/json")
        .header("user-agent", concat!("crossmatch/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(Bytes::from(body)));
    let Ok(request) = request else { return false };
    match client.send(request, timeout).await {
        // Redirects are not followed: only a 2xx delivers.
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}

/// A delay around `base`, ±25 %.
fn jittered(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let factor = 0.75 + f64::from(byte[0]) / 255.0 * 0.5;
    base.mul_f64(factor)
}

/// The webhook's client: built when the node starts (and checked when the config loads), so a
/// URL, CA file or client certificate that cannot be used fails the start.
pub fn webhook_client(settings: &WebhookSettings) -> std::result::Result<Client, ClientError> {
    Client::new(&settings.url, &settings.tls)
}

/// The worker: delivers the log to the webhook until the node stops.
pub(super) async fn webhook_worker(
    node: Node,
    settings: WebhookSettings,
    client: Client,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let origin = origin_of(&settings.url);
    let metrics = node.webhook.clone();
    metrics.configured.store(1, Relaxed);
    metrics.queue_capacity.store(settings.max_queue, Relaxed);
    let mut backoff = Backoff::new(settings.max_backoff);
    let mut head_rx = node.event_head();
    // The cursor was settled for this URL when the node opened its store
    // ([`settle_webhook_cursor`], called by `daemon::start`): the worker only reads it.
    loop {
        let head = tokio::select! {
            () = &mut stop => return,
            head = node.wait_event_head() => match head { Ok(head) => head, Err(_) => return },
        };
        // An attempt waits up to `timeout` for an answer: it is abandoned when the node stops
        // (the cursor moves only after a 2xx and a durable write, so it is sent again later).
        let stepped = tokio::select! {
            () = &mut stop => return,
            stepped = step(&node, &client, &settings, head) => stepped,
        };
        let stepped = stepped.unwrap_or_else(|error| {
            tracing::error!(%error, webhook = %origin, "webhook: delivery state not readable");
            Stepped::Failed
        });
        match stepped {
            Stepped::Failed => {
                metrics.attempt_failures_total.fetch_add(1, Relaxed);
            }
            Stepped::Resynced => {
                tracing::warn!(webhook = %origin, "webhook: the log asked for a resync; a marker follows");
            }
            Stepped::Idle | Stepped::Event | Stepped::Marker => {}
        }
        match backoff.after(stepped) {
            // Nothing to deliver: wait for the head to move.
            None => {
                metrics.backoff_seconds.store(0, Relaxed);
                tokio::select! {
                    () = &mut stop => return,
                    changed = head_rx.wait_for(|now| now.is_some_and(|now| now != head)) => {
                        if changed.is_err() { return }
                    }
                }
            }
            Some(Duration::ZERO) => {}
            Some(wait) => {
                metrics.backoff_seconds.store(wait.as_secs().max(1), Relaxed);
                if stepped == Stepped::Failed {
                    tracing::warn!(webhook = %origin, retry_in_ms = wait.as_millis() as u64, "webhook: delivery failed; retrying");
                }
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// One step: the cursor brought within bounds, then one delivery (a marker or the next event).
async fn step(
    node: &Node,
    client: &Client,
    settings: &WebhookSettings,
    head: EventId,
) -> Result<Stepped> {
    let metrics = &node.webhook;
    let (meta, first_kept) = node.event_log_figures().await?;
    let mut state = node.webhook_state().await?;
    if let Some((target, reason, skipped)) =
        jump(&state, head, meta.incarnation_from, first_kept, settings.max_queue)
    {
        let target = EventId { incarnation: head.incarnation, seq: target };
        jump_to(&mut state, target, reason, skipped);
        node.put_webhook_state(state.clone()).await?;
        tracing::warn!(
            skipped,
            reason = reason.as_str(),
            "webhook: queue cut; a resync marker follows"
        );
    }
    metrics.queue_events.store(head.seq.saturating_sub(state.delivered_seq), Relaxed);
    if let Some(at) = state.pending_resync {
        let cursor = EventId { incarnation: state.incarnation, seq: at };
        let reason = state
            .pending_reason
            .as_deref()
            .and_then(ResyncReason::from_name)
            .unwrap_or(ResyncReason::QueueFull);
        let body = (settings.bodies.resync)(cursor, reason, state.pending_dropped);
        let id = format!("resync-{cursor}");
        if !post(client, &settings.keys, &id, body, settings.timeout).await {
            return Ok(Stepped::Failed);
        }
        state.pending_resync = None;
        state.pending_reason = None;
        state.pending_dropped = 0;
        state.markers_total += 1;
        node.put_webhook_state(state).await?;
        acknowledged(metrics);
        return Ok(Stepped::Marker);
    }
    if state.delivered_seq >= head.seq {
        metrics.oldest_pending_age_seconds.store(0, Relaxed);
        return Ok(Stepped::Idle);
    }
    let cursor = EventId { incarnation: state.incarnation, seq: state.delivered_seq };
    let event = match node.events_after(Some(cursor), 1).await? {
        EventRead::Events(events) => match events.into_iter().next() {
            Some(event) => event,
            None => return Ok(Stepped::Idle),
        },
        // The ring was trimmed under the cursor since the checks above (continue from just
        // before the oldest event still kept), or the log has a hole the checks cannot see
        // (continue from the head the read names, as a reader of the stream would).
        EventRead::Resync { cursor: to, reason } => {
            let (_, first_kept) = node.event_log_figures().await?;
            let target = resync_target(&state, to, reason, first_kept);
            resync_to(&mut state, target, reason);
            node.put_webhook_state(state).await?;
            return Ok(Stepped::Resynced);
        }
    };
    let age_ms = node.now_ms().saturating_sub(event.at_ms);
    metrics.oldest_pending_age_seconds.store(age_ms / 1000, Relaxed);
    let body = (settings.bodies.event)(&event);
    if !post(client, &settings.keys, &event.id.to_string(), body, settings.timeout).await {
        return Ok(Stepped::Failed);
    }
    state.delivered_seq = event.id.seq;
    node.put_webhook_state(state.clone()).await?;
    metrics.queue_events.store(head.seq.saturating_sub(state.delivered_seq), Relaxed);
    acknowledged(metrics);
    Ok(Stepped::Event)
}

/// Where a read's resync to `head` moves the cursor: when the ring was trimmed under it (the
/// oldest event kept, `first_kept`, is past the next one it needs), to just before the oldest
/// kept, so no event still kept is skipped; otherwise (another incarnation, or a hole the ring
/// does not explain, which would persist) to `head`.
fn resync_target(
    state: &WebhookState,
    head: EventId,
    reason: ResyncReason,
    first_kept: Option<u64>,
) -> EventId {
    let trimmed = first_kept.filter(|&first| {
        state.incarnation == head.incarnation
            && reason == ResyncReason::BehindLog
            && first > state.delivered_seq.saturating_add(1)
            && first <= head.seq
    });
    match trimmed {
        Some(first) => EventId { incarnation: head.incarnation, seq: first - 1 },
        None => head,
    }
}

/// A read of the log asked for a resync to `head`: the cursor jumps there, the events between
/// counted as dropped (those of another incarnation are not counted: they are not known).
fn resync_to(state: &mut WebhookState, head: EventId, reason: ResyncReason) {
    let skipped = if state.incarnation == head.incarnation {
        head.seq.saturating_sub(state.delivered_seq)
    } else {
        0
    };
    jump_to(state, head, reason, skipped);
}

fn acknowledged(metrics: &WebhookMetrics) {
    metrics.deliveries_total.fetch_add(1, Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    metrics.last_delivery_timestamp_seconds.store(now, Relaxed);
}

impl Node {
    /// The webhook's delivery state, read from the store without the engine lock.
    async fn webhook_state(&self) -> Result<WebhookState> {
        let store = self.events.store().clone();
        tokio::task::spawn_blocking(move || store.webhook_state())
            .await
            .map_err(|_| super::Error::EngineTask)?
            .map_err(|error| super::Error::Engine(error.into()))
    }

    /// Writes the webhook's delivery state durably.
    async fn put_webhook_state(&self, state: WebhookState) -> Result<()> {
        let store = self.events.store().clone();
        tokio::task::spawn_blocking(move || store.put_webhook_state(&state))
            .await
            .map_err(|_| super::Error::EngineTask)?
            .map_err(|error| super::Error::Engine(error.into()))
    }

    /// The webhook's figures: live ones, and the durable drop and marker counters.
    pub async fn webhook_figures(&self) -> Result<WebhookFigures> {
        let state = self.webhook_state().await?;
        let m = &self.webhook;
        Ok(WebhookFigures {
            configured: m.configured.load(Relaxed),
            queue_events: m.queue_events.load(Relaxed),
            queue_capacity: m.queue_capacity.load(Relaxed),
            backoff_seconds: m.backoff_seconds.load(Relaxed),
            last_delivery_timestamp_seconds: m.last_delivery_timestamp_seconds.load(Relaxed),
            oldest_pending_age_seconds: m.oldest_pending_age_seconds.load(Relaxed),
            deliveries_total: m.deliveries_total.load(Relaxed),
            attempt_failures_total: m.attempt_failures_total.load(Relaxed),
            dropped_events_total: state.dropped_total,
            resync_markers_total: state.markers_total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_vector_signs_as_the_spec_says() {
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = signature_header(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn two_keys_give_two_signatures() {
        let keys = vec![vec![1u8; 32], vec![2u8; 32]];
        let both = signature_header(&keys, "id", 5, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature_header(&keys[..1], "id", 5, b"{}"));
        assert_eq!(parts[1], signature_header(&keys[1..], "id", 5, b"{}"));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn logs_name_only_the_scheme_and_host() {
        assert_eq!(
            origin_of("https://user:pw@hooks.example:8443/p/a?t=1"),
            "https://hooks.example"
        );
        assert_eq!(origin_of("http://127.0.0.1:9000/hook"), "http://127.0.0.1");
    }

    #[test]
    fn the_cursor_jumps_when_the_queue_is_full_behind_the_ring_or_of_another_incarnation() {
        let head = EventId { incarnation: 7, seq: 20 };
        let at = |seq| WebhookState { incarnation: 7, delivered_seq: seq, ..Default::default() };
        assert_eq!(jump(&at(15), head, 1, Some(1), 5), None);
        assert_eq!(jump(&at(0), head, 1, Some(1), 5), Some((15, ResyncReason::QueueFull, 15)));
        assert_eq!(jump(&at(2), head, 1, Some(10), 50), Some((9, ResyncReason::BehindLog, 7)));
        let other = WebhookState { incarnation: 8, delivered_seq: 3, ..Default::default() };
        assert_eq!(
            jump(&other, head, 12, Some(1), 5),
            Some((15, ResyncReason::UnknownIncarnation, 4))
        );
        assert_eq!(jump(&at(20), head, 1, None, 5), None, "at the head, nothing kept is fine");
    }

    #[test]
    fn a_new_webhook_starts_at_the_head_with_a_marker_and_keeps_no_other_urls_cursor() {
        let meta = EventMeta { incarnation: 7, incarnation_from: 1, seq: 40 };
        let (here, there) =
            (url_hash("https://a.example/hook"), url_hash("https://b.example/hook"));
        // No cursor: the head, a `new_webhook` marker owed, nothing counted as dropped.
        let settled = settle_cursor(&WebhookState::default(), meta, here).unwrap();
        assert_eq!((settled.incarnation, settled.delivered_seq), (7, 40));
        assert_eq!(settled.pending_resync, Some(40));
        assert_eq!(settled.pending_reason.as_deref(), Some("new_webhook"));
        assert_eq!((settled.pending_dropped, settled.dropped_total), (0, 0));
        assert_eq!(settled.url_hash, Some(here));
        // Its own cursor is kept as it is.
        let delivering = WebhookState { delivered_seq: 42, pending_resync: None, ..settled };
        assert_eq!(settle_cursor(&delivering, meta, here), None);
        // Another URL starts anew; the counters carry on.
        let counted = WebhookState { dropped_total: 3, markers_total: 2, ..delivering.clone() };
        let moved = settle_cursor(&counted, EventMeta { seq: 45, ..meta }, there).unwrap();
        assert_eq!((moved.delivered_seq, moved.pending_resync), (45, Some(45)));
        assert_eq!((moved.dropped_total, moved.markers_total), (3, 2));
        assert_eq!(moved.url_hash, Some(there));
        // A cursor written before URLs were hashed is this URL's: only the hash is added.
        let old = WebhookState { url_hash: None, ..delivering.clone() };
        assert_eq!(
            settle_cursor(&old, meta, there),
            Some(WebhookState { url_hash: Some(there), ..old })
        );
        // An empty log owes no marker.
        let empty = EventMeta { seq: 0, ..meta };
        let fresh = settle_cursor(&WebhookState::default(), empty, here).unwrap();
        assert_eq!((fresh.delivered_seq, fresh.pending_resync), (0, None));
    }

    #[test]
    fn a_resync_from_the_read_jumps_to_the_head_it_names() {
        let mut state = WebhookState { incarnation: 7, delivered_seq: 10, ..Default::default() };
        resync_to(&mut state, EventId { incarnation: 7, seq: 25 }, ResyncReason::BehindLog);
        assert_eq!((state.delivered_seq, state.pending_resync), (25, Some(25)));
        assert_eq!((state.pending_dropped, state.dropped_total), (15, 15));
        assert_eq!(state.pending_reason.as_deref(), Some("behind_log"));
        resync_to(
            &mut state,
            EventId { incarnation: 8, seq: 30 },
            ResyncReason::UnknownIncarnation,
        );
        assert_eq!((state.incarnation, state.delivered_seq), (8, 30));
        assert_eq!(state.dropped_total, 15, "another incarnation's events are not counted");
        for reason in [ResyncReason::BehindLog, ResyncReason::NewWebhook, ResyncReason::QueueFull] {
            assert_eq!(ResyncReason::from_name(reason.as_str()), Some(reason));
        }
    }

    #[test]
    fn a_read_behind_the_ring_resumes_at_the_oldest_event_kept_and_only_a_hole_at_the_head() {
        let head = EventId { incarnation: 7, seq: 40 };
        let at = |seq| WebhookState { incarnation: 7, delivered_seq: seq, ..Default::default() };
        let behind = ResyncReason::BehindLog;
        // Trimmed under the cursor since the checks: just before the oldest kept, not the head.
        let target = resync_target(&at(10), head, behind, Some(25));
        assert_eq!(target, EventId { incarnation: 7, seq: 24 });
        let mut state = at(10);
        resync_to(&mut state, target, behind);
        assert_eq!((state.delivered_seq, state.pending_resync), (24, Some(24)));
        assert_eq!(state.dropped_total, 14, "only the events trimmed are dropped");
        // A hole the ring does not explain (the next event needed is kept): the head.
        assert_eq!(resync_target(&at(10), head, behind, Some(5)), head);
        assert_eq!(resync_target(&at(10), head, behind, Some(11)), head);
        // Nothing kept, another incarnation, another reason: the head.
        assert_eq!(resync_target(&at(10), head, behind, None), head);
        let other = WebhookState { incarnation: 6, ..at(10) };
        assert_eq!(resync_target(&other, head, behind, Some(25)), head);
        assert_eq!(resync_target(&at(10), head, ResyncReason::AheadOfLog, Some(25)), head);
        // An oldest kept past the head (a log cut since) is no place to resume: the head.
        assert_eq!(resync_target(&at(10), head, behind, Some(41)), head);
    }

    /// The worst case: every read asks for a resync and every marker is acknowledged at once.
    /// Each resync waits as a failure does, doubling, so ten minutes hold a handful of
    /// attempts, not a spin.
    #[test]
    fn a_persistent_resync_cannot_spin() {
        let max = Duration::from_secs(60);
        let mut backoff = Backoff::new(max);
        let (mut elapsed, mut attempts) = (Duration::ZERO, 0u32);
        let mut next = Stepped::Resynced;
        while elapsed < Duration::from_secs(600) {
            attempts += 1;
            assert!(attempts < 1000, "spinning");
            elapsed += backoff.after(next).expect("a resync or marker is never idle");
            next = if next == Stepped::Resynced { Stepped::Marker } else { Stepped::Resynced };
        }
        // The most ten minutes can hold: every wait at its lowest jitter (0.75 of 1, 2, 4, 8,
        // 16, 32, then 60 s), each resync followed by its marker: 19 resyncs, 38 attempts.
        let (mut lowest_elapsed, mut lowest_resyncs, mut base) =
            (Duration::ZERO, 0u32, WEBHOOK_FIRST_BACKOFF);
        while lowest_elapsed < Duration::from_secs(600) {
            lowest_resyncs += 1;
            lowest_elapsed += base.mul_f64(0.75);
            base = (base * 2).min(max);
        }
        assert_eq!(lowest_resyncs, 19, "the schedule this bound was reckoned from");
        // A slack of 10 over that (rounding aside, it cannot be reached); a backoff that
        // stopped doubling would take hundreds.
        let bound = 2 * lowest_resyncs + 10;
        assert!(attempts <= bound, "{attempts} attempts in ten minutes, at most {bound}");
        // A failure waits too; a delivered event starts the backoff again.
        let mut backoff = Backoff::new(max);
        let first = backoff.after(Stepped::Failed).unwrap();
        let second = backoff.after(Stepped::Resynced).unwrap();
        assert!(first >= Duration::from_millis(750) && second >= Duration::from_millis(1500));
        assert_eq!(backoff.after(Stepped::Event), Some(Duration::ZERO));
        assert!(backoff.after(Stepped::Failed).unwrap() <= Duration::from_millis(1250));
        assert_eq!(backoff.after(Stepped::Idle), None);
    }
}
