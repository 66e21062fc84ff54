//! Communities: several seeded Leiden runs become one partition with a membership confidence
//! per account, and community ids that stay stable from one computation to the next.
//!
//! **Partition and confidence.** Runs use seeds `seed, seed + 1, …` (default 5 runs). The
//! partition reported is the run of highest quality (the earliest on a tie), the *reference*.
//! For a reference community `C` and a run `r`, `C`'s *core in r* is the community of run `r`
//! that holds the most members of `C` (the lowest-numbered on a tie). An account's confidence
//! is the share of runs (the reference included) in which it falls in its community's core;
//! the accounts with confidence 1 are the community's *stable core*.
//!
//! **Stable ids** ([`assign_ids`]), from the previous computation's communities, keyed by
//! canonical account forms so they survive a rebuilt ledger:
//! 0. a new community an analyst's curation forces an id on (a pinned or split-off community,
//!    `hunt::curation`) takes it ([`assign_ids_with`]);
//! 1. a previous community *anchored* to seed accounts (an analyst's label or pin,
//!    `hunt::curation`) passes its id to the new community holding most of its anchors, unless
//!    that one has an id already;
//! 2. a new community inherits an old id when their Jaccard overlap is ≥ 0.5 (greatest
//!    overlap first, then the lower old id);
//! 3. an old id not yet inherited goes to the new community holding most of its old members:
//!    if that community has no id yet it takes it (a split keeps the label on the larger part);
//!    if it has one, it keeps both (a merge keeps both labels, in `merged_ids`);
//! 4. every other new community holding at least a fifth of an old one is *offered* its id
//!    (`offered_ids`: a split offers the label on the other parts);
//! 5. the rest get fresh ids, in the order of their least member.

use std::collections::HashMap;

use super::graph::Csr;
use super::leiden::{LeidenFailed, LeidenGraph, Quality};

/// How communities are computed. Defaults: modularity at resolution 1.0, 5 runs, seed 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommunitySettings {
    /// The quality function.
    pub quality: Quality,
    /// How many seeded runs (at least 1).
    pub runs: u32,
    /// The first run's seed.
    pub seed: u64,
}

impl Default for CommunitySettings {
    fn default() -> Self {
        Self { quality: Quality::default(), runs: 5, seed: 1 }
    }
}

/// The partition of the reference run with each node's confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    /// Each node's community in the reference run, numbered from 0.
    pub membership: Vec<u32>,
    /// Each node's membership confidence, in (0, 1].
    pub confidence: Vec<f64>,
    /// The reference run's quality.
    pub quality: f64,
}

/// Runs Leiden `settings.runs` times and derives the partition and confidences.
pub fn detect(graph: &Csr, settings: CommunitySettings) -> Result<Detected, LeidenFailed> {
    let shared = LeidenGraph::new(graph)?;
    let runs: Vec<_> = (0..u64::from(settings.runs.max(1)))
        .map(|run| shared.run(settings.quality, settings.seed.wrapping_add(run)))
        .collect::<Result<_, _>>()?;
    let mut reference = 0;
    for (index, run) in runs.iter().enumerate() {
        if run.quality > runs[reference].quality {
            reference = index;
        }
    }
    let membership = runs[reference].membership.clone();
    let communities = runs[reference].communities;
    let mut hits = vec![0u32; membership.len()];
    for run in &runs {
        // For each reference community, the run's community holding most of its members.
        let mut counts: HashMap<(u32, u32), u32> = HashMap::new();
        for (node, &community) in membership.iter().enumerate() {
            *counts.entry((community, run.membership[node])).or_default() += 1;
        }
        let mut core: Vec<Option<(u32, u32)>> = vec![None; communities];
        for (&(community, theirs), &count) in &counts {
            let held = &mut core[community as usize];
            let better = held.is_none_or(|(best, best_count)| {
                count > best_count || (count == best_count && theirs < best)
            });
            if better {
                *held = Some((theirs, count));
            }
        }
        for (node, &community) in membership.iter().enumerate() {
            if core[community as usize].map(|(theirs, _)| theirs) == Some(run.membership[node]) {
                hits[node] += 1;
            }
        }
    }
    let confidence = hits.iter().map(|&hit| f64::from(hit) / runs.len() as f64).collect();
    Ok(Detected { membership, confidence, quality: runs[reference].quality })
}

/// A community of the previous computation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCommunity {
    /// Its id.
    pub id: u64,
    /// Its members' canonical forms.
    pub members: Vec<String>,
    /// Its labels (the first is its own; more after merges).
    pub labels: Vec<String>,
    /// Seed accounts an analyst anchored it to (`hunt::curation`; empty when not curated).
    pub anchors: Vec<String>,
}

/// The id a new community gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assigned {
    /// Its id.
    pub id: u64,
    /// Ids of old communities merged into it (their labels are kept).
    pub merged_ids: Vec<u64>,
    /// Ids of old communities it holds part of, offered after a split.
    pub offered_ids: Vec<u64>,
    /// Labels: those of its id, then those of the merged ids.
    pub labels: Vec<String>,
}

