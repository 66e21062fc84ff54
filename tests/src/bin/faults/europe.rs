//! The `europe` measurement (not in `all`): up to 28 members, one per capital of
//! `tests/data/europe-capitals.txt`, each in its own namespace, every connection between two
//! of them through the WAN relay at the one-way delay their great-circle distance gives
//! (`tests/data/europe-delays.txt`, derived by [`one_way_ms`]), with jitter. It measures
//! publish-to-alert latency (one member publishes, every other watches, the time to each
//! watcher's alert line), the time one member's import takes to reach every other member, and
//! the bytes each member received for it against the data's size. `--zero-delay` runs the same
//! with every delay 0, for contrast. docs/TESTING.md and docs/BENCHMARKS.md, "Europe in a box".

use std::time::{Duration, Instant};

use crate::federation::{Federation, feed_heads, import_args, own_position};
use crate::lab::{Lab, address};
use crate::wan::{self, Wan};
use crate::watch::{self, Followers};
use crate::{Context, Failure};

/// The capitals, one a line: `CODE CITY LATITUDE LONGITUDE`.
const CAPITALS: &str = include_str!("../../../data/europe-capitals.txt");
/// Light in fibre: two thirds of c, in km per millisecond.
const FIBRE_KM_PER_MS: f64 = 200.0;
/// How much longer a route is than the great circle.
const ROUTE_FACTOR: f64 = 2.0;
/// Routers, switches and serialisation on the way, in milliseconds.
const EQUIPMENT_MS: f64 = 1.0;
/// The delays' bounds, in milliseconds.
const MIN_MS: u64 = 5;
const MAX_MS: u64 = 45;
/// The mean radius of the earth, in km.
const EARTH_KM: f64 = 6371.0;

/// The measurement's options.
#[derive(Debug, Clone, clap::Args)]
pub struct EuropeArgs {
    /// `europe`: members, one per capital in the table's order (2 to 28).
    #[arg(long, default_value_t = 28)]
    pub members: usize,
    /// `europe`: every delay 0, for contrast.
    #[arg(long)]
    pub zero_delay: bool,
    /// `europe`: publications timed, one a round, publishers in turn (at least one per member).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// `europe`: rows of the import that every other member must ingest.
    #[arg(long, default_value_t = 26_000)]
    pub import_rows: usize,
}

/// One capital: its country code and position in degrees.
#[derive(Debug, Clone, PartialEq)]
struct Capital {
    code: String,
    latitude: f64,
    longitude: f64,
}

/// The capitals of the table, in its order.
fn capitals() -> Vec<Capital> {
    CAPITALS
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let [code, _city, latitude, longitude] = words.as_slice() else { return None };
            Some(Capital {
                code: (*code).to_owned(),
                latitude: latitude.parse().ok()?,
                longitude: longitude.parse().ok()?,
            })
        })
        .collect()
}

/// The great-circle distance between two capitals, in km (haversine).
fn distance_km(a: &Capital, b: &Capital) -> f64 {
    let (la, lb) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dlat = lb - la;
    let dlon = (b.longitude - a.longitude).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_KM * h.sqrt().asin()
}

/// The one-way delay between two capitals: the distance over light in fibre, times the route
/// factor, plus the equipment's share, rounded and clamped to 5–45 ms.
fn one_way_ms(a: &Capital, b: &Capital) -> u64 {
    let ms = EQUIPMENT_MS + distance_km(a, b) * ROUTE_FACTOR / FIBRE_KM_PER_MS;
    ((ms + 0.5).floor() as u64).clamp(MIN_MS, MAX_MS)
}

/// A delay's jitter: a tenth of it, at least 1 ms.
fn jitter_ms(ms: u64) -> u64 {
    (ms / 10).max(1)
}

#[cfg(test)]
/// The documented table, `FROM TO MS JITTER` for every pair, as `tests/data/europe-delays.txt`
/// holds it.
fn render_table(capitals: &[Capital]) -> String {
    let mut text = String::from(
        "# One-way delays between the capitals of europe-capitals.txt, in milliseconds, with\n\
         # their jitter: FROM TO MS JITTER. Derived by crossmatch-faults (docs/TESTING.md):\n\
         # 1 + great-circle km x 2 / 200, rounded, clamped to 5-45; jitter a tenth, at least 1.\n",
    );
    for (i, a) in capitals.iter().enumerate() {
        for b in &capitals[i + 1..] {
            let ms = one_way_ms(a, b);
            text.push_str(&format!("{} {} {ms} {}\n", a.code, b.code, jitter_ms(ms)));
        }
    }
    text
}

