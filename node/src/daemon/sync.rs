//! Sync between members: the worker that runs queued jobs (pull a peer's heads, fetch a chain's
//! missing range) a few at a time and at most one per peer, each bounded by a deadline and a
//! page cap; fork evidence fetched before any range; penalties for answers that break the
//! protocol, claim what they then do not serve, or come too late; and the answers to peers'
//! `heads`, `range` and `forks` requests, served from the store.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossmatch_protocol::{FeedId, PublicKey, REFUSED_BUSY};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::calls::Lane;
use super::gossip::forward_forks;
use super::view::HeadView;
use super::{Error, Node, Result};
use crate::engine::{Engine, ForkOutcome, HeadClaim, OwnWitness};
use crate::mesh::{self, PeerKey, RequestError, SyncRequest, SyncResponse};

/// Capacity of the queue of sync jobs, and of the jobs waiting for their peer or for a free
/// place; a full queue drops the job (the timer recovers it).
pub const SYNC_QUEUE_CAPACITY: usize = 64;
/// Most range requests one pull makes, over all its chains, before it yields to other work;
/// the next pull goes on from there, queued at once when the peer is still ahead.
pub const MAX_RANGE_REQUESTS_PER_PULL: usize = 64;
/// Batches asked for per range request.
pub const RANGE_BATCHES: u32 = 64;
/// Sync jobs running at once, each with another peer: a slow peer holds up only its own.
pub const MAX_CONCURRENT_PULLS: usize = 4;
/// How often a pull looks again whether the chain another job fetches is free.
const CHAIN_POLL: Duration = Duration::from_millis(20);
/// How long a pull waits for a chain another job fetches before it fetches the chain beside
/// that job, unless the node's settings say otherwise: a slow peer's pull holds up no other
/// for longer.
pub const CHAIN_WAIT: Duration = Duration::from_secs(10);
/// Gap jobs that may wait for one peer (its pull waits beside them, once): the gaps a busy peer
/// gossips cannot fill the queue that the other peers' jobs wait in.
pub const MAX_WAITING_JOBS_PER_PEER: usize = 4;
/// How long one pull may take in all. A full pull (64 pages) takes seconds from an honest
/// peer; four request timeouts leave room for a slow link, and what is left is fetched by the
/// next pull.
pub const PULL_DEADLINE: Duration = Duration::from_secs(120);
/// How long a pull waits before asking again a peer that refused [`REFUSED_BUSY`]: about what
/// the default response budget takes to refill after a full page (1 MiB at 1 MiB/s).
const BUSY_PAUSE: Duration = Duration::from_secs(1);
/// How many times in a row a pull asks again a peer that refused [`REFUSED_BUSY`].
const BUSY_RETRIES: u32 = 5;

/// What the sync worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SyncJob {
    /// Ask a peer for its heads and fetch whatever is ahead of us.
    Pull(PeerKey),
    /// Fetch one chain's missing range from a peer.
    Range { peer: PeerKey, feed: FeedId, from_seq: u64, to_seq: u64 },
}

impl SyncJob {
    fn peer(&self) -> PeerKey {
        match self {
            SyncJob::Pull(peer) | SyncJob::Range { peer, .. } => *peer,
        }
    }
}

/// The peers a sync job runs with now, whoever runs it (the worker or own-feed recovery): at
/// most one job per peer. Holds at most the roster's members.
#[derive(Debug, Clone, Default)]
pub(super) struct PullSlots(Arc<Mutex<HashSet<PeerKey>>>);

impl PullSlots {
    fn peers(&self) -> MutexGuard<'_, HashSet<PeerKey>> {
        // The set stays consistent whatever panicked while holding it.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The slot of `peer`, unless a job runs with it already.
    pub(super) fn claim(&self, peer: PeerKey) -> Option<PullSlot> {
        self.peers().insert(peer).then(|| PullSlot { slots: self.clone(), peer })
    }

    /// Whether a job runs with `peer` now.
    pub(super) fn is_busy(&self, peer: &PeerKey) -> bool {
        self.peers().contains(peer)
    }
}

