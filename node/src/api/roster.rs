//! The federation's roster: `POST /v1/roster` (admin) adopts the next version, `GET
//! /v1/roster` (monitor) shows the adopted one with its alarms. The body of a `POST` is the
//! roster's CBOR wire form (docs/PROTOCOL.md §4.3), at most `MAX_ROSTER_BYTES`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use crossmatch_protocol::{MAX_ROSTER_BYTES, SignedRoster};
use serde_json::{Value, json};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use crate::daemon::{Adopter, RosterError};

/// Largest `POST /v1/roster` body: a roster's wire form at its limit.
pub const MAX_ROSTER_BODY_BYTES: usize = MAX_ROSTER_BYTES;

/// A roster's wire form as the request body; a larger one is a `413`.
pub(super) struct RosterBody(Bytes);

impl FromRequest<Api> for RosterBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Api) -> ApiResult<Self> {
        match Bytes::from_request(request, api).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("a roster is at most {MAX_ROSTER_BODY_BYTES} bytes"),
                ))
            }
            Err(_) => {
                Err(ApiError::bad_request("invalid_body", "the request body could not be read"))
            }
        }
    }
}

/// `POST /v1/roster` (admin): adopts the roster in the body as the next version. `200` with
/// the version and hash the node runs (`adopted: false` when it was the adopted roster
/// already); `400 invalid_roster` for a roster that breaks a rule (signatures, body); `409`
/// with `stale_roster` (older), `conflicting_roster` (another of the adopted version),
/// `roster_ahead` (skips versions), `expired_roster` (valid, but past its `expires_at`) or
/// `no_roster` (the node runs without a signed roster).
pub(super) async fn adopt(
    State(api): State<Api>,
    user: User,
    RosterBody(body): RosterBody,
) -> ApiResult<axum::Json<Value>> {
    user.require(Role::Admin)?;
    let roster = SignedRoster::from_wire(&body).map_err(|problem| {
        ApiError::bad_request("invalid_roster", format!("roster refused: {problem}"))
    })?;
    let adoption = api
        .node
        .adopt_roster(roster, Vec::new(), Adopter::User(user.name))
        .await
        .map_err(refusal)?;
    Ok(axum::Json(json!({
        "version": adoption.version,
        "hash": hex::encode(adoption.hash),
        "adopted": adoption.adopted,
    })))
}

/// The API answer of a refused roster.
fn refusal(error: RosterError) -> ApiError {
    let conflict = |code| ApiError::new(StatusCode::CONFLICT, code, error.to_string());
    match &error {
        RosterError::Invalid(_) => ApiError::bad_request("invalid_roster", error.to_string()),
        RosterError::NotOnRoster => ApiError::bad_request("not_on_roster", error.to_string()),
        RosterError::Stale { .. } => conflict("stale_roster"),
        RosterError::Conflicting { .. } => conflict("conflicting_roster"),
        RosterError::Ahead { .. } => conflict("roster_ahead"),
        RosterError::Expired { .. } => conflict("expired_roster"),
        RosterError::NoRoster => conflict("no_roster"),
        RosterError::Store(_) => {
            tracing::error!(%error, "store failed while adopting a roster");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
        RosterError::Node(_) => match error {
            RosterError::Node(error) => ApiError::from(*error),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"),
        },
    }
}

/// `GET /v1/roster` (monitor): the adopted roster's version, hash, epoch, threshold, expiry,
/// members (ids, names, key fingerprints, the seq of their records) and alarms; `404
/// no_roster` when the node runs without a signed roster.
pub(super) async fn show(State(api): State<Api>, user: User) -> ApiResult<axum::Json<Value>> {
    user.require(Role::Monitor)?;
    let Some(view) = api.node.roster_view() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_roster",
            "this node runs without a signed roster",
        ));
    };
    let members: Vec<Value> = view
        .members
        .iter()
        .map(|member| {
            json!({
                "id": member.id,
                "name": member.name,
                "node_key_fingerprint": member.node_key.fingerprint().to_string(),
                "governance_key_fingerprint": member.governance_key.fingerprint().to_string(),
                "retired_node_key_fingerprints": member
                    .retired_node_keys
                    .iter()
                    .map(|key| key.fingerprint().to_string())
                    .collect::<Vec<_>>(),
                "record_seq": member.record_seq,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "version": view.version,
        "hash": hex::encode(view.hash),
        "epoch": view.epoch,
        "threshold": view.threshold,
        "expires_at_ms": view.expires_at_ms,
        "members": members,
        "alarms": view.alarms,
    })))
}
