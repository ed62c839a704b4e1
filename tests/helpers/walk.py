"""The walk of a run through the project's modules: which module calls into which, traced.

Every Python call from one project module into another is an edge (caller -> callee), in every
thread the threading module starts. A call on the caller's own object (a base class calling the
hook its subclass defines) is one object's business and no edge. A walk goes one way when the
edges make no cycle: no module calls back into one that called it (directly or through others).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PROJECT = "neuralband"


class Walk:
    """The edges seen, with one place each was seen from (for the message)."""

    def __init__(self) -> None:
        self.edges: dict[tuple[str, str], str] = {}

    def profile(self, frame, event: str, arg) -> None:
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        caller_frame = frame.f_back
        if caller_frame is None or not callee.startswith(PROJECT):
            return
        caller = caller_frame.f_globals.get("__name__", "")
        if caller == callee or not caller.startswith(PROJECT):
            return
        me = frame.f_locals.get("self")
        if me is not None and caller_frame.f_locals.get("self") is me:
            return
        self.edges.setdefault((caller, callee), f"{caller_frame.f_code.co_name} -> "
                                                 f"{frame.f_code.co_name}")

    @property
    def modules(self) -> set[str]:
        return {m for edge in self.edges for m in edge}

    def tangles(self) -> list[list[str]]:
        """The groups of modules that call each other round a cycle (the strongly connected
        components of more than one module), each sorted; none when the walk goes one way."""
        graph: dict[str, list[str]] = {m: [] for m in self.modules}
        for a, b in self.edges:
            graph[a].append(b)
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        groups: list[list[str]] = []

        def visit(node: str) -> None:  # Tarjan's algorithm
            index[node] = low[node] = len(index)
            stack.append(node)
            for nxt in graph[node]:
                if nxt not in index:
                    visit(nxt)
                    low[node] = min(low[node], low[nxt])
                elif nxt in stack:
                    low[node] = min(low[node], index[nxt])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

        for node in sorted(graph):
            if node not in index:
                visit(node)
        return groups

    def describe(self, group: list[str]) -> str:
        """The calls among a tangle's modules, and where each was seen."""
        return "; ".join(f"{a} -> {b} ({seen})" for (a, b), seen in sorted(self.edges.items())
                         if a in group and b in group)


@contextmanager
def traced() -> Iterator[Walk]:
    """Trace the calls made inside the block (and in threads started inside it)."""
    walk = Walk()
    before = sys.getprofile()
    threading.setprofile(walk.profile)
    sys.setprofile(walk.profile)
    try:
        yield walk
    finally:
        sys.setprofile(before)
        threading.setprofile(None)