/// A claimed slot; dropping it frees the peer.
#[derive(Debug)]
pub(super) struct PullSlot {
    slots: PullSlots,
    peer: PeerKey,
}

impl Drop for PullSlot {
    fn drop(&mut self) {
        self.slots.peers().remove(&self.peer);
    }
}

/// The chains whose range a sync job fetches now, whoever runs it: each chain from one peer at
/// a time, so that concurrent pulls from peers holding the same chains fetch different chains
/// instead of the same batches. Holds at most one chain per running job.
#[derive(Debug, Clone, Default)]
pub(super) struct ChainClaims(Arc<Mutex<HashSet<FeedId>>>);

impl ChainClaims {
    fn feeds(&self) -> MutexGuard<'_, HashSet<FeedId>> {
        // The set stays consistent whatever panicked while holding it.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The claim of `feed`, unless a job fetches it already.
    fn claim(&self, feed: FeedId) -> Option<ChainClaim> {
        self.feeds().insert(feed).then(|| ChainClaim { claims: self.clone(), feed })
    }
}

/// A claimed chain; dropping it frees the chain.
#[derive(Debug)]
struct ChainClaim {
    claims: ChainClaims,
    feed: FeedId,
}

impl Drop for ChainClaim {
    fn drop(&mut self) {
        self.claims.feeds().remove(&self.feed);
    }
}

/// How a job that is to fetch a chain takes it.
#[derive(Debug)]
enum ChainTake {
    /// Claimed: no other job fetches the chain until the claim is dropped.
    Claimed(ChainClaim),
    /// Fetched without a claim, whoever else fetches it (own-feed recovery).
    Unclaimed,
    /// Another job fetches the chain now.
    Held,
}

/// How a job whose pull covers `scope` takes `feed`. Own-feed recovery asks every peer at once
/// for the own feed and takes no claim, nor waits for one: one slow peer holds up no other
/// peer's fetch, and recovery is never blocked behind another job. Every other job claims the
/// chain, unless another job holds it.
fn take_chain(claims: &ChainClaims, feed: FeedId, scope: PullScope) -> ChainTake {
    match scope {
        PullScope::OwnFeed => ChainTake::Unclaimed,
        PullScope::Everything | PullScope::Others => {
            claims.claim(feed).map_or(ChainTake::Held, ChainTake::Claimed)
        }
    }
}

/// Fills a gap that gossip revealed in `feed` through `fetch`, under the chain's claim. A
/// chain another job holds is left to that job rather than fetched beside it: the holder
/// fetches from where the store holds the chain, and the next pull fetches what it leaves.
/// True when `fetch` ran.
async fn fill_gap<Fetched: Future<Output = ()>>(
    claims: &ChainClaims,
    feed: FeedId,
    fetch: impl FnOnce(Option<ChainClaim>) -> Fetched,
) -> bool {
    let Some(chain) = claims.claim(feed) else { return false };
    fetch(Some(chain)).await;
    true
}

/// What one pull may still spend, and whether it is over.
#[derive(Debug)]
pub(super) struct PullBudget {
    /// When the pull stops, wherever it is.
    deadline: Instant,
    /// Range requests left.
    pages_left: usize,
    /// An answer later than this was late: an honest responder refuses (`unavailable`) instead.
    late_after: Duration,
    /// The pull asks nothing more: deadline, refusal, penalty or a late answer.
    over: bool,
    /// The peer was penalised in this pull; a pull penalises once at most.
    penalised: bool,
    /// The page cap ended the pull with a chain the peer holds further still to fetch.
    cut_short: bool,
    /// Some page of the pull applied a batch: the pull moved a chain on.
    applied: bool,
}

impl PullBudget {
    /// A budget until `deadline`, of the node's pages per pull.
    pub(super) fn new(node: &Node, deadline: Instant) -> Self {
        Self::of_pages(node.pages_per_pull, node.sync_reply_budget, deadline)
    }

    /// A budget of `pages` range requests until `deadline`, whose answers are late after
    /// `late_after`.
    fn of_pages(pages: usize, late_after: Duration, deadline: Instant) -> Self {
        PullBudget {
            deadline,
            pages_left: pages,
            late_after,
            over: false,
            penalised: false,
            cut_short: false,
            applied: false,
        }
    }

