//! The interaction graph of a window: a weighted directed graph (amplifier → amplified, edge
//! weight `ln(1 + summed weight)`) and its undirected sum (both directions added), each in
//! compressed sparse rows.
//!
//! Nodes are every account that posted in the window or was the target of an interaction in
//! it, in the order of their ledger index, so the same ledger gives the same graph.

use super::ledger::{AccountIndex, Activity, Ledger, Window};

/// The default weight of a follow between two accounts that posted.
pub const FOLLOW_WEIGHT: f64 = 0.5;

/// Compressed sparse rows: node `n`'s neighbours are `targets[offsets[n]..offsets[n + 1]]`,
/// sorted, with their `weights`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csr {
    offsets: Vec<usize>,
    targets: Vec<u32>,
    weights: Vec<f64>,
}

impl Csr {
    /// Builds rows from `(from, to, weight)` triples over `nodes` nodes; duplicates are summed.
    pub fn from_triples(nodes: usize, triples: Vec<(u32, u32, f64)>) -> Self {
        let mut counts = vec![0usize; nodes];
        for &(from, _, _) in &triples {
            counts[from as usize] += 1;
        }
        Self::from_rows(counts, |place| {
            for &(from, to, weight) in &triples {
                place(from, to, weight);
            }
        })
    }

    /// Builds rows by a counting sort: `counts[n]` is how many entries node `n` gets, and
    /// `fill` places each entry once through the closure it is given. Each row is then sorted
    /// by target (stably) and its duplicates summed in the order they were placed. Linear in
    /// the entries, apart from sorting each (short) row.
    fn from_rows(counts: Vec<usize>, fill: impl FnOnce(&mut dyn FnMut(u32, u32, f64))) -> Self {
        let nodes = counts.len();
        let mut offsets = Vec::with_capacity(nodes + 1);
        offsets.push(0usize);
        let mut total = 0usize;
        for count in &counts {
            total += count;
            offsets.push(total);
        }
        let mut cursor: Vec<usize> = offsets[..nodes].to_vec();
        let mut entries: Vec<(u32, f64)> = vec![(0, 0.0); total];
        fill(&mut |from, to, weight| {
            // An entry beyond its row's count (a caller's miscount) is dropped, never written
            // into the next row.
            let from = from as usize;
            if let (Some(at), Some(&end)) = (cursor.get_mut(from), offsets.get(from + 1))
                && *at < end
            {
                entries[*at] = (to, weight);
                *at += 1;
            }
        });
        // Sort each row, sum its duplicates, and compact the rows in place.
        let mut targets: Vec<u32> = Vec::with_capacity(total);
        let mut weights: Vec<f64> = Vec::with_capacity(total);
        let mut compact = Vec::with_capacity(nodes + 1);
        compact.push(0usize);
        for node in 0..nodes {
            let row = &mut entries[offsets[node]..cursor[node]];
            // Stable: a pair's duplicates are summed in the order they were placed.
            row.sort_by_key(|&(to, _)| to);
            let row_start = targets.len();
            for &(to, weight) in row.iter() {
                if targets.len() > row_start && targets.last() == Some(&to) {
                    if let Some(held) = weights.last_mut() {
                        *held += weight;
                    }
                    continue;
                }
                targets.push(to);
                weights.push(weight);
            }
            compact.push(targets.len());
        }
        targets.shrink_to_fit();
        weights.shrink_to_fit();
        Self { offsets: compact, targets, weights }
    }

