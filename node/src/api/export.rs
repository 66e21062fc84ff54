//! `GET /v1/export/stix`: the unit's records and alerts as one STIX 2.1 bundle (docs/STIX.md
//! §4), streamed as the node writes it. A bulk read of raw data: admin only, audited with its
//! counts before the first byte, at most [`MAX_EXPORTS`] at once (the slot is held by the body
//! until it ends), and exempt from the request timeout.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use crate::daemon::StixExportQuery;

/// Exports streaming at once; the next is answered `503 busy`.
pub const MAX_EXPORTS: usize = 2;
/// The bundle's media type.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";

/// The export slots, shared by the API.
#[derive(Debug)]
pub(super) struct Exports {
    slots: Arc<Semaphore>,
}

impl Exports {
    pub(super) fn new() -> Self {
        Self { slots: Arc::new(Semaphore::new(MAX_EXPORTS)) }
    }
}

/// `GET /v1/export/stix` query parameters: `records` and `alerts` (neither: both), `since_ms`,
/// `tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportStixParams {
    #[serde(default)]
    records: Option<bool>,
    #[serde(default)]
    alerts: Option<bool>,
    #[serde(default)]
    since_ms: Option<u64>,
    #[serde(default)]
    tokens: Option<bool>,
}

impl ExportStixParams {
    /// The export asked for; `records=false&alerts=false` asks for nothing and is refused.
    fn query(&self) -> ApiResult<StixExportQuery> {
        let (records, alerts) = match (self.records, self.alerts) {
            (None, None) => (true, true),
            (records, alerts) => (records.unwrap_or(false), alerts.unwrap_or(false)),
        };
        if !records && !alerts {
            return Err(ApiError::bad_request(
                "invalid_query",
                "an export holds records, alerts or both",
            ));
        }
        Ok(StixExportQuery {
            records,
            alerts,
            since_ms: self.since_ms,
            tokens: self.tokens.unwrap_or(false),
        })
    }
}

/// `GET /v1/export/stix?records&alerts&since_ms&tokens` → `application/stix+json`, streamed.
pub(super) async fn export_stix(
    State(api): State<Api>,
    user: User,
    Params(params): Params<ExportStixParams>,
) -> ApiResult<Response> {
    user.require(Role::Admin)?;
    let query = params.query()?;
    let Ok(slot) = api.exports.slots.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many exports streaming",
        ));
    };
    let (counts, chunks) =
        api.node.export_stix(query, api.member_id.to_string(), user.name).await?;
    tracing::info!(
        records = counts.records,
        sightings = counts.sightings,
        revoked = counts.revoked,
        tokens = query.tokens,
        "STIX export streaming"
    );
    let body = futures_util::stream::unfold(
        (chunks, Some(slot)),
        |(mut chunks, slot): (_, Option<OwnedSemaphorePermit>)| async move {
            let chunk = chunks.recv().await?;
            Some((chunk.map(axum::body::Bytes::from), (chunks, slot)))
        },
    );
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(STIX_MEDIA_TYPE));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(records: Option<bool>, alerts: Option<bool>) -> ExportStixParams {
        ExportStixParams { records, alerts, since_ms: Some(5), tokens: None }
    }

    #[test]
    fn neither_records_nor_alerts_means_both() {
        let both = params(None, None).query().unwrap();
        assert!(both.records && both.alerts && !both.tokens);
        assert_eq!(both.since_ms, Some(5));
        let records = params(Some(true), None).query().unwrap();
        assert!(records.records && !records.alerts);
        let alerts = params(None, Some(true)).query().unwrap();
        assert!(!alerts.records && alerts.alerts);
        assert!(params(Some(false), Some(false)).query().is_err());
        assert!(params(Some(false), None).query().is_err());
    }
}
