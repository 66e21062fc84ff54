//! The hunt at the issue's scale: a seeded corpus (50,000 accounts, 100,000 posts a day for 30
//! days; planted communities of 20 to 2,000 accounts, power-law activity, reposts concentrated
//! on a few amplifiers per community, bots that repost thousands of times, mass-mention posts,
//! follow snapshots), then the parse + canonicalise + count rate (one core, in memory), the
//! full recompute over the 30-day window (graph, Leiden, PageRank, ranking) with one run and
//! with five, resident memory, and the NMI between the partitions before and after one more
//! day. Times are given as the thread's CPU time beside the wall clock, since the machine may
//! be shared.
//!
//! `cargo bench -p crossmatch-node --bench hunt [-- --days N --accounts N --posts-per-day N
//! --seed N --repeat N --edges FILE]`. `--repeat` repeats the full recompute for a spread
//! (default 3). With `--edges`, it writes the undirected graph (`u v weight`, one edge per
//! line, after a first line holding the node count) and, beside it with `.membership` appended,
//! the reference partition, for `scripts/compare_leidenalg.py`. With `--lfr [--nodes N --graphs
//! N --resolution G]`, it measures instead the NMI against planted communities on LFR graphs.
//! With `--successors [--days N --removals N --accounts N --posts-per-day N --seed N]`, it plants
//! removals, successors and decoys in the corpus and measures the precision and recall of the
//! successor search. With `--churn [--days N --new-per-day N --lifetime N --retention N]`, it
//! feeds a stream of accounts that appear, post for `--lifetime` days and fall silent, purging
//! each day with the observation retention at `--retention` days (none is a record), and
//! reports the ledger's account slots, free slots, resident memory and the purge's time: the
//! slots level where the accounts held do, not where the accounts ever seen do.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use crossmatch_node::hunt::analyze::{LineCounts, report};
use crossmatch_node::hunt::communities::{CommunitySettings, detect, nmi};
use crossmatch_node::hunt::graph::{FOLLOW_WEIGHT, WindowGraph};
use crossmatch_node::hunt::leiden::{LeidenGraph, Quality, modularity};
use crossmatch_node::hunt::pagerank::{DAMPING, pagerank};
use crossmatch_node::hunt::{AnalyzeSettings, Day, Ledger, LedgerLimits, Window, parse_line};

const DAY_MS: u64 = 86_400_000;
const START_MS: u64 = 1_433_116_800_000; // 2015-06-01T00:00:00Z

/// SplitMix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Corpus {
    rng: Rng,
    accounts: usize,
    /// Each account's community (the last "community" is the unaffiliated).
    community: Vec<usize>,
    members: Vec<Vec<usize>>,
    /// A few amplifiers per community, which most reposts go to.
    amplifiers: Vec<Vec<usize>>,
    /// Cumulative activity weights, for drawing authors.
    cumulative: Vec<f64>,
    bots: Vec<usize>,
    press: Vec<usize>,
    next_post: u64,
}

impl Corpus {
    fn new(accounts: usize, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let mut community = vec![0; accounts];
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut start = 0;
        // 90 % of accounts in planted communities of 20..2000 (power-law sizes), 10 % outside.
        let planted = accounts * 9 / 10;
        while start < planted {
            let size = ((20.0 * 100f64.powf(rng.unit().powi(3))) as usize).min(planted - start);
            members.push((start..start + size).collect());
            community[start..start + size].fill(members.len() - 1);
            start += size;
        }
        members.push((planted..accounts).collect());
        community[planted..accounts].fill(members.len() - 1);
        let amplifiers = members
            .iter()
            .map(|m| {
                (0..(m.len() / 20).max(1)).map(|i| m[i * m.len() / (m.len() / 20).max(1)]).collect()
            })
            .collect();
        // Pareto activity (alpha 1.2), capped.
        let mut total = 0.0;
        let cumulative = (0..accounts)
            .map(|_| {
                total += (1.0 - rng.unit()).powf(-1.0 / 1.2).min(500.0);
                total
            })
            .collect();
        let bots = (0..10).map(|_| rng.below(planted)).collect();
        let press = (0..5).map(|i| planted + i).collect();
        Self {
            rng,
            accounts,
            community,
            members,
            amplifiers,
            cumulative,
            bots,
            press,
            next_post: 0,
        }
    }

