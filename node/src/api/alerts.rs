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
use crate::daemon::{AlertQuery, AlertState, AlertView, CounterpartView, EventAlertView};

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

impl From<AlertView> for AlertOut {
    fn from(alert: AlertView) -> Self {
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

impl From<EventAlertView> for AlertOut {
    fn from(alert: EventAlertView) -> Self {
        Self {
            id: alert.id,
            token_short: alert.token_short,
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

    #[test]
    fn alert_state_names_round_trip_and_the_refusal_lists_them_all() {
        for state in AlertState::ALL {
            assert_eq!(state.as_str().parse::<AlertState>(), Ok(state));
        }
        let refusal = "Open".parse::<AlertState>().unwrap_err().to_string();
        assert_eq!(refusal, "state is one of open, updated, closed, reopened");
    }
}