/// The relay's delay table for the first `members` capitals (each direction of each pair),
/// or every delay 0.
fn relay_delays(capitals: &[Capital], members: usize, zero: bool) -> String {
    if zero {
        return "default 0 0\n".into();
    }
    let mut text = String::new();
    for (i, a) in capitals.iter().enumerate().take(members) {
        for (j, b) in capitals.iter().enumerate().take(members) {
            if i != j {
                let ms = one_way_ms(a, b);
                let (from, to) = (address(i), wan::route_name(j));
                text.push_str(&format!("{from} {to} {ms} {}\n", jitter_ms(ms)));
            }
        }
    }
    text
}

/// Runs the measurement; a failure carries the nodes' last log lines.
pub fn run(context: &Context) -> Result<(), Failure> {
    let options = &context.europe;
    let capitals = capitals();
    if !(2..=capitals.len()).contains(&options.members) || options.rounds == 0 {
        let most = capitals.len();
        return Err(Failure::setup(format!("--members is 2 to {most}, --rounds at least 1")));
    }
    let members = options.members;
    let lab = Lab::new(members, 1)?;
    let delays = relay_delays(&capitals, members, options.zero_delay);
    let wan = Wan::start(&lab, &context.relay, &context.work, members, &delays, context.seed)?;
    let mut federation =
        Federation::found_announcing(&context.bin, &context.work, members, &wan::announced)?;
    let outcome = measure(context, &capitals[..members], &wan, &mut federation);
    let outcome = outcome.map_err(|failure| failure.with_logs(federation.log_tails(20)));
    federation.stop_all();
    drop(wan);
    drop(lab);
    outcome
}

fn measure(
    context: &Context,
    capitals: &[Capital],
    wan: &Wan,
    federation: &mut Federation,
) -> Result<(), Failure> {
    let options = &context.europe;
    let members = capitals.len();
    let delay = |a: usize, b: usize| {
        if options.zero_delay { 0 } else { one_way_ms(&capitals[a], &capitals[b]) }
    };
    let largest = (0..members).flat_map(|a| (0..members).map(move |b| (a, b)));
    let largest = largest.filter(|(a, b)| a != b).map(|(a, b)| delay(a, b)).max().unwrap_or(0);
    let codes: Vec<&str> = capitals.iter().map(|c| c.code.as_str()).collect();
    context.say(format!(
        "{members} members ({}), one-way delays up to {largest} ms{}",
        codes.join(" "),
        if options.zero_delay { " (every delay 0)" } else { "" }
    ));
    for index in 0..members {
        federation.start(index)?;
    }
    let took =
        context.wait_for("every node ready with all its peers, through the relay", || {
            Ok(federation.statuses().iter().all(|status| {
                status.as_ref().is_some_and(|s| s["ready"] == true && s["peers"] == members - 1)
            }))
        })?;
    context.say(format!("meshed through the relay in {:.1} s", took.as_secs_f64()));
    latency(context, federation, &delay)?;
    import(context, wan, federation)?;
    let (_, took) = federation.settle(context, "every member to converge", || Ok(true))?;
    wan::check_no_bypass(&wan.stats()?, members)?;
    context.say(format!(
        "converged ({:.1} s after the import's check); every pair through the relay, none around",
        took.as_secs_f64()
    ));
    Ok(())
}

