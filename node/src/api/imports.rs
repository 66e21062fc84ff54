//! The imports' endpoints (docs/API.md, Imports): `POST /v1/imports` (the file as the body,
//! streamed to a spool with limits of its own, not the API's 64 KiB; a dry run answers the
//! plan, else `202` and the job's id), `GET /v1/imports` and `GET /v1/imports/{id}` (the jobs,
//! counts and refusals by position and rule, never a value) and `POST
//! /v1/imports/{id}/undo`. Uploads have a cap of their own ([`MAX_IMPORT_UPLOADS`]) and a
//! timeout of their own ([`IMPORT_UPLOAD_TIMEOUT`]), outside the request bounds.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::{Id, Params};
use crate::daemon::{ImportCounts, ImportError, ImportJob, ImportRequest, ImportView, JobState};
use crate::import::limits::MAX_IMPORT_BYTES;
use crate::import::{Defaults, Format, Overrides};

/// Uploads (and dry runs) read at once; the next is answered `503 busy`.
pub const MAX_IMPORT_UPLOADS: usize = 2;
/// Longest an upload (or a dry run's plan) may take before it is answered `503 timeout`.
pub const IMPORT_UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Most imports in one page of `GET /v1/imports`.
pub const MAX_IMPORTS_PER_PAGE: usize = 500;
/// Imports in a page when the query names no limit.
const DEFAULT_IMPORTS_PER_PAGE: usize = 100;

/// `POST /v1/imports` query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadQuery {
    format: Option<String>,
    source: Option<String>,
    share: Option<bool>,
    category: Option<String>,
    handling: Option<String>,
    evaluation: Option<String>,
    expires_in_days: Option<u64>,
    #[serde(default)]
    spread: bool,
    /// A comma-separated subset of `red`, `amber-strict`, `unmarked` (admin).
    #[serde(rename = "override")]
    overrides: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

impl UploadQuery {
    /// The request it asks for; a bad parameter is a `400 invalid_import` naming the rule.
    fn request(self) -> ApiResult<(ImportRequest, bool)> {
        let invalid = |message: &'static str| ApiError::bad_request("invalid_import", message);
        let share = self.share.ok_or_else(|| {
            invalid("share is required: true shares the records, false only watches them")
        })?;
        let format = match self.format.as_deref() {
            None => None,
            Some(name) => Some(
                name.parse::<Format>()
                    .map_err(|_| invalid("format must be one of csv, jsonl, stix"))?,
            ),
        };
        let handling = match self.handling.as_deref() {
            None => None,
            Some(code) => {
                Some(code.parse().map_err(|_| invalid("handling must be one of H0, H1, H2, H3"))?)
            }
        };
        let evaluation = match self.evaluation.as_deref() {
            None => None,
            Some(code) => Some(code.parse().map_err(|_| {
                invalid("evaluation must be A1 to X4 (source A, B, C or X; information 1 to 4)")
            })?),
        };
        if let Some(category) = &self.category
            && !crossmatch_protocol::is_valid_category(category)
        {
            return Err(invalid("category is not an acceptable category label"));
        }
        if self.expires_in_days == Some(0) {
            return Err(invalid("expires_in_days must be at least 1"));
        }
        let mut overrides = Overrides::default();
        for name in
            self.overrides.as_deref().unwrap_or_default().split(',').filter(|n| !n.is_empty())
        {
            match name {
                "red" => overrides.red = true,
                "amber-strict" => overrides.amber_strict = true,
                "unmarked" => overrides.unmarked = true,
                _ => return Err(invalid("override must list red, amber-strict or unmarked")),
            }
        }
        let defaults = Defaults {
            category: self.category,
            handling,
            evaluation,
            expires_in_days: self.expires_in_days,
            share,
        };
        let request =
            ImportRequest { format, source: self.source, defaults, overrides, spread: self.spread };
        Ok((request, self.dry_run))
    }
}

