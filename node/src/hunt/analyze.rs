//! Offline analysis (`crossmatch analyze`): observation lines in, a report out, with no node.
//!
//! The window is the `window_days` days (default 7) that end on the day of the latest
//! observation, so the result depends only on the input, never on the clock; `now_ms` only
//! judges times in the future. The report's JSON form is a stable schema, documented in
//! docs/HUNT.md; the table is for people.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};

use serde::Serialize;

use super::communities::{CommunitySettings, KnownCommunity, assign_ids, detect};
use super::graph::{FOLLOW_WEIGHT, WindowGraph};
use super::ledger::{Day, Ingested, Ledger, LedgerLimits, Window};
use super::leiden::{LeidenFailed, modularity};
use super::observation::{LineRule, MAX_LINE_BYTES, Refusal, parse_line};
use super::pagerank::{DAMPING, pagerank};

/// How an analysis runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalyzeSettings {
    /// The structure window in days, which the counts cover too (default 7).
    pub window_days: u32,
    /// Leiden's quality function, runs and seed.
    pub communities: CommunitySettings,
    /// The weight of a follow between posting accounts (default 0.5).
    pub follow_weight: f64,
    /// PageRank's damping (default 0.85).
    pub damping: f64,
    /// The current time, Unix milliseconds: later observations are refused.
    pub now_ms: u64,
    /// How far past `now_ms` a time may be (default 5 minutes, for clock skew).
    pub future_tolerance_ms: u64,
    /// Evidence and language limits.
    pub limits: LedgerLimits,
}

impl AnalyzeSettings {
    /// The defaults, at a given current time.
    pub fn at(now_ms: u64) -> Self {
        Self {
            window_days: 7,
            communities: CommunitySettings::default(),
            follow_weight: FOLLOW_WEIGHT,
            damping: DAMPING,
            now_ms,
            future_tolerance_ms: 5 * 60 * 1000,
            limits: LedgerLimits::default(),
        }
    }
}

/// What reading the input did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LineCounts {
    /// Non-empty lines read.
    pub read: u64,
    /// New posts counted.
    pub posts: u64,
    /// Posts already seen, ignored.
    pub duplicates: u64,
    /// Follow snapshots read (newer ones replace older ones).
    pub follow_snapshots: u64,
    /// Lines refused.
    pub refused: u64,
    /// References dropped from accepted lines.
    pub dropped_references: u64,
}

/// The analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The window analysed, as UTC dates (`YYYY-MM-DD`), or `null` without any post.
    pub window: Option<WindowOut>,
    /// What reading the input did.
    pub lines: LineCounts,
    /// The modularity (resolution 1) of the partition on the undirected graph.
    pub modularity: f64,
    /// Communities, largest first.
    pub communities: Vec<CommunityOut>,
    /// Accounts in the window's graph, by PageRank (unranked last), then posts.
    pub accounts: Vec<AccountOut>,
}

/// A window as dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowOut {
    /// The first day.
    pub first_day: String,
    /// The last day.
    pub last_day: String,
    /// Days in the window.
    pub days: u32,
}

/// A community in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommunityOut {
    /// Its stable id.
    pub id: u64,
    /// Its number of accounts.
    pub size: usize,
    /// Its label, if any.
    pub label: Option<String>,
    /// Its accounts with confidence 1.
    pub core_size: usize,
    /// Ids of earlier communities merged into it.
    pub merged_ids: Vec<u64>,
    /// Ids of earlier communities it holds part of after a split.
    pub offered_ids: Vec<u64>,
}

/// An account in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountOut {
    /// Its canonical form (its newest handle, else its id).
    pub account: String,
    /// Posts it authored in the window: originals, reposts and replies.
    pub posts: u32,
    /// Original posts.
    pub originals: u32,
    /// Reposts.
    pub reposts: u32,
    /// Replies.
    pub replies: u32,
    /// Its community's id.
    pub community: u64,
    /// Its membership confidence, in (0, 1].
    pub confidence: f64,
    /// Its PageRank among posting accounts; `null` when it did not post in the window.
    pub pagerank: Option<f64>,
}

/// Why an analysis failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The input could not be read.
    #[error("reading the observations after line {line}: {source}")]
    Read {
        /// The last line read.
        line: u64,
        /// The cause.
        source: io::Error,
    },
    /// Community detection failed.
    #[error(transparent)]
    Communities(#[from] LeidenFailed),
}