    /// Whether the pull should go on at once: its page cap cut it short while its pages still
    /// moved chains on, and the peer was not penalised. Pages that move nothing (batches over
    /// their origin's daily quota, which stall the chain until they fit) never requeue a pull.
    fn goes_on(&self) -> bool {
        self.cut_short && self.applied && !self.penalised
    }

    /// Whether the pull fetched everything it set out to: nothing ended it early (deadline,
    /// refusal, penalty, late answer) and its page cap left nothing behind.
    pub(super) fn finished(&self) -> bool {
        !self.over && !self.cut_short
    }

    /// Takes a page of a range `from_seq..=to_seq` of a chain the store holds up to `held`
    /// (read just before): the seq the page starts at, past what the store holds; `None` when
    /// the store holds the whole range, or when the page cap is spent. A chain the store is
    /// still short of when the cap is spent cuts the pull short; one that gossip or another
    /// job filled meanwhile does not, so a pull is requeued only for what is still to fetch.
    fn take_page(&mut self, from_seq: u64, to_seq: u64, held: u64) -> Option<u64> {
        let from_seq = page_start(from_seq, to_seq, held)?;
        if self.pages_left == 0 {
            self.cut_short = true;
            return None;
        }
        self.pages_left -= 1;
        Some(from_seq)
    }

    /// Leaves a range of a chain another job fetches to a later pull, the page cap spent: cut
    /// short (so requeued) only if the store, read again (`held`), is still short of it.
    fn leave(&mut self, from_seq: u64, to_seq: u64, held: u64) -> bool {
        let short = page_start(from_seq, to_seq, held).is_some();
        self.cut_short |= short;
        short
    }
}

/// Where the next page of `from_seq..=to_seq` starts past `held`; `None` if all is held.
fn page_start(from_seq: u64, to_seq: u64, held: u64) -> Option<u64> {
    let from_seq = from_seq.max(held.saturating_add(1));
    (from_seq <= to_seq).then_some(from_seq)
}

/// What a pull fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PullScope {
    /// Only the node's own feed (own-feed recovery).
    OwnFeed,
    /// Every chain the peer holds further, and the chains a fork cut short.
    Everything,
    /// As [`PullScope::Everything`] less the own feed: a pull while own-feed recovery runs,
    /// whose judgement of the own feed must rest on the peers' answers alone.
    Others,
}

impl PullScope {
    /// Whether a pull of this scope fetches a range of the own feed (`own`) or of another's.
    fn covers(self, own: bool) -> bool {
        match self {
            PullScope::OwnFeed => own,
            PullScope::Everything => true,
            PullScope::Others => !own,
        }
    }
}

/// What one pull learned.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PullReport {
    /// The peer answered `heads`.
    pub(super) answered: bool,
    /// What the answer proved of this node's own feed.
    pub(super) own: OwnWitness,
}

/// Asks `peer` one request within the pull's budget; a `busy` refusal is asked again after
/// [`BUSY_PAUSE`], at most [`BUSY_RETRIES`] times in a row and only while the pause fits the
/// pull's deadline. `None` when there is no answer to use: the budget is spent, the peer refused
/// (`unavailable`, or `busy` past those retries: it may be loaded, so no penalty), could not be
/// reached, or did not answer within the request timeout (penalised: an
/// honest responder answers `unavailable` before then). An answer later than an honest
/// responder's reply budget ends the pull once it is used; whether it costs a penalty depends
/// on what it brought.
pub(super) async fn ask(
    node: &Node,
    peer: PeerKey,
    request: SyncRequest,
    budget: &mut PullBudget,
) -> Option<(SyncResponse, bool)> {
    let mut refusals = 0;
    loop {
        if budget.over || Instant::now() >= budget.deadline {
            budget.over = true;
            return None;
        }
        let asked = Instant::now();
        let answer =
            tokio::time::timeout_at(budget.deadline, node.mesh.request(peer, request.clone()))
                .await;
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(RequestError::Timeout)) => {
                penalise(node, peer, budget, "no answer within the request timeout").await;
                budget.over = true;
                return None;
            }
            // Not reachable, or this pull's own deadline: nobody's fault.
            Ok(Err(_)) | Err(_) => {
                budget.over = true;
                return None;
            }
        };
        match response {
            // Over the budget the peer keeps for this node, which refills within about a
            // second of a page: ask again after a pause, a few times in a row at most, so that
            // a catch-up goes on at the budget's rate instead of waiting for the sync timer.
            SyncResponse::Refused(reason)
                if reason == REFUSED_BUSY
                    && refusals < BUSY_RETRIES
                    && Instant::now() + BUSY_PAUSE < budget.deadline =>
            {
                refusals += 1;
                tokio::time::sleep(BUSY_PAUSE).await;
            }
            // Refused otherwise (`unavailable`, or busy again and again): the peer may be
            // loaded; ask it again next pull.
            SyncResponse::Refused(_) => {
                budget.over = true;
                return None;
            }
            response => {
                let late = asked.elapsed() > budget.late_after;
                budget.over |= late;
                return Some((response, late));
            }
        }
    }
}