/// Gives each new community (its members' canonical forms) an id, as the module docs say.
/// `next_id` is the first fresh id and is advanced past those handed out.
pub fn assign_ids(
    previous: &[KnownCommunity],
    current: &[Vec<&str>],
    next_id: &mut u64,
) -> Vec<Assigned> {
    assign_ids_with(previous, current, &vec![None; current.len()], next_id)
}

/// [`assign_ids`], where a new community with a `forced` id (an analyst's pinned or split-off
/// community, `hunt::curation`) takes that id before any rule runs; the old community of that
/// id, if any, counts as inherited. Forced ids are distinct.
pub fn assign_ids_with(
    previous: &[KnownCommunity],
    current: &[Vec<&str>],
    forced: &[Option<u64>],
    next_id: &mut u64,
) -> Vec<Assigned> {
    let mut old_of: HashMap<&str, usize> = HashMap::new();
    for (old, community) in previous.iter().enumerate() {
        for member in &community.members {
            old_of.insert(member.as_str(), old);
        }
    }
    let mut overlap: HashMap<(usize, usize), usize> = HashMap::new();
    for (new, members) in current.iter().enumerate() {
        for member in members {
            if let Some(&old) = old_of.get(member) {
                *overlap.entry((new, old)).or_default() += 1;
            }
        }
    }
    let mut owner_of_old: Vec<Option<usize>> = vec![None; previous.len()];
    let mut id_of_new: Vec<Option<usize>> = vec![None; current.len()];
    fn take(new: usize, old: usize, owner: &mut [Option<usize>], id_of: &mut [Option<usize>]) {
        if owner[old].is_none() && id_of[new].is_none() {
            owner[old] = Some(new);
            id_of[new] = Some(old);
        }
    }
    // 0. Forced ids.
    let mut forced_of_new: Vec<Option<u64>> = vec![None; current.len()];
    for (new, id) in forced.iter().enumerate().take(current.len()) {
        let Some(id) = *id else { continue };
        forced_of_new[new] = Some(id);
        if let Some(old) = previous.iter().position(|c| c.id == id) {
            take(new, old, &mut owner_of_old, &mut id_of_new);
        }
    }
    let has_id = |new: usize, id_of_new: &[Option<usize>]| {
        id_of_new[new].is_some() || forced_of_new[new].is_some()
    };
    // 1. Anchors.
    for (old, community) in previous.iter().enumerate() {
        let mut counts = vec![0usize; current.len()];
        for (new, members) in current.iter().enumerate() {
            counts[new] =
                members.iter().filter(|m| community.anchors.iter().any(|a| a == *m)).count();
        }
        if let Some((new, _)) = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .max_by_key(|(n, c)| (**c, std::cmp::Reverse(*n)))
            && !has_id(new, &id_of_new)
        {
            take(new, old, &mut owner_of_old, &mut id_of_new);
        }
    }
    // 2. Jaccard ≥ 0.5, greatest first.
    let mut pairs: Vec<(f64, u64, usize, usize)> = overlap
        .iter()
        .map(|(&(new, old), &shared)| {
            let union = current[new].len() + previous[old].members.len() - shared;
            (shared as f64 / union.max(1) as f64, previous[old].id, new, old)
        })
        .filter(|(jaccard, ..)| *jaccard >= 0.5)
        .collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (_, _, new, old) in pairs {
        if !has_id(new, &id_of_new) {
            take(new, old, &mut owner_of_old, &mut id_of_new);
        }
    }
    // 3. Splits and merges; 4. offers.
    let mut merged: Vec<Vec<usize>> = vec![Vec::new(); current.len()];
    let mut offered: Vec<Vec<usize>> = vec![Vec::new(); current.len()];
    let mut order: Vec<usize> = (0..previous.len()).collect();
    order.sort_by_key(|&old| previous[old].id);
    for old in order {
        let mut holders: Vec<(usize, usize)> = overlap
            .iter()
            .filter(|((_, o), _)| *o == old)
            .map(|(&(new, _), &n)| (new, n))
            .collect();
        holders.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if owner_of_old[old].is_none()
            && let Some(&(largest, _)) = holders.first()
        {
            if !has_id(largest, &id_of_new) {
                take(largest, old, &mut owner_of_old, &mut id_of_new);
            } else {
                merged[largest].push(old);
                owner_of_old[old] = Some(largest);
            }
        }
        let fifth = previous[old].members.len().div_ceil(5);
        for (new, shared) in holders {
            if Some(new) != owner_of_old[old] && shared >= fifth {
                offered[new].push(old);
            }
        }
    }
    // 5. Fresh ids, in the order of each community's least member.
    let mut fresh: Vec<usize> =
        (0..current.len()).filter(|&new| !has_id(new, &id_of_new)).collect();
    fresh.sort_by_key(|&new| current[new].iter().min().copied());
    let mut fresh_ids: HashMap<usize, u64> = HashMap::new();
    for new in fresh {
        fresh_ids.insert(new, *next_id);
        *next_id += 1;
    }
    (0..current.len())
        .map(|new| {
            let (id, mut labels) = match (forced_of_new[new], id_of_new[new]) {
                (_, Some(old)) => (previous[old].id, previous[old].labels.clone()),
                (Some(id), None) => (id, Vec::new()),
                (None, None) => (fresh_ids[&new], Vec::new()),
            };
            for &old in &merged[new] {
                labels.extend(previous[old].labels.iter().cloned());
            }
            Assigned {
                id,
                merged_ids: merged[new].iter().map(|&old| previous[old].id).collect(),
                offered_ids: offered[new].iter().map(|&old| previous[old].id).collect(),
                labels,
            }
        })
        .collect()
}

