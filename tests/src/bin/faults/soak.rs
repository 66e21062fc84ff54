//! The `soak` measurement (outside `all`, docs/TESTING.md): members run for a long while under
//! a steady load, posts observed and accounts shared and watched, with one member restarted
//! (SIGTERM, then started again) on a fixed period. Each member's resident memory and data
//! directory are sampled into a CSV file that `scripts/plot_soak.py` draws; at the end every
//! watched account must be alerted and the federation converge with no fault, and the growth
//! of memory and disk between the run's second and last quarters is printed per member.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::federation::{Federation, with_top_level};
use crate::{Context, DAY_MS, Failure, Rng, unix_now_ms};

/// The accounts the posts are drawn from, per member (each member observes its own share of
/// the campaign).
const ACCOUNTS: u64 = 50_000;
/// How often the observed posts are sent, in a file each, to each member.
const OBSERVE_PERIOD: Duration = Duration::from_secs(10);
/// How often a round of shares is added (its size keeps the per-minute rate).
const SHARE_PERIOD: Duration = Duration::from_secs(6);
/// How long the last check may run past `--give-up-secs` (its last poll, and the alerts read).
const CHECK_MARGIN: Duration = Duration::from_secs(5);
/// Shared accounts of each round another member watches.
const WATCHED_PER_ROUND: usize = 2;

/// The measurement's options.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// `soak`: members in the federation.
    #[arg(long, default_value_t = 5)]
    pub soak_members: usize,
    /// `soak`: how long the load runs, in minutes.
    #[arg(long, default_value_t = 60)]
    pub soak_minutes: u64,
    /// `soak`: posts observed a day, across the federation (100 times the seed campaign's
    /// 100,000).
    #[arg(long, default_value_t = 10_000_000)]
    pub soak_posts_per_day: u64,
    /// `soak`: accounts shared a minute, across the federation.
    #[arg(long, default_value_t = 100)]
    pub soak_shares_per_minute: u64,
    /// `soak`: a member is restarted this often, in turn, in seconds.
    #[arg(long, default_value_t = 300)]
    pub soak_restart_secs: u64,
    /// `soak`: memory and disk are sampled this often, in seconds.
    #[arg(long, default_value_t = 30)]
    pub soak_sample_secs: u64,
    /// `soak`: the CSV file the samples are written to (kept after the run).
    #[arg(long, default_value = "soak.csv")]
    pub soak_csv: PathBuf,
    /// `soak`: the members' clocks run this many times as fast as the system's (1 to 10,000;
    /// 1, the default, is the system clock), so that retention turns over within the run. The
    /// binary must be built with the `test-support` feature (`CROSSMATCH_TEST_CLOCK`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub soak_clock_speed: u64,
    /// `soak`: the members' `hunt.observation_retention_days` (1 to 400; 60 unless set): how
    /// many days of posts a node keeps for an observed account that is not a record.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=400))]
    pub soak_observation_retention_days: Option<u64>,
    /// `soak`: the records shared and watched expire after this many days of the members'
    /// clocks (1 to 30; 30 unless set). With the clocks sped up, a run longer than that sees
    /// the shared records level off: the first expire as new ones come.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub soak_record_expiry_days: Option<u64>,
    /// `soak`: the members' `store_cache_mib`, sled's page cache (16 to 65,536; 256 unless
    /// set): a small cache shows how much of the members' memory is the cache's.
    #[arg(long, value_parser = clap::value_parser!(u64).range(16..=65_536))]
    pub soak_store_cache_mib: Option<u64>,
    /// `soak`: the members' `max_retention_days` (1 to 400; 365 unless set, and at least the
    /// records' expiry): how long what the node keeps for the retention lives (the takedown
    /// clock's facts, the posts of an account that is a record), so that it too turns over
    /// within a run on sped-up clocks.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=400))]
    pub soak_max_retention_days: Option<u64>,
}

/// How long after a share round the last check may end at the latest: the last round is shared
/// up to a round before the load ends, and the check then waits up to `give_up` (and a poll
/// past it).
fn last_check_after_round(give_up: Duration) -> Duration {
    CHECK_MARGIN + SHARE_PERIOD + give_up
}

