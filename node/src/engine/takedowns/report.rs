//! The takedown report, a pure function of the records' clock inputs, the hunt's sightings and
//! the time: each account's state on both clocks, its budget, who asserted its removal and
//! whether the unit's own observations contradict that; totals and p50 / p90; the warnings
//! due. No store, no clock, no I/O.
//!
//! - The **unit clock** starts when this node first held the account as its own record; the
//!   **federation clock** at the earliest add of any of its tokens by any member (clamped).
//! - The budget (default 2 h) runs on the unit clock. A removal order (`ordered`, EU TCO
//!   regulation) has its own clock from the order's time (default 1 h); the deadline is the
//!   earlier of the two. A reinstated account gets a new budget from its reinstatement.
//! - The removal in force is the latest `removed` not followed by a `reinstated`; the member
//!   that asserted it is shown. If the unit saw the account post after it, the removal is
//!   contradicted and the clock keeps running.
//! - Time to referral counts from the clock's start to the first `referred` or `ordered`; time
//!   to removal to the first `removed`. Backlog records are listed but kept out of the budget
//!   figures (overdue, percentiles, warnings).

use std::collections::HashSet;

use crossmatch_protocol::Status;

use super::{Assertion, RecordClockInput, TakedownInputs, TakedownStatuses};
use crate::store::RecordId;

/// The budgets and the warning threshold (config `[takedown]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TakedownSettings {
    /// The budget from identification to removal (ms; default 2 h).
    pub budget_ms: u64,
    /// A removal order's budget from its issue (ms; default 1 h, the TCO regulation's).
    pub order_budget_ms: u64,
    /// The share of a budget used that raises a warning (default 0.75).
    pub warning_share: f64,
}

impl Default for TakedownSettings {
    fn default() -> Self {
        Self { budget_ms: 2 * 3_600_000, order_budget_ms: 3_600_000, warning_share: 0.75 }
    }
}

/// Where an account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TakedownState {
    /// Not referred yet, within budget.
    Pending,
    /// Referred to the provider, within budget.
    Referred,
    /// A removal order was issued, within its budget.
    Ordered,
    /// Removed, and nothing seen here contradicts it.
    Removed,
    /// Past its deadline and not removed.
    Overdue,
    /// Asserted removed, but the unit saw the account post after that: the clock runs on.
    RemovalContradicted,
    /// Restored by the provider after a removal: the clock runs again.
    Reinstated,
}

impl TakedownState {
    /// Every state.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Referred,
        Self::Ordered,
        Self::Removed,
        Self::Overdue,
        Self::RemovalContradicted,
        Self::Reinstated,
    ];

    /// The state's name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Referred => "referred",
            Self::Ordered => "ordered",
            Self::Removed => "removed",
            Self::Overdue => "overdue",
            Self::RemovalContradicted => "removal_contradicted",
            Self::Reinstated => "reinstated",
        }
    }
}

/// A time span on both clocks (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeTo {
    /// From the unit clock's start.
    pub unit_ms: u64,
    /// From the federation clock's start.
    pub federation_ms: u64,
}

/// One account's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountClock {
    /// The local record.
    pub record: RecordId,
    /// Its first token's log-safe prefix.
    pub token_short: String,
    /// From a bulk import of old lists: no budget.
    pub backlog: bool,
    /// Where it stands.
    pub state: TakedownState,
    /// Past its deadline while its clock runs (never for backlog).
    pub overdue: bool,
    /// The clock runs: not removed, or the removal is contradicted.
    pub running: bool,
    /// Unit clock start (Unix ms).
    pub unit_start_ms: u64,
    /// Federation clock start (Unix ms).
    pub federation_start_ms: u64,
    /// First referral or removal order (Unix ms).
    pub referred_at_ms: Option<u64>,
    /// First removal order (Unix ms).
    pub ordered_at_ms: Option<u64>,
    /// The removal in force (Unix ms).
    pub removed_at_ms: Option<u64>,
    /// Who asserted the removal in force (origin key).
    pub removed_by: Option<[u8; 32]>,
    /// The reinstatement in force (Unix ms).
    pub reinstated_at_ms: Option<u64>,
    /// The latest time the unit saw the account post after the removal in force (Unix ms).
    pub seen_after_removal_ms: Option<u64>,
    /// From each clock's start to the first referral.
    pub time_to_referral: Option<TimeTo>,
    /// From each clock's start to the first removal.
    pub time_to_removal: Option<TimeTo>,
    /// When the budget runs out (Unix ms); none for backlog.
    pub deadline_ms: Option<u64>,
    /// Budget left while the clock runs (ms; negative once overdue); none for backlog or once
    /// removed.
    pub budget_left_ms: Option<i64>,
    /// The share of the budget used now (0 when not running or backlog).
    pub used_share: f64,
}