/// Penalises `peer` for what it answered in this pull, once per pull at most. One penalty
/// decays; a few in a row ban the peer (docs/PROTOCOL.md §3.2).
pub(super) async fn penalise(
    node: &Node,
    peer: PeerKey,
    budget: &mut PullBudget,
    reason: &'static str,
) {
    if !budget.penalised {
        budget.penalised = true;
        tracing::debug!(peer = %peer, reason, "sync answer penalised");
        let _ = node.mesh.penalize(peer).await;
    }
}

/// Asks `peer` for its heads and fetches what `scope` covers of every chain it holds further
/// than we do, this node's own feed first, within `budget`.
pub(super) async fn pull(
    node: &Node,
    peer: PeerKey,
    budget: &mut PullBudget,
    scope: PullScope,
) -> Result<PullReport> {
    let judged = ask_heads(node, peer, budget, scope).await?;
    let report = judged.report;
    fetch_judged(node, peer, judged, budget, scope).await?;
    Ok(report)
}

/// A peer's `heads` answer, judged: what it proved of this node's own feed, and what is left
/// to fetch from it.
#[derive(Debug, Default)]
pub(super) struct JudgedHeads {
    /// What the answer proved.
    pub(super) report: PullReport,
    /// The answer, judged again if new fork evidence cuts a chain short.
    manifests: Vec<Vec<u8>>,
    /// The ranges of what the pull's scope covers that the peer holds further.
    ranges: Vec<Range>,
}

/// The first step of a pull: asks `peer` for its heads and judges them, so that what they prove
/// of the own feed is known at once, whatever becomes of the rest of the pull.
pub(super) async fn ask_heads(
    node: &Node,
    peer: PeerKey,
    budget: &mut PullBudget,
    scope: PullScope,
) -> Result<JudgedHeads> {
    let manifests = match ask(node, peer, SyncRequest::Heads, budget).await {
        Some((SyncResponse::Heads(manifests), _)) => manifests,
        Some(_) => {
            penalise(node, peer, budget, "answer does not match the request").await;
            budget.over = true;
            return Ok(JudgedHeads::default());
        }
        None => return Ok(JudgedHeads::default()),
    };
    let (judged, excess) = judge(node, peer, manifests, scope).await?;
    if excess > 0 {
        // Nothing past the bound was looked at.
        tracing::debug!(peer = %peer, excess, "heads beyond the roster");
        // What is within the bound is still fetched.
        penalise(node, peer, budget, "heads beyond one per roster member").await;
    }
    Ok(judged)
}

