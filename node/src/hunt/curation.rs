//! Analyst curation of communities and accounts: labels anchored to seed accounts, pins,
//! merges, splits, and "not a target" marks. Pure: the state, the operations that change it
//! (each checked against the latest analytics) and how it is applied to a computation.
//!
//! **Anchors.** A curated community is kept by its id together with *anchors*: canonical
//! account forms that stand for it. Labelling a community anchors it to the seeds the analyst
//! names (they must be members), or else to its stable core (members at confidence 1; all
//! members when none is). After a recompute the id, and with it the label, goes to the
//! community holding most anchors (step 1 of [`super::communities`]'s stable ids), so a label
//! survives recomputation and changes of ids.
//!
//! **Pin.** Pinning anchors a community to all its members (at most [`MAX_ANCHORS`]). A pinned
//! community keeps its id and label, and its anchored members stay together: after each
//! Leiden run they are moved into the community that holds most of them (its *home*, one where
//! it holds more anchors than any other curated community), and accounts Leiden puts with them
//! join it as usual. When no such home exists, its anchors form a community of their own.
//! Unpinning keeps the label and its anchors.
//!
//! **Split.** The named accounts leave the community and form a new one, with a fresh id (and
//! the label given, if any). A split-off community is exactly its anchors, always: it is shown
//! whatever Leiden finds, and takes in no one else. The accounts leave the anchors of every
//! other community.
//!
//! **Merge.** Merging `other` into `id` shows the two as one from now on, under `id`, with both
//! labels. Both stay anchored (the absorbed one to its stable core), so each is found again
//! after a recompute; whatever holds the absorbed id is then shown under `id`.
//!
//! **Order.** Split-off communities are placed first, then pinned ones, each in id order: an
//! account anchored in two of them goes to the first.
//!
//! **Not a target.** An account marked with a reason ([`NotATargetCategory`]) stays in the
//! graph and its communities but is flagged in every answer, never suggested, never shared and
//! kept out of the priority ranking ([`Curation::is_not_a_target`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::analytics::Analytics;
use super::communities::KnownCommunity;

/// Most anchors of one community.
pub const MAX_ANCHORS: usize = 5_000;
/// Most curated communities.
pub const MAX_CURATED_COMMUNITIES: usize = 10_000;
/// Most "not a target" marks.
pub const MAX_MARKS: usize = 100_000;
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// Why an account is not a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotATargetCategory {
    /// A journalist.
    Journalist,
    /// An official.
    Official,
    /// A researcher.
    Researcher,
    /// A counter-speech account.
    CounterSpeech,
    /// A victim.
    Victim,
    /// Another reason.
    Other,
}

impl NotATargetCategory {
    /// Every category, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Journalist,
        Self::Official,
        Self::Researcher,
        Self::CounterSpeech,
        Self::Victim,
        Self::Other,
    ];

    /// The written-out name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Journalist => "journalist",
            Self::Official => "official",
            Self::Researcher => "researcher",
            Self::CounterSpeech => "counter_speech",
            Self::Victim => "victim",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for NotATargetCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NotATargetCategory {
    type Err = CurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or(CurationError::UnknownCategory)
    }
}

/// A curated community, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CuratedCommunity {
    /// The analyst's label.
    pub label: Option<String>,
    /// Canonical forms of the accounts that stand for it, sorted.
    pub anchors: Vec<String>,
    /// Pinned: its anchors stay together.
    pub pinned: bool,
    /// Shown as part of this community (an analyst's merge).
    pub merged_into: Option<u64>,
    /// Split off this community: exactly its anchors.
    pub split_from: Option<u64>,
}

/// A "not a target" mark, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotATarget {
    /// Its id, named by the audit log instead of the account.
    pub id: u64,
    /// Why.
    pub category: NotATargetCategory,
    /// When it was set (Unix ms).
    pub marked_at_ms: u64,
}

/// The counters of curation, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurationMeta {
    /// The next mark id.
    pub next_mark_id: u64,
    /// No community id below this is fresh (split-off ids come from here).
    pub next_community_id: u64,
}

/// Why a curation was refused. Messages name the field, never an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurationError {
    /// No community with that id in the latest analytics.
    #[error("no such community")]
    NoCommunity,
    /// A label is 1 to 100 characters without control characters.
    #[error("a label is 1 to {MAX_LABEL_CHARS} characters, without control characters")]
    InvalidLabel,
    /// A named account is not a member of the community.
    #[error("accounts[{0}] is not a member of the community")]
    NotAMember(usize),
    /// Too many or too few accounts.
    #[error("{0}")]
    Accounts(&'static str),
    /// A community cannot be merged with itself.
    #[error("a community cannot be merged with itself")]
    SameCommunity,
    /// Unknown category.
    #[error("category is one of journalist, official, researcher, counter_speech, victim, other")]
    UnknownCategory,
    /// The curation is full.
    #[error("too many curated communities or marks")]
    Full,
}

