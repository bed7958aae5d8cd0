"""Blocks that end without a record: retries after a delay and sub-playbooks; and the
paths that later complete them (timer delivery, the child's terminal entry), plus
cancellation, which reaches children too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import templating
from ..engine import entries as E
from ..engine.entries import Command, Entry
from ..errors import ExecutionNotFound, NoetlError, TemplateError
from ..playbook.model import Step
from ..tools.base import StartChild
from . import execute, limits, payloads, settle, waits
from .ports import Note

if TYPE_CHECKING:
    from .block import Runtime
    from .executions import Execution


def loop_items(step: Step, names: Mapping[str, Any]) -> list[Any]:
    assert step.loop is not None
    items = templating.render(step.loop.in_, names, f"step {step.step}: loop.in")
    if items is None:
        raise TemplateError(f"step {step.step}: loop.in rendered to nothing; expected a list")
    if isinstance(items, tuple | range):
        items = list(items)
    if not isinstance(items, list):
        raise TemplateError(f"step {step.step}: loop.in must be a list, got {type(items).__name__}")
    return items


# -- retries -----------------------------------------------------------------------------


def schedule_retry(
    rt: Runtime,
    ex: Execution,
    command: Command,
    attempt: int,
    run: execute.StepRun,
    claim: list[Entry],
) -> None:
    now = rt.clock.now()
    due = now + run.delay
    body: dict[str, Any] = {
        "status": "error",
        "error": run.error,
        "retry": {"attempt": attempt + 1, "due": due, "delay": run.delay},
    }
    if run.resume is not None:
        body["resume"] = _persist_resume(rt, ex, command, attempt, run.resume)
    if run.log:
        body["meta"] = {"log": run.log[-execute.MAX_LOG_CHARS :]}
    entry = Entry(
        id=E.attempt_id(ex.id, command.id, attempt),
        execution_id=ex.id,
        kind="attempt",
        events=("call.error",),
        ts=now,
        step=command.step,
        command_id=command.id,
        attempt=attempt,
        group=command.activation,
        body=body,
    )
    if rt.append([*claim, entry]):
        rt.timer.schedule(Note(ex.id, command.id, attempt + 1), due)


def _persist_resume(
    rt: Runtime, ex: Execution, command: Command, attempt: int, resume: Mapping[str, Any]
) -> dict[str, Any]:
    refs = {}
    for name, value in resume.get("tasks", {}).items():
        key = payloads.key(ex.id, command.step, command.id, attempt, f"task-{name}")
        refs[name], _ = payloads.persist(rt.payloads, value, key, rt.settings.inline_limit)
    return {**resume, "tasks": refs}


def resume_state(rt: Runtime, previous: Entry | None) -> dict[str, Any] | None:
    if previous is None or "resume" not in previous.body:
        return None
    saved = previous.body["resume"]
    tasks = {n: payloads.load(rt.payloads, ref) for n, ref in saved["tasks"].items()}
    return {**saved, "tasks": tasks}


# -- sub-playbooks -----------------------------------------------------------------------


def start_child(
    rt: Runtime,
    ex: Execution,
    command: Command,
    attempt: int,
    child: StartChild,
    claim: list[Entry],
) -> None:
    from .block import child_execution_id

    refused = limits.for_child(rt, ex, command)
    if refused is not None:
        limits.refuse(rt, ex, command, attempt, refused, claim)
        return
    try:
        loaded = rt.catalog.resolve(child.path, child.version, tree=ex.tree)
    except NoetlError as exc:
        names = rt.names(ex, command)
        rt.conclude(
            ex, command, attempt, execute.StepRun("error", error=exc.to_dict()), names, claim
        )
        return
    child_id = child_execution_id(ex.id, command.id, attempt)
    now = rt.clock.now()
    pending = Entry(
        id=E.pending_id(ex.id, command.id, attempt),
        execution_id=ex.id,
        kind="pending",
        events=("call.pending",),
        ts=now,
        step=command.step,
        command_id=command.id,
        attempt=attempt,
        group=E.CHILDREN,
        body={"child_execution_id": child_id, "path": child.path},
    )
    parent = {
        "execution_id": ex.id,
        "command_id": command.id,
        "attempt": attempt,
        "step": command.step,
        "return_step": child.return_step,
        "depth": ex.depth + 1,
    }
    if not rt.append([*claim, pending]):
        return
    rt.start(loaded, child.workload, parent=parent, execution_id=child_id)
    # a cancel recorded while the child was starting found no child to cancel: do it here
    if rt.log.get(E.cancel_id(ex.id)) is not None:
        cancel(rt, rt.execution(child_id), f"parent {ex.id} cancelled")


def resume_parent(rt: Runtime, child: Execution, terminal: Entry) -> None:
    """The child's terminal entry completes the parent's pending step (idempotent)."""
    parent = child.parent
    if not parent:
        return
    pex = rt.execution(parent["execution_id"])
    if rt.log.get(E.done_id(pex.id, parent["command_id"])) is not None:
        return
    command = rt.command(pex, parent["command_id"])
    attempt = int(parent["attempt"])
    step = pex.blueprint.step(command.step)
    names = rt.names(pex, command)
    output = _child_output(rt, child, terminal, parent.get("return_step"), attempt)
    inv = execute.Invocation(pex.id, command.id, attempt, step.step, services=rt)
    tool = step.tool if not isinstance(step.tool, list) else step.tool[0]
    run = execute.conclude(tool, output, names, inv, f"step {step.step}: tool")
    rt.conclude(pex, command, attempt, run, names, [])


def _child_output(
    rt: Runtime, child: Execution, terminal: Entry, return_step: str | None, attempt: int
) -> dict[str, Any]:
    status = terminal.body.get("status")
    meta = {"attempt": attempt, "child_execution_id": child.id}
    if status != "completed":
        inner = terminal.body.get("error") or {}
        cause = inner.get("cause") or inner  # the failure down the tree: one, not a chain
        error = {
            "kind": "playbook",
            "code": f"child_{status}",
            "retryable": False,
            "message": f"child execution {child.id} {status}: {cause.get('message', '')}",
            "child_execution_id": child.id,
            "cause": cause,
        }
        return {"status": "error", "data": None, "error": error, "meta": meta}
    ref = terminal.body.get("result")
    if return_step:
        records = [
            e
            for e in rt.log.find(child.id, "done", step=return_step)
            if e.body.get("status") == "ok" and e.group is None
        ]
        records += rt.log.find(child.id, "loopdone", step=return_step)
        if records:
            ref = max(records, key=lambda e: e.seq or 0).body.get("result")
    value = payloads.load(rt.payloads, ref)
    return {"status": "ok", "data": value, "error": None, "meta": meta}


# -- cancellation ------------------------------------------------------------------------


def cancel(rt: Runtime, ex: Execution, reason: str) -> None:
    """Cancel an execution and every execution below it, whatever the tree's depth and
    width: a walk with a work list, not recursion, records each one's cancel (and closes
    its waits) before it looks at that one's children; then each is ended, children
    before parents, once nothing of it is running (a block still running ends it when it
    finishes)."""
    reached: list[Execution] = []
    todo = [(ex, reason)]
    while todo:
        current, why = todo.pop()
        reached.append(current)
        below = f"parent {current.id} cancelled"
        todo.extend((child, below) for child in _cancel_one(rt, current, why))
    for current in reversed(reached):
        settle.maybe_terminal(rt, current, halted=True)


def _cancel_one(rt: Runtime, ex: Execution, reason: str) -> list[Execution]:
    """Record one execution's cancel and close its steps waiting for a callback or a
    timer; return its children still running."""
    if rt.log.get(E.terminal_id(ex.id)) is None:
        entry = Entry(
            id=E.cancel_id(ex.id),
            execution_id=ex.id,
            kind="cancel",
            events=("execution.cancelled",),
            ts=rt.clock.now(),
            halt=True,
            body={"reason": reason},
        )
        rt.append([entry])
    running = []
    for pending in rt.log.find(ex.id, "pending"):
        child_id = pending.body.get("child_execution_id")
        if child_id and rt.log.get(E.terminal_id(child_id)) is None:
            with contextlib.suppress(ExecutionNotFound):  # not started: its start sees this
                running.append(rt.execution(child_id))
        waiting = "wait" in pending.body and pending.command_id
        if waiting and rt.log.get(E.done_id(ex.id, pending.command_id or "")) is None:
            command = rt.command(ex, pending.command_id or "")
            waits.close_cancelled(rt, ex, command, pending.attempt)  # its callback: 410
    return running
