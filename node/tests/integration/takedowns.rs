//! The takedown clocks across two and three members: at the engine, with injected clocks (one
//! member refers and another removes, on both clocks; a future `created_at` and status time
//! are clamped and the skew estimated; a contradicted removal keeps the clock running; the
//! removal order's hour; identification times that republication keeps and an erroneous
//! retraction voids; a remote add its own source while it lives, kept when it expires, crosses
//! H2 or is withdrawn, the facts' retention counted from any member's latest add; the sweep's
//! inputs without backlog records), and at the node, through the API of two
//! meshed members with clocks of their own (`GET /v1/takedowns`, the skew in `GET /v1/status`,
//! a removal contradicted by the unit's own observations, warnings and the overdue state driven
//! by the injected clock, `/metrics`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crossmatch_node::clock::Clock;
use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::Engine;
use crossmatch_node::engine::takedowns::{
    TakedownInputs, TakedownReport, TakedownSettings, TakedownState, TimeTo, evaluate,
};
use crossmatch_node::engine::{EngineConfig, NewRecord};
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::store::keys;
use crossmatch_node::test_support::api_node::{
    ANALYST_TOKEN as ANALYST, MONITOR_TOKEN as MONITOR, serve_api,
};
use crossmatch_node::test_support::{
    ManualClock, T0, TempDir, account, http, key, members, record_until,
};
use crossmatch_protocol::{Handling, RetractReason, Status, Token};
use serde_json::{Value, json};

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

struct Member {
    engine: Engine,
    clock: Arc<ManualClock>,
    _dir: TempDir,
}

fn member(n: u8, name: &str, now_ms: u64) -> Member {
    let dir = TempDir::new(&format!("takedown-{name}"));
    let clock = Arc::new(ManualClock::new(now_ms));
    let engine = Engine::open(dir.path(), EngineConfig::for_test(n), clock.clone()).unwrap();
    Member { engine, clock, _dir: dir }
}

fn add(member: &mut Member, handle: &str) -> u64 {
    member.engine.add_record(record_until(&[handle], true, T0 + 90 * DAY_MS), "ana").unwrap()
}

/// `from`'s new batches, delivered to `to` by gossip.
fn deliver(from: &mut Member, to: &mut Member) {
    for batch in from.engine.publish().unwrap() {
        to.engine.ingest_gossip(&batch.to_wire()).unwrap();
    }
}

fn report(member: &Member, seen: Option<u64>) -> TakedownReport {
    let inputs = member.engine.takedown_inputs().unwrap();
    evaluate(&inputs, |_| seen, member.clock.now_ms(), &TakedownSettings::default())
}

fn clock_of(
    report: &TakedownReport,
    record: u64,
) -> crossmatch_node::engine::takedowns::AccountClock {
    report.accounts.iter().find(|clock| clock.record == record).unwrap().clone()
}

/// The timer's sweep reads the budgeted records only: a backlog record (an import of old
/// lists) is listed by the report but leaves the sweep's warnings and overdue count unchanged.
#[test]
fn the_sweep_reads_the_budgeted_records_only() {
    let mut a = member(1, "sweep-budgeted", T0);
    let budgeted = add(&mut a, "abu_x");
    let old = NewRecord { backlog: true, ..record_until(&["old_y"], true, T0 + 90 * DAY_MS) };
    let backlog = a.engine.add_record(old, "ana").unwrap();
    a.clock.set(T0 + 3 * HOUR);
    let all = a.engine.takedown_inputs().unwrap();
    let swept = a.engine.budgeted_takedown_inputs().unwrap();
    let ids = |inputs: &TakedownInputs| inputs.records.iter().map(|r| r.record).collect::<Vec<_>>();
    assert_eq!(ids(&all), vec![budgeted, backlog], "the report lists both records");
    assert_eq!(ids(&swept), vec![budgeted], "the sweep reads the budgeted record only");
    let settings = TakedownSettings::default();
    let now = a.clock.now_ms();
    let (full, sweep) =
        (evaluate(&all, |_| None, now, &settings), evaluate(&swept, |_| None, now, &settings));
    assert_eq!((full.summary.overdue, sweep.summary.overdue), (1, 1), "overdue counts");
    let warned = HashSet::new();
    assert_eq!(
        full.warnings_due(&settings, &warned),
        sweep.warnings_due(&settings, &warned),
        "the sweep raises the report's warnings"
    );
}