/// What an operation changed, for the store to write (`None` values are deletions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changed {
    /// Communities changed, by id.
    pub communities: Vec<(u64, Option<CuratedCommunity>)>,
    /// Marks changed, by canonical form.
    pub marks: Vec<(String, Option<NotATarget>)>,
    /// The counters now.
    pub meta: CurationMeta,
}

/// The analysts' curation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curation {
    communities: BTreeMap<u64, CuratedCommunity>,
    marks: BTreeMap<String, NotATarget>,
    meta: CurationMeta,
}

/// A computation's groups after curation: each group's nodes and the id it must take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Regrouped {
    /// Each group's nodes, ascending; no group is empty.
    pub groups: Vec<Vec<usize>>,
    /// The id each group must take (pinned and split-off communities).
    pub forced: Vec<Option<u64>>,
}

impl Curation {
    /// The curation from its stored rows.
    pub fn from_rows(
        communities: Vec<(u64, CuratedCommunity)>,
        marks: Vec<(String, NotATarget)>,
        meta: CurationMeta,
    ) -> Self {
        let mut curation = Self {
            communities: communities.into_iter().collect(),
            marks: marks.into_iter().collect(),
            meta,
        };
        let top_mark = curation.marks.values().map(|m| m.id + 1).max().unwrap_or(1);
        let top_id = curation.communities.keys().next_back().map_or(1, |id| id + 1);
        curation.meta.next_mark_id = curation.meta.next_mark_id.max(top_mark);
        curation.meta.next_community_id = curation.meta.next_community_id.max(top_id);
        curation
    }

    /// Whether an account (its canonical form as shown) is marked "not a target".
    pub fn is_not_a_target(&self, account: &str) -> bool {
        self.marks.contains_key(account)
    }

    /// An account's mark, if any.
    pub fn mark(&self, account: &str) -> Option<&NotATarget> {
        self.marks.get(account)
    }

    /// Every mark, by canonical form.
    pub fn marks(&self) -> impl Iterator<Item = (&str, &NotATarget)> {
        self.marks.iter().map(|(account, mark)| (account.as_str(), mark))
    }

    /// A curated community.
    pub fn community(&self, id: u64) -> Option<&CuratedCommunity> {
        self.communities.get(&id)
    }

    /// Every curated community, by id.
    pub fn communities(&self) -> impl Iterator<Item = (u64, &CuratedCommunity)> {
        self.communities.iter().map(|(id, community)| (*id, community))
    }

    /// The counters.
    pub fn meta(&self) -> CurationMeta {
        self.meta
    }

