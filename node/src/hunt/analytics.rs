//! The node's analytics over its ledger, in two steps so that the ledger's lock is held only
//! briefly: [`Snapshot::take`] copies what a computation needs (the structure window's graph,
//! the accounts' names, languages and activity); [`Snapshot::compute`] runs communities,
//! PageRank and the activity figures without the ledger. Pure: the caller passes the day it is.
//!
//! Windows are whole UTC days ending on `today`: activity over `activity_days` (default 1, the
//! issue's 24 hours at day granularity) with the trend against the `activity_days` before
//! them, structure (graph, communities, influence) over `structure_days` (default 7).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::communities::{Assigned, CommunitySettings, KnownCommunity, assign_ids_with, detect};
use super::curation::Curation;
use super::graph::{FOLLOW_WEIGHT, WindowGraph};
use super::ledger::{Activity, Day, Ledger, Window};
use super::leiden::{LeidenFailed, modularity};
use super::pagerank::{DAMPING, pagerank};

/// The most internal edges kept per community (the heaviest).
pub const MAX_INTERNAL_EDGES: usize = 2_000;

/// How the node's analytics run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalyticsSettings {
    /// The activity window, in days (default 1).
    pub activity_days: u32,
    /// The structure window, in days (default 7).
    pub structure_days: u32,
    /// Leiden's quality function, runs and seed.
    pub communities: CommunitySettings,
    /// The weight of a follow between posting accounts (default 0.5).
    pub follow_weight: f64,
    /// PageRank's damping (default 0.85).
    pub damping: f64,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        Self {
            activity_days: 1,
            structure_days: 7,
            communities: CommunitySettings::default(),
            follow_weight: FOLLOW_WEIGHT,
            damping: DAMPING,
        }
    }
}

/// What a computation needs of the ledger, copied under its lock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    graph: WindowGraph,
    names: Vec<String>,
    platforms: Vec<String>,
    languages: Vec<Vec<String>>,
    activity: Vec<Activity>,
    previous_activity: Vec<Activity>,
    settings: AnalyticsSettings,
}

/// An account in the results.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountStats {
    /// Its canonical form (its newest handle, else its id).
    pub account: String,
    /// Its platform's canonical name.
    pub platform: String,
    /// Its languages.
    pub languages: Vec<String>,
    /// Its posts in the activity window.
    pub activity: Activity,
    /// Its posts in the activity window before that one (the trend's base).
    pub previous_activity: Activity,
    /// Its posts in the structure window.
    pub structure_activity: Activity,
    /// Distinct accounts that amplified it (reposted, replied to, mentioned or followed it) in
    /// the structure window.
    pub distinct_amplifiers: u32,
    /// Its PageRank among posting accounts; `None` when it did not post in the window.
    pub pagerank: Option<f64>,
    /// Its community's id.
    pub community: u64,
    /// Its membership confidence, in (0, 1]: from this computation's seeded runs, or carried
    /// from the last computation that ran them (see [`Confidence`]); `None` for an account
    /// that first appeared after that one.
    pub confidence: Option<f64>,
}

/// Where a computation's membership confidences come from.
#[derive(Debug, Clone, Copy)]
pub enum Confidence<'a> {
    /// All of the settings' seeded runs, and the confidences they give.
    Runs,
    /// One run (the first seed) for the partition; each account keeps the confidence it had in
    /// `previous`, the last computation's results.
    Carried {
        /// The last computation's results.
        previous: &'a Analytics,
    },
}

/// A community in the results.
#[derive(Debug, Clone, PartialEq)]
pub struct CommunityStats {
    /// Its stable id.
    pub id: u64,
    /// Its labels (the first is its own; more after merges).
    pub labels: Vec<String>,
    /// Its members, as indices into [`Analytics::accounts`].
    pub members: Vec<usize>,
    /// Its members with confidence 1.
    pub core_size: usize,
    /// Directed edges between members (amplifier, amplified, weight `ln(1 + summed)`), the
    /// heaviest [`MAX_INTERNAL_EDGES`].
    pub internal_edges: Vec<(usize, usize, f64)>,
    /// Ids of earlier communities merged into it.
    pub merged_ids: Vec<u64>,
    /// Ids of earlier communities it holds part of after a split.
    pub offered_ids: Vec<u64>,
}

