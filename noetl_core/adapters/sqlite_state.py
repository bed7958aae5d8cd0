"""What the embedded log knows of each execution it serves, kept in memory.

The embedded runtime is the only writer in its process. After one read of an
execution's rows, every commit updates this state while the log's write lock is still
held, so settling a block needs no read at all: whether an entry exists, the halt flag,
the in-flight sums by step, the latest result. Another process's write (a `noetl
cancel`, a second `noetl run` on the same home) moves the log's highest `seq` past the
last one this process committed; the log then drops everything here and reads again on
demand.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from ..engine.entries import Entry
from ..runtime.ports import Open

MAX_EXECUTIONS = 256


@dataclass
class Known:
    ids: set[str] = field(default_factory=set)
    halted: bool = False
    open: dict[str | None, list[int]] = field(default_factory=dict)
    last_result: tuple[int, str] | None = None

    def add(
        self,
        entry_id: str,
        seq: int,
        step: str | None,
        deltas: tuple[int, int, int],
        halt: bool,
        resulting: bool,
    ) -> None:
        self.ids.add(entry_id)
        self.halted = self.halted or halt
        if any(deltas):
            sums = self.open.setdefault(step, [0, 0, 0])
            for i, delta in enumerate(deltas):
                sums[i] += delta
        if resulting and (self.last_result is None or seq > self.last_result[0]):
            self.last_result = (seq, entry_id)

    def open_work(self, steps: Collection[str] | None) -> Open:
        totals = [0, 0, 0]
        chosen: Iterable[str | None] = self.open if steps is None else steps
        for step in chosen:
            sums = self.open.get(step)
            if sums is not None:
                for i in range(3):
                    totals[i] += sums[i]
        return Open(*totals)


class KnownExecutions:
    """Known state by execution id, the most recently used kept."""

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Known] = OrderedDict()

    def get(self, execution_id: str) -> Known | None:
        found = self._by_id.get(execution_id)
        if found is not None:
            self._by_id.move_to_end(execution_id)
        return found

    def put(self, execution_id: str, known: Known) -> None:
        self._by_id[execution_id] = known
        if len(self._by_id) > MAX_EXECUTIONS:
            self._by_id.popitem(last=False)

    def apply(self, entry: Entry, seq: int, resulting: bool) -> None:
        known = self._by_id.get(entry.execution_id)
        if known is None:
            return
        deltas = (entry.dc, entry.da, entry.dj)
        known.add(entry.id, seq, entry.step, deltas, entry.halt, resulting)

    def clear(self) -> None:
        self._by_id.clear()
