//! Successors: new accounts that look like a removed account come back under another name.
//!
//! For each removed account (a canonical form, the removal's time, and whether it was
//! reinstated), its **interaction circle** is frozen as of the removal: its partners (both
//! directions) over the structure window that ends on the removal's day. **Candidates** are the
//! accounts of the same platform first seen (as authors) from `new_since_ms` (default 24 h)
//! before the removal onwards. A candidate is scored on three parts, each in `[0, 1]` and each
//! with its evidence:
//!
//! - **Neighbourhood overlap**: Jaccard weighted by inverse degree, `Σ_{A∩B} w / Σ_{A∪B} w`
//!   over the old circle `A` and the candidate's partners `B` (the old account and the
//!   candidate left out of both), with `w(x) = 1 / ln(1 + deg(x))` and `deg(x)` the distinct
//!   partners of `x` over the days scanned (Adamic–Adar's weight, shifted by one so that an
//!   account with one partner weighs `1/ln 2` rather than infinity): sharing a hub that talks
//!   to everyone counts little, sharing a niche partner counts much. Zero unless at least
//!   `min_common` (default 5) partners are shared.
//! - **Announcement**: distinct members of the old circle that mentioned the candidate, over
//!   `announcers_full` (default 3), at most 1 (the ledger counts mentions per edge-day; a
//!   repost or a reply is not an announcement). The evidence is those edges' kept posts.
//! - **Handle similarity** on the handle part of the canonical forms, with `_`, `.` and `-`
//!   removed: `1 − levenshtein / longer length`, and at least 0.8 when one handle (of at least
//!   4 characters) is the other with at most 4 characters appended (`abu_x` → `abu_x2024`).
//!   Counted when at least `handle_min` (default 0.6); an account id has no handle and scores 0.
//!
//! The score is `weight_overlap · overlap + weight_announce · announcement + weight_handle ·
//! handle` (defaults 0.5, 0.25, 0.25), and a candidate at or above `threshold` (default 0.3) is
//! a "likely successor". **A reinstatement is not a successor**: the old account itself (and an
//! account merged with it by `account_id`, which the ledger holds as the same account) is
//! never a candidate, and an account reinstated (status `reinstated` after `removed`) or seen
//! posting again after its removal time yields no suggestions: it is the same account
//! restored, and is listed as such.
//!
//! Pure, in two steps like the analytics: [`SuccessorSnapshot::take`] reads the ledger (one
//! pass over the edges of the days concerned, under the ledger's lock) and
//! [`SuccessorSnapshot::compute`] scores without it.

use std::collections::HashMap;

use crossmatch_protocol::Kind;
use rustc_hash::{FxHashMap, FxHashSet};

use super::ledger::{AccountIndex, Day, EvidencePost, Ledger, Window};

/// Milliseconds in a day.
const DAY_MS: u64 = 86_400_000;
/// Most shared partners named in an overlap's evidence (the heaviest by weight).
pub const MAX_PARTNERS_SHOWN: usize = 20;
/// Most evidence posts kept per announcing edge, and per suggestion.
pub const MAX_ANNOUNCEMENT_POSTS: usize = 10;

/// A removed account, as the node's records and their statuses say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedAccount {
    /// Its canonical form.
    pub account: String,
    /// When it was removed (Unix ms).
    pub removed_at_ms: u64,
    /// Whether a `reinstated` status came after the removal.
    pub reinstated: bool,
}

