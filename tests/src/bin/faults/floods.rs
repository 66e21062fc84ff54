//! The `floods` scenario: three members meshed, and floods against them.
//!
//! 1. **Outsiders.** A node of another federation (its own ceremony, in a namespace of its
//!    own, its roster naming our members by their real cards and keys at their addresses)
//!    dials our members all the time and passes its own check of their keys, so only their
//!    allow lists keep it out: before any flood, member 0 must count refused connections
//!    while only it dials, and neither side may see it connected or a roster mismatch. Then
//!    a raw TCP flood opens 40 connections at once from each of five addresses to member 0's
//!    mesh port, half of them sending garbage, half idle, each held 14 s. Meanwhile member 1
//!    publishes an account that members 0 and 2 watch, which must be alerted at both, and
//!    brought there by gossip (their `applied_by_gossip` grows: the pull every 2 s would
//!    bring it without); every member must answer its API and stay connected to both others;
//!    7 s in, member 0's own kernel (`ss` in its namespace) must list no more than the mesh's
//!    8 established connections from one flood address and 32 from all; each address must
//!    have opened exactly its 40, none held past the 10 s handshake timeout; member 0 must
//!    count more refused connections, and the outsider must still be kept out.
//! 2. **The API under load.** 200 analysts add 5 shared accounts each at member 0 at once,
//!    each add on a connection of its own (`flood_helper.rs`), while members 1 and 2 publish
//!    accounts member 0 watches. Every answer must be a `201` with an id or a clean refusal
//!    (`503 busy`, sent again; `503 timeout`, counted); no id may be issued twice; member 1
//!    must apply batches by gossip meanwhile. Once the federation is quiet, member 1 watches
//!    every acknowledged account and every one that timed out: each acknowledged one must be
//!    alerted naming member 0 (and member 1's and 2's at member 0), and member 0's own feed
//!    must have signed exactly one entry per acknowledged add and per timed-out add it
//!    carried out (alerted at member 1): its daily quota's use, read by an import's dry run
//!    before and after, each read within one UTC day.
//!
//! Each load runs in a namespace as `ip netns exec NS timeout 180 crossmatch-faults
//! flood-helper …`: `timeout` ends a helper that hangs. At the end every member holds the
//! same head of every member's feed (the outsider's never among them), with no fork, ban or
//! rejected batch.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::federation::{Federation, import_args};
use crate::flood_helper::HELPER;
use crate::lab::{Lab, MESH_PORT, address, namespace};
use crate::{Context, DAY_MS, Failure, Rng, unix_now_ms};

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
/// When member 0's connections from the flood are counted: long after it took them from its
/// accept queue, before the handshake timeout closes the ones it holds.
const COUNTED_AT_MS: u64 = 7_000;
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
/// Accounts members 1 and 2 publish, in turns, while the analysts add.
const GOSSIP_ROUNDS: usize = 6;
/// The longest a helper load may run, in seconds.
const HELPER_LIMIT_SECS: &str = "180";

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
    // Its own ceremony: members 0 to 2 of that federation are our members, by their cards and
    // keys, at their addresses (they never run in it), so its member 3 dials our members as
    // its peers and passes its own check of their keys: only our allow lists keep it out.
    let at = |index| format!("/ip4/{}/tcp/{MESH_PORT}", address(index));
    let lent = &federation.members[..MEMBERS];
    let mut outsider =
        Federation::found_borrowing(&context.bin, &elsewhere, OUTSIDER + 1, &at, lent)?;
    let outcome = steps(context, &lab, &mut federation, &mut outsider);
    let outcome = outcome
        .map_err(|failure| failure.with_logs(federation.log_tails(30) + &outsider.log_tails(10)));
    federation.stop_all();
    outsider.stop_all();
    drop(lab);
    outcome
}

