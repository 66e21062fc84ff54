//! Catch-up after an outage: a member that comes back pulls what it missed from every peer at
//! once, each chain from one peer at a time (each batch received about once, none skipped), and
//! a pull cut short by its page cap goes on at once instead of waiting for the sync timer.

use std::sync::Arc;
use std::time::Duration;

use crossmatch_node::daemon::RANGE_BATCHES;
use crossmatch_node::engine::EngineLimits;
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::mesh::SyncBudget;
use crossmatch_node::test_support::{TempDir, federation, record};
use crossmatch_protocol::VerifiedBatch;

const LIMIT: Duration = Duration::from_secs(90);
/// A sync timer this slow never ticks within a test: only the pulls queued as peers connect,
/// and those they queue, run.
const NO_TIMER_SECS: u64 = 3_600;

/// Publisher `p` publishes `batches` batches of one shared entry each (one range page holds
/// [`crossmatch_node::daemon::RANGE_BATCHES`] of them), through its engine, without gossip;
/// each of `others` ingests them directly. Returns the head of its feed (member, generation,
/// seq).
async fn publish_small_batches(
    fed: &LocalFederation,
    p: usize,
    batches: usize,
    others: &[usize],
) -> (usize, u32, u64) {
    let wires = fed
        .node(p)
        .unwrap()
        .with_engine(move |engine| {
            let mut wires = Vec::new();
            for i in 0..batches {
                let one = vec![record(&[&format!("catchup_{p}_{i}")], true)];
                engine.add_records(one, "analyst").unwrap();
                wires.extend(engine.publish().unwrap().iter().map(VerifiedBatch::to_wire));
            }
            wires
        })
        .await
        .unwrap();
    assert_eq!(wires.len(), batches, "publisher {p} published one batch per record");
    let wires = Arc::new(wires);
    for &other in others {
        let wires = wires.clone();
        fed.node(other)
            .unwrap()
            .with_engine(move |engine| {
                for wire in wires.iter() {
                    engine.ingest(wire).unwrap();
                }
            })
            .await
            .unwrap();
    }
    let own = fed.heads(p).await.unwrap().into_iter().find(|(j, _, seq)| *j == p && *seq > 0);
    own.unwrap_or_else(|| panic!("publisher {p} holds its own head"))
}

/// Two members and no sync timer, set up by `configure` before they start; member 1 stops
/// while member 0 publishes `batches` batches of one entry. Returns the federation's root (bind
/// it first: it is removed when dropped), the federation, and member 0's head.
async fn member_1_away(
    name: &str,
    batches: usize,
    configure: impl FnOnce(&mut LocalFederation),
) -> (TempDir, LocalFederation, (usize, u32, u64)) {
    let (dir, mut fed) = federation(name, 2);
    fed.sync_interval_secs = NO_TIMER_SECS;
    configure(&mut fed);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    fed.stop(1).await.unwrap();
    let head = publish_small_batches(&fed, 0, batches, &[]).await;
    (dir, fed, head)
}

