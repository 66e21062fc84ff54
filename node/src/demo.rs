//! `crossmatch demo`: a local federation of 4 to 12 members, each loading thousands of
//! generated accounts in messy input forms with planted overlaps (`demo/data.rs`), showing
//! matches surfacing (each alert beside the analyst's own record), one arriving live on a
//! member's alert stream (`demo/stream.rs`), a real outage with
//! catch-up by sync (`demo/outage.rs`), a referral status and a retraction, then the hunt
//! (`demo/hunt.rs`): a community found in observations, the referral queue, a takedown clock
//! and a successor; and a summary (`demo/summary.rs`). Everything runs in this process on
//! loopback, each member's API included; the data is fictional.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crossmatch_protocol::{Canonical, Handling, Kind, RetractReason, Status, canonicalize};

use crate::clock::{Clock, DAY_MS, SystemClock};
use crate::daemon::{AlertQuery, AlertState, AlertView, NewRecord};
use crate::local::{self, LocalFederation, wait_until};

mod data;
mod hunt;
mod outage;
mod stream;
mod summary;

/// The demo's members: the first `--members` of these.
pub const MEMBERS: [&str; 12] =
    ["DE", "FR", "NL", "BE", "EUROPOL", "IT", "ES", "AT", "PL", "SE", "DK", "PT"];
/// The fewest members the story needs (DE, FR, NL and BE play parts in it).
pub const MIN_MEMBERS: usize = 4;
/// Generated records per member by default.
pub const DEFAULT_RECORDS: usize = 2000;
/// The fewest generated records per member: enough for an overlap with each other member.
pub const MIN_RECORDS: usize = 100;
/// The most generated records per member.
pub const MAX_RECORDS: usize = 50_000;
/// Records per `add_records` call while loading the lists.
const LOAD_CHUNK: usize = 500;
const DE: usize = 0;
const FR: usize = 1;
const NL: usize = 2;
const BE: usize = 3;
const LIMIT: Duration = Duration::from_secs(60);
/// How long the planted overlaps may take to surface at every member.
const LOAD_LIMIT: Duration = Duration::from_secs(300);