/// The scenario's steps on the founded federations: mesh, first publications, the outsiders'
/// phase, the API load, and the final convergence.
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
    kept_apart(federation, outsider)?;
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
    let refused = outsider_kept_out(context, federation, outsider)?;
    let shared = handle(context.seed, "_during");
    let mut watches = federation.watch(0, std::slice::from_ref(&shared), "M1")?;
    watches.extend(federation.watch(2, std::slice::from_ref(&shared), "M1")?);
    let gossip_before = applied_by_gossip(federation)?;
    let mut sources = vec![address(FLOODER)];
    for extra in FLOOD_ADDRESSES {
        lab.add_address(FLOODER, extra)?;
        sources.push(extra.to_owned());
    }
    let flood = tcp_flood(context, &sources)?;
    let flood_began = Instant::now();
    let census = node_side_census(flood_began, sources.clone());
    // The publication comes a moment drawn from the seed into the flood.
    std::thread::sleep(Duration::from_millis(500 + rng.below(1500) as u64));
    federation.add(1, &[shared], true)?;
    let published = Instant::now();
    let mut fewest_peers = MEMBERS - 1;
    let what = "M1's account, published during the flood, alerted at M0 and M2";
    context.wait_for(what, || {
        fewest_peers = fewest_peers.min(answering_peers(federation)?);
        federation.all_alerted(&watches)
    })?;
    let alerted = published.elapsed();
    gossip_grew(federation, &gossip_before, &[0, 2], "M1's publication during the flood")?;
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
    let census = census.join().map_err(|_| Failure::setup("the census thread panicked"))??;
    let seen = judge_flood(&report, &sources, &census)?;
    let refused_after = refused_connections(federation)?;
    if refused_after[0] <= refused.1[0] {
        return Err(Failure::check(format!(
            "M0 counted no refused connection during the flood: {:?} -> {refused_after:?}",
            refused.1
        )));
    }
    kept_apart(federation, outsider)?;
    for index in 0..MEMBERS {
        federation.no_faults(index)?;
    }
    context.say(format!(
        "outsiders: another federation's node naming our members by their keys refused \
         ({:?} -> {:?} refusals before the flood); {} flood connections from {} addresses \
         ({} closed within a second; {COUNTED_AT_MS} ms in, M0 held at most {} from one \
         address, {} from all); M1's account alerted at M0 and M2 in {:.1} s; refusals -> \
         {refused_after:?}; every member kept both peers",
        refused.0,
        refused.1,
        seen.opened,
        sources.len(),
        seen.closed_at_once,
        census.most_from_one,
        census.in_all,
        alerted.as_secs_f64()
    ));
    Ok(())
}

/// Starts the other federation's node and waits, before any flood, until member 0 refuses its
/// dials; then checks it is connected to no one on either side. Member 0's refusals before and
/// after that window.
fn outsider_kept_out(
    context: &Context,
    federation: &Federation,
    outsider: &mut Federation,
) -> Result<(Vec<u64>, Vec<u64>), Failure> {
    let before = refused_connections(federation)?;
    outsider.start(OUTSIDER)?;
    context.wait_for("the outsider node ready", || {
        Ok(outsider.status(OUTSIDER).is_some_and(|s| s["ready"] == true))
    })?;
    outsider.add(OUTSIDER, &[handle(context.seed, "_outsider")], true)?;
    let mut after = before.clone();
    context.wait_for("M0 refusing the outsider's dials (only they reach it now)", || {
        after = refused_connections(federation)?;
        Ok(after[0] > before[0])
    })?;
    kept_apart(federation, outsider)?;
    Ok((before, after))
}

/// The outsider node is connected to no one, and neither side sees a roster mismatch: the
/// members' allow lists keep it out before any roster is compared.
fn kept_apart(federation: &Federation, outsider: &Federation) -> Result<(), Failure> {
    let theirs = outsider.status(OUTSIDER);
    let ours = federation.statuses().into_iter().enumerate().map(|(i, s)| (format!("M{i}"), s));
    for (who, status) in std::iter::once(("the outsider".to_owned(), theirs.clone())).chain(ours) {
        let status =
            status.ok_or_else(|| Failure::check(format!("{who}'s API does not answer")))?;
        let mismatches = status["roster_mismatches"].as_array().map_or(0, Vec::len);
        if mismatches != 0 {
            return Err(Failure::check(format!(
                "{who} sees {mismatches} roster mismatches: the outsider got past an allow list"
            )));
        }
    }
    let peers = &theirs.unwrap_or_default()["peers"];
    if peers != 0 {
        return Err(Failure::check(format!("the outsider node is connected to {peers} members")));
    }
    Ok(())
}

