//! `/v1/alerts`: a page of alerts (state filter, since, after_id, limit), each counterpart with
//! its member id and contact; and acknowledging one.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::{Id, Params};
use crate::daemon::{AlertQuery, AlertState, AlertToken, AlertView, CounterpartView};

/// Alerts per page unless the caller asks for fewer.
pub const MAX_ALERTS_PER_PAGE: usize = 1000;

/// `GET /v1/alerts` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    since_ms: Option<u64>,
    #[serde(default)]
    after_id: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub(super) struct AlertOut {
    id: u64,
    token_short: String,
    state: &'static str,
    acknowledged: bool,
    records: Vec<u64>,
    counterparts: Vec<CounterpartOut>,
    opened_at_ms: u64,
    updated_at_ms: u64,
    version: u64,
}

#[derive(Debug, Serialize)]
struct CounterpartOut {
    member: Option<String>,
    contact: Option<String>,
    origin: String,
    retro: bool,
    kind: String,
    category: String,
    handling: String,
    evaluation: String,
    activity_per_day: Option<u64>,
    algorithmic: bool,
    expires_at_ms: u64,
    status: Option<String>,
}

/// One shape for both views of an alert: the API's (a full token) and an event's (a prefix);
/// either shows only the token's first four bytes.
impl<T: AlertToken> From<AlertView<T>> for AlertOut {
    fn from(alert: AlertView<T>) -> Self {
        Self {
            id: alert.id,
            token_short: alert.token.short(),
            state: alert.state.as_str(),
            acknowledged: alert.acknowledged,
            records: alert.records,
            counterparts: alert.counterparts.into_iter().map(CounterpartOut::from).collect(),
            opened_at_ms: alert.opened_at_ms,
            updated_at_ms: alert.updated_at_ms,
            version: alert.version,
        }
    }
}

impl From<CounterpartView> for CounterpartOut {
    fn from(counterpart: CounterpartView) -> Self {
        Self {
            member: counterpart.member_id,
            contact: counterpart.contact,
            origin: counterpart.origin,
            retro: counterpart.retro,
            kind: counterpart.kind,
            category: counterpart.category,
            handling: counterpart.handling,
            evaluation: counterpart.evaluation,
            activity_per_day: counterpart.activity_per_day,
            algorithmic: counterpart.algorithmic,
            expires_at_ms: counterpart.expires_at_ms,
            status: counterpart.status,
        }
    }
}

/// `GET /v1/alerts` → `{"alerts": [...], "next_after_id": …}`.
pub(super) async fn alerts(
    State(api): State<Api>,
    user: User,
    Params(params): Params<AlertParams>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    user.require(Role::Analyst)?;
    let state = params
        .state
        .as_deref()
        .map(str::parse::<AlertState>)
        .transpose()
        .map_err(|error| ApiError::bad_request("invalid_state", error.to_string()))?;
    let query = AlertQuery {
        state,
        since_ms: params.since_ms,
        after_id: params.after_id.unwrap_or(0),
        limit: params.limit.unwrap_or(MAX_ALERTS_PER_PAGE).clamp(1, MAX_ALERTS_PER_PAGE),
    };
    let page = api.node.alerts(query).await?;
    let alerts: Vec<AlertOut> = page.alerts.into_iter().map(AlertOut::from).collect();
    Ok(axum::Json(json!({ "alerts": alerts, "next_after_id": page.next_after_id })))
}

/// `POST /v1/alerts/{id}/ack` → `204`.
pub(super) async fn acknowledge(
    State(api): State<Api>,
    user: User,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    user.require(Role::Analyst)?;
    if api.node.acknowledge(id, user.name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("alert"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::TokenPrefix;
    use crossmatch_protocol::Token;

    /// An alert as the API and an event both show it, with `token` as the view's token.
    fn alert<T>(token: T) -> AlertView<T> {
        AlertView {
            id: 3,
            token,
            state: AlertState::Open,
            acknowledged: false,
            records: vec![7],
            counterparts: vec![CounterpartView {
                member_id: Some("FR".into()),
                contact: Some("+33 1 00 00 00 00".into()),
                origin: "ab".repeat(32),
                retro: false,
                kind: "account".into(),
                category: "terrorism/propaganda".into(),
                handling: "H1".into(),
                evaluation: "B2".into(),
                activity_per_day: Some(120),
                algorithmic: false,
                expires_at_ms: 1_790_000_000_000,
                created_at_ms: 1_779_000_000_000,
                received_at_ms: 1_779_000_000_100,
                status: Some("referred".into()),
            }],
            opened_at_ms: 1_780_000_000_000,
            updated_at_ms: 1_780_000_000_000,
            version: 1,
        }
    }

    #[test]
    fn an_alert_reads_the_same_in_the_api_and_in_an_event() {
        let mut bytes = [0x55; 32];
        bytes[..4].copy_from_slice(&[0x9f, 0x2c, 0x01, 0xab]);
        let token = Token(bytes);
        let api = serde_json::to_string(&AlertOut::from(alert(token))).unwrap();
        let event = serde_json::to_string(&AlertOut::from(alert(TokenPrefix::of(&token)))).unwrap();
        assert_eq!(api, event);
        let expected = concat!(
            r#"{"id":3,"token_short":"9f2c01ab","state":"open","acknowledged":false,"records":[7],"#,
            r#""counterparts":[{"member":"FR","contact":"+33 1 00 00 00 00","origin":""#,
            "abababababababababababababababababababababababababababababababab",
            r#"","retro":false,"kind":"account","category":"terrorism/propaganda","handling":"H1","#,
            r#""evaluation":"B2","activity_per_day":120,"algorithmic":false,"#,
            r#""expires_at_ms":1790000000000,"status":"referred"}],"#,
            r#""opened_at_ms":1780000000000,"updated_at_ms":1780000000000,"version":1}"#,
        );
        assert_eq!(api, expected);
        assert!(!api.contains("5555"), "no byte of the token past its prefix");
    }

    #[test]
    fn alert_state_names_round_trip_and_the_refusal_lists_them_all() {
        for state in AlertState::ALL {
            assert_eq!(state.as_str().parse::<AlertState>(), Ok(state));
        }
        let refusal = "Open".parse::<AlertState>().unwrap_err().to_string();
        assert_eq!(refusal, "state is one of open, updated, closed, reopened");
    }
}