#[test]
fn one_member_refers_another_removes_on_both_clocks() {
    let mut a = member(1, "refer-a", T0);
    let mut b = member(2, "refer-b", T0);
    let at_b = add(&mut b, "abu_x");
    a.clock.set(T0 + 10 * MINUTE);
    deliver(&mut b, &mut a);
    // A learns of the token from B's add first, then holds the account itself.
    a.clock.set(T0 + 20 * MINUTE);
    let at_a = add(&mut a, "Abu_X");
    a.clock.set(T0 + 30 * MINUTE);
    a.engine.set_status(at_a, Status::Referred, "ana").unwrap();
    b.clock.set(T0 + 31 * MINUTE);
    deliver(&mut a, &mut b);
    b.clock.set(T0 + 80 * MINUTE);
    b.engine.set_status(at_b, Status::Removed, "ben").unwrap();
    a.clock.set(T0 + 81 * MINUTE);
    deliver(&mut b, &mut a);

    a.clock.set(T0 + 90 * MINUTE);
    let at_a_clock = clock_of(&report(&a, None), at_a);
    assert_eq!(at_a_clock.state, TakedownState::Removed);
    assert_eq!(at_a_clock.removed_by, Some(key(2).public_key().to_bytes()), "B asserted it");
    assert_eq!((at_a_clock.unit_start_ms, at_a_clock.federation_start_ms), (T0 + 20 * MINUTE, T0));
    assert_eq!(
        at_a_clock.time_to_removal,
        Some(TimeTo { unit_ms: 60 * MINUTE, federation_ms: 80 * MINUTE })
    );
    assert_eq!(
        at_a_clock.time_to_referral,
        Some(TimeTo { unit_ms: 10 * MINUTE, federation_ms: 30 * MINUTE })
    );
    assert!(!at_a_clock.running && !at_a_clock.overdue);
    let summary = report(&a, None).summary;
    assert_eq!(summary.removal_unit.map(|p| (p.count, p.p50_ms)), Some((1, 60 * MINUTE)));
    assert_eq!(summary.removal_federation.map(|p| p.p90_ms), Some(80 * MINUTE));
    assert_eq!(report(&a, None).federation.removed, 1);

    // B's own clock: its record from T0, referred by A, removed by itself.
    b.clock.set(T0 + 90 * MINUTE);
    let at_b_clock = clock_of(&report(&b, None), at_b);
    assert_eq!(at_b_clock.state, TakedownState::Removed);
    assert_eq!(at_b_clock.removed_by, Some(key(2).public_key().to_bytes()));
    assert_eq!(at_b_clock.time_to_removal.map(|t| t.unit_ms), Some(80 * MINUTE));
    assert_eq!(at_b_clock.time_to_referral.map(|t| t.unit_ms), Some(30 * MINUTE));
}

#[test]
fn a_future_created_at_and_status_time_are_clamped_and_the_skew_estimated() {
    // A's clock runs an hour ahead of B's.
    let mut a = member(1, "skew-a", T0 + HOUR);
    let mut b = member(2, "skew-b", T0);
    let at_b = add(&mut b, "abu_y");
    let at_a = add(&mut a, "abu_y");
    deliver(&mut a, &mut b);
    let token = b.engine.token(&account("abu_y"));
    let identification = b.engine.identification(&token).unwrap().unwrap();
    let from_a = identification
        .sources
        .iter()
        .find(|source| source.origin == key(1).public_key().to_bytes())
        .unwrap();
    assert_eq!((from_a.learned_at_ms, from_a.created_at_ms), (T0, T0), "clamped to receipt");
    let skews = b.engine.clock_skews();
    assert_eq!(skews.len(), 1);
    assert_eq!((skews[0].median_ms, skews[0].samples), (-i64::try_from(HOUR).unwrap(), 1));

    // A asserts the removal at its own now, an hour in B's future: B takes its receipt time.
    a.engine.set_status(at_a, Status::Removed, "ana").unwrap();
    b.clock.set(T0 + 5 * MINUTE);
    deliver(&mut a, &mut b);
    let clock = clock_of(&report(&b, None), at_b);
    assert_eq!(clock.removed_at_ms, Some(T0 + 5 * MINUTE), "not T0 + 1 h");
    assert_eq!(clock.time_to_removal.map(|t| t.federation_ms), Some(5 * MINUTE));
    // The priority queue and the successor search read the same clamped time.
    let facts = b.engine.token_facts(&[token]).unwrap();
    assert_eq!(facts[0].status, Some((Status::Removed, T0 + 5 * MINUTE)));
    assert_eq!(b.engine.clock_skews()[0].samples, 2);
    // A batch that sync brings (not fresh gossip) is no skew sample.
    add(&mut a, "abu_z");
    let batches = a.engine.publish().unwrap();
    for batch in &batches {
        b.engine.ingest(&batch.to_wire()).unwrap();
    }
    assert_eq!(b.engine.clock_skews()[0].samples, 2);
}

