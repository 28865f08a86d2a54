"""The pipeline as a directed acyclic graph: the one place that knows order and cycles.

Both orchestrators are rendered from this graph, so "what runs after what" is decided once.
Cycle detection and ordering use the standard library's graphlib.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property


class CycleError(ValueError):
    """The dependencies loop; `cycle` lists the steps in order, first repeated at the end."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


@dataclass(frozen=True)
class Graph:
    """Steps in config order and edges (upstream, downstream)."""

    nodes: tuple[str, ...]
    edges: frozenset[tuple[str, str]]

    @classmethod
    def from_dependencies(cls, deps: Mapping[str, Iterable[str]]) -> Graph:
        """Build from {step: its upstream steps}; raises CycleError naming the loop."""
        nodes = tuple(deps)
        edges = frozenset((up, node) for node, ups in deps.items() for up in ups)
        graph = cls(nodes, edges)
        graph.topological_order()  # raises on a cycle
        return graph

    @cached_property
    def _adjacency(self) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
        up: dict[str, list[str]] = {n: [] for n in self.nodes}
        down: dict[str, list[str]] = {n: [] for n in self.nodes}
        position = {n: i for i, n in enumerate(self.nodes)}
        for a, b in sorted(self.edges, key=lambda e: (position[e[0]], position[e[1]])):
            up[b].append(a)
            down[a].append(b)
        return {k: tuple(v) for k, v in up.items()}, {k: tuple(v) for k, v in down.items()}

    def upstream(self, node: str) -> tuple[str, ...]:
        """Direct upstream steps, in config order."""
        return self._adjacency[0][node]

    def downstream(self, node: str) -> tuple[str, ...]:
        """Direct downstream steps, in config order."""
        return self._adjacency[1][node]

    @property
    def roots(self) -> tuple[str, ...]:
        targets = {b for _, b in self.edges}
        return tuple(n for n in self.nodes if n not in targets)

    @property
    def sinks(self) -> tuple[str, ...]:
        sources = {a for a, _ in self.edges}
        return tuple(n for n in self.nodes if n not in sources)

    def topological_order(self) -> tuple[str, ...]:
        """A dependency-respecting order; among ready steps, config order wins (stable output)."""
        return self._order

    @cached_property
    def _order(self) -> tuple[str, ...]:
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for node in self.nodes:
            sorter.add(node, *self.upstream(node))
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = list(exc.args[1])
            cycle.reverse()  # graphlib reports it against the edge direction
            raise CycleError(cycle) from None
        position = {n: i for i, n in enumerate(self.nodes)}
        order: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            order.extend(ready)
            sorter.done(*ready)
        return tuple(order)


# --- series-parallel structure -------------------------------------------------------------
# Step Functions has no "start when these finish" edges: only sequences of states and Parallel
# states whose branches all finish before the next state. A graph is rendered as nested
# Seq/Par blocks. For series-parallel graphs the blocks add no ordering the config does not
# have; otherwise a sequence cut must order some independent steps, and we pick the cut that
# keeps the critical path shortest (method in `structure`).


@dataclass(frozen=True)
class Seq:
    items: tuple[Block, ...]


@dataclass(frozen=True)
class Par:
    branches: tuple[Block, ...]


Block = str | Seq | Par


def structure(graph: Graph) -> Block:
    """Nested Seq/Par blocks that respect every edge of the graph.

    In a connected block, A;B is a valid sequence cut without added ordering iff every step of
    A reaches every step of B; such an A is a prefix of every topological order, so prefixes of
    one order are the only candidates. Disconnected parts become Par branches. When no exact
    cut exists (the graph is not series-parallel), the prefix cut with the smallest
    critical path (longest chain of A + longest chain of B, in steps) is taken, ties broken by
    the fewest step pairs newly ordered.
    """
    reach = _reachability(graph)
    return _decompose(graph, list(graph.topological_order()), reach)


def added_orderings(graph: Graph, block: Block) -> set[tuple[str, str]]:
    """Pairs (a, b) the block runs a-before-b that the graph does not order: its cost."""
    reach = _reachability(graph)
    return {(a, b) for a, b in _block_order(block) if b not in reach[a]}


