//! The federation's roster: `POST /v1/roster` (admin) adopts the next version, `GET
//! /v1/roster` (monitor) shows the adopted one with its alarms. The body of a `POST` is either
//! the roster file (TOML, with the members' records) or the roster's CBOR wire form
//! (docs/PROTOCOL.md §4.3).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use crossmatch_protocol::{SignedMemberRecord, SignedRoster};
use serde_json::{Value, json};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::read_body;
use crate::daemon::{Adopter, RosterError};
use crate::roster_file;

/// Largest `POST /v1/roster` body: a roster file at its limit (its CBOR wire form, at most
/// `MAX_ROSTER_BYTES`, is smaller).
pub const MAX_ROSTER_BODY_BYTES: usize = roster_file::MAX_ROSTER_FILE_BYTES as usize;

/// The posted body and how to read it (decoded only once the user is known to be an admin).
pub(super) struct RosterBody {
    pub(super) form: BodyForm,
    pub(super) bytes: Bytes,
}

/// The posted roster, decoded: from the roster file (TOML) or the wire form (CBOR).
pub(super) struct Posted {
    roster: SignedRoster,
    records: Vec<SignedMemberRecord>,
}

/// How a posted body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyForm {
    Toml,
    Cbor,
}

impl BodyForm {
    /// By content type (`application/cbor`, `application/toml`), else by the first byte: a
    /// roster's wire form is a CBOR map, whose first byte (0xa0..=0xbf) never starts UTF-8
    /// text, and a TOML file is UTF-8 text.
    pub(super) fn of(content_type: Option<&str>, body: &[u8]) -> Self {
        let essence = content_type
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/cbor") => Self::Cbor,
            Some("application/toml") => Self::Toml,
            _ if body.first().is_some_and(|first| *first >= 0x80) => Self::Cbor,
            _ => Self::Toml,
        }
    }
}

impl RosterBody {
    pub(super) fn decode(&self) -> ApiResult<Posted> {
        let body = &self.bytes[..];
        let invalid = |problem: String| {
            ApiError::bad_request("invalid_roster", format!("roster refused: {problem}"))
        };
        match self.form {
            BodyForm::Cbor => {
                let roster = SignedRoster::from_wire(body).map_err(|e| invalid(e.to_string()))?;
                Ok(Posted { roster, records: Vec::new() })
            }
            BodyForm::Toml => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| invalid("a roster file is UTF-8 text".to_owned()))?;
                let file = roster_file::parse(text).map_err(|e| invalid(e.to_string()))?;
                Ok(Posted { roster: file.roster, records: file.records })
            }
        }
    }
}

impl FromRequest<Api> for RosterBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Api) -> ApiResult<Self> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let too_large = format!("a roster is at most {MAX_ROSTER_BODY_BYTES} bytes");
        let bytes = read_body(request, api, too_large).await?;
        Ok(Self { form: BodyForm::of(content_type.as_deref(), &bytes), bytes })
    }
}

/// `POST /v1/roster` (admin): adopts the roster in the body as the next version, with the
/// members' records a roster file carries. `200` with
/// the version and hash the node runs (`adopted: false` when it was the adopted roster
/// already); `400 invalid_roster` for a roster that breaks a rule (signatures, body); `409`
/// with `stale_roster` (older), `conflicting_roster` (another of the adopted version),
/// `roster_ahead` (skips versions), `roster_forked` (a version a proved conflict contests:
/// this node adopts neither of its rosters), `expired_roster` (valid, but past its `expires_at`) or
/// `no_roster` (the node runs without a signed roster).
pub(super) async fn adopt(
    State(api): State<Api>,
    user: User,
    body: RosterBody,
) -> ApiResult<axum::Json<Value>> {
    user.require(Role::Admin)?;
    let body = body.decode()?;
    let adoption = api
        .node
        .adopt_roster(body.roster, body.records, Adopter::User(user.name))
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
        RosterError::BadAddress { .. } => {
            ApiError::bad_request("invalid_member_record", error.to_string())
        }
        RosterError::NotOnRoster | RosterError::NotOnRosterAtStart { .. } => {
            ApiError::bad_request("not_on_roster", error.to_string())
        }
        RosterError::OtherFederation => ApiError::bad_request("invalid_roster", error.to_string()),
        RosterError::Stale { .. } => conflict("stale_roster"),
        RosterError::Conflicting { .. } => conflict("conflicting_roster"),
        // Roster conflict evidence: a version two valid rosters contest.
        RosterError::Forked { .. } => conflict("roster_forked"),
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
/// members (ids, names, key fingerprints, the seq of their records), alarms and the roster
/// conflict proved (its version, the two hashes and whether this node adopted neither, or
/// null); `404
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
                "record_addresses": member.record_addresses,
                "record_contact": member.record_contact,
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
        "conflict": view.conflict.map(|(version, hashes)| json!({
            "version": version,
            "hashes": hashes.iter().map(hex::encode).collect::<Vec<_>>(),
            // Seen before either was adopted (or fetched from a peer): neither is.
            "adopted_neither": version > view.version,
        })),
    })))
}

#[cfg(test)]
mod tests {
    use super::BodyForm;

    #[test]
    fn the_body_form_follows_the_content_type_then_the_first_byte() {
        assert_eq!(BodyForm::of(Some("application/cbor"), b"federation_id"), BodyForm::Cbor);
        assert_eq!(BodyForm::of(Some("application/toml; charset=utf-8"), &[0xa5]), BodyForm::Toml);
        assert_eq!(BodyForm::of(None, &[0xa5, 0x01]), BodyForm::Cbor);
        assert_eq!(BodyForm::of(Some("application/octet-stream"), &[0xbf]), BodyForm::Cbor);
        assert_eq!(BodyForm::of(None, b"# roster\nversion = 2\n"), BodyForm::Toml);
        assert_eq!(BodyForm::of(None, b""), BodyForm::Toml);
    }
}
