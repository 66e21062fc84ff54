//! The local HTTP API (axum): named bearer tokens with roles, JSON in and out, health checks and
//! Prometheus metrics. The only module that knows the API's JSON shapes.
//!
//! - It listens on loopback only; TLS and remote access go through a reverse proxy.
//! - A bearer token is never stored: the tokens file holds
//!   `BLAKE3-derive_key(TOKEN_HASH_CONTEXT, token)` per named user, and the name is what the
//!   audit log records.
//! - Roles are ordered: `monitor` reads health, status and metrics; `analyst` also adds, reads,
//!   removes and flags records and reads and acknowledges alerts; `admin` also reads fork
//!   evidence.
//! - Every request is bounded: body size, requests in flight, and time. A request that times
//!   out may still have been carried out: engine work is atomic and is not cancelled.
//! - No response or log line carries a raw identifier the caller did not ask to read, and no
//!   error message echoes the request body.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crossmatch_protocol::{Handling, Kind, RetractReason, Status, canonicalize};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::clock::DAY_MS;
use crate::daemon::{self, Node};
use crate::engine::{self, NewRecord};
use crate::store::{Alert, AlertState, Record};

/// Domain of the stored hash of a bearer token.
pub const TOKEN_HASH_CONTEXT: &str = "crossmatch api token v1";
/// Prefix of every bearer token, so a leaked one is easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "cmt_";
/// Largest request body accepted.
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

/// The limits [`serve`] applies to connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Longest a connection may send nothing.
    pub idle_timeout: Duration,
    /// Longest open requests may run on once the node stops.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            idle_timeout: IDLE_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}
/// Longest a request may take before it is answered `503`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most identifiers in one record.
pub const MAX_IDENTIFIERS_PER_RECORD: usize = 32;
/// Longest notes field, in bytes.
pub const MAX_NOTES_BYTES: usize = 4096;
/// Alerts per page unless the caller asks for fewer.
pub const MAX_ALERTS_PER_PAGE: usize = 1000;

/// What an API user may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Health, status and metrics.
    Monitor,
    /// Records and alerts.
    Analyst,
    /// Fork evidence.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "monitor" => Ok(Self::Monitor),
            "analyst" => Ok(Self::Analyst),
            "admin" => Ok(Self::Admin),
            _ => Err("a role is monitor, analyst or admin".into()),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Monitor => "monitor",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        })
    }
}

/// A named API user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name the audit log records.
    pub name: String,
    /// What the user may do.
    pub role: Role,
}

/// The API's users, by the hash of their bearer token.
#[derive(Clone, Default)]
pub struct Users(Arc<HashMap<[u8; 32], User>>);

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.values().map(|user| &user.name)).finish()
    }
}

impl Users {
    /// Users from (token hash, user) pairs.
    pub fn new(users: impl IntoIterator<Item = ([u8; 32], User)>) -> Self {
        Self(Arc::new(users.into_iter().collect()))
    }

    fn find(&self, bearer: &str) -> Option<&User> {
        self.0.get(&token_hash(bearer))
    }
}

/// The stored form of a bearer token.
pub fn token_hash(bearer: &str) -> [u8; 32] {
    blake3::derive_key(TOKEN_HASH_CONTEXT, bearer.as_bytes())
}

/// A new random bearer token: [`TOKEN_PREFIX`] and 256 bits in hex.
pub fn new_bearer_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

#[derive(Clone)]
struct Api {
    node: Node,
    users: Users,
    member_id: Arc<str>,
    in_flight: Arc<Semaphore>,
    auth_failures: Arc<AtomicU64>,
}

/// The API's routes over a running node.
pub fn router(node: Node, users: Users, member_id: &str) -> Router {
    let api = Api {
        node,
        users,
        member_id: member_id.into(),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        auth_failures: Arc::new(AtomicU64::new(0)),
    };
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/records", post(add_record))
        .route("/v1/records/{id}", get(read_record).delete(remove_record))
        .route("/v1/records/{id}/status", post(set_status))
        .route("/v1/alerts", get(alerts))
        .route("/v1/alerts/{id}/ack", post(acknowledge))
        .route("/v1/forks", get(forks))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(api.clone(), limits))
        .with_state(api)
}