/// Starts the raw TCP flood from `sources` against member 0's mesh port.
fn tcp_flood(context: &Context, sources: &[String]) -> Result<Child, Failure> {
    let target = format!("{}:{MESH_PORT}", address(0));
    helper(
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
    )
}

/// Every member's `counters.applied_by_gossip`, or a failure when one does not answer.
fn applied_by_gossip(federation: &Federation) -> Result<Vec<u64>, Failure> {
    counter(federation, |status| status["counters"]["applied_by_gossip"].as_u64())
}

/// Fails unless the batches applied by gossip grew at each of `members` since `before`: the
/// pull every 2 s would bring everything even with gossip stopped.
fn gossip_grew(
    federation: &Federation,
    before: &[u64],
    members: &[usize],
    during: &str,
) -> Result<(), Failure> {
    let after = applied_by_gossip(federation)?;
    for &index in members {
        if after[index] <= before[index] {
            return Err(Failure::check(format!(
                "M{index} applied nothing by gossip across {during} ({before:?} -> {after:?})"
            )));
        }
    }
    Ok(())
}

/// Every member's `refused_connections`, or a failure when one does not answer.
fn refused_connections(federation: &Federation) -> Result<Vec<u64>, Failure> {
    counter(federation, |status| status["refused_connections"].as_u64())
}

