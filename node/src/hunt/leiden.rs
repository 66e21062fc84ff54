//! Community detection: Leiden (Traag, Waltman and van Eck, 2019) on the undirected graph,
//! by the maintained `leiden-rs` crate, plus the modularity that reports on a partition.
//!
//! `leiden-rs` was measured before use (docs/BENCHMARKS.md): on the seeded 50,000-account
//! graph it finds partitions whose modularity matches python leidenalg's, in less time, on one
//! core. It is built without its default features (no command line, no rayon), so it runs
//! sequentially and a run is a pure function of the graph, the quality function and the seed
//! (its generator is `rand`'s `StdRng` seeded from the u64, which the lock file pins).

use leiden_rs::{GraphData, GraphDataBuilder, Leiden, LeidenConfig, QualityType};

use super::graph::Csr;

/// The quality function Leiden optimises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quality {
    /// Newman-Girvan modularity with a resolution γ (default 1.0):
    /// `Q = Σ_c [e_c / m − γ (K_c / 2m)²]`.
    Modularity {
        /// γ: higher finds more, smaller communities.
        resolution: f64,
    },
    /// The constant Potts model, `H = Σ_c [e_c − γ n_c (n_c − 1) / 2]`, free of modularity's
    /// resolution limit; γ is a density threshold in edge-weight units.
    Cpm {
        /// γ.
        resolution: f64,
    },
}

impl Default for Quality {
    fn default() -> Self {
        Quality::Modularity { resolution: 1.0 }
    }
}

/// One run's partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// Each node's community, numbered from 0 in order of first appearance.
    pub membership: Vec<u32>,
    /// How many communities.
    pub communities: usize,
    /// The quality function's value (as `leiden-rs` reports it).
    pub quality: f64,
}

/// Why a run failed: only an invalid graph or parameter, which the caller's own code makes.
#[derive(Debug, thiserror::Error)]
#[error("community detection failed: {0}")]
pub struct LeidenFailed(String);

/// An undirected graph converted once into `leiden-rs`'s form, which the seeded runs share
/// read-only: converting costs about as much as a sixth of a run (sorting every edge), so the
/// runs of one computation convert once.
#[derive(Debug, Clone)]
pub struct LeidenGraph {
    data: GraphData,
}

impl LeidenGraph {
    /// Converts an undirected graph (each edge stored both ways, as
    /// [`super::graph::WindowGraph::undirected`] is).
    pub fn new(graph: &Csr) -> Result<Self, LeidenFailed> {
        let nodes = graph.nodes();
        let mut builder = GraphDataBuilder::new(nodes);
        for node in 0..nodes {
            let (targets, weights) = graph.row(node);
            for (&target, &weight) in targets.iter().zip(weights) {
                // Each undirected edge once: the builder stores both directions itself.
                if (target as usize) > node {
                    builder
                        .add_edge(node, target as usize, weight)
                        .map_err(|error| LeidenFailed(error.to_string()))?;
                }
            }
        }
        let data = builder.build().map_err(|error| LeidenFailed(error.to_string()))?;
        Ok(Self { data })
    }

    /// One run with a seed: a pure function of the graph, the quality function and the seed.
    pub fn run(&self, quality: Quality, seed: u64) -> Result<Partition, LeidenFailed> {
        let (quality_type, resolution) = match quality {
            Quality::Modularity { resolution } => (QualityType::Modularity, resolution),
            Quality::Cpm { resolution } => (QualityType::CPM, resolution),
        };
        let config = LeidenConfig {
            seed: Some(seed),
            resolution,
            quality: quality_type,
            ..LeidenConfig::default()
        };
        let output =
            Leiden::new(config).run(&self.data).map_err(|error| LeidenFailed(error.to_string()))?;
        let membership = renumber(output.partition.as_slice());
        let communities = membership.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
        Ok(Partition { membership, communities, quality: output.quality })
    }
}

