//! The local HTTP API (axum): named bearer tokens with roles, JSON in and out, health checks and
//! Prometheus metrics. The only module that knows the API's JSON shapes. This file holds the
//! router, the request limits and [`serve`]; `api/` holds one job per file: `auth` (roles,
//! users, token hashes, the `User` extractor), `listener` (connection slots and idle closing),
//! `error` (the error answer), `extract` (path, body, query and JSON parsing), `records`,
//! `alerts`, `hunt` (observations in, analytics out), `curation` (labels, pins, merges, splits,
//! "not a target" marks, suggestions), `share` (community shares and their overlaps across
//! borders), `successors` (successor suggestions and the analytics exports), `takedowns` (the
//! takedown clocks), `status` (health, status and forks), `peers` (the members as this node
//! sees them), `metrics` (Prometheus text), `export` (the STIX 2.1 export, streamed) and
//! `stream` (the live alert stream, Server-Sent Events).
//!
//! - It listens on loopback only; TLS and remote access go through a reverse proxy.
//! - A bearer token is never stored: the tokens file holds
//!   `BLAKE3-derive_key(TOKEN_HASH_CONTEXT, token)` per named user, and the name is what the
//!   audit log records.
//! - Roles are ordered: `monitor` reads health, status and metrics; `analyst` also adds, reads,
//!   removes and flags records, reads, follows and acknowledges alerts, sends observations,
//!   reads the analytics and the takedown clocks and curates them; `admin` also reads fork
//!   evidence and exports the unit's data as STIX.
//! - Every connection is bounded: connections open, silence, the time a request head may take
//!   to arrive, and its lifetime; and while more than three quarters of the connection slots
//!   are taken, every connection closes after its response, so that nobody can keep the slots
//!   by sending whole requests slowly on keep-alive connections.
//! - Every request is bounded: body size, requests in flight, and time. A request that times
//!   out may still have been carried out: engine work is atomic and is not cancelled once it
//!   has started; work that has not started by then is not done. Engine calls outstanding for
//!   the API are bounded too (`daemon::MAX_ENGINE_CALLS_PER_LANE`).
//! - No response or log line carries a raw identifier the caller did not ask to read, and no
//!   error message echoes the request body.
//! - Handlers call named operations of [`daemon::Node`] and shape its answers; they never see
//!   the engine or the store.

mod alerts;
mod auth;
mod curation;
mod error;
mod export;
mod extract;
#[cfg(feature = "test-support")]
pub mod fuzz;
mod hunt;
mod imports;
mod listener;
mod metrics;
mod openapi;
mod peers;
mod records;
mod roster;
mod secret;
mod share;
mod status;
mod stream;
mod successors;
mod takedowns;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;

pub use alerts::MAX_ALERTS_PER_PAGE;
pub use auth::{
    Role, TOKEN_HASH_CONTEXT, TOKEN_PREFIX, User, Users, UsersHandle, new_bearer_token, token_hash,
};
use error::ApiError;
pub use export::{MAX_EXPORTS, STIX_MEDIA_TYPE};
pub use hunt::{MAX_ACCOUNTS_PER_PAGE, MAX_OBSERVATIONS_BODY_BYTES, MAX_REFUSALS_LISTED};
pub use imports::{IMPORT_UPLOAD_TIMEOUT, MAX_IMPORT_UPLOADS, MAX_IMPORTS_PER_PAGE};
use listener::Limited;
pub use openapi::{
    ROUTES as DOCUMENTED_ROUTES, Route as DocumentedRoute, document as openapi_document,
};
pub use records::{MAX_IDENTIFIERS_PER_RECORD, MAX_NOTES_BYTES};
pub use roster::MAX_ROSTER_BODY_BYTES;
pub use stream::{MAX_STREAMS, STREAM_HEARTBEAT, StreamLimits, WEBHOOK_BODIES, event_json};
pub use takedowns::MAX_TAKEDOWNS_PER_PAGE;

use crate::daemon::Node;

/// Largest request body accepted (observations have their own limit,
/// [`MAX_OBSERVATIONS_BODY_BYTES`], and are read in chunks).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Requests served at once; more are answered `503` at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Connections open at once; further ones wait in the listen backlog until one closes.
pub const MAX_CONNECTIONS: usize = 128;
/// How long connections may finish their requests once the node stops; then they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A connection that sends nothing for this long (a stalled request head, an idle keep-alive)
/// is closed, so stalled clients cannot keep the connection slots.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A request head (request line and headers) must arrive whole within this long of the
/// connection being ready for it (opened, or done with the previous response), however it
/// trickles in; otherwise the connection is closed. So an idle keep-alive connection is closed
/// after this long too.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that has been open this long closes after the response it is in (with
/// `Connection: close`), so that no client keeps a connection slot for good, however it
/// behaves.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Longest a request may take before it is answered `503`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits [`serve`] applies to connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Longest a connection may send nothing.
    pub idle_timeout: Duration,
    /// Longest a request head may take to arrive whole.
    pub head_timeout: Duration,
    /// How long a connection may stay open; then it closes after its response.
    pub lifetime: Duration,
    /// Longest open requests may run on once the node stops.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            idle_timeout: IDLE_TIMEOUT,
            head_timeout: HEAD_TIMEOUT,
            lifetime: CONNECTION_LIFETIME,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// The limits [`router`] applies to requests.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Requests served at once.
    pub max_in_flight: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self { max_in_flight: MAX_IN_FLIGHT, request_timeout: REQUEST_TIMEOUT }
    }
}

