"""Log entries: what the event log stores, created once and never updated.

An entry holds one or more logical events (`events`) and the data they share. Entries
that open or close work carry deltas of three counters, per `step`:

| counter | opened by | closed by |
|---|---|---|
| `dc` commands | `command.issued` (+1 each) | `command.completed` / `command.failed` (-1) |
| `da` loop activations | the loop command's `command.issued` (+1) | `loop.done` (-1) |
| `dj` join arrivals | an arrival at a join (+1) | the join's `command.issued` (-k) |

Summing deltas answers "is anything still in flight?" with one consistent read, with
no shared counter to update (see docs/architecture.md). A batch also carries, on its first
entry, its net change of what is in flight upstream of each join (`jn`, see
`join_nets`), so a log can answer a join's check from the few batches that changed it.

Loop iterations are the one kind of command with no `issue` entry: the record that
issues them (the loop's activation, for its first wave; an iteration, for the one
`max_in_flight` after it) names them as a range, `body.iterations = [first, count]`,
and counts them in its own `dc`. An iteration's command is derived from its id
(`iteration_of`), its loop's command and the loop's items, so an activation is one
entry however many iterations it starts.

Entry kinds: start, issue, claim, done, attempt, pending, arrive, loopdone, terminal,
cancel, signal (a thread of work ended: see `links`). A step waiting for a child
execution has a `pending` entry in the group `CHILDREN`, so the children an execution
started are one count.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .. import ids
from ..errors import LimitError


@dataclass(frozen=True)
class Entry:
    id: str
    execution_id: str
    kind: str
    events: tuple[str, ...]
    ts: float
    step: str | None = None
    command_id: str | None = None
    attempt: int = 0
    dc: int = 0
    da: int = 0
    dj: int = 0
    group: str | None = None
    halt: bool = False
    body: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    # On a batch's first entry of its execution: the batch's net change of open commands
    # and loops upstream of each join it changes (join name -> net), where not zero.
    jn: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)  # the fields, in their order (`evolve` keeps it)
        out["events"] = list(self.events)
        if self.jn is None:
            del out["jn"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(**{**data, "events": tuple(data["events"])})

    def with_seq(self, seq: int) -> Entry:
        return self.evolve(seq=seq)

    def evolve(self, **changes: Any) -> Entry:
        """A copy with `changes` (dataclasses.replace, minus its cost on the hot path)."""
        made = object.__new__(Entry)
        fields = made.__dict__
        fields.update(self.__dict__)
        fields.update(changes)
        return made


@dataclass(frozen=True)
class Command:
    """A unit of work: one step (or one loop activation, or one iteration) to run.

    `kind` is `step`, `loop` (evaluate `loop.in` and issue iterations), `iteration` or
    `join`. `frame` is what the block reads: `ctx` (the set mutations on this path),
    `results` (step name -> id of the entry holding its latest result), `depth` (blocks
    before it on its path: `decide.depth`) and, in a loop, `iter`; `args` when an arc
    passed some.
    """

    id: str
    execution_id: str
    step: str
    kind: str
    frame: dict[str, Any]
    parent: str | None = None
    activation: str | None = None
    index: int | None = None
    length: int | None = None
    width: int | None = None
    # Termination (settle.py): the [node, slot] pairs this command's thread of work
    # answers to; None for loop iterations (their loop settles them).
    links: list[list[Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: v for name in _COMMAND_FIELDS if (v := getattr(self, name)) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Command:
        return cls(**data)


# One encoder for every stored entry: `json.dumps` with options builds a new one per
# call. An entry is built from JSON-plain values (results went through
# `payloads.to_json`, which keeps the circular-reference check), so this one skips it:
# half the encoding time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, check_circular=False)


# A value an entry holds by reference (runtime/payloads.spill): `{SPILLED: payload ref}`.
SPILLED = "$payload"
# The body fields that may hold values of any size, each stored by reference above the
# inline limit; scope-version value nodes (`nodes[i].v`) go the same way.
LARGE_FIELDS = ("workload", "source", "set", "arc_set", "policy_set")


def is_spilled(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and SPILLED in value


def is_result(entry: Entry) -> bool:
    """A successful step record outside loop iterations (done or loop.done with a
    result): what a log's `last_result` answers, and an execution's result."""
    if entry.body.get("status") != "ok" or entry.body.get("result") is None:
        return False
    return entry.kind == "loopdone" or (entry.kind == "done" and entry.group is None)


# The event log's limits, Firestore's, held on every backend so that what the embedded
# log takes the cloud takes too: an entry is one document (1 MiB, of which one field may
# hold 1,048,487 bytes), a batch one commit (500 writes, a 10 MiB request). Values over
# the inline limit are stored by reference, so only an entry holding many values at
# once, or an inline limit set near these, comes near them.
MAX_ENTRY_BYTES = 1_000_000
MAX_BATCH_WRITES = 500
MAX_BATCH_BYTES = 9_000_000


def check_limits(entries: Sequence[Entry], stored: Sequence[str]) -> None:
    """Raise `LimitError` naming the limit when a batch (`stored`: its entries'
    `stored_json`) cannot be one commit: nothing of it is written."""
    halts = len({e.execution_id for e in entries if e.halt})  # a halt marker each
    if len(entries) + halts > MAX_BATCH_WRITES:
        raise LimitError(
            f"a batch of {len(entries) + halts:,} writes is over the event log's limit of "
            f"{MAX_BATCH_WRITES} writes per commit (Firestore's)"
        )
    total = 0
    for entry, text in zip(entries, stored, strict=True):
        size = len(text) if text.isascii() else len(text.encode())
        if size > MAX_ENTRY_BYTES:
            what = f"the {entry.kind} entry" + (f" of step {entry.step}" if entry.step else "")
            raise LimitError(
                f"{what} is {size:,} bytes, over the event log's limit of "
                f"{MAX_ENTRY_BYTES:,} bytes per entry (a Firestore document is at most 1 MiB; "
                "values over NOETL_INLINE_LIMIT are stored by reference, so this entry "
                "holds too many values inline at once)"
            )
        total += size
    if total > MAX_BATCH_BYTES:
        raise LimitError(
            f"a batch of {total:,} bytes is over the event log's limit of "
            f"{MAX_BATCH_BYTES:,} bytes per commit (Firestore's 10 MiB request)"
        )


def stored_json(entry: Entry) -> str:
    """The entry as a log stores it (its `seq` is the log's to give)."""
    data = entry.to_dict()
    data.pop("seq", None)
    return _ENCODER.encode(data)


_COMMAND_FIELDS = tuple(f.name for f in fields(Command))


def issue_entry(command: Command, ts: float) -> Entry:
    return Entry(
        id=issue_id(command.execution_id, command.id),
        execution_id=command.execution_id,
        kind="issue",
        events=("command.issued",),
        ts=ts,
        step=command.step,
        command_id=command.id,
        attempt=1,
        dc=0 if command.kind == "loop" else 1,
        da=1 if command.kind == "loop" else 0,
        group=command.activation,
        body={"command": command.to_dict()},
    )


def iteration_id(activation_id: str, index: int) -> str:
    """A loop iteration's command id: its loop command's id, then its index."""
    return f"{activation_id}.{index}"


def iteration_of(command_id: str) -> tuple[str, int] | None:
    """(loop command id, index) of an iteration's command id; None for other commands
    (their ids are `c` and hex digits)."""
    activation, dot, index = command_id.rpartition(".")
    return (activation, int(index)) if dot and index.isdigit() else None


def issued_iterations(entry: Entry) -> list[str]:
    """The ids of the loop iterations a record issued (`body.iterations`): an
    activation's are its own command's, an iteration's its group's."""
    span = entry.body.get("iterations")
    if not span:
        return []
    activation = entry.group or entry.command_id or ""
    first, count = span
    return [iteration_id(activation, index) for index in range(first, first + count)]


def issue_id(execution_id: str, command_id: str) -> str:
    return ids.entry(execution_id, "issue", command_id)


def done_id(execution_id: str, command_id: str) -> str:
    return ids.entry(execution_id, "done", command_id)


def claim_id(execution_id: str, command_id: str, attempt: int) -> str:
    return ids.entry(execution_id, "claim", command_id, attempt)


def attempt_id(execution_id: str, command_id: str, attempt: int) -> str:
    return ids.entry(execution_id, "attempt", command_id, attempt)


def pending_id(execution_id: str, command_id: str, attempt: int) -> str:
    return ids.entry(execution_id, "pending", command_id, attempt)


def start_id(execution_id: str) -> str:
    return ids.entry(execution_id, "start")


def terminal_id(execution_id: str) -> str:
    return ids.entry(execution_id, "terminal")


def cancel_id(execution_id: str) -> str:
    return ids.entry(execution_id, "cancel")


def loopdone_id(execution_id: str, activation: str) -> str:
    return ids.entry(execution_id, "loopdone", activation)


def arrive_id(execution_id: str, join: str, command_id: str, arc: int) -> str:
    return ids.entry(execution_id, "arrive", join, command_id, arc)


CLAIM_EVENTS = ("command.claimed", "command.started", "step.enter")
CHILDREN = "children"  # the group of `pending` entries that started a child execution


def signal_id(execution_id: str, node: str, slot: int) -> str:
    return ids.entry(execution_id, "signal", node, slot)


def signal(execution_id: str, node: str, slot: int, ts: float) -> Entry:
    """Slot `slot` of node `node` has ended: a count of these per node (`group`) says
    when every thread a fork started has ended."""
    return Entry(
        id=signal_id(execution_id, node, slot),
        execution_id=execution_id,
        kind="signal",
        events=(),
        ts=ts,
        group=node,
        body={"node": node, "slot": slot},
    )


def fold_claim(batch: Sequence[Entry]) -> Sequence[Entry]:
    """A deferred claim (embedded runtime) shares the stored entry of the block's record:
    its events go first in that entry, its time and worker under `body.claimed`."""
    if len(batch) < 2 or batch[0].kind != "claim":
        return batch
    claim, head = batch[0], batch[1]
    if head.command_id != claim.command_id or head.attempt != claim.attempt:
        return batch
    claimed = {**claim.body, "at": claim.ts}
    merged = head.evolve(events=claim.events + head.events, body={**head.body, "claimed": claimed})
    return [merged, *batch[2:]]


def expand(entry: Entry) -> list[dict[str, Any]]:
    """The logical events an entry stands for, in the upstream NoETL event shape."""
    body = entry.body
    result = body.get("result")
    out = []
    for i, name in enumerate(entry.events):
        claimed = name in CLAIM_EVENTS and "claimed" in body
        event: dict[str, Any] = {
            "execution_id": entry.execution_id,
            "event_id": f"{entry.id}:{i}",
            "type": name,
            "step": entry.step,
            "command_id": entry.command_id,
            "attempt": entry.attempt,
            "parent_execution_id": body.get("parent_execution_id"),
            "timestamp": body["claimed"]["at"] if claimed else entry.ts,
            "status": body.get("status"),
        }
        if result is not None and name in RESULT_EVENTS:
            event["result"] = {"status": body.get("status"), "reference": result}
        if body.get("error") is not None and name in ERROR_EVENTS:
            event["error"] = body["error"]
        out.append(event)
    for command_id in issued_iterations(entry):
        out.append(
            {
                "execution_id": entry.execution_id,
                "event_id": f"{entry.id}:{len(out)}",
                "type": "command.issued",
                "step": entry.step,
                "command_id": command_id,
                "attempt": 1,
                "parent_execution_id": body.get("parent_execution_id"),
                "timestamp": entry.ts,
                "status": None,
            }
        )
    return out


RESULT_EVENTS = {
    "call.done",
    "step.exit",
    "command.completed",
    "loop.done",
    "workflow.completed",
    "playbook.completed",
}
ERROR_EVENTS = {"call.error", "command.failed", "workflow.failed", "playbook.failed"}


def join_nets(reach: Mapping[str, Collection[str]], entries: Sequence[Entry]) -> dict[str, int]:
    """Per join, what these entries change in the open commands and loops of the steps
    that can reach it, where that is not zero. A chain step inside a join's reach closes
    its command and issues the next one there: zero, so it is left out."""
    nets: dict[str, int] = {}
    for join, steps in reach.items():
        net = sum(e.dc + e.da for e in entries if e.step in steps)
        if net:
            nets[join] = net
    return nets


def with_join_nets(
    reach_of: Callable[[str], Mapping[str, Collection[str]]], batch: Sequence[Entry]
) -> list[Entry]:
    """The batch with each execution's first entry carrying `join_nets` of that
    execution's entries (`reach_of`: its joins' reach sets)."""
    out = list(batch)
    if not any(e.dc or e.da for e in out):
        return out
    for execution_id in dict.fromkeys(e.execution_id for e in out):
        reach = reach_of(execution_id)
        if not reach:
            continue
        mine = [e for e in out if e.execution_id == execution_id]
        nets = join_nets(reach, mine)
        if nets:
            head = out.index(mine[0])
            out[head] = out[head].evolve(jn=nets)
    return out