/// Waits until member `i` holds every head of `heads` (member, generation, seq).
async fn until_heads(fed: &LocalFederation, i: usize, heads: &[(usize, u32, u64)], what: &str) {
    let waited = wait_until(what, LIMIT, || async {
        let held = fed.heads(i).await.unwrap_or_default();
        heads.iter().all(|head| held.contains(head))
    })
    .await;
    if let Err(error) = waited {
        let held = fed.heads(i).await.unwrap_or_default();
        panic!("{error}: member {i} holds {held:?}, not all of {heads:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_fetch_each_batch_about_once_and_skip_none() {
    let (_dir, mut fed) = federation("catchup-once", 5);
    fed.sync_interval_secs = NO_TIMER_SECS;
    // A pull waits for a chain another fetches as long as the test does: a loaded machine's
    // slow pull cannot make another fetch the same page beside it.
    fed.chain_wait = LIMIT;
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let late = 4;
    fed.stop(late).await.unwrap();
    // Four publishers, each holding every chain: three pages of each chain to fetch.
    let publishers = [0, 1, 2, 3];
    let per_chain = 150;
    let mut heads = Vec::new();
    for p in publishers {
        let others: Vec<usize> = publishers.iter().copied().filter(|&o| o != p).collect();
        heads.push(publish_small_batches(&fed, p, per_chain, &others).await);
    }
    for p in publishers {
        until_heads(&fed, p, &heads, "every publisher holds every chain").await;
    }

    fed.start(late).await.unwrap();
    until_heads(&fed, late, &heads, "the late member holds every publisher's head").await;
    let counters = fed.node(late).unwrap().with_engine(|e| e.counters()).await.unwrap();
    let missed = (publishers.len() * per_chain) as u64;
    assert_eq!(counters.applied, missed, "every missed batch applied once, none skipped");
    assert_eq!(counters.applied_by_sync, missed, "all of them by sync");
    // Each chain is fetched from one peer at a time, each page from what the store holds: the
    // four pulls run side by side but do not fetch the same batches.
    assert!(
        counters.received <= missed + missed / 20,
        "{} batches received for {missed} missed ({} duplicates): four pulls fetched the same \
         chains",
        counters.received,
        counters.duplicates
    );
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_cut_short_by_its_page_cap_goes_on_at_once() {
    // One page per pull: 150 batches take three pulls, and the timer never ticks.
    let (_dir, mut fed, head) =
        member_1_away("catchup-cap", 150, |fed| fed.pages_per_pull = 1).await;

    fed.start(1).await.unwrap();
    until_heads(&fed, 1, &[head], "the late member holds the publisher's head after three pulls")
        .await;
    let counters = fed.node(1).unwrap().with_engine(|e| e.counters()).await.unwrap();
    assert_eq!(counters.applied_by_sync, 150, "every batch applied by sync");
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_whose_pages_apply_nothing_is_not_requeued() {
    let (_dir, mut fed) = federation("catchup-quota", 2);
    fed.sync_interval_secs = NO_TIMER_SECS;
    // One page per pull: the first pull applies what fits the quota and is cut short.
    fed.pages_per_pull = 1;
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    // Member 1 takes ten entries a day from any other origin: the rest of the publisher's
    // chain stalls there until the next quota day.
    let quota = 10;
    fed.node(1)
        .unwrap()
        .with_engine(move |engine| {
            let limits = engine.limits();
            engine.set_limits(EngineLimits { quota_entries_per_day: quota, ..limits });
        })
        .await
        .unwrap();
    publish_small_batches(&fed, 0, 150, &[]).await;
    // The publisher comes back: member 1 pulls from it as it connects.
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    let node = fed.node(1).unwrap();
    let applied = wait_until("member 1 applies its quota of the chain", LIMIT, || async {
        let counters = node.with_engine(|e| e.counters()).await.unwrap();
        counters.applied_by_sync >= quota
    })
    .await;
    applied.unwrap_or_else(|error| panic!("{error}"));
    // A pull whose page applies nothing is not requeued: no pull keeps asking for (and
    // verifying) the refused batches.
    let verified = || async { node.with_engine(|e| e.counters().verifications).await.unwrap() };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = verified().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = verified().await;
    assert_eq!(
        after, before,
        "member 1 went on verifying refused batches ({before} then {after}): a pull that \
         applied nothing was requeued"
    );
    let counters = node.with_engine(|e| e.counters()).await.unwrap();
    assert_eq!(counters.applied_by_sync, quota, "no more than the quota applied");
    // The first pull's page applied the quota and was cut short, so one more pull ran; its
    // page applied nothing, so no third one did.
    let two_pages = 2 * u64::from(RANGE_BATCHES);
    assert!(
        counters.received <= two_pages,
        "{} batches received, more than two pages: a pull whose page applied nothing was \
         requeued",
        counters.received
    );
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_catches_up_while_its_own_feed_recovery_waits_for_its_deadline() {
    let (_dir, mut fed, head) = member_1_away("catchup-recovering", 80, |_| {}).await;

    // Member 1 has published nothing, so no peer can confirm its own feed: its recovery waits
    // for its whole deadline, far longer than the test.
    fed.recovery_deadline_secs = 3_600;
    fed.start(1).await.unwrap();
    until_heads(&fed, 1, &[head], "member 1 holds the publisher's head while recovering").await;
    let node = fed.node(1).unwrap();
    assert!(!node.is_ready(), "member 1's recovery ended before its deadline");
    let counters = node.with_engine(|e| e.counters()).await.unwrap();
    assert_eq!(counters.applied_by_sync, 80, "every batch applied by sync");
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_refused_busy_asks_again_and_catches_up_without_the_timer() {
    let (_dir, mut fed, head) = member_1_away("catchup-busy", 150, |_| {}).await;

    // Member 0 serves member 1 8 KiB at once, then 8 KiB a second: a page of 64 one-entry
    // batches (more than 8 KiB) puts member 1 in debt (for a second at most: the debt is
    // floored at one burst), so its pull is refused `busy` between pages.
    let page_bytes = 8.0 * 1024.0;
    fed.sync_budget = SyncBudget {
        response_bytes_per_sec: page_bytes,
        response_bytes_burst: page_bytes,
        ..SyncBudget::default()
    };
    fed.stop(0).await.unwrap();
    fed.start(0).await.unwrap();
    fed.start(1).await.unwrap();
    until_heads(&fed, 1, &[head], "member 1 holds the publisher's head between refusals").await;
    let refused = fed.node(0).unwrap().status().await.unwrap().mesh.sync_refused_busy;
    assert!(refused > 0, "member 0 never refused member 1: the budget did not bind");
    let counters = fed.node(1).unwrap().with_engine(|e| e.counters()).await.unwrap();
    assert_eq!(counters.applied_by_sync, 150, "every batch applied by sync");
    fed.stop_all().await.unwrap();
}
