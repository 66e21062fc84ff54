//! The hunt's successor suggestions and its exports: `GET /v1/analytics/successors` (raw
//! handles: an audited analytics read) and `GET /v1/analytics/export` (GraphML, GEXF or CSV,
//! marked with the node's handling mark and audited as `export_analytics`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use crate::hunt::ExportFormat;
use crate::hunt::ledger::EvidencePost;
use crate::hunt::successors::Successor;

#[derive(Debug, Serialize)]
struct PostOut {
    post_id: String,
    urls: Vec<String>,
}

impl From<&EvidencePost> for PostOut {
    fn from(post: &EvidencePost) -> Self {
        Self { post_id: post.post_id.clone(), urls: post.urls.clone() }
    }
}

#[derive(Debug, Serialize)]
struct OverlapOut {
    score: f64,
    weighted_jaccard: f64,
    common_partners: usize,
    old_circle: usize,
    candidate_partners: usize,
    partners: Vec<String>,
}

#[derive(Debug, Serialize)]
struct AnnouncementOut {
    score: f64,
    announcers: Vec<String>,
    posts: Vec<PostOut>,
}

#[derive(Debug, Serialize)]
struct HandleOut {
    score: f64,
    similarity: f64,
}

#[derive(Debug, Serialize)]
struct PartsOut {
    overlap: OverlapOut,
    announcement: AnnouncementOut,
    handle: HandleOut,
}

#[derive(Debug, Serialize)]
struct SuccessorOut {
    /// "likely successor of <old>".
    suggestion: String,
    account: String,
    likely_successor_of: String,
    removed_at_ms: u64,
    first_seen_ms: u64,
    score: f64,
    parts: PartsOut,
}

fn successor_out(successor: &Successor) -> SuccessorOut {
    SuccessorOut {
        suggestion: format!("likely successor of {}", successor.old),
        account: successor.account.clone(),
        likely_successor_of: successor.old.clone(),
        removed_at_ms: successor.removed_at_ms,
        first_seen_ms: successor.first_seen_ms,
        score: successor.score,
        parts: PartsOut {
            overlap: OverlapOut {
                score: successor.overlap.score,
                weighted_jaccard: successor.overlap.jaccard,
                common_partners: successor.overlap.common,
                old_circle: successor.overlap.old_circle,
                candidate_partners: successor.overlap.candidate_partners,
                partners: successor.overlap.partners.clone(),
            },
            announcement: AnnouncementOut {
                score: successor.announcement.score,
                announcers: successor.announcement.announcers.clone(),
                posts: successor.announcement.posts.iter().map(PostOut::from).collect(),
            },
            handle: HandleOut {
                score: successor.handle.score,
                similarity: successor.handle.similarity,
            },
        },
    }
}

#[derive(Debug, Serialize)]
pub(super) struct SuccessorsOut {
    removed_searched: usize,
    reinstated: Vec<String>,
    successors: Vec<SuccessorOut>,
}

/// `GET /v1/analytics/successors`: the latest computation's "likely successor of …"
/// suggestions, each with its score and each part's evidence (audited).
pub(super) async fn successors(
    State(api): State<Api>,
    user: User,
) -> ApiResult<axum::Json<SuccessorsOut>> {
    user.require(Role::Analyst)?;
    let found = api.node.read_successors(user.name).await?;
    Ok(axum::Json(SuccessorsOut {
        removed_searched: found.searched,
        reinstated: found.reinstated.clone(),
        successors: found.suggestions.iter().map(successor_out).collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    format: Option<String>,
    #[serde(default)]
    community: Option<u64>,
}

/// `GET /v1/analytics/export?format=graphml|gexf|accounts.csv|links.csv&community=`: the latest
/// analytics as a file, with the handling mark (audited as `export_analytics`).
pub(super) async fn export(
    State(api): State<Api>,
    user: User,
    Params(query): Params<ExportQuery>,
) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    let Some(format) = query.format.as_deref() else {
        return Err(ApiError::bad_request(
            "invalid_query",
            "format is required: graphml, gexf, accounts.csv or links.csv",
        ));
    };
    let format: ExportFormat = format
        .parse()
        .map_err(|error| ApiError::bad_request("invalid_format", format!("{error}")))?;
    let export = api.node.export_analytics(format, query.community, user.name).await?;
    let filename = match query.community {
        Some(id) => format!("attachment; filename=\"community-{id}.{}\"", format.as_str()),
        None => format!("attachment; filename=\"communities.{}\"", format.as_str()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.media_type().to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        export.text,
    )
        .into_response())
}
