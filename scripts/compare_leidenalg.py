#!/usr/bin/env python3
"""Runs python-igraph + leidenalg on the graph the hunt bench writes and compares it with the
node's partition: time, modularity (igraph's modularity() for both partitions) and NMI.

    cargo bench -p crossmatch-node --bench hunt -- --edges /tmp/hunt-edges.txt
    python3 -m venv /tmp/hunt-venv && /tmp/hunt-venv/bin/pip install igraph leidenalg
    /tmp/hunt-venv/bin/python scripts/compare_leidenalg.py /tmp/hunt-edges.txt [--seeds 5]

The edge file holds the node count on its first line, then `u v weight` per undirected edge;
`FILE.membership` holds the node's partition, one community per line.
"""

import argparse
import statistics
import time

import igraph
import leidenalg


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("edges")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    with open(args.edges) as f:
        nodes = int(f.readline())
        edges, weights = [], []
        for line in f:
            u, v, w = line.split()
            edges.append((int(u), int(v)))
            weights.append(float(w))
    graph = igraph.Graph(n=nodes, edges=edges, directed=False)
    graph.es["weight"] = weights
    with open(args.edges + ".membership") as f:
        ours = [int(line) for line in f]
    ours_q = graph.modularity(ours, weights="weight")
    print(f"graph: {nodes} nodes, {len(edges)} edges")
    print(f"node's partition: modularity {ours_q:.4f}, {len(set(ours))} communities")
    times, qualities, nmis = [], [], []
    for seed in range(1, args.seeds + 1):
        started = time.perf_counter()
        partition = leidenalg.find_partition(
            graph,
            leidenalg.ModularityVertexPartition,
            weights="weight",
            n_iterations=-1,
            seed=seed,
        )
        times.append(time.perf_counter() - started)
        membership = partition.membership
        qualities.append(graph.modularity(membership, weights="weight"))
        nmis.append(igraph.compare_communities(ours, membership, method="nmi"))
        print(
            f"seed {seed}: {times[-1]:.2f} s, modularity {qualities[-1]:.4f}, "
            f"{len(set(membership))} communities, NMI with the node's {nmis[-1]:.3f}"
        )

    def summary(values, digits):
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"

    print(f"leidenalg: time {summary(times, 2)} s, modularity {summary(qualities, 4)}")
    print(f"NMI node vs leidenalg: {summary(nmis, 3)}")
    best = max(qualities)
    print(f"node's modularity relative to leidenalg's mean: {100 * (ours_q / statistics.mean(qualities) - 1):+.2f} %")
    print(f"node's modularity relative to leidenalg's best: {100 * (ours_q / best - 1):+.2f} %")


if __name__ == "__main__":
    main()