#[test]
fn a_removal_contradicted_by_a_sighting_keeps_the_clock_running() {
    let mut a = member(1, "contra-a", T0);
    let mut b = member(2, "contra-b", T0);
    let at_a = add(&mut a, "abu_w");
    let at_b = add(&mut b, "abu_w");
    b.clock.set(T0 + 30 * MINUTE);
    b.engine.set_status(at_b, Status::Removed, "ben").unwrap();
    a.clock.set(T0 + 31 * MINUTE);
    deliver(&mut b, &mut a);
    a.clock.set(T0 + HOUR);
    let quiet = clock_of(&report(&a, Some(T0 + 29 * MINUTE)), at_a);
    assert_eq!((quiet.state, quiet.running), (TakedownState::Removed, false));
    let seen = Some(T0 + 40 * MINUTE);
    let posting = clock_of(&report(&a, seen), at_a);
    assert_eq!(posting.state, TakedownState::RemovalContradicted);
    assert!(posting.running && !posting.overdue);
    assert_eq!(posting.removed_by, Some(key(2).public_key().to_bytes()));
    assert_eq!(posting.seen_after_removal_ms, seen);
    a.clock.set(T0 + 2 * HOUR + 1);
    let late = clock_of(&report(&a, seen), at_a);
    assert!(late.overdue, "the clock ran on past the budget");
    assert_eq!(report(&a, seen).summary.overdue, 1);
}

#[test]
fn the_removal_orders_hour_runs_on_the_injected_clock() {
    let mut a = member(1, "order-a", T0);
    let at_a = add(&mut a, "abu_v");
    a.clock.set(T0 + 15 * MINUTE);
    // The order was issued five minutes before the analyst recorded it.
    a.engine.set_status_at(at_a, Status::Ordered, T0 + 10 * MINUTE, "ana").unwrap();
    let settings = TakedownSettings::default();
    let warned = HashSet::new();
    a.clock.set(T0 + 50 * MINUTE);
    let early = report(&a, None);
    assert_eq!(clock_of(&early, at_a).state, TakedownState::Ordered);
    assert_eq!(clock_of(&early, at_a).deadline_ms, Some(T0 + 70 * MINUTE));
    assert!(early.warnings_due(&settings, &warned).is_empty(), "40 of 60 minutes used");
    a.clock.set(T0 + 56 * MINUTE);
    let warn = report(&a, None).warnings_due(&settings, &warned);
    assert_eq!(warn.iter().map(|w| (w.record, w.overdue)).collect::<Vec<_>>(), [(at_a, false)]);
    a.clock.set(T0 + 69 * MINUTE);
    assert_eq!(clock_of(&report(&a, None), at_a).state, TakedownState::Ordered);
    a.clock.set(T0 + 71 * MINUTE);
    let late = clock_of(&report(&a, None), at_a);
    assert_eq!((late.state, late.overdue), (TakedownState::Overdue, true));
    assert_eq!(late.budget_left_ms, Some(-i64::try_from(MINUTE).unwrap()));
}

