//! The demo's hunt: FR's observations reveal a community, its most active account heads the
//! referral queue, FR refers it, DE reports it removed and FR's takedown clock shows the removal
//! inside the budget, and the account that takes over its circle is flagged as its successor.
//! The posts are fictional and generated here; they never leave FR's node.

use std::io::Write;
use std::time::Duration;

use crossmatch_protocol::{Handling, Kind, Status};

use super::{DE, Error, FR, LIMIT, identifier, record};
use crate::clock::{Clock, SystemClock};
use crate::engine::takedowns::TakedownState;
use crate::local::{LocalFederation, wait_until};

/// The community's hub, and the account its operators open after its removal.
const HUB: &str = "abu_sayf";
const SUCCESSOR: &str = "abu_sayf2";
/// Its supporters, who amplify the hub (and later the successor).
const SUPPORTERS: usize = 12;
/// A smaller, quieter community beside it.
const OTHER_HUB: &str = "daily_dawa";
const OTHER_SUPPORTERS: usize = 6;

/// `@handle` from a canonical account form.
fn handle(canonical: &str) -> String {
    format!("@{}", canonical.rsplit('|').next().unwrap_or(canonical))
}

/// Observation lines, numbered from 1, all at or before `now_ms`.
fn lines(posts: &[String]) -> Vec<(u64, Vec<u8>)> {
    posts.iter().enumerate().map(|(i, line)| (i as u64 + 1, line.clone().into_bytes())).collect()
}

