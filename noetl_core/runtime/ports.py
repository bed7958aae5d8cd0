"""The ports the block runtime is written against; adapters implement them.

Embedded adapters (SQLite, local files, in-process bus and timer) live in
`noetl_core/adapters/`; the Google Cloud ones (Firestore, Cloud Storage, Pub/Sub, Cloud
Tasks) plug into the same runtime.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..engine.entries import Entry


@dataclass(frozen=True)
class Note:
    """The thin message on the command bus: which command, which attempt."""

    execution_id: str
    command_id: str
    attempt: int = 1


@dataclass(frozen=True)
class Open:
    """Work in flight: commands, loop activations, join arrivals not yet consumed."""

    commands: int = 0
    loops: int = 0
    arrivals: int = 0

    @property
    def total(self) -> int:
        return self.commands + self.loops + self.arrivals


@dataclass(frozen=True)
class Snapshot:
    """One read of what a block needs to decide: some entries and the halt flag."""

    found: dict[str, Entry]
    halted: bool


class EventLog(Protocol):
    #: True when claims may be written with the block's record (one process owns the
    #: bus, so a claim needs no separate commit); False on shared backends.
    deferred_claims: bool

    def append(self, entries: Sequence[Entry]) -> bool:
        """Create all entries atomically; False (and nothing written) if any id exists."""
        ...

    def get(self, entry_id: str) -> Entry | None: ...

    def get_many(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        """The entries among `entry_ids` that exist, by id (one round trip)."""
        ...

    def snapshot(self, execution_id: str, entry_ids: Sequence[str] = ()) -> Snapshot:
        """`get_many(entry_ids)` and `halted(execution_id)`, read together (one round
        trip where the backend allows)."""
        ...

    def find(
        self, execution_id: str, kind: str, *, step: str | None = None, group: str | None = None
    ) -> list[Entry]:
        """Entries of one kind, in commit order."""
        ...

    def count(self, execution_id: str, kind: str, *, group: str | None = None) -> int: ...

    def open_work(
        self, execution_id: str, steps: Collection[str] | None = None, *, join: str | None = None
    ) -> Open:
        """What is in flight in `steps` (all steps when None). With `join`, `steps` is that
        join's reach, and only `commands` (open commands and loops there) is answered: a
        log may sum only the batches whose `jn` changed it."""
        ...

    def halted(self, execution_id: str) -> bool:
        """True once an unrecovered failure or a cancellation is recorded."""
        ...

    def last_result(self, execution_id: str) -> Entry | None:
        """The latest successful step record (done or loopdone) outside loop iterations."""
        ...

    def entries(self, execution_id: str) -> list[Entry]:
        """Every entry of the execution, in commit order."""
        ...

    def entries_since(self, execution_id: str, seq: int) -> list[Entry]:
        """The execution's entries from `seq` on, in commit order: every entry whose seq
        is above `seq`, and possibly some at or below it that were committed in the same
        instant (callers following a log skip the ids they have seen)."""
        ...

    def executions(self, limit: int = 20) -> list[Entry]:
        """Start entries of the most recent executions, newest first."""
        ...


class PayloadStore(Protocol):
    url: str

    def put(self, key: str, value: Any, *, tabular: bool) -> dict[str, Any]:
        """Write `value` under `key` (Arrow IPC when tabular, else JSON); return its ref."""
        ...

    def get(self, ref: dict[str, Any]) -> Any:
        """Read a ref's value back, verifying its sha256."""
        ...


class CommandBus(Protocol):
    def publish(self, notes: Sequence[Note]) -> None: ...


class Timer(Protocol):
    def schedule(self, note: Note, due: float) -> None:
        """Deliver `note` to the command bus at wall-clock time `due` (seconds)."""
        ...


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()
