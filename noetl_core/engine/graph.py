"""The step graph of a playbook: forward arcs, back-edges, joins, reachability.

An arc is a back-edge when its target is on the depth-first path from the entry step to
its source (as in a pagination loop `fetch -> check -> fetch`); every other arc is
forward. A step with forward arcs from two or more steps is a join: it runs once, when
at least one of those arcs fired and nothing that can still reach it is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..playbook.model import Playbook


@dataclass(frozen=True)
class Graph:
    entry: str
    order: tuple[str, ...]
    arcs: dict[str, tuple[str, ...]]
    back_edges: frozenset[tuple[str, str]]
    joins: frozenset[str]
    reach: dict[str, frozenset[str]] = field(default_factory=dict)
    joins_below: dict[str, frozenset[str]] = field(default_factory=dict)

    def is_forward(self, source: str, target: str) -> bool:
        return (source, target) not in self.back_edges

    def is_join_arc(self, source: str, target: str) -> bool:
        return target in self.joins and self.is_forward(source, target)


def build(playbook: Playbook) -> Graph:
    names = [s.step for s in playbook.workflow]
    known = set(names)
    arcs = {
        s.step: tuple(dict.fromkeys(a.step for a in s.arcs if a.step in known))
        for s in playbook.workflow
    }
    entry = playbook.entry_step
    back = _back_edges(entry, names, arcs)
    preds: dict[str, set[str]] = {n: set() for n in names}
    for src, targets in arcs.items():
        for dst in targets:
            if (src, dst) not in back:
                preds[dst].add(src)
    joins = frozenset(n for n, p in preds.items() if len(p) >= 2)
    reach = {j: frozenset(_ancestors(j, preds)) for j in joins}
    below = {n: frozenset(j for j in joins if n in reach[j]) for n in names}
    return Graph(entry, tuple(names), arcs, frozenset(back), joins, reach, below)


def _back_edges(
    entry: str, names: list[str], arcs: dict[str, tuple[str, ...]]
) -> set[tuple[str, str]]:
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root in [entry, *names]:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            targets = arcs.get(node, ())
            if i < len(targets):
                stack[-1] = (node, i + 1)
                nxt = targets[i]
                if state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                stack.pop()
    return back


def _ancestors(node: str, preds: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(preds[node])
    while todo:
        cur = todo.pop()
        if cur in seen or cur == node:
            continue
        seen.add(cur)
        todo.extend(preds[cur])
    return seen