/// Reads observation lines into a ledger, calling `on_refusal` for each refused line.
pub fn ingest_lines<R: BufRead>(
    mut reader: R,
    ledger: &mut Ledger,
    settings: &AnalyzeSettings,
    on_refusal: &mut dyn FnMut(Refusal),
) -> Result<LineCounts, AnalyzeError> {
    let mut counts = LineCounts::default();
    let mut buffer = Vec::new();
    let mut line = 0u64;
    loop {
        buffer.clear();
        let (ended, too_long) = read_bounded_line(&mut reader, &mut buffer)
            .map_err(|source| AnalyzeError::Read { line, source })?;
        if ended {
            break;
        }
        line += 1;
        let text = std::str::from_utf8(&buffer).map(str::trim);
        if matches!(text, Ok("")) && !too_long {
            continue;
        }
        counts.read += 1;
        let parsed = match (text, too_long) {
            (_, true) => Err(Refusal { line, rule: LineRule::TooLong }),
            (Err(_), _) => Err(Refusal { line, rule: LineRule::NotAnObject }),
            (Ok(text), _) => parse_line(text, line, settings.now_ms, settings.future_tolerance_ms),
        };
        match parsed {
            Err(refusal) => {
                counts.refused += 1;
                on_refusal(refusal);
            }
            Ok(parsed) => {
                counts.dropped_references += u64::from(parsed.dropped_references);
                match ledger.ingest(&parsed.observation) {
                    Ingested::Post => counts.posts += 1,
                    Ingested::DuplicatePost => counts.duplicates += 1,
                    Ingested::Follows | Ingested::OlderFollows => counts.follow_snapshots += 1,
                }
            }
        }
    }
    Ok(counts)
}

/// Reads one line into `buffer`, keeping at most [`MAX_LINE_BYTES`] + 1 bytes of it. Returns
/// (end of input with nothing read, line too long).
fn read_bounded_line<R: BufRead>(reader: &mut R, buffer: &mut Vec<u8>) -> io::Result<(bool, bool)> {
    let mut read_any = false;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok((!read_any, too_long));
        }
        read_any = true;
        let (chunk, found_end) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], Some(end + 1)),
            None => (available, None),
        };
        if buffer.len() + chunk.len() > MAX_LINE_BYTES {
            too_long = true;
        } else {
            buffer.extend_from_slice(chunk);
        }
        let consumed = found_end.unwrap_or(available.len());
        reader.consume(consumed);
        if found_end.is_some() {
            return Ok((false, too_long));
        }
    }
}

/// Reads observation lines and analyses them (no earlier communities, ids from 1).
pub fn analyze<R: BufRead>(
    reader: R,
    settings: &AnalyzeSettings,
    on_refusal: &mut dyn FnMut(Refusal),
) -> Result<Report, AnalyzeError> {
    let mut ledger = Ledger::new(settings.limits);
    let counts = ingest_lines(reader, &mut ledger, settings, on_refusal)?;
    Ok(report(&ledger, settings, counts, &[], &mut 1)?)
}