fn post(account: &str, at_ms: u64, id: &str, extra: &str) -> String {
    format!(r#"{{"platform":"x","account":"@{account}","at":{at_ms},"post_id":"{id}"{extra}}}"#)
}

/// The first hour's posts: each hub posts originals, its supporters repost and reply to it.
fn first_posts(now_ms: u64) -> Vec<String> {
    let mut posts = Vec::new();
    let mut at = now_ms - 600_000;
    let mut tick = || {
        at += 1_000;
        at
    };
    for (hub, supporters, originals, prefix) in
        [(HUB, SUPPORTERS, 30, "sup"), (OTHER_HUB, OTHER_SUPPORTERS, 8, "dawa")]
    {
        for n in 0..originals {
            posts.push(post(hub, tick(), &format!("{hub}-{n}"), ""));
        }
        for s in 0..supporters {
            let supporter = format!("{prefix}_{s}");
            for n in 0..3 {
                let repost = format!(r#","repost_of":"@{hub}""#);
                posts.push(post(&supporter, tick(), &format!("{supporter}-r{n}"), &repost));
            }
            let reply = format!(r#","reply_to":"@{hub}""#);
            posts.push(post(&supporter, tick(), &format!("{supporter}-p"), &reply));
        }
    }
    posts
}

/// After the removal: the successor posts, its old circle reposts it and announces it.
fn successor_posts(removed_at_ms: u64, now_ms: u64) -> Vec<String> {
    let mut posts = Vec::new();
    let span = now_ms.saturating_sub(removed_at_ms).max(1);
    let count = 3 + 2 * SUPPORTERS as u64;
    let mut n = 0;
    let mut at = || {
        n += 1;
        removed_at_ms + (span * n / (count + 1)).max(1)
    };
    for k in 0..3 {
        posts.push(post(SUCCESSOR, at(), &format!("{SUCCESSOR}-{k}"), ""));
    }
    for s in 0..SUPPORTERS {
        let supporter = format!("sup_{s}");
        let repost = format!(r#","repost_of":"@{SUCCESSOR}""#);
        posts.push(post(&supporter, at(), &format!("{supporter}-s"), &repost));
        let announce = format!(r#","mentions":["@{SUCCESSOR}"]"#);
        posts.push(post(&supporter, at(), &format!("{supporter}-a"), &announce));
    }
    posts
}

/// Steps 7 to 9 of the demo: the hunt at FR, the takedown clock, the successor.
pub(super) async fn story(fed: &LocalFederation, out: &mut impl Write) -> Result<(), Error> {
    let fr = fed.node(FR)?.clone();
    let now_ms = SystemClock.now_ms();
    let observed = fr.observe(lines(&first_posts(now_ms))).await?;
    fr.recompute_hunt().await?;
    let analytics = fr.read_analytics("communities".into(), "analyst-fr".into()).await?;
    writeln!(
        out,
        "7. FR feeds the node {} posts it observed; the hunt finds {} communities among {} accounts, locally:",
        observed.accepted,
        analytics.communities.len(),
        analytics.accounts.len()
    )?;
    for community in analytics.communities.iter().take(2) {
        let mut members: Vec<_> =
            community.members.iter().map(|&m| &analytics.accounts[m]).collect();
        members.sort_by_key(|account| std::cmp::Reverse(account.activity.originals));
        let lead = members.first().map(|a| handle(&a.account)).unwrap_or_default();
        writeln!(
            out,
            "   community {}: {} accounts around {lead}",
            community.id,
            community.members.len()
        )?;
    }

    // DE's analysts hold the hub too: a match, and a second member on the referral queue.
    let hub = || identifier(Kind::Account, Some("x"), HUB);
    let de_record = fed
        .node(DE)?
        .add_record(record(vec![hub()?], Handling::H1, "B2", true)?, "analyst-de".into())
        .await?;
    let fr_record =
        fr.add_record(record(vec![hub()?], Handling::H1, "B2", true)?, "analyst-fr".into()).await?;
    let (analytics, queue) = fr.priority_queue("analyst-fr".into()).await?;
    writeln!(
        out,
        "   FR's referral queue (priority: activity, amplifiers, influence, reach, link):"
    )?;
    for (index, terms) in queue.iter().take(3) {
        let account = &analytics.accounts[*index];
        writeln!(
            out,
            "     {:<14} score {:.2} ({} originals, {} amplifiers)",
            handle(&account.account),
            terms.score,
            account.activity.originals,
            account.distinct_amplifiers
        )?;
    }

    // FR refers it; DE reports it removed; FR's clock stops.
    fr.set_status(fr_record, Status::Referred, "analyst-fr".into()).await?;
    fed.node(DE)?.set_status(de_record, Status::Removed, "analyst-de".into()).await?;
    let removed_at_ms = SystemClock.now_ms();
    wait_until("FR's clock shows the removal", LIMIT, || {
        let fr = fr.clone();
        async move {
            fr.takedowns("analyst-fr".into()).await.is_ok_and(|view| {
                view.report
                    .accounts
                    .iter()
                    .any(|a| a.record == fr_record && a.state == TakedownState::Removed)
            })
        }
    })
    .await?;
    let view = fr.takedowns("analyst-fr".into()).await?;
    let removal = view
        .report
        .accounts
        .iter()
        .position(|a| a.record == fr_record)
        .map(|at| (view.report.accounts[at].clone(), view.removed_by[at].clone()));
    let budget_hours = fr.takedown_settings().budget_ms / 3_600_000;
    if let Some((clock, by)) = removal {
        let took = clock.time_to_removal.map_or(0, |t| t.unit_ms);
        writeln!(
            out,
            "8. FR refers {}; DE reports it removed; FR's clock: removed by {} {} ms after FR identified it, inside the {} h budget",
            handle(HUB),
            by.as_deref().unwrap_or("?"),
            took,
            budget_hours
        )?;
    }

    // The operators come back under a new handle and the old circle follows it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let now_ms = SystemClock.now_ms();
    fr.observe(lines(&successor_posts(removed_at_ms, now_ms))).await?;
    wait_until("the successor is flagged", LIMIT, || {
        let fr = fr.clone();
        async move {
            let _ = fr.recompute_hunt().await;
            fr.read_successors("analyst-fr".into()).await.is_ok_and(|found| {
                found.suggestions.iter().any(|s| s.account.ends_with(&format!("|{SUCCESSOR}")))
            })
        }
    })
    .await?;
    let found = fr.read_successors("analyst-fr".into()).await?;
    let flagged = found.suggestions.iter().find(|s| s.account.ends_with(&format!("|{SUCCESSOR}")));
    if let Some(successor) = flagged {
        writeln!(
            out,
            "9. a new account takes over the circle: {} flagged as likely successor of {} (score {:.2}: \
             {} partners in common, announced by {} of the old circle, handle similarity {:.2}); \
             it starts a clock of its own",
            handle(&successor.account),
            handle(&successor.old),
            successor.score,
            successor.overlap.common,
            successor.announcement.announcers.len(),
            successor.handle.similarity
        )?;
    }
    Ok(())
}
