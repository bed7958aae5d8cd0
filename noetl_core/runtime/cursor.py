"""Cursor loop blocks: the activation, one frame (claim rows, run the body for each,
record), and the loop's collected result at `loop.done` (see engine/cursor.py).

A frame's claim runs the playbook's claim statement (rendered with the block's names and
`cursor`: `slot`, `frame`, `call`, `token`, `max_rows`, `worker_slot_id`; upstream's
`__worker_slot_id` and `__frame_max_rows` too) in its own transaction per call, until it
has `frame.max_rows` rows or a call returns none. `cursor.token` is the same for the same
slot, frame and call whatever the attempt, so a claim that also takes back the rows
holding its own token (`WHERE claimed_by IS NULL OR claimed_by = '{{ cursor.token }}'`)
is idempotent: a frame re-run after a crash finds again the rows its lost attempt had
claimed (docs/language.md, Cursor loops).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import engine, templating
from ..engine import cursor as C
from ..engine import entries as E
from ..engine.decide import _local, _step_patches
from ..engine.entries import Command, Entry
from ..engine.scope import merge
from ..errors import NoetlError
from ..playbook.model import Step
from ..templating import ResultView
from ..tools.base import Rowset, ToolCall
from . import children, execute, faults, payloads
from .hydrate import PathContext
from .ports import Note

if TYPE_CHECKING:
    from .block import Runtime
    from .executions import Execution

CONNECTION_OPTIONS = (
    "db_host",
    "host",
    "db_port",
    "port",
    "db_user",
    "user",
    "db_password",
    "password",
    "db_name",
    "dbname",
    "database",
    "sslmode",
    "connect_timeout",
    "timeout",
)
ROW_READS = 500  # frame records read at once at loop.done


def activate(
    rt: Runtime, ex: Execution, command: Command, attempt: int, claim: list[Entry]
) -> None:
    batch = C.activate(rt.scene(ex), command, attempt)
    rt.commit(ex, [*claim, *batch])


def run_frame(
    rt: Runtime, ex: Execution, command: Command, attempt: int, claim: list[Entry]
) -> None:
    """One frame: claim its rows (or, for an attempt after a row's retry, take the rows
    the earlier attempt claimed, from its record), run the body for each, record. A row
    whose policy says `retry` ends the attempt with an `attempt` entry holding the
    frame's rows and results so far; the timer delivers the next attempt, which resumes
    at that row (a pipeline at its task), with the row's own attempt count."""
    step = ex.blueprint.step(command.step)
    assert step.loop is not None and step.loop.cursor is not None
    secrets = rt.secrets(ex)
    names = rt.names(ex, command, secrets)
    state = command.frame["cursor"]
    frame, before = int(state["frame"]), int(state["rows"])
    cap = int((step.loop.cursor.options or {}).get("max_iterations") or C.DEFAULT_MAX_ITERATIONS)
    want = max(1, min(step.loop.frame_rows, cap - before))
    progress: dict[str, Any] = {"rows": 0, "failed": [], "drained": False, "broke": False}
    results: list[Any] = []
    first_error: dict[str, Any] | None = None
    ctx_patch: dict[str, Any] = {}  # the rows' `set` on ctx, merged in row order
    at, row_attempt, pipeline = 0, 1, None
    previous = _last_retry(rt, ex, command, attempt)
    saved = previous.body.get("cursor") if previous is not None else None
    if saved is not None:
        rows = payloads.load(rt.payloads, saved["rows"])
        results = payloads.load(rt.payloads, saved["results"])
        progress.update(saved["progress"])
        first_error = saved.get("first_error")
        ctx_patch = saved.get("ctx") or {}
        at, row_attempt = int(saved["at"]), int(saved["row_attempt"])
        pipeline = children.resume_state(rt, previous)
    else:
        try:
            rows, progress["drained"] = claim_rows(rt, ex, command, attempt, step, names, want)
        except NoetlError as exc:
            progress["drained"] = True
            failed = engine.Outcome("error", error=exc.to_dict(), view=ResultView(None))
            batch = C.record_frame(rt.scene(ex), command, attempt, failed, progress)
            rt.commit(ex, [*claim, *batch])
            return
        # rows taken in the database, nothing recorded
        faults.point(rt.settings, "claimed", step.step)
    for j in range(at, len(rows)):
        row = rows[j]
        row_names = {**names, **_row_names(step, command, row, before + j, frame, j)}
        context = PathContext(row_names, _tries(rt), command.frame, rt.view_of)
        tries = row_attempt if j == at else 1
        inv = execute.Invocation(
            ex.id, f"{command.id}-{j}", tries, step.step, rt, secrets, rt.tables(command)
        )
        run = execute.run_step(step, row_names, inv, context, pipeline if j == at else None)
        if run.status == "retry":
            kept = {
                "progress": progress,
                "first_error": first_error,
                "ctx": ctx_patch,
                "at": j,
                "row_attempt": tries + 1,
            }
            _retry_row(rt, ex, command, attempt, run, rows, results, kept, claim)
            return
        if run.status in ("child", "wait"):
            run = execute.StepRun("error", error=_unsupported(step, run, before + j))
        if run.status == "ok":
            value = run.value.value() if isinstance(run.value, Rowset) else run.value
            try:
                ctx_patch = merge(ctx_patch, _row_set(step, row_names, value, run))
            except NoetlError as exc:  # the step's `set` failed to render for this row
                run = execute.StepRun("error", error=exc.to_dict())
        if run.status == "ok":
            results.append(value)
            progress["broke"] = progress["broke"] or run.meta.get("action") == "break"
        else:
            results.append(None)
            progress["failed"].append(j)
            first_error = first_error or dict(run.error or {})
    faults.point(rt.settings, "executed", step.step)
    progress["rows"] = len(rows)
    key = payloads.key(ex.id, step.step, command.id, attempt, "result")
    redactor = rt.secret_cache.redactor(ex.id)
    ref, view = payloads.persist(rt.payloads, results, key, rt.settings.inline_limit, (), redactor)
    if first_error is not None:
        error = {**first_error, "failed_rows": [before + j for j in progress["failed"]]}
        outcome = engine.Outcome("error", result=ref, error=error, view=view)
    else:
        outcome = engine.Outcome("ok", result=ref, view=view)
    batch = C.record_frame(rt.scene(ex), command, attempt, outcome, progress, ctx_patch)
    rt.commit(ex, [*claim, *batch])


