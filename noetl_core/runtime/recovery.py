"""Resuming executions a crash interrupted, on the embedded default.

On the cloud runtime, Pub/Sub redelivers a note whose worker died and the claim's lease
says when to take over. The embedded default has no broker that outlives the process, so
the log itself says what is left to do, and the execution's lock (`adapters/locks.py`)
says that nobody is doing it:

- every command issued and not completed gets its note again, for the last attempt the
  log knows of (an attempt that never recorded runs again with the same attempt number,
  so a tool sees the same idempotency key); the block protocol makes a note for work
  already recorded harmless (a scheduled retry re-arms its timer, a wait its timeout);
- every record is settled again, keeping only the notes of commands still open: a crash
  between a record's commit and its settling loses no join, `loop.done` or terminal entry
  (settling is idempotent: its entries have deterministic ids);
- a sub-playbook's pending step whose child already ended is completed, and children
  still running are resumed with their parent.

Resuming costs one read of the execution's log and one settle per record: it is a
repair, not a per-block cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine import entries as E
from ..engine.entries import Entry
from ..errors import NoetlError
from . import settle
from .ports import Note

if TYPE_CHECKING:
    from .block import Runtime


class ExecutionBusy(NoetlError):
    code = "execution_running"


def interrupted(rt: Runtime) -> list[str]:
    """Executions started and not ended that no live process runs."""
    unfinished = getattr(rt.log, "unfinished", None)
    if unfinished is None or rt.owners is None:
        return []
    return [execution_id for execution_id in unfinished() if nobody_runs(rt, execution_id)]


def nobody_runs(rt: Runtime, execution_id: str) -> bool:
    """Whether no live process (this one included) holds the execution's lock."""
    if rt.owners is None or rt.owners.held(execution_id):
        return False
    if not rt.owners.take(execution_id):
        return False
    rt.owners.release(execution_id)
    return True


def resume(rt: Runtime, execution_id: str) -> int:
    """Take over an interrupted execution (and its unfinished children) in this process
    and deliver what is left of it; returns how many notes were delivered."""
    if rt.owners is None:
        raise NoetlError("this runtime has no execution locks: its broker redelivers")
    if not rt.owners.take(execution_id):
        raise ExecutionBusy(f"execution {execution_id} is running in another process")
    entries = rt.log.entries(execution_id)
    if any(e.kind == "terminal" for e in entries):
        rt.owners.release(execution_id)
        return 0
    ex = rt.execution(execution_id)
    notes: list[Note] = []
    for head in (e for e in entries if e.kind == "done"):
        notes += rt.resettled(ex, head)
    entries = rt.log.entries(execution_id)  # settling may have issued joins or ended it
    done = {e.command_id for e in entries if e.kind == "done"}
    # every command issued (issue entries, and loop iterations issued by range), at the
    # last attempt the log knows of
    last = {n.command_id: 1 for n in settle.issued_notes(entries) if n.command_id not in done}
    delivered = 0
    for entry in entries:
        command_id = entry.command_id
        if command_id is None or command_id not in last:
            continue
        if entry.kind in ("claim", "attempt", "pending"):
            last[command_id] = max(last[command_id], entry.attempt or 1)
        if entry.kind == "pending" and "child_execution_id" in entry.body:
            delivered += _child(rt, entry)
    open_notes = [Note(execution_id, c, a) for c, a in last.items()]
    open_notes += [n for n in notes if n.command_id not in done and n.command_id not in last]
    rt.bus.publish(open_notes)
    return delivered + len(open_notes)


def _child(rt: Runtime, pending: Entry) -> int:
    """A sub-playbook step: resume its child, or complete the step if the child ended."""
    from . import children

    child_id = str(pending.body["child_execution_id"])
    terminal = rt.log.get(E.terminal_id(child_id))
    if terminal is None:
        try:
            return resume(rt, child_id)
        except ExecutionBusy:
            return 0  # another process runs the child; its end completes the parent
    children.resume_parent(rt, rt.execution(child_id), terminal)
    return 1