/// One computation's results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analytics {
    /// The structure window (`None` for an empty ledger).
    pub structure_window: Option<Window>,
    /// The activity window.
    pub activity_window: Option<Window>,
    /// The accounts of the structure window's graph.
    pub accounts: Vec<AccountStats>,
    /// Communities, largest first.
    pub communities: Vec<CommunityStats>,
    /// The modularity (resolution 1) of the partition.
    pub modularity: f64,
    /// The next fresh community id.
    pub next_id: u64,
}

impl Snapshot {
    /// Copies what a computation for `today` needs from the ledger.
    pub fn take(ledger: &Ledger, today: Day, settings: AnalyticsSettings) -> Self {
        let structure = Window::ending(today, settings.structure_days);
        let activity_window = Window::ending(today, settings.activity_days);
        let before =
            Window::ending(Day(activity_window.first.0.saturating_sub(1)), settings.activity_days);
        let graph = WindowGraph::from_ledger(ledger, structure, settings.follow_weight);
        let names = graph
            .accounts
            .iter()
            .map(|&a| ledger.display(a).map(|c| c.as_str().to_owned()).unwrap_or_default())
            .collect();
        let platforms = graph
            .accounts
            .iter()
            .map(|&a| ledger.display(a).and_then(|c| c.platform()).unwrap_or_default().to_owned())
            .collect();
        let languages = graph.accounts.iter().map(|&a| ledger.languages(a).to_vec()).collect();
        let recent = ledger.window_activity(activity_window);
        let earlier = if activity_window.first.0 == 0 {
            HashMap::new()
        } else {
            ledger.window_activity(before)
        };
        let pick = |map: &HashMap<_, Activity>| {
            graph.accounts.iter().map(|a| map.get(a).copied().unwrap_or_default()).collect()
        };
        let activity = pick(&recent);
        let previous_activity = pick(&earlier);
        Self { graph, names, platforms, languages, activity, previous_activity, settings }
    }

    /// Runs the analytics. `previous` communities keep their ids; fresh ids start at `next_id`;
    /// `confidence` says whether the seeded runs run or their confidences are carried.
    pub fn compute(
        self,
        previous: &[KnownCommunity],
        next_id: u64,
        confidence: Confidence<'_>,
    ) -> Result<Analytics, LeidenFailed> {
        self.compute_curated(previous, next_id, confidence, &Curation::default())
    }

