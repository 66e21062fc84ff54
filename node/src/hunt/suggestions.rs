//! Suggestions: accounts strongly linked to a labelled community that are not yet records.
//! Pure: link strengths come from a computation's directed graph and communities; the node
//! filters out records and "not a target" accounts and adds the evidence posts at read time.
//!
//! **Link strength.** An account's link strength to a labelled community C is the share of its
//! outgoing interaction weight (amplifier → amplified, in the directed graph of the structure
//! window, each edge weighing `ln(1 + summed weight)`) that goes to C's members. It counts only
//! when the account has at least `min_edges` edges (default 3) into C, and an account is
//! suggested when its strength is at least `min_strength` (default 0.5). Members of C count
//! like any other account: a member that is not yet a record is a suggestion too.

use std::collections::HashMap;

use super::analytics::Analytics;
use super::graph::Csr;

/// Most edges listed per suggestion (the heaviest).
pub const MAX_EDGES_PER_SUGGESTION: usize = 20;

/// When an account is suggested.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuggestionSettings {
    /// Edges into the community needed before the strength counts (default 3).
    pub min_edges: u32,
    /// The least link strength suggested, in (0, 1] (default 0.5).
    pub min_strength: f64,
}

impl Default for SuggestionSettings {
    fn default() -> Self {
        Self { min_edges: 3, min_strength: 0.5 }
    }
}

/// An account's strong link to a labelled community.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The account (canonical form, as shown).
    pub account: String,
    /// The community's id.
    pub community: u64,
    /// The share of its outgoing weight that goes into the community.
    pub strength: f64,
    /// Its edges into the community.
    pub edge_count: u32,
    /// The heaviest of those edges (to whom, weight), at most [`MAX_EDGES_PER_SUGGESTION`].
    pub edges: Vec<(String, f64)>,
}

/// Every strong link of a computation's accounts to its labelled communities: strongest first,
/// then by account and community.
pub fn links(
    directed: &Csr,
    names: &[String],
    analytics: &Analytics,
    settings: SuggestionSettings,
) -> Vec<Link> {
    let community_of: HashMap<&str, u64> =
        analytics.accounts.iter().map(|a| (a.account.as_str(), a.community)).collect();
    let labelled: Vec<u64> =
        analytics.communities.iter().filter(|c| !c.labels.is_empty()).map(|c| c.id).collect();
    if labelled.is_empty() {
        return Vec::new();
    }
    let target: Vec<Option<u64>> = names
        .iter()
        .map(|name| community_of.get(name.as_str()).copied().filter(|c| labelled.contains(c)))
        .collect();
    let mut out = Vec::new();
    for (node, name) in names.iter().enumerate().take(directed.nodes()) {
        let (targets, weights) = directed.row(node);
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            continue;
        }
        let mut into: HashMap<u64, Vec<(usize, f64)>> = HashMap::new();
        for (&to, &weight) in targets.iter().zip(weights) {
            if let Some(Some(community)) = target.get(to as usize) {
                into.entry(*community).or_default().push((to as usize, weight));
            }
        }
        for (community, mut edges) in into {
            let strength = edges.iter().map(|(_, w)| w).sum::<f64>() / total;
            if edges.len() < settings.min_edges as usize || strength < settings.min_strength {
                continue;
            }
            edges.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| names[a.0].cmp(&names[b.0])));
            let edge_count = edges.len() as u32;
            edges.truncate(MAX_EDGES_PER_SUGGESTION);
            out.push(Link {
                account: name.clone(),
                community,
                strength,
                edge_count,
                edges: edges.into_iter().map(|(to, w)| (names[to].clone(), w)).collect(),
            });
        }
    }
    out.sort_by(|a, b| {
        b.strength
            .total_cmp(&a.strength)
            .then_with(|| a.account.cmp(&b.account))
            .then(a.community.cmp(&b.community))
    });
    out
}

/// The links to suggest: for `community` (or all), leaving out accounts `excluded` says are
/// records or not targets, at most `limit`, strongest first.
pub fn select(
    links: &[Link],
    community: Option<u64>,
    limit: usize,
    excluded: impl Fn(&str) -> bool,
) -> Vec<&Link> {
    links
        .iter()
        .filter(|link| community.is_none_or(|c| link.community == c))
        .filter(|link| !excluded(&link.account))
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hunt::analytics::{AccountStats, CommunityStats};

    fn account(name: &str, community: u64) -> AccountStats {
        AccountStats {
            account: name.to_owned(),
            platform: "x".into(),
            languages: vec![],
            activity: Default::default(),
            previous_activity: Default::default(),
            structure_activity: Default::default(),
            distinct_amplifiers: 0,
            pagerank: None,
            community,
            confidence: Some(1.0),
        }
    }

    #[test]
    fn strength_is_the_share_of_outgoing_weight_with_enough_edges() {
        // 0..3: the labelled community 1; 3..5: community 2 (unlabelled); 5: strongly linked
        // (3 edges into 1, 1 into 2); 6: only 2 edges into 1; 7: 3 into 1 but more into 2.
        let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
        let communities = [1, 1, 1, 2, 2, 3, 3, 3];
        let mut triples = vec![(5, 0, 1.0), (5, 1, 1.0), (5, 2, 2.0), (5, 3, 1.0)];
        triples.extend([(6, 0, 1.0), (6, 1, 1.0)]);
        triples.extend([(7, 0, 1.0), (7, 1, 1.0), (7, 2, 1.0), (7, 3, 2.0), (7, 4, 2.0)]);
        let directed = Csr::from_triples(8, triples);
        let analytics = Analytics {
            accounts: names.iter().zip(communities).map(|(n, c)| account(n, c)).collect(),
            communities: vec![
                CommunityStats {
                    id: 1,
                    labels: vec!["alpha".into()],
                    members: vec![0, 1, 2],
                    core_size: 3,
                    internal_edges: vec![],
                    merged_ids: vec![],
                    offered_ids: vec![],
                },
                CommunityStats {
                    id: 2,
                    labels: vec![],
                    members: vec![3, 4],
                    core_size: 2,
                    internal_edges: vec![],
                    merged_ids: vec![],
                    offered_ids: vec![],
                },
            ],
            ..Analytics::default()
        };
        let found = links(&directed, &names, &analytics, SuggestionSettings::default());
        assert_eq!(found.len(), 1, "{found:?}");
        let link = &found[0];
        assert_eq!((link.account.as_str(), link.community, link.edge_count), ("n5", 1, 3));
        assert!((link.strength - 0.8).abs() < 1e-12, "4 of 5");
        assert_eq!(link.edges[0], ("n2".to_owned(), 2.0), "heaviest first");
        // Looser thresholds let the weaker links in.
        let loose = SuggestionSettings { min_edges: 2, min_strength: 0.3 };
        let found = links(&directed, &names, &analytics, loose);
        let accounts: Vec<&str> = found.iter().map(|l| l.account.as_str()).collect();
        assert_eq!(accounts, ["n6", "n5", "n7"]);
        let picked = select(&found, Some(1), 2, |a| a == "n6");
        assert_eq!(picked.iter().map(|l| l.account.as_str()).collect::<Vec<_>>(), ["n5", "n7"]);
        assert!(select(&found, Some(2), 10, |_| false).is_empty());
    }
}