/// Demo errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The federation failed.
    #[error(transparent)]
    Local(#[from] local::Error),
    /// The engine refused something.
    #[error(transparent)]
    Node(#[from] crate::daemon::Error),
    /// A sample identifier did not canonicalise (a bug in the sample data).
    #[error("a sample identifier was refused")]
    Sample(#[from] crossmatch_protocol::CanonError),
    /// A sample evaluation did not parse (a bug in the sample data).
    #[error(transparent)]
    Evaluation(#[from] crossmatch_protocol::UnknownName),
    /// The live alert stream failed.
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
    /// Writing the narrative failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn identifier(kind: Kind, platform: Option<&str>, input: &str) -> Result<Canonical, Error> {
    Ok(canonicalize(kind, platform, None, input)?)
}

fn record(
    identifiers: Vec<Canonical>,
    handling: Handling,
    evaluation: &str,
    share: bool,
) -> Result<NewRecord, Error> {
    Ok(NewRecord {
        identifiers,
        category: "terrorism/propaganda".into(),
        handling,
        evaluation: evaluation.parse()?,
        notes: "demo sample".into(),
        activity_per_day: Some(120),
        expires_at_ms: SystemClock.now_ms() + 90 * DAY_MS,
        share,
        backlog: false,
    })
}

async fn alerts(fed: &LocalFederation, member: usize) -> Vec<AlertView> {
    match fed.node(member) {
        Ok(node) => {
            node.alerts(AlertQuery::all()).await.map(|page| page.alerts).unwrap_or_default()
        }
        Err(_) => Vec::new(),
    }
}

/// What the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Members: the first this many of [`MEMBERS`], at least [`MIN_MEMBERS`].
    pub members: usize,
    /// Generated records per member, [`MIN_RECORDS`] to [`MAX_RECORDS`].
    pub records: usize,
    /// How long the members stay up after the story (`None`: until the process is stopped).
    pub exit_after: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self { members: 5, records: DEFAULT_RECORDS, exit_after: None }
    }
}

/// Polls `condition` every 200 ms until it holds, for at most `limit`: for conditions that
/// read every member's alerts, too many to read every 20 ms.
async fn wait_long<F, Fut>(what: &str, limit: Duration, mut condition: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let polled = async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(limit, polled)
        .await
        .map_err(|_| Error::Local(local::Error::TimedOut(what.to_owned())))
}

/// An alert as member `member`'s analyst sees it: their own record (its id and identifier,
/// read from their own store, an audited local read; neither ever left the node) beside each
/// counterpart's member, contact and assessment, and the token's prefix.
async fn show_alert(fed: &LocalFederation, member: usize, alert: &AlertView) -> String {
    let ids = fed.members();
    let user = format!("analyst-{}", ids[member].id.to_lowercase());
    let mut own = Vec::new();
    for &record_id in &alert.records {
        let identifier = match fed.node(member) {
            Ok(node) => match node.read_record(record_id, user.clone()).await {
                Ok(Some(record)) => record
                    .identifiers
                    .iter()
                    .find(|identifier| identifier.token == alert.token)
                    .or(record.identifiers.first())
                    .map(|identifier| identifier.canonical.clone()),
                _ => None,
            },
            Err(_) => None,
        };
        own.push(format!("#{record_id} {}", identifier.as_deref().unwrap_or("(removed)")));
    }
    let counterparts: Vec<String> = alert
        .counterparts
        .iter()
        .map(|c| {
            let who = c.member_id.as_deref().unwrap_or("?");
            let contact = c.contact.as_deref().unwrap_or("no contact");
            let status = c.status.as_ref().map_or(String::new(), |s| format!(", {s}"));
            let latency = if c.retro {
                "held before our add".to_owned()
            } else {
                format!(
                    "{} ms after it was signed",
                    c.received_at_ms.saturating_sub(c.created_at_ms)
                )
            };
            format!("{who} ({contact}; {}, {}{status}; {latency})", c.handling, c.evaluation)
        })
        .collect();
    let state = format!("{:?}", alert.state).to_lowercase();
    format!(
        "  [{}] alert #{} {state}: our record {} <-> {}; token {}…",
        ids[member].id,
        alert.id,
        if own.is_empty() { "(none)".to_owned() } else { own.join(", ") },
        if counterparts.is_empty() {
            "nobody any more".to_owned()
        } else {
            counterparts.join(", ")
        },
        alert.token.short(),
    )
}

/// Writes member `member`'s alerts on `records` first, then up to `more` others and how many
/// were left out (nothing of the others when `more` is 0).
async fn show_alerts(
    fed: &LocalFederation,
    out: &mut impl Write,
    member: usize,
    records: &[u64],
    more: usize,
) -> Result<(), Error> {
    let all = alerts(fed, member).await;
    let (story, rest): (Vec<&AlertView>, Vec<&AlertView>) =
        all.iter().partition(|alert| alert.records.iter().any(|id| records.contains(id)));
    for alert in story.iter().chain(rest.iter().take(more)) {
        writeln!(out, "{}", show_alert(fed, member, alert).await)?;
    }
    if more > 0 && rest.len() > more {
        writeln!(out, "  [{}] … and {} more alerts", MEMBERS[member], rest.len() - more)?;
    }
    Ok(())
}

/// The live alert: FR's analyst follows FR's alert stream through FR's API (`fr_api`: its
/// address and token) while DE shares an account FR watches; the demo tells how long after
/// DE's add the alert event arrived on the stream.
async fn live_alert(
    fed: &LocalFederation,
    out: &mut impl Write,
    fr_api: &(std::net::SocketAddr, String),
) -> Result<(), Error> {
    let account = |input: &str| identifier(Kind::Account, Some("x"), input);
    let watched = fed
        .node(FR)?
        .add_record(
            record(vec![account("@Live_Wire")?], Handling::H1, "B2", false)?,
            "analyst-fr".into(),
        )
        .await?;
    let mut stream = stream::AlertStream::open(fr_api.0, &fr_api.1).await?;
    writeln!(
        out,
        "   live: FR's analyst follows FR's alert stream (GET /v1/alerts/stream); FR watches @Live_Wire (not shared), and DE now shares it as https://x.com/Live_Wire"
    )?;
    let added = Instant::now();
    fed.node(DE)?
        .add_record(
            record(vec![account("https://x.com/Live_Wire")?], Handling::H1, "B2", true)?,
            "analyst-de".into(),
        )
        .await?;
    let arrival = stream.alert_on(watched, LIMIT).await?;
    let latency = added.elapsed();
    drop(stream);
    writeln!(
        out,
        "   FR's stream delivered {} (event {}) {} ms after DE's add: signed, gossiped, matched, stored and flushed on the way:",
        arrival.kind,
        arrival.event_id,
        latency.as_millis()
    )?;
    if let Some(alert) = alerts(fed, FR).await.iter().find(|alert| alert.id == arrival.alert_id) {
        writeln!(out, "{}", show_alert(fed, FR, alert).await)?;
    }
    Ok(())
}

/// Loads member `member`'s generated list; (records added, inputs refused).
async fn load_list(
    fed: &LocalFederation,
    options: &Options,
    member: usize,
) -> Result<(usize, usize), Error> {
    let list = data::member_list(data::SEED, options.members, member, options.records);
    let handlings = [Handling::H1, Handling::H1, Handling::H2, Handling::H0];
    let evaluations = ["B2", "B3", "C3", "A2"];
    let mut records = list
        .records
        .into_iter()
        .map(|generated| {
            let pick = (generated.account % 4) as usize;
            record(vec![generated.canonical], handlings[pick], evaluations[pick], true)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let added = records.len();
    let user = format!("analyst-{}", MEMBERS[member].to_lowercase());
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(LOAD_CHUNK));
        fed.node(member)?.add_records(records, user.clone()).await?;
        records = rest;
    }
    Ok((added, list.refused))
}

/// Whether every member's alerts name every other member at least `overlap` times.
async fn every_overlap_surfaced(fed: &LocalFederation, members: usize, overlap: usize) -> bool {
    for member in 0..members {
        let mut named = vec![0; members];
        for alert in alerts(fed, member).await.iter().filter(|a| a.state == AlertState::Open) {
            for counterpart in &alert.counterparts {
                let id = counterpart.member_id.as_deref();
                if let Some(other) = MEMBERS[..members].iter().position(|m| Some(*m) == id) {
                    named[other] += 1;
                }
            }
        }
        if (0..members).any(|other| other != member && named[other] < overlap) {
            return false;
        }
    }
    true
}

/// Runs the demo in `root`, writing its narrative to `out`; the members stay up for
/// `options.exit_after` after the story (for ever when `None`: the caller stops it).
pub async fn run(root: &Path, options: Options, out: &mut impl Write) -> Result<(), Error> {
    let started = Instant::now();
    let options = Options {
        members: options.members.clamp(MIN_MEMBERS, MEMBERS.len()),
        records: options.records.clamp(MIN_RECORDS, MAX_RECORDS),
        ..options
    };
    let n = options.members;
    let ids: Vec<String> = MEMBERS[..n].iter().map(|id| (*id).to_owned()).collect();
    let mut fed = LocalFederation::new(root, &MEMBERS[..n]);
    fed.wait_limit = LIMIT;
    writeln!(out, "crossmatch demo: a federation of {n} members on this machine")?;
    fed.start_all().await?;
    fed.wait_meshed().await?;
    let mut apis = Vec::with_capacity(n);
    for member in 0..n {
        apis.push(fed.serve_api(member).await?);
    }
    writeln!(
        out,
        "1. all members connected ({:.1} s); raw data stays in each member's store; each serves its API on loopback",
        started.elapsed().as_secs_f64()
    )?;

    // Each member's list, then the accounts the story follows.
    let (mut loaded, mut refused) = (0, 0);
    for member in 0..n {
        let (added, member_refused) = load_list(&fed, &options, member).await?;
        loaded += added;
        refused += member_refused;
    }
    let overlap = data::overlap_per_pair(n, options.records);
    writeln!(
        out,
        "2. the members loaded their lists: {loaded} records from {} inputs in messy forms (@Handle, mobile.twitter.com/…?s=20, x.com/…, t.me/…, upper-case e-mail addresses, national phone numbers with a region, URLs with trackers, IDN domains), each canonicalised as the API does; {refused} malformed inputs refused and counted",
        loaded + refused
    )?;
    writeln!(
        out,
        "   every pair of members shares {overlap} accounts, each side writing them differently"
    )?;
    // DE's list and FR's both start with the accounts they share.
    let first = |member| data::member_list(data::SEED, n, member, options.records).records;
    if let (Some(de), Some(fr)) = (first(DE).first().cloned(), first(FR).first().cloned()) {
        writeln!(
            out,
            "   e.g. DE wrote {:?} and FR {:?}: one canonical form, {}",
            de.input.trim(),
            fr.input.trim(),
            de.canonical.as_str()
        )?;
    }
    let x = |handle: &str| identifier(Kind::Account, Some("x"), handle);
    let de_story = fed
        .node(DE)?
        .add_records(
            vec![
                record(vec![x("@Sample_Ch_7")?], Handling::H1, "B2", true)?,
                record(
                    vec![
                        identifier(Kind::Account, Some("telegram"), "t.me/demo_caliphate_news")?,
                        identifier(Kind::Email, None, "Press@Propaganda.example")?,
                    ],
                    Handling::H0,
                    "A2",
                    true,
                )?,
            ],
            "analyst-de".into(),
        )
        .await?;
    let fr_story = fed
        .node(FR)?
        .add_record(
            record(vec![x("https://twitter.com/Sample_Ch_7")?], Handling::H1, "B3", true)?,
            "analyst-fr".into(),
        )
        .await?;
    let nl_story = fed
        .node(NL)?
        .add_record(
            record(
                vec![identifier(Kind::Email, None, "press@propaganda.example")?],
                Handling::H2,
                "C3",
                false,
            )?,
            "analyst-nl".into(),
        )
        .await?;
    writeln!(
        out,
        "   then DE shares @Sample_Ch_7 and a Telegram channel with its press e-mail; FR shares the same account as a profile URL; NL watches the e-mail address"
    )?;
    let story_records: Vec<u64> = de_story.iter().copied().chain([fr_story, nl_story]).collect();
    wait_long("every planted overlap surfaces", LOAD_LIMIT, || {
        every_overlap_surfaced(&fed, n, overlap)
    })
    .await?;
    for (member, record) in [(DE, de_story[0]), (FR, fr_story), (NL, nl_story)] {
        wait_until("the story's matches surface", LIMIT, || async {
            alerts(&fed, member).await.iter().any(|alert| alert.records.contains(&record))
        })
        .await?;
    }
    writeln!(
        out,
        "   matches surfaced ({:.1} s since start); each analyst sees their own record beside the counterpart:",
        started.elapsed().as_secs_f64()
    )?;
    for member in [DE, FR, NL] {
        show_alerts(&fed, out, member, &story_records, 2).await?;
    }
    live_alert(&fed, out, &apis[FR]).await?;

    let downtime = outage::story(&mut fed, out).await?;
    // BE's API ended with its node: served again where its analysts were told to find it.
    let (address, token) = apis[BE].clone();
    apis[BE] = fed.serve_api_on(BE, address, token).await?;

    // Referral status: DE refers the account FR also holds; FR sees who acts on it.
    fed.node(DE)?.set_status(de_story[0], Status::Referred, "analyst-de".into()).await?;
    wait_until("FR sees DE's referral", LIMIT, || async {
        alerts(&fed, FR).await.iter().any(|a| {
            a.records.contains(&fr_story) && a.counterparts.iter().any(|c| c.status.is_some())
        })
    })
    .await?;
    writeln!(
        out,
        "4. DE refers @sample_ch_7 to the platform; FR's alert shows it, so FR does not refer it twice:"
    )?;
    show_alerts(&fed, out, FR, &[fr_story], 0).await?;

    // Retraction: FR withdraws its record; DE's alert closes.
    fed.node(FR)?.remove_record(fr_story, RetractReason::NoLongerHeld, "analyst-fr".into()).await?;
    wait_until("DE's alert closes", LIMIT, || async {
        alerts(&fed, DE)
            .await
            .iter()
            .any(|a| a.records.contains(&de_story[0]) && a.state == AlertState::Closed)
    })
    .await?;
    writeln!(out, "5. FR retracts its record; the retraction propagates and DE's alert closes:")?;
    show_alerts(&fed, out, DE, &de_story[..1], 0).await?;
    let counters = fed.node(NL)?.status().await?.counters;
    writeln!(
        out,
        "6. NL verified {} batches for {} applied ({} duplicates recognised without verifying); nothing but tokens crossed the mesh",
        counters.verifications, counters.applied, counters.duplicates
    )?;
    hunt::story(&fed, out).await?;

    let mut all = Vec::with_capacity(n);
    let mut bytes = Vec::with_capacity(n);
    for member in 0..n {
        all.push(alerts(&fed, member).await);
        bytes.push(fed.node(member)?.status().await?.mesh.payload_bytes_sent);
    }
    summary::write(out, &ids, &all, &bytes, Some(&downtime))?;
    summary::write_access(out, &ids, &apis)?;
    match options.exit_after {
        Some(after) => {
            writeln!(out, "the members stay up {} s (or until Ctrl-C)", after.as_secs())?;
            out.flush()?;
            tokio::time::sleep(after).await;
        }
        None => {
            writeln!(out, "the members stay up until Ctrl-C")?;
            out.flush()?;
            std::future::pending::<()>().await;
        }
    }
    fed.stop_all().await?;
    writeln!(out, "demo finished in {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(())
}