/// p50 and p90 of a set of spans (nearest rank), and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// How many spans.
    pub count: usize,
    /// Median (ms).
    pub p50_ms: u64,
    /// 90th percentile (ms).
    pub p90_ms: u64,
}

/// The unit's totals and figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TakedownSummary {
    /// Accounts listed, backlog included.
    pub accounts: usize,
    /// Backlog accounts among them.
    pub backlog: usize,
    /// Accounts per state, in [`TakedownState::ALL`] order.
    pub by_state: Vec<(TakedownState, usize)>,
    /// Non-backlog accounts past their deadline while their clock runs.
    pub overdue: usize,
    /// Time to removal on the unit clock, non-backlog accounts.
    pub removal_unit: Option<Percentiles>,
    /// Time to removal on the federation clock, non-backlog accounts.
    pub removal_federation: Option<Percentiles>,
    /// Time to referral on the unit clock, non-backlog accounts.
    pub referral_unit: Option<Percentiles>,
    /// Time to referral on the federation clock, non-backlog accounts.
    pub referral_federation: Option<Percentiles>,
}

/// Federation-wide figures: totals of tokens over every member's statuses, never per member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FederationTotals {
    /// Tokens some member referred (or ordered).
    pub referred: usize,
    /// Tokens under a removal order.
    pub ordered: usize,
    /// Tokens some member asserted removed.
    pub removed: usize,
    /// Tokens some member asserted reinstated.
    pub reinstated: usize,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TakedownReport {
    /// Now, as the report was computed (Unix ms).
    pub now_ms: u64,
    /// One per local record, by record id.
    pub accounts: Vec<AccountClock>,
    /// The unit's figures.
    pub summary: TakedownSummary,
    /// The federation's totals.
    pub federation: FederationTotals,
}

/// A budget warning: a running, non-backlog account that has used the warning share of the
/// budget ending at `deadline_ms`. One per (record, deadline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakedownWarning {
    /// The record.
    pub record: RecordId,
    /// Its token prefix.
    pub token_short: String,
    /// The deadline (Unix ms).
    pub deadline_ms: u64,
    /// Whether it is past it already.
    pub overdue: bool,
}

impl TakedownReport {
    /// The warnings due now that `warned` (record, deadline) does not hold yet.
    pub fn warnings_due(
        &self,
        settings: &TakedownSettings,
        warned: &HashSet<(RecordId, u64)>,
    ) -> Vec<TakedownWarning> {
        self.accounts
            .iter()
            .filter(|clock| clock.running && !clock.backlog)
            .filter(|clock| clock.used_share >= settings.warning_share)
            .filter_map(|clock| {
                let deadline_ms = clock.deadline_ms?;
                (!warned.contains(&(clock.record, deadline_ms))).then(|| TakedownWarning {
                    record: clock.record,
                    token_short: clock.token_short.clone(),
                    deadline_ms,
                    overdue: clock.overdue,
                })
            })
            .collect()
    }
}

/// The nearest-rank `q` quantile (0 < q ≤ 1) of `sorted` (ascending), if not empty.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn percentiles(mut spans: Vec<u64>) -> Option<Percentiles> {
    spans.sort_unstable();
    Some(Percentiles {
        count: spans.len(),
        p50_ms: percentile(&spans, 0.5)?,
        p90_ms: percentile(&spans, 0.9)?,
    })
}

/// The earliest `first_at` among assertions of `status`.
fn first(assertions: &[Assertion], status: Status) -> Option<u64> {
    assertions.iter().filter(|a| a.status() == Some(status)).map(|a| a.first_at_ms).min()
}

