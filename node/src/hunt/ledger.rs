//! The ledger: what is kept of the observations, in memory, as per-day aggregates.
//!
//! Accounts get dense ids ([`AccountIndex`]) and an alias table: canonical handle → account and
//! canonical account id → account. An `account_id` seen with a new handle gives the account
//! that handle too; a handle-only account later seen with an id is merged into the id's account
//! (union-find: the absorbed account points at its keeper, and aggregates keyed by the absorbed
//! index are folded in when read, through [`Ledger::root`]). A handle seen with a *different*
//! id than the one its account has is a recycled handle: it moves to the new id's account and
//! nothing is merged. An index is handed out again only once nothing refers to it (the purge
//! of accounts that are not records frees it, [`Ledger::purge_unrecorded`]), so the ledger's
//! size follows the accounts it holds, not every account it ever saw.
//!
//! Per day: each account's original posts, reposts and replies; interaction edges (amplifier →
//! amplified: a repost or a reply weighs 1, a post's k mentions weigh 1/k each; the mentions
//! are also counted apart, for successors' announcements); a bounded
//! number of evidence posts per account and per edge (their post ids and URLs, because
//! referrals and removal orders must name content). Beside the days: every seen post id's
//! hash with its day and author, so that ingesting a post again changes nothing while its
//! author's day is kept; each account's newest
//! follow snapshot (an older one never replaces a newer one); first and last seen; languages.
//!
//! **Persistence (a later slice).** Every change [`Ledger::ingest`] makes is a small set of
//! keyed increments: an alias or account created or merged, `(day, account) → counts`,
//! `(day, from, to) → weight`, evidence appended, and `seen(post hash) → day`. The store slice
//! records them as deltas in one sled batch with the seen-post key, so a crash in the middle of
//! a file either has a post's counts *and* its seen key or neither, and re-ingesting the file
//! skips exactly the posts already counted. Every per-day key starts with the day, so retention
//! ([`Ledger::purge_before`]) drops whole days by prefix.
//!
//! **Hashing.** Maps keyed by what the node assigns (account indices, days) or by post-id
//! hashes (BLAKE3 outputs of ids the platform assigns) use the fast, unkeyed `FxHash`: an
//! adversary cannot choose those keys, so it cannot make them collide. The alias table is keyed
//! by handles, which an adversary does choose, and keeps the standard library's keyed hasher.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rustc_hash::FxHashMap;

mod evidence;

use evidence::{EvidenceArena, PostList};

use crossmatch_protocol::{Canonical, Kind};

use super::observation::{Author, FollowSnapshot, Observation, Post, PostHash, PostKind};

mod persist;
pub use persist::{AccountRow, DayAccountRow, EdgeRow, FollowRow, LedgerRows, SeenRow, Touched};

/// Milliseconds in a day (UTC days: a day is `at_ms / DAY_MS`).
const DAY_MS: u64 = 86_400_000;

/// A day: days since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub u32);

impl Day {
    /// The day a time falls on.
    pub fn of_ms(at_ms: u64) -> Self {
        Day(u32::try_from(at_ms / DAY_MS).unwrap_or(u32::MAX))
    }
}

/// An inclusive range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first day.
    pub first: Day,
    /// The last day.
    pub last: Day,
}

impl Window {
    /// The `days` days that end on `last` (at least one).
    pub fn ending(last: Day, days: u32) -> Self {
        Window { first: Day(last.0.saturating_sub(days.max(1) - 1)), last }
    }
}

/// An account's dense id in a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountIndex(pub u32);

/// Posts an account authored, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Original posts.
    pub originals: u32,
    /// Reposts.
    pub reposts: u32,
    /// Replies.
    pub replies: u32,
}

impl Activity {
    /// All posts.
    pub fn posts(&self) -> u32 {
        self.originals + self.reposts + self.replies
    }

    fn add(&mut self, other: &Activity) {
        self.originals += other.originals;
        self.reposts += other.reposts;
        self.replies += other.replies;
    }
}

/// How much evidence is kept. Defaults: 5 posts per account per day, 2 per edge per day,
/// 4 languages per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerLimits {
    /// Evidence posts kept per account per day.
    pub evidence_per_account_day: usize,
    /// Evidence posts kept per edge per day.
    pub evidence_per_edge_day: usize,
    /// Languages kept per account.
    pub languages_per_account: usize,
}

impl Default for LedgerLimits {
    fn default() -> Self {
        Self { evidence_per_account_day: 5, evidence_per_edge_day: 2, languages_per_account: 4 }
    }
}

