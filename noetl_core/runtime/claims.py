"""Step 1 of the block protocol: claim a command's attempt, with a lease.

On a shared log (Firestore) a claim is its own entry, created if absent:
- created -> this worker runs the attempt;
- held, lease alive, not released -> `ClaimConflict` (retryable: Pub/Sub redelivers);
- lease expired, or released by a worker whose block failed -> take over with the next
  attempt. Each takeover counts a crash; after `max_deliveries` crashes the command is
  closed as failed with the last cause and its note goes to the dead-letter topic.

On a shared log a block claims first (`claim_first`), reading the halt marker at the
same time: every done, retry or pending entry of an attempt is written by the block that
claimed it, so a claim created proves the attempt has not run, and nothing needs reading
before it. A claim already taken falls back to reading what happened.

On the embedded log one process owns the bus, so the claim is written with the block's
record (`deferred_claims`): one commit per block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import engine
from ..engine import entries as E
from ..engine.entries import Command, Entry
from ..errors import ClaimConflict
from .ports import Note

if TYPE_CHECKING:
    from .block import Runtime
    from .executions import Execution


class Takeover(Exception):
    """The attempt's holder is gone: continue with `attempt` (carrying `crashes`)."""

    def __init__(self, attempt: int, crashes: int, cause: str):
        super().__init__(cause)
        self.attempt = attempt
        self.crashes = crashes
        self.cause = cause


def release_id(execution_id: str, command_id: str, attempt: int) -> str:
    from .. import ids

    return ids.entry(execution_id, "release", command_id, attempt)


def claim_entry(rt: Runtime, ex: Execution, command: Command, attempt: int, crashes: int) -> Entry:
    now = rt.clock.now()
    return Entry(
        id=E.claim_id(ex.id, command.id, attempt),
        execution_id=ex.id,
        kind="claim",
        events=("command.claimed", "command.started", "step.enter"),
        ts=now,
        step=command.step,
        command_id=command.id,
        attempt=attempt,
        body={
            "worker": rt.worker_id,
            "lease_until": now + rt.settings.lease_seconds,
            "parent_execution_id": ex.parent_execution_id,
            "crashes": crashes,
        },
    )


def claim(rt: Runtime, ex: Execution, command: Command, attempt: int, crashes: int) -> list[Entry]:
    """The claim entries to record with the block (embedded), or [] once claimed."""
    entry = claim_entry(rt, ex, command, attempt, crashes)
    now = entry.ts
    if rt.log.deferred_claims:
        return [entry]
    if rt.append([entry]):
        return []
    found = rt.log.get_many([entry.id, release_id(ex.id, command.id, attempt)])
    held = found.get(entry.id)
    released = found.get(release_id(ex.id, command.id, attempt))
    if held is None:
        raise ClaimConflict(f"command {command.id} attempt {attempt}: claim not visible yet")
    if released is None and held.body["lease_until"] > now:
        raise ClaimConflict(
            f"command {command.id} attempt {attempt} is held by {held.body['worker']}"
        )
    cause = released.body["error"]["message"] if released else "the worker stopped mid-block"
    raise Takeover(attempt + 1, int(held.body.get("crashes", 0)) + 1, cause)


def release(
    rt: Runtime, ex: Execution, command: Command, attempt: int, error: dict[str, Any]
) -> None:
    """A shared-log block failed outside its tool: say so, so the next delivery takes over
    at once instead of waiting for the lease."""
    entry = Entry(
        id=release_id(ex.id, command.id, attempt),
        execution_id=ex.id,
        kind="release",
        events=(),
        ts=rt.clock.now(),
        step=command.step,
        command_id=command.id,
        attempt=attempt,
        body={"error": error},
    )
    rt.append([entry])


def dead_letter(rt: Runtime, ex: Execution, command: Command, takeover: Takeover) -> None:
    """Too many crashes: close the command as failed and park its note."""
    error = {
        "kind": "internal",
        "code": "dead_lettered",
        "retryable": False,
        "message": f"step {command.step}: the block failed {takeover.crashes} times "
        f"(last: {takeover.cause}); sent to the dead-letter topic",
    }
    rt.commit(ex, [engine.close(command, takeover.attempt, "error", error, rt.clock.now())])
    park = getattr(rt.bus, "dead_letter", None)
    if park is not None:
        park(Note(ex.id, command.id, takeover.attempt), error["message"])


def claim_first(rt: Runtime, ex: Execution, command: Command, attempt: int) -> None:
    """One block on a shared log (Firestore): the claim and the halt read in parallel."""
    entry = claim_entry(rt, ex, command, attempt, 0)
    halted = rt.side_reads().submit(rt.log.halted, ex.id)
    if not rt.append([entry]):
        halted.result()
        rt.run_block(ex, command, attempt)  # reads what happened, decides
        return
    try:
        rt.run_claimed(ex, command, attempt, halted.result())
    except Exception as exc:
        release_after(rt, ex, command, attempt, exc)
        raise


def release_after(
    rt: Runtime, ex: Execution, command: Command, attempt: int, exc: Exception
) -> None:
    """Release an attempt whose block raised outside its tool, naming the cause."""
    error = {
        "kind": "internal",
        "code": type(exc).__name__,
        "retryable": True,
        "message": rt.secret_cache.redactor(ex.id).text(str(exc))[:2000],
    }
    release(rt, ex, command, attempt, error)
