"""What the CLI prints: live progress, results, status, timelines, replay reports."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .engine import entries as E
from .engine.entries import Entry
from .errors import ExecutionNotFound
from .runtime import payloads

if TYPE_CHECKING:
    from .playbook.loader import LoadedPlaybook
    from .runtime.block import Runtime

PREVIEW_ROWS = 5


LAST = "last"  # wherever an execution id is asked for: the most recent execution


def resolve_id(rt: Runtime, given: str) -> str:
    if rt.log.get(E.start_id(given)) is not None:
        return given
    if given == LAST:
        recent = rt.log.executions(1)
        if not recent:
            raise ExecutionNotFound("no execution under this NOETL_HOME yet (`last` names none)")
        return recent[0].execution_id
    finder = getattr(rt.log, "find_execution", None)
    matches = finder(given) if finder else []
    if len(matches) == 1:
        return str(matches[0])
    if len(matches) > 1:
        raise ExecutionNotFound(f"{given!r} matches several executions: {', '.join(matches)}")
    raise ExecutionNotFound(f"no execution {given!r} under this NOETL_HOME")


class Progress:
    """Prints one line per step boundary as blocks record them."""

    def __init__(self, out: TextIO, quiet: bool = False):
        self.out = out
        self.quiet = quiet
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}

    def started(self, execution_id: str, loaded: LoadedPlaybook) -> None:
        self._line(f"execution {execution_id}: {loaded.path} ({loaded.file})")

    def _line(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                print(text, file=self.out, flush=True)

    def __call__(self, batch: Sequence[Entry]) -> None:
        for entry in batch:
            self._entry(entry)

    def _entry(self, entry: Entry) -> None:
        label = _label(entry)
        if "claimed" in entry.body:
            self._started[entry.command_id or ""] = entry.body["claimed"]["at"]
            if entry.attempt > 1:
                self._line(f"  ↻ {label} attempt {entry.attempt}")
        if entry.kind == "claim":
            self._started[entry.command_id or ""] = entry.ts
            if entry.attempt > 1:
                self._line(f"  ↻ {label} attempt {entry.attempt}")
        elif entry.kind == "done" and entry.body.get("loop") is None:
            took = (entry.ts - self._started.pop(entry.command_id or "", entry.ts)) * 1000
            status = entry.body.get("status")
            mark = {"ok": "✓", "skipped": "-"}.get(str(status), "✗")
            tail = "" if status == "ok" else f": {entry.body.get('error', {}).get('message', '')}"
            self._line(f"  {mark} {label} {took:.1f} ms{tail}")
        elif entry.kind == "attempt" and entry.body.get("status") == "continue":
            self._line(f"  → {label} goes on after its child")
        elif entry.kind == "attempt":
            retry = entry.body.get("retry", {})
            message = entry.body.get("error", {}).get("message", "")
            self._line(
                f"  ! {label} attempt {entry.attempt} failed ({message}); "
                f"retry in {retry.get('delay', 0):.2f}s"
            )
        elif entry.kind == "pending" and entry.body.get("wait") == "callback":
            self._line(f"  … {label} waiting for its callback (no worker held)")
        elif entry.kind == "pending" and entry.body.get("wait") == "timer":
            self._line(f"  … {label} waiting {entry.body['due'] - entry.ts:.1f}s (no worker held)")
        elif entry.kind == "pending":
            self._line(f"  … {label} waiting for child {entry.body.get('child_execution_id')}")
        elif entry.kind == "loopdone":
            self._line(f"  ✓ {label} loop done")
        elif entry.kind == "terminal":
            self._line(f"  = {entry.execution_id} {entry.body.get('status')}")


def _label(entry: Entry) -> str:
    return entry.step or ""


def describe(value: Any) -> Any:
    """A printable stand-in for large values (Arrow tables)."""
    if type(value).__name__ == "Table" and hasattr(value, "num_rows"):
        rows = value.slice(0, PREVIEW_ROWS).to_pylist()
        return {"table": {"rows": value.num_rows, "columns": value.column_names, "preview": rows}}
    return value


def print_result(rt: Runtime, execution_id: str, terminal: Entry, *, as_json: bool) -> None:
    body = terminal.body
    value = describe(payloads.load(rt.payloads, body.get("result")))
    out = {"execution_id": execution_id, "status": body.get("status"), "result": value}
    if body.get("error"):
        out["error"] = body["error"]
    if as_json:
        print(json.dumps(out, default=str))
        return
    print(f"status: {body.get('status')}")
    if body.get("error"):
        print(f"error: {body['error'].get('message')}", file=sys.stderr)
    if body.get("status") == "completed":  # a failed run's `result` would mislead
        print("result:")
        print(json.dumps(value, indent=2, default=str))


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _status_of(rt: Runtime, execution_id: str) -> str:
    """The terminal entry's status; before it, `cancelling` once a cancel is recorded
    (what is still running ends first), else `running`."""
    terminal = rt.log.get(E.terminal_id(execution_id))
    if terminal is not None:
        return str(terminal.body.get("status"))
    return "cancelling" if rt.log.get(E.cancel_id(execution_id)) is not None else "running"


def print_status(rt: Runtime, execution_id: str | None) -> int:
    from .engine.fold import fold

    if execution_id is None:
        for start in rt.log.executions():
            status = _status_of(rt, start.execution_id)
            path = start.body["playbook"]["path"]
            print(f"{start.execution_id}  {when(start.ts)}  {status:<10}  {path}")
        return 0
    state = fold(rt.log.entries(execution_id), execution_id)
    playbook = state.header.get("playbook", {})
    took = ((state.finished or rt.clock.now()) - (state.started or 0)) * 1000
    print(f"execution {execution_id}: {state.status}")
    print(f"playbook  {playbook.get('path')} (sha256 {str(playbook.get('digest'))[:12]})")
    print(
        f"started   {when(state.started)}   {took:.1f} ms   {state.entries} entries, "
        f"{state.events} events"
    )
    if state.header.get("parent_execution_id"):
        print(f"parent    {state.header['parent_execution_id']}")
    print(
        f"in flight {state.open_commands} command(s), {state.open_loops} loop(s), "
        f"{state.open_arrivals} join arrival(s)"
    )
    print("steps:")
    print(f"  {'step':<24} {'status':<9} {'runs':>5} {'attempts':>8} {'duration':>12}")
    for row in step_rows(state):
        print(
            f"  {cut(row['step'], 24):<24} {row['status']:<9} {row['runs']:>5} "
            f"{row['attempts']:>8} {row['duration']:>12}"
        )
    if state.error:
        print(f"error: {state.error.get('message')}")
        failed = [s for s in state.steps.values() if s.failed and s.error]
        for step in failed:
            message = step.error.get("message") if step.error else ""
            if message != state.error.get("message"):
                print(f"  {step.name}: {message}")
        if failed:
            print(f"(`noetl logs {execution_id}` shows what the steps printed)")
    elif state.status == "completed":
        value = describe(payloads.load(rt.payloads, state.result))
        print("result:")
        print(json.dumps(value, indent=2, default=str))
    return 0


def step_rows(state: Any) -> list[dict[str, Any]]:
    """One row per step: status, runs (records of it: iterations count one each),
    attempts (runs plus retries), and the time from its first claim to its last record."""
    rows = []
    for step in state.steps.values():
        commands = [c for c in state.commands.values() if c.step == step.name and c.kind != "loop"]
        open_ = [c.status for c in commands if c.status in ("issued", "running", "pending")]
        if open_:
            status = "running" if "running" in open_ else open_[0]
        elif any(c.status == "retrying" for c in commands):
            status = "retrying"
        elif step.failed:
            status = "failed"
        elif step.ok:
            status = "ok"
        else:
            status = "skipped" if step.skipped else "-"
        runs = step.ok + step.failed + step.skipped
        starts = [c.started for c in commands if c.started is not None]
        ends = [c.finished for c in commands if c.finished is not None]
        took = f"{(max(ends) - min(starts)) * 1000:.1f} ms" if starts and ends else "-"
        rows.append(
            {
                "step": step.name,
                "status": status,
                "runs": runs,
                "attempts": runs + step.retries,
                "duration": took,
            }
        )
    return rows


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters; a cut one ends with a visible mark."""
    return text if len(text) <= width else text[: width - 1] + "…"