/// An evidence post: what a referral names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidencePost {
    /// The post id as the platform gives it.
    pub post_id: String,
    /// The post's canonical URLs.
    pub urls: Vec<String>,
}

/// What ingesting one observation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// A new post, counted.
    Post,
    /// A post already seen: nothing changed.
    DuplicatePost,
    /// A follow snapshot newer than the one held: it replaced it.
    Follows,
    /// A follow snapshot not newer than the one held: nothing changed.
    OlderFollows,
}

#[derive(Debug, Clone)]
struct AccountState {
    /// Union-find parent (itself for a root).
    parent: u32,
    /// The newest canonical handle seen for the account, and when.
    handle: Option<(Canonical, u64)>,
    /// The canonical account id, once known.
    account_id: Option<Canonical>,
    first_seen_ms: Option<u64>,
    last_seen_ms: Option<u64>,
    languages: Vec<String>,
}

impl AccountState {
    /// Whether it holds a handle or an id (an emptied or free slot holds neither).
    fn is_named(&self) -> bool {
        self.handle.is_some() || self.account_id.is_some()
    }
}

#[derive(Debug, Clone, Default)]
struct EdgeDay {
    weight: f64,
    interactions: u32,
    /// Of the interactions, mentions (what a successor's announcement is made of).
    mentions: u32,
    evidence: PostList,
}

#[derive(Debug, Clone, Default)]
struct DayData {
    activity: FxHashMap<u32, Activity>,
    edges: FxHashMap<(u32, u32), EdgeDay>,
    account_evidence: FxHashMap<u32, PostList>,
    evidence_posts: EvidenceArena,
}

/// A seen post: its day, and its author's account index as counted (so that the post's hash
/// goes with the author's day when a purge drops that day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    day: Day,
    /// [`UNKNOWN_AUTHOR`] for a post read back from a row written before authors were kept:
    /// its hash stays until the general retention, as every hash did then.
    author: u32,
}

/// The author of a seen post whose row did not name it.
const UNKNOWN_AUTHOR: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct FollowState {
    at_ms: u64,
    targets: Vec<u32>,
}

