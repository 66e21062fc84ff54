//! The `floods` scenario: three members meshed, and floods against them.
//!
//! 1. **Outsiders.** A node of another federation (its own ceremony, in a namespace of its
//!    own) runs with a roster whose records name the members' addresses, so it dials them
//!    all the time; and a raw TCP flood opens 40 connections at once from each of five
//!    addresses to member 0's mesh port, half of them sending garbage, half idle, each held
//!    14 s. Meanwhile member 1 publishes an account that members 0 and 2 watch, which must be
//!    alerted at both; every member must answer its API and stay connected to both others;
//!    from one address no more than the mesh's 8 connections may stay open past the first
//!    seconds, from all of them no more than its 32 pending ones, and none past its 10 s
//!    handshake timeout; member 0 must count refused connections, and the outsider node
//!    must be connected to no one.
//! 2. **The API under load.** 200 analysts add 5 shared accounts each at member 0 at once,
//!    each add on a connection of its own (`flood_helper.rs`), while members 1 and 2 publish
//!    accounts member 0 watches. Every answer must be a `201` with an id or a clean refusal
//!    (`503 busy`, sent again; `503 timeout`, counted); no id may be issued twice; once the
//!    federation is quiet, member 0's own feed must have signed exactly one entry per
//!    acknowledged add (its daily quota's use, read by an import's dry run before and after);
//!    a sample of the acknowledged accounts watched at member 1 must be alerted naming member
//!    0, and member 1's and 2's accounts at member 0.
//!
//! At the end every member holds the same head of every member's feed (the outsider's never
//! among them), with no fork, ban or rejected batch.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::federation::Federation;
use crate::flood_helper::HELPER;
use crate::lab::{Lab, MESH_PORT, address, namespace};
use crate::{Context, Failure, Rng};

/// Members in the federation.
const MEMBERS: usize = 3;
/// The namespace of the other federation's node (its member 3, the only one that runs).
const OUTSIDER: usize = 3;
/// The namespace the raw TCP flood runs in.
const FLOODER: usize = 4;
/// The flood's other addresses, beside the flooder's own.
const FLOOD_ADDRESSES: [&str; 4] = ["10.233.0.70", "10.233.0.71", "10.233.0.72", "10.233.0.73"];
/// Connections the flood opens at once from each address.
const CONNECTIONS_PER_ADDRESS: usize = 40;
/// How long each flood connection is held, in seconds.
const HOLD_SECS: u64 = 14;
/// When the flood's connections are counted: past the first seconds, a connection still open
/// holds one of the mesh's slots.
const COUNTED_AT_MS: u64 = 3_000;
/// The mesh's limits (docs/PROTOCOL.md §3.4): connections from one address, pending ones from
/// addresses of no member, and how long a connection may take to finish its handshake.
const PER_ADDRESS_LIMIT: usize = 8;
const PENDING_LIMIT: usize = 32;
const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
// The flood goes past every limit it checks, and outlives the handshake timeout.
const _: () = assert!(CONNECTIONS_PER_ADDRESS > PER_ADDRESS_LIMIT * 2);
const _: () = assert!((FLOOD_ADDRESSES.len() + 1) * PER_ADDRESS_LIMIT > PENDING_LIMIT);
const _: () = assert!(HOLD_SECS * 1000 > HANDSHAKE_TIMEOUT_MS + 2_000);
/// Analysts adding at once, and the adds each makes.
const ANALYSTS: usize = 200;
const ADDS_EACH: usize = 5;
/// Acknowledged accounts member 1 watches.
const SAMPLE: usize = 48;
/// Accounts members 1 and 2 publish, in turns, while the analysts add.
const GOSSIP_ROUNDS: usize = 6;
/// The longest a helper load may run, in seconds.
const HELPER_LIMIT_SECS: &str = "180";
/// A day in ms: the quota is counted per UTC day.
const DAY_MS: u64 = 86_400_000;

/// A handle: the seed's low bits, then what it is for; at most 15 characters.
fn handle(seed: u64, what: &str) -> String {
    format!("q{:x}{what}", seed % 0x1000)
}