#[test]
fn identification_is_kept_through_republication_and_voided_by_an_erroneous_retraction() {
    let mut a = member(1, "ident-a", T0);
    let mut b = member(2, "ident-b", T0);
    let first = add(&mut b, "abu_u");
    a.clock.set(T0 + 5 * MINUTE);
    deliver(&mut b, &mut a);
    let token = a.engine.token(&account("abu_u"));
    let learned = |a: &Member| {
        a.engine
            .identification(&token)
            .unwrap()
            .map(|i| i.learned_from(&key(2).public_key().to_bytes()))
    };
    assert_eq!(learned(&a), Some(Some(T0 + 5 * MINUTE)));
    // B stops holding it, then adds it again: a republished add does not move the time.
    b.engine.remove_record(first, RetractReason::NoLongerHeld, "ben").unwrap();
    a.clock.set(T0 + 20 * MINUTE);
    deliver(&mut b, &mut a);
    assert_eq!(learned(&a), Some(Some(T0 + 5 * MINUTE)), "kept after no_longer_held");
    let second = add(&mut b, "abu_u");
    a.clock.set(T0 + 50 * MINUTE);
    deliver(&mut b, &mut a);
    assert_eq!(learned(&a), Some(Some(T0 + 5 * MINUTE)), "kept through the new add");
    // An add retracted as erroneous does not count: the identification is void.
    b.engine.remove_record(second, RetractReason::Erroneous, "ben").unwrap();
    deliver(&mut b, &mut a);
    assert_eq!(learned(&a), None);
    // The same for an own record removed as erroneous, unless another source remains.
    let own = add(&mut a, "abu_t");
    let own_token = a.engine.token(&account("abu_t"));
    assert!(a.engine.identification(&own_token).unwrap().is_some());
    a.engine.remove_record(own, RetractReason::Erroneous, "ana").unwrap();
    assert!(a.engine.identification(&own_token).unwrap().is_none());
    // Facts of a token nothing holds are purged only once the retention has passed since.
    let kept = add(&mut b, "abu_o");
    deliver(&mut b, &mut a);
    b.engine.remove_record(kept, RetractReason::NoLongerHeld, "ben").unwrap();
    deliver(&mut b, &mut a);
    let kept_token = a.engine.token(&account("abu_o"));
    assert_eq!(a.engine.purge_takedown_facts().unwrap(), 0);
    assert!(a.engine.identification(&kept_token).unwrap().is_some());
    a.clock.advance(181 * DAY_MS);
    assert_eq!(a.engine.purge_takedown_facts().unwrap(), 1);
    assert!(a.engine.identification(&kept_token).unwrap().is_none());
}

/// Whether `member` stores any identification row (`I`).
fn stores_identifications(member: &Member) -> bool {
    member.engine.store().any_with_prefix(&keys::all_identifications()).unwrap()
}

/// When `member` learned of `token` from member `n`, if it knows of the token.
fn learned_from(member: &Member, token: &Token, n: u8) -> Option<Option<u64>> {
    let origin = key(n).public_key().to_bytes();
    member.engine.identification(token).unwrap().map(|i| i.learned_from(&origin))
}

/// Another member's add is its own source while it lives: ingest writes no identification
/// row. When the add expires, its source is stored, and its retention counts from the last
/// receipt of an add of the token, as when every add wrote a row.
#[test]
fn a_remote_add_is_its_own_source_and_its_expiry_keeps_it() {
    let mut a = member(1, "live-a", T0);
    let mut b = member(2, "live-b", T0);
    b.engine.add_record(record_until(&["abu_e"], true, T0 + DAY_MS), "ben").unwrap();
    a.clock.set(T0 + 5 * MINUTE);
    deliver(&mut b, &mut a);
    let token = a.engine.token(&account("abu_e"));
    assert!(!stores_identifications(&a), "ingest writes no identification row");
    assert_eq!(learned_from(&a, &token, 2), Some(Some(T0 + 5 * MINUTE)));
    // B keeps it a day longer: a new add, received an hour in, which moves only the touch.
    b.clock.set(T0 + HOUR);
    b.engine.add_record(record_until(&["abu_e"], true, T0 + 2 * DAY_MS), "ben").unwrap();
    a.clock.set(T0 + HOUR);
    deliver(&mut b, &mut a);
    assert!(!stores_identifications(&a));
    assert_eq!(learned_from(&a, &token, 2), Some(Some(T0 + 5 * MINUTE)));
    // A third add, received as A's clock has stepped back half an hour: the touch stays.
    b.engine.add_record(record_until(&["abu_e"], true, T0 + 2 * DAY_MS + HOUR), "ben").unwrap();
    a.clock.set(T0 + 30 * MINUTE);
    deliver(&mut b, &mut a);
    // The add expires at A: its source stays, now stored.
    a.clock.set(T0 + 3 * DAY_MS);
    a.engine.expire().unwrap();
    assert_eq!(a.engine.remote_holders(&token).unwrap(), 0, "the add is gone");
    assert!(stores_identifications(&a));
    assert_eq!(learned_from(&a, &token, 2), Some(Some(T0 + 5 * MINUTE)));
    // Forgotten once the retention has passed since the last receipt, not before.
    let retention = EngineConfig::for_test(1).max_retention_ms;
    a.clock.set(T0 + HOUR + retention - MINUTE);
    assert_eq!(a.engine.purge_takedown_facts().unwrap(), 0);
    a.clock.set(T0 + HOUR + retention + MINUTE);
    assert_eq!(a.engine.purge_takedown_facts().unwrap(), 1);
    assert_eq!(learned_from(&a, &token, 2), None);
}