/// The in-memory aggregates of a unit's observations.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    limits: LedgerLimits,
    accounts: Vec<AccountState>,
    aliases: HashMap<Canonical, u32>,
    days: BTreeMap<Day, DayData>,
    seen_posts: FxHashMap<PostHash, Seen>,
    follows: FxHashMap<u32, FollowState>,
    /// Slots nothing refers to, handed out again lowest first (so a ledger rebuilt from its
    /// rows right after a purge, where a free slot is a missing row, hands out the same
    /// indices).
    free: BTreeSet<u32>,
    /// The indices [`Ledger::create`] handed out during the latest observation.
    created: Vec<u32>,
    /// Slots whose stored row a rebuild found stale (a slot it freed, a parent link it cut):
    /// the next [`Ledger::purge_unrecorded`] writes or deletes their rows.
    stale_rows: BTreeSet<u32>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(limits: LedgerLimits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// Counts one observation.
    pub fn ingest(&mut self, observation: &Observation) -> Ingested {
        self.created.clear();
        match observation {
            Observation::Post(post) => self.ingest_post(post),
            Observation::Follows(snapshot) => self.ingest_follows(snapshot),
        }
    }

    fn ingest_post(&mut self, post: &Post) -> Ingested {
        if self.seen_posts.contains_key(&post.post_hash) {
            return Ingested::DuplicatePost;
        }
        let day = Day::of_ms(post.at_ms);
        let author = self.resolve_author(&post.author, post.at_ms, true);
        if let Some(lang) = &post.lang {
            let languages = &mut self.accounts[author as usize].languages;
            if !languages.contains(lang) && languages.len() < self.limits.languages_per_account {
                languages.push(lang.clone());
            }
        }
        let mut targets: Vec<(u32, f64, bool)> = Vec::new();
        if let Some(original) = &post.repost_of {
            targets.push((self.resolve_handle(original), 1.0, false));
        }
        if let Some(replied) = &post.reply_to {
            targets.push((self.resolve_handle(replied), 1.0, false));
        }
        let share = 1.0 / f64::from(post.mentioned.max(1));
        for mentioned in &post.mentions {
            targets.push((self.resolve_handle(mentioned), share, true));
        }
        let limits = self.limits;
        let data = self.days.entry(day).or_default();
        let activity = data.activity.entry(author).or_default();
        match post.kind() {
            PostKind::Original => activity.originals += 1,
            PostKind::Repost => activity.reposts += 1,
            PostKind::Reply => activity.replies += 1,
        }
        let mut is_evidence = false;
        for (target, weight, mention) in targets {
            if target == author {
                continue;
            }
            let edge = data.edges.entry((author, target)).or_default();
            edge.weight += weight;
            edge.interactions += 1;
            edge.mentions += u32::from(mention);
            let fresh = edge.evidence.last() != Some(post.post_hash);
            if fresh && edge.evidence.len() < limits.evidence_per_edge_day {
                edge.evidence.push(post.post_hash);
                is_evidence = true;
            }
        }
        let evidence = data.account_evidence.entry(author).or_default();
        if evidence.len() < limits.evidence_per_account_day {
            evidence.push(post.post_hash);
            is_evidence = true;
        }
        if is_evidence {
            data.evidence_posts.insert(post.post_hash, &post.post_id, &post.urls);
        }
        self.seen_posts.insert(post.post_hash, Seen { day, author });
        Ingested::Post
    }

    fn ingest_follows(&mut self, snapshot: &FollowSnapshot) -> Ingested {
        let author = self.resolve_author(&snapshot.author, snapshot.at_ms, false);
        if self.follows.get(&author).is_some_and(|held| held.at_ms >= snapshot.at_ms) {
            return Ingested::OlderFollows;
        }
        let targets = snapshot.follows.iter().map(|target| self.resolve_handle(target)).collect();
        self.follows.insert(author, FollowState { at_ms: snapshot.at_ms, targets });
        Ingested::Follows
    }

    /// The account a line's author is, creating, binding or merging as the module docs say, and
    /// noting when it was seen posting (`posted`: a follow snapshot is not a post, so it moves
    /// neither first nor last seen, which say when the account posted).
    fn resolve_author(&mut self, author: &Author, at_ms: u64, posted: bool) -> u32 {
        let (handle, id) = match author.account.kind() {
            Kind::AccountId => (None, Some(&author.account)),
            _ => (Some(&author.account), author.account_id.as_ref()),
        };
        let by_handle = handle.and_then(|handle| self.lookup(handle));
        let by_id = id.and_then(|id| self.lookup(id));
        let account = match (by_handle, by_id) {
            (None, None) => self.create(),
            (Some(account), None) => match (id, &self.accounts[account as usize].account_id) {
                // A recycled handle: its account has another id.
                (Some(_), Some(_)) => self.create(),
                _ => account,
            },
            (None, Some(account)) => account,
            (Some(by_handle), Some(by_id)) if by_handle == by_id => by_id,
            (Some(by_handle), Some(by_id)) => {
                if self.accounts[by_handle as usize].account_id.is_none() {
                    self.merge(by_id, by_handle);
                }
                by_id
            }
        };
        // Aliases and the handle are cloned only when they change: most lines repeat them.
        if let Some(id) = id {
            self.bind_alias(id, account);
            self.accounts[account as usize].account_id.get_or_insert_with(|| id.clone());
        }
        let state = &mut self.accounts[account as usize];
        if let Some(handle) = handle {
            match &mut state.handle {
                Some((held, seen)) if *seen <= at_ms && held == handle => *seen = at_ms,
                held if held.as_ref().is_none_or(|(_, seen)| *seen <= at_ms) => {
                    *held = Some((handle.clone(), at_ms));
                }
                _ => {}
            }
            self.bind_alias(handle, account);
        }
        if posted {
            let state = &mut self.accounts[account as usize];
            state.first_seen_ms = Some(state.first_seen_ms.map_or(at_ms, |first| first.min(at_ms)));
            state.last_seen_ms = Some(state.last_seen_ms.map_or(at_ms, |last| last.max(at_ms)));
        }
        account
    }

    /// Points an alias at an account (replacing what it pointed at), cloning it only when the
    /// table does not already hold exactly that.
    fn bind_alias(&mut self, alias: &Canonical, account: u32) {
        if self.aliases.get(alias) != Some(&account) {
            self.aliases.insert(alias.clone(), account);
        }
    }

    /// The account a referenced handle (or id URL) names, created when new.
    fn resolve_handle(&mut self, handle: &Canonical) -> u32 {
        if let Some(account) = self.lookup(handle) {
            return account;
        }
        let account = self.create();
        let state = &mut self.accounts[account as usize];
        match handle.kind() {
            Kind::AccountId => state.account_id = Some(handle.clone()),
            _ => state.handle = Some((handle.clone(), 0)),
        }
        self.aliases.insert(handle.clone(), account);
        account
    }

    fn lookup(&self, alias: &Canonical) -> Option<u32> {
        self.aliases.get(alias).map(|&account| self.root_of(account))
    }

    /// A new, empty account: the lowest free slot, else a new one.
    fn create(&mut self) -> u32 {
        let index = match self.free.pop_first() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.accounts.len()).unwrap_or(u32::MAX);
                self.accounts.push(persist::empty_account(index));
                index
            }
        };
        self.created.push(index);
        index
    }

    /// Merges root `absorbed` into root `keeper`.
    fn merge(&mut self, keeper: u32, absorbed: u32) {
        let gone = self.accounts[absorbed as usize].clone();
        self.accounts[absorbed as usize].parent = keeper;
        let state = &mut self.accounts[keeper as usize];
        if let Some((handle, seen)) = gone.handle
            && state.handle.as_ref().is_none_or(|(_, held)| *held < seen)
        {
            state.handle = Some((handle, seen));
        }
        state.first_seen_ms = match (state.first_seen_ms, gone.first_seen_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        state.last_seen_ms = state.last_seen_ms.max(gone.last_seen_ms);
        for lang in gone.languages {
            if !state.languages.contains(&lang)
                && state.languages.len() < self.limits.languages_per_account
            {
                state.languages.push(lang);
            }
        }
    }

    fn root_of(&self, mut account: u32) -> u32 {
        while let Some(state) = self.accounts.get(account as usize) {
            if state.parent == account {
                break;
            }
            account = state.parent;
        }
        account
    }

    /// The account an index now belongs to (itself unless it was merged).
    pub fn root(&self, account: AccountIndex) -> AccountIndex {
        AccountIndex(self.root_of(account.0))
    }

    /// The account a canonical handle or id names, if known.
    pub fn account_of(&self, alias: &Canonical) -> Option<AccountIndex> {
        self.lookup(alias).map(AccountIndex)
    }

    /// How an account is shown: its newest canonical handle, else its canonical id.
    pub fn display(&self, account: AccountIndex) -> Option<&Canonical> {
        let state = self.accounts.get(self.root_of(account.0) as usize)?;
        state.handle.as_ref().map(|(handle, _)| handle).or(state.account_id.as_ref())
    }

    /// When an account was first and last seen posting, in Unix milliseconds (follow snapshots
    /// do not count).
    pub fn seen(&self, account: AccountIndex) -> Option<(u64, u64)> {
        let state = self.accounts.get(self.root_of(account.0) as usize)?;
        state.first_seen_ms.zip(state.last_seen_ms)
    }

    /// The languages an account posted in (at most the limit).
    pub fn languages(&self, account: AccountIndex) -> &[String] {
        self.accounts.get(self.root_of(account.0) as usize).map_or(&[], |state| &state.languages)
    }

    /// How many account slots the ledger has: in use (merged ones included) or free.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// How many of the account slots are free, to be handed out again.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// The latest day holding any post.
    pub fn last_day(&self) -> Option<Day> {
        self.days.keys().next_back().copied()
    }

    /// How many distinct posts are counted.
    pub fn post_count(&self) -> usize {
        self.seen_posts.len()
    }

    /// Each account's posts over a window, by root account.
    pub fn window_activity(&self, window: Window) -> HashMap<AccountIndex, Activity> {
        self.window_activity_by_index(window)
            .into_iter()
            .enumerate()
            .filter(|(_, activity)| activity.posts() > 0)
            .map(|(account, activity)| (AccountIndex(account as u32), activity))
            .collect()
    }

    /// Each account's posts over a window, indexed by account index (dense, so a vector is
    /// both smaller and faster than a map): merged accounts' posts are on their root, and
    /// every other entry (accounts that did not post, merged-away indices) is zero.
    pub fn window_activity_by_index(&self, window: Window) -> Vec<Activity> {
        let mut out = vec![Activity::default(); self.accounts.len()];
        for (_, data) in self.days.range(window.first..=window.last) {
            for (&account, activity) in &data.activity {
                if let Some(slot) = out.get_mut(self.root_of(account) as usize) {
                    slot.add(activity);
                }
            }
        }
        out
    }

    /// Calls `visit(from, to, weight)` for every interaction edge of every day of a window,
    /// by (amplifier, amplified) root accounts, without self-edges: one call per edge per day,
    /// days in order, so summing a pair's calls in call order is deterministic.
    pub fn for_each_window_interaction(
        &self,
        window: Window,
        mut visit: impl FnMut(AccountIndex, AccountIndex, f64),
    ) {
        for (_, data) in self.days.range(window.first..=window.last) {
            for (&(from, to), edge) in &data.edges {
                let (from, to) = (self.root_of(from), self.root_of(to));
                if from != to {
                    visit(AccountIndex(from), AccountIndex(to), edge.weight);
                }
            }
        }
    }

    /// The follow edges of a window, as (follower, followed) root accounts, without
    /// self-edges: from each root account's newest snapshot taken on or before the window's
    /// last day, and only between accounts for which `posted` holds. Sorted, without
    /// duplicates.
    pub fn window_follows(
        &self,
        window: Window,
        posted: impl Fn(AccountIndex) -> bool,
    ) -> Vec<(AccountIndex, AccountIndex)> {
        // The newest snapshot per root account (merged accounts may hold one each).
        let mut newest: FxHashMap<u32, &FollowState> = FxHashMap::default();
        for (&author, state) in &self.follows {
            if Day::of_ms(state.at_ms) > window.last {
                continue;
            }
            let root = self.root_of(author);
            let held = newest.entry(root).or_insert(state);
            if held.at_ms < state.at_ms
                || (held.at_ms == state.at_ms && held.targets < state.targets)
            {
                *held = state;
            }
        }
        let mut out = Vec::new();
        for (from, state) in newest {
            if !posted(AccountIndex(from)) {
                continue;
            }
            for &to in &state.targets {
                let to = self.root_of(to);
                if to != from && posted(AccountIndex(to)) {
                    out.push((AccountIndex(from), AccountIndex(to)));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Summed interaction weights over a window, by (amplifier, amplified) root accounts,
    /// without self-edges. Follow edges (weight `follow_weight`) come from each account's
    /// newest snapshot taken on or before the window's last day, and only between accounts
    /// that posted in the window (`posters`).
    pub fn window_edges(
        &self,
        window: Window,
        posters: &HashMap<AccountIndex, Activity>,
        follow_weight: f64,
    ) -> HashMap<(AccountIndex, AccountIndex), f64> {
        let mut out: HashMap<(AccountIndex, AccountIndex), f64> = HashMap::new();
        self.for_each_window_interaction(window, |from, to, weight| {
            *out.entry((from, to)).or_default() += weight;
        });
        let posted = |account: AccountIndex| {
            posters.get(&account).is_some_and(|activity| activity.posts() > 0)
        };
        for edge in self.window_follows(window, posted) {
            *out.entry(edge).or_default() += follow_weight;
        }
        out
    }

    /// An account's evidence posts over a window, newest day first.
    pub fn account_evidence(&self, account: AccountIndex, window: Window) -> Vec<EvidencePost> {
        let root = self.root_of(account.0);
        let mut out = Vec::new();
        for (_, data) in self.days.range(window.first..=window.last).rev() {
            for (&holder, posts) in &data.account_evidence {
                if self.root_of(holder) == root {
                    out.extend(posts.iter().filter_map(|hash| data.evidence_posts.get(hash)));
                }
            }
        }
        out
    }

    /// An edge's evidence posts over a window, newest day first.
    pub fn edge_evidence(
        &self,
        from: AccountIndex,
        to: AccountIndex,
        window: Window,
    ) -> Vec<EvidencePost> {
        let (from, to) = (self.root_of(from.0), self.root_of(to.0));
        let mut out = Vec::new();
        for (_, data) in self.days.range(window.first..=window.last).rev() {
            for (&(a, b), edge) in &data.edges {
                if self.root_of(a) == from && self.root_of(b) == to {
                    out.extend(
                        edge.evidence.iter().filter_map(|hash| data.evidence_posts.get(hash)),
                    );
                }
            }
        }
        out
    }

    /// Drops every day before `first_kept`, the seen post ids of those days and the follow
    /// snapshots taken before it. Accounts and aliases stay (their retention is
    /// [`Ledger::purge_unrecorded`]'s).
    pub fn purge_before(&mut self, first_kept: Day) {
        self.days = self.days.split_off(&first_kept);
        self.seen_posts.retain(|_, seen| seen.day >= first_kept);
        self.follows.retain(|_, state| Day::of_ms(state.at_ms) >= first_kept);
    }
}

#[cfg(test)]
mod tests;