    /// The undirected sum of a directed graph: `w(u, v) = w(u → v) + w(v → u)`, stored both
    /// ways (a self-loop, which the window graph never has, would be stored twice).
    pub fn symmetrised(&self) -> Self {
        let nodes = self.nodes();
        let mut counts = vec![0usize; nodes];
        for node in 0..nodes {
            counts[node] += self.offsets[node + 1] - self.offsets[node];
            for &target in self.row(node).0 {
                counts[target as usize] += 1;
            }
        }
        Self::from_rows(counts, |place| {
            for node in 0..nodes {
                let (targets, weights) = self.row(node);
                for (&target, &weight) in targets.iter().zip(weights) {
                    let from = u32::try_from(node).unwrap_or(u32::MAX);
                    place(from, target, weight);
                    place(target, from, weight);
                }
            }
        })
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The number of stored (directed) entries.
    pub fn entries(&self) -> usize {
        self.targets.len()
    }

    /// A node's neighbours and weights.
    pub fn row(&self, node: usize) -> (&[u32], &[f64]) {
        let range = self.offsets[node]..self.offsets[node + 1];
        (&self.targets[range.clone()], &self.weights[range])
    }

    /// A node's summed weight.
    pub fn strength(&self, node: usize) -> f64 {
        self.row(node).1.iter().sum()
    }
}

/// The graph of one window.
#[derive(Debug, Clone)]
pub struct WindowGraph {
    /// The window.
    pub window: Window,
    /// Node `n` is ledger account `accounts[n]` (a root account).
    pub accounts: Vec<AccountIndex>,
    /// Each node's posts in the window (zero for accounts that were only referenced).
    pub activity: Vec<Activity>,
    /// Amplifier → amplified, weight `ln(1 + summed weight)`.
    pub directed: Csr,
    /// Both directions summed: `w(u, v) = directed(u → v) + directed(v → u)`; stored both ways.
    pub undirected: Csr,
}

impl WindowGraph {
    /// Builds the graph of `window` from a ledger; follows weigh `follow_weight`.
    ///
    /// Without a map of edges: ledger indices are dense, so vectors indexed by them hold the
    /// activity and the node numbers, and the rows are filled by a counting sort, each row's
    /// entries in day order (a stable sort by target then sums a pair's days in the same order
    /// every time, so the weights, and the communities, are the same on every run).
    pub fn from_ledger(ledger: &Ledger, window: Window, follow_weight: f64) -> Self {
        let by_index = ledger.window_activity_by_index(window);
        let posted = |account: AccountIndex| {
            by_index.get(account.0 as usize).is_some_and(|activity| activity.posts() > 0)
        };
        let follows = ledger.window_follows(window, posted);
        // Nodes: accounts that posted or were part of an interaction.
        let mut is_node: Vec<bool> = by_index.iter().map(|activity| activity.posts() > 0).collect();
        let mut out_count = vec![0usize; by_index.len()];
        let mut mark = |from: AccountIndex, to: AccountIndex| {
            for account in [from, to] {
                if let Some(slot) = is_node.get_mut(account.0 as usize) {
                    *slot = true;
                }
            }
            if let Some(count) = out_count.get_mut(from.0 as usize) {
                *count += 1;
            }
        };
        ledger.for_each_window_interaction(window, |from, to, _| mark(from, to));
        for &(from, to) in &follows {
            mark(from, to);
        }
        let mut node_of = vec![u32::MAX; by_index.len()];
        let mut accounts = Vec::new();
        let mut counts = Vec::new();
        for (account, _) in is_node.iter().enumerate().filter(|(_, is_node)| **is_node) {
            node_of[account] = u32::try_from(accounts.len()).unwrap_or(u32::MAX);
            accounts.push(AccountIndex(u32::try_from(account).unwrap_or(u32::MAX)));
            counts.push(out_count[account]);
        }
        drop(out_count);
        let activity = accounts.iter().map(|account| by_index[account.0 as usize]).collect();
        let node = |account: AccountIndex| node_of[account.0 as usize];
        let mut directed = Csr::from_rows(counts, |place| {
            ledger.for_each_window_interaction(window, |from, to, weight| {
                place(node(from), node(to), weight);
            });
            for &(from, to) in &follows {
                place(node(from), node(to), follow_weight);
            }
        });
        for weight in &mut directed.weights {
            *weight = weight.ln_1p();
        }
        let undirected = directed.symmetrised();
        Self { window, accounts, activity, directed, undirected }
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.accounts.len()
    }

