"""The pipeline as a directed acyclic graph: the one place that knows order and cycles.

Both orchestrators are rendered from this graph, so "what runs after what" is decided once.
Cycle detection and ordering use the standard library's graphlib.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


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

    def upstream(self, node: str) -> tuple[str, ...]:
        return tuple(n for n in self.nodes if (n, node) in self.edges)

    def downstream(self, node: str) -> tuple[str, ...]:
        return tuple(n for n in self.nodes if (node, n) in self.edges)

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
