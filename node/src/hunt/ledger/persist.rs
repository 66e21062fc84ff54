//! The ledger as rows, for the store: what a batch of observations changed
//! ([`Ledger::ingest_tracked`] notes the keys, [`Ledger::delta`] reads their values now), the
//! whole ledger rebuilt from its rows ([`Ledger::from_rows`]), and the shorter retention of
//! accounts that are not records ([`Ledger::purge_unrecorded`]). Pure: the store slice maps rows
//! to keys; nothing here knows how they are kept.
//!
//! Rows hold absolute values, never increments: writing a batch's rows again (after a crash,
//! or a retry) gives the same store. A batch's rows and its seen post hashes land in one atomic
//! write, so the store holds a post's counts exactly when it holds its seen hash; a purge
//! deletes the seen hashes of the counts it dropped in a write after theirs, so a purge cut
//! short may leave a hash without its counts (the post is then not counted again), never the
//! reverse.

use std::collections::{BTreeSet, HashMap};

use crossmatch_protocol::Canonical;
use serde::{Deserialize, Serialize};

use super::{
    AccountState, Activity, DayData, EdgeDay, FollowState, Ingested, Ledger, LedgerLimits, Seen,
    UNKNOWN_AUTHOR,
};
use crate::hunt::ledger::Day;
use crate::hunt::observation::{Author, Observation, PostHash};

/// An account as stored: its union-find parent and what is known of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRow {
    /// Union-find parent (itself for a root).
    pub parent: u32,
    /// The newest canonical handle and when it was seen (0: only referenced).
    pub handle: Option<(String, u64)>,
    /// The canonical account id.
    pub account_id: Option<String>,
    /// First seen as an author, Unix ms.
    pub first_seen_ms: Option<u64>,
    /// Last seen as an author, Unix ms.
    pub last_seen_ms: Option<u64>,
    /// Languages it posted in.
    pub languages: Vec<String>,
}

/// One account's day: its posts by kind and its evidence post hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayAccountRow {
    /// Original posts.
    pub originals: u32,
    /// Reposts.
    pub reposts: u32,
    /// Replies.
    pub replies: u32,
    /// Evidence post hashes.
    pub evidence: Vec<u64>,
}

/// One interaction edge's day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeRow {
    /// Summed weight.
    pub weight: f64,
    /// Interactions counted.
    pub interactions: u32,
    /// Evidence post hashes.
    pub evidence: Vec<u64>,
    /// Of the interactions, mentions (absent, and 0, in rows written before they were kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mentions: u32,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

/// A seen post; an evidence post keeps its id and URLs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenRow {
    /// The evidence kept of the post: (post id, canonical URLs).
    pub evidence: Option<(String, Vec<String>)>,
    /// The author's account index as the post was counted (absent in rows written before it
    /// was kept: such a hash stays until the general retention).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub author: Option<u32>,
}

impl Seen {
    /// The author as a row names it.
    fn author_row(self) -> Option<u32> {
        (self.author != UNKNOWN_AUTHOR).then_some(self.author)
    }
}

/// An account's newest follow snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowRow {
    /// When it was taken, Unix ms.
    pub at_ms: u64,
    /// The followed accounts.
    pub targets: Vec<u32>,
}

/// Rows to write (`Some`) or delete (`None`), by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerRows {
    /// Accounts by index.
    pub accounts: Vec<(u32, Option<AccountRow>)>,
    /// Aliases: canonical form → account index.
    pub aliases: Vec<(String, Option<u32>)>,
    /// (day, account) rows.
    pub day_accounts: Vec<((Day, u32), Option<DayAccountRow>)>,
    /// (day, from, to) rows.
    pub edges: Vec<((Day, u32, u32), Option<EdgeRow>)>,
    /// (day, post hash) rows.
    pub seen: Vec<((Day, u64), Option<SeenRow>)>,
    /// Follow snapshots by account.
    pub follows: Vec<(u32, Option<FollowRow>)>,
}

