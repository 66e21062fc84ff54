//! Request parts in the API's error shape: a numeric path id, a bounded body, query parameters
//! and JSON bodies. JSON goes through serde types, but serde's messages (which quote the
//! offending value) never reach the caller: a refusal names a position and a kind of fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{StatusCode, request::Parts};

use super::error::{ApiError, ApiResult};
use super::{Api, MAX_BODY_BYTES};

/// A numeric id from the path; anything else is a `404`.
pub(super) struct Id(pub(super) u64);

impl FromRequestParts<Api> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> ApiResult<Self> {
        match Path::<u64>::from_request_parts(parts, api).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(_) => Err(ApiError::not_found("record or alert")),
        }
    }
}

/// A request body of at most [`MAX_BODY_BYTES`]; a larger one is a `413` in the API's error
/// shape.
pub(super) struct Body(pub(super) Bytes);

impl FromRequest<Api> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Api) -> ApiResult<Self> {
        let too_large = format!("a request body is at most {MAX_BODY_BYTES} bytes");
        read_body(request, api, too_large).await.map(Self)
    }
}

/// Reads a request body within the route's body limit; a larger one is a `413` that says
/// `too_large` with the message `too_large`, an unreadable one a `400`.
pub(super) async fn read_body(request: Request, api: &Api, too_large: String) -> ApiResult<Bytes> {
    match Bytes::from_request(request, api).await {
        Ok(bytes) => Ok(bytes),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large))
        }
        Err(_) => Err(ApiError::bad_request("invalid_body", "the request body could not be read")),
    }
}

/// Query parameters; a bad query is a `400` in the API's error shape.
pub(super) struct Params<T>(pub(super) T);

impl<T: serde::de::DeserializeOwned> FromRequestParts<Api> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> ApiResult<Self> {
        match Query::<T>::from_request_parts(parts, api).await {
            Ok(Query(query)) => Ok(Self(query)),
            Err(_) => {
                Err(ApiError::bad_request("invalid_query", "unknown or malformed query parameters"))
            }
        }
    }
}

/// Parses a JSON body. Errors name the position and the kind of fault, never the content.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|error| {
        let what = match error.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed JSON"
            }
            _ => "JSON of the wrong shape (unknown, missing or mistyped field)",
        };
        ApiError::bad_request(
            "invalid_json",
            format!("{what} at line {} column {}", error.line(), error.column()),
        )
    })
}