/// The rest of a pull: the fork evidence `peer` holds (before any range, so that no range past
/// a fork is fetched), then the ranges its heads showed, within `budget`: this node's own feed
/// first, then the peer's, then the others; a chain another job fetches now is left to the
/// end and fetched once that job is done with it (or after [`CHAIN_WAIT`]), from where the
/// store holds it.
pub(super) async fn fetch_judged(
    node: &Node,
    peer: PeerKey,
    judged: JudgedHeads,
    budget: &mut PullBudget,
    scope: PullScope,
) -> Result<()> {
    if !judged.report.answered {
        return Ok(());
    }
    let mut ranges = judged.ranges;
    if fetch_forks(node, peer, budget).await? {
        ranges = judge(node, peer, judged.manifests, scope).await?.0.ranges;
    }
    let mut taken = Vec::new();
    for range in ranges {
        if budget.over {
            break;
        }
        match take_chain(&node.chain_claims, range.feed, scope) {
            ChainTake::Claimed(chain) => {
                fetch_range(node, peer, range, budget, Some(chain)).await?
            }
            ChainTake::Unclaimed => fetch_range(node, peer, range, budget, None).await?,
            ChainTake::Held => taken.push(range),
        }
    }
    for range in taken {
        if budget.over {
            break;
        }
        if budget.pages_left == 0 {
            // Another job fetches it: left for the next pull, queued at once only if the
            // store, read again now, is still short of what the peer holds.
            let held =
                node.blocking(move |engine| engine.chain(range.feed).map(|c| c.seq)).await??;
            if budget.leave(range.from_seq, range.to_seq, held) {
                break;
            }
            continue;
        }
        let chain = wait_for_chain(node, range.feed, budget).await;
        fetch_range(node, peer, range, budget, chain).await?;
    }
    Ok(())
}

/// Waits, within the pull's deadline and at most the node's chain wait ([`CHAIN_WAIT`]), until no other job fetches
/// `feed`, and claims it; `None` past the wait (the chain is then fetched unclaimed) or the
/// deadline (the pull is over).
async fn wait_for_chain(node: &Node, feed: FeedId, budget: &mut PullBudget) -> Option<ChainClaim> {
    let give_up = Instant::now() + node.chain_wait;
    loop {
        if let Some(chain) = node.chain_claims.claim(feed) {
            return Some(chain);
        }
        let now = Instant::now();
        if now + CHAIN_POLL >= budget.deadline {
            budget.over = true;
            return None;
        }
        if budget.over || now >= give_up {
            return None;
        }
        tokio::time::sleep(CHAIN_POLL).await;
    }
}

/// Judges `peer`'s `heads` answer: what it proves of the own feed, the ranges to fetch, and how
/// many manifests it carried beyond the roster's bound.
async fn judge(
    node: &Node,
    peer: PeerKey,
    manifests: Vec<Vec<u8>>,
    scope: PullScope,
) -> Result<(JudgedHeads, usize)> {
    let (judgement, unfinished, manifests) = node
        .blocking(move |engine| {
            let judgement = engine.judge_heads(&manifests);
            // Chains a fork cut short that this node has not caught up to the fork: no head
            // names them once the origin moved to a new generation, so ask for them by name.
            // Recovery asks for none. Their claims never read as the own feed's head (recovery
            // must not judge them), so what a scope covers of them goes by their origin.
            let mut unfinished = match scope {
                PullScope::OwnFeed => Vec::new(),
                PullScope::Everything | PullScope::Others => {
                    engine.unfinished_forked_chains().unwrap_or_default()
                }
            };
            unfinished.retain(|claim| scope.covers(engine.is_own(&claim.feed.origin)));
            (judgement, unfinished, manifests)
        })
        .await?;
    let judgement = judgement?;
    let report = PullReport { answered: true, own: judgement.own };
    let peer_origin = peer.0;
    let claimed = judgement.claims.iter().filter(|claim| scope.covers(claim.own));
    let mut ranges: Vec<Range> = claimed
        .map(|claim| Range::of(claim, true))
        .chain(unfinished.iter().map(|claim| Range::of(claim, false)))
        .collect();
    // The own feed first: recovery needs it, and a pull may not get through everything. Then
    // the peer's own feed: concurrent pulls from several publishers then start on different
    // chains, each from the publisher that holds it first.
    ranges.sort_by_key(|range| (!range.own, range.feed.origin != peer_origin));
    Ok((JudgedHeads { report, manifests, ranges }, judgement.excess))
}