def _last_retry(rt: Runtime, ex: Execution, command: Command, attempt: int) -> Entry | None:
    """The latest earlier attempt's retry record, if any: the one before this attempt,
    or, when that attempt died mid-block (a takeover), the one before it, and so on.
    A first attempt reads nothing."""
    for earlier in range(attempt - 1, 0, -1):
        found = rt.log.get(E.attempt_id(ex.id, command.id, earlier))
        if found is not None:
            return found
    return None


def _row_set(
    step: Step, names: Mapping[str, Any], value: Any, run: execute.StepRun
) -> dict[str, Any]:
    """The ctx part of the step's `set` after one row (and its policy's `set_ctx`), as a
    collection loop's iteration applies it."""
    outcome = engine.Outcome("ok", view=ResultView(value), patches=run.patches)
    scope = {**names, **_local(step.step, outcome)}
    return _step_patches(step, outcome, scope).ctx


def _retry_row(
    rt: Runtime,
    ex: Execution,
    command: Command,
    attempt: int,
    run: execute.StepRun,
    rows: list[Any],
    results: list[Any],
    kept: dict[str, Any],
    claim: list[Entry],
) -> None:
    """End this attempt of the frame with its rows and results so far (payloads), and
    have the timer deliver the next attempt after the policy's delay."""
    limit = rt.settings.inline_limit
    base = payloads.key(ex.id, command.step, command.id, attempt, "cursor")
    rows_ref, _ = payloads.persist(rt.payloads, rows, f"{base}-rows", limit)
    results_ref, _ = payloads.persist(rt.payloads, results, f"{base}-results", limit)
    now = rt.clock.now()
    due = now + run.delay
    body: dict[str, Any] = {
        "status": "error",
        "error": run.error,
        "retry": {"attempt": attempt + 1, "due": due, "delay": run.delay},
        "cursor": {**kept, "rows": rows_ref, "results": results_ref},
    }
    if run.resume is not None:
        body["resume"] = children._persist_resume(rt, ex, command, attempt, run.resume)
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


def _tries(rt: Runtime) -> Any:
    from ..engine import versions

    return versions.Tries(rt.node)


def _unsupported(step: Step, run: execute.StepRun, index: int) -> dict[str, Any]:
    what = {
        "child": "start a sub-playbook",
        "wait": "wait",
    }[run.status]
    cause = f" (after: {run.error.get('message')})" if run.error else ""
    return {
        "kind": "cursor",
        "code": "unsupported_in_cursor_loop",
        "retryable": False,
        "message": f"step {step.step}: row {index} of a cursor loop: its body cannot {what} "
        f"in this runtime yet{cause}",
    }


def _row_names(
    step: Step, command: Command, row: Any, index: int, frame: int, position: int
) -> dict[str, Any]:
    """What a row's body reads: the row under the iterator's name and `iter.<iterator>`,
    with upstream's `iter._index` (the row's index in its slot), `iter._worker_slot_id`,
    `iter._frame_index` and `iter._frame_row_index`."""
    assert step.loop is not None and command.activation is not None
    iterator = step.loop.iterator
    slot = int(command.frame["cursor"]["slot"])
    it = {
        iterator: row,
        "index": index,
        "_index": index,
        "_first": index == 0,
        "_worker_slot_id": C.worker_slot_id(command.activation, slot),
        "_frame_index": frame,
        "_frame_row_index": position,
    }
    loop = {"index": index, "first": index == 0, "slot": slot, "frame": frame}
    return {iterator: row, "iter": it, "loop": loop, "loop_index": index}


