"""Step 7 of the block protocol: settle what depends on other blocks.

After a batch commits, with strongly consistent reads: the loop's `loop.done` when all
its iterations have records, a join's command when nothing that can reach it is in
flight, and the execution's terminal entry when nothing at all is. Each is created with
a deterministic id, so two blocks settling at once create it once. A batch that a settle
creates is settled in turn. Returns the notes to publish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .. import engine
from ..engine import entries as E
from ..engine import loops
from ..engine.entries import Command, Entry
from ..errors import ExecutionNotFound
from . import cursor, payloads
from .ports import Note

ITERATION_CHUNK = 500  # ids per read (SQLite's bound parameters, Firestore's batch get)

if TYPE_CHECKING:
    from .block import Runtime
    from .executions import Execution


def issued_notes(batch: Sequence[Entry]) -> list[Note]:
    """A note for each command the batch issued: its issue entries, and the loop
    iterations its records issued by range."""
    notes = []
    for entry in batch:
        if entry.kind == "issue":
            notes.append(Note(entry.execution_id, entry.command_id or ""))
        elif "iterations" in entry.body:
            notes.extend(Note(entry.execution_id, i) for i in E.issued_iterations(entry))
    return notes


def _opens_work(batch: Sequence[Entry]) -> bool:
    """Whether the batch issued anything (an iteration issuing the next nets `dc` 0)."""
    return any(e.dc > 0 or e.da > 0 or e.dj > 0 or "iterations" in e.body for e in batch)


def settle(rt: Runtime, ex: Execution, batch: Sequence[Entry]) -> list[Note]:
    notes = issued_notes(batch)
    queue = [list(batch)]
    while queue:
        current = queue.pop(0)
        if _nothing_to_settle(ex, current):
            continue
        tally = next((t for e in current if (t := loops.tally_of(e)) is not None), None)
        reads = tally.reads(ex.id) if tally is not None else []
        snapshot = rt.log.snapshot(ex.id, reads)  # with the halt flag, one read
        if snapshot.halted:
            maybe_terminal(rt, ex, halted=True)
            continue
        tallied = _tallied(rt, ex, tally, snapshot.found) if tally is not None else []
        for made in tallied + _joins(rt, ex, current):
            notes.extend(issued_notes(made))
            queue.append(made)
        queue.extend(_signaled(rt, ex, current))
    return notes


def _signaled(rt: Runtime, ex: Execution, batch: Sequence[Entry]) -> list[list[Entry]]:
    """For each thread of work this batch ended (its `signal` entries), whether its
    node has now ended every thread it started: a count of at most k signals, k the
    node's width, however long the execution. A node that has signals its own links
    (the batch it returns, settled in turn); the root having ended ends the execution."""
    made = []
    for entry in batch:
        if entry.kind != "signal" or entry.group is None:
            continue
        node = rt.log.get(entry.group)
        if node is None:
            raise ExecutionNotFound(f"execution {ex.id}: no node {entry.group} for a signal")
        spec = node.body["node"]
        if rt.log.count(ex.id, "signal", group=entry.group) < int(spec["k"]):
            continue
        if not spec["up"]:
            _completed(rt, ex)
            continue
        now = rt.clock.now()
        up = [E.signal(ex.id, str(n), int(slot), now) for n, slot in spec["up"]]
        rt.append(up)  # created once: a settler that finds them stored goes on the same
        made.append(up)
    return made


def _completed(rt: Runtime, ex: Execution) -> None:
    """Every thread of work ended: the terminal entry, unless a failure or a cancel
    committed meanwhile (a halting batch signals too: its halt is read after the count,
    so a count that saw its signal sees its halt)."""
    if rt.log.halted(ex.id):
        maybe_terminal(rt, ex, halted=True)
        return
    _write_terminal(rt, ex, halted=False)


def _nothing_to_settle(ex: Execution, batch: Sequence[Entry]) -> bool:
    """A batch that issued work and touched no join and no loop's last wave can neither
    complete anything nor end the execution: skip the reads (a plain chain step, or an
    iteration that issued the next one, costs none)."""
    if not _opens_work(batch):
        return False
    joins_below = ex.blueprint.graph.joins_below
    for entry in batch:
        if entry.kind == "arrive" or entry.halt or loops.tally_of(entry) is not None:
            return False
        if entry.kind == "done" and entry.group is not None:
            continue  # an earlier wave's iteration: it issued the next one
        if entry.kind in ("done", "loopdone") and joins_below.get(entry.step or ""):
            return False
    return True


def _tallied(
    rt: Runtime, ex: Execution, tally: loops.Tally, found: Mapping[str, Entry]
) -> list[list[Entry]]:
    """When this member's bucket of the loop's last wave is complete (`found`: what
    `Tally.reads` read), its tally one level up (settled in turn), or, for the wave's
    last bucket, `loop.done`. A tally already written is settled again, not written:
    its writer may have stopped before settling it."""
    if any(i not in found for i in tally.siblings(ex.id)):
        return []
    if tally.is_root:
        created = maybe_loop_done(rt, ex, tally.activation)
        return [created] if created else []
    up = found.get(tally.up_id(ex.id)) or tally.up(ex.id, rt.clock.now())
    if up.id not in found:
        rt.append([up])  # created once: a settler that finds it stored goes on the same
    return [[up]]


def maybe_loop_done(rt: Runtime, ex: Execution, activation_id: str) -> list[Entry] | None:
    """The loop.done batch if this call created it, once its last wave is all done;
    [] if the loop is already done."""
    activation = rt.log.get(E.done_id(ex.id, activation_id))
    if activation is None:
        return None
    if rt.log.get(E.loopdone_id(ex.id, activation_id)) is not None:
        return []
    command = rt.command(ex, activation_id)
    iterations = _iterations(rt, ex, command, activation)
    if activation.body["loop"].get("cursor"):  # the slots' ends: read their frames
        iterations = cursor.frames(rt, ex, command, iterations)
        outcome = cursor.outcome(rt, ex, command, iterations)
    else:
        outcome = _loop_outcome(rt, ex, command, iterations)
    names = rt.names(ex, command)
    batch = engine.loop_done(rt.scene(ex), command, iterations, outcome, names)
    return batch if rt.append(batch) else []


def _iterations(rt: Runtime, ex: Execution, command: Command, activation: Entry) -> list[Entry]:
    """The loop's iteration records in index order, read by id (most are in the log's
    entry cache: the blocks that wrote them ran here) in chunks, not by a query."""
    length = int(activation.body["loop"]["length"])
    wanted = engine.iteration_done_ids(ex.id, command.id, length)
    found: dict[str, Entry] = {}
    for first in range(0, length, ITERATION_CHUNK):
        found.update(rt.log.get_many(wanted[first : first + ITERATION_CHUNK]))
    missing = length - len(found)
    if missing:  # cannot happen once the last wave is done: say so rather than guess
        raise ExecutionNotFound(
            f"execution {ex.id}: loop {command.step} has {missing} iteration records missing"
        )
    return [payloads.unspill_fields(rt.payloads, found[i]) for i in wanted]


def _loop_outcome(
    rt: Runtime, ex: Execution, command: Command, iterations: Sequence[Entry]
) -> engine.Outcome:
    failed = [d for d in iterations if d.body.get("status") != "ok"]
    refs = [d.body.get("result") for d in iterations]
    ref: dict[str, object] = {"list": refs}
    if all(r is not None and "inline" in r for r in refs):
        ref = {"inline": [r["inline"] for r in refs if r is not None]}
    if len(payloads.to_json(ref)) > rt.settings.inline_limit:
        values = [payloads.load(rt.payloads, r) for r in refs]
        key = payloads.key(ex.id, command.step, command.id, "loop", "result")
        ref, _ = payloads.persist(rt.payloads, values, key, rt.settings.inline_limit)
    view = payloads.view(rt.payloads, ref)
    if failed:
        error = dict(failed[0].body.get("error") or {})
        error["failed_iterations"] = [d.body["index"] for d in failed]
        return engine.Outcome("error", result=ref, error=error, view=view)
    return engine.Outcome("ok", result=ref, view=view)


def _joins(rt: Runtime, ex: Execution, batch: Sequence[Entry]) -> list[list[Entry]]:
    graph = ex.blueprint.graph
    candidates: list[str] = []
    for entry in batch:
        if entry.kind == "arrive" and entry.step:
            candidates.append(entry.step)
        elif entry.kind in ("done", "loopdone") and entry.step:
            candidates.extend(graph.joins_below.get(entry.step, ()))
    made = []
    for join in dict.fromkeys(candidates):
        created = maybe_join(rt, ex, join)
        if created:
            made.append(created)
    return made


def maybe_join(rt: Runtime, ex: Execution, join: str) -> list[Entry] | None:
    if rt.log.open_work(ex.id, [join]).arrivals <= 0:
        return None
    upstream = rt.log.open_work(ex.id, ex.blueprint.graph.reach[join], join=join)
    if upstream.commands + upstream.loops > 0:
        return None
    consumed = {
        a
        for issue in rt.log.find(ex.id, "issue", step=join)
        for a in issue.body.get("arrivals", ())
    }
    arrivals = [a for a in rt.log.find(ex.id, "arrive", step=join) if a.id not in consumed]
    if not arrivals:
        return None
    entry = engine.join(rt.scene(ex), join, arrivals)
    return [entry] if rt.append([entry]) else None


def maybe_terminal(rt: Runtime, ex: Execution, halted: bool) -> None:
    """The terminal entry once nothing is in flight (a halted execution: once no command
    is running), checked by a sum over the execution. A running execution ends through
    its signals instead (`_signaled`); this serves failures and cancels."""
    work = rt.log.open_work(ex.id)
    if (work.commands if halted else work.total) > 0:
        return
    _write_terminal(rt, ex, halted)


def _write_terminal(rt: Runtime, ex: Execution, halted: bool) -> None:
    existing = rt.log.get(E.terminal_id(ex.id))
    if existing is None:
        existing = _terminal(rt, ex, halted)
        if not rt.append([existing]):
            existing = rt.log.get(E.terminal_id(ex.id))
    if existing is not None:
        rt.on_terminal(ex, existing)


def _terminal(rt: Runtime, ex: Execution, halted: bool) -> Entry:
    last = rt.log.last_result(ex.id)
    result = last.body.get("result") if last else None
    if not halted:
        return engine.terminal(ex.id, "completed", result, None, rt.clock.now())
    cancelled = rt.log.get(E.cancel_id(ex.id))
    if cancelled is not None:
        error = {
            "kind": "cancelled",
            "code": "cancelled",
            "retryable": False,
            "message": cancelled.body.get("reason", "cancelled"),
        }
        return engine.terminal(ex.id, "cancelled", result, error, rt.clock.now())
    failure = next((e for e in rt.log.entries(ex.id) if e.halt), None)
    error = dict(failure.body.get("error") or {}) if failure else {}
    if failure is not None:
        error.setdefault("step", failure.step)
    return engine.terminal(ex.id, "failed", result, error, rt.clock.now())
