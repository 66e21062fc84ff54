//! The API's error answer, `{"error": {"code", "message"}}`, and how the node's errors map
//! onto it. Messages never echo request data.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::daemon::{self, ErrorKind};

/// An error answer: a status, a stable code and a message that repeats no request data.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// Result alias for handlers.
pub(super) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error answer with `status` and `code`.
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// A `400` with `code`.
    pub(super) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A `404` for `what` (`record`, `alert`, …).
    pub(super) fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<daemon::Error> for ApiError {
    fn from(error: daemon::Error) -> Self {
        match error.kind() {
            // The message names the broken rule only.
            ErrorKind::Invalid => Self::bad_request("invalid_record", error.to_string()),
            ErrorKind::NoRecord => Self::not_found("record"),
            ErrorKind::Conflict => Self::new(StatusCode::CONFLICT, "conflict", error.to_string()),
            ErrorKind::Audit => {
                tracing::error!(%error, "audit log refused an action");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "audit",
                    "the audit log failed; the action was not taken",
                )
            }
            ErrorKind::Store if disk_full(&error) => {
                tracing::error!(%error, "store refused a write");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "disk_full",
                    "the node's disk is full; nothing was written",
                )
            }
            ErrorKind::Store => {
                tracing::error!(%error, "store failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
            ErrorKind::Busy => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the node is busy")
            }
            ErrorKind::Stopping => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the node is stopping")
            }
            ErrorKind::Internal => {
                tracing::error!(%error, "API request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

/// Whether `error` comes from the store's refusal of a write while the disk is full
/// (`store/space.rs`): an I/O error of kind `StorageFull` among its sources.
fn disk_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        let io = error.downcast_ref::<std::io::Error>();
        if io.is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull) {
            return true;
        }
        cause = error.source();
    }
    false
}
