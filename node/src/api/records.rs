//! `/v1/records`: add a record (identifiers canonicalised here, refusals by position and
//! rule), read one (raw identifiers: audited), remove one, and publish its status.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crossmatch_protocol::{RetractReason, Status};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Id, Params, parse_json};
use crate::clock::DAY_MS;
use crate::daemon::{NewRecord, RecordView};

use crate::import::record_in::RecordIn;
pub use crate::import::record_in::{MAX_IDENTIFIERS_PER_RECORD, MAX_NOTES_BYTES};

/// A record as the API takes it, checked (`import/record_in.rs`, shared with JSON lines
/// imports), with its expiry made absolute.
pub(super) fn new_record(input: RecordIn, now_ms: u64) -> ApiResult<NewRecord> {
    let record = input
        .validate()
        // The fault's message names a field or index and the rule; the input stays in the request.
        .map_err(|fault| ApiError::bad_request(fault.code(), fault.to_string()))?;
    let expires_at_ms = record
        .expires_in_days
        .checked_mul(DAY_MS)
        .and_then(|ms| ms.checked_add(now_ms))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_record", "expires_in_days must be at least 1")
        })?;
    Ok(NewRecord {
        identifiers: record.identifiers,
        category: record.category,
        handling: record.handling,
        evaluation: record.evaluation,
        notes: record.notes,
        activity_per_day: record.activity_per_day,
        expires_at_ms,
        share: record.share,
        backlog: record.backlog,
    })
}

/// `POST /v1/records` → `201 {"id": …}`.
pub(super) async fn add_record(
    State(api): State<Api>,
    user: User,
    Body(body): Body,
) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    let input: RecordIn = parse_json(&body)?;
    let record = new_record(input, api.node.now_ms())?;
    let id = api.node.add_record(record, user.name).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

/// A local record, raw identifiers included: reading it is audited.
#[derive(Debug, Serialize)]
pub(super) struct RecordOut {
    id: u64,
    identifiers: Vec<IdentifierOut>,
    category: String,
    handling: String,
    evaluation: String,
    notes: String,
    activity_per_day: Option<u64>,
    algorithmic: bool,
    expires_at_ms: u64,
    shared: bool,
    created_at_ms: u64,
    created_by: String,
    backlog: bool,
    /// A spread import's record waiting for quota room (a watch until released).
    pending_share: bool,
    /// The import that created or last updated it.
    import: Option<u64>,
}

#[derive(Debug, Serialize)]
struct IdentifierOut {
    canonical: String,
    token_short: String,
    epoch: u32,
}

impl From<RecordView> for RecordOut {
    fn from(record: RecordView) -> Self {
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
            handling: record.handling,
            evaluation: record.evaluation,
            notes: record.notes,
            activity_per_day: record.activity_per_day,
            algorithmic: record.algorithmic,
            expires_at_ms: record.expires_at_ms,
            shared: record.shared,
            created_at_ms: record.created_at_ms,
            created_by: record.created_by,
            backlog: record.backlog,
            pending_share: record.pending_share,
            import: record.import,
        }
    }
}

/// `GET /v1/records/{id}`: audited under the user's name.
pub(super) async fn read_record(
    State(api): State<Api>,
    user: User,
    Id(id): Id,
) -> ApiResult<axum::Json<RecordOut>> {
    user.require(Role::Analyst)?;
    let record = api.node.read_record(id, user.name).await?;
    record.map(|record| axum::Json(record.into())).ok_or_else(|| ApiError::not_found("record"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RemoveQuery {
    #[serde(default)]
    reason: Option<String>,
}

/// `DELETE /v1/records/{id}[?reason=…]` → `204`.
pub(super) async fn remove_record(
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
pub(super) struct StatusIn {
    status: String,
    /// When the status took effect (Unix ms; default now): a removal order's time of issue,
    /// or when the provider removed the account. Not in the future.
    #[serde(default)]
    at_ms: Option<u64>,
}

/// `POST /v1/records/{id}/status` → `204`.
pub(super) async fn set_status(
    State(api): State<Api>,
    user: User,
    Id(id): Id,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    user.require(Role::Analyst)?;
    let input: StatusIn = parse_json(&body)?;
    let (status, at_ms) = checked_status(input, api.node.now_ms())?;
    api.node.set_status_at(id, status, at_ms, user.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A status change as the API takes it, checked: a known status, a time not in the future
/// (now by default).
pub(super) fn checked_status(input: StatusIn, now_ms: u64) -> ApiResult<(Status, u64)> {
    let status: Status = input
        .status
        .parse()
        .map_err(|error| ApiError::bad_request("invalid_status", format!("{error}")))?;
    if input.at_ms.is_some_and(|at_ms| at_ms > now_ms) {
        return Err(ApiError::bad_request("invalid_status", "at_ms must not be in the future"));
    }
    Ok((status, input.at_ms.unwrap_or(now_ms)))
}