/// Serves `router` on `listener` until the node stops, with the default [`ConnectionLimits`].
pub async fn serve(listener: tokio::net::TcpListener, router: Router, node: Node) {
    serve_with(listener, router, node, ConnectionLimits::default()).await;
}

/// Serves `router` on `listener` until the node stops, then lets the requests in flight finish
/// within the grace. At most `limits.max_connections` are open at once; idle ones are closed.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    node: Node,
    limits: ConnectionLimits,
) {
    let listener = Limited {
        listener,
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        idle_timeout: limits.idle_timeout,
    };
    let stopping = node.clone();
    let server =
        axum::serve(listener, router).with_graceful_shutdown(async move { node.stopped().await });
    let grace = async move {
        stopping.stopped().await;
        tokio::time::sleep(limits.shutdown_grace).await;
    };
    tokio::select! {
        result = server => {
            if let Err(error) = result {
                tracing::error!(%error, "the API stopped");
            }
        }
        () = grace => tracing::warn!("API connections still open at shutdown were cut"),
    }
}

/// A TCP listener that holds one of a fixed number of slots per open connection.
struct Limited {
    listener: tokio::net::TcpListener,
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
}

/// A connection and its slot, given back when the connection is dropped. Reading fails with
/// `TimedOut` once the peer has sent nothing for the idle timeout.
struct Slotted {
    stream: tokio::net::TcpStream,
    _slot: tokio::sync::OwnedSemaphorePermit,
    idle_timeout: Duration,
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl axum::serve::Listener for Limited {
    type Io = Slotted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                // The semaphore is never closed; if it were, accept nothing more.
                std::future::pending::<()>().await;
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, address)) => {
                    let idle = Box::pin(tokio::time::sleep(self.idle_timeout));
                    let io = Slotted { stream, _slot: slot, idle_timeout: self.idle_timeout, idle };
                    return (io, address);
                }
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::debug!(%error, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl tokio::io::AsyncRead for Slotted {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let deadline = tokio::time::Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl tokio::io::AsyncWrite for Slotted {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

async fn limits(State(api): State<Api>, request: Request, next: Next) -> Response {
    let Ok(_permit) = api.in_flight.try_acquire() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many requests in flight",
        )
        .into_response();
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request timed out; it may still have been carried out",
        )
        .into_response(),
    }
}

/// An error answer: `{"error": {"code", "message"}}`. Messages never echo request data.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<daemon::Error> for ApiError {
    fn from(error: daemon::Error) -> Self {
        match error {
            daemon::Error::Engine(error) => error.into(),
            daemon::Error::Closed => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the node is stopping")
            }
            error => {
                tracing::error!(%error, "API request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl From<engine::Error> for ApiError {
    fn from(error: engine::Error) -> Self {
        match error {
            engine::Error::NoIdentifiers
            | engine::Error::Expiry { .. }
            | engine::Error::Category => Self::bad_request("invalid_record", error.to_string()),
            engine::Error::NoRecord(_) => Self::not_found("record"),
            engine::Error::Audit(_) => {
                tracing::error!(%error, "audit log refused an action");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "audit",
                    "the audit log failed; the action was not taken",
                )
            }
            engine::Error::Store(_) => {
                tracing::error!(%error, "store failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

impl FromRequestParts<Api> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> ApiResult<Self> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match bearer.and_then(|bearer| api.users.find(bearer.trim())) {
            Some(user) => Ok(user.clone()),
            None => {
                api.auth_failures.fetch_add(1, Ordering::Relaxed);
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a valid bearer token is needed",
                ))
            }
        }
    }
}

/// A numeric id from the path; anything else is a `404`.
struct Id(u64);

impl FromRequestParts<Api> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> ApiResult<Self> {
        match Path::<u64>::from_request_parts(parts, api).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(_) => Err(ApiError::not_found("record or alert")),
        }
    }
}

/// A request body of at most [`MAX_BODY_BYTES`]; a larger one is a `413` in the API's error
/// shape.
struct Body(Bytes);

impl axum::extract::FromRequest<Api> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Api) -> ApiResult<Self> {
        match Bytes::from_request(request, api).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("a request body is at most {MAX_BODY_BYTES} bytes"),
                ))
            }
            Err(_) => {
                Err(ApiError::bad_request("invalid_body", "the request body could not be read"))
            }
        }
    }
}

/// Query parameters; a bad query is a `400` in the API's error shape.
struct Params<T>(T);

