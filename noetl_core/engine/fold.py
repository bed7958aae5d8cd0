"""Fold an execution's entries into its state (pure): for status, replay and audit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .entries import Command, Entry, is_spilled, issued_iterations
from .scope import merge


@dataclass
class CommandState:
    id: str
    step: str
    kind: str
    index: int | None
    status: str = "issued"  # issued, running, pending, retrying, ok, error, skipped
    attempt: int = 1
    issued_seq: int | None = None
    done_seq: int | None = None
    started: float | None = None
    finished: float | None = None


@dataclass
class StepState:
    name: str
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    retries: int = 0
    in_flight: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass
class State:
    execution_id: str
    status: str = "running"  # running, cancelling, then the terminal's status
    header: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, CommandState] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)
    open_commands: int = 0
    open_loops: int = 0
    open_arrivals: int = 0
    halted: bool = False
    cancelled: bool = False
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    ctx: dict[str, Any] = field(default_factory=dict)
    events: int = 0
    entries: int = 0
    started: float | None = None
    finished: float | None = None

    def step(self, name: str) -> StepState:
        found = self.steps.get(name)
        if found is None:
            found = self.steps[name] = StepState(name)
        return found

    @property
    def in_flight(self) -> int:
        return self.open_commands + self.open_loops + self.open_arrivals


def fold(entries: Iterable[Entry], execution_id: str = "") -> State:
    state = State(execution_id)
    for entry in entries:
        apply(state, entry)
    return state


def apply(state: State, entry: Entry) -> None:
    if "claimed" in entry.body:  # a claim stored with the record (embedded runtime)
        _claim(state, entry)
    state.execution_id = state.execution_id or entry.execution_id
    state.entries += 1
    state.events += len(entry.events)
    if "iterations" in entry.body:
        _issued_iterations(state, entry)
    state.open_commands += entry.dc
    state.open_loops += entry.da
    state.open_arrivals += entry.dj
    state.halted = state.halted or entry.halt
    handler = _HANDLERS.get(entry.kind)
    if handler is not None:
        handler(state, entry)


def _start(state: State, entry: Entry) -> None:
    state.header = {k: v for k, v in entry.body.items() if k != "source"}
    state.started = entry.ts


def _issue(state: State, entry: Entry) -> None:
    command = Command.from_dict(entry.body["command"])
    state.commands[command.id] = CommandState(
        command.id, command.step, command.kind, command.index, issued_seq=entry.seq
    )
    state.step(command.step)


def _issued_iterations(state: State, entry: Entry) -> None:
    """Loop iterations a record issued by range: a command each, as an issue entry
    would have made (their `command.issued` events come from `entries.expand`)."""
    first = entry.body["iterations"][0]
    for index, command_id in enumerate(issued_iterations(entry), start=first):
        state.commands[command_id] = CommandState(
            command_id, entry.step or "", "iteration", index, issued_seq=entry.seq
        )
        state.events += 1


def _claim(state: State, entry: Entry) -> None:
    found = state.commands.get(entry.command_id or "")
    if found is not None:
        found.status, found.attempt = "running", entry.attempt
        found.started = found.started or entry.body.get("claimed", {}).get("at", entry.ts)


def _attempt(state: State, entry: Entry) -> None:
    found = state.commands.get(entry.command_id or "")
    going_on = entry.body.get("status") == "continue"  # a pipeline after its child
    if found is not None:
        found.status = "running" if going_on else "retrying"
    if not going_on:
        state.step(entry.step or "").retries += 1


def _pending(state: State, entry: Entry) -> None:
    found = state.commands.get(entry.command_id or "")
    if found is not None:
        found.status = "pending"


def _done(state: State, entry: Entry) -> None:
    body = entry.body
    status = body.get("status", "ok")
    found = state.commands.get(entry.command_id or "")
    if found is not None:
        found.status, found.done_seq, found.finished = status, entry.seq, entry.ts
    if found is not None and found.kind == "loop" and status == "ok":
        return
    step = state.step(entry.step or "")
    if status == "ok":
        step.ok += 1
        step.result = body.get("result")
    elif status == "skipped":
        step.skipped += 1
    else:
        step.failed += 1
        step.error = body.get("error")
    _merge_sets(state, body)


def _merge_sets(state: State, body: dict[str, Any]) -> None:
    """What `set` (the step's, then its chosen arcs') changed in ctx, for display (a
    patch stored by reference is not shown)."""
    step_set, arc_set = body.get("set", {}), body.get("arc_set", {})
    ctx = None if is_spilled(step_set) else step_set.get("ctx")
    if ctx:
        state.ctx = merge(state.ctx, ctx)
    for patch in () if is_spilled(arc_set) else arc_set.values():
        state.ctx = merge(state.ctx, patch)


def _loopdone(state: State, entry: Entry) -> None:
    step = state.step(entry.step or "")
    step.result = entry.body.get("result")
    _merge_sets(state, entry.body)


def _cancel(state: State, entry: Entry) -> None:
    """A recorded cancel: the execution is `cancelling` until its terminal entry."""
    state.cancelled = True
    if state.status == "running":
        state.status = "cancelling"


def _terminal(state: State, entry: Entry) -> None:
    state.status = entry.body.get("status", "completed")
    state.result = entry.body.get("result")
    state.error = entry.body.get("error")
    state.finished = entry.ts


_HANDLERS = {
    "start": _start,
    "issue": _issue,
    "claim": _claim,
    "attempt": _attempt,
    "pending": _pending,
    "done": _done,
    "loopdone": _loopdone,
    "cancel": _cancel,
    "terminal": _terminal,
}
