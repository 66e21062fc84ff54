//! The hunt's endpoints: `POST /v1/observations` (an NDJSON body, streamed in chunks that are
//! each written durably before the next is read) and the analytics reads, which carry raw
//! handles and are audited as record reads are.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use crate::daemon::{MAX_LINES_PER_WRITE, ObserveCounts};
use crate::hunt::analytics::{AccountStats, CommunityStats};
use crate::hunt::ledger::Activity;
use crate::hunt::observation::{LineRule, MAX_LINE_BYTES};
use crate::hunt::{Analytics, Curation};

/// Largest observations body, in bytes (64 MiB: about 200,000 posts).
pub const MAX_OBSERVATIONS_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of lines gathered before a chunk is written, whatever its line count.
const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Refused lines listed in an answer; the count covers them all.
pub const MAX_REFUSALS_LISTED: usize = crate::daemon::MAX_REFUSALS_KEPT;
/// Most accounts in one analytics answer.
pub const MAX_ACCOUNTS_PER_PAGE: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ObserveQuery {
    /// The number of the body's first line (default 1), so a client sending a file in parts
    /// gets refusals numbered by the file's lines.
    #[serde(default)]
    first_line: Option<u64>,
}

#[derive(Debug, Serialize)]
struct ObserveOut {
    accepted: u64,
    duplicates: u64,
    refused_count: u64,
    refused: Vec<RefusedOut>,
    dropped_references: u64,
}

#[derive(Debug, Serialize)]
struct RefusedOut {
    line: u64,
    rule: &'static str,
    message: String,
}

fn rule_code(rule: LineRule) -> &'static str {
    match rule {
        LineRule::TooLong => "too_long",
        LineRule::NotAnObject => "not_an_object",
        LineRule::Platform => "platform",
        LineRule::Account => "account",
        LineRule::At => "at",
        LineRule::Future => "future",
        LineRule::PostId => "post_id",
    }
}

/// Gathers the body's lines into chunks and counts each chunk before reading on.
pub(super) struct Chunker {
    line: u64,
    current: Vec<u8>,
    too_long: bool,
    chunk: Vec<(u64, Vec<u8>)>,
    chunk_bytes: usize,
}

impl Chunker {
    /// A chunker whose first line is numbered `first_line`.
    pub(super) fn new(first_line: u64) -> Self {
        Self {
            line: first_line,
            current: Vec::new(),
            too_long: false,
            chunk: Vec::new(),
            chunk_bytes: 0,
        }
    }

    /// Takes the body's next bytes; each chunk filled is pushed to `full`.
    pub(super) fn push_bytes(&mut self, mut bytes: &[u8], full: &mut Vec<Vec<(u64, Vec<u8>)>>) {
        while !bytes.is_empty() {
            let (part, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => (&bytes[..end], &bytes[end + 1..], true),
                None => (bytes, &[][..], false),
            };
            if self.current.len() + part.len() > MAX_LINE_BYTES {
                // Kept as a marker only: the line is refused as too long.
                self.too_long = true;
                self.current.clear();
            } else if !self.too_long {
                self.current.extend_from_slice(part);
            }
            bytes = rest;
            if ended {
                self.end_line(full);
            }
        }
    }

    /// Takes the end of the body: its last line, and the last chunk, are pushed to `full`.
    pub(super) fn finish(&mut self, full: &mut Vec<Vec<(u64, Vec<u8>)>>) {
        if !self.current.is_empty() || self.too_long {
            self.end_line(full);
        }
        if !self.chunk.is_empty() {
            full.push(std::mem::take(&mut self.chunk));
        }
    }

    fn end_line(&mut self, full: &mut Vec<Vec<(u64, Vec<u8>)>>) {
        let line = std::mem::take(&mut self.current);
        let number = self.line;
        self.line += 1;
        if self.too_long {
            self.too_long = false;
            // One byte past the limit: the hunt refuses it as too long without reading it.
            self.chunk.push((number, vec![b' '; MAX_LINE_BYTES + 1]));
            self.chunk_bytes += MAX_LINE_BYTES + 1;
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            self.chunk_bytes += line.len();
            self.chunk.push((number, line));
        }
        if self.chunk.len() >= MAX_LINES_PER_WRITE || self.chunk_bytes >= MAX_CHUNK_BYTES {
            full.push(std::mem::take(&mut self.chunk));
            self.chunk_bytes = 0;
        }
    }
}