/// What every handler shares: the node, the users and the API's own counters.
#[derive(Clone)]
struct Api {
    node: Node,
    users: UsersHandle,
    member_id: Arc<str>,
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
    auth_failures: Arc<AtomicU64>,
    /// The alert streams' slots and counters (`stream.rs`).
    streams: Arc<stream::Streams>,
    /// The STIX exports' slots (`export.rs`).
    exports: Arc<export::Exports>,
    /// Import uploads being read now (`imports.rs`), at most [`MAX_IMPORT_UPLOADS`].
    import_uploads: Arc<Semaphore>,
}

/// The API's routes over a running node, with the default [`RequestLimits`]. `users` is
/// [`Users`], or a [`UsersHandle`] through which they can be swapped while the API runs.
pub fn router(node: Node, users: impl Into<UsersHandle>, member_id: &str) -> Router {
    router_with(node, users, member_id, RequestLimits::default())
}

/// The API's routes over a running node, with `limits`.
pub fn router_with(
    node: Node,
    users: impl Into<UsersHandle>,
    member_id: &str,
    limits: RequestLimits,
) -> Router {
    router_with_streams(node, users, member_id, limits, StreamLimits::default())
}

/// The API's routes over a running node, with `limits` and the alert streams' `streams`.
pub fn router_with_streams(
    node: Node,
    users: impl Into<UsersHandle>,
    member_id: &str,
    limits: RequestLimits,
    streams: StreamLimits,
) -> Router {
    let api = Api {
        node,
        users: users.into(),
        member_id: member_id.into(),
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        request_timeout: limits.request_timeout,
        auth_failures: Arc::new(AtomicU64::new(0)),
        streams: Arc::new(stream::Streams::new(streams)),
        exports: Arc::new(export::Exports::new()),
        import_uploads: Arc::new(Semaphore::new(MAX_IMPORT_UPLOADS)),
    };
    // Live alerts: the stream is merged after the request bounds, so it escapes the request
    // timeout and the in-flight cap (it has its own cap); it still takes a connection slot.
    // The STIX export streams too, with its own cap, outside the request timeout.
    let live_alerts = Router::new()
        .route("/v1/alerts/stream", get(stream::stream))
        .route("/v1/export/stix", get(export::export_stix))
        .with_state(api.clone());
    // Imports: an upload is merged after the request bounds too, with its own cap and timeout
    // and its own size limit, read in a stream (not the 64 KiB body limit).
    let import_uploads =
        Router::new().route("/v1/imports", post(imports::upload)).with_state(api.clone());
    Router::new()
        .route("/livez", get(status::livez))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/status", get(status::status))
        .route("/v1/records", post(records::add_record))
        .route("/v1/records/{id}", get(records::read_record).delete(records::remove_record))
        .route("/v1/records/{id}/status", post(records::set_status))
        .route("/v1/alerts", get(alerts::alerts))
        .route("/v1/alerts/{id}/ack", post(alerts::acknowledge))
        .route("/v1/forks", get(status::forks))
        .route("/v1/observations", post(hunt::observe))
        .route("/v1/analytics/accounts", get(hunt::accounts))
        .route("/v1/analytics/communities", get(hunt::communities))
        .route("/v1/analytics/communities/{id}", get(hunt::community))
        // The analysts' curation and suggestions.
        .route("/v1/analytics/communities/{id}/label", post(curation::label))
        .route("/v1/analytics/communities/{id}/pin", post(curation::pin))
        .route("/v1/analytics/communities/{id}/merge", post(curation::merge))
        .route("/v1/analytics/communities/{id}/split", post(curation::split))
        .route("/v1/analytics/not-a-target", post(curation::not_a_target))
        .route("/v1/analytics/suggestions", get(curation::suggestions))
        // Across borders: community shares, overlaps (the priority queue is in `hunt`).
        .route("/v1/analytics/communities/{id}/share", post(share::share))
        .route("/v1/analytics/overlaps", get(share::overlaps))
        // The hunt's successors and exports.
        .route("/v1/analytics/successors", get(successors::successors))
        .route("/v1/analytics/export", get(successors::export))
        // The takedown clock (issue: the 2-hour clock).
        .route("/v1/takedowns", get(takedowns::takedowns))
        // The federation's roster adopted at run time (issue 12: rosters adopted at run time).
        .route(
            "/v1/roster",
            get(roster::show)
                .post(roster::adopt)
                .layer(DefaultBodyLimit::max(MAX_ROSTER_BODY_BYTES)),
        )
        // A new epoch's secret delivered to a running node (issue 12: a roster's rotation
        // drives the engine's rotation).
        .route(
            "/v1/secret",
            post(secret::take).layer(DefaultBodyLimit::max(secret::MAX_SECRET_BODY_BYTES)),
        )
        // The analyst's command line (issue 13): the members as this node sees them.
        .route("/v1/peers", get(peers::peers))
        // The OpenAPI document.
        .route("/v1/openapi.json", get(openapi::openapi))
        // Imports as resumable jobs: the jobs, their progress and undo.
        .route("/v1/imports", get(imports::list))
        .route("/v1/imports/{id}", get(imports::show))
        .route("/v1/imports/{id}/undo", post(imports::undo))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(api.clone(), bound_request))
        .with_state(api)
        .merge(live_alerts)
        .merge(import_uploads)
}

