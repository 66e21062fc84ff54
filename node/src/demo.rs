//! `crossmatch demo`: a local federation of five members with sample data, showing matches
//! surfacing, an outage with catch-up, a retraction and a referral status, then the hunt
//! (`demo/hunt.rs`): a community found in observations, the referral queue, a takedown clock and
//! a successor. Everything runs in this process on loopback; the data is fictional.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crossmatch_protocol::{Canonical, Handling, Kind, RetractReason, Status, canonicalize};

use crate::clock::{Clock, DAY_MS, SystemClock};
use crate::daemon::{AlertQuery, AlertState, AlertView, NewRecord};
use crate::local::{self, LocalFederation, wait_until};

mod hunt;

/// The demo's members.
pub const MEMBERS: [&str; 5] = ["DE", "FR", "NL", "BE", "EUROPOL"];
const DE: usize = 0;
const FR: usize = 1;
const NL: usize = 2;
const BE: usize = 3;
const LIMIT: Duration = Duration::from_secs(60);

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

fn describe(member: usize, alert: &AlertView) -> String {
    let counterparts: Vec<String> = alert
        .counterparts
        .iter()
        .map(|c| {
            let who = c.member_id.as_deref().unwrap_or("?");
            let status = c.status.as_ref().map_or(String::new(), |s| format!(", {s}"));
            let latency = if c.retro {
                "found by a local add".to_owned()
            } else {
                format!(
                    "{} ms after it was signed",
                    c.received_at_ms.saturating_sub(c.created_at_ms)
                )
            };
            format!("{who} ({}, {}{status}; {latency})", c.handling, c.evaluation)
        })
        .collect();
    format!(
        "  [{}] alert #{} {:?}: token {}… also held by {}",
        MEMBERS[member],
        alert.id,
        alert.state,
        alert.token.short(),
        if counterparts.is_empty() {
            "nobody any more".to_owned()
        } else {
            counterparts.join(", ")
        }
    )
}

/// Runs the demo in `root`, writing its narrative to `out`.
pub async fn run(root: &Path, out: &mut impl Write) -> Result<(), Error> {
    let started = Instant::now();
    let mut fed = LocalFederation::new(root, &MEMBERS);
    fed.wait_limit = LIMIT;
    writeln!(out, "crossmatch demo: a federation of {} members on this machine", MEMBERS.len())?;
    fed.start_all().await?;
    fed.wait_meshed().await?;
    writeln!(
        out,
        "1. all members connected ({:.1} s); raw data stays in each member's store",
        started.elapsed().as_secs_f64()
    )?;

    // Sample data: DE imports a list; FR and NL hold some of the same accounts.
    let x = |handle: &str| identifier(Kind::Account, Some("x"), handle);
    let telegram = |handle: &str| identifier(Kind::Account, Some("telegram"), handle);
    let mut import = Vec::new();
    for i in 0..200 {
        import.push(record(vec![x(&format!("sample_ch_{i}"))?], Handling::H1, "B2", true)?);
    }
    import.push(record(
        vec![
            telegram("t.me/demo_caliphate_news")?,
            identifier(Kind::Email, None, "Press@Propaganda.example")?,
        ],
        Handling::H0,
        "A2",
        true,
    )?);
    fed.node(FR)?
        .add_record(
            record(vec![x("https://twitter.com/Sample_Ch_7")?], Handling::H1, "B3", true)?,
            "analyst-fr".into(),
        )
        .await?;
    fed.node(NL)?
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
    let imported = fed.node(DE)?.add_records(import, "analyst-de".into()).await?;
    writeln!(
        out,
        "2. DE imported {} records; FR shares @sample_ch_7 (as a profile URL); NL watches an e-mail address",
        imported.len()
    )?;
    for member in [DE, FR, NL] {
        wait_until("the first matches surface", LIMIT, || async {
            !alerts(&fed, member).await.is_empty()
        })
        .await?;
    }
    writeln!(out, "   matches surfaced ({:.1} s since start):", started.elapsed().as_secs_f64())?;
    for member in [DE, FR, NL] {
        for alert in alerts(&fed, member).await {
            writeln!(out, "{}", describe(member, &alert))?;
        }
    }

    // Outage: BE goes offline, DE shares more, BE returns and catches up by sync.
    fed.stop(BE).await?;
    writeln!(out, "3. BE goes offline; DE shares another account that BE already holds")?;
    let late = record(vec![x("late_breaking")?], Handling::H0, "A1", true)?;
    fed.node(DE)?.add_record(late, "analyst-de".into()).await?;
    fed.start(BE).await?;
    fed.node(BE)?
        .add_record(
            record(vec![x("late_breaking")?], Handling::H1, "B2", false)?,
            "analyst-be".into(),
        )
        .await?;
    fed.wait_meshed().await?;
    fed.wait_converged(DE).await?;
    wait_until("BE is alerted after catching up", LIMIT, || async {
        !alerts(&fed, BE).await.is_empty()
    })
    .await?;
    writeln!(out, "   BE is back, caught up by sync alone:")?;
    for alert in alerts(&fed, BE).await {
        writeln!(out, "{}", describe(BE, &alert))?;
    }

    // Referral status: DE refers the account FR also holds; FR sees who acts on it.
    let shared_record = imported.get(7).copied().unwrap_or_default();
    fed.node(DE)?.set_status(shared_record, Status::Referred, "analyst-de".into()).await?;
    wait_until("FR sees DE's referral", LIMIT, || async {
        alerts(&fed, FR).await.iter().any(|a| a.counterparts.iter().any(|c| c.status.is_some()))
    })
    .await?;
    writeln!(
        out,
        "4. DE refers @sample_ch_7 to the platform; FR's alert shows it, so FR does not refer it twice:"
    )?;
    for alert in alerts(&fed, FR).await {
        writeln!(out, "{}", describe(FR, &alert))?;
    }

    // Retraction: FR withdraws its record; DE's alert closes.
    let fr_alerts = fed.node(FR)?.alerts(AlertQuery::all()).await?;
    let fr_record = fr_alerts.alerts.first().and_then(|alert| alert.records.first().copied());
    if let Some(id) = fr_record {
        fed.node(FR)?.remove_record(id, RetractReason::NoLongerHeld, "analyst-fr".into()).await?;
    }
    wait_until("DE's alert closes", LIMIT, || async {
        alerts(&fed, DE).await.iter().any(|a| a.state == AlertState::Closed)
    })
    .await?;
    writeln!(out, "5. FR retracts its record; the retraction propagates and DE's alert closes:")?;
    for alert in alerts(&fed, DE).await {
        writeln!(out, "{}", describe(DE, &alert))?;
    }
    let counters = fed.node(NL)?.status().await?.counters;
    writeln!(
        out,
        "6. NL verified {} batches for {} applied ({} duplicates recognised without verifying); nothing but tokens crossed the mesh",
        counters.verifications, counters.applied, counters.duplicates
    )?;
    hunt::story(&fed, out).await?;
    fed.stop_all().await?;
    writeln!(out, "demo finished in {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(())
}