/// `POST /v1/observations[?first_line=N]`: an `application/x-ndjson` body, one observation a
/// line, at most [`MAX_OBSERVATIONS_BODY_BYTES`]. Each chunk of up to
/// `daemon::MAX_LINES_PER_WRITE` lines is written durably before the next is read. One audit
/// line per request, with the counts.
pub(super) async fn observe(
    State(api): State<Api>,
    user: User,
    Params(query): Params<ObserveQuery>,
    request: Request,
) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    let ndjson = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.split(';').next().map(str::trim) == Some("application/x-ndjson")
        });
    if !ndjson {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "observations are sent as application/x-ndjson",
        ));
    }
    let mut body: Body = request.into_body();
    let mut chunker = Chunker::new(query.first_line.unwrap_or(1).max(1));
    let mut counts = ObserveCounts::default();
    let mut received = 0usize;
    let outcome: ApiResult<()> = async {
        loop {
            let mut full = Vec::new();
            let done = match body.frame().await {
                None => {
                    chunker.finish(&mut full);
                    true
                }
                Some(Err(_)) => {
                    return Err(ApiError::bad_request(
                        "invalid_body",
                        "the request body could not be read; the lines before were kept",
                    ));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        received += data.len();
                        if received > MAX_OBSERVATIONS_BODY_BYTES {
                            return Err(ApiError::new(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "too_large",
                                format!(
                                    "an observations body is at most \
                                     {MAX_OBSERVATIONS_BODY_BYTES} bytes; the lines before were kept"
                                ),
                            ));
                        }
                        chunker.push_bytes(&data, &mut full);
                    }
                    false
                }
            };
            for chunk in full {
                counts.add(api.node.observe(chunk).await?);
            }
            if done {
                return Ok(());
            }
        }
    }
    .await;
    // One audit line per request, also when it failed part way (for what was kept).
    api.node.audit_observations(&counts, user.name).await?;
    outcome?;
    let refused_count = counts.refused_count;
    let refused = counts
        .refused
        .iter()
        .take(MAX_REFUSALS_LISTED)
        .map(|&(line, rule)| RefusedOut { line, rule: rule_code(rule), message: rule.to_string() })
        .collect();
    let out = ObserveOut {
        accepted: counts.accepted,
        duplicates: counts.duplicates,
        refused_count,
        refused,
        dropped_references: counts.dropped_references,
    };
    Ok((StatusCode::OK, axum::Json(out)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountsQuery {
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    community: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct ActivityOut {
    posts: u32,
    originals: u32,
    reposts: u32,
    replies: u32,
}

impl From<Activity> for ActivityOut {
    fn from(activity: Activity) -> Self {
        Self {
            posts: activity.posts(),
            originals: activity.originals,
            reposts: activity.reposts,
            replies: activity.replies,
        }
    }
}

#[derive(Debug, Serialize)]
struct AccountOut {
    account: String,
    platform: String,
    languages: Vec<String>,
    activity: ActivityOut,
    previous_activity: ActivityOut,
    posts_per_day: f64,
    trend_posts_per_day: f64,
    structure_activity: ActivityOut,
    distinct_amplifiers: u32,
    pagerank: Option<f64>,
    community: u64,
    confidence: Option<f64>,
    /// The reason an analyst marked it "not a target", if any.
    not_a_target: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<PriorityOut>,
}

/// An account's priority score and its terms, each a percentile rank in [0, 1].
#[derive(Debug, Serialize)]
struct PriorityOut {
    score: f64,
    activity: f64,
    amplifiers: f64,
    influence: f64,
    reach: f64,
    link: f64,
}

#[derive(Debug, Serialize)]
struct WindowOut {
    first_day: u32,
    last_day: u32,
}

#[derive(Debug, Serialize)]
pub(super) struct AccountsOut {
    sort: &'static str,
    activity_window: Option<WindowOut>,
    structure_window: Option<WindowOut>,
    total: usize,
    accounts: Vec<AccountOut>,
}

fn window_out(window: Option<crate::hunt::Window>) -> Option<WindowOut> {
    window.map(|w| WindowOut { first_day: w.first.0, last_day: w.last.0 })
}

fn account_out(analytics: &Analytics, curation: &Curation, account: &AccountStats) -> AccountOut {
    let days = analytics.activity_window.map_or(1, |w| w.last.0 - w.first.0 + 1).max(1);
    let per_day = |activity: &Activity| f64::from(activity.posts()) / f64::from(days);
    AccountOut {
        account: account.account.clone(),
        platform: account.platform.clone(),
        languages: account.languages.clone(),
        activity: account.activity.into(),
        previous_activity: account.previous_activity.into(),
        posts_per_day: per_day(&account.activity),
        trend_posts_per_day: per_day(&account.activity) - per_day(&account.previous_activity),
        structure_activity: account.structure_activity.into(),
        distinct_amplifiers: account.distinct_amplifiers,
        pagerank: account.pagerank,
        community: account.community,
        confidence: account.confidence,
        not_a_target: curation.mark(&account.account).map(|mark| mark.category.as_str()),
        priority: None,
    }
}

/// `sort=priority`: the referral queue, removed accounts left out, each with its terms.
async fn priority_queue(
    api: &Api,
    query: &AccountsQuery,
    limit: usize,
    user: String,
) -> ApiResult<axum::Json<AccountsOut>> {
    let (analytics, queue) = api.node.priority_queue(user).await?;
    let picked: Vec<_> = queue
        .into_iter()
        .filter(|(index, _)| {
            let a = &analytics.accounts[*index];
            query.platform.as_ref().is_none_or(|p| a.platform == *p)
                && query.lang.as_ref().is_none_or(|l| a.languages.contains(l))
                && query.community.is_none_or(|c| a.community == c)
        })
        .collect();
    let total = picked.len();
    let curation = api.node.curation();
    let accounts = picked
        .into_iter()
        .take(limit)
        .map(|(index, terms)| AccountOut {
            priority: Some(PriorityOut {
                score: terms.score,
                activity: terms.activity,
                amplifiers: terms.amplifiers,
                influence: terms.influence,
                reach: terms.reach,
                link: terms.link,
            }),
            ..account_out(&analytics, &curation, &analytics.accounts[index])
        })
        .collect();
    Ok(axum::Json(AccountsOut {
        sort: "priority",
        activity_window: window_out(analytics.activity_window),
        structure_window: window_out(analytics.structure_window),
        total,
        accounts,
    }))
}

/// `GET /v1/analytics/accounts?sort=activity|influence|priority&platform=&lang=&community=&limit=`:
/// raw handles, so audited. `activity` ranks by original posts in the activity window, then
/// distinct amplifiers, then all posts; `influence` by PageRank (accounts that did not post
/// last); `priority` is the referral queue (`hunt/priority.rs`: removed accounts left out, each
/// account with its score's terms).
pub(super) async fn accounts(
    State(api): State<Api>,
    user: User,
    Params(query): Params<AccountsQuery>,
) -> ApiResult<axum::Json<AccountsOut>> {
    user.require(Role::Analyst)?;
    let sort = match query.sort.as_deref() {
        None | Some("activity") => "activity",
        Some("influence") => "influence",
        Some("priority") => "priority",
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "sort is activity, influence or priority",
            ));
        }
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_ACCOUNTS_PER_PAGE {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit is 1 to {MAX_ACCOUNTS_PER_PAGE}"),
        ));
    }
    if sort == "priority" {
        return priority_queue(&api, &query, limit, user.name).await;
    }
    let analytics = api.node.read_analytics("accounts".into(), user.name).await?;
    let mut picked: Vec<&AccountStats> = analytics
        .accounts
        .iter()
        .filter(|a| query.platform.as_ref().is_none_or(|p| a.platform == *p))
        .filter(|a| query.lang.as_ref().is_none_or(|l| a.languages.contains(l)))
        .filter(|a| query.community.is_none_or(|c| a.community == c))
        .collect();
    match sort {
        "influence" => picked.sort_by(|a, b| {
            let rank = |x: &AccountStats| x.pagerank.unwrap_or(-1.0);
            rank(b).total_cmp(&rank(a)).then_with(|| a.account.cmp(&b.account))
        }),
        _ => picked.sort_by(|a, b| {
            b.activity
                .originals
                .cmp(&a.activity.originals)
                .then(b.distinct_amplifiers.cmp(&a.distinct_amplifiers))
                .then(b.activity.posts().cmp(&a.activity.posts()))
                .then_with(|| a.account.cmp(&b.account))
        }),
    }
    let total = picked.len();
    let curation = api.node.curation();
    let accounts =
        picked.into_iter().take(limit).map(|a| account_out(&analytics, &curation, a)).collect();
    Ok(axum::Json(AccountsOut {
        sort,
        activity_window: window_out(analytics.activity_window),
        structure_window: window_out(analytics.structure_window),
        total,
        accounts,
    }))
}