/// The keys a batch of observations touched.
#[derive(Debug, Clone, Default)]
pub struct Touched {
    accounts: BTreeSet<u32>,
    aliases: BTreeSet<String>,
    day_accounts: BTreeSet<(Day, u32)>,
    edges: BTreeSet<(Day, u32, u32)>,
    seen: BTreeSet<(Day, u64)>,
    follows: BTreeSet<u32>,
}

impl Touched {
    /// Whether nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.aliases.is_empty()
            && self.day_accounts.is_empty()
            && self.edges.is_empty()
            && self.seen.is_empty()
            && self.follows.is_empty()
    }
}

impl Ledger {
    /// Ingests one observation as [`Ledger::ingest`] does, noting in `touched` every key it
    /// changed.
    pub fn ingest_tracked(&mut self, observation: &Observation, touched: &mut Touched) -> Ingested {
        let (author, at_ms) = match observation {
            Observation::Post(post) => (&post.author, post.at_ms),
            Observation::Follows(snapshot) => (&snapshot.author, snapshot.at_ms),
        };
        // A merge changes the accounts the author's handle and id named before.
        let before: Vec<u32> =
            author_aliases(author).filter_map(|alias| self.lookup(alias)).collect();
        let outcome = self.ingest(observation);
        // An older snapshot changes nothing but when its author was seen.
        if outcome == Ingested::DuplicatePost {
            return outcome;
        }
        touched.accounts.extend(before);
        // New accounts, in new slots or in free ones handed out again.
        touched.accounts.extend(self.created.drain(..));
        let Some(account) = self.lookup(&author.account) else { return outcome };
        touched.accounts.insert(account);
        for alias in author_aliases(author) {
            touched.aliases.insert(alias.as_str().to_owned());
        }
        match observation {
            Observation::Post(post) => {
                let day = Day::of_ms(at_ms);
                touched.day_accounts.insert((day, account));
                touched.seen.insert((day, post.post_hash.0));
                let targets = post.repost_of.iter().chain(&post.reply_to).chain(&post.mentions);
                for target in targets {
                    touched.aliases.insert(target.as_str().to_owned());
                    if let Some(to) = self.lookup(target).filter(|&to| to != account) {
                        touched.edges.insert((day, account, to));
                    }
                }
            }
            Observation::Follows(_) if outcome == Ingested::OlderFollows => {}
            Observation::Follows(snapshot) => {
                touched.follows.insert(account);
                for target in &snapshot.follows {
                    touched.aliases.insert(target.as_str().to_owned());
                }
            }
        }
        outcome
    }

    /// The rows of the keys `touched` names, as they are now.
    pub fn delta(&self, touched: &Touched) -> LedgerRows {
        let mut rows = LedgerRows::default();
        for &index in &touched.accounts {
            let row = self.accounts.get(index as usize).map(account_row);
            rows.accounts.push((index, row));
        }
        for alias in &touched.aliases {
            let target =
                alias.parse::<Canonical>().ok().and_then(|c| self.aliases.get(&c).copied());
            rows.aliases.push((alias.clone(), target));
        }
        for &(day, account) in &touched.day_accounts {
            let data = self.days.get(&day);
            let row = data.and_then(|data| {
                let activity = data.activity.get(&account)?;
                let evidence = data.account_evidence.get(&account).cloned().unwrap_or_default();
                Some(DayAccountRow {
                    originals: activity.originals,
                    reposts: activity.reposts,
                    replies: activity.replies,
                    evidence: evidence.iter().map(|hash| hash.0).collect(),
                })
            });
            rows.day_accounts.push(((day, account), row));
        }
        for &(day, from, to) in &touched.edges {
            let edge = self.days.get(&day).and_then(|data| data.edges.get(&(from, to)));
            let row = edge.map(|edge| EdgeRow {
                weight: edge.weight,
                interactions: edge.interactions,
                evidence: edge.evidence.iter().map(|hash| hash.0).collect(),
                mentions: edge.mentions,
            });
            rows.edges.push(((day, from, to), row));
        }
        for &(day, hash) in &touched.seen {
            let seen = self.seen_posts.get(&PostHash(hash)).filter(|seen| seen.day == day);
            let row = seen.map(|seen| {
                let kept = self.days.get(&day).and_then(|d| d.evidence_posts.get(PostHash(hash)));
                SeenRow {
                    evidence: kept.map(|post| (post.post_id, post.urls)),
                    author: seen.author_row(),
                }
            });
            rows.seen.push(((day, hash), row));
        }
        for &account in &touched.follows {
            let row = self
                .follows
                .get(&account)
                .map(|state| FollowRow { at_ms: state.at_ms, targets: state.targets.clone() });
            rows.follows.push((account, row));
        }
        rows
    }