impl<T: serde::de::DeserializeOwned> FromRequestParts<Api> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> ApiResult<Self> {
        match Query::<T>::from_request_parts(parts, api).await {
            Ok(Query(query)) => Ok(Self(query)),
            Err(_) => {
                Err(ApiError::bad_request("invalid_query", "unknown or malformed query parameters"))
            }
        }
    }
}

impl User {
    fn require(&self, role: Role) -> ApiResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs the {role} role"),
            ))
        }
    }
}

/// Parses a JSON body. Errors name the position and the kind of fault, never the content.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|error| {
        let what = match error.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed JSON"
            }
            _ => "JSON of the wrong shape (unknown, missing or mistyped field)",
        };
        ApiError::bad_request(
            "invalid_json",
            format!("{what} at line {} column {}", error.line(), error.column()),
        )
    })
}

async fn readyz(State(api): State<Api>) -> (StatusCode, &'static str) {
    if api.node.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "recovering the own feed\n")
    }
}

// ---- records ------------------------------------------------------------------------------

/// `POST /v1/records`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn {
    identifiers: Vec<IdentifierIn>,
    category: String,
    handling: String,
    evaluation: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    activity_per_day: Option<u64>,
    expires_in_days: u64,
    share: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifierIn {
    kind: String,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    region: Option<String>,
    value: String,
}

impl RecordIn {
    fn into_record(self, now_ms: u64) -> ApiResult<NewRecord> {
        if self.identifiers.is_empty() || self.identifiers.len() > MAX_IDENTIFIERS_PER_RECORD {
            return Err(ApiError::bad_request(
                "invalid_record",
                format!("a record has 1 to {MAX_IDENTIFIERS_PER_RECORD} identifiers"),
            ));
        }
        if self.notes.len() > MAX_NOTES_BYTES {
            return Err(ApiError::bad_request(
                "invalid_record",
                format!("notes are at most {MAX_NOTES_BYTES} bytes"),
            ));
        }
        let mut identifiers = Vec::with_capacity(self.identifiers.len());
        for (index, identifier) in self.identifiers.iter().enumerate() {
            let kind: Kind = identifier.kind.parse().map_err(|_| {
                ApiError::bad_request("unknown_kind", format!("identifiers[{index}]: unknown kind"))
            })?;
            let canonical = canonicalize(
                kind,
                identifier.platform.as_deref(),
                identifier.region.as_deref(),
                &identifier.value,
            )
            // The error's message names the rule only; the input stays in the request.
            .map_err(|error| {
                ApiError::bad_request(
                    "identifier_refused",
                    format!("identifiers[{index}]: {error}"),
                )
            })?;
            identifiers.push(canonical);
        }
        let handling: Handling = self.handling.parse().map_err(|error| {
            ApiError::bad_request("invalid_record", format!("handling: {error}"))
        })?;
        let evaluation = self.evaluation.parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_record",
                "evaluation is a letter A, B, C or X and a digit 1-4",
            )
        })?;
        let expires_at_ms = self
            .expires_in_days
            .checked_mul(DAY_MS)
            .and_then(|ms| ms.checked_add(now_ms))
            .filter(|_| self.expires_in_days > 0)
            .ok_or_else(|| {
                ApiError::bad_request("invalid_record", "expires_in_days must be at least 1")
            })?;
        Ok(NewRecord {
            identifiers,
            category: self.category,
            handling,
            evaluation,
            notes: self.notes,
            activity_per_day: self.activity_per_day,
            expires_at_ms,
            share: self.share,
        })
    }
}

async fn add_record(State(api): State<Api>, user: User, Body(body): Body) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    let input: RecordIn = parse_json(&body)?;
    let now_ms = api.node.with_engine(|engine| engine.now_ms()).await?;
    let record = input.into_record(now_ms)?;
    let id = api.node.add_record(record, user.name).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

/// A local record, raw identifiers included: reading it is audited.
#[derive(Debug, Serialize)]
struct RecordOut {
    id: u64,
    identifiers: Vec<IdentifierOut>,
    category: String,
    handling: String,
    evaluation: String,
    notes: String,
    activity_per_day: Option<u64>,
    expires_at_ms: u64,
    shared: bool,
    created_at_ms: u64,
    created_by: String,
}

#[derive(Debug, Serialize)]
struct IdentifierOut {
    canonical: String,
    token_short: String,
    epoch: u32,
}