    /// The ids of communities in `analytics` that carry a label, with their members (indices
    /// into `analytics.accounts`): what suggestions and shares start from.
    pub fn labelled<'a>(&self, analytics: &'a Analytics) -> Vec<(u64, &'a [usize])> {
        analytics
            .communities
            .iter()
            .filter(|c| !c.labels.is_empty())
            .map(|c| (c.id, c.members.as_slice()))
            .collect()
    }

    /// The same curation with every account form mapped by `shown` (to the form the analytics
    /// show now, e.g. after a rename), forms it does not know kept as they are.
    pub fn resolved(&self, shown: impl Fn(&str) -> Option<String>) -> Self {
        let mut out = self.clone();
        for community in out.communities.values_mut() {
            for anchor in &mut community.anchors {
                if let Some(now) = shown(anchor) {
                    *anchor = now;
                }
            }
            community.anchors.sort();
            community.anchors.dedup();
        }
        out.marks = self
            .marks
            .iter()
            .map(|(account, mark)| {
                (shown(account).unwrap_or_else(|| account.clone()), mark.clone())
            })
            .collect();
        out
    }

    /// Labels community `id` with `label`, anchored to `seeds` (members) or, without seeds and
    /// when it has none yet, to its stable core.
    pub fn label(
        &mut self,
        analytics: &Analytics,
        id: u64,
        label: &str,
        seeds: Option<&[String]>,
    ) -> Result<Changed, CurationError> {
        let label = check_label(label)?;
        let members = members_of(analytics, id)?;
        let anchors = match seeds {
            Some(seeds) => Some(checked_accounts(seeds, &members)?),
            None => None,
        };
        self.room_for(id)?;
        let default = default_anchors(analytics, id);
        let community = self.communities.entry(id).or_default();
        community.label = Some(label);
        match anchors {
            Some(anchors) => community.anchors = anchors,
            None if community.anchors.is_empty() => community.anchors = default,
            None => {}
        }
        Ok(self.changed(&[id], &[]))
    }

    /// Pins (or unpins) community `id`: pinning anchors it to all its members.
    pub fn pin(
        &mut self,
        analytics: &Analytics,
        id: u64,
        pinned: bool,
    ) -> Result<Changed, CurationError> {
        if !pinned {
            let Some(community) = self.communities.get_mut(&id) else {
                members_of(analytics, id)?;
                return Ok(self.changed(&[], &[]));
            };
            community.pinned = false;
            return Ok(self.changed(&[id], &[]));
        }
        let members = members_of(analytics, id)?;
        if members.len() > MAX_ANCHORS {
            return Err(CurationError::Accounts("a pinned community has at most 5000 members"));
        }
        self.room_for(id)?;
        let community = self.communities.entry(id).or_default();
        community.pinned = true;
        community.anchors = members.into_iter().map(str::to_owned).collect();
        community.anchors.sort();
        Ok(self.changed(&[id], &[]))
    }

    /// Merges community `other` into `id`: shown as one, under `id`, from now on.
    pub fn merge(
        &mut self,
        analytics: &Analytics,
        id: u64,
        other: u64,
    ) -> Result<Changed, CurationError> {
        if id == other {
            return Err(CurationError::SameCommunity);
        }
        members_of(analytics, id)?;
        members_of(analytics, other)?;
        self.room_for(id)?;
        self.room_for(other)?;
        let mut touched = vec![id, other];
        for (cid, community) in &mut self.communities {
            if community.merged_into == Some(other) {
                community.merged_into = Some(id);
                touched.push(*cid);
            }
        }
        for target in [id, other] {
            let default = default_anchors(analytics, target);
            let community = self.communities.entry(target).or_default();
            if community.anchors.is_empty() {
                community.anchors = default;
            }
        }
        self.communities.entry(other).or_default().merged_into = Some(id);
        self.communities.entry(id).or_default().merged_into = None;
        Ok(self.changed(&touched, &[]))
    }

    /// Splits `accounts` (members of `id`, not all of them) off into a new community with a
    /// fresh id and an optional label. Returns the changes and the new id.
    pub fn split(
        &mut self,
        analytics: &Analytics,
        id: u64,
        accounts: &[String],
        label: Option<&str>,
    ) -> Result<(Changed, u64), CurationError> {
        let label = label.map(check_label).transpose()?;
        let members = members_of(analytics, id)?;
        let leaving = checked_accounts(accounts, &members)?;
        if leaving.len() >= members.len() {
            return Err(CurationError::Accounts("a split leaves at least one member behind"));
        }
        self.room_for(id)?;
        if self.communities.len() + 1 > MAX_CURATED_COMMUNITIES {
            return Err(CurationError::Full);
        }
        let new_id = self.meta.next_community_id.max(analytics.next_id).max(1);
        self.meta.next_community_id = new_id + 1;
        let leaving_set: HashSet<&str> = leaving.iter().map(String::as_str).collect();
        let mut touched = vec![id, new_id];
        for (cid, community) in &mut self.communities {
            let before = community.anchors.len();
            community.anchors.retain(|a| !leaving_set.contains(a.as_str()));
            if community.anchors.len() != before {
                touched.push(*cid);
            }
        }
        let source = self.communities.entry(id).or_default();
        if source.anchors.is_empty() {
            source.anchors = default_anchors(analytics, id)
                .into_iter()
                .filter(|a| !leaving_set.contains(a.as_str()))
                .collect();
            if source.anchors.is_empty() {
                source.anchors = members
                    .iter()
                    .filter(|m| !leaving_set.contains(*m))
                    .take(MAX_ANCHORS)
                    .map(|m| (*m).to_owned())
                    .collect();
                source.anchors.sort();
            }
        }
        self.communities.insert(
            new_id,
            CuratedCommunity {
                label,
                anchors: leaving,
                pinned: true,
                merged_into: None,
                split_from: Some(id),
            },
        );
        Ok((self.changed(&touched, &[]), new_id))
    }

    /// Marks `account` (a canonical form) "not a target", or changes its category. Returns the
    /// changes and the mark's id.
    pub fn mark_not_a_target(
        &mut self,
        account: &str,
        category: NotATargetCategory,
        now_ms: u64,
    ) -> Result<(Changed, u64), CurationError> {
        let id = match self.marks.get_mut(account) {
            Some(mark) => {
                mark.category = category;
                mark.id
            }
            None => {
                if self.marks.len() >= MAX_MARKS {
                    return Err(CurationError::Full);
                }
                let id = self.meta.next_mark_id.max(1);
                self.meta.next_mark_id = id + 1;
                self.marks
                    .insert(account.to_owned(), NotATarget { id, category, marked_at_ms: now_ms });
                id
            }
        };
        Ok((self.changed(&[], &[account]), id))
    }

    /// Removes `account`'s mark; returns the changes and the id it had.
    pub fn unmark_not_a_target(&mut self, account: &str) -> Option<(Changed, u64)> {
        let mark = self.marks.remove(account)?;
        Some((self.changed(&[], &[account]), mark.id))
    }

    fn room_for(&self, id: u64) -> Result<(), CurationError> {
        if !self.communities.contains_key(&id) && self.communities.len() >= MAX_CURATED_COMMUNITIES
        {
            return Err(CurationError::Full);
        }
        Ok(())
    }

    fn changed(&self, ids: &[u64], accounts: &[&str]) -> Changed {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Changed {
            communities: ids.iter().map(|id| (*id, self.communities.get(id).cloned())).collect(),
            marks: accounts
                .iter()
                .map(|a| ((*a).to_owned(), self.marks.get(*a).cloned()))
                .collect(),
            meta: self.meta,
        }
    }

    /// The previous computation's communities with the curation added: curated ids carry their
    /// anchors and labels, and curated ids missing from `known` (after a restart, or gone from
    /// the window) are added with their anchors as members. Sorted by id.
    pub fn previous(&self, mut known: Vec<KnownCommunity>) -> Vec<KnownCommunity> {
        let mut present = HashSet::new();
        for community in &mut known {
            present.insert(community.id);
            if let Some(curated) = self.communities.get(&community.id) {
                community.anchors = curated.anchors.clone();
            }
            community.labels = Vec::new();
        }
        for (&id, curated) in &self.communities {
            if !present.contains(&id) && !curated.anchors.is_empty() {
                known.push(KnownCommunity {
                    id,
                    members: curated.anchors.clone(),
                    labels: Vec::new(),
                    anchors: curated.anchors.clone(),
                });
            }
        }
        known.sort_by_key(|community| community.id);
        known
    }

    /// The lowest id a fresh community may take.
    pub fn first_fresh_id(&self, next_id: u64) -> u64 {
        let top = self.communities.keys().next_back().map_or(0, |id| id + 1);
        next_id.max(self.meta.next_community_id).max(top).max(1)
    }

    /// Regroups a Leiden partition (`membership`, by node; `names`, each node's canonical form)
    /// as the module docs say: split-off communities first, then pinned ones, in id order.
    pub fn regroup(&self, names: &[String], membership: &[u32]) -> Regrouped {
        let node_of: HashMap<&str, usize> =
            names.iter().enumerate().map(|(node, name)| (name.as_str(), node)).collect();
        let mut group_of: Vec<usize> = membership.iter().map(|&c| c as usize).collect();
        let mut count = group_of.iter().map(|&g| g + 1).max().unwrap_or(0);
        let mut forced: HashMap<usize, u64> = HashMap::new();
        let mut placed = vec![false; names.len()];
        let anchor_nodes = |community: &CuratedCommunity| -> Vec<usize> {
            let mut nodes: Vec<usize> =
                community.anchors.iter().filter_map(|a| node_of.get(a.as_str()).copied()).collect();
            nodes.sort_unstable();
            nodes
        };
        // The curated community holding most anchors in each Leiden group (lower id on a tie).
        let mut top_holder: HashMap<usize, (usize, u64)> = HashMap::new();
        for (&id, community) in &self.communities {
            let mut per_group: HashMap<usize, usize> = HashMap::new();
            for node in anchor_nodes(community) {
                *per_group.entry(group_of[node]).or_default() += 1;
            }
            for (group, held) in per_group {
                let entry = top_holder.entry(group).or_insert((held, id));
                if held > entry.0 {
                    *entry = (held, id);
                }
            }
        }
        let splits = self.communities.iter().filter(|(_, c)| c.split_from.is_some());
        for (&id, community) in splits {
            let nodes: Vec<usize> =
                anchor_nodes(community).into_iter().filter(|&n| !placed[n]).collect();
            if nodes.is_empty() {
                continue;
            }
            for &node in &nodes {
                group_of[node] = count;
                placed[node] = true;
            }
            forced.insert(count, id);
            count += 1;
        }
        let pins = self.communities.iter().filter(|(_, c)| c.pinned && c.split_from.is_none());
        for (&id, community) in pins {
            let nodes: Vec<usize> =
                anchor_nodes(community).into_iter().filter(|&n| !placed[n]).collect();
            if nodes.is_empty() {
                continue;
            }
            let mut per_group: BTreeMap<usize, usize> = BTreeMap::new();
            for &node in &nodes {
                *per_group.entry(group_of[node]).or_default() += 1;
            }
            let home = per_group
                .iter()
                .filter(|(group, _)| {
                    !forced.contains_key(group)
                        && top_holder.get(group).is_some_and(|&(_, holder)| holder == id)
                })
                .max_by_key(|(group, held)| (**held, std::cmp::Reverse(**group)))
                .map(|(group, _)| *group);
            let home = home.unwrap_or_else(|| {
                count += 1;
                count - 1
            });
            for &node in &nodes {
                group_of[node] = home;
                placed[node] = true;
            }
            forced.insert(home, id);
        }
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (node, &group) in group_of.iter().enumerate() {
            groups[group].push(node);
        }
        let mut out = Regrouped::default();
        for (group, nodes) in groups.into_iter().enumerate() {
            if !nodes.is_empty() {
                out.groups.push(nodes);
                out.forced.push(forced.get(&group).copied());
            }
        }
        out
    }

    /// The id a community with id `id` is shown under: the end of its chain of analysts'
    /// merges.
    pub fn shown_id(&self, id: u64) -> u64 {
        let mut current = id;
        for _ in 0..=self.communities.len() {
            match self.communities.get(&current).and_then(|c| c.merged_into) {
                Some(next) if next != current => current = next,
                _ => break,
            }
        }
        current
    }

    /// The labels a community shown as `id` carries: its own, then those of the communities
    /// merged into it (`merged`: Leiden's merges, then analysts'), without repeats.
    pub fn labels_of(&self, id: u64, merged: &[u64]) -> Vec<String> {
        let mut ids = vec![id];
        ids.extend_from_slice(merged);
        let mut by_analyst: Vec<u64> = self
            .communities
            .keys()
            .copied()
            .filter(|&other| other != id && self.shown_id(other) == id)
            .collect();
        by_analyst.sort_unstable();
        ids.extend(by_analyst);
        let mut labels: Vec<String> = Vec::new();
        for id in ids {
            if let Some(label) = self.communities.get(&id).and_then(|c| c.label.clone())
                && !labels.contains(&label)
            {
                labels.push(label);
            }
        }
        labels
    }
}