    /// A ledger rebuilt from every stored row (only `Some` rows count). Rows that do not parse
    /// (an alias that is no longer a canonical form) are skipped.
    pub fn from_rows(limits: LedgerLimits, rows: LedgerRows) -> Ledger {
        let mut ledger = Ledger::new(limits);
        // A slot without a row was freed by a purge (or never written): empty.
        let mut present: Vec<bool> = Vec::new();
        for (index, row) in rows.accounts {
            let Some(row) = row else { continue };
            while ledger.accounts.len() <= index as usize {
                let next = ledger.accounts.len() as u32;
                ledger.accounts.push(empty_account(next));
                present.push(false);
            }
            present[index as usize] = true;
            ledger.accounts[index as usize] = AccountState {
                parent: row.parent,
                handle: row.handle.and_then(|(h, at)| Some((h.parse().ok()?, at))),
                account_id: row.account_id.and_then(|id| id.parse().ok()),
                first_seen_ms: row.first_seen_ms,
                last_seen_ms: row.last_seen_ms,
                languages: row.languages,
            };
        }
        let known = ledger.accounts.len() as u32;
        for (alias, target) in rows.aliases {
            if let (Ok(alias), Some(target)) = (alias.parse::<Canonical>(), target)
                && target < known
            {
                ledger.aliases.insert(alias, target);
            }
        }
        for ((day, account), row) in rows.day_accounts {
            let Some(row) = row else { continue };
            let data = ledger.days.entry(day).or_default();
            let activity =
                Activity { originals: row.originals, reposts: row.reposts, replies: row.replies };
            data.activity.insert(account, activity);
            data.account_evidence.insert(account, row.evidence.into_iter().map(PostHash).collect());
        }
        for ((day, from, to), row) in rows.edges {
            let Some(row) = row else { continue };
            let evidence = row.evidence.into_iter().map(PostHash).collect();
            let (weight, interactions, mentions) = (row.weight, row.interactions, row.mentions);
            let edge = EdgeDay { weight, interactions, mentions, evidence };
            ledger.days.entry(day).or_default().edges.insert((from, to), edge);
        }
        for ((day, hash), row) in rows.seen {
            let Some(row) = row else { continue };
            let author = row.author.unwrap_or(UNKNOWN_AUTHOR);
            ledger.seen_posts.insert(PostHash(hash), Seen { day, author });
            if let Some((post_id, urls)) = row.evidence {
                let data = ledger.days.entry(day).or_default();
                data.evidence_posts.insert(PostHash(hash), &post_id, &urls);
            }
        }
        for (account, row) in rows.follows {
            if let Some(row) = row {
                ledger
                    .follows
                    .insert(account, FollowState { at_ms: row.at_ms, targets: row.targets });
            }
        }
        // A purge cut short can have deleted a freed account's row (`n`) before its edges
        // (`y`): a day or a snapshot may name a slot past the last row. Such a slot stays,
        // empty and held by what names it, until the next purge drops those rows and frees
        // it; a newcomer never gets a slot anything names.
        if let Some(last) = ledger.slots_named_by_days_and_follows().max() {
            while ledger.accounts.len() <= last as usize {
                let next = ledger.accounts.len() as u32;
                ledger.accounts.push(empty_account(next));
                present.push(false);
            }
        }
        // It can also have deleted a freed group's root before a member: the member stands
        // alone (its row is rewritten so by the next purge, which forgets and frees it), and
        // the root's slot is kept out of reuse until then, or a rebuild before that purge
        // would read the member back into a newcomer's group.
        let mut pinned = Vec::new();
        for index in 0..ledger.accounts.len() {
            let parent = ledger.accounts[index].parent;
            if !present.get(parent as usize).copied().unwrap_or(false) {
                ledger.accounts[index].parent = index as u32;
                if present[index] {
                    ledger.stale_rows.insert(index as u32);
                    pinned.push(parent);
                }
            }
        }
        // Rows of slots freed here (left by a cut, or empty rows of an older version) go at
        // the next purge.
        let freed = ledger.free_unreferenced(&pinned);
        let with_rows = freed.into_iter().filter(|&index| present[index as usize]);
        ledger.stale_rows.extend(with_rows);
        ledger
    }