/// Identification rows `member` stores (`I`).
fn identification_rows(member: &Member) -> u64 {
    let footprint = member.engine.store().footprint().unwrap();
    footprint.iter().filter(|((_, prefix), _)| *prefix == b'I').map(|(_, f)| f.keys).sum()
}

/// An add that crosses H2 counts as learned anew, and a withdrawn member's add leaves the
/// store: in both, when the node first learned of the token stays known.
#[test]
fn an_add_across_h2_or_withdrawn_keeps_when_it_was_first_learned() {
    let mut a = member(1, "kept-a", T0);
    let mut b = member(2, "kept-b", T0);
    add(&mut b, "abu_w");
    add(&mut b, "abu_x");
    a.clock.set(T0 + 5 * MINUTE);
    deliver(&mut b, &mut a);
    let (crossed, withdrawn) =
        (a.engine.token(&account("abu_w")), a.engine.token(&account("abu_x")));
    assert_eq!(identification_rows(&a), 0);
    // B holds one longer under H2: the add A receives is of the other side of H2.
    let mut longer = record_until(&["abu_w"], true, T0 + 91 * DAY_MS);
    longer.handling = Handling::H2;
    b.engine.add_record(longer, "ben").unwrap();
    a.clock.set(T0 + HOUR);
    deliver(&mut b, &mut a);
    assert_eq!(a.engine.remote_holders(&crossed).unwrap(), 1);
    assert_eq!(identification_rows(&a), 1, "the first add's source is stored as it is replaced");
    assert_eq!(learned_from(&a, &crossed, 2), Some(Some(T0 + 5 * MINUTE)));
    // The roster drops B: its adds are withdrawn, and the times stay.
    let roster = members(3).into_iter().filter(|m| m.key != key(2).public_key()).collect();
    a.engine.set_members(roster).unwrap();
    a.engine.finish_withdrawals().unwrap();
    assert_eq!(a.engine.remote_holders(&withdrawn).unwrap(), 0, "B's add is withdrawn");
    assert_eq!(identification_rows(&a), 2, "the withdrawn add's source is stored");
    assert_eq!(learned_from(&a, &withdrawn, 2), Some(Some(T0 + 5 * MINUTE)));
    assert_eq!(learned_from(&a, &crossed, 2), Some(Some(T0 + 5 * MINUTE)));
}