/// How successors are found (the config's `[hunt] successor_*` keys).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessorSettings {
    /// The circle's window: days ending on the removal's day (default 7, the structure window).
    pub circle_days: u32,
    /// Removals older than this many days are not searched (default 14).
    pub lookback_days: u32,
    /// Candidates are first seen at most this long before the removal (default 24 h).
    pub new_since_ms: u64,
    /// Shared partners needed for the overlap to count (default 5).
    pub min_common: usize,
    /// Announcers that make the announcement part 1 (default 3).
    pub announcers_full: u32,
    /// The least handle similarity that counts (default 0.6).
    pub handle_min: f64,
    /// The overlap's weight (default 0.5).
    pub weight_overlap: f64,
    /// The announcement's weight (default 0.25).
    pub weight_announce: f64,
    /// The handle's weight (default 0.25).
    pub weight_handle: f64,
    /// The least score of a likely successor (default 0.3).
    pub threshold: f64,
    /// Most suggestions per removed account, best first (default 5).
    pub max_per_account: usize,
    /// Most removed accounts searched, newest removals first (default 1,000).
    pub max_removed: usize,
}

impl Default for SuccessorSettings {
    fn default() -> Self {
        Self {
            circle_days: 7,
            lookback_days: 14,
            new_since_ms: DAY_MS,
            min_common: 5,
            announcers_full: 3,
            handle_min: 0.6,
            weight_overlap: 0.5,
            weight_announce: 0.25,
            weight_handle: 0.25,
            threshold: 0.3,
            max_per_account: 5,
            max_removed: 1_000,
        }
    }
}

/// The overlap part and its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    /// The part, in `[0, 1]` (0 below `min_common` shared partners).
    pub score: f64,
    /// The weighted Jaccard itself, counted or not.
    pub jaccard: f64,
    /// Partners shared.
    pub common: usize,
    /// The old circle's size.
    pub old_circle: usize,
    /// The candidate's partners.
    pub candidate_partners: usize,
    /// The shared partners with the most weight, at most [`MAX_PARTNERS_SHOWN`].
    pub partners: Vec<String>,
}

/// The announcement part and its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// The part, in `[0, 1]`.
    pub score: f64,
    /// Old circle members that mentioned the candidate.
    pub announcers: Vec<String>,
    /// Their posts, at most [`MAX_ANNOUNCEMENT_POSTS`].
    pub posts: Vec<EvidencePost>,
}

/// The handle part and its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct HandleMatch {
    /// The part: the similarity when at least `handle_min`, else 0.
    pub score: f64,
    /// The similarity, counted or not.
    pub similarity: f64,
}

/// A "likely successor of …" suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct Successor {
    /// The removed account (canonical form).
    pub old: String,
    /// When it was removed.
    pub removed_at_ms: u64,
    /// The new account (canonical form).
    pub account: String,
    /// When the new account was first seen posting (0 if it has not posted).
    pub first_seen_ms: u64,
    /// The weighted sum of the parts.
    pub score: f64,
    /// Neighbourhood overlap.
    pub overlap: Overlap,
    /// Mentions by the old circle.
    pub announcement: Announcement,
    /// Handle similarity.
    pub handle: HandleMatch,
}

/// One computation's successors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Successors {
    /// Suggestions, by removed account (newest removal first), best first within one.
    pub suggestions: Vec<Successor>,
    /// Removed accounts searched.
    pub searched: usize,
    /// Removed accounts that are back (status `reinstated`, or seen posting after the removal):
    /// reinstatements, not searched.
    pub reinstated: Vec<String>,
}

#[derive(Debug, Clone)]
struct Removal {
    old: String,
    root: u32,
    platform: String,
    handle: Option<String>,
    removed_at_ms: u64,
    /// Partners over the circle window, with the summed weight of their edges.
    circle: FxHashMap<u32, f64>,
    /// Candidates (root indices), first seen from `new_since_ms` before the removal on.
    candidates: Vec<u32>,
}

#[derive(Debug, Clone)]
struct Candidate {
    name: String,
    handle: Option<String>,
    first_seen_ms: u64,
    partners: FxHashSet<u32>,
}

/// What the successor search needs of the ledger, copied under its lock.
#[derive(Debug, Clone)]
pub struct SuccessorSnapshot {
    settings: SuccessorSettings,
    removals: Vec<Removal>,
    candidates: FxHashMap<u32, Candidate>,
    degree: FxHashMap<u32, u32>,
    names: FxHashMap<u32, String>,
    announcements: HashMap<(AccountIndex, AccountIndex), Vec<EvidencePost>>,
    reinstated: Vec<String>,
}