/// Analyses a ledger's latest window. `previous` communities (from [`Report::known`]) keep
/// their ids; fresh ids start at `next_id`, which is advanced.
pub fn report(
    ledger: &Ledger,
    settings: &AnalyzeSettings,
    lines: LineCounts,
    previous: &[KnownCommunity],
    next_id: &mut u64,
) -> Result<Report, LeidenFailed> {
    let Some(last_day) = ledger.last_day() else {
        return Ok(Report {
            window: None,
            lines,
            modularity: 0.0,
            communities: vec![],
            accounts: vec![],
        });
    };
    let window = Window::ending(last_day, settings.window_days);
    let graph = WindowGraph::from_ledger(ledger, window, settings.follow_weight);
    let detected = detect(&graph.undirected, settings.communities)?;
    let posted: Vec<bool> = (0..graph.nodes()).map(|node| graph.posted(node)).collect();
    let ranks = pagerank(&graph.directed, &posted, settings.damping);
    let names: Vec<String> = graph
        .accounts
        .iter()
        .map(|&account| ledger.display(account).map(|c| c.as_str().to_owned()).unwrap_or_default())
        .collect();
    let community_count = detected.membership.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut members: Vec<Vec<&str>> = vec![Vec::new(); community_count];
    let mut core_sizes = vec![0usize; community_count];
    for (node, &community) in detected.membership.iter().enumerate() {
        members[community as usize].push(&names[node]);
        core_sizes[community as usize] += usize::from(detected.confidence[node] >= 1.0);
    }
    let assigned = assign_ids(previous, &members, next_id);
    let mut communities: Vec<CommunityOut> = assigned
        .iter()
        .enumerate()
        .map(|(community, assigned)| CommunityOut {
            id: assigned.id,
            size: members[community].len(),
            label: assigned.labels.first().cloned(),
            core_size: core_sizes[community],
            merged_ids: assigned.merged_ids.clone(),
            offered_ids: assigned.offered_ids.clone(),
        })
        .collect();
    communities.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    let mut accounts: Vec<AccountOut> = (0..graph.nodes())
        .map(|node| {
            let activity = graph.activity[node];
            AccountOut {
                account: names[node].clone(),
                posts: activity.posts(),
                originals: activity.originals,
                reposts: activity.reposts,
                replies: activity.replies,
                community: assigned[detected.membership[node] as usize].id,
                confidence: detected.confidence[node],
                pagerank: ranks[node],
            }
        })
        .collect();
    accounts.sort_by(|a, b| {
        let rank = |x: &AccountOut| x.pagerank.unwrap_or(-1.0);
        rank(b).total_cmp(&rank(a)).then(b.posts.cmp(&a.posts)).then(a.account.cmp(&b.account))
    });
    let window_out = WindowOut {
        first_day: date(window.first),
        last_day: date(window.last),
        days: window.last.0 - window.first.0 + 1,
    };
    Ok(Report {
        window: Some(window_out),
        lines,
        modularity: modularity(&graph.undirected, &detected.membership, 1.0),
        communities,
        accounts,
    })
}

impl Report {
    /// The communities as the next computation's `previous`.
    pub fn known(&self) -> Vec<KnownCommunity> {
        let mut members: HashMap<u64, Vec<String>> = HashMap::new();
        for account in &self.accounts {
            members.entry(account.community).or_default().push(account.account.clone());
        }
        self.communities
            .iter()
            .map(|community| KnownCommunity {
                id: community.id,
                members: members.remove(&community.id).unwrap_or_default(),
                labels: community.label.iter().cloned().collect(),
                anchors: Vec::new(),
            })
            .collect()
    }

    /// Writes the report for people: the communities, then the `top` accounts by PageRank.
    pub fn write_table(&self, out: &mut dyn Write, top: usize) -> io::Result<()> {
        let Some(window) = &self.window else {
            return writeln!(out, "no posts to analyse ({} lines refused)", self.lines.refused);
        };
        writeln!(
            out,
            "window {} .. {} ({} days): {} posts counted, {} duplicates, {} lines refused, {} references dropped",
            window.first_day,
            window.last_day,
            window.days,
            self.lines.posts,
            self.lines.duplicates,
            self.lines.refused,
            self.lines.dropped_references
        )?;
        writeln!(out, "{} communities, modularity {:.4}", self.communities.len(), self.modularity)?;
        writeln!(out)?;
        writeln!(out, "{:>10}  {:>7}  {:>9}  label", "community", "size", "core")?;
        for community in self.communities.iter().take(top) {
            let label = community.label.as_deref().unwrap_or("-");
            writeln!(
                out,
                "{:>10}  {:>7}  {:>9}  {label}",
                community.id, community.size, community.core_size
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "{:>9}  {:>6}  {:>9}  {:>10}  {:>10}  account",
            "pagerank", "posts", "originals", "community", "confidence"
        )?;
        for account in self.accounts.iter().take(top) {
            let rank = account.pagerank.map_or_else(|| "-".to_owned(), |rank| format!("{rank:.5}"));
            writeln!(
                out,
                "{rank:>9}  {:>6}  {:>9}  {:>10}  {:>10.2}  {}",
                account.posts,
                account.originals,
                account.community,
                account.confidence,
                account.account
            )?;
        }
        if self.accounts.len() > top {
            writeln!(out, "({} more accounts; --json gives all)", self.accounts.len() - top)?;
        }
        Ok(())
    }
}

/// A day as `YYYY-MM-DD` (UTC).
fn date(day: Day) -> String {
    match time::OffsetDateTime::from_unix_timestamp(i64::from(day.0) * 86_400) {
        Ok(moment) => {
            format!("{:04}-{:02}-{:02}", moment.year(), u8::from(moment.month()), moment.day())
        }
        Err(_) => String::new(),
    }
}
