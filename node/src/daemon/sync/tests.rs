//! The sync worker's decisions about chains and requeues, driven directly: how a gap job, a
//! pull and own-feed recovery take a chain another job fetches, when a pull whose page cap is
//! spent goes on at once, and which jobs start, of what scope, while recovery runs. The
//! callers (`start_jobs`, `fetch_judged`, `fetch_range`) are covered by the federation's
//! catch-up tests, not here: a caller that stopped using these functions, or stopped reading
//! the store's head before them, would pass these tests.

use std::cell::Cell;
use std::collections::VecDeque;

use super::worker::Gate;
use super::*;

fn feed(n: u8) -> FeedId {
    FeedId::new([n; 32], 1)
}

/// A budget of `pages` pages, far from its deadline.
fn budget_of(pages: usize) -> PullBudget {
    let deadline = Instant::now() + PULL_DEADLINE;
    PullBudget::of_pages(pages, Duration::from_secs(20), deadline)
}

#[tokio::test]
async fn a_gap_in_a_chain_another_job_fetches_is_left_to_that_job() {
    let claims = ChainClaims::default();
    let holder = claims.claim(feed(1)).expect("a free chain is claimed");
    let fetched = Cell::new(false);
    let filled = fill_gap(&claims, feed(1), |_| async { fetched.set(true) }).await;
    assert!(!filled && !fetched.get(), "a gap job fetched a chain another job holds");
    assert!(claims.claim(feed(1)).is_none(), "the holder still holds the chain");
    drop(holder);

    // A free chain is fetched, under its claim for as long as the fetch runs.
    let (others, fetching) = (&claims, &fetched);
    let filled = fill_gap(&claims, feed(1), move |chain| async move {
        assert!(chain.is_some(), "a gap job fetched a free chain unclaimed");
        assert!(others.claim(feed(1)).is_none(), "another job could claim the chain meanwhile");
        fetching.set(true);
    })
    .await;
    assert!(filled && fetched.get(), "a gap job left a free chain unfetched");
    assert!(claims.claim(feed(1)).is_some(), "the chain is free once the gap job is done");
}

#[test]
fn own_feed_recovery_fetches_a_chain_another_job_holds_and_claims_nothing() {
    let claims = ChainClaims::default();
    let holder = claims.claim(feed(1)).expect("a free chain is claimed");
    assert!(
        matches!(take_chain(&claims, feed(1), PullScope::OwnFeed), ChainTake::Unclaimed),
        "recovery waits behind the job that holds its own chain"
    );
    assert!(matches!(take_chain(&claims, feed(1), PullScope::Everything), ChainTake::Held));
    drop(holder);

    // Recovery takes no claim on a free chain either: a pull fetching beside it is not held up.
    assert!(matches!(take_chain(&claims, feed(1), PullScope::OwnFeed), ChainTake::Unclaimed));
    let pull = take_chain(&claims, feed(1), PullScope::Everything);
    assert!(matches!(pull, ChainTake::Claimed(_)), "recovery left a claim on the chain");
    assert!(matches!(take_chain(&claims, feed(1), PullScope::Everything), ChainTake::Held));
}

#[test]
fn a_pull_is_requeued_only_for_a_chain_the_store_is_still_short_of() {
    // One page, which applied something.
    let mut budget = budget_of(1);
    assert_eq!(budget.take_page(1, 200, 0), Some(1));
    budget.applied = true;
    // A chain another job fetched meanwhile, its head read again at the cap: nothing left.
    assert!(!budget.leave(1, 80, 80));
    assert!(!budget.goes_on(), "a pull requeued for a chain the store holds in full");
    // One the store is still short of.
    assert!(budget.leave(1, 80, 79));
    assert!(budget.goes_on(), "a pull cut short with a chain still to fetch was not requeued");
    // Leaving a chain spends no page, and a chain the pull claims is paged as before.
    let mut budget = budget_of(1);
    assert!(budget.leave(1, 80, 0));
    assert_eq!(budget.take_page(1, 80, 0), Some(1));
}

#[test]
fn a_page_starts_past_what_the_store_holds() {
    let mut budget = budget_of(2);
    assert_eq!(budget.take_page(1, 200, 64), Some(65), "the store holds 64 already");
    assert_eq!(budget.take_page(70, 200, 64), Some(70), "the range starts later");
    assert!(!budget.cut_short);
    assert_eq!(budget.take_page(1, 200, 128), None, "the cap is spent");
    assert!(budget.cut_short);
}

#[test]
fn a_pull_whose_pages_applied_nothing_or_that_penalised_its_peer_is_not_requeued() {
    let mut budget = budget_of(1);
    assert_eq!(budget.take_page(1, 200, 0), Some(1));
    assert_eq!(budget.take_page(1, 200, 64), None);
    assert!(budget.cut_short);
    assert!(!budget.goes_on(), "requeued though no page applied anything");
    budget.applied = true;
    assert!(budget.goes_on());
    budget.penalised = true;
    assert!(!budget.goes_on(), "requeued though the peer was penalised");
}

#[test]
fn while_recovery_runs_only_jobs_with_peers_it_is_done_with_start_and_skip_the_own_feed() {
    let (done, asked) = (PeerKey([1; 32]), PeerKey([2; 32]));
    let own = [9; 32];
    let recovering = Gate::Recovering { done: HashSet::from([done]), own: Some(own) };
    assert_eq!(recovering.scope(&SyncJob::Pull(done)), Some(PullScope::Others));
    assert_eq!(recovering.scope(&SyncJob::Pull(asked)), None, "recovery has this peer first");
    let gap = |peer, origin| SyncJob::Range {
        peer,
        feed: FeedId::new(origin, 1),
        from_seq: 1,
        to_seq: 2,
    };
    let other = [3; 32];
    assert_eq!(recovering.scope(&gap(done, other)), Some(PullScope::Others));
    assert_eq!(recovering.scope(&gap(asked, other)), None, "recovery has this peer first");
    assert_eq!(recovering.scope(&gap(done, own)), None, "a gap of the own feed waits");
    let unknown = Gate::Recovering { done: HashSet::from([done]), own: None };
    assert_eq!(unknown.scope(&gap(done, other)), None, "no own key known: no gap starts");
    assert_eq!(Gate::Ready.scope(&SyncJob::Pull(asked)), Some(PullScope::Everything));
    assert_eq!(Gate::Ready.scope(&gap(done, own)), Some(PullScope::Everything));

    // Only recovery fetches the own feed until the node is ready; once ready, every pull does.
    assert!(!PullScope::Others.covers(true) && PullScope::Others.covers(false));
    assert!(PullScope::OwnFeed.covers(true) && !PullScope::OwnFeed.covers(false));
    assert!(PullScope::Everything.covers(true) && PullScope::Everything.covers(false));
}

#[test]
fn a_peers_gaps_never_turn_away_its_pull() {
    let peer = PeerKey([1; 32]);
    let mut waiting = VecDeque::new();
    for seq in 0..2 * MAX_WAITING_JOBS_PER_PEER as u64 {
        let gap = SyncJob::Range { peer, feed: feed(1), from_seq: seq, to_seq: seq };
        worker::wait(&mut waiting, gap);
    }
    assert_eq!(waiting.len(), MAX_WAITING_JOBS_PER_PEER, "a peer's gaps are capped");
    worker::wait(&mut waiting, SyncJob::Pull(peer));
    worker::wait(&mut waiting, SyncJob::Pull(peer));
    let pulls = waiting.iter().filter(|job| matches!(job, SyncJob::Pull(_))).count();
    assert_eq!(pulls, 1, "the peer's pull waits beside its gaps, once");
}