impl SuccessorSnapshot {
    /// Reads what the search for `removed` needs at `now_ms` from the ledger.
    pub fn take(
        ledger: &Ledger,
        removed: &[RemovedAccount],
        now_ms: u64,
        settings: SuccessorSettings,
    ) -> Self {
        let today = Day::of_ms(now_ms);
        let oldest_ms = now_ms.saturating_sub(u64::from(settings.lookback_days) * DAY_MS);
        let mut newest_first: Vec<&RemovedAccount> =
            removed.iter().filter(|r| r.removed_at_ms >= oldest_ms).collect();
        newest_first
            .sort_by(|a, b| b.removed_at_ms.cmp(&a.removed_at_ms).then(a.account.cmp(&b.account)));
        let mut reinstated = Vec::new();
        let mut removals: Vec<Removal> = Vec::new();
        for removed in newest_first {
            if removals.len() >= settings.max_removed {
                break;
            }
            let Ok(canonical) = removed.account.parse::<crossmatch_protocol::Canonical>() else {
                continue;
            };
            let Some(root) = ledger.account_of(&canonical) else { continue };
            let posted_again =
                ledger.seen(root).is_some_and(|(_, last)| last > removed.removed_at_ms);
            if removed.reinstated || posted_again {
                reinstated.push(removed.account.clone());
                continue;
            }
            if removals.iter().any(|r| r.root == root.0) {
                continue;
            }
            let shown = ledger.display(root);
            removals.push(Removal {
                old: shown.map_or_else(|| removed.account.clone(), |c| c.as_str().to_owned()),
                root: root.0,
                platform: shown.and_then(|c| c.platform()).unwrap_or_default().to_owned(),
                handle: shown.and_then(handle_of),
                removed_at_ms: removed.removed_at_ms,
                circle: FxHashMap::default(),
                candidates: Vec::new(),
            });
        }
        let mut snapshot = Self {
            settings,
            removals,
            candidates: FxHashMap::default(),
            degree: FxHashMap::default(),
            names: FxHashMap::default(),
            announcements: HashMap::new(),
            reinstated,
        };
        if snapshot.removals.is_empty() {
            return snapshot;
        }
        snapshot.find_candidates(ledger);
        let first = snapshot
            .removals
            .iter()
            .map(|r| Window::ending(Day::of_ms(r.removed_at_ms), settings.circle_days).first)
            .min()
            .unwrap_or(today);
        let days = Window { first, last: today.max(first) };
        snapshot.read_partners(ledger, days);
        snapshot.read_degrees_and_announcements(ledger, days);
        snapshot
    }

    /// Every root account of a removal's platform first seen from `new_since_ms` before it on.
    fn find_candidates(&mut self, ledger: &Ledger) {
        let earliest = self
            .removals
            .iter()
            .map(|r| r.removed_at_ms.saturating_sub(self.settings.new_since_ms))
            .min()
            .unwrap_or(u64::MAX);
        for index in 0..ledger.account_count() {
            let account = AccountIndex(index as u32);
            if ledger.root(account) != account {
                continue;
            }
            let Some((first_seen_ms, _)) = ledger.seen(account) else { continue };
            if first_seen_ms < earliest {
                continue;
            }
            let Some(shown) = ledger.display(account) else { continue };
            let platform = shown.platform().unwrap_or_default();
            let mut wanted = false;
            for removal in &mut self.removals {
                let since = removal.removed_at_ms.saturating_sub(self.settings.new_since_ms);
                if removal.root != account.0
                    && first_seen_ms >= since
                    && removal.platform == platform
                {
                    removal.candidates.push(account.0);
                    wanted = true;
                }
            }
            if wanted {
                self.candidates.insert(
                    account.0,
                    Candidate {
                        name: shown.as_str().to_owned(),
                        handle: handle_of(shown),
                        first_seen_ms,
                        partners: FxHashSet::default(),
                    },
                );
            }
        }
    }

