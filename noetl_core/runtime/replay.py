"""Replay: check that today's engine reproduces every decision an execution recorded.

For each decision in the log (a step's record, a loop activation, an iteration, a
`loop.done`, a join's command, the terminal entry) the engine is run again on the same
inputs (the command's frame, the recorded outcome, the same hydrated names) and its
entries are compared with the recorded ones: the same ids, the same frames, the same
halt. Joins and the terminal entry are also checked against the state folded up to the
point where they were written: nothing that could reach them was still in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import engine
from ..engine import cursor
from ..engine.entries import Entry
from ..engine.fold import State, apply
from ..engine.scope import Patches
from ..templating import ResultView
from . import payloads

if TYPE_CHECKING:
    from .block import Runtime
    from .executions import Execution


# Commands the runtime closed itself (a block that failed, a limit), not the engine.
RUNTIME_CLOSED = ("internal", "limit")


@dataclass(frozen=True)
class Check:
    seq: int
    kind: str
    step: str | None
    ok: bool
    detail: str


def verify(rt: Runtime, execution_id: str, upto: int | None = None) -> tuple[State, list[Check]]:
    """Fold the log (up to entry seq `upto`) and check each decision in it."""
    ex = rt.execution(execution_id)
    all_entries = rt.log.entries(execution_id)
    by_id = {e.id: e for e in all_entries}
    state = State(execution_id)
    checks: list[Check] = []
    for entry in all_entries:
        if upto is not None and (entry.seq or 0) > upto:
            break
        before = _snapshot(state)
        apply(state, entry)
        problem = _check(rt, ex, entry, by_id, before)
        if problem is not None:
            checks.append(Check(entry.seq or 0, entry.kind, entry.step, problem == "", problem))
    return state, checks


def _snapshot(state: State) -> State:
    return State(
        state.execution_id,
        open_commands=state.open_commands,
        open_loops=state.open_loops,
        open_arrivals=state.open_arrivals,
        halted=state.halted,
        cancelled=state.cancelled,
    )


def _check(
    rt: Runtime, ex: Execution, entry: Entry, by_id: dict[str, Entry], before: State
) -> str | None:
    """'' when the decision reproduces, a description when it does not, None if no decision."""
    if (
        entry.kind == "done"
        and entry.body.get("status") in ("ok", "error")
        and entry.body.get("error", {}).get("kind") not in RUNTIME_CLOSED
    ):
        return _compare(entry, _redo_done(rt, ex, entry), by_id)
    if entry.kind == "loopdone":
        return _compare(entry, _redo_loopdone(rt, ex, entry, by_id), by_id)
    if entry.kind == "issue" and entry.body.get("arrivals"):
        return _check_join(rt, ex, entry, by_id)
    if entry.kind == "terminal":
        return _check_terminal(entry, before)
    return None


def _outcome(rt: Runtime, entry: Entry) -> engine.Outcome:
    body = payloads.unspill_fields(rt.payloads, entry).body
    patches = body.get("policy_set")
    return engine.Outcome(
        body["status"],
        result=body.get("result"),
        error=body.get("error"),
        view=payloads.view(rt.payloads, body.get("result"))
        if body["status"] == "ok"
        else ResultView(None),
        meta=body.get("meta", {}),
        patches=Patches(**patches) if patches else None,
    )


def _redo_done(rt: Runtime, ex: Execution, entry: Entry) -> list[Entry]:
    command = rt.command(ex, entry.command_id or "")
    scene = _scene(rt, ex, entry)
    names = rt.names(ex, command)
    if command.kind == "loop" and (entry.body.get("loop") or {}).get("cursor"):
        return cursor.activate(scene, command, entry.attempt)
    if command.kind == "frame":
        progress = {**entry.body["cursor"], "rows": entry.body["cursor"]["rows"]}
        return cursor.record_frame(scene, command, entry.attempt, _outcome(rt, entry), progress)
    if command.kind == "loop" and entry.body.get("loop") is not None:
        length = len(rt.items_of(entry))
        width = entry.body["loop"].get("width")
        return engine.activate(
            scene, command, entry.attempt, length, entry.body["items"], names, ResultView([]), width
        )
    outcome = _outcome(rt, entry)
    if command.kind == "iteration":
        step = ex.blueprint.step(command.step)
        return engine.record_iteration(scene, step, command, entry.attempt, outcome, names)
    return engine.record(scene, command, entry.attempt, outcome, names)


def _redo_loopdone(
    rt: Runtime, ex: Execution, entry: Entry, by_id: dict[str, Entry]
) -> list[Entry]:
    command = rt.command(ex, entry.command_id or "")
    # a collection loop's iteration records; a cursor loop's frame records (by slot,
    # then in commit order: a slot's frames commit one after another)
    iterations = [
        payloads.unspill_fields(rt.payloads, e)
        for e in by_id.values()
        if e.kind == "done" and e.group == command.id and (e.seq or 0) < (entry.seq or 0)
    ]
    outcome = engine.Outcome(
        entry.body["status"],
        result=entry.body.get("result"),
        error=entry.body.get("error"),
        view=payloads.view(rt.payloads, entry.body.get("result")),
    )
    return engine.loop_done(
        _scene(rt, ex, entry), command, iterations, outcome, rt.names(ex, command)
    )


def _scene(rt: Runtime, ex: Execution, entry: Entry) -> engine.Scene:
    return rt.scene(ex, entry.ts)


def _compare(recorded: Entry, redone: Sequence[Entry], by_id: dict[str, Entry]) -> str:
    head = redone[0]
    problems = []
    for key in ("issued", "iterations", "arrived", "arcs"):
        if head.body.get(key) != recorded.body.get(key):
            problems.append(
                f"{key}: recorded {recorded.body.get(key)} but the engine decides "
                f"{head.body.get(key)}"
            )
    if head.halt != recorded.halt:
        problems.append(f"halt: recorded {recorded.halt}, decided {head.halt}")
    for made in redone[1:]:
        stored = by_id.get(made.id)
        if stored is None:
            if made.kind in ("issue", "arrive") and made.id not in by_id:
                problems.append(
                    f"the engine issues {made.kind} {made.id} ({made.step}), not in the log"
                )
            continue
        if made.kind == "issue" and stored.body.get("command") != made.body.get("command"):
            problems.append(f"command {made.command_id} ({made.step}): frame differs")
        if made.kind == "arrive" and stored.body.get("frame") != made.body.get("frame"):
            problems.append(f"arrival at {made.step}: frame differs")
    return "; ".join(problems)


def _check_join(rt: Runtime, ex: Execution, entry: Entry, by_id: dict[str, Entry]) -> str:
    arrivals = [by_id[a] for a in entry.body["arrivals"] if a in by_id]
    arrivals.sort(key=lambda a: a.seq or 0)
    redone = engine.join(_scene(rt, ex, entry), entry.step or "", arrivals)
    if redone.id != entry.id or redone.body["command"] != entry.body["command"]:
        return f"join {entry.step}: the engine merges the arrivals into a different command"
    reach = ex.blueprint.graph.reach.get(entry.step or "", frozenset())
    earlier = [e for e in by_id.values() if (e.seq or 0) < (entry.seq or 0)]
    still = sum(e.dc + e.da for e in earlier if e.step in reach)
    if still:
        return f"join {entry.step}: issued while {still} unit(s) that can reach it were in flight"
    return ""


def _check_terminal(entry: Entry, before: State) -> str:
    status = entry.body.get("status")
    expected = "cancelled" if before.cancelled else ("failed" if before.halted else "completed")
    if status != expected:
        return f"terminal status {status}, but the log before it says {expected}"
    open_now = before.open_commands if before.halted else before.in_flight
    if open_now:
        return f"terminal written while {open_now} unit(s) were in flight"
    return ""
