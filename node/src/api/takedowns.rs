//! `GET /v1/takedowns` (analyst): every record's takedown clock on both clocks, the unit's
//! totals and p50 / p90, and the federation's totals. Records appear by id and token prefix,
//! never by raw identifier (a caller that needs the account reads `GET /v1/records/{id}`,
//! audited); the read is audited all the same.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::Api;
use super::auth::{Role, User};
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use crate::daemon::{AccountClock, Percentiles, TakedownState, TimeTo};

/// Most accounts in one page of `GET /v1/takedowns`.
pub const MAX_TAKEDOWNS_PER_PAGE: usize = 5_000;
/// Accounts in a page when the caller does not say.
const DEFAULT_TAKEDOWNS_PER_PAGE: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TakedownQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub(super) struct TakedownsOut {
    now_ms: u64,
    budget: BudgetOut,
    accounts: Vec<AccountOut>,
    next_after: Option<u64>,
    totals: TotalsOut,
    federation: FederationOut,
}

#[derive(Debug, Serialize)]
struct BudgetOut {
    budget_secs: u64,
    order_budget_secs: u64,
    warning_share: f64,
}

#[derive(Debug, Serialize)]
struct AccountOut {
    record: u64,
    token_short: String,
    state: &'static str,
    overdue: bool,
    running: bool,
    backlog: bool,
    unit_clock_start_ms: u64,
    federation_clock_start_ms: u64,
    referred_at_ms: Option<u64>,
    ordered_at_ms: Option<u64>,
    removed_at_ms: Option<u64>,
    removed_by: Option<String>,
    reinstated_at_ms: Option<u64>,
    seen_after_removal_ms: Option<u64>,
    time_to_referral: Option<TimeToOut>,
    time_to_removal: Option<TimeToOut>,
    deadline_ms: Option<u64>,
    budget_left_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
struct TimeToOut {
    unit_ms: u64,
    federation_ms: u64,
}

impl From<TimeTo> for TimeToOut {
    fn from(time: TimeTo) -> Self {
        Self { unit_ms: time.unit_ms, federation_ms: time.federation_ms }
    }
}

#[derive(Debug, Serialize)]
struct PercentilesOut {
    count: usize,
    p50_ms: u64,
    p90_ms: u64,
}

impl From<Percentiles> for PercentilesOut {
    fn from(p: Percentiles) -> Self {
        Self { count: p.count, p50_ms: p.p50_ms, p90_ms: p.p90_ms }
    }
}

#[derive(Debug, Serialize)]
struct TotalsOut {
    accounts: usize,
    backlog: usize,
    by_state: serde_json::Map<String, serde_json::Value>,
    overdue: usize,
    time_to_removal_unit: Option<PercentilesOut>,
    time_to_removal_federation: Option<PercentilesOut>,
    time_to_referral_unit: Option<PercentilesOut>,
    time_to_referral_federation: Option<PercentilesOut>,
}

#[derive(Debug, Serialize)]
struct FederationOut {
    tokens_referred: usize,
    tokens_ordered: usize,
    tokens_removed: usize,
    tokens_reinstated: usize,
}

fn account_out(clock: AccountClock, removed_by: Option<String>) -> AccountOut {
    AccountOut {
        record: clock.record,
        token_short: clock.token_short,
        state: clock.state.as_str(),
        overdue: clock.overdue,
        running: clock.running,
        backlog: clock.backlog,
        unit_clock_start_ms: clock.unit_start_ms,
        federation_clock_start_ms: clock.federation_start_ms,
        referred_at_ms: clock.referred_at_ms,
        ordered_at_ms: clock.ordered_at_ms,
        removed_at_ms: clock.removed_at_ms,
        removed_by,
        reinstated_at_ms: clock.reinstated_at_ms,
        seen_after_removal_ms: clock.seen_after_removal_ms,
        time_to_referral: clock.time_to_referral.map(TimeToOut::from),
        time_to_removal: clock.time_to_removal.map(TimeToOut::from),
        deadline_ms: clock.deadline_ms,
        budget_left_ms: clock.budget_left_ms,
    }
}

/// `GET /v1/takedowns[?state=…&after=…&limit=…]`: a page of accounts in record order (those
/// in `state` only, if given; `overdue` also matches accounts overdue in another state), with
/// totals over every account.
pub(super) async fn takedowns(
    State(api): State<Api>,
    user: User,
    Params(query): Params<TakedownQuery>,
) -> ApiResult<axum::Json<TakedownsOut>> {
    user.require(Role::Analyst)?;
    let state = match query.state.as_deref() {
        None => None,
        Some(name) => {
            Some(TakedownState::ALL.into_iter().find(|state| state.as_str() == name).ok_or_else(
                || {
                    let names: Vec<&str> = TakedownState::ALL.iter().map(|s| s.as_str()).collect();
                    ApiError::bad_request(
                        "invalid_state",
                        format!("state is one of {}", names.join(", ")),
                    )
                },
            )?)
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_TAKEDOWNS_PER_PAGE);
    if !(1..=MAX_TAKEDOWNS_PER_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit is 1 to {MAX_TAKEDOWNS_PER_PAGE}"),
        ));
    }
    let view = api.node.takedowns(user.name).await?;
    let settings = api.node.takedown_settings();
    let report = view.report;
    let summary = report.summary;
    let after = query.after.unwrap_or(0);
    let mut accounts: Vec<AccountOut> = report
        .accounts
        .into_iter()
        .zip(view.removed_by)
        .filter(|(clock, _)| clock.record > after)
        .filter(|(clock, _)| {
            state.is_none_or(|wanted| {
                clock.state == wanted || (wanted == TakedownState::Overdue && clock.overdue)
            })
        })
        .take(limit + 1)
        .map(|(clock, removed_by)| account_out(clock, removed_by))
        .collect();
    let next_after = (accounts.len() > limit).then(|| accounts[limit - 1].record);
    accounts.truncate(limit);
    Ok(axum::Json(TakedownsOut {
        now_ms: report.now_ms,
        budget: BudgetOut {
            budget_secs: settings.budget_ms / 1000,
            order_budget_secs: settings.order_budget_ms / 1000,
            warning_share: settings.warning_share,
        },
        accounts,
        next_after,
        totals: TotalsOut {
            accounts: summary.accounts,
            backlog: summary.backlog,
            by_state: summary
                .by_state
                .iter()
                .map(|(state, count)| (state.as_str().to_owned(), (*count).into()))
                .collect(),
            overdue: summary.overdue,
            time_to_removal_unit: summary.removal_unit.map(Into::into),
            time_to_removal_federation: summary.removal_federation.map(Into::into),
            time_to_referral_unit: summary.referral_unit.map(Into::into),
            time_to_referral_federation: summary.referral_federation.map(Into::into),
        },
        federation: FederationOut {
            tokens_referred: report.federation.referred,
            tokens_ordered: report.federation.ordered,
            tokens_removed: report.federation.removed,
            tokens_reinstated: report.federation.reinstated,
        },
    }))
}