    /// The old circles (each over its own window) and the candidates' partners (over all the
    /// days: a candidate has no edges from before it appeared, but for being mentioned).
    fn read_partners(&mut self, ledger: &Ledger, days: Window) {
        let olds: FxHashMap<u32, Vec<usize>> = {
            let mut olds: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
            for (n, removal) in self.removals.iter().enumerate() {
                olds.entry(removal.root).or_default().push(n);
            }
            olds
        };
        let circle_windows: Vec<Window> = self
            .removals
            .iter()
            .map(|r| Window::ending(Day::of_ms(r.removed_at_ms), self.settings.circle_days))
            .collect();
        for day in days.first.0..=days.last.0 {
            let day = Day(day);
            ledger.for_each_window_interaction(Window { first: day, last: day }, |from, to, w| {
                for (end, partner) in [(from.0, to.0), (to.0, from.0)] {
                    if let Some(removals) = olds.get(&end) {
                        for &n in removals {
                            let window = circle_windows[n];
                            if window.first <= day && day <= window.last {
                                *self.removals[n].circle.entry(partner).or_default() += w;
                            }
                        }
                    }
                    if let Some(candidate) = self.candidates.get_mut(&end) {
                        candidate.partners.insert(partner);
                    }
                }
            });
        }
    }

    /// The degree of every account in a circle or among a candidate's partners (distinct
    /// partners over the days), the edges from circle members to candidates with their
    /// evidence, and the names of the accounts evidence may show.
    fn read_degrees_and_announcements(&mut self, ledger: &Ledger, days: Window) {
        let mut relevant: FxHashSet<u32> = FxHashSet::default();
        let mut circles: FxHashSet<u32> = FxHashSet::default();
        for removal in &self.removals {
            circles.extend(removal.circle.keys().copied());
        }
        relevant.extend(circles.iter().copied());
        for candidate in self.candidates.values() {
            relevant.extend(candidate.partners.iter().copied());
        }
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        ledger.for_each_window_interaction(days, |from, to, _| {
            if relevant.contains(&from.0) {
                pairs.push((from.0, to.0));
            }
            if relevant.contains(&to.0) {
                pairs.push((to.0, from.0));
            }
        });
        let mut announcing: FxHashSet<(u32, u32)> = FxHashSet::default();
        ledger.for_each_window_mention(days, |from, to, _| {
            if circles.contains(&from.0) && self.candidates.contains_key(&to.0) {
                announcing.insert((from.0, to.0));
            }
        });
        pairs.sort_unstable();
        pairs.dedup();
        for (account, _) in pairs {
            *self.degree.entry(account).or_default() += 1;
        }
        if !announcing.is_empty() {
            self.announcements = ledger.edges_evidence(
                days,
                |from, to| announcing.contains(&(from.0, to.0)),
                MAX_ANNOUNCEMENT_POSTS,
            );
            for &(from, to) in &announcing {
                self.announcements.entry((AccountIndex(from), AccountIndex(to))).or_default();
            }
        }
        for account in relevant {
            if let Some(shown) = ledger.display(AccountIndex(account)) {
                self.names.insert(account, shown.as_str().to_owned());
            }
        }
    }