def claim_rows(
    rt: Runtime,
    ex: Execution,
    command: Command,
    attempt: int,
    step: Step,
    names: Mapping[str, Any],
    want: int,
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `want` rows (more if one call returns more: they are claimed), and whether a
    call returned none (the cursor is drained for this slot)."""
    assert step.loop is not None and step.loop.cursor is not None
    assert command.activation is not None
    cursor = step.loop.cursor
    state = command.frame["cursor"]
    slot, frame = int(state["slot"]), int(state["frame"])
    where = f"step {step.step}: loop.cursor"
    options = cursor.options or {}
    fields: dict[str, Any] = {k: options[k] for k in CONNECTION_OPTIONS if k in options}
    if cursor.auth:
        fields["auth"] = cursor.auth
    fields = templating.render(fields, names, where)
    fields["autocommit"] = True  # each claim commits at once: its rows are taken
    frame_policy = step.loop.spec.frame
    rows: list[dict[str, Any]] = []
    call = 0
    while len(rows) < want:
        worker = C.worker_slot_id(command.activation, slot)
        cursor_names = {
            "slot": slot,
            "frame": frame,
            "call": call,
            "token": f"{ex.id}:{command.activation}:{slot}:{frame}:{call}",
            "max_rows": want - len(rows),
            "worker_slot_id": worker,
        }
        scope = {
            **names,
            "cursor": cursor_names,
            "__worker_slot_id": worker,
            "__frame_max_rows": step.loop.frame_rows,
            "__frame_policy": vars(frame_policy) if frame_policy is not None else {},
        }
        sql = templating.render(cursor.claim, scope, f"step {step.step}: loop.cursor.claim")
        tool_call = ToolCall(
            kind="postgres",
            fields={**fields, "command": sql},
            input={},
            step=step.step,
            execution_id=ex.id,
            command_id=command.id,
            attempt=attempt,
            names=scope,
            services=rt,
            secrets=rt.secrets(ex),
        )
        from ..tools import postgres  # loaded by the first frame, not at start

        got = _records(postgres.run(tool_call))
        if not got:
            return rows, True
        rows.extend(got)
        call += 1
    return rows, False


def _records(out: Any) -> list[dict[str, Any]]:
    if isinstance(out, Rowset):
        records = out.table.to_pylist()
    else:
        records = list(out.get("rows") or []) if isinstance(out, Mapping) else []
    plain: list[dict[str, Any]] = json.loads(payloads.to_json(records))
    return plain


# -- loop.done -------------------------------------------------------------------------


def frames(rt: Runtime, ex: Execution, command: Command, slot_ends: Sequence[Entry]) -> list[Entry]:
    """The loop's frame records, slot by slot, frame by frame (read by id)."""
    wanted = [
        E.done_id(ex.id, C.frame_command_id(ex.id, command.id, int(end.body["index"]), k))
        for end in sorted(slot_ends, key=lambda e: int(e.body["index"]))
        for k in range(int(end.body["frames"]))
    ]
    found: dict[str, Entry] = {}
    for first in range(0, len(wanted), ROW_READS):
        found.update(rt.log.get_many(wanted[first : first + ROW_READS]))
    missing = [w for w in wanted if w not in found]
    if missing:
        raise NoetlError(f"execution {ex.id}: cursor loop {command.step}: no frame {missing[0]}")
    return [payloads.unspill_fields(rt.payloads, found[w]) for w in wanted]


def outcome(
    rt: Runtime, ex: Execution, command: Command, records: Sequence[Entry]
) -> engine.Outcome:
    """The loop's collected result: every row's body result, slot by slot, frame by
    frame, row by row (a failed row's is null), as a collection loop lists its
    iterations' results; `call.error` with `error.failed_iterations` (positions in that
    list) when rows failed and the step has recovery arcs."""
    values: list[Any] = []
    failed: list[int] = []
    first_error: dict[str, Any] | None = None
    for record in records:
        ref = record.body.get("result")
        rows = payloads.load(rt.payloads, ref) if ref is not None else []
        failed.extend(len(values) + j for j in record.body["cursor"]["failed"])
        if record.body.get("status") != "ok" and first_error is None:
            first_error = dict(record.body.get("error") or {})
        values.extend(rows or [])
    key = payloads.key(ex.id, command.step, command.id, "loop", "result")
    ref, view = payloads.persist(rt.payloads, values, key, rt.settings.inline_limit)
    if failed or first_error is not None:
        error = {**(first_error or {}), "failed_iterations": failed}
        return engine.Outcome("error", result=ref, error=error, view=view)
    return engine.Outcome("ok", result=ref, view=view)