fn check_label(label: &str) -> Result<String, CurationError> {
    let label = label.trim();
    let chars = label.chars().count();
    if chars == 0 || chars > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(CurationError::InvalidLabel);
    }
    Ok(label.to_owned())
}

fn members_of(analytics: &Analytics, id: u64) -> Result<Vec<&str>, CurationError> {
    let community = analytics.community(id).ok_or(CurationError::NoCommunity)?;
    Ok(community.members.iter().map(|&m| analytics.accounts[m].account.as_str()).collect())
}

/// `accounts`, each a member, 1 to [`MAX_ANCHORS`] of them: sorted, without repeats.
fn checked_accounts(accounts: &[String], members: &[&str]) -> Result<Vec<String>, CurationError> {
    if accounts.is_empty() || accounts.len() > MAX_ANCHORS {
        return Err(CurationError::Accounts("accounts holds 1 to 5000 accounts"));
    }
    let members: HashSet<&str> = members.iter().copied().collect();
    if let Some(index) = accounts.iter().position(|a| !members.contains(a.as_str())) {
        return Err(CurationError::NotAMember(index));
    }
    let mut out = accounts.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// A community's stable core (all members when it has none), highest confidence first, at
/// most [`MAX_ANCHORS`], sorted.
fn default_anchors(analytics: &Analytics, id: u64) -> Vec<String> {
    let Some(community) = analytics.community(id) else { return Vec::new() };
    let accounts = &analytics.accounts;
    let core: Vec<usize> = community
        .members
        .iter()
        .copied()
        .filter(|&m| accounts[m].confidence.is_some_and(|c| c >= 1.0))
        .collect();
    let mut picked = if core.is_empty() { community.members.clone() } else { core };
    picked.sort_by(|&a, &b| {
        let confidence = |m: usize| accounts[m].confidence.unwrap_or(0.0);
        confidence(b)
            .total_cmp(&confidence(a))
            .then_with(|| accounts[a].account.cmp(&accounts[b].account))
    });
    picked.truncate(MAX_ANCHORS);
    let mut anchors: Vec<String> =
        picked.into_iter().map(|m| accounts[m].account.clone()).collect();
    anchors.sort();
    anchors
}

#[cfg(test)]
mod tests;