    /// Scores every removal's candidates and keeps the likely successors.
    pub fn compute(self) -> Successors {
        let settings = self.settings;
        let weight = |account: &u32| {
            let degree = self.degree.get(account).copied().unwrap_or(1).max(1);
            1.0 / (1.0 + f64::from(degree)).ln()
        };
        let name = |account: &u32| self.names.get(account).cloned().unwrap_or_default();
        let mut suggestions = Vec::new();
        for removal in &self.removals {
            let circle: FxHashMap<u32, f64> = removal.circle.clone();
            let circle_weight: f64 = circle.keys().map(weight).sum();
            let mut found: Vec<Successor> = Vec::new();
            for candidate_index in &removal.candidates {
                let Some(candidate) = self.candidates.get(candidate_index) else { continue };
                let in_circle = |x: &u32| *x != *candidate_index && circle.contains_key(x);
                let mut common: Vec<u32> = Vec::new();
                let mut union_weight = circle_weight
                    - if circle.contains_key(candidate_index) {
                        weight(candidate_index)
                    } else {
                        0.0
                    };
                for partner in candidate.partners.iter().filter(|p| **p != removal.root) {
                    if in_circle(partner) {
                        common.push(*partner);
                    } else {
                        union_weight += weight(partner);
                    }
                }
                let shared_weight: f64 = common.iter().map(weight).sum();
                let jaccard = if union_weight > 0.0 { shared_weight / union_weight } else { 0.0 };
                let overlap_score = if common.len() >= settings.min_common { jaccard } else { 0.0 };
                let mut announcers: Vec<u32> = circle
                    .keys()
                    .filter(|x| {
                        **x != *candidate_index
                            && self
                                .announcements
                                .contains_key(&(AccountIndex(**x), AccountIndex(*candidate_index)))
                    })
                    .copied()
                    .collect();
                announcers.sort_unstable();
                let announce_score =
                    (announcers.len() as f64 / f64::from(settings.announcers_full.max(1))).min(1.0);
                let similarity = match (&removal.handle, &candidate.handle) {
                    (Some(old), Some(new)) => handle_similarity(old, new),
                    _ => 0.0,
                };
                let handle_score = if similarity >= settings.handle_min { similarity } else { 0.0 };
                let score = settings.weight_overlap * overlap_score
                    + settings.weight_announce * announce_score
                    + settings.weight_handle * handle_score;
                if score < settings.threshold || score <= 0.0 {
                    continue;
                }
                common.sort_by(|a, b| {
                    weight(b).total_cmp(&weight(a)).then_with(|| name(a).cmp(&name(b)))
                });
                let mut posts = Vec::new();
                for announcer in &announcers {
                    let key = (AccountIndex(*announcer), AccountIndex(*candidate_index));
                    for post in self.announcements.get(&key).into_iter().flatten() {
                        if posts.len() < MAX_ANNOUNCEMENT_POSTS {
                            posts.push(post.clone());
                        }
                    }
                }
                found.push(Successor {
                    old: removal.old.clone(),
                    removed_at_ms: removal.removed_at_ms,
                    account: candidate.name.clone(),
                    first_seen_ms: candidate.first_seen_ms,
                    score,
                    overlap: Overlap {
                        score: overlap_score,
                        jaccard,
                        common: common.len(),
                        old_circle: circle.len(),
                        candidate_partners: candidate.partners.len(),
                        partners: common.iter().take(MAX_PARTNERS_SHOWN).map(name).collect(),
                    },
                    announcement: Announcement {
                        score: announce_score,
                        announcers: announcers.iter().map(name).collect(),
                        posts,
                    },
                    handle: HandleMatch { score: handle_score, similarity },
                });
            }
            found.sort_by(|a, b| {
                b.score.total_cmp(&a.score).then_with(|| a.account.cmp(&b.account))
            });
            found.truncate(settings.max_per_account);
            suggestions.extend(found);
        }
        let mut reinstated = self.reinstated;
        reinstated.sort();
        reinstated.dedup();
        Successors { suggestions, searched: self.removals.len(), reinstated }
    }
}

/// The handle part of an account's canonical form (`None` for an account id).
fn handle_of(canonical: &crossmatch_protocol::Canonical) -> Option<String> {
    (canonical.kind() == Kind::Account).then(|| canonical.value().to_owned())
}