/// The latest `last_at` among assertions of `status`, with who asserted it.
fn latest(assertions: &[Assertion], status: Status) -> Option<(u64, [u8; 32])> {
    assertions
        .iter()
        .filter(|a| a.status() == Some(status))
        .map(|a| (a.last_at_ms, a.origin))
        .max_by_key(|(at, origin)| (*at, std::cmp::Reverse(*origin)))
}

/// One account's clock at `now`; `last_seen` gives when the unit last saw any of its accounts
/// post.
fn clock_of(
    input: &RecordClockInput,
    last_seen: Option<u64>,
    now: u64,
    settings: &TakedownSettings,
) -> AccountClock {
    let assertions = &input.assertions;
    let ordered_at = first(assertions, Status::Ordered);
    let referred_at = match (first(assertions, Status::Referred), ordered_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let first_removed = first(assertions, Status::Removed);
    let latest_removed = latest(assertions, Status::Removed);
    let latest_reinstated = latest(assertions, Status::Reinstated).map(|(at, _)| at);
    let removal = latest_removed.filter(|(at, _)| latest_reinstated.is_none_or(|r| *at > r));
    let reinstated = latest_reinstated.filter(|_| removal.is_none());
    let seen_after_removal = removal.and_then(|(at, _)| last_seen.filter(|seen| *seen > at));
    let running = removal.is_none() || seen_after_removal.is_some();
    let span = |at: u64| TimeTo {
        unit_ms: at.saturating_sub(input.unit_start_ms),
        federation_ms: at.saturating_sub(input.federation_start_ms),
    };
    // The budget: from the reinstatement in force, else from the unit clock's start; a
    // removal order's own clock when it ends sooner.
    let budget_start = reinstated.unwrap_or(input.unit_start_ms);
    let budget_ms = settings.budget_ms;
    let mut deadline = budget_start.saturating_add(budget_ms);
    let mut used = share(now.saturating_sub(budget_start), budget_ms);
    if let Some(order) = ordered_at.filter(|_| reinstated.is_none()) {
        deadline = deadline.min(order.saturating_add(settings.order_budget_ms));
        used = used.max(share(now.saturating_sub(order), settings.order_budget_ms));
    }
    let budgeted = !input.backlog;
    let overdue = budgeted && running && now > deadline;
    let state = match (removal, seen_after_removal, reinstated) {
        (Some(_), None, _) => TakedownState::Removed,
        (Some(_), Some(_), _) => TakedownState::RemovalContradicted,
        (None, _, Some(_)) => TakedownState::Reinstated,
        _ if overdue => TakedownState::Overdue,
        _ if ordered_at.is_some() => TakedownState::Ordered,
        _ if referred_at.is_some() => TakedownState::Referred,
        _ => TakedownState::Pending,
    };
    let left = i64::try_from(deadline).unwrap_or(i64::MAX) - i64::try_from(now).unwrap_or(0);
    AccountClock {
        record: input.record,
        token_short: input.token_short.clone(),
        backlog: input.backlog,
        state,
        overdue,
        running,
        unit_start_ms: input.unit_start_ms,
        federation_start_ms: input.federation_start_ms,
        referred_at_ms: referred_at,
        ordered_at_ms: ordered_at,
        removed_at_ms: removal.map(|(at, _)| at),
        removed_by: removal.map(|(_, origin)| origin),
        reinstated_at_ms: reinstated,
        seen_after_removal_ms: seen_after_removal,
        time_to_referral: referred_at.map(span),
        time_to_removal: first_removed.map(span),
        deadline_ms: budgeted.then_some(deadline),
        budget_left_ms: (budgeted && running).then_some(left),
        used_share: if budgeted && running { used } else { 0.0 },
    }
}

fn share(used_ms: u64, budget_ms: u64) -> f64 {
    used_ms as f64 / budget_ms.max(1) as f64
}

/// The report at `now`: `last_seen(canonical)` says when the unit's observations last saw that
/// account post.
pub fn evaluate(
    inputs: &TakedownInputs,
    last_seen: impl Fn(&str) -> Option<u64>,
    now: u64,
    settings: &TakedownSettings,
) -> TakedownReport {
    let mut accounts: Vec<AccountClock> = inputs
        .records
        .iter()
        .map(|input| {
            let seen = input.accounts.iter().filter_map(|name| last_seen(name)).max();
            clock_of(input, seen, now, settings)
        })
        .collect();
    accounts.sort_by_key(|clock| clock.record);
    let budgeted: Vec<&AccountClock> = accounts.iter().filter(|clock| !clock.backlog).collect();
    let spans = |pick: &dyn Fn(&TimeTo) -> u64, of: &dyn Fn(&AccountClock) -> Option<TimeTo>| {
        percentiles(budgeted.iter().filter_map(|clock| of(clock)).map(|t| pick(&t)).collect())
    };
    let removal = |clock: &AccountClock| clock.time_to_removal;
    let referral = |clock: &AccountClock| clock.time_to_referral;
    let summary = TakedownSummary {
        accounts: accounts.len(),
        backlog: accounts.len() - budgeted.len(),
        by_state: TakedownState::ALL
            .iter()
            .map(|state| (*state, accounts.iter().filter(|c| c.state == *state).count()))
            .collect(),
        overdue: budgeted.iter().filter(|clock| clock.overdue).count(),
        removal_unit: spans(&|t| t.unit_ms, &removal),
        removal_federation: spans(&|t| t.federation_ms, &removal),
        referral_unit: spans(&|t| t.unit_ms, &referral),
        referral_federation: spans(&|t| t.federation_ms, &referral),
    };
    TakedownReport {
        now_ms: now,
        accounts,
        summary,
        federation: federation_totals(&inputs.all_statuses),
    }
}

fn federation_totals(all: &[TakedownStatuses]) -> FederationTotals {
    let has = |statuses: &TakedownStatuses, wanted: &[Status]| {
        statuses.assertions.iter().any(|a| a.status().is_some_and(|s| wanted.contains(&s)))
    };
    let count = |wanted: &[Status]| all.iter().filter(|s| has(s, wanted)).count();
    FederationTotals {
        referred: count(&[Status::Referred, Status::Ordered]),
        ordered: count(&[Status::Ordered]),
        removed: count(&[Status::Removed]),
        reinstated: count(&[Status::Reinstated]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const START: u64 = 1_800_000_000_000;
    const A: [u8; 32] = [1; 32];
    const B: [u8; 32] = [2; 32];

    fn asserted(origin: [u8; 32], status: Status, at_ms: u64) -> Assertion {
        Assertion {
            origin,
            status: status.as_str().into(),
            first_at_ms: at_ms,
            last_at_ms: at_ms,
            touched_at_ms: at_ms,
        }
    }

    fn input(record: RecordId, assertions: Vec<Assertion>) -> RecordClockInput {
        RecordClockInput {
            record,
            token_short: format!("t{record}"),
            accounts: vec![format!("acct{record}")],
            backlog: false,
            unit_start_ms: START,
            federation_start_ms: START - HOUR / 2,
            assertions,
        }
    }

    fn report(records: Vec<RecordClockInput>, seen: Option<u64>, now: u64) -> TakedownReport {
        let inputs = TakedownInputs { records, all_statuses: Vec::new() };
        evaluate(&inputs, |_| seen, now, &TakedownSettings::default())
    }

    #[test]
    fn a_pending_account_turns_overdue_only_past_its_budget() {
        let at = |now| report(vec![input(1, vec![])], None, now).accounts[0].clone();
        let early = at(START + HOUR);
        assert_eq!((early.state, early.overdue), (TakedownState::Pending, false));
        assert_eq!(early.budget_left_ms, Some(i64::try_from(HOUR).unwrap()));
        assert!((early.used_share - 0.5).abs() < 1e-9);
        let late = at(START + 2 * HOUR + 1);
        assert_eq!((late.state, late.overdue), (TakedownState::Overdue, true));
        assert_eq!(late.budget_left_ms, Some(-1));
    }

    #[test]
    fn a_removal_stops_the_clock_on_both_clocks_and_names_who_asserted_it() {
        let assertions = vec![
            asserted(A, Status::Referred, START + HOUR / 4),
            asserted(B, Status::Removed, START + HOUR),
        ];
        let clock =
            report(vec![input(1, assertions)], Some(START), START + 5 * HOUR).accounts[0].clone();
        assert_eq!(clock.state, TakedownState::Removed);
        assert!(!clock.running && !clock.overdue);
        assert_eq!(clock.removed_by, Some(B));
        assert_eq!(
            clock.time_to_removal,
            Some(TimeTo { unit_ms: HOUR, federation_ms: HOUR + HOUR / 2 })
        );
        assert_eq!(clock.time_to_referral.map(|t| t.unit_ms), Some(HOUR / 4));
    }

    #[test]
    fn a_sighting_after_the_removal_contradicts_it_and_the_clock_runs_on() {
        let assertions = vec![asserted(B, Status::Removed, START + HOUR)];
        let seen = Some(START + HOUR + 60_000);
        let clock = report(vec![input(1, assertions)], seen, START + 3 * HOUR).accounts[0].clone();
        assert_eq!(clock.state, TakedownState::RemovalContradicted);
        assert!(clock.running && clock.overdue);
        assert_eq!(clock.seen_after_removal_ms, seen);
        assert_eq!(clock.removed_by, Some(B));
    }

    #[test]
    fn a_removal_order_has_its_own_hour() {
        let order_at = START + 30 * 60_000;
        let assertions = vec![asserted(A, Status::Ordered, order_at)];
        let at = |now| report(vec![input(1, assertions.clone())], None, now).accounts[0].clone();
        let within = at(order_at + HOUR - 1);
        assert_eq!(
            (within.state, within.deadline_ms),
            (TakedownState::Ordered, Some(order_at + HOUR))
        );
        assert!(within.used_share > 0.99);
        let past = at(order_at + HOUR + 1);
        assert_eq!(past.state, TakedownState::Overdue, "past the order's hour, inside the 2 h");
        assert_eq!(past.referred_at_ms, Some(order_at), "an order counts as a referral");
    }

    #[test]
    fn a_reinstatement_restarts_the_budget() {
        let assertions = vec![
            asserted(B, Status::Removed, START + HOUR),
            asserted(B, Status::Reinstated, START + 3 * HOUR),
        ];
        let clock = report(vec![input(1, assertions)], None, START + 4 * HOUR).accounts[0].clone();
        assert_eq!((clock.state, clock.overdue), (TakedownState::Reinstated, false));
        assert_eq!(clock.deadline_ms, Some(START + 5 * HOUR));
    }

    #[test]
    fn backlog_is_listed_but_kept_out_of_the_figures_and_warnings() {
        let mut old = input(1, vec![asserted(A, Status::Removed, START + 9 * HOUR)]);
        old.backlog = true;
        let mut stale = input(2, vec![]);
        stale.backlog = true;
        let fresh = input(3, vec![asserted(A, Status::Removed, START + HOUR)]);
        let late = input(4, vec![]);
        let report = report(vec![old, stale, fresh, late], None, START + 10 * HOUR);
        assert_eq!((report.summary.accounts, report.summary.backlog), (4, 2));
        assert_eq!(report.summary.overdue, 1, "only the budgeted pending one");
        assert_eq!(report.accounts[1].state, TakedownState::Pending, "backlog is never overdue");
        let removal = report.summary.removal_unit.unwrap();
        assert_eq!((removal.count, removal.p50_ms), (1, HOUR));
        let warnings = report.warnings_due(&TakedownSettings::default(), &HashSet::new());
        assert_eq!(warnings.iter().map(|w| w.record).collect::<Vec<_>>(), vec![4]);
        let warned = HashSet::from([(4, START + 2 * HOUR)]);
        assert!(report.warnings_due(&TakedownSettings::default(), &warned).is_empty());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let spans: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&spans, 0.5), Some(5));
        assert_eq!(percentile(&spans, 0.9), Some(9));
        assert_eq!(percentile(&[7], 0.9), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn federation_totals_count_tokens_not_members() {
        let both = TakedownStatuses {
            assertions: vec![asserted(A, Status::Removed, 1), asserted(B, Status::Removed, 2)],
        };
        let referred = TakedownStatuses { assertions: vec![asserted(A, Status::Referred, 1)] };
        let totals = federation_totals(&[both, referred]);
        assert_eq!((totals.removed, totals.referred, totals.ordered), (1, 1, 0));
    }
}