/// Times publish-to-alert: in each round one member publishes one account every other member
/// watches. Round 0 only shows every follower follows.
fn latency(
    context: &Context,
    federation: &Federation,
    delay: &dyn Fn(usize, usize) -> u64,
) -> Result<(), Failure> {
    let members = federation.members.len();
    // At least one round per member, so every member has a feed the others hold.
    let rounds = context.europe.rounds.max(members) + 1;
    let handle = |round: usize| format!("e{:x}_{round}", context.seed % 0x1_0000);
    let followers = Followers::start(federation)?;
    let mut expected: Vec<Vec<(usize, u64)>> = vec![Vec::new(); rounds];
    for watcher in 0..members {
        let watched: Vec<usize> = (0..rounds).filter(|r| r % members != watcher).collect();
        let handles: Vec<String> = watched.iter().map(|&r| handle(r)).collect();
        let ids = federation.add(watcher, &handles, false)?;
        for (round, id) in watched.into_iter().zip(ids) {
            expected[round].push((watcher, id));
        }
    }
    let (mut latencies, mut excess) = (Vec::new(), Vec::new());
    for (round, expected) in expected.iter().enumerate() {
        let publisher = round % members;
        federation.add(publisher, &[handle(round)], true)?;
        let published = Instant::now();
        let what = format!("round {round}'s alerts (M{publisher} published)");
        let arrived = followers.wait_all(expected, context.give_up, &what)?;
        if round == 0 {
            continue;
        }
        for ((watcher, _), at) in arrived {
            let took = at.saturating_duration_since(published);
            latencies.push(took);
            let floor = Duration::from_millis(delay(publisher, watcher));
            excess.push(took.saturating_sub(floor));
        }
    }
    let (Some((p50, p99, max)), Some((e50, e99, emax))) =
        (watch::percentiles(&latencies), watch::percentiles(&excess))
    else {
        return Ok(());
    };
    let ms = watch::ms;
    context.say(format!(
        "publish-to-alert over {} alerts: p50 {}, p99 {}, max {}",
        latencies.len(),
        ms(p50),
        ms(p99),
        ms(max)
    ));
    context.say(format!(
        "beyond the pair's one-way delay: p50 {}, p99 {}, max {} (goal p99 <= 20 ms)",
        ms(e50),
        ms(e99),
        ms(emax)
    ));
    Ok(())
}