    /// Whether node `n` posted in the window.
    pub fn posted(&self, node: usize) -> bool {
        self.activity[node].posts() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_become_sorted_rows_with_duplicates_summed() {
        let csr = Csr::from_triples(3, vec![(2, 0, 1.0), (0, 2, 0.5), (0, 1, 1.0), (0, 2, 0.25)]);
        assert_eq!(csr.nodes(), 3);
        assert_eq!(csr.row(0), (&[1u32, 2][..], &[1.0, 0.75][..]));
        assert_eq!(csr.row(1), (&[][..], &[][..]));
        assert_eq!(csr.row(2), (&[0u32][..], &[1.0][..]));
        assert_eq!(csr.strength(0), 1.75);
        assert_eq!(csr.entries(), 3);
    }

    #[test]
    fn the_window_graph_matches_one_built_from_the_summed_edge_map() {
        use crate::hunt::observation::parse_line;
        let day = 1_600_000_000_000u64;
        let mut lines = vec![
            // A merge (old handle, then the id), a follow snapshot between posters, mentions.
            format!(r#"{{"platform":"x","account":"@old","at":{day},"post_id":"m1"}}"#),
            format!(
                r#"{{"platform":"x","account":"@new","account_id":"7","at":{},"post_id":"m2"}}"#,
                day + 5
            ),
            format!(
                r#"{{"platform":"x","account":"@old","account_id":"7","at":{},"post_id":"m3"}}"#,
                day + 4
            ),
            format!(
                r#"{{"platform":"x","account":"@p0","at":{},"follows":["@p1","@p2","@new","@quiet"]}}"#,
                day + 9
            ),
        ];
        for n in 0..60u64 {
            let at = day + (n % 3) * 86_400_000 + n;
            let (author, other) = (n % 7, (n * 3 + 1) % 7);
            let reference = match n % 4 {
                0 => format!(r#""repost_of":"@p{other}""#),
                1 => r#""reply_to":"@old""#.to_owned(),
                2 => format!(r#""mentions":["@p{other}","@new","@only_mentioned"]"#),
                _ => r#""repost_of":"@new""#.to_owned(),
            };
            lines.push(format!(
                r#"{{"platform":"x","account":"@p{author}","at":{at},"post_id":"{n}",{reference}}}"#
            ));
        }
        let mut ledger = Ledger::default();
        for (n, line) in lines.iter().enumerate() {
            let parsed = parse_line(line, n as u64 + 1, u64::MAX / 2, 0).unwrap();
            ledger.ingest(&parsed.observation);
        }
        let window = Window::ending(ledger.last_day().unwrap(), 7);
        let graph = WindowGraph::from_ledger(&ledger, window, FOLLOW_WEIGHT);
        // The reference: the summed edge map, nodes by ledger index, whole-list sorted rows.
        let activity = ledger.window_activity(window);
        let edges = ledger.window_edges(window, &activity, FOLLOW_WEIGHT);
        let mut accounts: Vec<AccountIndex> = activity
            .keys()
            .copied()
            .chain(edges.keys().flat_map(|&(from, to)| [from, to]))
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        assert_eq!(graph.accounts, accounts);
        let node = |account: AccountIndex| accounts.binary_search(&account).unwrap() as u32;
        let triples: Vec<(u32, u32, f64)> =
            edges.iter().map(|(&(from, to), &w)| (node(from), node(to), w.ln_1p())).collect();
        let directed = Csr::from_triples(accounts.len(), triples);
        assert_eq!(graph.directed.offsets, directed.offsets);
        assert_eq!(graph.directed.targets, directed.targets);
        for (a, b) in graph.directed.weights.iter().zip(&directed.weights) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert!(graph.directed.entries() > 10, "a graph worth comparing");
        let undirected = graph.undirected.clone();
        assert_eq!(undirected, graph.directed.symmetrised());
        for node in 0..graph.nodes() {
            assert_eq!(
                graph.activity[node],
                activity.get(&graph.accounts[node]).copied().unwrap_or_default()
            );
        }
        // The same ledger gives the same graph, bit for bit.
        let again = WindowGraph::from_ledger(&ledger, window, FOLLOW_WEIGHT);
        assert_eq!(again.directed, graph.directed);
        assert_eq!(again.undirected, graph.undirected);
    }

    #[test]
    fn the_undirected_sum_adds_both_directions_and_stores_them_both_ways() {
        let directed = Csr::from_triples(3, vec![(0, 1, 1.0), (1, 0, 0.5), (2, 0, 2.0)]);
        let undirected = directed.symmetrised();
        assert_eq!(undirected.row(0), (&[1u32, 2][..], &[1.5, 2.0][..]));
        assert_eq!(undirected.row(1), (&[0u32][..], &[1.5][..]));
        assert_eq!(undirected.row(2), (&[0u32][..], &[2.0][..]));
    }
}