/// How alike two handles are, in `[0, 1]` (see the module docs).
pub fn handle_similarity(old: &str, new: &str) -> f64 {
    let fold = |handle: &str| -> Vec<char> {
        handle
            .chars()
            .filter(|c| !matches!(c, '_' | '.' | '-'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (fold(old), fold(new));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let longer = a.len().max(b.len());
    let edit = 1.0 - levenshtein(&a, &b) as f64 / longer as f64;
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    let extends = short.len() >= 4 && long.len() - short.len() <= 4 && long.starts_with(short);
    if extends { edit.max(0.8) } else { edit }
}

/// The edit distance between two strings of characters (insertions, deletions, substitutions).
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The removed accounts among `statuses`: (canonical form, each status with its time, from the
/// node itself and from every member holding the token). The latest `removed` counts; a
/// `reinstated` at or after it marks the account reinstated. Only the latest status of each
/// source is kept, so a `reinstated` without any `removed` left stands for a removal undone:
/// the account is listed, reinstated, at that time. Accounts with neither are left out.
pub fn removed_accounts(
    statuses: &HashMap<String, Vec<(crossmatch_protocol::Status, u64)>>,
) -> Vec<RemovedAccount> {
    use crossmatch_protocol::Status;
    let latest = |statuses: &[(Status, u64)], wanted: Status| {
        statuses.iter().filter(|(status, _)| *status == wanted).map(|(_, at)| *at).max()
    };
    let mut out: Vec<RemovedAccount> = statuses
        .iter()
        .filter_map(|(account, statuses)| {
            let removed = latest(statuses, Status::Removed);
            let reinstated = latest(statuses, Status::Reinstated);
            let removed_at_ms = removed.or(reinstated)?;
            let reinstated = reinstated.is_some_and(|at| at >= removed_at_ms);
            Some(RemovedAccount { account: account.clone(), removed_at_ms, reinstated })
        })
        .collect();
    out.sort_by(|a, b| a.account.cmp(&b.account));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hunt::observation::parse_line;

    const T: u64 = 1_700_000_000_000;
    const HOUR: u64 = 3_600_000;

    fn post(ledger: &mut Ledger, n: &mut u32, account: &str, at: u64, extra: &str) {
        *n += 1;
        let line = format!(
            r#"{{"platform":"x","account":"@{account}","at":{at},"post_id":"p{n}"{extra}}}"#
        );
        ledger.ingest(&parse_line(&line, 1, u64::MAX / 2, 0).unwrap().observation);
    }

    /// `@abu_x` and its circle of 8 over the 3 days before `T`; a hub everyone reposts.
    fn corpus() -> (Ledger, u32) {
        let mut ledger = Ledger::default();
        let mut n = 0;
        for day in 1..=3u64 {
            let at = T - day * DAY_MS;
            for p in 0..8 {
                post(&mut ledger, &mut n, &format!("fan{p}"), at, r#","repost_of":"@abu_x""#);
                post(&mut ledger, &mut n, &format!("fan{p}"), at + 1, r#","repost_of":"@hub""#);
            }
            post(&mut ledger, &mut n, "abu_x", at, r#","mentions":["@fan0","@fan1"]"#);
            post(&mut ledger, &mut n, "abu_x", at + 2, r#","repost_of":"@hub""#);
            for o in 0..30 {
                post(&mut ledger, &mut n, &format!("other{o}"), at, r#","repost_of":"@hub""#);
            }
        }
        (ledger, n)
    }

    fn canonical(handle: &str) -> String {
        crossmatch_protocol::canonicalize(Kind::Account, Some("x"), None, handle)
            .unwrap()
            .into_string()
    }

    fn removed(handle: &str, reinstated: bool) -> RemovedAccount {
        RemovedAccount { account: canonical(handle), removed_at_ms: T, reinstated }
    }

    fn search(ledger: &Ledger, removed: &[RemovedAccount]) -> Successors {
        let now = T + 2 * DAY_MS;
        SuccessorSnapshot::take(ledger, removed, now, SuccessorSettings::default()).compute()
    }

    /// After the removal: `@abu_x2` takes over 7 of the 8 fans, one of them announcing it, and
    /// `@newbie`, another new account, is reposted by two fans and the hub's crowd.
    fn after_removal(ledger: &mut Ledger, n: &mut u32) {
        let at = T + 2 * HOUR;
        post(ledger, n, "abu_x2", at, r#","repost_of":"@hub""#);
        for p in 0..7 {
            post(ledger, n, &format!("fan{p}"), at + 10, r#","repost_of":"@abu_x2""#);
        }
        post(
            ledger,
            n,
            "fan0",
            at + 20,
            r#","mentions":["@abu_x2"],"urls":["https://x.com/fan0/status/9"]"#,
        );
        post(ledger, n, "newbie", at, r#","repost_of":"@hub""#);
        for p in 0..2 {
            post(ledger, n, &format!("fan{p}"), at + 30, r#","repost_of":"@newbie""#);
        }
        for o in 0..10 {
            post(ledger, n, &format!("other{o}"), at + 30, r#","repost_of":"@newbie""#);
        }
    }

    #[test]
    fn a_successor_is_flagged_after_a_removal_with_evidence_for_each_part() {
        let (mut ledger, mut n) = corpus();
        after_removal(&mut ledger, &mut n);
        let found = search(&ledger, &[removed("@abu_x", false)]);
        assert_eq!(found.searched, 1);
        assert_eq!(found.suggestions.len(), 1, "{:#?}", found.suggestions);
        let successor = &found.suggestions[0];
        assert_eq!(successor.old, canonical("@abu_x"));
        assert_eq!(successor.account, canonical("@abu_x2"));
        assert_eq!(successor.overlap.common, 8, "seven fans and the hub");
        assert_eq!(
            successor.overlap.partners.last(),
            Some(&canonical("@hub")),
            "the hub, partner of nearly everyone, weighs least"
        );
        assert!(successor.overlap.score > 0.3, "{:?}", successor.overlap);
        assert!(successor.overlap.partners.contains(&canonical("@fan0")));
        assert_eq!(
            successor.announcement.announcers,
            [canonical("@fan0")],
            "reposts announce nothing"
        );
        assert!((successor.announcement.score - 1.0 / 3.0).abs() < 1e-9);
        assert!(
            successor
                .announcement
                .posts
                .iter()
                .any(|post| post.urls == ["https://x.com/fan0/status/9"])
        );
        assert!((successor.handle.similarity - 0.8).abs() < 1e-9, "{:?}", successor.handle);
        assert!(successor.score >= SuccessorSettings::default().threshold);
        // Without the removal nothing is searched.
        assert!(search(&ledger, &[]).suggestions.is_empty());
    }

    #[test]
    fn a_reinstatement_is_not_mistaken_for_a_successor() {
        // The status says reinstated: no search.
        let (mut ledger, mut n) = corpus();
        after_removal(&mut ledger, &mut n);
        let found = search(&ledger, &[removed("@abu_x", true)]);
        assert_eq!((found.searched, found.suggestions.len()), (0, 0));
        assert_eq!(found.reinstated, [canonical("@abu_x")]);

        // The account comes back under a new handle with its account id: the same account.
        let (mut ledger, mut n) = corpus();
        post(&mut ledger, &mut n, "abu_x", T - DAY_MS, r#","account_id":"77""#);
        post(&mut ledger, &mut n, "abu_x_", T + HOUR, r#","account_id":"77","repost_of":"@hub""#);
        for p in 0..8 {
            post(
                &mut ledger,
                &mut n,
                &format!("fan{p}"),
                T + 2 * HOUR,
                r#","repost_of":"@abu_x_""#,
            );
        }
        let found = search(&ledger, &[removed("@abu_x", false)]);
        assert!(found.suggestions.is_empty(), "{:#?}", found.suggestions);
        assert_eq!(found.reinstated, [canonical("@abu_x")], "seen posting after its removal");

        // Even while the removal stands, the old account is never its own successor.
        let (mut ledger, mut n) = corpus();
        for p in 0..8 {
            post(&mut ledger, &mut n, &format!("fan{p}"), T + HOUR, r#","repost_of":"@abu_x""#);
        }
        let found = search(&ledger, &[removed("@abu_x", false)]);
        assert_eq!((found.searched, found.suggestions.len()), (1, 0));
    }

    #[test]
    fn too_few_shared_partners_give_no_overlap() {
        let (mut ledger, mut n) = corpus();
        let at = T + HOUR;
        post(&mut ledger, &mut n, "quiet_one", at, "");
        for p in 0..4 {
            post(&mut ledger, &mut n, &format!("fan{p}"), at, r#","repost_of":"@quiet_one""#);
        }
        post(&mut ledger, &mut n, "fan0", at, r#","mentions":["@quiet_one","@hub"]"#);
        let settings = SuccessorSettings { threshold: 0.0001, ..SuccessorSettings::default() };
        let found =
            SuccessorSnapshot::take(&ledger, &[removed("@abu_x", false)], T + DAY_MS, settings)
                .compute();
        let only = &found.suggestions[0];
        assert_eq!((only.overlap.common, only.overlap.score), (4, 0.0));
        assert!(only.overlap.jaccard > 0.0);
        assert_eq!(only.announcement.announcers.len(), 1);
    }

    #[test]
    fn removals_older_than_the_lookback_and_candidates_seen_before_are_left_out() {
        let (mut ledger, mut n) = corpus();
        after_removal(&mut ledger, &mut n);
        let late = SuccessorSnapshot::take(
            &ledger,
            &[removed("@abu_x", false)],
            T + 15 * DAY_MS,
            SuccessorSettings::default(),
        );
        assert_eq!(late.compute().searched, 0);
        // A fan is no candidate: it was seen long before the removal.
        let found = search(&ledger, &[removed("@abu_x", false)]);
        assert!(found.suggestions.iter().all(|s| !s.account.contains("fan")));
    }

    #[test]
    fn handles_compare_without_separators_and_extensions_count() {
        assert_eq!(handle_similarity("abu_x", "abu.x"), 1.0);
        assert_eq!(handle_similarity("abu_x", "abu_x_"), 1.0);
        assert!((handle_similarity("abu_x", "abu_x2") - 0.8).abs() < 1e-9);
        assert!(handle_similarity("abu_x", "abu_x2024") >= 0.8);
        assert!(handle_similarity("media_center", "mediacentre") > 0.8);
        assert!(handle_similarity("abu_x", "zaid") < 0.6);
        assert_eq!(handle_similarity("___", "abu"), 0.0);
        assert_eq!(levenshtein(&['a', 'b'], &[]), 2);
    }

    #[test]
    fn statuses_give_the_latest_removal_and_a_later_reinstatement() {
        use crossmatch_protocol::Status;
        let statuses = HashMap::from([
            (
                "a".to_owned(),
                vec![(Status::Referred, 1), (Status::Removed, 5), (Status::Removed, 9)],
            ),
            ("b".to_owned(), vec![(Status::Removed, 5), (Status::Reinstated, 7)]),
            ("c".to_owned(), vec![(Status::Reinstated, 3), (Status::Removed, 8)]),
            ("d".to_owned(), vec![(Status::Referred, 1)]),
            ("e".to_owned(), vec![(Status::Reinstated, 4)]),
        ]);
        let removed = removed_accounts(&statuses);
        let view: Vec<(&str, u64, bool)> =
            removed.iter().map(|r| (r.account.as_str(), r.removed_at_ms, r.reinstated)).collect();
        assert_eq!(view, [("a", 9, false), ("b", 5, true), ("c", 8, false), ("e", 4, true)]);
    }
}