/// One figure of every member's status, or a failure when one does not answer.
fn counter(
    federation: &Federation,
    figure: impl Fn(&Value) -> Option<u64>,
) -> Result<Vec<u64>, Failure> {
    federation
        .statuses()
        .into_iter()
        .enumerate()
        .map(|(index, status)| {
            status
                .as_ref()
                .and_then(&figure)
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

/// The flood's connections member 0 holds established [`COUNTED_AT_MS`] into the flood, as
/// its own kernel lists them: the most from one address and from all.
#[derive(Debug)]
struct Census {
    most_from_one: usize,
    in_all: usize,
}

/// Counts, from member 0's side (`ss` in its namespace), the flood's connections it holds
/// established [`COUNTED_AT_MS`] after `began`, in a thread of its own: by then it has taken
/// every connection from its accept queue, and those it refused are no longer established
/// whether or not the flood has read their close. Fails when the limits are passed, or when
/// the count came too late to be within the handshake timeout.
fn node_side_census(
    began: Instant,
    sources: Vec<String>,
) -> std::thread::JoinHandle<Result<Census, Failure>> {
    std::thread::spawn(move || {
        let at = Duration::from_millis(COUNTED_AT_MS);
        std::thread::sleep(at.saturating_sub(began.elapsed()));
        let output = crate::lab::bounded("ip")
            .args(["netns", "exec", &namespace(0), "ss", "-Htn", "state", "established"])
            .arg(format!("( sport = :{MESH_PORT} )"))
            .output()
            .map_err(|error| Failure::setup(format!("ss in M0's namespace: {error}")))?;
        let late = began.elapsed().as_millis() as u64;
        if !output.status.success() || late + 1_000 > HANDSHAKE_TIMEOUT_MS {
            return Err(Failure::setup(format!(
                "the census of M0's connections failed or came {late} ms into the flood: {}",
                crate::lab::complaint(&output)
            )));
        }
        let listing = String::from_utf8_lossy(&output.stdout);
        let peers: Vec<&str> = listing
            .lines()
            .filter_map(|line| line.split_whitespace().last()?.rsplit_once(':').map(|p| p.0))
            .collect();
        let counts: Vec<usize> =
            sources.iter().map(|s| peers.iter().filter(|p| **p == s.as_str()).count()).collect();
        let (most_from_one, in_all) =
            (counts.iter().copied().max().unwrap_or(0), counts.iter().sum());
        if most_from_one > PER_ADDRESS_LIMIT || in_all > PENDING_LIMIT {
            return Err(Failure::check(format!(
                "{COUNTED_AT_MS} ms into the flood M0 held {counts:?} connections from the flood's \
                 addresses: over {PER_ADDRESS_LIMIT} from one or {PENDING_LIMIT} from all"
            )));
        }
        Ok(Census { most_from_one, in_all })
    })
}

/// What the flood saw: connections opened, and those the member closed within a second.
#[derive(Debug)]
struct FloodSeen {
    opened: usize,
    closed_at_once: usize,
}

/// Checks the flood's own report: exactly [`CONNECTIONS_PER_ADDRESS`] connections from each
/// source, every one opened, none open past the handshake timeout.
fn judge_flood(report: &Value, sources: &[String], census: &Census) -> Result<FloodSeen, Failure> {
    let all = report["connections"].as_array().cloned().unwrap_or_default();
    for source in sources {
        let from = all.iter().filter(|c| c["from"] == source.as_str()).count();
        if from != CONNECTIONS_PER_ADDRESS {
            return Err(Failure::check(format!(
                "the flood reported {from} connections from {source}, not \
                 {CONNECTIONS_PER_ADDRESS} (M0's census: {census:?})"
            )));
        }
    }
    let failed: Vec<&Value> = all.iter().filter(|c| c["opened_ms"].is_null()).collect();
    if all.len() != sources.len() * CONNECTIONS_PER_ADDRESS || !failed.is_empty() {
        return Err(Failure::check(format!(
            "{} of {} flood connections did not open (M0's kernel refused or dropped the \
             connect: its listen queue full, or the listener gone?): {:?}",
            failed.len(),
            sources.len() * CONNECTIONS_PER_ADDRESS,
            failed.first()
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
    Ok(FloodSeen { opened: all.len(), closed_at_once })
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
    let before = quota_left(context, federation)?;
    let gossip_before = applied_by_gossip(federation)?;
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
            &handle(seed, ""),
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
    gossip_grew(federation, &gossip_before, &[1], "the API load at M0")?;
    let after = quota_left(context, federation)?;
    // Every acknowledged add and every add that timed out, watched at member 1.
    let acknowledged: Vec<String> = acknowledged.into_iter().collect();
    let watched_acknowledged = federation.watch(1, &acknowledged, "M0")?;
    let watched_timed_out =
        if timed_out.is_empty() { Vec::new() } else { federation.watch(1, &timed_out, "M0")? };
    watches.extend(watched_acknowledged);
    let what = "every acknowledged add alerted at M1, and M1's and M2's at M0";
    let took = context.wait_for(what, || federation.all_alerted(&watches))?;
    let carried_out = carried_out(federation, &watched_timed_out)?;
    // Today's room shrinks by each entry signed or waiting to be (none waits, quiet).
    let signed = before.left.saturating_sub(after.left);
    let count = acknowledged.len() as u64;
    let expected = count + carried_out;
    match (before.day, after.day) {
        (Some(day), Some(later)) if day == later => {
            if signed != expected {
                return Err(Failure::check(format!(
                    "M0 signed {signed} entries for {count} acknowledged adds and {carried_out} \
                     of the {} answered 503 timeout that it carried out: each must be \
                     published exactly once",
                    timed_out.len()
                )));
            }
        }
        _ => context.say("the load crossed midnight UTC: the daily quota's count is not compared"),
    }
    context.say(format!(
        "API load: {ANALYSTS} analysts, {count} adds acknowledged in {:.1} s ({} answers \
         `busy` sent again, at most {} for one add; {} timed out, {carried_out} of them carried \
         out; the slowest add {} ms); M0 signed {signed} entries for them; all {count} and the \
         {GOSSIP_ROUNDS} published meanwhile alerted in {:.1} s",
        report["took_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        report["busy"],
        report["most_busy"],
        timed_out.len(),
        report["slowest_ms"],
        took.as_secs_f64()
    ));
    Ok(())
}

/// How many of the adds that timed out member 0 carried out: those alerted at member 1 naming
/// it, read once every acknowledged add is (member 0's feed has then reached member 1 whole,
/// the federation quiet).
fn carried_out(federation: &Federation, watches: &[(usize, u64, String)]) -> Result<u64, Failure> {
    let mut carried = 0;
    for watch in watches {
        if federation.all_alerted(std::slice::from_ref(watch))? {
            carried += 1;
        }
    }
    Ok(carried)
}

/// Checks every add was answered `201` with an id, or refused cleanly (`503 timeout`, counted;
/// `busy` was sent again by the helper), and that no id was issued twice: the handles
/// acknowledged, and those that timed out.
fn judge_answers(report: &Value) -> Result<(BTreeSet<String>, Vec<String>), Failure> {
    let added = report["added"].as_array().cloned().unwrap_or_default();
    let other = report["other"].as_array().cloned().unwrap_or_default();
    let mut timed_out = Vec::new();
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
        timed_out.push(answer["handle"].as_str().unwrap_or_default().to_owned());
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

/// Member 0's room in its daily quota, and the UTC day it was read in.
struct Room {
    /// The day, or `None` when the read began on one day and ended on the next.
    day: Option<u64>,
    /// The entries its own feed may still share today.
    left: u64,
}

/// The entries member 0's own feed may still share today: its daily cap less what it signed
/// today and what waits in its outbox (an import's dry run of one row reads it), and the day.
fn quota_left(context: &Context, federation: &Federation) -> Result<Room, Failure> {
    let file = context.work.join("one-row.csv");
    let row = format!("kind;platform;value\naccount;x;{}\n", handle(context.seed, "_dry"));
    std::fs::write(&file, row).map_err(|error| Failure::setup(format!("writing: {error}")))?;
    let args = import_args(file.to_str().unwrap_or_default(), &["--dry-run", "--json"]);
    let day = unix_now_ms() / DAY_MS;
    let printed = federation.cli(0, &args, "")?;
    let read_on = unix_now_ms() / DAY_MS;
    let job: Value = serde_json::from_str(printed.trim())
        .map_err(|error| Failure::setup(format!("the dry run's answer: {error}: {printed}")))?;
    let left = job["quota"]["left_today"]
        .as_u64()
        .ok_or_else(|| Failure::setup(format!("the dry run reported no quota: {job}")))?;
    Ok(Room { day: (day == read_on).then_some(day), left })
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

    /// A helper's report: every add acknowledged with its own id, but the adds `others`
    /// names ended in what they give instead.
    fn report(others: &[(usize, &str)]) -> Value {
        let mut added = Vec::new();
        let mut other = Vec::new();
        for n in 0..ANALYSTS * ADDS_EACH {
            let handle = format!("h{n}");
            match others.iter().find(|(at, _)| *at == n) {
                Some((_, what)) => other.push(serde_json::json!({"handle": handle, "what": what})),
                None => added.push(serde_json::json!({"handle": handle, "id": n as u64 + 1})),
            }
        }
        serde_json::json!({"added": added, "other": other})
    }

    #[test]
    fn an_add_answered_503_timeout_is_counted_as_timed_out_not_as_a_failure() {
        let timeout = r#"503 {"error":{"code":"timeout","message":"the request timed out"}}"#;
        let (acknowledged, timed_out) = judge_answers(&report(&[(7, timeout)])).unwrap();
        assert_eq!(timed_out, ["h7"]);
        assert_eq!(acknowledged.len(), ANALYSTS * ADDS_EACH - 1);
        assert!(!acknowledged.contains("h7"));
    }

    #[test]
    fn any_other_refusal_or_an_id_issued_twice_fails_the_check() {
        let busy = r#"503 {"error":{"code":"busy","message":"the node is busy"}}"#;
        for what in [busy, "500 internal", "connection reset"] {
            assert!(judge_answers(&report(&[(3, what)])).is_err(), "{what}");
        }
        let mut twice = report(&[]);
        twice["added"][1]["id"] = twice["added"][0]["id"].clone();
        assert!(judge_answers(&twice).is_err(), "an id issued twice");
        let mut short = report(&[]);
        short["added"].as_array_mut().unwrap().pop();
        assert!(judge_answers(&short).is_err(), "an add missing from the report");
    }

    #[test]
    fn handles_fit_an_x_handle() {
        let longest = flood_helper::handle(&handle(u64::MAX, ""), ANALYSTS - 1, ADDS_EACH - 1);
        assert!(longest.len() <= 15, "{longest}");
        assert!(handle(u64::MAX, "_outsider").len() <= 15);
    }
}