EVENTS_HEADER = (
    f"{'#':>5}  {'since start':>13}  {'event':<20} {'step':<20} {'try':<4} detail"
    "   (try: the attempt; … marks a value cut short: `--json` has it whole)"
)


def print_events(rt: Runtime, execution_id: str, *, as_json: bool) -> int:
    n = 0
    first: float | None = None
    if not as_json:
        print(EVENTS_HEADER)
    for entry in rt.log.entries(execution_id):
        for event in E.expand(entry):
            n += 1
            if as_json:
                print(json.dumps(event, default=str))
                continue
            first = first if first is not None else event["timestamp"]
            offset = (event["timestamp"] - first) * 1000
            detail = _detail(entry, event)
            print(
                f"{n:>5}  +{offset:>9.1f} ms  {event['type']:<20} {cut(entry.step or '', 20):<20} "
                f"{'#' + str(entry.attempt) if entry.attempt else '':<4} {detail}"
            )
    return 0


def _detail(entry: Entry, expanded: dict[str, Any]) -> str:
    body, event = entry.body, expanded["type"]
    if event in ("call.error", "command.failed", "playbook.failed") and body.get("error"):
        return cut(str(body["error"].get("message", "")), 120)
    iteration = E.iteration_of(expanded["command_id"] or "")
    if event == "command.issued" and iteration is not None:
        return f"iteration {iteration[1]}"
    if event == "call.done" and body.get("result"):
        ref = body["result"]
        if "inline" in ref:
            return cut(json.dumps(ref["inline"], default=str), 100)
        return f"stored {ref.get('format')} {ref.get('rows')} rows {ref.get('size')} bytes"
    if event == "call.pending":
        return f"child {body.get('child_execution_id')}"
    if event in ("playbook.completed", "playbook.cancelled"):
        return str(body.get("status"))
    return ""