/// The facts' retention counts from the token's latest add, whichever member's it was: a
/// source stored as one member's add expires keeps the touch of another member's later add,
/// and an add voided as erroneous leaves its touch behind.
#[test]
fn the_facts_retention_counts_from_any_members_latest_add() {
    let mut a = member(1, "touch-a", T0);
    let mut b = member(2, "touch-b", T0);
    let mut c = member(3, "touch-c", T0);
    let retention = EngineConfig::for_test(1).max_retention_ms;
    // B's add of one account, for a day, reaches A at five minutes; C's, for the whole
    // retention, at an hour.
    b.engine.add_record(record_until(&["abu_m"], true, T0 + DAY_MS), "ben").unwrap();
    a.clock.set(T0 + 5 * MINUTE);
    deliver(&mut b, &mut a);
    c.clock.set(T0 + HOUR);
    let long = record_until(&["abu_m"], true, T0 + HOUR + retention);
    c.engine.add_record(long, "cat").unwrap();
    a.clock.set(T0 + HOUR);
    deliver(&mut c, &mut a);
    // Another account: C's add for a day at five minutes, B's for 90 days at an hour, which B
    // then retracts as erroneous.
    c.clock.set(T0 + 5 * MINUTE);
    c.engine.add_record(record_until(&["abu_n"], true, T0 + DAY_MS), "cat").unwrap();
    a.clock.set(T0 + 5 * MINUTE);
    deliver(&mut c, &mut a);
    b.clock.set(T0 + HOUR);
    let wrong = b.engine.add_record(record_until(&["abu_n"], true, T0 + 90 * DAY_MS), "ben");
    a.clock.set(T0 + HOUR);
    deliver(&mut b, &mut a);
    b.engine.remove_record(wrong.unwrap(), RetractReason::Erroneous, "ben").unwrap();
    a.clock.set(T0 + 2 * HOUR);
    deliver(&mut b, &mut a);
    let (m, n) = (a.engine.token(&account("abu_m")), a.engine.token(&account("abu_n")));
    assert_eq!(learned_from(&a, &n, 2), Some(None), "B's source is void");
    // The one-day adds expire at A; C's add of the first account lives on.
    a.clock.set(T0 + 3 * DAY_MS);
    a.engine.expire().unwrap();
    let holders =
        |a: &Member| (a.engine.remote_holders(&m).unwrap(), a.engine.remote_holders(&n).unwrap());
    assert_eq!(holders(&a), (1, 0));
    assert_eq!(identification_rows(&a), 2, "the expired adds' sources are stored");
    assert_eq!(learned_from(&a, &m, 2), Some(Some(T0 + 5 * MINUTE)));
    assert_eq!(learned_from(&a, &n, 3), Some(Some(T0 + 5 * MINUTE)));
    // Past the retention from the adds received at five minutes, both stay: the adds received
    // at an hour touched them (C's still lives; B's was voided).
    a.clock.set(T0 + 5 * MINUTE + retention + MINUTE);
    assert_eq!(a.engine.purge_takedown_facts().unwrap(), 0);
    assert_eq!(learned_from(&a, &m, 2), Some(Some(T0 + 5 * MINUTE)));
    assert_eq!(learned_from(&a, &n, 3), Some(Some(T0 + 5 * MINUTE)));
    // Past the retention from an hour, C's add has expired, and both go.
    a.clock.set(T0 + HOUR + retention + MINUTE);
    a.engine.expire().unwrap();
    assert_eq!(holders(&a), (0, 0));
    assert_eq!(a.engine.purge_takedown_facts().unwrap(), 2);
    assert_eq!((learned_from(&a, &m, 3), learned_from(&a, &n, 3)), (None, None));
}

#[test]
fn backlog_records_are_listed_without_a_budget() {
    let mut a = member(1, "backlog-a", T0);
    let mut old = record_until(&["abu_s"], true, T0 + 90 * DAY_MS);
    old.backlog = true;
    let imported = a.engine.add_records(vec![old], "ana").unwrap()[0];
    let fresh = add(&mut a, "abu_r");
    a.clock.set(T0 + 3 * HOUR);
    let report = report(&a, None);
    let listed = clock_of(&report, imported);
    assert!(listed.backlog && !listed.overdue && listed.deadline_ms.is_none());
    assert!(clock_of(&report, fresh).overdue);
    assert_eq!((report.summary.overdue, report.summary.backlog), (1, 1));
    let warnings = report.warnings_due(&TakedownSettings::default(), &HashSet::new());
    assert_eq!(warnings.iter().map(|w| w.record).collect::<Vec<_>>(), [fresh]);
}

// ---- two members through the API -------------------------------------------------------

const LIMIT: Duration = Duration::from_secs(90);