#[derive(Debug, Serialize)]
struct CommunityOut {
    id: u64,
    label: Option<String>,
    labels: Vec<String>,
    size: usize,
    core_size: usize,
    merged_ids: Vec<u64>,
    offered_ids: Vec<u64>,
    pinned: bool,
    split_from: Option<u64>,
}

fn community_out(community: &CommunityStats, curation: &Curation) -> CommunityOut {
    let curated = curation.community(community.id);
    CommunityOut {
        pinned: curated.is_some_and(|c| c.pinned),
        split_from: curated.and_then(|c| c.split_from),
        id: community.id,
        label: community.labels.first().cloned(),
        labels: community.labels.clone(),
        size: community.members.len(),
        core_size: community.core_size,
        merged_ids: community.merged_ids.clone(),
        offered_ids: community.offered_ids.clone(),
    }
}

#[derive(Debug, Serialize)]
pub(super) struct CommunitiesOut {
    structure_window: Option<WindowOut>,
    modularity: f64,
    communities: Vec<CommunityOut>,
}

/// `GET /v1/analytics/communities`: every community, largest first (audited).
pub(super) async fn communities(
    State(api): State<Api>,
    user: User,
) -> ApiResult<axum::Json<CommunitiesOut>> {
    user.require(Role::Analyst)?;
    let analytics = api.node.read_analytics("communities".into(), user.name).await?;
    Ok(axum::Json(CommunitiesOut {
        structure_window: window_out(analytics.structure_window),
        modularity: analytics.modularity,
        communities: {
            let curation = api.node.curation();
            analytics.communities.iter().map(|c| community_out(c, &curation)).collect()
        },
    }))
}