    /// Every slot a day (counts, evidence, either end of an edge) or a follow snapshot
    /// (follower or followed) names, with repeats.
    fn slots_named_by_days_and_follows(&self) -> impl Iterator<Item = u32> + '_ {
        let days = self.days.values().flat_map(|data| {
            let counted = data.activity.keys().chain(data.account_evidence.keys()).copied();
            counted.chain(data.edges.keys().flat_map(|&(from, to)| [from, to]))
        });
        let follows =
            self.follows.iter().flat_map(|(&a, state)| state.targets.iter().copied().chain([a]));
        days.chain(follows)
    }

    /// Frees every account slot nothing refers to: the slots of each group none of whose
    /// members holds a handle or an id, is counted or named on a day, follows or is followed
    /// in a snapshot, or is an alias's target. A freed slot is emptied (its parent link too)
    /// and handed out again by [`Ledger::create`]; free slots at the end are dropped. Slots in
    /// `pinned` are held whatever refers to them. Returns the slots freed now (their rows go).
    fn free_unreferenced(&mut self, pinned: &[u32]) -> Vec<u32> {
        let slots = self.accounts.len();
        let roots: Vec<u32> = (0..slots as u32).map(|account| self.root_of(account)).collect();
        let mut held = vec![false; slots];
        let mut hold = |account: u32| {
            let root = roots.get(account as usize).copied().unwrap_or(account);
            if let Some(held) = held.get_mut(root as usize) {
                *held = true;
            }
        };
        for (account, state) in self.accounts.iter().enumerate() {
            if state.is_named() {
                hold(account as u32);
            }
        }
        self.slots_named_by_days_and_follows().for_each(&mut hold);
        self.aliases.values().for_each(|&target| hold(target));
        pinned.iter().for_each(|&slot| hold(slot));
        let freed: Vec<u32> = (0..slots as u32)
            .filter(|&account| !held.get(roots[account as usize] as usize).copied().unwrap_or(true))
            .filter(|account| !self.free.contains(account))
            .collect();
        for &account in &freed {
            self.accounts[account as usize] = empty_account(account);
            self.free.insert(account);
        }
        while let Some(&last) = self.free.last()
            && last as usize + 1 == self.accounts.len()
        {
            self.free.pop_last();
            self.accounts.pop();
        }
        if self.accounts.capacity() > 2 * self.accounts.len() + 1024 {
            self.accounts.shrink_to_fit();
        }
        freed
    }

    /// The shorter retention of observed accounts that are not records: before `first_kept`,
    /// the days of every account `is_record` says no to lose that account's counts, its
    /// outgoing edges and the evidence only those held (edges from records stay); an account
    /// that is not a record, was last seen before `first_kept` (or never authored) and has
    /// nothing left in any day (under any of its merged indices) is forgotten: its handle, id,
    /// languages, aliases and follow snapshot go. Then every slot nothing refers to any more
    /// is freed for reuse ([`Ledger::free_unreferenced`]): a forgotten account's at once,
    /// unless a follow snapshot still lists it. The seen hashes of the posts whose counts went
    /// go with them (those of rows that do not name their author stay until the general
    /// retention): a purged post sent again is counted again, into a day the next purge drops,
    /// as if new. Returns the rows to write and delete.
    pub fn purge_unrecorded(
        &mut self,
        first_kept: Day,
        is_record: &dyn Fn(&[&Canonical]) -> bool,
    ) -> LedgerRows {
        let roots = self.accounts.len() as u32;
        let mut names_of: HashMap<u32, Vec<Canonical>> = HashMap::new();
        for (alias, &account) in &self.aliases {
            names_of.entry(self.root_of(account)).or_default().push(alias.clone());
        }
        let recorded_roots: HashMap<u32, bool> = names_of
            .iter()
            .map(|(&root, names)| (root, is_record(&names.iter().collect::<Vec<_>>())))
            .collect();
        let root_of: Vec<u32> = (0..roots).map(|account| self.root_of(account)).collect();
        let recorded: Vec<bool> =
            root_of.iter().map(|root| recorded_roots.get(root).copied().unwrap_or(false)).collect();
        let keeps = |account: u32| recorded.get(account as usize).copied().unwrap_or(false);
        let mut rows = LedgerRows::default();
        // Groups (by root) with something left in a day.
        let mut live = vec![false; roots as usize];
        let mut evidence_dropped: Vec<(Day, PostHash)> = Vec::new();
        for (&day, data) in self.days.iter_mut() {
            if day < first_kept {
                purge_day(day, data, &keeps, &mut rows, &mut evidence_dropped);
            }
            let members = data.activity.keys().copied();
            let ends = data.edges.keys().flat_map(|&(from, to)| [from, to]);
            for account in members.chain(ends) {
                let root = root_of.get(account as usize).copied().unwrap_or(account);
                if let Some(live) = live.get_mut(root as usize) {
                    *live = true;
                }
            }
        }
        // The seen hashes of the posts whose counts were just dropped; an evidence post whose
        // hash stays keeps its row, without the evidence.
        self.seen_posts.retain(|&hash, seen| {
            let gone =
                seen.day < first_kept && seen.author != UNKNOWN_AUTHOR && !keeps(seen.author);
            if gone {
                rows.seen.push(((seen.day, hash.0), None));
            }
            !gone
        });
        for (day, hash) in evidence_dropped {
            if let Some(seen) = self.seen_posts.get(&hash).filter(|seen| seen.day == day) {
                let row = SeenRow { evidence: None, author: seen.author_row() };
                rows.seen.push(((day, hash.0), Some(row)));
            }
        }
        // A group names someone while any of its accounts holds a handle or an id: a purge
        // written in slices and cut short can have emptied the root and not the others.
        let mut named = vec![false; roots as usize];
        for account in 0..roots {
            if self.accounts[account as usize].is_named() {
                named[root_of[account as usize] as usize] = true;
            }
        }
        let mut forgotten: BTreeSet<u32> = BTreeSet::new();
        for account in 0..roots {
            let state = &self.accounts[account as usize];
            let stale = state.last_seen_ms.is_none_or(|last| Day::of_ms(last) < first_kept);
            let root = state.parent == account;
            let index = account as usize;
            if root && !keeps(account) && !live[index] && stale && named[index] {
                forgotten.insert(account);
            }
        }
        let mut emptied: BTreeSet<u32> = BTreeSet::new();
        for account in 0..roots {
            if !forgotten.contains(&root_of[account as usize]) {
                continue;
            }
            // Accounts merged into a forgotten one go with it; the parent links stay until the
            // group's slots are freed.
            let parent = self.accounts[account as usize].parent;
            self.accounts[account as usize] = empty_account(parent);
            emptied.insert(account);
            if self.follows.remove(&account).is_some() {
                rows.follows.push((account, None));
            }
        }
        for root in &forgotten {
            for alias in names_of.remove(root).unwrap_or_default() {
                self.aliases.remove(&alias);
                rows.aliases.push((alias.into_string(), None));
            }
        }
        let freed: BTreeSet<u32> = self.free_unreferenced(&[]).into_iter().collect();
        for account in emptied.difference(&freed) {
            rows.accounts.push((*account, Some(account_row(&self.accounts[*account as usize]))));
        }
        // What a rebuild found stale, as the slot stands now (free: no row).
        for account in std::mem::take(&mut self.stale_rows) {
            if emptied.contains(&account) || freed.contains(&account) {
                continue;
            }
            let held =
                self.accounts.get(account as usize).filter(|_| !self.free.contains(&account));
            rows.accounts.push((account, held.map(account_row)));
        }
        rows.accounts.extend(freed.into_iter().map(|account| (account, None)));
        rows
    }

    /// Drops every day before `first_kept` as [`Ledger::purge_before`] does, and returns the
    /// follow snapshots it dropped (the store drops the days by key range).
    pub fn purge_before_rows(&mut self, first_kept: Day) -> LedgerRows {
        let mut rows = LedgerRows::default();
        for (&account, state) in &self.follows {
            if Day::of_ms(state.at_ms) < first_kept {
                rows.follows.push((account, None));
            }
        }
        self.purge_before(first_kept);
        rows
    }
}