impl From<Record> for RecordOut {
    fn from(record: Record) -> Self {
        Self {
            id: record.id,
            identifiers: record
                .identifiers
                .into_iter()
                .map(|identifier| IdentifierOut {
                    canonical: identifier.canonical,
                    token_short: identifier.token.short(),
                    epoch: identifier.epoch,
                })
                .collect(),
            category: record.category,
            handling: record.handling.as_str().to_owned(),
            evaluation: record.evaluation.to_string(),
            notes: record.notes,
            activity_per_day: record.activity_per_day,
            expires_at_ms: record.expires_at_ms,
            shared: record.shared,
            created_at_ms: record.created_at_ms,
            created_by: record.created_by,
        }
    }
}

async fn read_record(
    State(api): State<Api>,
    user: User,
    Id(id): Id,
) -> ApiResult<axum::Json<RecordOut>> {
    user.require(Role::Analyst)?;
    let record = api.node.with_engine(move |engine| engine.read_record(id, &user.name)).await??;
    record.map(|record| axum::Json(record.into())).ok_or_else(|| ApiError::not_found("record"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    #[serde(default)]
    reason: Option<String>,
}

async fn remove_record(
    State(api): State<Api>,
    user: User,
    Id(id): Id,
    Params(query): Params<RemoveQuery>,
) -> ApiResult<StatusCode> {
    user.require(Role::Analyst)?;
    let reason = match query.reason {
        None => RetractReason::NoLongerHeld,
        Some(reason) => reason
            .parse()
            .map_err(|error| ApiError::bad_request("invalid_reason", format!("{error}")))?,
    };
    api.node.remove_record(id, reason, user.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusIn {
    status: String,
}

async fn set_status(
    State(api): State<Api>,
    user: User,
    Id(id): Id,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    user.require(Role::Analyst)?;
    let input: StatusIn = parse_json(&body)?;
    let status: Status = input
        .status
        .parse()
        .map_err(|error| ApiError::bad_request("invalid_status", format!("{error}")))?;
    api.node.set_status(id, status, user.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- alerts -------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    since_ms: Option<u64>,
    #[serde(default)]
    after_id: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct AlertOut {
    id: u64,
    token_short: String,
    state: &'static str,
    acknowledged: bool,
    records: Vec<u64>,
    counterparts: Vec<CounterpartOut>,
    opened_at_ms: u64,
    updated_at_ms: u64,
}

#[derive(Debug, Serialize)]
struct CounterpartOut {
    member: Option<String>,
    contact: Option<String>,
    origin: String,
    retro: bool,
    kind: String,
    category: String,
    handling: String,
    evaluation: String,
    activity_per_day: Option<u64>,
    expires_at_ms: u64,
    status: Option<String>,
}

fn state_name(state: AlertState) -> &'static str {
    match state {
        AlertState::Open => "open",
        AlertState::Updated => "updated",
        AlertState::Closed => "closed",
        AlertState::Reopened => "reopened",
    }
}

fn alert_out(engine: &engine::Engine, alert: Alert) -> AlertOut {
    AlertOut {
        id: alert.id,
        token_short: alert.token.short(),
        state: state_name(alert.state),
        acknowledged: alert.acknowledged,
        records: alert.records,
        counterparts: alert
            .counterparts
            .into_iter()
            .map(|counterpart| {
                let member = engine.member(&counterpart.origin);
                CounterpartOut {
                    member: member.map(|m| m.id.clone()),
                    contact: member.map(|m| m.contact.clone()),
                    origin: counterpart.origin.to_string(),
                    retro: counterpart.retro,
                    kind: counterpart.add.kind.as_str().to_owned(),
                    category: counterpart.add.category,
                    handling: counterpart.add.handling.as_str().to_owned(),
                    evaluation: counterpart.add.evaluation.to_string(),
                    activity_per_day: counterpart.add.activity_per_day,
                    expires_at_ms: counterpart.add.expires_at_ms,
                    status: counterpart.add.status.map(|(status, _)| status.as_str().to_owned()),
                }
            })
            .collect(),
        opened_at_ms: alert.opened_at_ms,
        updated_at_ms: alert.updated_at_ms,
    }
}

async fn alerts(
    State(api): State<Api>,
    user: User,
    Params(query): Params<AlertQuery>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    user.require(Role::Analyst)?;
    let state = match query.state.as_deref() {
        None => None,
        Some("open") => Some(AlertState::Open),
        Some("updated") => Some(AlertState::Updated),
        Some("closed") => Some(AlertState::Closed),
        Some("reopened") => Some(AlertState::Reopened),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_state",
                "state is one of open, updated, closed, reopened",
            ));
        }
    };
    let limit = query.limit.unwrap_or(MAX_ALERTS_PER_PAGE).clamp(1, MAX_ALERTS_PER_PAGE);
    let after_id = query.after_id.unwrap_or(0);
    let since_ms = query.since_ms;
    let page = api
        .node
        .with_engine(move |engine| {
            let alerts = engine.alerts(state, since_ms)?;
            let mut page: Vec<AlertOut> = alerts
                .into_iter()
                .filter(|alert| alert.id > after_id)
                .take(limit + 1)
                .map(|alert| alert_out(engine, alert))
                .collect();
            let more = page.len() > limit;
            page.truncate(limit);
            Ok::<_, engine::Error>((page, more))
        })
        .await??;
    let (page, more) = page;
    let next_after_id = if more { page.last().map(|alert| alert.id) } else { None };
    Ok(axum::Json(json!({ "alerts": page, "next_after_id": next_after_id })))
}

async fn acknowledge(State(api): State<Api>, user: User, Id(id): Id) -> ApiResult<StatusCode> {
    user.require(Role::Analyst)?;
    if api.node.with_engine(move |engine| engine.acknowledge(id)).await?? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("alert"))
    }
}

