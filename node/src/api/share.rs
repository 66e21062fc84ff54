//! Across borders: `POST /v1/analytics/communities/{id}/share` (a preview, then the share that
//! quotes it) and `GET /v1/analytics/overlaps` (other members' shared communities that overlap
//! what this node holds or observes). docs/API.md and docs/HUNT.md §5.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, parse_json};
use crate::clock::DAY_MS;
use crate::daemon::{ErrorKind, ShareError, ShareParameters, SharePreview, WHAT_MEMBERS_LEARN};

/// `POST /v1/analytics/communities/{id}/share`. With `preview: true`, the parameters are
/// required and the answer is a preview with its id; with `preview: false`, only `preview_id`
/// is given, and the share publishes exactly that preview with its parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShareIn {
    preview: bool,
    #[serde(default)]
    preview_id: Option<String>,
    #[serde(default)]
    handling: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    evaluation: Option<String>,
    #[serde(default)]
    expires_in_days: Option<u64>,
}

#[derive(Debug, Serialize)]
struct PreviewOut {
    preview: bool,
    preview_id: String,
    community: u64,
    included: usize,
    members: usize,
    not_reviewed: usize,
    below_threshold: usize,
    mention_only: usize,
    not_a_target: usize,
    withheld: usize,
    min_confidence: f64,
    handling: &'static str,
    category: String,
    evaluation: String,
    expires_at_ms: u64,
    valid_until_ms: u64,
    summary: String,
    what_members_learn: &'static str,
}

impl From<SharePreview> for PreviewOut {
    fn from(p: SharePreview) -> Self {
        let summary = format!(
            "{} accounts to all {} members; {} never reviewed by an analyst (not records); {} \
             below the confidence threshold (excluded); {} only mentioned, {} not a target and \
             {} withheld by an analyst (excluded)",
            p.included,
            p.members,
            p.not_reviewed,
            p.below_threshold,
            p.mention_only,
            p.not_a_target,
            p.withheld
        );
        Self {
            preview: true,
            preview_id: p.preview_id,
            community: p.community,
            included: p.included,
            members: p.members,
            not_reviewed: p.not_reviewed,
            below_threshold: p.below_threshold,
            mention_only: p.mention_only,
            not_a_target: p.not_a_target,
            withheld: p.withheld,
            min_confidence: p.min_confidence,
            handling: p.parameters.handling.as_str(),
            category: p.parameters.category,
            evaluation: p.parameters.evaluation.to_string(),
            expires_at_ms: p.parameters.expires_at_ms,
            valid_until_ms: p.valid_until_ms,
            summary,
            what_members_learn: WHAT_MEMBERS_LEARN,
        }
    }
}

#[derive(Debug, Serialize)]
struct SharedOut {
    preview: bool,
    community: u64,
    snapshot: u64,
    accounts: usize,
    algorithmic_records: usize,
    pseudonym: String,
}

fn share_error(error: ShareError) -> ApiError {
    match error {
        ShareError::NoCommunity => ApiError::not_found("community"),
        ShareError::NoPreview => {
            ApiError::new(StatusCode::CONFLICT, "preview_unknown", error.to_string())
        }
        ShareError::Empty => ApiError::bad_request("invalid_share", error.to_string()),
        ShareError::MarkedSincePreview => {
            ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
        }
        ShareError::Busy => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", error.to_string())
        }
        ShareError::NoRandomness => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string())
        }
        ShareError::Node(error) if error.kind() == ErrorKind::Invalid => {
            ApiError::bad_request("invalid_share", error.to_string())
        }
        ShareError::Node(error) => error.into(),
    }
}