def critical_path(block: Block) -> int:
    """Longest chain of steps through the block (unit step durations)."""
    if isinstance(block, str):
        return 1
    if isinstance(block, Seq):
        return sum(critical_path(b) for b in block.items)
    return max(critical_path(b) for b in block.branches)


def graph_critical_path(graph: Graph, nodes: list[str] | None = None) -> int:
    """Longest chain of steps in the graph (or the subgraph induced by nodes)."""
    keep = set(graph.nodes if nodes is None else nodes)
    longest: dict[str, int] = {}
    for node in graph.topological_order():
        if node in keep:
            longest[node] = 1 + max((longest[u] for u in graph.upstream(node) if u in keep), default=0)
    return max(longest.values(), default=0)


def _reachability(graph: Graph) -> dict[str, set[str]]:
    reach: dict[str, set[str]] = {}
    for node in reversed(graph.topological_order()):
        reach[node] = set()
        for down in graph.downstream(node):
            reach[node] |= {down} | reach[down]
    return reach


def _components(graph: Graph, nodes: list[str]) -> list[list[str]]:
    keep = set(nodes)
    parent = {n: n for n in nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in graph.edges:
        if a in keep and b in keep:
            parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for n in nodes:  # nodes are in topological order; groups keep it
        groups.setdefault(find(n), []).append(n)
    return list(groups.values())


def _decompose(graph: Graph, nodes: list[str], reach: dict[str, set[str]]) -> Block:
    if len(nodes) == 1:
        return nodes[0]
    parts = _components(graph, nodes)
    if len(parts) > 1:
        return Par(tuple(_decompose(graph, p, reach) for p in parts))
    # connected: cut into a sequence at every exact cut point. A cut at k is exact iff every b
    # after k has all of nodes[:k] as ancestors, i.e. covers(b) >= k for each of them, where
    # covers(b) is the length of the longest prefix of nodes made of ancestors of b.
    index = {n: i for i, n in enumerate(nodes)}
    covers = []
    for b in nodes:
        ancestors = {index[a] for a in nodes if b in reach[a]}
        k = 0
        while k in ancestors:
            k += 1
        covers.append(k)
    suffix_min = [len(nodes)] * (len(nodes) + 1)
    for i in range(len(nodes) - 1, -1, -1):
        suffix_min[i] = min(covers[i], suffix_min[i + 1])
    cuts = [k for k in range(1, len(nodes)) if suffix_min[k] >= k]
    if not cuts:
        cuts = [_best_inexact_cut(graph, nodes, reach)]
    items: list[Block] = []
    start = 0
    for k in [*cuts, len(nodes)]:
        part = _decompose(graph, nodes[start:k], reach)
        items.extend(part.items if isinstance(part, Seq) else [part])
        start = k
    return Seq(tuple(items))


def _best_inexact_cut(graph: Graph, nodes: list[str], reach: dict[str, set[str]]) -> int:
    def cost(k: int) -> tuple[int, int]:
        added = sum(1 for a in nodes[:k] for b in nodes[k:] if b not in reach[a])
        return graph_critical_path(graph, nodes[:k]) + graph_critical_path(graph, nodes[k:]), added

    return min(range(1, len(nodes)), key=cost)


def _block_order(block: Block) -> set[tuple[str, str]]:
    """Every (a, b) such that the block finishes a before it starts b."""
    if isinstance(block, str):
        return set()
    if isinstance(block, Par):
        return set().union(*(_block_order(b) for b in block.branches))
    out: set[tuple[str, str]] = set()
    seen: list[str] = []
    for item in block.items:
        steps = _steps(item)
        out |= {(a, b) for a in seen for b in steps} | _block_order(item)
        seen.extend(steps)
    return out


def _steps(block: Block) -> list[str]:
    if isinstance(block, str):
        return [block]
    children = block.items if isinstance(block, Seq) else block.branches
    return [s for child in children for s in _steps(child)]


def steps_in_order(block: Block) -> list[str]:
    """The block's steps depth first: the order a run's failures are listed in on both orchestrators
    (the state machine collects them branch by branch, in this order)."""
    if isinstance(block, str):
        return [block]
    parts = block.items if isinstance(block, Seq) else block.branches
    return [step for part in parts for step in steps_in_order(part)]