/// Runs the scenario; a failure carries the nodes' last log lines.
pub fn run(context: &Context) -> Result<(), Failure> {
    let lab = Lab::new(FLOODER + 1, 1)?;
    let mut federation = Federation::found(&context.bin, &context.work, MEMBERS)?;
    let elsewhere = context.work.join("outsider");
    std::fs::create_dir_all(&elsewhere)
        .map_err(|error| Failure::setup(format!("creating {}: {error}", elsewhere.display())))?;
    // Its own ceremony: members 0 to 2 of that federation are listed at our members'
    // addresses and never run, so its member 3 dials our members as its peers.
    let mut outsider = Federation::found(&context.bin, &elsewhere, OUTSIDER + 1)?;
    let outcome = steps(context, &lab, &mut federation, &mut outsider);
    let outcome = outcome
        .map_err(|failure| failure.with_logs(federation.log_tails(30) + &outsider.log_tails(10)));
    federation.stop_all();
    outsider.stop_all();
    drop(lab);
    outcome
}

fn steps(
    context: &Context,
    lab: &Lab,
    federation: &mut Federation,
    outsider: &mut Federation,
) -> Result<(), Failure> {
    let mut rng = context.rng();
    for index in 0..MEMBERS {
        federation.start(index)?;
    }
    let took = context.wait_for("every node ready with all its peers", || {
        Ok(federation.statuses().iter().all(|status| {
            status.as_ref().is_some_and(|s| s["ready"] == true && s["peers"] == MEMBERS - 1)
        }))
    })?;
    context.say(format!("{MEMBERS} nodes meshed in {:.1} s", took.as_secs_f64()));
    for index in 0..MEMBERS {
        federation.add(index, &[handle(context.seed, &format!("_first{index}"))], true)?;
    }
    federation.settle(context, "the first publications", || Ok(true))?;
    outsiders(context, lab, federation, outsider, &mut rng)?;
    api_load(context, federation, &mut rng)?;
    let start = Instant::now();
    let (heads, _) = federation.settle(context, "every member to converge", || Ok(true))?;
    if outsider.status(OUTSIDER).is_none_or(|s| s["peers"] != 0) {
        return Err(Failure::check("the outsider node stopped, or is connected to someone"));
    }
    context.say(format!(
        "every member converged on {} feeds (none of the outsider's) {:.1} s after the load",
        heads.len(),
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Runs the other federation's node and the raw TCP flood, and checks the members keep
/// serving within their limits.
fn outsiders(
    context: &Context,
    lab: &Lab,
    federation: &Federation,
    outsider: &mut Federation,
    rng: &mut Rng,
) -> Result<(), Failure> {
    outsider.start(OUTSIDER)?;
    context.wait_for("the outsider node ready", || {
        Ok(outsider.status(OUTSIDER).is_some_and(|s| s["ready"] == true))
    })?;
    outsider.add(OUTSIDER, &[handle(context.seed, "_outsider")], true)?;
    let refused_before = refused_connections(federation)?;
    let shared = handle(context.seed, "_during");
    let publisher = 1;
    let mut watches = federation.watch(0, std::slice::from_ref(&shared), "M1")?;
    watches.extend(federation.watch(2, std::slice::from_ref(&shared), "M1")?);

    let mut sources = vec![address(FLOODER)];
    for extra in FLOOD_ADDRESSES {
        lab.add_address(FLOODER, extra)?;
        sources.push(extra.to_owned());
    }
    let target = format!("{}:{MESH_PORT}", address(0));
    let flood = helper(
        context,
        FLOODER,
        None,
        &[
            "--flood-mode",
            "tcp",
            "--flood-target",
            &target,
            "--flood-from",
            &sources.join(","),
            "--flood-connections",
            &CONNECTIONS_PER_ADDRESS.to_string(),
            "--flood-hold-secs",
            &HOLD_SECS.to_string(),
        ],
    )?;
    let flood_began = Instant::now();
    // The publication comes a moment drawn from the seed into the flood.
    std::thread::sleep(Duration::from_millis(500 + rng.below(1500) as u64));
    federation.add(publisher, &[shared], true)?;
    let published = Instant::now();
    let mut fewest_peers = MEMBERS - 1;
    let what = "M1's account, published during the flood, alerted at M0 and M2";
    context.wait_for(what, || {
        fewest_peers = fewest_peers.min(answering_peers(federation)?);
        federation.all_alerted(&watches)
    })?;
    let alerted = published.elapsed();
    // Every member keeps its peers and answers for the rest of the flood.
    while flood_began.elapsed() < Duration::from_secs(HOLD_SECS) {
        fewest_peers = fewest_peers.min(answering_peers(federation)?);
        std::thread::sleep(Duration::from_millis(500));
    }
    let report = finish(flood, "the TCP flood")?;
    if fewest_peers < MEMBERS - 1 {
        return Err(Failure::check(format!(
            "a member lost a peer during the flood (the fewest seen: {fewest_peers})"
        )));
    }
    let seen = judge_flood(&report, &sources)?;
    let refused_after = refused_connections(federation)?;
    if refused_after[0] <= refused_before[0] {
        return Err(Failure::check(format!(
            "M0 counted no refused connection during the flood: {refused_before:?} -> \
             {refused_after:?}"
        )));
    }
    let outsider_status = outsider
        .status(OUTSIDER)
        .ok_or_else(|| Failure::check("the outsider node's API stopped answering"))?;
    if outsider_status["peers"] != 0 {
        return Err(Failure::check(format!(
            "the outsider node is connected to {} members",
            outsider_status["peers"]
        )));
    }
    for index in 0..MEMBERS {
        federation.no_faults(index)?;
    }
    context.say(format!(
        "outsiders: {} flood connections from {} addresses ({} closed within a second; \
         {COUNTED_AT_MS} ms in, at most {} open from one address, {} from all) and another \
         federation's node dialling; M1's account alerted at M0 and M2 in {:.1} s; refused \
         connections {refused_before:?} -> {refused_after:?}; every member kept both peers",
        seen.opened,
        sources.len(),
        seen.closed_at_once,
        seen.most_from_one,
        seen.open_in_all,
        alerted.as_secs_f64()
    ));
    Ok(())
}

/// Every member's `refused_connections`, or a failure when one does not answer.
fn refused_connections(federation: &Federation) -> Result<Vec<u64>, Failure> {
    federation
        .statuses()
        .into_iter()
        .enumerate()
        .map(|(index, status)| {
            status
                .and_then(|s| s["refused_connections"].as_u64())
                .ok_or_else(|| Failure::check(format!("M{index}'s API does not answer")))
        })
        .collect()
}

/// The fewest peers a member has now; a failure when one does not answer.
fn answering_peers(federation: &Federation) -> Result<usize, Failure> {
    let mut fewest = usize::MAX;
    for (index, status) in federation.statuses().into_iter().enumerate() {
        let peers = status.and_then(|s| s["peers"].as_u64()).ok_or_else(|| {
            Failure::check(format!("M{index}'s API did not answer during the flood"))
        })?;
        fewest = fewest.min(peers as usize);
    }
    Ok(fewest)
}

/// What the flood saw: connections opened, the most still open from one address and from all
/// of them [`COUNTED_AT_MS`] in, and those the member closed within a second.
#[derive(Debug)]
struct FloodSeen {
    opened: usize,
    most_from_one: usize,
    open_in_all: usize,
    closed_at_once: usize,
}

/// Checks the flood's connections against the mesh's limits: every one opened; past
/// [`COUNTED_AT_MS`] at most [`PER_ADDRESS_LIMIT`] still open from one address and
/// [`PENDING_LIMIT`] from all; none open past the handshake timeout.
fn judge_flood(report: &Value, sources: &[String]) -> Result<FloodSeen, Failure> {
    let all = report["connections"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&Value> = all.iter().filter(|c| c["opened_ms"].is_null()).collect();
    if all.len() != sources.len() * CONNECTIONS_PER_ADDRESS || !failed.is_empty() {
        return Err(Failure::check(format!(
            "{} of {} flood connections did not open (the listener stopped taking them?): {:?}",
            failed.len(),
            sources.len() * CONNECTIONS_PER_ADDRESS,
            failed.first()
        )));
    }
    let open_at = |connection: &Value, at: u64| {
        connection["opened_ms"].as_u64().is_some_and(|opened| opened <= at)
            && connection["closed_ms"].as_u64().is_none_or(|closed| closed > at)
    };
    let (mut total, mut most_from_one) = (0, 0);
    for source in sources {
        let from: Vec<&Value> = all.iter().filter(|c| c["from"] == source.as_str()).collect();
        let open = from.iter().filter(|c| open_at(c, COUNTED_AT_MS)).count();
        if open > PER_ADDRESS_LIMIT {
            return Err(Failure::check(format!(
                "{open} connections from {source} were still open {COUNTED_AT_MS} ms into the \
                 flood: over the limit of {PER_ADDRESS_LIMIT} per address"
            )));
        }
        total += open;
        most_from_one = most_from_one.max(open);
    }
    if total > PENDING_LIMIT {
        return Err(Failure::check(format!(
            "{total} flood connections were still open {COUNTED_AT_MS} ms in: over the \
             {PENDING_LIMIT} pending connections from addresses of no member"
        )));
    }
    let lingering = all
        .iter()
        .filter(|c| {
            let opened = c["opened_ms"].as_u64().unwrap_or(0);
            c["closed_ms"]
                .as_u64()
                .is_none_or(|closed| closed > opened + HANDSHAKE_TIMEOUT_MS + 2_000)
        })
        .count();
    if lingering > 0 {
        return Err(Failure::check(format!(
            "{lingering} flood connections were held past the {HANDSHAKE_TIMEOUT_MS} ms \
             handshake timeout"
        )));
    }
    let closed_at_once = all
        .iter()
        .filter(|c| {
            let opened = c["opened_ms"].as_u64().unwrap_or(0);
            c["closed_ms"].as_u64().is_some_and(|closed| closed <= opened + 1_000)
        })
        .count();
    Ok(FloodSeen { opened: all.len(), most_from_one, open_in_all: total, closed_at_once })
}

/// The API load at member 0 while members 1 and 2 publish, and its checks.
fn api_load(context: &Context, federation: &Federation, rng: &mut Rng) -> Result<(), Failure> {
    let seed = context.seed;
    // Member 0 watches what the others publish during the load.
    let gossip: Vec<(usize, String)> = (0..GOSSIP_ROUNDS)
        .map(|round| (1 + round % 2, handle(seed, &format!("_g{round}"))))
        .collect();
    let mut watches = Vec::new();
    for (publisher, handle) in &gossip {
        watches.extend(federation.watch(
            0,
            std::slice::from_ref(handle),
            &format!("M{publisher}"),
        )?);
    }
    let (day_before, left_before) = quota_left(context, federation)?;
    let prefix = handle(seed, "");
    let load = helper(
        context,
        0,
        Some(federation.token(0)),
        &[
            "--flood-mode",
            "api",
            "--flood-clients",
            &ANALYSTS.to_string(),
            "--flood-adds",
            &ADDS_EACH.to_string(),
            "--flood-prefix",
            &prefix,
        ],
    )?;
    let gaps: Vec<u64> = (0..GOSSIP_ROUNDS).map(|_| 200 + rng.below(400) as u64).collect();
    for ((publisher, handle), gap) in gossip.iter().zip(gaps) {
        std::thread::sleep(Duration::from_millis(gap));
        federation.add(*publisher, std::slice::from_ref(handle), true)?;
    }
    let report = finish(load, "the API load")?;
    let (acknowledged, timed_out) = judge_answers(&report)?;
    federation.settle(context, "the load published and every feed agreed", || Ok(true))?;
    let (day_after, left_after) = quota_left(context, federation)?;
    // Today's room shrinks by each entry signed or waiting to be (none waits, quiet).
    let signed = left_before.saturating_sub(left_after);
    let count = acknowledged.len() as u64;
    if day_before != day_after {
        context.say("the load crossed midnight UTC: the daily quota's count is not compared");
    } else if signed < count || signed > count + timed_out {
        return Err(Failure::check(format!(
            "M0 signed {signed} entries for {count} acknowledged adds ({timed_out} answered \
             503 timeout): each must be published exactly once"
        )));
    }
    let mut sample: Vec<String> = acknowledged.into_iter().collect();
    rng.shuffle(&mut sample);
    sample.truncate(SAMPLE);
    watches.extend(federation.watch(1, &sample, "M0")?);
    let what = "the sampled acknowledged adds alerted at M1, and M1's and M2's at M0";
    let took = context.wait_for(what, || federation.all_alerted(&watches))?;
    context.say(format!(
        "API load: {ANALYSTS} analysts, {count} adds acknowledged in {:.1} s ({} answers \
         `busy` sent again, at most {} for one add; {timed_out} timed out; the slowest add \
         {} ms); M0 signed {signed} entries for them; {} sampled accounts and the \
         {GOSSIP_ROUNDS} published meanwhile alerted in {:.1} s",
        report["took_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        report["busy"],
        report["most_busy"],
        report["slowest_ms"],
        sample.len(),
        took.as_secs_f64()
    ));
    Ok(())
}

/// Checks every add was answered `201` with an id, or refused cleanly (`503 timeout`, counted;
/// `busy` was sent again by the helper), and that no id was issued twice: the handles
/// acknowledged, and how many timed out.
fn judge_answers(report: &Value) -> Result<(BTreeSet<String>, u64), Failure> {
    let added = report["added"].as_array().cloned().unwrap_or_default();
    let other = report["other"].as_array().cloned().unwrap_or_default();
    let mut timed_out = 0;
    for answer in &other {
        let what = answer["what"].as_str().unwrap_or_default();
        let clean = what.starts_with("503 ")
            && serde_json::from_str::<Value>(&what[4..])
                .is_ok_and(|body| body["error"]["code"] == "timeout");
        if !clean {
            return Err(Failure::check(format!(
                "an add under load ended neither in 201 nor in a clean refusal: {what}"
            )));
        }
        timed_out += 1;
    }
    if added.len() + other.len() != ANALYSTS * ADDS_EACH {
        return Err(Failure::check(format!(
            "the load reported {} adds of {}",
            added.len() + other.len(),
            ANALYSTS * ADDS_EACH
        )));
    }
    let ids: BTreeSet<u64> = added.iter().filter_map(|a| a["id"].as_u64()).collect();
    let handles: BTreeSet<String> =
        added.iter().filter_map(|a| a["handle"].as_str().map(str::to_owned)).collect();
    if ids.len() != added.len() || handles.len() != added.len() {
        return Err(Failure::check(format!(
            "{} adds acknowledged with {} distinct ids and {} distinct handles",
            added.len(),
            ids.len(),
            handles.len()
        )));
    }
    Ok((handles, timed_out))
}

/// The UTC day, and the entries member 0's own feed may still share today: its daily cap less
/// what it signed today and what waits in its outbox (an import's dry run of one row reads it).
fn quota_left(context: &Context, federation: &Federation) -> Result<(u64, u64), Failure> {
    let file = context.work.join("one-row.csv");
    let row = format!("kind;platform;value\naccount;x;{}\n", handle(context.seed, "_dry"));
    std::fs::write(&file, row).map_err(|error| Failure::setup(format!("writing: {error}")))?;
    let args = [
        "import",
        file.to_str().unwrap_or_default(),
        "--share",
        "--category",
        "terrorism/propaganda",
        "--handling",
        "H1",
        "--evaluation",
        "B2",
        "--expires-in-days",
        "30",
        "--dry-run",
        "--json",
    ];
    let day = now_ms() / DAY_MS;
    let printed = federation.cli(0, &args, "")?;
    let job: Value = serde_json::from_str(printed.trim())
        .map_err(|error| Failure::setup(format!("the dry run's answer: {error}: {printed}")))?;
    let quota = &job["quota"];
    let left = quota["left_today"]
        .as_u64()
        .ok_or_else(|| Failure::setup(format!("the dry run reported no quota: {job}")))?;
    Ok((day, left))
}

fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Starts this binary's load helper in member `index`'s namespace, with `token` as the API
/// token, bounded by [`HELPER_LIMIT_SECS`].
fn helper(
    context: &Context,
    index: usize,
    token: Option<&str>,
    args: &[&str],
) -> Result<Child, Failure> {
    let this = std::env::current_exe()
        .map_err(|error| Failure::setup(format!("this binary's path: {error}")))?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &namespace(index), "timeout", HELPER_LIMIT_SECS])
        .arg(this)
        .arg(HELPER)
        .args(args)
        .args(["--seed", &context.seed.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("CROSSMATCH_TOKEN", token);
    }
    command.spawn().map_err(|error| Failure::setup(format!("starting the load helper: {error}")))
}

/// Waits for a helper to end (its own `timeout` bounds it) and reads its report.
fn finish(child: Child, what: &str) -> Result<Value, Failure> {
    let output =
        child.wait_with_output().map_err(|error| Failure::setup(format!("{what}: {error}")))?;
    if !output.status.success() {
        return Err(Failure::check(format!(
            "{what} ended {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|error| Failure::setup(format!("{what}'s report: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flood_helper;

    #[test]
    fn handles_fit_an_x_handle() {
        let longest = flood_helper::handle(&handle(u64::MAX, ""), ANALYSTS - 1, ADDS_EACH - 1);
        assert!(longest.len() <= 15, "{longest}");
        assert!(handle(u64::MAX, "_outsider").len() <= 15);
    }
}