#[derive(Debug, Serialize)]
struct MemberOut {
    account: String,
    confidence: Option<f64>,
    pagerank: Option<f64>,
    posts: u32,
    not_a_target: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct EdgeOut {
    from: String,
    to: String,
    weight: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct CommunityDetailOut {
    #[serde(flatten)]
    community: CommunityOut,
    members: Vec<MemberOut>,
    internal_edges: Vec<EdgeOut>,
}

/// `GET /v1/analytics/communities/{id}`: members with confidence, internal edges, label
/// (audited, naming the community).
pub(super) async fn community(
    State(api): State<Api>,
    user: User,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<CommunityDetailOut>> {
    user.require(Role::Analyst)?;
    let id: u64 = id.parse().map_err(|_| ApiError::not_found("community"))?;
    let analytics = api.node.read_analytics(format!("community:{id}"), user.name).await?;
    let community = analytics.community(id).ok_or_else(|| ApiError::not_found("community"))?;
    let name = |index: usize| analytics.accounts[index].account.clone();
    let curation = api.node.curation();
    let mut members: Vec<MemberOut> = community
        .members
        .iter()
        .map(|&m| {
            let account = &analytics.accounts[m];
            MemberOut {
                account: account.account.clone(),
                confidence: account.confidence,
                pagerank: account.pagerank,
                posts: account.structure_activity.posts(),
                not_a_target: curation.mark(&account.account).map(|mark| mark.category.as_str()),
            }
        })
        .collect();
    let confidence = |member: &MemberOut| member.confidence.unwrap_or(-1.0);
    members.sort_by(|a, b| {
        confidence(b).total_cmp(&confidence(a)).then_with(|| a.account.cmp(&b.account))
    });
    let internal_edges = community
        .internal_edges
        .iter()
        .map(|&(from, to, weight)| EdgeOut { from: name(from), to: name(to), weight })
        .collect();
    Ok(axum::Json(CommunityDetailOut {
        community: community_out(community, &curation),
        members,
        internal_edges,
    }))
}
