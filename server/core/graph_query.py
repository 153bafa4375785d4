"""Context-graph queries (spec/semantics.md §7.5): argument rules and the BFS, I/O-free.

The BFS is a small state machine: the caller fetches the edges touching the frontier,
in edge_id order, and hands them to `absorb`; truncation, visiting order and the node
filters follow the reference exactly (edges are kept even when an endpoint is filtered
or refused, so results may hold dangling edges; the center counts towards max_nodes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from server.core.errors import invalid_argument

MAX_GRAPH_DEPTH: Final = 10
DIRECTIONS: Final = ("outgoing", "incoming", "both")


@dataclass(frozen=True, slots=True)
class GraphFilter:
    edge_types: frozenset[str] | None = None
    node_types: frozenset[str] | None = None
    max_depth: int = 1
    max_nodes: int = 100
    max_edges: int = 500

    def __post_init__(self) -> None:
        if self.max_depth < 0:
            raise invalid_argument("max_depth must be non-negative")
        if self.max_depth > MAX_GRAPH_DEPTH:
            raise invalid_argument(f"max_depth must be <= {MAX_GRAPH_DEPTH}")
        if self.max_nodes <= 0:
            raise invalid_argument("max_nodes must be positive")
        if self.max_edges <= 0:
            raise invalid_argument("max_edges must be positive")
        if self.edge_types is not None and not self.edge_types:
            raise invalid_argument("edge_types must not be empty if specified")
        if self.node_types is not None and not self.node_types:
            raise invalid_argument("node_types must not be empty if specified")


def node_key(node_type: str, node_id: str) -> str:
    return f"{node_type}:{node_id}"


def endpoint_type(node_id: str) -> str:
    """For node-type filters: the text before the first ':', or "" (not "unknown")."""
    head, sep, _ = node_id.partition(":")
    return head if sep else ""


@dataclass(frozen=True, slots=True)
class EdgeRef:
    edge_id: str
    from_node_id: str
    to_node_id: str


@dataclass
class SubgraphSearch:
    center: str
    filter: GraphFilter
    nodes: list[str] = field(init=False)
    edges: list[str] = field(default_factory=list)
    frontier: set[str] = field(init=False)
    depth: int = 0
    truncated: bool = False

    def __post_init__(self) -> None:
        self.nodes = [self.center]
        self.frontier = {self.center}
        self._seen_nodes = {self.center}
        self._seen_edges: set[str] = set()

    @property
    def wants_more(self) -> bool:
        return bool(self.frontier) and not self.truncated and self.depth < self.filter.max_depth

    def absorb(self, touching: Iterable[EdgeRef]) -> None:
        """One BFS level, given every edge touching the frontier in edge_id order."""
        limits = self.filter
        next_frontier: set[str] = set()
        for edge in touching:
            if edge.edge_id in self._seen_edges:
                continue
            if len(self.edges) >= limits.max_edges:
                self.truncated = True
                break
            self._seen_edges.add(edge.edge_id)
            self.edges.append(edge.edge_id)
            for endpoint in (edge.from_node_id, edge.to_node_id):
                if endpoint in self._seen_nodes:
                    continue
                if limits.node_types and endpoint_type(endpoint) not in limits.node_types:
                    continue
                if len(self.nodes) >= limits.max_nodes:
                    self.truncated = True
                    break
                self._seen_nodes.add(endpoint)
                self.nodes.append(endpoint)
                next_frontier.add(endpoint)
            if self.truncated:
                break
        self.frontier = next_frontier
        self.depth += 1


@dataclass(frozen=True, slots=True)
class EdgeCursor:
    """Keyset position in a node's edge list: (log_seq, edge_id) of the last edge seen."""

    edge_key: str
    direction: str
    log_seq: int | None = None

    def __post_init__(self) -> None:
        if not self.edge_key:
            raise invalid_argument("cursor.edge_key must not be empty")
        if self.direction not in DIRECTIONS:
            raise invalid_argument(f"cursor.direction must be one of {', '.join(DIRECTIONS)}")
        if self.log_seq is not None and self.log_seq <= 0:
            raise invalid_argument("cursor.log_seq must be positive")


def check_edge_page(direction: str, limit: int, cursor: EdgeCursor | None) -> None:
    if limit <= 0:
        raise invalid_argument(f"limit must be positive, got {limit}")
    if cursor is not None and cursor.direction != direction:
        raise invalid_argument("cursor.direction must match direction argument")