/// Whether a record that expires after `days` of clocks running `speed` times as fast outlives
/// `wait` of system time.
fn outlives(days: u64, speed: u64, wait: Duration) -> bool {
    u128::from(speed) * wait.as_millis() < u128::from(days) * u128::from(DAY_MS)
}

/// Why the members' retention cannot be the one asked for: a node refuses records that expire
/// after its retention.
fn retention_refusal(args: &SoakArgs) -> Option<String> {
    let expiry_days = args.soak_record_expiry_days.unwrap_or(RECORD_EXPIRY_DAYS);
    args.soak_max_retention_days.filter(|days| *days < expiry_days).map(|days| {
        format!(
            "soak: a node refuses records that expire after its retention: \
             --soak-max-retention-days {days} must be at least the records' expiry \
             ({expiry_days} days)"
        )
    })
}

/// The lines the members' configs get at their top level: the page cache and the retention,
/// when they are set.
fn top_level_lines(args: &SoakArgs) -> Vec<String> {
    [
        args.soak_store_cache_mib.map(|mib| format!("store_cache_mib = {mib}")),
        args.soak_max_retention_days.map(|days| format!("max_retention_days = {days}")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The days the soak's records expire in unless `--soak-record-expiry-days` says otherwise
/// (`federation::RECORD_DEFAULTS`): a run on sped-up clocks must then end, settled, before the
/// first of them expires.
const RECORD_EXPIRY_DAYS: u64 = 30;
/// A node's default `hunt.recompute_interval_secs`, and the config's ceiling for it.
const RECOMPUTE_SECS: (u64, u64) = (300, 86_400);

/// One sample of one member: seconds into the run, resident memory and data directory, KiB.
#[derive(Debug, Clone, Copy)]
struct Sample {
    seconds: f64,
    member: usize,
    rss_kib: u64,
    disk_kib: u64,
}

/// Runs the measurement; a failure carries the nodes' last log lines.
pub fn run(context: &Context) -> Result<(), Failure> {
    let args = &context.soak;
    if args.soak_members < 2
        || args.soak_minutes == 0
        || args.soak_sample_secs == 0
        || args.soak_restart_secs == 0
    {
        return Err(Failure::setup("soak: at least 2 members, and every period above 0"));
    }
    let span = Duration::from_secs(args.soak_minutes * 60) + context.give_up + CHECK_MARGIN;
    if let Some(refusal) = retention_refusal(args) {
        return Err(Failure::setup(refusal));
    }
    if let Some(days) = args.soak_record_expiry_days {
        let last = last_check_after_round(context.give_up);
        if !outlives(days, args.soak_clock_speed, last) {
            return Err(Failure::setup(format!(
                "soak: records that expire after {days} days of the members' clocks would all \
                 expire, at ×{}, before the last check ends (up to {} s after the load): a \
                 longer --soak-record-expiry-days, or a lower speed",
                args.soak_clock_speed,
                last.as_secs()
            )));
        }
    } else if args.soak_clock_speed > 1
        && !outlives(RECORD_EXPIRY_DAYS, args.soak_clock_speed, span)
    {
        return Err(Failure::setup(format!(
            "soak: the records shared expire after {RECORD_EXPIRY_DAYS} days of the members' \
             clocks, which a run of {} min (and up to {} s to settle) at ×{} would pass (set \
             --soak-record-expiry-days to let them expire within the run)",
            args.soak_minutes,
            context.give_up.as_secs(),
            args.soak_clock_speed
        )));
    }
    Federation::run_in_lab(context, args.soak_members, 1, |_, federation| {
        let clock = set_up(federation, args)?;
        steps(context, federation, clock)
    })
}

/// Sets the members' clock and config for the run, before any of them starts: with the clocks
/// sped up, the clock's variable and a recompute interval as long in system time as the
/// default; the observation retention and the page cache when they are set.
fn set_up(federation: &mut Federation, args: &SoakArgs) -> Result<RunClock, Failure> {
    let clock = RunClock { anchor_ms: unix_now_ms(), speed: args.soak_clock_speed };
    let mut hunt = String::new();
    if clock.speed > 1 {
        let variable = format!("{}:{}", clock.anchor_ms, clock.speed);
        federation.node_env.push(("CROSSMATCH_TEST_CLOCK".into(), variable));
        let (interval, ceiling) = RECOMPUTE_SECS;
        let _ =
            writeln!(hunt, "recompute_interval_secs = {}", (interval * clock.speed).min(ceiling));
    }
    if let Some(days) = args.soak_observation_retention_days {
        let _ = writeln!(hunt, "observation_retention_days = {days}");
    }
    let top_level = top_level_lines(args);
    if hunt.is_empty() && top_level.is_empty() {
        return Ok(clock);
    }
    for index in 0..federation.members.len() {
        let config = federation.config_file(index);
        let failed =
            |error: std::io::Error| Failure::setup(format!("{}: {error}", config.display()));
        let mut text = std::fs::read_to_string(&config).map_err(failed)?;
        if !top_level.is_empty() {
            text = with_top_level(&text, &top_level.join("\n"))
                .ok_or_else(|| Failure::setup(format!("{} has no table", config.display())))?;
        }
        if !hunt.is_empty() {
            let _ = write!(text, "\n[hunt]\n{hunt}");
        }
        std::fs::write(&config, text).map_err(failed)?;
    }
    Ok(clock)
}

/// The time the members read: the system clock, or with `--soak-clock-speed` above 1 that
/// clock sped up from the anchor taken before they start (the node's `clock::ScaledClock`).
#[derive(Debug, Clone, Copy)]
struct RunClock {
    anchor_ms: u64,
    speed: u64,
}

impl RunClock {
    /// The members' time at system time `real_ms`.
    fn at(&self, real_ms: u64) -> u64 {
        let elapsed = real_ms.saturating_sub(self.anchor_ms).saturating_mul(self.speed);
        self.anchor_ms.saturating_add(elapsed)
    }

    fn now_ms(&self) -> u64 {
        self.at(unix_now_ms())
    }

    /// The members' day now, counted from the Unix epoch.
    fn day(&self) -> u64 {
        self.now_ms() / DAY_MS
    }

    /// The system time at which the members' day `day` begins.
    fn midnight_ms(&self, day: u64) -> u64 {
        let from_anchor = (day * DAY_MS).saturating_sub(self.anchor_ms);
        self.anchor_ms + from_anchor.div_ceil(self.speed)
    }
}

/// Writes one line per day begun since `day`, at the moment it began (a pass of the load's loop,
/// or the settling after it, can take long).
fn mark_midnights(
    csv: &mut Csv,
    clock: RunClock,
    day: &mut u64,
    start_ms: u64,
) -> Result<(), Failure> {
    while *day < clock.day() {
        *day += 1;
        let began = clock.midnight_ms(*day).saturating_sub(start_ms);
        csv.midnight(Duration::from_millis(began))?;
    }
    Ok(())
}

fn steps(context: &Context, federation: &mut Federation, clock: RunClock) -> Result<(), Failure> {
    let args = context.soak.clone();
    let members = args.soak_members;
    for index in 0..members {
        federation.start(index)?;
    }
    wait_ready(context, federation, "every node ready with all its peers")?;
    if clock.speed > 1 {
        check_scaled(federation)?;
    }
    let mut csv = Csv::create(&args.soak_csv)?;
    let mut rng = context.rng();
    let mut load = Load::new(&args);
    let length = Duration::from_secs(args.soak_minutes * 60);
    let restart_every = Duration::from_secs(args.soak_restart_secs);
    let sample_every = Duration::from_secs(args.soak_sample_secs);
    let mut watches = Vec::new();
    let mut samples = Vec::new();
    let (mut next_observe, mut next_share, mut next_sample) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut next_restart = restart_every;
    let (mut restarts, mut round) = (0usize, 0usize);
    let (start, start_ms) = (Instant::now(), unix_now_ms());
    let mut day = clock.day();
    context.say(format!(
        "{members} members for {} min: {} posts a day, {} shares a minute, a restart every {} s; \
         clocks ×{}{}{}",
        args.soak_minutes,
        args.soak_posts_per_day,
        args.soak_shares_per_minute,
        args.soak_restart_secs,
        clock.speed,
        args.soak_store_cache_mib.map_or(String::new(), |mib| format!("; page cache {mib} MiB")),
        args.soak_max_retention_days
            .map_or(String::new(), |days| format!("; retention {days} days")),
    ));
    while start.elapsed() < length {
        let now = start.elapsed();
        mark_midnights(&mut csv, clock, &mut day, start_ms)?;
        if now >= next_sample {
            for sample in sample_all(federation, now) {
                csv.sample(&sample)?;
                samples.push(sample);
            }
            next_sample += sample_every;
        }
        if now >= next_observe {
            for member in 0..members {
                let posts = load.posts(member, clock.now_ms(), &mut rng, context);
                observe(federation, member, &posts)?;
            }
            next_observe += OBSERVE_PERIOD;
        }
        if now >= next_share {
            let shared_ms = clock.now_ms();
            let shared = share_round(context, federation, &load, round, &mut rng)?;
            watches.extend(shared.into_iter().map(|watch| (shared_ms, watch)));
            round += 1;
            next_share += SHARE_PERIOD;
        }
        if now >= next_restart {
            let member = restarts % members;
            let clean = federation.stop(member);
            federation.start(member)?;
            csv.restart(start.elapsed(), member, clean)?;
            wait_ready(context, federation, &format!("M{member} ready again after its restart"))?;
            restarts += 1;
            next_restart += restart_every;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let shared = watches.len();
    let watches = live_watches(&watches, &args, clock, context.give_up)?;
    let (_, took) =
        federation.settle(context, "every member to converge after the load", || {
            federation.all_alerted(&watches)
        })?;
    // The days begun while the federation settled, so that the last sample reads in its own.
    mark_midnights(&mut csv, clock, &mut day, start_ms)?;
    for sample in sample_all(federation, start.elapsed()) {
        csv.sample(&sample)?;
        samples.push(sample);
    }
    context.say(format!(
        "{} shared accounts watched and alerted ({shared} watched in all, the others' records \
         expiring before the check could end), {restarts} restarts; converged {:.1} s after the \
         load",
        watches.len(),
        took.as_secs_f64()
    ));
    context.say(growth(&samples, members, length.as_secs_f64()));
    context.say(format!("samples in {} (plot: scripts/plot_soak.py)", args.soak_csv.display()));
    Ok(())
}

/// The watches whose records are still live when the last check may end: a record shared at
/// `shared_ms` lives its expiry days of the members' clocks, and the check waits up to
/// `give_up` of system time (and [`CHECK_MARGIN`]). Refuses a run that would leave none to
/// check (a load slowed past its rounds' pace; `run` refuses the runs that must).
fn live_watches(
    watches: &[(u64, (usize, u64, String))],
    args: &SoakArgs,
    clock: RunClock,
    give_up: Duration,
) -> Result<Vec<(usize, u64, String)>, Failure> {
    let days = args.soak_record_expiry_days.unwrap_or(RECORD_EXPIRY_DAYS);
    let wait_ms = u64::try_from((give_up + CHECK_MARGIN).as_millis()).unwrap_or(u64::MAX);
    let check_ends = clock.at(unix_now_ms().saturating_add(wait_ms));
    let live: Vec<_> = watches
        .iter()
        .filter(|(shared_ms, _)| shared_ms.saturating_add(days * DAY_MS) > check_ends)
        .map(|(_, watch)| watch.clone())
        .collect();
    if live.is_empty() && !watches.is_empty() {
        return Err(Failure::setup(format!(
            "soak: every record shared expires before the last check could end ({days} days of \
             the members' clocks): a longer --soak-record-expiry-days, or a lower speed"
        )));
    }
    Ok(live)
}

/// Checks that every member runs on the scaled clock (its log says so): a binary built without
/// the `test-support` feature ignores the variable, and its members would refuse the posts.
fn check_scaled(federation: &Federation) -> Result<(), Failure> {
    for (index, member) in federation.members.iter().enumerate() {
        if !federation.log(index).contains("scaled clock") {
            return Err(Failure::setup(format!(
                "{} does not run on the scaled clock: --soak-clock-speed needs a crossmatch \
                 built with `--features test-support`",
                member.id
            )));
        }
    }
    Ok(())
}

/// Waits until every node answers ready with all its peers connected.
fn wait_ready(context: &Context, federation: &Federation, what: &str) -> Result<(), Failure> {
    let members = federation.members.len();
    context.wait_for(what, || {
        Ok(federation.statuses().iter().all(|status| {
            status.as_ref().is_some_and(|s| s["ready"] == true && s["peers"] == members - 1)
        }))
    })?;
    Ok(())
}

/// The load's sizes, from the options.
#[derive(Debug)]
struct Load {
    /// Posts each member observes per [`OBSERVE_PERIOD`].
    posts_per_member: u64,
    /// Accounts shared per [`SHARE_PERIOD`].
    shares_per_round: usize,
    /// The next post id.
    next_post: u64,
}

impl Load {
    fn new(args: &SoakArgs) -> Self {
        let period = OBSERVE_PERIOD.as_secs();
        let per_member = args.soak_posts_per_day * period / 86_400 / args.soak_members as u64;
        let per_round = args.soak_shares_per_minute * SHARE_PERIOD.as_secs() / 60;
        Self {
            posts_per_member: per_member.max(1),
            shares_per_round: (per_round as usize).max(1),
            next_post: 0,
        }
    }

    /// One file of posts for `member`: authors drawn from its accounts, half of the posts
    /// reposts of another of them, some with a mention; stamped `at` (the members' now).
    fn posts(&mut self, member: usize, at: u64, rng: &mut Rng, context: &Context) -> String {
        let mut text = String::new();
        for _ in 0..self.posts_per_member {
            let post = self.next_post;
            self.next_post += 1;
            let author = account(context.seed, member, rng.below(ACCOUNTS as usize) as u64);
            let _ = write!(
                text,
                r#"{{"platform":"x","account":"{author}","at":{at},"post_id":"{post}""#
            );
            if rng.below(2) == 0 {
                let original = account(context.seed, member, rng.below(ACCOUNTS as usize) as u64);
                let _ = write!(text, r#","repost_of":"{original}""#);
            }
            if rng.below(4) == 0 {
                let mention = account(context.seed, member, rng.below(ACCOUNTS as usize) as u64);
                let _ = write!(text, r#","mentions":["{mention}"]"#);
            }
            text.push_str("}\n");
        }
        text
    }
}

/// An observed account's handle: at most 15 characters, as x handles are.
fn account(seed: u64, member: usize, number: u64) -> String {
    format!("@o{:x}m{member}_{number}", seed % 0x100)
}

/// Sends `posts` to `member` through `crossmatch observe`.
fn observe(federation: &Federation, member: usize, posts: &str) -> Result<(), Failure> {
    let file = federation.data_dir(member).with_file_name("posts.jsonl");
    std::fs::write(&file, posts).map_err(|error| Failure::setup(format!("posts: {error}")))?;
    federation.cli_within(member, &["observe", path(&file)], "", "60")?;
    Ok(())
}

/// One round of shares: a member in turn shares new accounts, and another member drawn from
/// the seed watches some of them. The watches: (watcher, record, publisher's id).
fn share_round(
    context: &Context,
    federation: &Federation,
    load: &Load,
    round: usize,
    rng: &mut Rng,
) -> Result<Vec<(usize, u64, String)>, Failure> {
    let members = federation.members.len();
    let publisher = round % members;
    let handles: Vec<String> = (0..load.shares_per_round)
        .map(|k| format!("s{:x}_{round}_{k}", context.seed % 0x100))
        .collect();
    let days = context.soak.soak_record_expiry_days;
    federation.add_expiring(publisher, &handles, true, days)?;
    let watcher = (publisher + 1 + rng.below(members - 1)) % members;
    let watched = &handles[..WATCHED_PER_ROUND.min(handles.len())];
    let ids = federation.add_expiring(watcher, watched, false, days)?;
    let id = federation.members[publisher].id.clone();
    Ok(ids.into_iter().map(|record| (watcher, record, id.clone())).collect())
}

/// A sample of every running member.
fn sample_all(federation: &Federation, at: Duration) -> Vec<Sample> {
    (0..federation.members.len())
        .filter_map(|member| {
            let rss_kib = rss_kib(federation.pid(member)?)?;
            let disk_kib = disk_kib(&federation.data_dir(member))?;
            Some(Sample { seconds: at.as_secs_f64(), member, rss_kib, disk_kib })
        })
        .collect()
}

/// A process's resident memory, KiB (`VmRSS`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The blocks a directory takes on disk, KiB (`du -sk`).
fn disk_kib(dir: &Path) -> Option<u64> {
    let output = crate::lab::bounded("du").arg("-sk").arg(dir).output().ok()?;
    String::from_utf8_lossy(&output.stdout).split_whitespace().next()?.parse().ok()
}

/// Per member, the largest memory and disk of the run's second quarter against its last
/// quarter's: what would keep growing shows as a ratio well above 1.
fn growth(samples: &[Sample], members: usize, length: f64) -> String {
    let mut text = String::from("growth from the second quarter to the last (max RSS, disk):");
    let quarter = |sample: &Sample, from: f64, to: f64| {
        sample.seconds >= length * from && sample.seconds <= length * to
    };
    for member in 0..members {
        let of = |from: f64, to: f64, pick: fn(&Sample) -> u64| {
            let chosen = samples.iter().filter(|s| s.member == member && quarter(s, from, to));
            chosen.map(pick).max().unwrap_or(0)
        };
        let (rss_before, rss_after) = (of(0.25, 0.5, |s| s.rss_kib), of(0.75, 1.01, |s| s.rss_kib));
        let (disk_before, disk_after) =
            (of(0.25, 0.5, |s| s.disk_kib), of(0.75, 1.01, |s| s.disk_kib));
        let _ = write!(
            text,
            " M{member} {} → {} MiB ({}), {} → {} MiB ({});",
            rss_before / 1024,
            rss_after / 1024,
            ratio(rss_after, rss_before),
            disk_before / 1024,
            disk_after / 1024,
            ratio(disk_after, disk_before)
        );
    }
    text
}

fn ratio(after: u64, before: u64) -> String {
    if before == 0 { "n/a".to_owned() } else { format!("×{:.2}", after as f64 / before as f64) }
}

/// The samples' CSV file: `seconds,member,event,rss_kib,disk_kib`, an event being `sample`,
/// `restart`, `restart-killed` (the member did not stop by itself in time) or `midnight` (the
/// members' clocks began a day).
struct Csv(std::fs::File);

impl Csv {
    fn create(path: &Path) -> Result<Self, Failure> {
        let mut file = std::fs::File::create(path)
            .map_err(|error| Failure::setup(format!("{}: {error}", path.display())))?;
        use std::io::Write as _;
        writeln!(file, "seconds,member,event,rss_kib,disk_kib")
            .map_err(|error| Failure::setup(format!("{}: {error}", path.display())))?;
        Ok(Self(file))
    }

    fn line(&mut self, line: String) -> Result<(), Failure> {
        use std::io::Write as _;
        writeln!(self.0, "{line}").map_err(|error| Failure::setup(format!("the CSV: {error}")))
    }

    fn sample(&mut self, sample: &Sample) -> Result<(), Failure> {
        self.line(format!(
            "{:.1},{},sample,{},{}",
            sample.seconds, sample.member, sample.rss_kib, sample.disk_kib
        ))
    }

    /// The members' clocks passed midnight (the hunt's retention drops whole days).
    fn midnight(&mut self, at: Duration) -> Result<(), Failure> {
        self.line(format!("{:.1},,midnight,,", at.as_secs_f64()))
    }

    fn restart(&mut self, at: Duration, member: usize, clean: bool) -> Result<(), Failure> {
        let event = if clean { "restart" } else { "restart-killed" };
        self.line(format!("{:.1},{member},{event},,", at.as_secs_f64()))
    }
}

/// A path as an argument (the campaign's paths are its own, always UTF-8).
fn path(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_level_key_goes_before_the_first_table() {
        let config = "data_dir = \"d\"\nlisten = [\"a\"]\n\n[api]\nlisten = \"b\"\n";
        let tuned = with_top_level(config, "store_cache_mib = 16").unwrap();
        assert_eq!(
            tuned,
            "data_dir = \"d\"\nlisten = [\"a\"]\n\nstore_cache_mib = 16\n\n[api]\nlisten = \"b\"\n"
        );
        assert_eq!(with_top_level("data_dir = \"d\"\n", "x = 1"), None, "no table");
    }
    use crossmatch_node::clock::ScaledClock;

    fn soak_args(line: &[&str]) -> SoakArgs {
        #[derive(clap::Parser)]
        struct Line {
            #[command(flatten)]
            soak: SoakArgs,
        }
        let line = std::iter::once("soak").chain(line.iter().copied());
        <Line as clap::Parser>::try_parse_from(line).unwrap().soak
    }

    #[test]
    fn the_retention_goes_into_the_configs_and_may_not_fall_below_the_records_expiry() {
        let plain = soak_args(&[]);
        assert!(top_level_lines(&plain).is_empty());
        assert_eq!(retention_refusal(&plain), None);
        let both = soak_args(&["--soak-store-cache-mib", "64", "--soak-max-retention-days", "30"]);
        assert_eq!(top_level_lines(&both), ["store_cache_mib = 64", "max_retention_days = 30"]);
        assert_eq!(retention_refusal(&both), None, "the records' default expiry is 30 days");
        let short = soak_args(&["--soak-max-retention-days", "29"]);
        assert!(retention_refusal(&short).unwrap().contains("(30 days)"));
        let expiring =
            soak_args(&["--soak-record-expiry-days", "2", "--soak-max-retention-days", "3"]);
        assert_eq!(retention_refusal(&expiring), None);
        let below =
            soak_args(&["--soak-record-expiry-days", "3", "--soak-max-retention-days", "2"]);
        assert!(retention_refusal(&below).unwrap().contains("(3 days)"));
    }

    #[test]
    fn a_run_whose_last_records_expire_before_the_check_is_refused() {
        let give_up = Duration::from_secs(120);
        let last = last_check_after_round(give_up);
        assert_eq!(last, Duration::from_secs(131));
        // ×144 for 131 s is about 5.2 hours of the members' clocks: a day outlives it.
        assert!(outlives(1, 144, last));
        // ×1,440 for 131 s is about 2.2 days: one or two days do not, three do.
        assert!(!outlives(1, 1440, last));
        assert!(!outlives(2, 1440, last));
        assert!(outlives(3, 1440, last));
        // Exactly as long as the wait is not outliving it.
        assert!(!outlives(1, 1, Duration::from_millis(DAY_MS)));
        assert!(outlives(1, 1, Duration::from_millis(DAY_MS - 1)));
    }

    #[test]
    fn the_soak_reads_the_time_its_members_read_and_finds_their_midnights() {
        let (anchor_ms, speed) = (1_764_590_000_123, 144);
        let clock = RunClock { anchor_ms, speed };
        let node = ScaledClock::new(anchor_ms, speed);
        for real_ms in [0, anchor_ms, anchor_ms + 1, anchor_ms + 3_600_000, u64::MAX / 2] {
            assert_eq!(clock.at(real_ms), node.at(real_ms), "{real_ms}");
        }
        let first = clock.at(anchor_ms) / DAY_MS + 1;
        for day in first..first + 5 {
            let midnight = clock.midnight_ms(day);
            assert_eq!(clock.at(midnight) / DAY_MS, day, "the day has begun at {midnight}");
            assert_eq!(clock.at(midnight - 1) / DAY_MS, day - 1, "and not a ms before");
        }
    }
}