async fn call(
    port: u16,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<String>,
) -> http::Reply {
    let (method, path, bearer) = (method.to_owned(), path.to_owned(), bearer.to_owned());
    tokio::task::spawn_blocking(move || {
        let content_type =
            if path == "/v1/observations" { "application/x-ndjson" } else { "application/json" };
        let body = body.map(String::into_bytes);
        http::request_typed(port, &method, &path, Some(&bearer), content_type, body.as_deref())
            .unwrap()
    })
    .await
    .unwrap()
}

async fn takedown_of(port: u16, record: u64) -> Value {
    let reply = call(port, "GET", "/v1/takedowns", ANALYST, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let all = reply.json();
    all["accounts"]
        .as_array()
        .and_then(|accounts| accounts.iter().find(|a| a["record"] == json!(record)).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takedown_clocks_across_two_members_through_the_api() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let root = TempDir::new("takedown-api");
        let mut fed = LocalFederation::new(root.path(), &["DE", "FR"]);
        // FR's clock runs ten minutes ahead of DE's.
        let de_clock = Arc::new(ManualClock::new(T0));
        let fr_clock = Arc::new(ManualClock::new(T0 + 10 * MINUTE));
        fed.set_clock(0, de_clock.clone());
        fed.set_clock(1, fr_clock.clone());
        fed.start_all().await.unwrap();
        fed.wait_meshed().await.unwrap();
        let mut ports = Vec::new();
        for (i, id) in ["DE", "FR"].into_iter().enumerate() {
            ports.push(serve_api(fed.node(i).unwrap(), id).await.0);
        }
        let (de, fr) = (ports[0], ports[1]);
        let add = |port: u16, handle: &'static str| async move {
            let body = http::account_record(handle, true).to_string();
            let reply = call(port, "POST", "/v1/records", ANALYST, Some(body)).await;
            assert_eq!(reply.status, 201, "{}", reply.body);
            reply.json()["id"].as_u64().unwrap()
        };
        let at_de = add(de, "@abu_q").await;
        let at_fr = add(fr, "@abu_q").await;
        let ordered_at_fr = add(fr, "@abu_p").await;

        // DE refers; FR removes (at its own clock, ten minutes in DE's future).
        let status = |port: u16, record: u64, status: &'static str| async move {
            let body = json!({ "status": status }).to_string();
            let path = format!("/v1/records/{record}/status");
            let reply = call(port, "POST", &path, ANALYST, Some(body)).await;
            assert_eq!(reply.status, 204, "{}", reply.body);
        };
        de_clock.set(T0 + 5 * MINUTE);
        fr_clock.set(T0 + 15 * MINUTE);
        status(de, at_de, "referred").await;
        status(fr, at_fr, "removed").await;
        wait_until("DE sees FR's removal", LIMIT, || async {
            takedown_of(de, at_de).await["state"] == "removed"
        })
        .await
        .unwrap();
        let clock = takedown_of(de, at_de).await;
        assert_eq!(clock["removed_by"], "FR");
        let removed_at = clock["removed_at_ms"].as_u64().unwrap();
        assert!(removed_at <= T0 + 5 * MINUTE, "clamped to DE's receipt, not FR's future time");
        assert_eq!(clock["unit_clock_start_ms"], json!(T0));
        assert_eq!(clock["referred_at_ms"], json!(T0 + 5 * MINUTE));
        assert!(!clock.to_string().contains("abu_q"), "no raw identifier");
        // FR's add, created in DE's future, starts DE's federation clock no later than DE's own.
        assert!(clock["federation_clock_start_ms"].as_u64().unwrap() <= T0);

        // DE's status shows FR's clock ahead: a negative skew of five to ten minutes (the
        // receipt may fall before or after DE's clock moved five minutes on).
        let skew = || async {
            call(de, "GET", "/v1/status", MONITOR, None).await.json()["clock_skew_ms"]["FR"]
                .as_i64()
        };
        wait_until("DE estimates FR's skew", LIMIT, || async { skew().await.is_some() })
            .await
            .unwrap();
        let skew = skew().await.unwrap();
        let minutes = |n: u64| -i64::try_from(n * MINUTE).unwrap();
        assert!((minutes(10)..=minutes(5)).contains(&skew), "{skew}");

        // DE's own observations show the account posting after the removal: contradicted.
        de_clock.set(T0 + 20 * MINUTE);
        let line = format!(
            r#"{{"platform":"x","account":"@abu_q","at":{},"post_id":"after-removal"}}"#,
            T0 + 15 * MINUTE
        );
        let reply = call(de, "POST", "/v1/observations", ANALYST, Some(line)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let clock = takedown_of(de, at_de).await;
        assert_eq!(clock["state"], "removal_contradicted");
        assert_eq!(clock["running"], true);
        assert_eq!(clock["removed_by"], "FR");

        // The overdue state and the warnings follow DE's injected clock, from the sweep.
        // (The timer sweeps too, so the warnings are read from the event list.)
        let de_node = fed.node(0).unwrap().clone();
        de_node.sweep_takedowns().await.unwrap();
        assert!(de_node.takedown_events(0).is_empty(), "20 of 120 minutes used");
        de_clock.set(T0 + 95 * MINUTE);
        de_node.sweep_takedowns().await.unwrap();
        let warned = |events: Vec<crossmatch_node::daemon::TakedownEvent>| {
            events.iter().map(|e| (e.record, e.overdue)).collect::<Vec<_>>()
        };
        assert_eq!(warned(de_node.takedown_events(0)), [(at_de, false)]);
        // The warning is an event of the alert event log too, for the stream and the webhook.
        let logged = wait_until("the warning in the event log", Duration::from_secs(30), || {
            let de_node = de_node.clone();
            async move {
                use crossmatch_node::daemon::{EventId, EventRead, EventViewBody};
                let Ok(head) = de_node.wait_event_head().await else { return false };
                let start = EventId { incarnation: head.incarnation, seq: 0 };
                let Ok(EventRead::Events(events)) = de_node.events_after(Some(start), 256).await
                else {
                    return false;
                };
                events.iter().any(|event| {
                    event.kind.as_str() == "takedown.warning"
                        && matches!(&event.body, EventViewBody::Takedown(warning)
                            if warning.record == at_de && !warning.overdue)
                })
            }
        })
        .await;
        assert!(logged.is_ok(), "{logged:?}");
        de_node.sweep_takedowns().await.unwrap();
        assert_eq!(de_node.takedown_events(0).len(), 1, "warned once");
        assert_eq!(takedown_of(de, at_de).await["overdue"], false);
        de_clock.set(T0 + 2 * HOUR + MINUTE);
        de_node.sweep_takedowns().await.unwrap();
        assert_eq!(takedown_of(de, at_de).await["overdue"], true);
        let metrics = call(de, "GET", "/metrics", MONITOR, None).await.body;
        assert!(metrics.contains("crossmatch_takedowns_overdue 1"), "{metrics}");
        assert_eq!(de_node.takedown_events(0).len(), 1);
        let overdue = call(de, "GET", "/v1/takedowns?state=overdue", ANALYST, None).await.json();
        assert_eq!(overdue["totals"]["overdue"], 1);
        assert_eq!(overdue["accounts"].as_array().map(Vec::len), Some(1));

        // At FR: the removal shows in the histogram; a removal order's hour runs on FR's clock.
        let fr_node = fed.node(1).unwrap().clone();
        fr_node.sweep_takedowns().await.unwrap();
        let metrics = call(fr, "GET", "/metrics", MONITOR, None).await.body;
        assert!(
            metrics.contains("crossmatch_takedown_time_to_removal_seconds_count 1"),
            "{metrics}"
        );
        status(fr, ordered_at_fr, "ordered").await;
        fr_clock.set(T0 + 15 * MINUTE + HOUR - MINUTE);
        assert_eq!(takedown_of(fr, ordered_at_fr).await["state"], "ordered");
        fr_clock.set(T0 + 15 * MINUTE + HOUR + MINUTE);
        let ordered = takedown_of(fr, ordered_at_fr).await;
        assert_eq!(
            (ordered["state"].as_str(), ordered["overdue"].as_bool()),
            (Some("overdue"), Some(true))
        );
        let bad = call(fr, "GET", "/v1/takedowns?state=gone", ANALYST, None).await;
        assert_eq!(bad.status, 400);
        let monitor = call(fr, "GET", "/v1/takedowns", MONITOR, None).await;
        assert_eq!(monitor.status, 403);
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the takedown test finished in time");
}
