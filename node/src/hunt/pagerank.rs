//! Influence: weighted PageRank on the directed interaction graph, damping 0.85.
//!
//! Node `u` passes `d · pr(u) · w(u → v) / s(u)` to each `v` it amplifies (`s(u)` its summed
//! out-weight). Only accounts that posted in the window are ranked, which means exactly this:
//! the teleport share `(1 − d)` and the mass of dangling nodes (no out-edge) go, uniformly, to
//! posting accounts only; accounts that were only referenced are nodes (weight sent to them
//! is not lost, and they are always dangling, since follows are kept only between posting
//! accounts), but they get no score ([`None`]). The scores of posting accounts are normalised
//! to sum to 1. Iteration stops when the L1 change falls below 1e-10, or after 200 rounds.

use super::graph::Csr;

/// The default damping factor.
pub const DAMPING: f64 = 0.85;

const TOLERANCE: f64 = 1e-10;
const MAX_ROUNDS: usize = 200;

/// PageRank of each node of `graph`; `ranked[n]` says whether node `n` is ranked (posted).
/// Unranked nodes get `None`.
pub fn pagerank(graph: &Csr, ranked: &[bool], damping: f64) -> Vec<Option<f64>> {
    let nodes = graph.nodes();
    let ranked_count = ranked.iter().filter(|&&r| r).count();
    if ranked_count == 0 {
        return vec![None; nodes];
    }
    let share = 1.0 / ranked_count as f64;
    let strength: Vec<f64> = (0..nodes).map(|node| graph.strength(node)).collect();
    let mut rank: Vec<f64> = ranked.iter().map(|&r| if r { share } else { 0.0 }).collect();
    let mut next = vec![0.0; nodes];
    for _ in 0..MAX_ROUNDS {
        let dangling: f64 =
            (0..nodes).filter(|&node| strength[node] <= 0.0).map(|node| rank[node]).sum();
        let base = ((1.0 - damping) + damping * dangling) * share;
        for (node, value) in next.iter_mut().enumerate() {
            *value = if ranked[node] { base } else { 0.0 };
        }
        for node in 0..nodes {
            if strength[node] <= 0.0 {
                continue;
            }
            let (targets, weights) = graph.row(node);
            let passed = damping * rank[node] / strength[node];
            for (&target, &weight) in targets.iter().zip(weights) {
                next[target as usize] += passed * weight;
            }
        }
        let change: f64 = rank.iter().zip(&next).map(|(a, b)| (a - b).abs()).sum();
        std::mem::swap(&mut rank, &mut next);
        if change < TOLERANCE {
            break;
        }
    }
    let ranked_total: f64 = (0..nodes).filter(|&node| ranked[node]).map(|node| rank[node]).sum();
    (0..nodes)
        .map(|node| ranked[node].then(|| rank[node] / ranked_total.max(f64::MIN_POSITIVE)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn agrees_with_a_hand_computed_case() {
        // a → b (weight 2), a → c (weight 1); a and b posted, c was only referenced.
        // With d = 0.85 and teleport and dangling mass over {a, b}:
        //   pa = 0.075 + 0.425 (pb + pc), pc = 0.85 pa / 3, and pa + pb + pc = 1,
        // so pa = 0.5 / 1.425, pc = 0.85 pa / 3, pb = 1 − pa − pc; reported over {a, b}.
        let graph = Csr::from_triples(3, vec![(0, 1, 2.0), (0, 2, 1.0)]);
        let ranks = pagerank(&graph, &[true, true, false], DAMPING);
        let pa = 0.5 / 1.425;
        let pc = 0.85 * pa / 3.0;
        let pb = 1.0 - pa - pc;
        assert!(close(ranks[0].unwrap(), pa / (pa + pb)), "{ranks:?}");
        assert!(close(ranks[1].unwrap(), pb / (pa + pb)), "{ranks:?}");
        assert_eq!(ranks[2], None);
    }

    #[test]
    fn a_symmetric_cycle_ranks_evenly_and_no_posters_rank_nothing() {
        let graph = Csr::from_triples(3, vec![(0, 1, 1.0), (1, 2, 1.0), (2, 0, 1.0)]);
        for rank in pagerank(&graph, &[true; 3], DAMPING) {
            assert!(close(rank.unwrap(), 1.0 / 3.0));
        }
        assert_eq!(pagerank(&graph, &[false; 3], DAMPING), vec![None; 3]);
    }
}