/// Has member 0 import `import_rows` shared accounts, and times it until every member holds
/// its feed's head with every outbox empty; then the bytes each member received through the
/// relay meanwhile against the bytes of the batches member 0 published by gossip.
fn import(context: &Context, wan: &Wan, federation: &Federation) -> Result<(), Failure> {
    let members = federation.members.len();
    let rows = context.europe.import_rows;
    let mut csv = String::from("kind;platform;value\n");
    for row in 0..rows {
        csv.push_str(&format!("account;x;i{:x}_{row}\n", context.seed % 0x1_0000));
    }
    let file = context.work.join("import.csv");
    std::fs::write(&file, csv).map_err(|error| Failure::setup(format!("import.csv: {error}")))?;
    // A member that cannot say what it published gives no ratio, rather than one against 1;
    // a status that does not come is asked for again a few times first.
    let sent = |federation: &Federation| {
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(1));
            }
            if let Some(status) = federation.status(0) {
                return status["mesh_gossip_bytes_published"].as_u64().ok_or_else(|| {
                    Failure::check("member 0's status has no mesh_gossip_bytes_published")
                });
            }
        }
        Err(Failure::check("member 0's status did not come, five times"))
    };
    let (pairs_before, sent_before) = (wan.stats()?, sent(federation)?);
    let counts_before = batch_counts(federation);
    let cpu_before = cpu_seconds(federation);
    let (machine_before, relay_before) = (machine_ticks(), wan.cpu_ticks());
    let start = Instant::now();
    let args = import_args(file.to_str().unwrap_or_default(), &["--source", "europe"]);
    federation.cli_within(0, &args, "", "600")?;
    let imported = start.elapsed();
    let limit = context.give_up;
    while !holds_import(federation) {
        if start.elapsed() > limit {
            stall_report(context, federation);
            return Err(Failure::timeout("every member to hold the import", limit));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let everywhere = start.elapsed();
    let cpu = cpu_seconds(federation);
    let (machine_after, relay_after) = (machine_ticks(), wan.cpu_ticks());
    let (pairs, data) = (wan.stats()?, sent(federation)?.saturating_sub(sent_before));
    context.say(format!(
        "import of {rows} rows: the command took {:.2} s; every member held it {:.2} s after \
         its start (goal <= 10 s)",
        imported.as_secs_f64(),
        everywhere.as_secs_f64()
    ));
    let mut spent: Vec<f64> = (1..members).map(|index| cpu[index] - cpu_before[index]).collect();
    spent.sort_by(f64::total_cmp);
    context.say(format!(
        "CPU time (user and system) the nodes spent meanwhile: M0 {:.2} s; each other member \
         min {:.2} s, median {:.2} s, max {:.2} s",
        cpu[0] - cpu_before[0],
        spent.first().unwrap_or(&0.0),
        spent[spent.len() / 2],
        spent.last().unwrap_or(&0.0)
    ));
    // How busy the machine was: a bound on the import set by the cores, not by the links.
    if let (Some((busy_before, all_before)), Some((busy, all))) = (machine_before, machine_after) {
        let ticks = clock_ticks();
        let members_spent: f64 = (0..members).map(|index| cpu[index] - cpu_before[index]).sum();
        let relay = relay_after.zip(relay_before).map_or(0.0, |(a, b)| a.saturating_sub(b) as f64);
        let busy = busy.saturating_sub(busy_before) as f64 / ticks;
        let all = all.saturating_sub(all_before) as f64 / ticks;
        context.say(format!(
            "the machine meanwhile: {busy:.1} of {all:.1} core-seconds busy ({:.0} %): the \
             members {members_spent:.1}, the relay {:.1}, everything else {:.1}",
            100.0 * busy / all.max(1e-9),
            relay / ticks,
            (busy - members_spent - relay / ticks).max(0.0)
        ));
    }
    let counts = batch_counts(federation);
    let delta: Vec<u64> = (0..3).map(|k| counts[k].saturating_sub(counts_before[k])).collect();
    context.say(format!(
        "batches the other members applied for it: {} by gossip, {} by sync; {} duplicates",
        delta[0], delta[1], delta[2]
    ));
    let mut ratios: Vec<f64> = (1..members)
        .map(|index| {
            let received = wan::received_by(&pairs, index) - wan::received_by(&pairs_before, index);
            received as f64 / data.max(1) as f64
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    context.say(format!(
        "bytes each other member received through the relay meanwhile, over the {data} bytes of \
         the batches M0 published: min {:.2}x, median {:.2}x, max {:.2}x (goal <= 1.5x)",
        ratios.first().unwrap_or(&0.0),
        ratios[ratios.len() / 2],
        ratios.last().unwrap_or(&0.0)
    ));
    Ok(())
}

/// Whether every member holds member 0's own head with every outbox empty: the import
/// published and held everywhere. Only member 0's feed counts, not the others' (a member that
/// has not published has no head to agree on).
fn holds_import(federation: &Federation) -> bool {
    let statuses = federation.statuses();
    let Some(origin) = statuses[0].as_ref() else { return false };
    let (Some(id), Some(head)) = (origin["member_id"].as_str(), own_position(origin)) else {
        return false;
    };
    statuses.iter().enumerate().all(|(index, status)| {
        status.as_ref().is_some_and(|status| {
            status["outbox"] == 0 && (index == 0 || held_head(status, Some(id)) == Some(head))
        })
    })
}

/// The position a member's status reports for the feed of the member with id `id`.
fn held_head(status: &serde_json::Value, id: Option<&str>) -> Option<(u64, u64)> {
    feed_heads(status)
        .into_values()
        .find(|(member, _, _)| Some(member.as_str()) == id)
        .map(|(_, generation, seq)| (generation, seq))
}

/// When the import did not reach every member in time: per member, the position it holds of
/// member 0's feed against member 0's own, its outbox and peers, and the ingest and sync
/// counters that tell a stalled pull from refused or dropped work.
fn stall_report(context: &Context, federation: &Federation) {
    let statuses = federation.statuses();
    let origin_head = statuses[0].as_ref().and_then(own_position);
    context.say(format!("the import stalled; M0's own feed is at {origin_head:?}"));
    let origin = statuses[0].as_ref().map(|s| s["member_id"].clone()).unwrap_or_default();
    for (index, status) in statuses.iter().enumerate() {
        let Some(status) = status else {
            context.say(format!("M{index}: no answer"));
            continue;
        };
        let held = held_head(status, origin.as_str());
        let c = &status["counters"];
        context.say(format!(
            "M{index}: holds M0 at {held:?}; outbox {}, peers {}; received {}, by gossip {}, \
             by sync {}, duplicates {}, quota refused {}, held dropped {}, gossip dropped busy \
             {}, sync refused busy {}, sync calls outstanding {}",
            status["outbox"],
            status["peers"],
            c["received"],
            c["applied_by_gossip"],
            c["applied_by_sync"],
            c["duplicates"],
            c["quota_refused"],
            c["held_dropped"],
            status["gossip_dropped_busy"],
            status["sync_refused_busy"],
            status["sync_engine_calls_outstanding"],
        ));
    }
}

/// Every member's node's CPU time so far (user and system), in seconds; 0 where it cannot be
/// read.
fn cpu_seconds(federation: &Federation) -> Vec<f64> {
    let ticks_per_second = clock_ticks();
    (0..federation.members.len())
        .map(|index| {
            let stat = federation
                .pid(index)
                .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok());
            stat.as_deref().and_then(cpu_ticks).unwrap_or(0) as f64 / ticks_per_second
        })
        .collect()
}

/// The machine's busy and total CPU time since boot, in clock ticks, from `/proc/stat`'s
/// first line (idle and I/O wait are not busy).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    machine_ticks_of(stat.lines().next()?)
}

fn machine_ticks_of(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let values: Vec<u64> = fields.take(8).map(|field| field.parse().ok()).collect::<Option<_>>()?;
    let all: u64 = values.iter().sum();
    Some((all - values.get(3)? - values.get(4)?, all))
}

/// The user and system time of a `/proc/PID/stat` line, in clock ticks.
pub(crate) fn cpu_ticks(stat: &str) -> Option<u64> {
    // Past the command's name, which may hold spaces and parentheses: state is the first
    // field, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), 100 where it cannot be read.
fn clock_ticks() -> f64 {
    let output = std::process::Command::new("getconf").arg("CLK_TCK").output();
    let text = output.map(|output| String::from_utf8_lossy(&output.stdout).into_owned());
    text.ok().and_then(|text| text.trim().parse().ok()).unwrap_or(100.0)
}

/// The batches every member but member 0 applied by gossip and by sync, and the duplicates
/// they saw, summed.
fn batch_counts(federation: &Federation) -> [u64; 3] {
    let mut counts = [0; 3];
    for status in federation.statuses().into_iter().skip(1).flatten() {
        let counters = &status["counters"];
        for (count, field) in
            counts.iter_mut().zip(["applied_by_gossip", "applied_by_sync", "duplicates"])
        {
            *count += counters[field].as_u64().unwrap_or(0);
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_28_capitals_and_every_delay_within_bounds() {
        let capitals = capitals();
        assert_eq!(capitals.len(), 28);
        for a in &capitals {
            for b in &capitals {
                if a != b {
                    let ms = one_way_ms(a, b);
                    assert!((MIN_MS..=MAX_MS).contains(&ms), "{} {}: {ms}", a.code, b.code);
                    assert_eq!(ms, one_way_ms(b, a), "{} {}", a.code, b.code);
                }
            }
        }
        let by = |code: &str| capitals.iter().find(|c| c.code == code).unwrap().clone();
        let paris_berlin = distance_km(&by("FR"), &by("DE"));
        assert!((870.0..890.0).contains(&paris_berlin), "Paris–Berlin is ~878 km");
        assert_eq!(one_way_ms(&by("AT"), &by("SK")), MIN_MS, "Vienna–Bratislava is clamped");
    }

    #[test]
    fn the_documented_table_is_the_derived_one() {
        let documented = include_str!("../../../data/europe-delays.txt");
        assert_eq!(documented, render_table(&capitals()));
    }

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (cross (match) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 \
                    20 0 9 0 100 1000000 500 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(cpu_ticks("no name"), None);
    }

    #[test]
    fn the_machine_time_is_read_from_the_first_line_of_proc_stat() {
        let line = "cpu  100 5 50 1000 20 3 2 0 0 0";
        assert_eq!(machine_ticks_of(line), Some((160, 1180)));
        assert_eq!(machine_ticks_of("cpu0 1 2 3 4 5 6 7 8"), None);
        assert_eq!(machine_ticks_of("cpu  1 2 3"), None);
    }

    #[test]
    fn the_relay_table_has_both_directions_of_each_pair() {
        let capitals = capitals();
        let text = relay_delays(&capitals, 3, false);
        assert_eq!(text.lines().count(), 6);
        let ms = one_way_ms(&capitals[0], &capitals[2]);
        assert!(text.contains(&format!("{} m2 {ms} ", address(0))));
        assert!(text.contains(&format!("{} m0 {ms} ", address(2))));
        assert_eq!(relay_delays(&capitals, 28, true), "default 0 0\n");
    }
}