    /// [`Snapshot::compute`] with an analyst's curation applied, as `hunt::curation` says:
    /// pinned and split-off communities regrouped and given their ids, analysts' merges shown
    /// as one community, labels from the curation. `previous` should come from
    /// [`Curation::previous`] (curated ids with their anchors).
    pub fn compute_curated(
        &self,
        previous: &[KnownCommunity],
        next_id: u64,
        confidence: Confidence<'_>,
        curation: &Curation,
    ) -> Result<Analytics, LeidenFailed> {
        let graph = &self.graph;
        let mut next_id = curation.first_fresh_id(next_id);
        if graph.nodes() == 0 {
            return Ok(Analytics { next_id, ..Analytics::default() });
        }
        let mut communities = self.settings.communities;
        let confidences: Vec<Option<f64>>;
        let detected = match confidence {
            Confidence::Runs => {
                let detected = detect(&graph.undirected, communities)?;
                confidences = detected.confidence.iter().copied().map(Some).collect();
                detected
            }
            Confidence::Carried { previous } => {
                communities.runs = 1;
                let carried: HashMap<&str, f64> = previous
                    .accounts
                    .iter()
                    .filter_map(|a| Some((a.account.as_str(), a.confidence?)))
                    .collect();
                confidences =
                    self.names.iter().map(|name| carried.get(name.as_str()).copied()).collect();
                detect(&graph.undirected, communities)?
            }
        };
        let is_core = |node: usize| confidences[node].is_some_and(|c| c >= 1.0);
        let posted: Vec<bool> = (0..graph.nodes()).map(|node| graph.posted(node)).collect();
        let ranks = pagerank(&graph.directed, &posted, self.settings.damping);
        let mut amplifiers: Vec<HashSet<u32>> = vec![HashSet::new(); graph.nodes()];
        for from in 0..graph.nodes() {
            for &to in graph.directed.row(from).0 {
                amplifiers[to as usize].insert(from as u32);
            }
        }
        let regrouped = curation.regroup(&self.names, &detected.membership);
        let member_names: Vec<Vec<&str>> = regrouped
            .groups
            .iter()
            .map(|nodes| nodes.iter().map(|&n| self.names[n].as_str()).collect())
            .collect();
        let assigned = assign_ids_with(previous, &member_names, &regrouped.forced, &mut next_id);
        // Analysts' merges: groups shown under the same id become one community.
        let mut by_id: BTreeMap<u64, (Vec<usize>, Assigned)> = BTreeMap::new();
        for (nodes, assigned) in regrouped.groups.into_iter().zip(assigned) {
            let shown = curation.shown_id(assigned.id);
            let entry = by_id
                .entry(shown)
                .or_insert_with(|| (Vec::new(), Assigned { id: shown, ..Assigned::default() }));
            entry.0.extend(nodes);
            let held = &mut entry.1;
            if assigned.id != shown {
                held.merged_ids.push(assigned.id);
            } else {
                held.labels = assigned.labels;
            }
            held.merged_ids.extend(assigned.merged_ids);
            held.offered_ids.extend(assigned.offered_ids);
        }
        let mut community_of = vec![0u64; graph.nodes()];
        for (&id, (nodes, _)) in &mut by_id {
            nodes.sort_unstable();
            for &node in nodes.iter() {
                community_of[node] = id;
            }
        }
        let accounts: Vec<AccountStats> = (0..graph.nodes())
            .map(|node| AccountStats {
                account: self.names[node].clone(),
                platform: self.platforms[node].clone(),
                languages: self.languages[node].clone(),
                activity: self.activity[node],
                previous_activity: self.previous_activity[node],
                structure_activity: graph.activity[node],
                distinct_amplifiers: amplifiers[node].len() as u32,
                pagerank: ranks[node],
                community: community_of[node],
                confidence: confidences[node],
            })
            .collect();
        let curated = curation.communities().next().is_some();
        let mut dense: Vec<u32> = vec![0; graph.nodes()];
        let mut communities: Vec<CommunityStats> = Vec::with_capacity(by_id.len());
        for (index, (id, (nodes, mut assigned))) in by_id.into_iter().enumerate() {
            let mut internal_edges = Vec::new();
            for &from in &nodes {
                dense[from] = index as u32;
                let (targets, weights) = graph.directed.row(from);
                for (&to, &weight) in targets.iter().zip(weights) {
                    if community_of[to as usize] == id {
                        internal_edges.push((from, to as usize, weight));
                    }
                }
            }
            internal_edges.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
            internal_edges.truncate(MAX_INTERNAL_EDGES);
            assigned.merged_ids.sort_unstable();
            assigned.merged_ids.dedup();
            assigned.offered_ids.sort_unstable();
            assigned.offered_ids.dedup();
            assigned.offered_ids.retain(|&offered| offered != id);
            let labels = if curated {
                curation.labels_of(id, &assigned.merged_ids)
            } else {
                assigned.labels
            };
            communities.push(CommunityStats {
                id,
                labels,
                core_size: nodes.iter().filter(|&&n| is_core(n)).count(),
                members: nodes,
                internal_edges,
                merged_ids: assigned.merged_ids,
                offered_ids: assigned.offered_ids,
            });
        }
        communities.sort_by(|a, b| b.members.len().cmp(&a.members.len()).then(a.id.cmp(&b.id)));
        let activity_window = Window::ending(graph.window.last, self.settings.activity_days);
        Ok(Analytics {
            structure_window: Some(graph.window),
            activity_window: Some(activity_window),
            modularity: modularity(&graph.undirected, &dense, 1.0),
            accounts,
            communities,
            next_id,
        })
    }