pub(super) fn parameters(input: &ShareIn, now_ms: u64) -> ApiResult<ShareParameters> {
    let missing = || {
        ApiError::bad_request(
            "invalid_share",
            "a preview needs handling, category and expires_in_days",
        )
    };
    let handling: crossmatch_protocol::Handling =
        input.handling.as_deref().ok_or_else(missing)?.parse().map_err(|error| {
            ApiError::bad_request("invalid_share", format!("handling: {error}"))
        })?;
    if handling == crossmatch_protocol::Handling::H3 {
        return Err(ApiError::bad_request("invalid_share", "H3 is never shared"));
    }
    let category = input.category.clone().ok_or_else(missing)?;
    if !crossmatch_protocol::is_valid_category(&category) {
        return Err(ApiError::bad_request(
            "invalid_share",
            "category must be 1-64 of a-z 0-9 _ . / - starting with a letter or digit",
        ));
    }
    let evaluation = input.evaluation.as_deref().unwrap_or("X4").parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_share",
            "evaluation is a letter A, B, C or X and a digit 1-4",
        )
    })?;
    let days = input.expires_in_days.ok_or_else(missing)?;
    let expires_at_ms = days
        .checked_mul(DAY_MS)
        .and_then(|ms| ms.checked_add(now_ms))
        .filter(|_| days > 0)
        .ok_or_else(|| {
            ApiError::bad_request("invalid_share", "expires_in_days must be at least 1")
        })?;
    Ok(ShareParameters { category, handling, evaluation, expires_at_ms })
}

/// `POST /v1/analytics/communities/{id}/share`: a preview (`"preview": true`, audited as an
/// analytics read) or the share of a preview (`"preview": false, "preview_id": …`, audited as a
/// share, answered once it is durable).
pub(super) async fn share(
    State(api): State<Api>,
    user: User,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    let community: u64 = id.parse().map_err(|_| ApiError::not_found("community"))?;
    let input: ShareIn = parse_json(&body)?;
    if input.preview {
        if input.preview_id.is_some() {
            return Err(ApiError::bad_request("invalid_share", "a preview takes no preview_id"));
        }
        let parameters = parameters(&input, api.node.now_ms())?;
        let preview =
            api.node.preview_share(community, parameters, user.name).await.map_err(share_error)?;
        return Ok((StatusCode::OK, axum::Json(PreviewOut::from(preview))).into_response());
    }
    let Some(preview_id) = input.preview_id else {
        return Err(ApiError::bad_request(
            "invalid_share",
            "a share quotes the preview_id of its preview",
        ));
    };
    if input.handling.is_some()
        || input.category.is_some()
        || input.evaluation.is_some()
        || input.expires_in_days.is_some()
    {
        return Err(ApiError::bad_request(
            "invalid_share",
            "a share takes its parameters from its preview; give preview_id only",
        ));
    }
    let shared =
        api.node.share_community(community, preview_id, user.name).await.map_err(share_error)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SharedOut {
            preview: false,
            community,
            snapshot: shared.snapshot,
            accounts: shared.tags,
            algorithmic_records: shared.records,
            pseudonym: shared.pseudonym,
        }),
    )
        .into_response())
}

#[derive(Debug, Serialize)]
struct OverlapOut {
    member_id: Option<String>,
    pseudonym: String,
    size: usize,
    held: usize,
    observed: usize,
    communities: Vec<CommunityOverlapOut>,
    summary: String,
}

#[derive(Debug, Serialize)]
struct CommunityOverlapOut {
    community: u64,
    accounts: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct OverlapsOut {
    overlaps: Vec<OverlapOut>,
}

/// `GET /v1/analytics/overlaps`: other members' shared communities that overlap this node's
/// holdings or observed accounts, matched here (audited as an analytics read).
pub(super) async fn overlaps(
    State(api): State<Api>,
    user: User,
) -> ApiResult<axum::Json<OverlapsOut>> {
    user.require(Role::Analyst)?;
    let found = api.node.overlaps(user.name).await?;
    let overlaps = found
        .into_iter()
        .map(|overlap| {
            let member = overlap.member_id.clone().unwrap_or_else(|| "a former member".into());
            let summary = overlap
                .communities
                .iter()
                .map(|(community, accounts)| {
                    format!(
                        "your community {community} overlaps {member}'s shared community by \
                         {accounts} accounts"
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            OverlapOut {
                member_id: overlap.member_id,
                pseudonym: overlap.pseudonym,
                size: overlap.size,
                held: overlap.held,
                observed: overlap.observed,
                communities: overlap
                    .communities
                    .into_iter()
                    .map(|(community, accounts)| CommunityOverlapOut { community, accounts })
                    .collect(),
                summary,
            }
        })
        .collect();
    Ok(axum::Json(OverlapsOut { overlaps }))
}
