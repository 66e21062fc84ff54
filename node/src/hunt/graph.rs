//! The interaction graph of a window: a weighted directed graph (amplifier → amplified, edge
//! weight `ln(1 + summed weight)`) and its undirected sum (both directions added), each in
//! compressed sparse rows.
//!
//! Nodes are every account that posted in the window or was the target of an interaction in
//! it, in the order of their ledger index, so the same ledger gives the same graph.

use std::collections::HashMap;

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
    pub fn from_triples(nodes: usize, mut triples: Vec<(u32, u32, f64)>) -> Self {
        triples.sort_unstable_by_key(|&(from, to, _)| (from, to));
        let mut offsets = vec![0usize; nodes + 1];
        let mut targets: Vec<u32> = Vec::with_capacity(triples.len());
        let mut weights: Vec<f64> = Vec::with_capacity(triples.len());
        let mut last: Option<(u32, u32)> = None;
        for (from, to, weight) in triples {
            if last == Some((from, to)) {
                if let Some(held) = weights.last_mut() {
                    *held += weight;
                }
                continue;
            }
            last = Some((from, to));
            offsets[from as usize + 1] += 1;
            targets.push(to);
            weights.push(weight);
        }
        for n in 0..nodes {
            offsets[n + 1] += offsets[n];
        }
        Self { offsets, targets, weights }
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
    pub fn from_ledger(ledger: &Ledger, window: Window, follow_weight: f64) -> Self {
        let activity_by_account = ledger.window_activity(window);
        let edges = ledger.window_edges(window, &activity_by_account, follow_weight);
        let mut accounts: Vec<AccountIndex> = activity_by_account
            .iter()
            .filter(|(_, activity)| activity.posts() > 0)
            .map(|(&account, _)| account)
            .chain(edges.keys().flat_map(|&(from, to)| [from, to]))
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        let node_of: HashMap<AccountIndex, u32> = accounts
            .iter()
            .enumerate()
            .map(|(node, &account)| (account, u32::try_from(node).unwrap_or(u32::MAX)))
            .collect();
        let activity = accounts
            .iter()
            .map(|account| activity_by_account.get(account).copied().unwrap_or_default())
            .collect();
        let mut directed = Vec::with_capacity(edges.len());
        let mut undirected = Vec::with_capacity(edges.len() * 2);
        for (&(from, to), &summed) in &edges {
            let (from, to) = (node_of[&from], node_of[&to]);
            let weight = summed.ln_1p();
            directed.push((from, to, weight));
            undirected.push((from, to, weight));
            undirected.push((to, from, weight));
        }
        let nodes = accounts.len();
        Self {
            window,
            accounts,
            activity,
            directed: Csr::from_triples(nodes, directed),
            undirected: Csr::from_triples(nodes, undirected),
        }
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
}
