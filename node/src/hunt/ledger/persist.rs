//! The ledger as rows, for the store: what a batch of observations changed
//! ([`Ledger::ingest_tracked`] notes the keys, [`Ledger::delta`] reads their values now), the
//! whole ledger rebuilt from its rows ([`Ledger::from_rows`]), and the shorter retention of
//! accounts that are not records ([`Ledger::purge_unrecorded`]). Pure: the store slice maps rows
//! to keys; nothing here knows how they are kept.
//!
//! Rows hold absolute values, never increments: writing a batch's rows again (after a crash,
//! or a retry) gives the same store. A batch's rows and its seen post hashes land in one atomic
//! write, so the store holds a post's counts exactly when it holds its seen hash.

use std::collections::{BTreeSet, HashMap};

use crossmatch_protocol::Canonical;
use serde::{Deserialize, Serialize};

use super::{
    AccountState, Activity, DayData, EdgeDay, FollowState, Ingested, Ledger, LedgerLimits,
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
            let seen = self.seen_posts.get(&PostHash(hash)) == Some(&day);
            let row = seen.then(|| {
                let kept = self.days.get(&day).and_then(|d| d.evidence_posts.get(PostHash(hash)));
                SeenRow { evidence: kept.map(|post| (post.post_id, post.urls)) }
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
            ledger.seen_posts.insert(PostHash(hash), day);
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
        // A purge cut short can have deleted a freed group's root before a member: the member
        // stands alone, and the next purge forgets and frees it.
        for index in 0..ledger.accounts.len() {
            let parent = ledger.accounts[index].parent as usize;
            if !present.get(parent).copied().unwrap_or(false) {
                ledger.accounts[index].parent = index as u32;
            }
        }
        ledger.free_unreferenced();
        ledger
    }

    /// Frees every account slot nothing refers to: the slots of each group none of whose
    /// members holds a handle or an id, is counted or named on a day, follows or is followed
    /// in a snapshot, or is an alias's target. A freed slot is emptied (its parent link too)
    /// and handed out again by [`Ledger::create`]; free slots at the end are dropped. Returns
    /// the slots freed now (their rows go).
    fn free_unreferenced(&mut self) -> Vec<u32> {
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
            if state.handle.is_some() || state.account_id.is_some() {
                hold(account as u32);
            }
        }
        for data in self.days.values() {
            data.activity.keys().chain(data.account_evidence.keys()).for_each(|&a| hold(a));
            data.edges.keys().flat_map(|&(from, to)| [from, to]).for_each(&mut hold);
        }
        for (&author, state) in &self.follows {
            hold(author);
            state.targets.iter().for_each(|&target| hold(target));
        }
        self.aliases.values().for_each(|&target| hold(target));
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
    /// unless a follow snapshot still lists it. Seen post hashes stay until the general
    /// retention, so a purged post is not counted again. Returns the rows to write and delete.
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
        for (&day, data) in self.days.iter_mut() {
            if day < first_kept {
                purge_day(day, data, &keeps, &mut rows);
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
        // A group names someone while any of its accounts holds a handle or an id: a purge
        // written in slices and cut short can have emptied the root and not the others.
        let mut named = vec![false; roots as usize];
        for account in 0..roots {
            let state = &self.accounts[account as usize];
            if state.handle.is_some() || state.account_id.is_some() {
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
        let freed: BTreeSet<u32> = self.free_unreferenced().into_iter().collect();
        for account in emptied.difference(&freed) {
            rows.accounts.push((*account, Some(account_row(&self.accounts[*account as usize]))));
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

/// Drops from a day what belongs to accounts `keeps` says no to.
fn purge_day(day: Day, data: &mut DayData, keeps: &dyn Fn(u32) -> bool, rows: &mut LedgerRows) {
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
    for hash in data.evidence_posts.retain(|hash| referenced.contains(&hash)) {
        rows.seen.push(((day, hash.0), Some(SeenRow { evidence: None })));
    }
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
mod tests {
    use super::*;
    use crate::hunt::ledger::Window;
    use crate::hunt::observation::parse_line;

    const NOW: u64 = 1_800_000_000_000;

    fn ingest(ledger: &mut Ledger, lines: &str, touched: &mut Touched) {
        for (n, line) in lines.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let parsed = parse_line(line.trim(), n as u64 + 1, NOW, 0).unwrap();
            ledger.ingest_tracked(&parsed.observation, touched);
        }
    }

    /// Applies rows to an accumulated "store" of rows, as the store does by key.
    fn apply(store: &mut HashMap<String, String>, rows: &LedgerRows) {
        let mut put = |key: String, value: Option<String>| match value {
            Some(value) => store.insert(key, value),
            None => store.remove(&key),
        };
        for (k, v) in &rows.accounts {
            put(format!("n{k}"), v.as_ref().map(|v| format!("{v:?}")));
        }
        for (k, v) in &rows.aliases {
            put(format!("l{k}"), v.map(|v| v.to_string()));
        }
        for (k, v) in &rows.day_accounts {
            put(format!("d{k:?}"), v.as_ref().map(|v| format!("{v:?}")));
        }
        for (k, v) in &rows.edges {
            put(format!("y{k:?}"), v.as_ref().map(|v| format!("{v:?}")));
        }
        for (k, v) in &rows.seen {
            put(format!("s{k:?}"), v.as_ref().map(|v| format!("{v:?}")));
        }
        for (k, v) in &rows.follows {
            put(format!("g{k}"), v.as_ref().map(|v| format!("{v:?}")));
        }
    }

    const CORPUS: &str = r#"
        {"platform":"x","account":"@a","at":1600000000000,"post_id":"1","mentions":["@b","@c"],"urls":["https://e.org/1"]}
        {"platform":"x","account":"@b","at":1600000000000,"post_id":"2","repost_of":"@a"}
        {"platform":"x","account":"@old","at":1600000000000,"post_id":"3","reply_to":"@a"}
        {"platform":"x","account":"@new","account_id":"9","at":1600090000000,"post_id":"4","repost_of":"@a"}
        {"platform":"x","account":"@old","account_id":"9","at":1600050000000,"post_id":"5"}
        {"platform":"x","account":"@b","at":1600100000000,"follows":["@a","@c"]}"#;

    #[test]
    fn rows_of_every_batch_rebuild_the_same_ledger() {
        let mut ledger = Ledger::default();
        let mut store = HashMap::new();
        let mut all = LedgerRows::default();
        // One batch per line, as a client sending small chunks would.
        for line in CORPUS.lines().filter(|l| !l.trim().is_empty()) {
            let mut touched = Touched::default();
            ingest(&mut ledger, line, &mut touched);
            let rows = ledger.delta(&touched);
            apply(&mut store, &rows);
            all.accounts.extend(rows.accounts);
            all.aliases.extend(rows.aliases);
            all.day_accounts.extend(rows.day_accounts);
            all.edges.extend(rows.edges);
            all.seen.extend(rows.seen);
            all.follows.extend(rows.follows);
        }
        // Later rows of a key win, as in the store.
        let rebuilt = Ledger::from_rows(LedgerLimits::default(), last_wins(all));
        let window = Window { first: Day(0), last: Day(u32::MAX) };
        let activity = ledger.window_activity(window);
        assert_eq!(rebuilt.window_activity(window), activity);
        assert_eq!(
            rebuilt.window_edges(window, &activity, 0.5),
            ledger.window_edges(window, &activity, 0.5)
        );
        assert_eq!(rebuilt.post_count(), ledger.post_count());
        assert_eq!(alias_count(&rebuilt), alias_count(&ledger));
        let old = rebuilt.account_of(&"v1|account|x|old".parse().unwrap()).unwrap();
        assert_eq!(rebuilt.display(old).unwrap().as_str(), "v1|account|x|new");
        let merged = ledger.account_of(&"v1|account|x|old".parse().unwrap()).unwrap();
        assert_eq!(rebuilt.account_evidence(old, window).len(), 3, "posts 3, 4 and 5");
        assert_eq!(ledger.account_evidence(merged, window).len(), 3);
        // Ingesting the corpus again into the rebuilt ledger touches nothing.
        let mut again = rebuilt;
        let mut touched = Touched::default();
        ingest(&mut again, CORPUS, &mut touched);
        // (An older follow snapshot only notes when its author was seen.)
        assert!(touched.seen.is_empty() && touched.day_accounts.is_empty(), "{touched:?}");
        assert!(touched.edges.is_empty() && touched.follows.is_empty(), "{touched:?}");
    }

    fn last_wins(all: LedgerRows) -> LedgerRows {
        fn dedup<K: Ord + Clone, V>(rows: Vec<(K, Option<V>)>) -> Vec<(K, Option<V>)> {
            let mut map = std::collections::BTreeMap::new();
            for (k, v) in rows {
                map.insert(k, v);
            }
            map.into_iter().collect()
        }
        LedgerRows {
            accounts: dedup(all.accounts),
            aliases: dedup(all.aliases),
            day_accounts: dedup(all.day_accounts),
            edges: dedup(all.edges),
            seen: dedup(all.seen),
            follows: dedup(all.follows),
        }
    }

    #[test]
    fn a_purge_cut_short_inside_a_merged_group_is_completed_by_the_next() {
        // @q joins @p's account by its id: @p's account, made first, keeps the group, so the
        // purge writes the group's root before the account it absorbed.
        const MERGED: &str = r#"
        {"platform":"x","account":"@p","account_id":"7","at":1600000000000,"post_id":"10"}
        {"platform":"x","account":"@q","at":1600010000000,"post_id":"11"}
        {"platform":"x","account":"@q","account_id":"7","at":1600020000000,"post_id":"12"}"#;
        let mut ledger = Ledger::default();
        let mut touched = Touched::default();
        ingest(&mut ledger, &format!("{CORPUS}\n{MERGED}"), &mut touched);
        let held = ledger.delta(&touched);
        let a: Canonical = "v1|account|x|a".parse().unwrap();
        let is_record = |names: &[&Canonical]| names.contains(&&a);
        let purge = ledger.purge_unrecorded(Day(u32::MAX), &is_record);
        let names = |ledger: &Ledger| {
            let held = |state: &AccountState| state.handle.is_some() || state.account_id.is_some();
            ledger.accounts.iter().filter(|state| held(state)).count()
        };
        let whole = names(&ledger);
        // Cut the purge after each of its account rows in turn, as a crash between two slices
        // would.
        assert!(purge.accounts.len() > 1, "{:?}", purge.accounts);
        for cut in 0..purge.accounts.len() {
            let mut rows = held.clone();
            rows.aliases.extend(purge.aliases.iter().cloned());
            rows.day_accounts.extend(purge.day_accounts.iter().cloned());
            rows.edges.extend(purge.edges.iter().cloned());
            rows.seen.extend(purge.seen.iter().cloned());
            rows.follows.extend(purge.follows.iter().cloned());
            rows.accounts.extend(purge.accounts[..cut].iter().cloned());
            let mut rebuilt = Ledger::from_rows(LedgerLimits::default(), last_wins(rows));
            rebuilt.purge_unrecorded(Day(u32::MAX), &is_record);
            assert_eq!(names(&rebuilt), whole, "cut after {cut} account rows");
        }
    }

    #[test]
    fn unrecorded_accounts_lose_their_old_days_and_then_their_names() {
        let mut ledger = Ledger::default();
        ingest(&mut ledger, CORPUS, &mut Touched::default());
        let a: Canonical = "v1|account|x|a".parse().unwrap();
        let is_record = |names: &[&Canonical]| names.contains(&&a);
        let rows = ledger.purge_unrecorded(Day(u32::MAX), &is_record);
        let window = Window { first: Day(0), last: Day(u32::MAX) };
        let activity = ledger.window_activity(window);
        let account_a = ledger.account_of(&a).unwrap();
        assert_eq!(activity.len(), 1, "only the record's counts stay: {activity:?}");
        assert_eq!(activity[&account_a].originals, 1);
        // @b and @c stay named: the record's edges point at them. @old (renamed @new) is gone.
        assert!(ledger.account_of(&"v1|account|x|b".parse().unwrap()).is_some());
        assert!(ledger.account_of(&"v1|account|x|old".parse().unwrap()).is_none(), "forgotten");
        assert!(ledger.account_of(&"v1|account|x|new".parse().unwrap()).is_none());
        assert!(ledger.account_of(&"v1|account_id|x|9".parse().unwrap()).is_none());
        assert_eq!(ledger.post_count(), 5, "seen hashes stay until the general retention");
        assert!(!rows.aliases.is_empty() && rows.aliases.iter().all(|(_, v)| v.is_none()));
        // Edges from the record stay; its targets are kept as slots (@b, @c were mentioned).
        assert_eq!(ledger.window_edges(window, &activity, 0.5).len(), 2);
        assert_eq!(ledger.account_evidence(account_a, window).len(), 1);
    }

    const DAY: u64 = 86_400_000;
    const START: u64 = 1_600_000_000_000;

    /// `count` accounts new on `day`, each posting once and mentioning the one before it.
    fn newcomers(day: u64, count: u64) -> String {
        let at = START + day * DAY;
        (0..count)
            .map(|i| {
                let account = format!(r#""platform":"x","account":"@u{day}x{i}","at":{at}"#);
                let mention = match i {
                    0 => String::new(),
                    _ => format!(r#","mentions":["@u{day}x{}"]"#, i - 1),
                };
                format!(r#"{{{account},"post_id":"{day}-{i}"{mention}}}"#) + "\n"
            })
            .collect()
    }

    fn extend(all: &mut LedgerRows, rows: LedgerRows) {
        all.accounts.extend(rows.accounts);
        all.aliases.extend(rows.aliases);
        all.day_accounts.extend(rows.day_accounts);
        all.edges.extend(rows.edges);
        all.seen.extend(rows.seen);
        all.follows.extend(rows.follows);
    }

    fn account(handle: &str) -> Canonical {
        format!("v1|account|x|{handle}").parse().unwrap()
    }

    #[test]
    fn forgotten_accounts_free_their_slots_and_newcomers_take_them() {
        let mut ledger = Ledger::default();
        let mut all = LedgerRows::default();
        let never = |_: &[&Canonical]| false;
        // Thirty days of 100 new accounts a day, the last three days kept.
        for day in 0..30 {
            let mut touched = Touched::default();
            ingest(&mut ledger, &newcomers(day, 100), &mut touched);
            extend(&mut all, ledger.delta(&touched));
            let first_kept = Day::of_ms(START + day * DAY).0.saturating_sub(2);
            extend(&mut all, ledger.purge_unrecorded(Day(first_kept), &never));
            // Three days' accounts in use, and the slots of a fourth that the newest took.
            let in_use = ledger.account_count() - ledger.free_count();
            assert_eq!(in_use, 100 * (day as usize + 1).min(3), "day {day}");
            assert!(ledger.account_count() <= 400, "day {day}: {}", ledger.account_count());
        }
        assert!(ledger.account_of(&account("u26x0")).is_none(), "forgotten");
        assert!(ledger.account_of(&account("u27x0")).is_some(), "kept");
        // The store's rows give the same ledger, down to the next slot handed out.
        let mut rebuilt = Ledger::from_rows(LedgerLimits::default(), last_wins(all.clone()));
        assert_eq!(rebuilt.account_count(), ledger.account_count());
        assert_eq!(rebuilt.free_count(), ledger.free_count());
        let stored = last_wins(all).accounts.iter().filter(|(_, row)| row.is_some()).count();
        assert_eq!(stored, ledger.account_count() - ledger.free_count(), "freed rows deleted");
        let window = Window { first: Day(0), last: Day(u32::MAX) };
        assert_eq!(rebuilt.window_activity(window), ledger.window_activity(window));
        // A day of fewer newcomers takes free slots, lowest first, in both alike.
        let (mut touched, mut again) = (Touched::default(), Touched::default());
        ingest(&mut ledger, &newcomers(30, 10), &mut touched);
        ingest(&mut rebuilt, &newcomers(30, 10), &mut again);
        let newcomer = account("u30x9");
        assert_eq!(ledger.account_of(&newcomer), rebuilt.account_of(&newcomer));
        let slot = ledger.account_of(&newcomer).unwrap().0;
        assert!((slot as usize) < ledger.account_count() - 1, "a free slot, not a new one");
        // The reused slots' rows are written anew.
        let rows = ledger.delta(&touched);
        assert!(rows.accounts.iter().any(|(index, row)| *index == slot && row.is_some()));
    }

    #[test]
    fn a_forgotten_account_a_snapshot_follows_keeps_its_slot_until_the_snapshot_goes() {
        let lines = r#"
        {"platform":"x","account":"@r","at":1600000000000,"post_id":"1"}
        {"platform":"x","account":"@x","at":1600000000000,"post_id":"2"}
        {"platform":"x","account":"@r","at":1600000000000,"follows":["@x"]}"#;
        let mut ledger = Ledger::default();
        ingest(&mut ledger, lines, &mut Touched::default());
        let r = account("r");
        let is_record = |names: &[&Canonical]| names.contains(&&r);
        let x = ledger.account_of(&account("x")).unwrap();
        let later = Day(Day::of_ms(1_600_000_000_000).0 + 5);
        let rows = ledger.purge_unrecorded(later, &is_record);
        assert!(ledger.account_of(&account("x")).is_none(), "@x is forgotten");
        assert!(rows.accounts.iter().any(|(index, row)| *index == x.0 && row.is_some()));
        assert_eq!(ledger.free_count(), 0, "@r's snapshot still lists @x's slot");
        // The general retention takes the snapshot; the next purge frees the slot.
        ledger.purge_before_rows(later);
        let rows = ledger.purge_unrecorded(later, &is_record);
        assert_eq!(rows.accounts, vec![(x.0, None)]);
        // The last slot: dropped rather than kept free.
        assert_eq!((ledger.account_count(), ledger.free_count()), (1, 0));
        assert!(ledger.account_of(&r).is_some(), "a record is never forgotten");
    }

    #[test]
    fn a_purge_cut_at_any_row_is_completed_by_the_next_and_frees_the_same_slots() {
        const MERGED: &str = r#"
        {"platform":"x","account":"@p","account_id":"7","at":1600000000000,"post_id":"10"}
        {"platform":"x","account":"@q","at":1600010000000,"post_id":"11","mentions":["@p"]}
        {"platform":"x","account":"@q","account_id":"7","at":1600020000000,"post_id":"12"}
        {"platform":"x","account":"@z","at":1600020000000,"follows":["@q","@b"]}"#;
        let mut ledger = Ledger::default();
        let mut touched = Touched::default();
        ingest(&mut ledger, &format!("{CORPUS}\n{MERGED}\n{}", newcomers(0, 5)), &mut touched);
        let held = ledger.delta(&touched);
        let a = account("a");
        let is_record = |names: &[&Canonical]| names.contains(&&a);
        let purge = ledger.purge_unrecorded(Day(u32::MAX), &is_record);
        assert!(purge.accounts.iter().any(|(_, row)| row.is_none()), "slots are freed");
        // The purge's rows one at a time, in the store's key order: d, g, l, n, s, y.
        let sorted = last_wins(purge);
        let row = LedgerRows::default;
        let mut keyed: Vec<LedgerRows> = Vec::new();
        keyed.extend(
            sorted.day_accounts.into_iter().map(|r| LedgerRows { day_accounts: vec![r], ..row() }),
        );
        keyed.extend(sorted.follows.into_iter().map(|r| LedgerRows { follows: vec![r], ..row() }));
        keyed.extend(sorted.aliases.into_iter().map(|r| LedgerRows { aliases: vec![r], ..row() }));
        keyed
            .extend(sorted.accounts.into_iter().map(|r| LedgerRows { accounts: vec![r], ..row() }));
        keyed.extend(sorted.seen.into_iter().map(|r| LedgerRows { seen: vec![r], ..row() }));
        keyed.extend(sorted.edges.into_iter().map(|r| LedgerRows { edges: vec![r], ..row() }));
        let window = Window { first: Day(0), last: Day(u32::MAX) };
        for cut in 0..=keyed.len() {
            let mut rows = held.clone();
            for part in &keyed[..cut] {
                extend(&mut rows, part.clone());
            }
            let mut rebuilt = Ledger::from_rows(LedgerLimits::default(), last_wins(rows));
            rebuilt.purge_unrecorded(Day(u32::MAX), &is_record);
            assert_eq!(alias_count(&rebuilt), alias_count(&ledger), "cut at {cut}");
            assert_eq!(rebuilt.account_count(), ledger.account_count(), "cut at {cut}");
            assert_eq!(rebuilt.free_count(), ledger.free_count(), "cut at {cut}");
            assert_eq!(rebuilt.window_activity(window), ledger.window_activity(window));
            // No alias names a free slot.
            for (alias, &target) in &rebuilt.aliases {
                assert!(!rebuilt.free.contains(&rebuilt.root_of(target)), "{alias:?} at {cut}");
            }
        }
    }
}