/// Asks `peer` for the fork evidence it holds and records what is new here; true when some
/// was. A peer that sends something that is not evidence of a fork is penalised and not heard
/// further.
async fn fetch_forks(node: &Node, peer: PeerKey, budget: &mut PullBudget) -> Result<bool> {
    let forks = match ask(node, peer, SyncRequest::Forks, budget).await {
        Some((SyncResponse::Forks(forks), _)) => forks,
        Some(_) => {
            penalise(node, peer, budget, "answer does not match the request").await;
            budget.over = true;
            return Ok(false);
        }
        None => return Ok(false),
    };
    let mut recorded = false;
    // One at a time, so that gossip ingest is not held up behind a long answer.
    for evidence in forks {
        let outcome = node.blocking(move |engine| engine.ingest_fork_evidence(&evidence)).await??;
        match outcome {
            ForkOutcome::Invalid(_) => {
                penalise(node, peer, budget, "invalid fork evidence").await;
                budget.over = true;
                break;
            }
            // The peer may be honest (its evidence limit filled in another order); the signer
            // has equivocated too often.
            ForkOutcome::OverLimit { penalise: Some(signer) } => {
                recorded = true;
                let _ = node.mesh.penalize(PeerKey(signer)).await;
            }
            // Either may have frozen a chain.
            ForkOutcome::Recorded | ForkOutcome::OverLimit { penalise: None } => recorded = true,
            ForkOutcome::Known | ForkOutcome::UnknownOrigin => {}
        }
    }
    Ok(recorded)
}

/// A range of one chain to fetch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range {
    feed: FeedId,
    from_seq: u64,
    to_seq: u64,
    /// The peer proved, with a signed head in this pull, that it holds the whole range, so it
    /// must serve at least a batch of it.
    claimed: bool,
    /// The chain is this node's own feed.
    own: bool,
}

impl Range {
    fn of(claim: &HeadClaim, claimed: bool) -> Self {
        let HeadClaim { feed, from_seq, to_seq, own } = *claim;
        Range { feed, from_seq, to_seq, claimed, own }
    }
}

/// Fetches a range of a chain from `peer`, a page at a time, within the pull's budget, while
/// `_chain`, when claimed, keeps other jobs off the chain. Each page starts after what the store holds of
/// the chain, which another job may have fetched further meanwhile. A peer that serves what
/// does not verify or was not asked, serves nothing of a range it claimed, or answers late with
/// no batch of the range (duplicates count: a gossiped batch may have come first) is penalised
/// and not asked further.
async fn fetch_range(
    node: &Node,
    peer: PeerKey,
    range: Range,
    budget: &mut PullBudget,
    _chain: Option<ChainClaim>,
) -> Result<()> {
    let Range { feed, mut from_seq, to_seq, claimed, .. } = range;
    while !budget.over {
        let held = node.blocking(move |engine| engine.chain(feed).map(|chain| chain.seq)).await??;
        let Some(start) = budget.take_page(from_seq, to_seq, held) else { break };
        from_seq = start;
        let max = RANGE_BATCHES.min(u32::try_from(to_seq - from_seq + 1).unwrap_or(RANGE_BATCHES));
        let (origin, generation) = (feed.origin, feed.generation);
        let request = SyncRequest::Range { origin, generation, from_seq, max };
        let (batches, late) = match ask(node, peer, request, budget).await {
            Some((SyncResponse::Batches(batches), late)) => (batches, late),
            Some(_) => {
                penalise(node, peer, budget, "answer does not match the request").await;
                budget.over = true;
                break;
            }
            None => break,
        };
        if batches.is_empty() {
            if claimed {
                penalise(node, peer, budget, "a claimed range not served").await;
                budget.over = true;
            }
            break;
        }
        if batches.len() > max as usize {
            penalise(node, peer, budget, "more batches than asked").await;
            budget.over = true;
            break;
        }
        let count = batches.len() as u64;
        let (outcome, found) = node
            .blocking(move |engine| {
                let outcome = engine.ingest_range(feed, from_seq, &batches);
                (outcome, engine.take_fork_evidence())
            })
            .await?;
        forward_forks(node, found).await;
        let outcome = outcome?;
        if outcome.mismatch {
            penalise(node, peer, budget, "batches that do not verify or were not asked").await;
            budget.over = true;
            break;
        }
        // Duplicates count as served: two pulls often ask two peers for the same range.
        if late && outcome.served == 0 {
            penalise(node, peer, budget, "a late answer that served nothing").await;
            budget.over = true;
            break;
        }
        if outcome.applied == 0 {
            // Served but nothing applied (batches over their origin's daily quota stall the
            // chain until they fit; or another job applied them first): the next page would
            // start from the same head, so the chain is left for this pull.
            break;
        }
        budget.applied = true;
        from_seq += count;
    }
    Ok(())
}

