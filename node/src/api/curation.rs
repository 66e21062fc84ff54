//! The analysts' curation and the suggestions: `POST /v1/analytics/communities/{id}/label`,
//! `…/pin`, `…/merge`, `…/split`, `POST /v1/analytics/not-a-target` (each audited as a write)
//! and `GET /v1/analytics/suggestions` (audited as an analytics read). Analyst role. Accounts
//! in bodies are canonical forms as the analytics show them (the not-a-target mark also takes a
//! handle or profile URL with its platform); answers never repeat them.

use axum::extract::{Path, State};
use crossmatch_protocol::{Canonical, Kind, canonicalize};
use serde::{Deserialize, Serialize};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Params, parse_json};
use crate::daemon::{Curated, CurationChange, MAX_SUGGESTIONS, SuggestionView};
use crate::hunt::curation::{CurationError, NotATargetCategory};

fn community_id(id: &str) -> ApiResult<u64> {
    id.parse().map_err(|_| ApiError::not_found("community"))
}

/// An empty body reads as `{}`.
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) { parse_json(b"{}") } else { parse_json(body) }
}

fn refused(error: CurationError) -> ApiError {
    match error {
        CurationError::NoCommunity => ApiError::not_found("community"),
        other => ApiError::bad_request("invalid_curation", other.to_string()),
    }
}

#[derive(Debug, Serialize)]
pub(super) struct CuratedOut {
    community: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mark_id: Option<u64>,
    applied: bool,
}

async fn curate(
    api: &Api,
    user: User,
    change: CurationChange,
) -> ApiResult<axum::Json<CuratedOut>> {
    let curated: Curated = api.node.curate(change, user.name).await?.map_err(refused)?;
    Ok(axum::Json(CuratedOut {
        community: curated.community,
        mark_id: curated.mark_id,
        applied: curated.applied,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LabelIn {
    label: String,
    #[serde(default)]
    seeds: Option<Vec<String>>,
}

/// `POST /v1/analytics/communities/{id}/label` `{"label", "seeds"?}`.
pub(super) async fn label(
    State(api): State<Api>,
    user: User,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<axum::Json<CuratedOut>> {
    user.require(Role::Analyst)?;
    let community = community_id(&id)?;
    let input: LabelIn = parse_json(&body)?;
    curate(&api, user, CurationChange::Label { community, label: input.label, seeds: input.seeds })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PinIn {
    #[serde(default = "yes")]
    pinned: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/analytics/communities/{id}/pin` `{"pinned"?}` (default true; false unpins).
pub(super) async fn pin(
    State(api): State<Api>,
    user: User,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<axum::Json<CuratedOut>> {
    user.require(Role::Analyst)?;
    let community = community_id(&id)?;
    let input: PinIn = parse_body(&body)?;
    curate(&api, user, CurationChange::Pin { community, pinned: input.pinned }).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeIn {
    with: u64,
}

/// `POST /v1/analytics/communities/{id}/merge` `{"with"}`: `with` is shown as part of `{id}`.
pub(super) async fn merge(
    State(api): State<Api>,
    user: User,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<axum::Json<CuratedOut>> {
    user.require(Role::Analyst)?;
    let community = community_id(&id)?;
    let input: MergeIn = parse_json(&body)?;
    curate(&api, user, CurationChange::Merge { community, other: input.with }).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SplitIn {
    accounts: Vec<String>,
    #[serde(default)]
    label: Option<String>,
}

/// `POST /v1/analytics/communities/{id}/split` `{"accounts", "label"?}`: answers the new
/// community's id.
pub(super) async fn split(
    State(api): State<Api>,
    user: User,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<axum::Json<CuratedOut>> {
    user.require(Role::Analyst)?;
    let community = community_id(&id)?;
    let input: SplitIn = parse_json(&body)?;
    let change = CurationChange::Split { community, accounts: input.accounts, label: input.label };
    curate(&api, user, change).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotATargetIn {
    account: String,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    remove: bool,
}

/// The account a mark names: a canonical form, or a handle or profile URL (with `platform`).
fn marked_account(input: &NotATargetIn) -> ApiResult<Canonical> {
    let refused = |error: crossmatch_protocol::CanonError| {
        ApiError::bad_request("identifier_refused", format!("account: {error}"))
    };
    if input.platform.is_none()
        && let Ok(canonical) = input.account.parse::<Canonical>()
    {
        if matches!(canonical.kind(), Kind::Account | Kind::AccountId) {
            return Ok(canonical);
        }
        return Err(ApiError::bad_request("identifier_refused", "account: not an account"));
    }
    canonicalize(Kind::Account, input.platform.as_deref(), None, &input.account).map_err(refused)
}

/// `POST /v1/analytics/not-a-target` `{"account", "platform"?, "category"}` or
/// `{"account", "platform"?, "remove": true}`.
pub(super) async fn not_a_target(
    State(api): State<Api>,
    user: User,
    Body(body): Body,
) -> ApiResult<axum::Json<CuratedOut>> {
    user.require(Role::Analyst)?;
    let input: NotATargetIn = parse_json(&body)?;
    let (account, category) = checked_mark(&input)?;
    curate(&api, user, CurationChange::NotATarget { account, category }).await
}

/// A mark as the API takes it, checked: the account and the category (`None`: remove it).
pub(super) fn checked_mark(
    input: &NotATargetIn,
) -> ApiResult<(Canonical, Option<NotATargetCategory>)> {
    let account = marked_account(input)?;
    let category = match (input.remove, input.category.as_deref()) {
        (true, None) => None,
        (false, Some(category)) => Some(category.parse::<NotATargetCategory>().map_err(refused)?),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_curation",
                "give either category or remove: true",
            ));
        }
    };
    Ok((account, category))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SuggestionsQuery {
    #[serde(default)]
    community: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct PostOut {
    post_id: String,
    urls: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SuggestedEdgeOut {
    to: String,
    weight: f64,
    posts: Vec<PostOut>,
}

#[derive(Debug, Serialize)]
struct SuggestionOut {
    account: String,
    community: u64,
    label: Option<String>,
    labels: Vec<String>,
    strength: f64,
    edge_count: u32,
    edges: Vec<SuggestedEdgeOut>,
}

#[derive(Debug, Serialize)]
pub(super) struct SuggestionsOut {
    suggestions: Vec<SuggestionOut>,
}

fn suggestion_out(view: SuggestionView) -> SuggestionOut {
    SuggestionOut {
        account: view.account,
        community: view.community,
        label: view.labels.first().cloned(),
        labels: view.labels,
        strength: view.strength,
        edge_count: view.edge_count,
        edges: view
            .edges
            .into_iter()
            .map(|edge| SuggestedEdgeOut {
                to: edge.to,
                weight: edge.weight,
                posts: edge
                    .posts
                    .into_iter()
                    .map(|post| PostOut { post_id: post.post_id, urls: post.urls })
                    .collect(),
            })
            .collect(),
    }
}

/// `GET /v1/analytics/suggestions?community=&limit=` (limit 1 to [`MAX_SUGGESTIONS`], default
/// 100): raw handles and post ids, so audited.
pub(super) async fn suggestions(
    State(api): State<Api>,
    user: User,
    Params(query): Params<SuggestionsQuery>,
) -> ApiResult<axum::Json<SuggestionsOut>> {
    user.require(Role::Analyst)?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_SUGGESTIONS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit is 1 to {MAX_SUGGESTIONS}"),
        ));
    }
    let views = api.node.suggestions(query.community, limit, user.name).await?;
    Ok(axum::Json(SuggestionsOut { suggestions: views.into_iter().map(suggestion_out).collect() }))
}
