"""The chain graph: where each node and edge of a chain's picture goes.

The chain's jobs stand in a column in chain order, joined by continuation edges. The chains a job
waits for stand to its left, each with an edge into the job; the jobs of other chains that wait for
this chain stand to the right, with an edge from the chain's last job (closing the chain releases
them). Templates draw the result as inline SVG; colours come from the node's status class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from queuert import Chain, Job

__all__ = ["ChainGraph", "Edge", "Node", "layout_chain"]

NODE_W = 230
NODE_H = 46
GAP_Y = 26
COLUMN_GAP = 90
PAD = 10


@dataclass(frozen=True)
class Node:
    x: int
    y: int
    label: str
    detail: str
    status: str
    kind: str
    """``job`` (of this chain), ``blocker`` (a chain it waits for) or ``dependent`` (a job that
    waits for this chain)."""
    target: tuple[str, str]
    """What the node links to: (``"chains"`` or ``"jobs"``, id)."""
    w: int = NODE_W
    h: int = NODE_H


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int
    kind: str
    """``continuation``, ``blocker`` or ``dependent``."""


@dataclass
class ChainGraph:
    width: int
    height: int
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def _short(ident: str) -> str:
    return ident if len(ident) <= 13 else f"…{ident[-12:]}"


def layout_chain(
    jobs: Sequence[Job],
    blockers: Mapping[str, Sequence[Chain[Any]]],
    dependents: Sequence[Job],
) -> ChainGraph:
    """Place ``jobs`` (one chain, in order), the blocker chains of each (by job id) and the jobs
    that wait for the chain."""
    has_left = any(blockers.get(job.id) for job in jobs)
    left_x = PAD
    mid_x = PAD + (NODE_W + COLUMN_GAP if has_left else 0)
    right_x = mid_x + NODE_W + COLUMN_GAP
    graph = ChainGraph(width=0, height=0)
    step = NODE_H + GAP_Y
    left_next = PAD
    placed_blockers: dict[str, Node] = {}
    for i, job in enumerate(jobs):
        y = PAD + i * step
        node = Node(
            mid_x,
            y,
            job.type_name,
            f"#{i} {job.status} · {_short(job.id)}",
            job.status,
            "job",
            ("jobs", job.id),
        )
        graph.nodes.append(node)
        if i > 0:
            graph.edges.append(
                Edge(mid_x + NODE_W // 2, y - GAP_Y, mid_x + NODE_W // 2, y, "continuation")
            )
        for chain in blockers.get(job.id, ()):
            blocker = placed_blockers.get(chain.id)
            if blocker is None:
                by = max(left_next, y)
                blocker = Node(
                    left_x,
                    by,
                    chain.type_name,
                    f"{chain.tail.status} · {_short(chain.id)}",
                    chain.tail.status,
                    "blocker",
                    ("chains", chain.id),
                )
                placed_blockers[chain.id] = blocker
                graph.nodes.append(blocker)
                left_next = by + step
            graph.edges.append(
                Edge(left_x + NODE_W, blocker.y + NODE_H // 2, mid_x, y + NODE_H // 2, "blocker")
            )
    last_y = PAD + (len(jobs) - 1) * step if jobs else PAD
    right_next = PAD
    for dependent in dependents:
        y = right_next
        graph.nodes.append(
            Node(
                right_x,
                y,
                dependent.type_name,
                f"{dependent.status} · in {_short(dependent.chain_id)}",
                dependent.status,
                "dependent",
                ("jobs", dependent.id),
            )
        )
        graph.edges.append(
            Edge(mid_x + NODE_W, last_y + NODE_H // 2, right_x, y + NODE_H // 2, "dependent")
        )
        right_next = y + step
    bottom = max([n.y + n.h for n in graph.nodes], default=PAD) + PAD
    right = max([n.x + n.w for n in graph.nodes], default=PAD) + PAD
    graph.width, graph.height = right, bottom
    return graph