/// Answers a peer's sync request on a blocking thread, in the sync lane of engine calls; a
/// full lane is refused `busy`, a failure `unavailable`. Once the mesh stops waiting for the
/// answer (its reply timeout), the call is abandoned: its closure, already queued, keeps its
/// place in the lane until it gets the engine lock, and then returns without doing the work.
/// So an abandoned answer costs the engine nothing, but holds one of the lane's places while
/// the engine is busy; new requests past the lane's places are refused `busy` meanwhile.
pub(super) async fn answer(
    node: Node,
    request: SyncRequest,
    mut reply: oneshot::Sender<SyncResponse>,
) {
    if let Some(response) = node.answer_roster_request(&request).await {
        let _ = reply.send(response);
        return;
    }
    let call = node.call(Lane::Sync, move |engine| serve(engine, &request));
    let response = tokio::select! {
        response = call => match response {
            Ok(response) => response,
            Err(Error::Busy) => SyncResponse::Refused(REFUSED_BUSY.into()),
            Err(_) => SyncResponse::Refused("unavailable".into()),
        },
        () = reply.closed() => return,
    };
    let _ = reply.send(response);
}

/// A random index (0 if the system has no randomness to give).
fn random_index() -> usize {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) as usize
}

/// The answer to one sync request, from the store.
fn serve(engine: &mut Engine, request: &SyncRequest) -> SyncResponse {
    let result = match request {
        // Where the answer starts among the members: a different place each time, so that
        // if not every head fits one response, successive pulls still cover them all.
        SyncRequest::Heads => engine
            .heads(mesh::MAX_SYNC_RESPONSE_BYTES as usize - 1024, random_index())
            .map(SyncResponse::Heads),
        SyncRequest::Range { origin, generation, from_seq, max } => engine
            .range(
                FeedId::new(*origin, *generation),
                *from_seq,
                *max,
                mesh::MAX_SYNC_RESPONSE_BYTES as usize - 1024,
            )
            .map(SyncResponse::Batches),
        SyncRequest::Forks => engine
            .fork_evidence(mesh::MAX_SYNC_RESPONSE_BYTES as usize - 1024)
            .map(SyncResponse::Forks),
        // Answered without the engine (`answer_roster_request`).
        SyncRequest::RosterHead
        | SyncRequest::Rosters { .. }
        | SyncRequest::RosterConflict
        | SyncRequest::RecordSeqs
        | SyncRequest::MemberRecords { .. } => Ok(SyncResponse::Refused("unavailable".into())),
    };
    result.unwrap_or_else(|_| SyncResponse::Refused("unavailable".into()))
}

impl Node {
    /// The heads this node holds of `origins`' chains, in the order of `origins`, for every
    /// generation from 1 to the later of this node's own generation and `generations`; chains
    /// of which nothing is held are left out.
    pub async fn chain_heads(
        &self,
        origins: Vec<PublicKey>,
        generations: u32,
    ) -> Result<Vec<HeadView>> {
        let heads = self
            .call(Lane::Api, move |engine| {
                let mut heads = Vec::new();
                for origin in origins {
                    for generation in 1..=engine.own_head().0.max(generations) {
                        let feed = FeedId::of(&origin, generation);
                        let seq = engine.chain(feed).map(|c| c.seq).unwrap_or(0);
                        if seq > 0 {
                            heads.push((origin, generation, seq));
                        }
                    }
                }
                heads
            })
            .await?;
        Ok(heads
            .into_iter()
            .map(|(origin, generation, seq)| HeadView {
                member_id: self.roster.member_id(&origin.to_bytes()),
                origin,
                generation,
                seq,
            })
            .collect())
    }
}

mod worker;
pub(super) use worker::sync_worker;

#[cfg(test)]
mod tests;
