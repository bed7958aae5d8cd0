"""Steps that wait without holding a worker: for a callback, or for a timer.

A step with `spec: {callback: {timeout: 1h}}` gets `callback.url` / `callback.token` in
its templates; its tool hands them to an external system, then the block records
`call.pending` and ends. `receive()` takes the callback: checks the token, the body and
the step's state, and records `callback.received` + `call.done` with the posted JSON as
the step's result (or answers why not). A timer note at the deadline turns a wait still
open into `call.error` of kind `timeout`. The `wait` tool uses the same path: its timer
completes the step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import bounded, callbacks
from ..callbacks import CallbackError, Grant
from ..engine import entries as E
from ..engine.entries import Command, Entry
from ..errors import InputLimitError
from ..playbook.model import Step
from ..settings import Limits
from . import execute, payloads
from .ports import Note

if TYPE_CHECKING:
    from .block import Runtime
    from .executions import Execution

DEFAULT_TIMEOUT = 3600.0


def callback_timeout(step: Step) -> float | None:
    """The step's callback timeout in seconds, or None when it takes no callback."""
    spec = step.spec.model_extra if step.spec is not None else None
    wanted = (spec or {}).get("callback")
    if wanted is None or wanted is False:
        return None
    timeout = (
        wanted.get("timeout", DEFAULT_TIMEOUT) if isinstance(wanted, dict) else DEFAULT_TIMEOUT
    )
    return callbacks.seconds(timeout, f"step {step.step}: spec.callback.timeout")


def callback_names(
    rt: Runtime, ex: Execution, command: Command, attempt: int, timeout: float
) -> dict[str, Any]:
    expires = rt.clock.now() + timeout
    token = callbacks.sign(rt.callback_key, Grant(ex.id, command.id, attempt, expires))
    base = (rt.settings.callback_url or "http://127.0.0.1:0").rstrip("/")
    return {"url": f"{base}/callbacks/{token}", "token": token, "expires": expires}


def start(
    rt: Runtime,
    ex: Execution,
    command: Command,
    attempt: int,
    kind: str,
    due: float,
    output: Any,
    claim: list[Entry],
) -> None:
    """Record `call.pending` and arm the timer at `due`; the worker is free."""
    key = payloads.key(ex.id, command.step, command.id, attempt, "before-wait")
    ref, _ = payloads.persist(rt.payloads, output, key, rt.settings.inline_limit)
    entry = Entry(
        id=E.pending_id(ex.id, command.id, attempt),
        execution_id=ex.id,
        kind="pending",
        events=("call.pending",),
        ts=rt.clock.now(),
        step=command.step,
        command_id=command.id,
        attempt=attempt,
        group=command.activation,
        body={"wait": kind, "due": due, "output": ref},
    )
    if rt.append([*claim, entry]):
        rt.timer.schedule(Note(ex.id, command.id, attempt), due)


def on_timer(
    rt: Runtime, ex: Execution, command: Command, attempt: int, pending: Entry, halted: bool
) -> None:
    """The attempt's note came back while it waits: early -> re-arm; due -> resolve."""
    if rt.log.get(E.done_id(ex.id, command.id)) is not None:
        return
    due = float(pending.body["due"])
    if halted:
        close_cancelled(rt, ex, command, attempt)
        return
    if rt.clock.now() < due:
        rt.timer.schedule(Note(ex.id, command.id, attempt), due)
        return
    if pending.body["wait"] == "timer":
        waited = round(due - pending.ts, 3)
        run = execute.StepRun("ok", value={"waited": waited})
    else:
        error = {
            "kind": "timeout",
            "code": "callback_timeout",
            "retryable": False,
            "message": f"step {command.step}: no callback before the timeout",
        }
        run = execute.StepRun("error", error=error)
    rt.conclude(ex, command, attempt, run, rt.names(ex, command), [])


def close_cancelled(rt: Runtime, ex: Execution, command: Command, attempt: int) -> None:
    from .. import engine

    error = {
        "kind": "halted",
        "code": "cancelled",
        "message": "not completed: cancelled",
        "retryable": False,
    }
    rt.commit(ex, [engine.close(command, attempt, "skipped", error, rt.clock.now())])


def receive(rt: Runtime, token: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Take a callback; answer (HTTP status, JSON). Nothing is recorded unless 202."""
    try:
        grant = callbacks.verify(rt.callback_key, token, rt.clock.now())
        if len(body) > rt.settings.callback_max_bytes:
            raise CallbackError(
                f"the callback body is larger than {rt.settings.callback_max_bytes} bytes", 413
            )
        posted = _json(body, rt.settings.limits)
        return 202, _record(rt, grant, posted)
    except CallbackError as exc:
        return exc.status, {"error": exc.message}


def _json(body: bytes, limits: Limits) -> Any:
    try:
        return bounded.json_loads(body.decode("utf-8"), "the callback body", limits)
    except InputLimitError as exc:
        raise CallbackError(exc.message, 400) from None
    except (UnicodeDecodeError, ValueError):
        raise CallbackError("the callback body is not JSON", 400) from None


def _record(rt: Runtime, grant: Grant, posted: Any) -> dict[str, Any]:
    ex = rt.execution(grant.execution_id)
    answer = {"execution_id": ex.id, "command_id": grant.command_id}
    done = rt.log.get(E.done_id(ex.id, grant.command_id))
    if done is not None:
        if done.body.get("callback_received") and done.attempt == grant.attempt:
            return {**answer, "status": "already received"}
        raise CallbackError("the step is no longer waiting for a callback", 410)
    if rt.log.halted(ex.id):
        raise CallbackError("the execution was cancelled or has failed", 410)
    pending = rt.log.get(E.pending_id(ex.id, grant.command_id, grant.attempt))
    if pending is None or pending.body.get("wait") != "callback":
        raise CallbackError("no step is waiting for this callback", 410)
    if rt.clock.now() > float(pending.body["due"]):
        raise CallbackError("the step's callback timeout has passed", 410)
    command = rt.command(ex, grant.command_id)
    run = execute.StepRun("ok", value=posted)
    rt.conclude(ex, command, grant.attempt, run, rt.names(ex, command), [], received=True)
    done = rt.log.get(E.done_id(ex.id, grant.command_id))
    if done is None or not done.body.get("callback_received"):
        raise CallbackError("the step is no longer waiting for a callback", 410)
    return {**answer, "status": "received"}
