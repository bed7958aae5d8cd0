"""`noetl rerun EXEC STEP [--attempt N]`: run one recorded block again, here, from the
inputs it saw, and show how its output differs from the recorded one.

A block's inputs are not stored rendered (a rendered config could hold secrets): they
are rendered again exactly as the block rendered them (`runtime/hydrate.py`), from the
command's entry (its frame: the scope versions of `results` and `ctx` it read, its loop
item, its arc `args`), the execution's workload and playbook from its start entry, and
the results those versions point to. Keychain secrets are resolved again for this run
and masked in everything printed, as in what the log records.

The original execution is not touched: the runtime's log is wrapped so that any write
fails the rerun (`ReadOnlyLog`), the result is stored only in a scratch payload store (a
temporary directory, to compare it as the log would hold it), and the execution's entry
count is checked after.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import entries as E
from .engine import versions
from .engine.entries import Entry
from .errors import NoetlError
from .runtime import children, execute, payloads, waits
from .runtime.hydrate import PathContext

if TYPE_CHECKING:
    from .runtime.block import Runtime


class RerunError(NoetlError):
    code = "rerun_refused"


class ReadOnlyLog:
    """The event log, refusing every write: a rerun must not change its execution."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RerunError("the step tried to write to the execution's event log; not rerun")

    append = append_then = _refuse

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass(frozen=True)
class Target:
    """The block to run again: its command, its attempt and what it recorded."""

    command_id: str
    attempt: int
    record: Entry


def find(log: Sequence[Entry], step: str, attempt: int | None) -> Target:
    """The last block of `step` (of its `attempt`, when given) that recorded an output:
    a `done` or a retried attempt's `attempt` entry."""
    records = [
        e
        for e in log
        if e.step == step
        and e.command_id
        and (
            (e.kind == "done" and "loop" not in e.body)  # not a loop's activation
            or (e.kind == "attempt" and "retry" in e.body)
        )
    ]
    if not records:
        ran = sorted({e.step for e in log if e.step and e.kind in ("done", "attempt")})
        raise RerunError(
            f"step {step!r} has no recorded block in this execution (steps that ran: "
            f"{', '.join(ran) or 'none'})"
        )
    if attempt is not None:
        chosen = [e for e in records if e.attempt == attempt]
        if not chosen:
            known = sorted({e.attempt for e in records})
            raise RerunError(
                f"step {step!r} has no recorded attempt {attempt} (recorded attempts: "
                f"{', '.join(map(str, known))})"
            )
        records = chosen
    record = records[-1]
    return Target(str(record.command_id), record.attempt, record)


def recorded_output(rt: Runtime, record: Entry) -> Any:
    """What the log holds of the block's output (secrets already masked there)."""
    body = record.body
    if record.kind == "done" and body.get("status") == "ok":
        return _plain(payloads.load(rt.payloads, body.get("result")))
    return {"status": "error", "error": body.get("error")}


def _plain(value: Any) -> Any:
    """JSON-plain, with an Arrow table as its columns and rows."""
    if type(value).__name__ == "Table" and hasattr(value, "to_pylist"):
        value = {"columns": value.column_names, "rows": value.to_pylist()}
    return json.loads(payloads.to_json(value))


@dataclass(frozen=True)
class Rerun:
    step: str
    command_id: str
    attempt: int
    recorded: Any
    output: Any

    @property
    def same(self) -> bool:
        return bool(self.recorded == self.output)

    def diff(self) -> str:
        old = json.dumps(self.recorded, indent=2, sort_keys=True, default=str).splitlines()
        new = json.dumps(self.output, indent=2, sort_keys=True, default=str).splitlines()
        lines = difflib.unified_diff(
            old, new, f"recorded (attempt {self.attempt})", "rerun", lineterm=""
        )
        return "\n".join(lines)


def rerun(rt: Runtime, execution_id: str, step: str, attempt: int | None = None) -> Rerun:
    """Run the block again with the inputs it saw; nothing is written to the log."""
    from .adapters.fsspec_payloads import FsspecPayloadStore

    ex = rt.execution(execution_id)
    known = [s.step for s in ex.blueprint.playbook.workflow]
    if step not in known:
        raise RerunError(
            f"execution {execution_id} has no step {step!r} (its playbook's steps: "
            f"{', '.join(known)})"
        )
    log = list(rt.log.entries(execution_id))
    before = len(log)
    target = find(log, step, attempt)
    command = rt.command(ex, target.command_id)
    if command.kind in ("loop", "frame"):
        raise RerunError(f"step {step!r}: a loop's {command.kind} block is not rerun")
    definition = ex.blueprint.step(command.step)
    if waits.callback_timeout(definition) is not None:
        raise RerunError(f"step {step!r} waits for a callback; rerun runs no callback step")
    original, rt.log = rt.log, ReadOnlyLog(rt.log)  # type: ignore[assignment]
    try:
        secrets = rt.secrets(ex)  # resolved again, for this run
        names = rt.names(ex, command, secrets)
        context = PathContext(names, versions.Tries(rt.node), command.frame, rt.view_of)
        resume = None
        if target.attempt > 1:
            previous = original.get(E.attempt_id(ex.id, command.id, target.attempt - 1))
            resume = children.resume_state(rt, previous)
        inv = execute.Invocation(
            ex.id, command.id, target.attempt, step, rt, secrets, rt.tables(command)
        )
        run = execute.run_step(definition, names, inv, context, resume)
    finally:
        rt.log = original
    redactor = rt.secret_cache.redactor(ex.id)
    if run.status == "child":
        raise RerunError(f"step {step!r} starts a child playbook; rerun does not start it")
    if run.status == "wait":
        raise RerunError(f"step {step!r} waits ({run.delay:g}s); rerun runs no wait step")
    if run.status == "ok":  # as the log would hold it: stored the same way, elsewhere
        with tempfile.TemporaryDirectory(prefix="noetl-rerun-") as scratch_dir:
            scratch = FsspecPayloadStore(Path(scratch_dir).as_uri())
            key = payloads.key(ex.id, step, command.id, target.attempt, "rerun")
            limit = rt.settings.inline_limit
            ref, _ = payloads.persist(scratch, run.value, key, limit, (), redactor)
            output = _plain(payloads.load(scratch, ref))
    else:
        output = {"status": "error", "error": redactor.scrub(run.error)}
    if len(list(original.entries(execution_id))) != before:
        raise RerunError(f"execution {execution_id}'s log changed during the rerun")
    recorded = _plain(redactor.scrub(recorded_output(rt, target.record)))
    return Rerun(step, command.id, target.attempt, recorded, _plain(redactor.scrub(output)))


def main(rt: Runtime, execution_id: str, step: str, attempt: int | None) -> int:
    """Print the rerun's comparison: 0 when the output is the same, 1 when it differs."""
    done = rerun(rt, execution_id, step, attempt)
    print(
        f"rerun of step {done.step} (command {done.command_id}, attempt {done.attempt}) of "
        f"execution {execution_id}: inputs rendered again from its scope versions, secrets "
        "resolved again; the execution is unchanged"
    )
    if done.same:
        print("same output")
        return 0
    print(done.diff())
    return 1