/// Normalised mutual information of two partitions of the same nodes, `2 I / (H(a) + H(b))`
/// (igraph's `compare_communities(method="nmi")`); 1 when both are a single community.
pub fn nmi(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n == 0.0 {
        return 1.0;
    }
    let mut joint: HashMap<(u32, u32), f64> = HashMap::new();
    let mut left: HashMap<u32, f64> = HashMap::new();
    let mut right: HashMap<u32, f64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_default() += 1.0;
        *left.entry(x).or_default() += 1.0;
        *right.entry(y).or_default() += 1.0;
    }
    let entropy = |counts: &HashMap<u32, f64>| -> f64 {
        counts.values().map(|&c| -(c / n) * (c / n).ln()).sum()
    };
    let (h_a, h_b) = (entropy(&left), entropy(&right));
    if h_a + h_b <= 0.0 {
        return 1.0;
    }
    let mutual: f64 =
        joint.iter().map(|(&(x, y), &c)| (c / n) * ((c * n) / (left[&x] * right[&y])).ln()).sum();
    2.0 * mutual / (h_a + h_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(id: u64, members: &[&str], label: &str) -> KnownCommunity {
        KnownCommunity {
            id,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            labels: if label.is_empty() { vec![] } else { vec![label.to_owned()] },
            anchors: vec![],
        }
    }

    #[test]
    fn ids_follow_jaccard_splits_and_merges() {
        let previous = [
            known(1, &["a", "b", "c", "d"], "one"),
            known(2, &["e", "f", "g", "h", "i", "j", "k", "l", "m", "n"], "two"),
            known(3, &["o", "p"], "three"),
            known(4, &["q", "r"], "four"),
        ];
        let current: Vec<Vec<&str>> = vec![
            vec!["a", "b", "c", "x"],           // 1 with a newcomer: J = 0.6
            vec!["e", "f", "g", "h", "i", "j"], // the larger part of 2
            vec!["k", "l", "m", "n"],           // the smaller part of 2
            vec!["o", "p", "q", "r"],           // 3 and 4 merged: J = 0.5 each
            vec!["y", "z"],                     // new
        ];
        let mut next_id = 10;
        let assigned = assign_ids(&previous, &current, &mut next_id);
        assert_eq!(assigned[0].id, 1);
        assert_eq!(assigned[0].labels, ["one"]);
        assert_eq!(assigned[1].id, 2, "a split keeps the label on the larger part");
        assert_eq!(assigned[2].offered_ids, [2], "and offers it on the others");
        assert_ne!(assigned[2].id, 2);
        assert_eq!((assigned[3].id, assigned[3].merged_ids.as_slice()), (3, &[4][..]));
        assert_eq!(assigned[3].labels, ["three", "four"], "a merge keeps both labels");
        assert_eq!((assigned[2].id, assigned[4].id), (10, 11), "fresh ids by least member");
        assert_eq!(next_id, 12);
    }

    #[test]
    fn an_anchored_community_keeps_its_id() {
        let mut pinned = known(5, &["a", "b", "c", "d", "e", "f"], "pinned");
        pinned.anchors = vec!["a".into()];
        let current: Vec<Vec<&str>> =
            vec![vec!["b", "c", "d", "e", "f", "g"], vec!["a", "h", "i", "j"]];
        let assigned = assign_ids(&[pinned], &current, &mut 6);
        assert_eq!(assigned[1].id, 5, "the anchor decides, not the overlap");
        assert_eq!(assigned[0].offered_ids, [5]);
    }

    #[test]
    fn nmi_of_equal_and_independent_partitions() {
        assert!((nmi(&[0, 0, 1, 1], &[5, 5, 7, 7]) - 1.0).abs() < 1e-12);
        assert!(nmi(&[0, 0, 1, 1], &[0, 1, 0, 1]).abs() < 1e-12);
    }

    #[test]
    fn confidence_is_one_on_a_clear_partition() {
        let mut triples = Vec::new();
        for group in 0..4u32 {
            for a in 0..6 {
                for b in 0..6 {
                    if a != b {
                        triples.push((group * 6 + a, group * 6 + b, 1.0));
                    }
                }
            }
        }
        triples.push((0, 6, 0.1));
        triples.push((6, 0, 0.1));
        let graph = Csr::from_triples(24, triples);
        let detected = detect(&graph, CommunitySettings::default()).unwrap();
        assert!(detected.confidence.iter().all(|&c| c == 1.0));
        assert_eq!(detected, detect(&graph, CommunitySettings::default()).unwrap());
    }
}