/// Runs Leiden once on an undirected graph (each edge stored both ways, as
/// [`super::graph::WindowGraph::undirected`] is) with a seed.
pub fn leiden(graph: &Csr, quality: Quality, seed: u64) -> Result<Partition, LeidenFailed> {
    LeidenGraph::new(graph)?.run(quality, seed)
}

/// Community numbers from 0 in order of first appearance by node.
pub fn renumber(membership: &[usize]) -> Vec<u32> {
    let mut map: std::collections::HashMap<usize, u32> = std::collections::HashMap::new();
    membership
        .iter()
        .map(|&community| {
            let next = u32::try_from(map.len()).unwrap_or(u32::MAX);
            *map.entry(community).or_insert(next)
        })
        .collect()
}

/// The modularity of a partition of an undirected graph (each edge stored both ways), as
/// igraph's `modularity()` computes it: `Q = Σ_c [in_c / 2m − γ (K_c / 2m)²]`, where `in_c`
/// sums the stored entries inside `c` and `K_c` the strengths of its nodes.
pub fn modularity(graph: &Csr, membership: &[u32], resolution: f64) -> f64 {
    let communities = membership.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut inside = vec![0.0; communities];
    let mut total = vec![0.0; communities];
    let mut two_m = 0.0;
    for node in 0..graph.nodes() {
        let community = membership[node] as usize;
        let (targets, weights) = graph.row(node);
        for (&target, &weight) in targets.iter().zip(weights) {
            two_m += weight;
            total[community] += weight;
            if membership[target as usize] as usize == community {
                inside[community] += weight;
            }
        }
    }
    if two_m <= 0.0 {
        return 0.0;
    }
    inside
        .iter()
        .zip(&total)
        .map(|(inside, total)| inside / two_m - resolution * (total / two_m).powi(2))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `groups` cliques of `size` nodes, each joined to the next by one light edge.
    fn cliques(groups: u32, size: u32) -> Csr {
        let mut triples = Vec::new();
        let mut edge = |a: u32, b: u32, w: f64| {
            triples.push((a, b, w));
            triples.push((b, a, w));
        };
        for group in 0..groups {
            let base = group * size;
            for a in 0..size {
                for b in a + 1..size {
                    edge(base + a, base + b, 1.0);
                }
            }
            edge(base, ((group + 1) % groups) * size + 1, 0.1);
        }
        Csr::from_triples((groups * size) as usize, triples)
    }

    #[test]
    fn finds_planted_cliques_deterministically_per_seed() {
        let graph = cliques(6, 8);
        let first = leiden(&graph, Quality::default(), 7).unwrap();
        assert_eq!(first.communities, 6);
        for (node, &community) in first.membership.iter().enumerate() {
            assert_eq!(community, first.membership[node / 8 * 8], "node {node}");
        }
        assert_eq!(leiden(&graph, Quality::default(), 7).unwrap(), first);
        let q = modularity(&graph, &first.membership, 1.0);
        assert!((q - first.quality).abs() < 1e-9, "{q} vs {}", first.quality);
    }

    #[test]
    fn cpm_is_available() {
        let graph = cliques(4, 6);
        let partition = leiden(&graph, Quality::Cpm { resolution: 0.5 }, 1).unwrap();
        assert_eq!(partition.communities, 4);
    }

    #[test]
    fn modularity_matches_a_hand_computation() {
        // Two disjoint edges, each its own community: Q = 2 × (2/4 − (2/4)²) = 0.5.
        let graph = Csr::from_triples(4, vec![(0, 1, 1.0), (1, 0, 1.0), (2, 3, 1.0), (3, 2, 1.0)]);
        assert!((modularity(&graph, &[0, 0, 1, 1], 1.0) - 0.5).abs() < 1e-12);
        assert!(modularity(&graph, &[0, 0, 0, 0], 1.0).abs() < 1e-12);
        assert_eq!(
            leiden(&Csr::from_triples(0, vec![]), Quality::default(), 1).unwrap().communities,
            0
        );
    }
}
