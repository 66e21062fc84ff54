//! `POST /v1/secret` (admin): a new epoch's secret delivered to the running node, as the sealed
//! copy `crossmatch secret seal` wrote for this member (its hex text, or the wire form). The
//! node opens it with its node key, keeps it only when its fingerprint is the one the adopted
//! roster names for its epoch, persists it, and begins the roster's rotation if it waited for
//! it. The answer never holds the secret or its fingerprint.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::read_body;
use crate::daemon::{Adopter, MAX_SEALED_INPUT_BYTES, SecretError};

/// Largest `POST /v1/secret` body.
pub const MAX_SECRET_BODY_BYTES: usize = MAX_SEALED_INPUT_BYTES;

/// The sealed copy as the request body; a larger one is a `413`.
pub(super) struct SealedBody(Bytes);

impl FromRequest<Api> for SealedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Api) -> ApiResult<Self> {
        let too_large = format!("a sealed secret is at most {MAX_SECRET_BODY_BYTES} bytes");
        read_body(request, api, too_large).await.map(Self)
    }
}

/// `POST /v1/secret` (admin): `200` with the epoch, whether it was held already, and the
/// rotation alarm left (`null` when none); `400` with `invalid_sealed_secret` (not a sealed
/// copy, or the node key does not open it), `not_for_this_node` (sealed to another member or
/// federation) or `fingerprint_mismatch` (not the secret the roster names for its epoch); `409`
/// with `unknown_epoch` (the adopted roster names no secret for that epoch: adopt the roster
/// first) or `no_roster`.
pub(super) async fn take(
    State(api): State<Api>,
    user: User,
    SealedBody(body): SealedBody,
) -> ApiResult<axum::Json<Value>> {
    user.require(Role::Admin)?;
    let taken = api.node.take_secret(&body, Adopter::User(user.name)).await.map_err(refusal)?;
    Ok(axum::Json(json!({
        "epoch": taken.epoch,
        "held_already": taken.held_already,
        "rotation_alarm": api.node.rotation_alarm(),
    })))
}

/// The API answer of a refused secret.
fn refusal(error: SecretError) -> ApiError {
    let message = error.to_string();
    match error {
        SecretError::Malformed | SecretError::CannotOpen => {
            ApiError::bad_request("invalid_sealed_secret", message)
        }
        SecretError::NotForThisNode => ApiError::bad_request("not_for_this_node", message),
        SecretError::FingerprintMismatch { .. } => {
            ApiError::bad_request("fingerprint_mismatch", message)
        }
        SecretError::UnknownEpoch { .. } => {
            ApiError::new(StatusCode::CONFLICT, "unknown_epoch", message)
        }
        SecretError::NoRoster => ApiError::new(StatusCode::CONFLICT, "no_roster", message),
        SecretError::Io(_) => {
            tracing::error!(%error, "the secret could not be stored");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
        SecretError::Node(error) => ApiError::from(*error),
    }
}