    /// The window's graph (nodes are indices into [`Snapshot::names`]).
    pub fn graph(&self) -> &WindowGraph {
        &self.graph
    }

    /// Each node's canonical form.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Analytics {
    /// The communities as the next computation's `previous`.
    pub fn known(&self) -> Vec<KnownCommunity> {
        self.communities
            .iter()
            .map(|community| KnownCommunity {
                id: community.id,
                members: community
                    .members
                    .iter()
                    .map(|&m| self.accounts[m].account.clone())
                    .collect(),
                labels: community.labels.clone(),
                anchors: Vec::new(),
            })
            .collect()
    }

    /// The community with this id.
    pub fn community(&self, id: u64) -> Option<&CommunityStats> {
        self.communities.iter().find(|community| community.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hunt::observation::parse_line;

    #[test]
    fn two_cliques_are_two_communities_and_activity_counts_the_last_day() {
        let day_ms = 86_400_000u64;
        let today = 20_000u64;
        let mut ledger = Ledger::default();
        let mut n = 0;
        for (group, base) in [("a", today * day_ms), ("b", today * day_ms - day_ms)] {
            for i in 0..5 {
                for j in 0..5 {
                    if i == j {
                        continue;
                    }
                    n += 1;
                    let line = format!(
                        r#"{{"platform":"x","account":"@{group}{i}","at":{},"post_id":"{n}","repost_of":"@{group}{j}"}}"#,
                        base + n
                    );
                    ledger.ingest(&parse_line(&line, 1, u64::MAX / 2, 0).unwrap().observation);
                }
            }
        }
        let snapshot = Snapshot::take(&ledger, Day(today as u32), AnalyticsSettings::default());
        let analytics = snapshot.compute(&[], 1, Confidence::Runs).unwrap();
        assert_eq!(analytics.communities.len(), 2);
        assert!(analytics.communities.iter().all(|c| c.members.len() == 5));
        let a0 = analytics.accounts.iter().find(|a| a.account == "v1|account|x|a0").unwrap();
        let b0 = analytics.accounts.iter().find(|a| a.account == "v1|account|x|b0").unwrap();
        assert_eq!(a0.activity.reposts, 4, "today");
        assert_eq!(b0.activity.reposts, 0, "yesterday is the trend's base");
        assert_eq!(b0.previous_activity.reposts, 4);
        assert_eq!(a0.distinct_amplifiers, 4);
        assert_eq!(analytics.communities[0].internal_edges.len(), 20);
        // A second computation keeps the ids.
        let again = Snapshot::take(&ledger, Day(today as u32), AnalyticsSettings::default())
            .compute(&analytics.known(), analytics.next_id, Confidence::Runs)
            .unwrap();
        let ids = |a: &Analytics| a.communities.iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(&again), ids(&analytics));
        assert!(analytics.accounts.iter().all(|a| a.confidence == Some(1.0)));
        // Carried: known accounts keep their confidence, a newcomer has none until the runs.
        let newcomer = r#"{"platform":"x","account":"@c0","at":1728000000000,"post_id":"c","repost_of":"@a0"}"#
            .replace("1728000000000", &(today * day_ms + 7).to_string());
        ledger.ingest(&parse_line(&newcomer, 1, u64::MAX / 2, 0).unwrap().observation);
        let carried = Snapshot::take(&ledger, Day(today as u32), AnalyticsSettings::default())
            .compute(&again.known(), again.next_id, Confidence::Carried { previous: &again })
            .unwrap();
        let confidence = |a: &Analytics, name: &str| {
            a.accounts.iter().find(|x| x.account == name).map(|x| x.confidence)
        };
        assert_eq!(confidence(&carried, "v1|account|x|a0"), Some(Some(1.0)));
        assert_eq!(confidence(&carried, "v1|account|x|c0"), Some(None));
        assert_eq!(ids(&carried)[..2], ids(&analytics)[..]);
    }
}