/// Bounds every request: at most [`MAX_IN_FLIGHT`] at once, each within [`REQUEST_TIMEOUT`]
/// (or the [`RequestLimits`] given). A request that times out gives up its engine call: if the
/// call has not reached the engine yet, it never does its work.
async fn bound_request(State(api): State<Api>, request: Request, next: Next) -> Response {
    let Ok(_permit) = api.in_flight.try_acquire() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many requests in flight",
        )
        .into_response();
    };
    match tokio::time::timeout(api.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request timed out; it may still have been carried out",
        )
        .into_response(),
    }
}

/// Serves `router` on `listener` until the node stops, with the default [`ConnectionLimits`].
pub async fn serve(listener: tokio::net::TcpListener, router: Router, node: Node) {
    serve_with(listener, router, node, ConnectionLimits::default()).await;
}

/// Serves `router` on `listener` until the node stops, then lets the requests in flight finish
/// within the grace. At most `limits.max_connections` are open at once; a connection is closed
/// when it stays silent for the idle timeout, or when a request head has not arrived whole
/// within the head timeout (hyper's header read timeout, which axum's own `serve` leaves off).
/// A connection closes after its response (`Connection: close`) once it has been open for the
/// lifetime, or while more than three quarters of the slots are taken: so a client that sends
/// whole requests, each just within the head timeout, cannot keep a slot either.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    node: Node,
    limits: ConnectionLimits,
) {
    serve_until(listener, router, async move { node.stopped().await }, limits).await;
}

/// Serves `router` on `listener` as [`serve_with`] does, until `stop` resolves rather than
/// until the node stops: for tests that ask a node's API after the node has stopped.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl Future<Output = ()>,
    limits: ConnectionLimits,
) {
    let mut listener = Limited::new(listener, limits.max_connections, limits.idle_timeout);
    let occupancy = listener.occupancy();
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut stopped = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stopped => break,
            io = listener.accept() => {
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                let closing = closing_rx.clone();
                let service = ClosingWhenDue {
                    service,
                    occupancy: occupancy.clone(),
                    until: tokio::time::Instant::now() + limits.lifetime,
                };
                connections.spawn(serve_connection(io, service, limits.head_timeout, closing));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // No new connections; open ones finish the request they are in, within the grace.
    drop(listener);
    closing.send_replace(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, drained).await.is_err() {
        tracing::warn!("API connections still open at shutdown were cut");
    }
}

/// The router's service for one connection, which marks a response `Connection: close` (and
/// so closes the connection after it) once the connection's lifetime is over or while the
/// connection slots are crowded.
#[derive(Clone)]
struct ClosingWhenDue {
    service: hyper_util::service::TowerToHyperService<Router>,
    occupancy: listener::Occupancy,
    until: tokio::time::Instant,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for ClosingWhenDue {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static>,
    >;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let answer = self.service.call(request);
        let (occupancy, until) = (self.occupancy.clone(), self.until);
        Box::pin(async move {
            let mut response = answer.await?;
            if occupancy.crowded() || tokio::time::Instant::now() >= until {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        })
    }
}

/// Serves one connection (HTTP/1.1) until it closes, or until `closing` is set: then the
/// request in progress is finished and the connection closed.
async fn serve_connection(
    io: listener::Slotted,
    service: ClosingWhenDue,
    head_timeout: Duration,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(head_timeout);
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "API connection ended");
            }
        }
        () = async { drop(closing.wait_for(|closing| *closing).await) } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