/// Drops from a day what belongs to accounts `keeps` says no to, noting in `evidence_dropped`
/// the posts no longer kept as evidence.
fn purge_day(
    day: Day,
    data: &mut DayData,
    keeps: &dyn Fn(u32) -> bool,
    rows: &mut LedgerRows,
    evidence_dropped: &mut Vec<(Day, PostHash)>,
) {
    let gone: Vec<u32> = data.activity.keys().copied().filter(|&a| !keeps(a)).collect();
    for account in gone {
        data.activity.remove(&account);
        data.account_evidence.remove(&account);
        rows.day_accounts.push(((day, account), None));
    }
    let gone: Vec<(u32, u32)> =
        data.edges.keys().copied().filter(|&(from, _)| !keeps(from)).collect();
    for key in gone {
        data.edges.remove(&key);
        rows.edges.push(((day, key.0, key.1), None));
    }
    let mut referenced: BTreeSet<PostHash> = BTreeSet::new();
    referenced.extend(data.account_evidence.values().flat_map(|list| list.iter()));
    referenced.extend(data.edges.values().flat_map(|edge| edge.evidence.iter()));
    let dropped = data.evidence_posts.retain(|hash| referenced.contains(&hash));
    evidence_dropped.extend(dropped.into_iter().map(|hash| (day, hash)));
}

fn author_aliases(author: &Author) -> impl Iterator<Item = &Canonical> {
    std::iter::once(&author.account).chain(author.account_id.as_ref())
}

pub(super) fn empty_account(parent: u32) -> AccountState {
    AccountState {
        parent,
        handle: None,
        account_id: None,
        first_seen_ms: None,
        last_seen_ms: None,
        languages: Vec::new(),
    }
}

fn account_row(state: &AccountState) -> AccountRow {
    AccountRow {
        parent: state.parent,
        handle: state.handle.as_ref().map(|(handle, at)| (handle.as_str().to_owned(), *at)),
        account_id: state.account_id.as_ref().map(|id| id.as_str().to_owned()),
        first_seen_ms: state.first_seen_ms,
        last_seen_ms: state.last_seen_ms,
        languages: state.languages.clone(),
    }
}

/// The alias map entries, for tests comparing a rebuilt ledger with the original.
#[cfg(test)]
pub(crate) fn alias_count(ledger: &Ledger) -> usize {
    ledger.aliases.len()
}

#[cfg(test)]
mod tests;