    fn author(&mut self) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let x = self.rng.unit() * total;
        self.cumulative.partition_point(|&c| c < x).min(self.accounts - 1)
    }

    fn amplified(&mut self, author: usize) -> usize {
        let own = self.community[author];
        if self.rng.unit() < 0.85 {
            if self.rng.unit() < 0.7 {
                let list = &self.amplifiers[own];
                return list[self.rng.below(list.len())];
            }
            let list = &self.members[own];
            return list[self.rng.below(list.len())];
        }
        self.rng.below(self.accounts)
    }

    fn handle(&mut self, account: usize) -> String {
        if self.rng.unit() < 0.1 {
            format!("https://x.com/u{account}")
        } else {
            format!("@u{account}")
        }
    }

    fn post(&mut self, day: u64, author: usize, repost_of: Option<usize>) -> String {
        self.next_post += 1;
        let at = START_MS + day * DAY_MS + self.rng.below(DAY_MS as usize) as u64;
        let account = self.handle(author);
        let mut line = format!(
            r#"{{"platform":"x","account":"{account}","account_id":"{author}","at":{at},"post_id":"{}","lang":"ar""#,
            self.next_post
        );
        let roll = self.rng.unit();
        if let Some(original) = repost_of {
            line += &format!(r#","repost_of":"@u{original}""#);
        } else if roll < 0.5 {
            let original = self.amplified(author);
            line += &format!(r#","repost_of":"@u{original}""#);
        } else if roll < 0.65 {
            let replied = self.amplified(author);
            line += &format!(r#","reply_to":"@u{replied}""#);
        } else if roll < 0.655 {
            // A mass-mention post: 30 to 50 accounts, the press accounts among them.
            let k = 30 + self.rng.below(21);
            let mut mentions: Vec<String> =
                (0..k).map(|_| format!("\"@u{}\"", self.rng.below(self.accounts))).collect();
            mentions.extend(self.press.iter().map(|p| format!("\"@u{p}\"")));
            line += &format!(r#","mentions":[{}]"#, mentions.join(","));
        } else if roll < 0.75 {
            let mentioned = self.amplified(author);
            line += &format!(
                r#","mentions":["@u{mentioned}"],"urls":["https://news.example/a/{}"]"#,
                self.next_post
            );
        }
        line.push('}');
        line
    }

    fn follows(&mut self, day: u64, author: usize) -> String {
        let at = START_MS + day * DAY_MS + self.rng.below(DAY_MS as usize) as u64;
        let count = 50 + self.rng.below(250);
        let follows: Vec<String> =
            (0..count).map(|_| format!("\"@u{}\"", self.amplified(author))).collect();
        format!(
            r#"{{"platform":"x","account":"@u{author}","at":{at},"follows":[{}]}}"#,
            follows.join(",")
        )
    }

    fn day(&mut self, day: u64, posts: usize) -> Vec<String> {
        let mut lines = Vec::with_capacity(posts + 3_000);
        // Bots: 300 reposts a day each, of their community's amplifiers.
        let bots = self.bots.clone();
        for bot in bots {
            for _ in 0..300 {
                let original = self.amplified(bot);
                lines.push(self.post(day, bot, Some(original)));
            }
        }
        while lines.len() < posts {
            let author = self.author();
            lines.push(self.post(day, author, None));
        }
        // Follow snapshots: each account about once a month, for 1 in 10 accounts.
        for _ in 0..self.accounts / 300 {
            let author = self.rng.below(self.accounts);
            lines.push(self.follows(day, author));
        }
        lines
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn number(name: &str, default: u64) -> u64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_mib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib / 1024)
}

/// The calling thread's time on a CPU, in seconds (`/proc/thread-self/schedstat`): unlike the
/// wall clock, it does not grow when other processes share the cores.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Wall-clock and CPU time of one step.
#[derive(Clone, Copy)]
struct Stopwatch {
    wall: Instant,
    cpu: f64,
}

impl Stopwatch {
    fn start() -> Self {
        Self { wall: Instant::now(), cpu: cpu_secs() }
    }
    /// (wall seconds, CPU seconds) since the start.
    fn read(&self) -> (f64, f64) {
        (self.wall.elapsed().as_secs_f64(), cpu_secs() - self.cpu)
    }
}

fn show((wall, cpu): (f64, f64)) -> String {
    format!("{wall:.3} s wall, {cpu:.3} s CPU")
}

fn mean_sd(values: &[f64]) -> String {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{mean:.3} ± {:.3} (min {min:.3}, max {max:.3}, n {})", var.sqrt(), values.len())
}

/// Feeds one day of generated lines to the ledger; returns (lines, bytes, refused, cpu, wall).
fn ingest_day(
    ledger: &mut Ledger,
    lines: &[String],
    now_ms: u64,
) -> (usize, usize, usize, f64, f64) {
    let watch = Stopwatch::start();
    let mut refused = 0;
    for (n, line) in lines.iter().enumerate() {
        match parse_line(line, n as u64 + 1, now_ms, 0) {
            Ok(parsed) => {
                ledger.ingest(&parsed.observation);
            }
            Err(_) => refused += 1,
        }
    }
    let (wall, cpu) = watch.read();
    (lines.len(), lines.iter().map(String::len).sum(), refused, cpu, wall)
}

/// Accounts that appear, post daily for a lifetime, and fall silent; a purge each day.
fn churn() {
    let days = number("--days", 90);
    let new_per_day = number("--new-per-day", 10_000);
    let lifetime = number("--lifetime", 7).max(1);
    let retention = number("--retention", 14).max(1);
    println!(
        "churn: {new_per_day} new accounts a day, each posting daily for {lifetime} days and \
         mentioning another of its day, {days} days, unrecorded retention {retention} days"
    );
    let mut ledger = Ledger::new(LedgerLimits::default());
    let never = |_: &[&crossmatch_protocol::Canonical]| false;
    let mut purge_secs = Vec::new();
    for day in 0..days {
        let at = START_MS + day * DAY_MS;
        let now_ms = at + DAY_MS - 1;
        for born in day.saturating_sub(lifetime - 1)..=day {
            for i in 0..new_per_day {
                let mention = format!("@a{born}x{}", (i + 1) % new_per_day);
                let post = format!(r#""post_id":"{day}-{born}-{i}","mentions":["{mention}"]"#);
                let line =
                    format!(r#"{{"platform":"x","account":"@a{born}x{i}","at":{at},{post}}}"#);
                if let Ok(parsed) = parse_line(&line, 1, now_ms, 0) {
                    ledger.ingest(&parsed.observation);
                }
            }
        }
        let watch = Stopwatch::start();
        let first_kept = Day::of_ms(now_ms).0 + 1;
        ledger.purge_before_rows(Day(first_kept.saturating_sub(retention as u32 * 2)));
        ledger.purge_unrecorded(Day(first_kept.saturating_sub(retention as u32)), &never);
        let (_, cpu) = watch.read();
        purge_secs.push(cpu);
        if (day + 1) % 10 == 0 || day + 1 == days {
            println!(
                "day {:>3}: {:>7} accounts seen, {:>7} slots ({:>6} free), resident {} MiB, \
                 purge {:.3} s CPU",
                day + 1,
                (day + 1) * new_per_day,
                ledger.account_count(),
                ledger.free_count(),
                rss_mib("VmRSS:").unwrap_or(0),
                cpu
            );
        }
    }
    println!("purge, s of CPU per day: {}", mean_sd(&purge_secs));
}

fn main() {
    if std::env::args().any(|a| a == "--lfr") {
        lfr::main();
        return;
    }
    if std::env::args().any(|a| a == "--successors") {
        succession::main();
        return;
    }
    if std::env::args().any(|a| a == "--churn") {
        churn();
        return;
    }
    let days = number("--days", 30);
    let accounts = number("--accounts", 50_000) as usize;
    let per_day = number("--posts-per-day", 100_000) as usize;
    let seed = number("--seed", 42);
    let repeats = number("--repeat", 3).max(1) as usize;
    let mut corpus = Corpus::new(accounts, seed);
    println!(
        "corpus: {accounts} accounts in {} planted communities (+ unaffiliated), {per_day} posts a day, {days} days, seed {seed}",
        corpus.members.len() - 1
    );
    let now_ms = START_MS + (days + 2) * DAY_MS;
    let mut ledger = Ledger::new(LedgerLimits::default());
    let (mut lines_total, mut bytes_total, mut refused) = (0usize, 0usize, 0usize);
    let (mut ingest_cpu, mut ingest_wall) = (0.0, 0.0);
    let mut day_rates = Vec::new();
    for day in 0..days {
        let lines = corpus.day(day, per_day);
        let (count, bytes, bad, cpu, wall) = ingest_day(&mut ledger, &lines, now_ms);
        lines_total += count;
        bytes_total += bytes;
        refused += bad;
        ingest_cpu += cpu;
        ingest_wall += wall;
        day_rates.push(count as f64 / cpu.max(1e-9) / 1000.0);
    }
    println!(
        "parse + canonicalise + count: {lines_total} lines ({} MiB, {refused} refused, {} posts kept) in {ingest_wall:.2} s wall, {ingest_cpu:.2} s CPU = {:.0} lines/s of CPU ({:.0} lines/s of wall) on one core; per day, thousand lines/s of CPU: {}",
        bytes_total >> 20,
        ledger.post_count(),
        lines_total as f64 / ingest_cpu,
        lines_total as f64 / ingest_wall,
        mean_sd(&day_rates)
    );
    println!("resident memory after ingest: {} MiB", rss_mib("VmRSS:").unwrap_or(0));
    let last = ledger.last_day().unwrap_or(Day(0));
    let window_days = u32::try_from(days).unwrap_or(30);
    let window = Window::ending(last, window_days);
    let watch = Stopwatch::start();
    let graph = WindowGraph::from_ledger(&ledger, window, FOLLOW_WEIGHT);
    println!(
        "graph: {} nodes, {} directed edges, {} undirected entries in {}; resident {} MiB",
        graph.nodes(),
        graph.directed.entries(),
        graph.undirected.entries(),
        show(watch.read()),
        rss_mib("VmRSS:").unwrap_or(0)
    );
    let watch = Stopwatch::start();
    let prepared = LeidenGraph::new(&graph.undirected).unwrap();
    println!("leiden graph prepared once: {}", show(watch.read()));
    let watch = Stopwatch::start();
    let single = prepared.run(Quality::default(), 1).unwrap();
    println!(
        "leiden, one run: {}, {} communities, modularity {:.4}",
        show(watch.read()),
        single.communities,
        modularity(&graph.undirected, &single.membership, 1.0)
    );
    let watch = Stopwatch::start();
    let detected = detect(&graph.undirected, CommunitySettings::default()).unwrap();
    let confident = detected.confidence.iter().filter(|&&c| c >= 1.0).count();
    println!(
        "communities, 5 runs + confidence: {}, modularity {:.4}, {confident} of {} accounts at confidence 1",
        show(watch.read()),
        modularity(&graph.undirected, &detected.membership, 1.0),
        graph.nodes()
    );
    let watch = Stopwatch::start();
    let posted: Vec<bool> = (0..graph.nodes()).map(|n| graph.posted(n)).collect();
    let _ = pagerank(&graph.directed, &posted, DAMPING);
    println!("pagerank: {}", show(watch.read()));
    drop(prepared);
    let settings = AnalyzeSettings { window_days, ..AnalyzeSettings::at(now_ms) };
    let one_run = AnalyzeSettings {
        communities: CommunitySettings { runs: 1, ..settings.communities },
        ..settings
    };
    let mut full = None;
    for (name, settings) in [("1 Leiden run", &one_run), ("5 Leiden runs", &settings)] {
        let (mut walls, mut cpus) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            let watch = Stopwatch::start();
            let report = report(&ledger, settings, LineCounts::default(), &[], &mut 1).unwrap();
            let (wall, cpu) = watch.read();
            walls.push(wall);
            cpus.push(cpu);
            full = Some(report);
        }
        println!(
            "full recompute (graph, {name}, PageRank, ranking): wall {} s, CPU {} s",
            mean_sd(&walls),
            mean_sd(&cpus)
        );
    }
    let full = full.unwrap();
    println!("{} accounts, {} communities", full.accounts.len(), full.communities.len());
    // Planted communities of the accounts in the graph (by their numeric handle).
    let planted: Vec<u32> = full_planted(&graph, &ledger, &corpus);
    println!("NMI against the planted communities: {:.3}", nmi(&planted, &detected.membership));
    if let Some(path) = arg("--edges") {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(out, "{}", graph.nodes()).unwrap();
        for node in 0..graph.nodes() {
            let (targets, weights) = graph.undirected.row(node);
            for (&target, &weight) in targets.iter().zip(weights) {
                if target as usize > node {
                    writeln!(out, "{node} {target} {weight}").unwrap();
                }
            }
        }
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(format!("{path}.membership")).unwrap());
        for community in &detected.membership {
            writeln!(out, "{community}").unwrap();
        }
        println!("wrote {path} and {path}.membership");
    }
    drop(graph);
    if let Some(mib) = rss_mib("VmHWM:") {
        println!(
            "peak resident memory before the extra day: {mib} MiB (corpus generation included)"
        );
    }
    // One more day: the partition before and after, on the accounts in both graphs.
    let previous = full.known();
    let lines = corpus.day(days, per_day);
    ingest_day(&mut ledger, &lines, now_ms);
    drop(lines);
    let after =
        report(&ledger, &settings, LineCounts::default(), &previous, &mut 1_000_000).unwrap();
    let before_of: HashMap<&str, u64> =
        full.accounts.iter().map(|a| (a.account.as_str(), a.community)).collect();
    let (mut left, mut right) = (Vec::new(), Vec::new());
    let mut same_id = 0usize;
    for account in &after.accounts {
        if let Some(&before) = before_of.get(account.account.as_str()) {
            left.push(u32::try_from(before).unwrap_or(u32::MAX));
            right.push(u32::try_from(account.community).unwrap_or(u32::MAX));
            same_id += usize::from(before == account.community);
        }
    }
    println!(
        "one more day (window moved by a day): NMI before/after {:.3} over {} accounts in both; {:.1} % kept their community id",
        nmi(&left, &right),
        left.len(),
        100.0 * same_id as f64 / left.len().max(1) as f64
    );
    if let Some(mib) = rss_mib("VmHWM:") {
        println!("peak resident memory: {mib} MiB (corpus generation included)");
    }
}

fn full_planted(graph: &WindowGraph, ledger: &Ledger, corpus: &Corpus) -> Vec<u32> {
    graph
        .accounts
        .iter()
        .map(|&account| {
            let name = ledger.display(account).map(|c| c.value().to_owned()).unwrap_or_default();
            let index: usize = name.trim_start_matches('u').parse().unwrap_or(0);
            u32::try_from(corpus.community.get(index).copied().unwrap_or(0)).unwrap_or(0)
        })
        .collect()
}

/// `--lfr`: the quality of the communities on LFR benchmark graphs (Lancichinetti, Fortunato
/// and Radicchi, 2008; `leiden-rs`'s generator) with small communities, at mixing 0.1 to 0.6:
/// the NMI of the partition (5 seeded runs, the reference kept) against the planted one.
mod lfr {
    use super::{mean_sd, number};
    use crossmatch_node::hunt::communities::{CommunitySettings, detect, nmi};
    use crossmatch_node::hunt::graph::Csr;
    use crossmatch_node::hunt::leiden::Quality;
    use leiden_rs::{LfrConfig, generate_lfr_graph};

    pub fn main() {
        let nodes = number("--nodes", 10_000) as usize;
        let graphs = number("--graphs", 3);
        let (min_community, max_community) =
            (number("--min-community", 20) as usize, number("--max-community", 50) as usize);
        // The generator needs every node's intra-community degree below the smallest
        // community, so small communities go with small degrees.
        let (average_degree, max_degree) =
            (number("--average-degree", 10) as f64, number("--max-degree", 20) as usize);
        let resolution = super::arg("--resolution").and_then(|r| r.parse().ok()).unwrap_or(1.0);
        let settings =
            CommunitySettings { quality: Quality::Modularity { resolution }, ..Default::default() };
        println!("modularity at resolution {resolution}, 5 seeded runs");
        println!(
            "LFR: {nodes} nodes, degree power law τ1 = 2 (average {average_degree}, max {max_degree}), community sizes τ2 = 1.5 in {min_community}..={max_community}, {graphs} graphs per mixing"
        );
        for tenth in 1..=6 {
            let mu = f64::from(tenth) / 10.0;
            let mut scores = Vec::new();
            let mut found = Vec::new();
            for graph_seed in 1..=graphs {
                let generated = generate_lfr_graph(LfrConfig {
                    n: nodes,
                    tau1: 2.0,
                    tau2: 1.5,
                    mu,
                    average_degree: Some(average_degree),
                    min_degree: None,
                    max_degree: Some(max_degree),
                    min_community: Some(min_community),
                    max_community: Some(max_community),
                    seed: Some(graph_seed),
                })
                .unwrap();
                let mut triples = Vec::with_capacity(generated.edges.len() * 2);
                for &(u, v, w) in &generated.edges {
                    if u != v {
                        triples.push((u as u32, v as u32, w));
                        triples.push((v as u32, u as u32, w));
                    }
                }
                let graph = Csr::from_triples(generated.node_count, triples);
                let detected = detect(&graph, settings).unwrap();
                let planted: Vec<u32> = generated.ground_truth.iter().map(|&c| c as u32).collect();
                scores.push(nmi(&planted, &detected.membership));
                let communities = detected.membership.iter().max().map_or(0, |&c| c + 1);
                found.push(format!("{communities}/{}", generated.community_sizes.len()));
            }
            println!(
                "mixing {mu:.1}: NMI {} (communities found/planted: {})",
                mean_sd(&scores),
                found.join(", ")
            );
        }
    }
}

/// `--successors`: planted removals at known times, each with a planted successor (a new
/// account that takes over most of the old circle: 70 % of the references to the old account
/// go to it from the removal on; half of them with a similar handle, half announced by circle
/// members' mentions) and two decoys (new accounts of the same community, reposted by its
/// members, that are not successors). The old accounts are half their community's amplifiers
/// (large circles), half ordinary active members. Precision and recall of the search at the
/// default settings, one day after the removals.
mod succession {
    use super::{Corpus, DAY_MS, START_MS, Stopwatch, ingest_day, number, show};
    use crossmatch_node::hunt::successors::{RemovedAccount, SuccessorSettings, SuccessorSnapshot};
    use crossmatch_node::hunt::{Ledger, LedgerLimits};

    struct Planted {
        old: usize,
        successor: String,
        similar: bool,
        announced: bool,
        decoys: [String; 2],
    }

    pub fn main() {
        let days = number("--days", 10).max(9);
        let accounts = number("--accounts", 50_000) as usize;
        let per_day = number("--posts-per-day", 100_000) as usize;
        let seed = number("--seed", 42);
        let removals = number("--removals", 40) as usize;
        let mut corpus = Corpus::new(accounts, seed);
        let removal_day = days - 2;
        let removed_at = START_MS + removal_day * DAY_MS;
        // Old accounts: communities of at least 50, alternately an amplifier and an active member.
        let big: Vec<usize> =
            (0..corpus.members.len() - 1).filter(|&c| corpus.members[c].len() >= 50).collect();
        let mut planted = Vec::new();
        for k in 0..removals {
            let community = big[k % big.len()];
            let old = if k % 2 == 0 {
                corpus.amplifiers[community][k / big.len() % corpus.amplifiers[community].len()]
            } else {
                let members = &corpus.members[community];
                members[corpus.rng.below(members.len())]
            };
            if planted.iter().any(|p: &Planted| p.old == old) {
                continue;
            }
            let similar = k % 4 < 2;
            planted.push(Planted {
                old,
                successor: if similar { format!("u{old}_2") } else { format!("n{k}") },
                similar,
                announced: k % 2 == 0,
                decoys: [format!("d{k}a"), format!("d{k}b")],
            });
        }
        let now_ms = START_MS + (days + 1) * DAY_MS;
        let mut ledger = Ledger::new(LedgerLimits::default());
        let mut next = 0u64;
        for day in 0..days {
            let mut lines = corpus.day(day, per_day);
            if day >= removal_day {
                for planted in &planted {
                    let first = day == removal_day;
                    lines = after_removal(&mut corpus, lines, planted, day, first, &mut next);
                }
            }
            ingest_day(&mut ledger, &lines, now_ms);
        }
        let removed: Vec<RemovedAccount> = planted
            .iter()
            .map(|p| RemovedAccount {
                account: format!("v1|account|x|u{}", p.old),
                removed_at_ms: removed_at,
                reinstated: false,
            })
            .collect();
        let defaults = SuccessorSettings::default();
        let settings = SuccessorSettings { threshold: 0.05, ..defaults };
        let now = START_MS + days * DAY_MS - 1;
        let watch = Stopwatch::start();
        let snapshot = SuccessorSnapshot::take(&ledger, &removed, now, settings);
        let taken = watch.read();
        let all = snapshot.compute();
        let total = watch.read();
        let n = planted.len();
        let count = |f: fn(&Planted) -> bool| planted.iter().filter(|p| f(p)).count();
        println!(
            "successors: {n} planted removals on day {removal_day} of {days} ({accounts} accounts, {per_day} posts a day, seed {seed}), searched one day later"
        );
        for threshold in [0.2, defaults.threshold, 0.4, 0.5] {
            let found: Vec<_> = all.suggestions.iter().filter(|s| s.score >= threshold).collect();
            let (mut true_positives, mut flagged, mut decoys_flagged) = (0usize, 0usize, 0usize);
            let (mut similar_found, mut announced_found, mut plain_found) = (0, 0, 0);
            for planted in &planted {
                let old = format!("v1|account|x|u{}", planted.old);
                let mine: Vec<_> = found.iter().filter(|s| s.old == old).collect();
                flagged += mine.len();
                let successor = format!("v1|account|x|{}", planted.successor);
                let hit = mine.iter().any(|s| s.account == successor);
                true_positives += usize::from(hit);
                decoys_flagged += mine
                    .iter()
                    .filter(|s| {
                        planted.decoys.iter().any(|d| s.account == format!("v1|account|x|{d}"))
                    })
                    .count();
                if hit {
                    match (planted.similar, planted.announced) {
                        (true, _) => similar_found += 1,
                        (false, true) => announced_found += 1,
                        (false, false) => plain_found += 1,
                    }
                }
            }
            println!(
                "threshold {threshold}: flagged {flagged} (successors {true_positives}, decoys {decoys_flagged}, others {}); precision {:.3}, recall {:.3}; recall by kind: similar handle {similar_found}/{}, announced (handle unlike) {announced_found}/{}, neither {plain_found}/{}",
                flagged - true_positives - decoys_flagged,
                true_positives as f64 / flagged.max(1) as f64,
                true_positives as f64 / n.max(1) as f64,
                count(|p| p.similar),
                count(|p| !p.similar && p.announced),
                count(|p| !p.similar && !p.announced)
            );
        }
        println!("search: snapshot {}, total {}", show(taken), show(total));
    }

    /// One day after the removal for one planted account: its own posts dropped, 70 % of the
    /// references to it moved to its successor, the successor and the decoys posting (30 posts a
    /// day each, reposts within the community), the decoys reposted by 10 community members a
    /// day, and on the removal day 4 circle members announcing the successor if it is announced.
    fn after_removal(
        corpus: &mut Corpus,
        lines: Vec<String>,
        planted: &Planted,
        day: u64,
        removal_day: bool,
        next: &mut u64,
    ) -> Vec<String> {
        let own = format!(r#""account_id":"{}","#, planted.old);
        let reference = format!(r#""@u{}""#, planted.old);
        let moved = format!(r#""@{}""#, planted.successor);
        let mut out = Vec::with_capacity(lines.len() + 100);
        let mut circle = Vec::new();
        for line in lines {
            if line.contains(&own) {
                continue;
            }
            if line.contains(&reference) {
                if let Some(author) = author_of(&line) {
                    circle.push(author);
                }
                if corpus.rng.unit() < 0.7 {
                    out.push(line.replace(&reference, &moved));
                    continue;
                }
            }
            out.push(line);
        }
        let at = |corpus: &mut Corpus| {
            START_MS + day * DAY_MS + 1 + corpus.rng.below(DAY_MS as usize - 1) as u64
        };
        let mut post = |corpus: &mut Corpus, account: &str, id: &str, extra: String| {
            *next += 1;
            let at = at(corpus);
            format!(
                r#"{{"platform":"x","account":"@{account}","account_id":"{id}","at":{at},"post_id":"planted{next}"{extra}}}"#
            )
        };
        let community = corpus.community[planted.old];
        for (account, id) in [
            (planted.successor.clone(), format!("s{}", planted.old)),
            (planted.decoys[0].clone(), format!("da{}", planted.old)),
            (planted.decoys[1].clone(), format!("db{}", planted.old)),
        ] {
            for _ in 0..30 {
                let original = corpus.amplified(planted.old);
                let line = post(corpus, &account, &id, format!(r#","repost_of":"@u{original}""#));
                out.push(line);
            }
        }
        for decoy in &planted.decoys {
            for _ in 0..10 {
                let members = &corpus.members[community];
                let fan = members[corpus.rng.below(members.len())];
                let line = post(
                    corpus,
                    &format!("u{fan}"),
                    &fan.to_string(),
                    format!(r#","repost_of":"@{decoy}""#),
                );
                out.push(line);
            }
        }
        if planted.announced && removal_day {
            circle.sort_unstable();
            circle.dedup();
            for &fan in circle.iter().take(4) {
                let line = post(
                    corpus,
                    &format!("u{fan}"),
                    &fan.to_string(),
                    format!(r#","mentions":["@{}"]"#, planted.successor),
                );
                out.push(line);
            }
        }
        out
    }

    /// The numeric id of a generated line's author.
    fn author_of(line: &str) -> Option<usize> {
        let start = line.find(r#""account_id":""#)? + 14;
        let end = line[start..].find('"')? + start;
        line[start..end].parse().ok()
    }
}