/// `POST /v1/imports?…`: the file as the body, spooled; a dry run answers `200` with the
/// plan (`"id": null`), else `202 {"id", "state": "queued"}` and `Location`. Analyst; the
/// `override` parameter needs admin.
pub(super) async fn upload(
    State(api): State<Api>,
    user: User,
    Params(query): Params<UploadQuery>,
    request: Request,
) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    let (import, dry_run) = query.request()?;
    let overrides = import.overrides;
    if overrides.red || overrides.amber_strict || overrides.unmarked {
        user.require(Role::Admin)?;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_IMPORT_BYTES) {
        return Err(ImportError::TooLarge.into());
    }
    if !dry_run && api.node.import_queue_full() {
        return Err(ImportError::Busy.into());
    }
    let Ok(_upload) = api.import_uploads.try_acquire() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{MAX_IMPORT_UPLOADS} import uploads are being read; try again later"),
        ));
    };
    // The timeout bounds reading the body (and a dry run's plan, which writes nothing); the
    // job is queued after it, so a timeout's "nothing was imported" stays true.
    let received = async {
        let mut spool = api.node.import_spool().await?;
        let mut body: Body = request.into_body();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| ImportError::Invalid("the request body could not be read"))?;
            if let Ok(data) = frame.into_data() {
                spool.write(&data).await?;
            }
        }
        if dry_run {
            let view = api.node.import_dry_run(spool, import, user.name).await?;
            Ok::<_, ImportError>(Err(view))
        } else {
            Ok(Ok((spool, import, user.name)))
        }
    };
    let received = match tokio::time::timeout(IMPORT_UPLOAD_TIMEOUT, received).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the upload timed out; nothing was imported",
            ));
        }
        Ok(received) => received?,
    };
    let (spool, import, user) = match received {
        Err(view) => return Ok((StatusCode::OK, axum::Json(job_json(&view, true))).into_response()),
        Ok(upload) => upload,
    };
    // Stored, renamed and taken up as one piece of work that a dropped request does not stop.
    let id = api.node.import_upload(spool, import, user).await?;
    let answer = json!({ "id": id, "state": JobState::Queued.as_str() });
    let mut response = (StatusCode::ACCEPTED, axum::Json(answer)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/imports/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /v1/imports` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// `GET /v1/imports[?after=ID&limit=N]`: `{"imports": [...], "next_after"}` in id order, at
/// most [`MAX_IMPORTS_PER_PAGE`]; `next_after` is null on the last page. Analyst.
pub(super) async fn list(
    State(api): State<Api>,
    user: User,
    Params(query): Params<ListQuery>,
) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    let limit = query.limit.unwrap_or(DEFAULT_IMPORTS_PER_PAGE);
    if limit == 0 || limit > MAX_IMPORTS_PER_PAGE {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_IMPORTS_PER_PAGE}"),
        ));
    }
    let page = api.node.imports(query.after, limit).await?;
    let next_after = (page.len() == limit).then(|| page.last().map(|view| view.job.id)).flatten();
    // A listing leaves each job's refused rows out (up to 1,000 each): `GET /v1/imports/{id}`.
    let imports: Vec<Value> = page.iter().map(|view| job_json(view, false)).collect();
    Ok(axum::Json(json!({ "imports": imports, "next_after": next_after })).into_response())
}

/// `GET /v1/imports/{id}`: the job. Analyst.
pub(super) async fn show(State(api): State<Api>, user: User, Id(id): Id) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    match api.node.import(id).await? {
        Some(view) => Ok(axum::Json(job_json(&view, true)).into_response()),
        None => Err(ApiError::not_found("import")),
    }
}

/// `POST /v1/imports/{id}/undo` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UndoQuery {
    #[serde(default)]
    force: bool,
}

/// `POST /v1/imports/{id}/undo[?force=true]`: `202 {"id", "state": "undoing"}`; the records
/// the import created and nobody edited since go (edited ones too with `force`). Analyst.
pub(super) async fn undo(
    State(api): State<Api>,
    user: User,
    Id(id): Id,
    Params(query): Params<UndoQuery>,
) -> ApiResult<Response> {
    user.require(Role::Analyst)?;
    let view = api.node.undo_import(id, query.force, user.name).await?;
    let answer = json!({ "id": view.job.id, "state": view.job.state.as_str() });
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

fn counts_json(counts: &ImportCounts) -> Value {
    json!({
        "records": counts.records,
        "added": counts.added,
        "updated": counts.updated,
        "present": counts.present,
        "removed": counts.removed,
        "refused": counts.refused,
        "watched": counts.watched,
        "to_share": counts.share_entries,
        "pending": counts.pending_entries,
    })
}

/// Why a job was refused or failed, in words (the `reason` is the code).
fn reason_message(job: &ImportJob) -> Option<String> {
    Some(match job.reason.as_deref()? {
        "quota" => {
            let quota = job.quota.unwrap_or_default();
            if quota.days == u32::MAX {
                format!(
                    "this import shares {} entries and the daily quota leaves no room to share any, even spread: import with share=false",
                    quota.entries
                )
            } else {
                format!(
                    "this import shares {} entries; {} of today's {} are left: use spread ({} days) or share=false",
                    quota.entries, quota.left_today, quota.entries_per_day, quota.days
                )
            }
        }
        "format" => format!("the file could not be read as {}", job.format),
        "too_many_records" => {
            format!("an import makes at most {} records", crate::import::limits::MAX_RECORDS)
        }
        "source_missing" => "the import's file was gone when its turn came; import it again".into(),
        "store" => "the store failed; what was applied stays and can be undone".into(),
        "audit" => "the audit log failed; what was applied stays and can be undone".into(),
        _ => return None,
    })
}

/// A job's JSON: state, counts (what was applied once it applies, else the plan), the plan's
/// own counts, the quota check, refused rows by position and rule (with `refusals`; a listing
/// leaves them out, `refused_count` stays), notices by code, the undo.
fn job_json(view: &ImportView, refusals: bool) -> Value {
    let job = &view.job;
    let applied = matches!(
        job.state,
        JobState::Applying
            | JobState::Done
            | JobState::Failed
            | JobState::Undoing
            | JobState::Undone
    ) && !view.dry_run;
    let summary = if applied { &job.done } else { &job.plan };
    let refused: Vec<Value> = job
        .refusals
        .iter()
        .map(|(position, rule)| json!({ "position": position.to_string(), "rule": rule }))
        .collect();
    let quota = job.quota.map(|quota| {
        json!({
            "entries_per_day": quota.entries_per_day,
            "left_today": quota.left_today,
            "entries": quota.entries,
            "fits_today": quota.fits_today,
            "days": quota.days,
        })
    });
    let undo = job.undo.map(|undo| {
        json!({
            "force": undo.force,
            "planned_remove": undo.planned_remove,
            "planned_keep": undo.planned_keep,
            "removed": undo.removed,
            "kept_edited": undo.kept_edited,
            "at_ms": undo.at_ms,
        })
    });
    let overrides: Vec<&str> = [
        (job.overrides.red, "red"),
        (job.overrides.amber_strict, "amber-strict"),
        (job.overrides.unmarked, "unmarked"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    let mut answer = json!({
        "id": if view.dry_run { Value::Null } else { job.id.into() },
        "dry_run": view.dry_run,
        "state": job.state.as_str(),
        "reason": job.reason,
        "message": reason_message(job),
        "format": job.format.as_str(),
        "source": job.source,
        "share": job.defaults.share,
        "spread": job.spread,
        "overrides": overrides,
        "created_by": job.user,
        "created_at_ms": job.created_at_ms,
        "updated_at_ms": job.updated_at_ms,
        "progress": { "done": view.progress.0, "total": view.progress.1 },
        "summary": counts_json(summary),
        "planned": counts_json(&job.plan),
        "quota": quota,
        "refused": refused,
        "refused_count": summary.refused,
        "notices": job.notices,
        "undo": undo,
    });
    if !refusals && let Some(fields) = answer.as_object_mut() {
        fields.remove("refused");
    }
    answer
}

impl From<ImportError> for ApiError {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::Invalid(message) => Self::bad_request("invalid_import", message),
            ImportError::TooLarge => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", error.to_string())
            }
            ImportError::Busy => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", error.to_string())
            }
            ImportError::NoImport => Self::not_found("import"),
            ImportError::NotUndoable(_) => {
                Self::new(StatusCode::CONFLICT, "not_undoable", error.to_string())
            }
            ImportError::Running => {
                Self::new(StatusCode::CONFLICT, "import_running", error.to_string())
            }
            ImportError::Spool(source) => {
                tracing::error!(error = %source, "an import upload could not be spooled");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
            ImportError::Node(error) => error.into(),
        }
    }
}
