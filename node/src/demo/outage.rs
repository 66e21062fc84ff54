//! The demo's outage, a real one: BE is down while DE and FR publish batches it misses, long
//! enough that gossip no longer offers them (gossipsub gossips a message id for 3 heartbeats
//! of 1 s); once back, BE fetches them by sync, and the demo says how many from BE's
//! `applied_by_sync` counter. BE holds one of the accounts DE shares meanwhile, so its alert
//! comes by sync; the story returns when BE was down ([`Downtime`]), so the summary can tell
//! the matches BE missed while down from those made while every member was up.

use std::io::Write;
use std::time::{Duration, Instant};

use crossmatch_protocol::{Handling, Kind};

use super::{BE, DE, Error, FR, LIMIT, identifier, record, show_alert};
use crate::clock::{Clock, SystemClock};
use crate::local::{LocalFederation, wait_until};

/// When a member was down: from just before it stopped to just before it started again
/// (Unix ms, this machine's clock, as the members sign and receive by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downtime {
    /// The member, by index.
    pub member: usize,
    /// Just before it stopped.
    pub from_ms: u64,
    /// Just before it started again.
    pub back_ms: u64,
}

impl Downtime {
    /// Whether the add a match at `member` came from was missed because of this downtime:
    /// `member` is the one that was down, and the add was signed before it came back and
    /// received after it went down (so it waited for the return, to come by sync).
    pub fn missed(&self, member: usize, created_at_ms: u64, received_at_ms: u64) -> bool {
        member == self.member && created_at_ms < self.back_ms && received_at_ms >= self.from_ms
    }
}

/// Batches each of DE and FR publishes while BE is down.
pub const BATCHES_EACH: usize = 5;
/// Between two of them: far more than the local federation's linger (5 ms), so each add is a
/// batch of its own.
const SPACING: Duration = Duration::from_millis(250);
/// How long BE stays down after the last of them: past gossip's memory (3 heartbeats of 1 s).
const QUIET: Duration = Duration::from_secs(8);

/// Member `i`'s own feed seq now.
async fn own_seq(fed: &LocalFederation, i: usize) -> Result<u64, Error> {
    Ok(fed.node(i)?.status().await?.own_feed.seq)
}

/// Adds a shared account at member `i` and waits until it is published in a batch of its own.
async fn publish_one(
    fed: &LocalFederation,
    i: usize,
    handle: &str,
    user: &str,
) -> Result<(), Error> {
    let before = own_seq(fed, i).await?;
    let account = identifier(Kind::Account, Some("x"), handle)?;
    fed.node(i)?.add_record(record(vec![account], Handling::H1, "B2", true)?, user.into()).await?;
    wait_until("an outage batch is published", LIMIT, || async {
        own_seq(fed, i).await.is_ok_and(|seq| seq > before)
    })
    .await?;
    tokio::time::sleep(SPACING).await;
    Ok(())
}

/// Tells the outage: BE stops, DE and FR publish, BE comes back and catches up by sync.
/// Returns when BE was down.
pub async fn story(fed: &mut LocalFederation, out: &mut impl Write) -> Result<Downtime, Error> {
    // BE already watches an account DE is about to share (not shared by BE).
    let late = identifier(Kind::Account, Some("x"), "@Late_Breaking")?;
    let be_record = fed
        .node(BE)?
        .add_record(record(vec![late], Handling::H1, "B2", false)?, "analyst-be".into())
        .await?;
    let from_ms = SystemClock.now_ms();
    fed.stop(BE).await?;
    writeln!(out, "3. BE goes offline; DE and FR go on sharing accounts, one of which BE watches")?;
    let seqs = (own_seq(fed, DE).await?, own_seq(fed, FR).await?);
    for k in 0..BATCHES_EACH {
        let de_handle = if k == 0 { "late_breaking".to_owned() } else { format!("outage_de_{k}") };
        publish_one(fed, DE, &de_handle, "analyst-de").await?;
        publish_one(fed, FR, &format!("outage_fr_{k}"), "analyst-fr").await?;
    }
    let published = own_seq(fed, DE).await? - seqs.0 + own_seq(fed, FR).await? - seqs.1;
    let quiet_from = Instant::now();
    writeln!(
        out,
        "   DE and FR published {published} batches while BE was down; BE stays down {} s more, until gossip no longer offers them",
        QUIET.as_secs()
    )?;
    tokio::time::sleep(QUIET.saturating_sub(quiet_from.elapsed())).await;
    let back_ms = SystemClock.now_ms();
    fed.start(BE).await?;
    let fed: &LocalFederation = fed;
    fed.wait_meshed().await?;
    fed.wait_converged(DE).await?;
    wait_until("BE is alerted after catching up", LIMIT, || async {
        super::alerts(fed, BE).await.iter().any(|alert| alert.records.contains(&be_record))
    })
    .await?;
    let counters = fed.node(BE)?.status().await?.counters;
    writeln!(
        out,
        "   BE is back: BE fetched {} batches by sync ({} came by gossip since its restart), and its watch list matched:",
        counters.applied_by_sync, counters.applied_by_gossip
    )?;
    for alert in super::alerts(fed, BE).await {
        if alert.records.contains(&be_record) {
            writeln!(out, "{}", show_alert(fed, BE, &alert).await)?;
        }
    }
    Ok(Downtime { member: BE, from_ms, back_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_adds_the_down_member_waited_for_are_missed() {
        let down = Downtime { member: 3, from_ms: 1_000, back_ms: 9_000 };
        // Signed while BE was down, received after it came back.
        assert!(down.missed(3, 2_000, 9_500));
        // Signed just before it stopped, in flight: received only after it came back.
        assert!(down.missed(3, 990, 9_400));
        // At another member, or at BE before it stopped or once it was back: not missed.
        assert!(!down.missed(2, 2_000, 2_050));
        assert!(!down.missed(3, 500, 560));
        assert!(!down.missed(3, 9_100, 9_160));
    }
}
