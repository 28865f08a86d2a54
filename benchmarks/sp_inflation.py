"""How much ordering the Step Functions rendering adds to graphs that are not series-parallel.

Step Functions can only nest sequences and Parallel states, so a DAG that is not
series-parallel must have some independent steps ordered. For random DAGs this prints the
critical path (longest chain, unit step durations) of the DAG vs of esteira's structure, and
the pairs of steps newly ordered. Usage: python benchmarks/sp_inflation.py [--graphs 500]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from esteira.graph import Graph, added_orderings, critical_path, graph_critical_path, structure


def random_dag(rng: random.Random, n: int, p: float) -> Graph:
    deps = {f"s{i}": [f"s{j}" for j in range(i) if rng.random() < p] for i in range(n)}
    return Graph.from_dependencies(deps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", type=int, default=500, help="random graphs per row (default 500)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"{'steps':>5} {'edge p':>6} {'SP %':>6} {'CP infl. mean':>13} {'max':>6} "
          f"{'pairs added':>11} {'ms/graph':>8}")
    for n, p in [(5, 0.3), (8, 0.3), (12, 0.2), (20, 0.15), (40, 0.08), (80, 0.05)]:
        ratios, added, sp = [], [], 0
        start = time.perf_counter()
        for _ in range(args.graphs):
            g = random_dag(rng, n, p)
            block = structure(g)
            extra = added_orderings(g, block)
            sp += not extra
            ratios.append(critical_path(block) / graph_critical_path(g))
            added.append(len(extra))
        ms = (time.perf_counter() - start) * 1000 / args.graphs
        print(f"{n:>5} {p:>6.2f} {100 * sp / args.graphs:>5.0f}% {statistics.mean(ratios):>13.3f} "
              f"{max(ratios):>6.2f} {statistics.mean(added):>11.1f} {ms:>8.2f}")
    print("CP inflation = critical path of the state machine / critical path of the DAG (1.000 = none).")


if __name__ == "__main__":
    main()