// ---- operations ---------------------------------------------------------------------------

async fn forks(State(api): State<Api>, user: User) -> ApiResult<axum::Json<serde_json::Value>> {
    user.require(Role::Admin)?;
    let forks = api
        .node
        .with_engine(|engine| {
            let forks = engine.forks()?;
            Ok::<_, engine::Error>(
                forks
                    .into_iter()
                    .map(|(contested, evidence)| {
                        let origin = hex::encode(contested.origin());
                        json!({
                            "member": engine.contact(&origin).map(|m| m.id.clone()),
                            "origin": origin,
                            "generation": contested.generation(),
                            "seq": contested.seq,
                            "found_at_ms": evidence.found_at_ms,
                        })
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await??;
    Ok(axum::Json(json!({ "forks": forks })))
}

/// What `/v1/status` and `/metrics` report.
#[derive(Debug, Serialize)]
struct StatusOut {
    member_id: String,
    ready: bool,
    peers: usize,
    own_feed: Position,
    outbox: usize,
    heads: Vec<HeadOut>,
    forks: usize,
    counters: CountersOut,
    gossip_dropped_busy: u64,
    sync_refused_busy: u64,
    refused_connections: u64,
    bans: usize,
    /// Members (by id, or key hex if unknown) that announced another roster: no sync with them.
    roster_mismatches: Vec<String>,
    api_auth_failures: u64,
}

/// Ingest counters since start.
#[derive(Debug, Serialize)]
struct CountersOut {
    received: u64,
    verifications: u64,
    stored_reverifications: u64,
    applied: u64,
    duplicates: u64,
    rejected: u64,
    quota_refused: u64,
    skipped_entries: u64,
    forks: u64,
    held_dropped: u64,
}

impl From<engine::Counters> for CountersOut {
    fn from(c: engine::Counters) -> Self {
        Self {
            received: c.received,
            verifications: c.verifications,
            stored_reverifications: c.stored_reverifications,
            applied: c.applied,
            duplicates: c.duplicates,
            rejected: c.rejected,
            quota_refused: c.quota_refused,
            skipped_entries: c.skipped_entries,
            forks: c.forks,
            held_dropped: c.held_dropped,
        }
    }
}

#[derive(Debug, Serialize)]
struct Position {
    generation: u32,
    seq: u64,
}

#[derive(Debug, Serialize)]
struct HeadOut {
    member: Option<String>,
    origin: String,
    generation: u32,
    seq: u64,
}

async fn gather_status(api: &Api) -> ApiResult<StatusOut> {
    let stats = api.node.mesh().stats().await.map_err(|_| daemon::Error::Closed)?;
    let mismatched: Vec<String> =
        stats.roster_mismatches.iter().map(|peer| hex::encode(peer.0)).collect();
    let (own, outbox, heads, forks, counters, roster_mismatches) = api
        .node
        .with_engine(move |engine| {
            let heads = engine
                .head_positions()?
                .into_iter()
                .map(|head| {
                    let origin = hex::encode(head.origin());
                    HeadOut {
                        member: engine.contact(&origin).map(|m| m.id.clone()),
                        origin,
                        generation: head.generation(),
                        seq: head.seq,
                    }
                })
                .collect::<Vec<_>>();
            Ok::<_, engine::Error>((
                engine.own_head(),
                engine.outbox_len()?,
                heads,
                engine.fork_count()?,
                engine.counters(),
                mismatched
                    .into_iter()
                    .map(|key| engine.contact(&key).map_or(key, |member| member.id.clone()))
                    .collect::<Vec<_>>(),
            ))
        })
        .await??;
    Ok(StatusOut {
        member_id: api.member_id.to_string(),
        ready: api.node.is_ready(),
        peers: stats.connected_peers.len(),
        own_feed: Position { generation: own.0, seq: own.1 },
        outbox,
        heads,
        forks,
        counters: counters.into(),
        gossip_dropped_busy: stats.gossip_dropped_busy,
        sync_refused_busy: stats.sync_refused_busy,
        refused_connections: stats.refused_connections,
        bans: stats.bans.len(),
        roster_mismatches,
        api_auth_failures: api.auth_failures.load(Ordering::Relaxed),
    })
}

async fn status(State(api): State<Api>, user: User) -> ApiResult<axum::Json<StatusOut>> {
    user.require(Role::Monitor)?;
    Ok(axum::Json(gather_status(&api).await?))
}

async fn metrics(State(api): State<Api>, user: User) -> ApiResult<Response> {
    user.require(Role::Monitor)?;
    let status = gather_status(&api).await?;
    let c = &status.counters;
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let gauges = [
        (
            "ready",
            "1 once own-feed recovery is done and the node publishes.",
            u64::from(status.ready),
        ),
        ("peers", "Members connected with a matching roster.", as_u64(status.peers)),
        ("outbox_entries", "Entries waiting to be published.", as_u64(status.outbox)),
        ("own_feed_seq", "Seq of the newest own batch.", status.own_feed.seq),
        (
            "own_feed_generation",
            "Generation of the own feed.",
            u64::from(status.own_feed.generation),
        ),
        ("forks", "Fork evidence held.", as_u64(status.forks)),
        ("bans", "Members banned now.", as_u64(status.bans)),
        (
            "roster_mismatches",
            "Members that announced another roster (no sync with them).",
            as_u64(status.roster_mismatches.len()),
        ),
    ];
    let counters = [
        ("batches_received_total", "Batches received by ingest.", c.received),
        ("verifications_total", "Signature verifications of received batches.", c.verifications),
        (
            "stored_reverifications_total",
            "Verifications of stored batches before redacting or filling them.",
            c.stored_reverifications,
        ),
        ("batches_applied_total", "Batches applied.", c.applied),
        ("batches_duplicate_total", "Duplicate batches seen.", c.duplicates),
        ("batches_rejected_total", "Batches rejected.", c.rejected),
        ("batches_quota_refused_total", "Batches refused over quota.", c.quota_refused),
        ("entries_skipped_total", "Entries skipped as invalid.", c.skipped_entries),
        ("forks_found_total", "Forks found.", c.forks),
        ("held_dropped_total", "Held out-of-order batches dropped, window full.", c.held_dropped),
        (
            "gossip_dropped_busy_total",
            "Gossip ignored because the node was busy.",
            status.gossip_dropped_busy,
        ),
        ("sync_refused_busy_total", "Sync requests refused as busy.", status.sync_refused_busy),
        ("connections_refused_total", "Connections refused.", status.refused_connections),
        (
            "api_auth_failures_total",
            "API requests without a valid token.",
            status.api_auth_failures,
        ),
    ];
    let mut text = String::new();
    let typed = gauges.iter().map(|g| (g, "gauge")).chain(counters.iter().map(|c| (c, "counter")));
    for ((name, help, value), kind) in typed {
        let _ = writeln!(text, "# HELP crossmatch_{name} {help}");
        let _ = writeln!(text, "# TYPE crossmatch_{name} {kind}");
        let _ = writeln!(text, "crossmatch_{name} {value}");
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