def print_replay(rt: Runtime, execution_id: str, at: int | None) -> int:
    from .runtime import replay

    upto = None
    if at is not None:
        count = 0
        for entry in rt.log.entries(execution_id):
            count += len(entry.events)
            upto = entry.seq
            if count >= at:
                break
    state, checks = replay.verify(rt, execution_id, upto)
    print(
        f"execution {execution_id} rebuilt from {state.entries} entries / {state.events} events"
        + (f" (up to event {at})" if at is not None else "")
    )
    print(
        f"state: {state.status}; in flight: {state.open_commands} command(s), "
        f"{state.open_loops} loop(s), {state.open_arrivals} arrival(s)"
    )
    for step in state.steps.values():
        print(f"  {step.name:<24} ok {step.ok}  failed {step.failed}  retries {step.retries}")
    if state.ctx:
        print(f"ctx: {json.dumps(state.ctx, default=str)[:300]}")
    bad = [c for c in checks if not c.ok]
    print(f"decisions checked: {len(checks)}, reproduced: {len(checks) - len(bad)}")
    for c in bad:
        print(f"  MISMATCH at entry {c.seq} ({c.kind} {c.step}): {c.detail}")
    return 1 if bad else 0


def logs_of(entries: Sequence[Entry], execution_id: str, step: str | None) -> list[dict[str, Any]]:
    """What each step printed (`print()` in python steps, kept with its record, the last
    64 KiB) and each error, in log order, one row per block that printed or failed; a
    step of a sub-playbook is in the child's. ExecutionNotFound for an unknown `step`."""
    rows: list[dict[str, Any]] = []
    known: set[str] = set()
    for entry in entries:
        if entry.step:
            known.add(entry.step)
        if entry.kind not in ("done", "attempt") or (step and entry.step != step):
            continue
        body = entry.body
        output = (body.get("meta") or {}).get("log") or ""
        error = body.get("error") if body.get("status") not in ("ok", "continue") else None
        if not output and not error:
            continue
        iteration = E.iteration_of(entry.command_id or "")
        rows.append(
            {
                "step": entry.step,
                "index": iteration[1] if iteration is not None else None,
                "attempt": entry.attempt,
                "status": body.get("status"),
                "output": output,
                "error": error,
            }
        )
    if step and step not in known:
        raise ExecutionNotFound(
            f"execution {execution_id} has no step {step!r} (steps: {', '.join(sorted(known))})"
        )
    return rows


def print_log_rows(rows: Sequence[dict[str, Any]]) -> int:
    """`noetl logs`, from `logs_of` rows (here or from a gateway)."""
    for row in rows:
        where = str(row.get("step") or "")
        if row.get("index") is not None:
            where += f" [{row['index']}]"
        print(f"== {where} (attempt {row.get('attempt')}, {row.get('status')}) ==")
        output = row.get("output") or ""
        if output:
            print(output, end="" if output.endswith("\n") else "\n")
        error = row.get("error")
        if error:
            print(f"error: {error.get('message')}")
            trace = error.get("traceback")
            for line in trace if isinstance(trace, list) else []:
                print(f"  {line}")
    if not rows:
        print("(no step printed anything or failed)")
    return 0


def print_logs(rt: Runtime, execution_id: str, step: str | None) -> int:
    return print_log_rows(logs_of(rt.log.entries(execution_id), execution_id, step))
