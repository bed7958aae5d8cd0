"""`noetl rerun`'s choice of block and its read-only log, from a hand-built log."""

from __future__ import annotations

from typing import Any

import pytest

from noetl_core import rerun
from noetl_core.engine.entries import Entry


def entry(kind: str, step: str, attempt: int, **body: Any) -> Entry:
    return Entry(
        id=f"{kind}-{step}-{attempt}",
        execution_id="1",
        kind=kind,
        events=(),
        ts=float(attempt),
        step=step,
        command_id=f"c-{step}",
        attempt=attempt,
        body=body,
    )


LOG = [
    entry("attempt", "a", 1, error={"message": "x"}, retry={"due": 2.0}),
    entry("done", "a", 2, status="ok", result={"inline": 1}),
    entry("done", "loop", 1, loop={"length": 2, "width": 2}),  # an activation
]


def test_the_last_block_or_the_attempt_asked_for() -> None:
    assert rerun.find(LOG, "a", None).attempt == 2
    assert rerun.find(LOG, "a", 1).record.kind == "attempt"
    with pytest.raises(
        rerun.RerunError, match=r"no recorded attempt 3 \(recorded attempts: 1, 2\)"
    ):
        rerun.find(LOG, "a", 3)
    with pytest.raises(rerun.RerunError, match="has no recorded block"):
        rerun.find(LOG, "loop", None)  # a loop's activation is not a block to rerun


def test_the_log_refuses_writes() -> None:
    class Log:
        def get(self, entry_id: str) -> str:
            return entry_id

    guarded = rerun.ReadOnlyLog(Log())
    assert guarded.get("x") == "x"
    with pytest.raises(rerun.RerunError, match="tried to write"):
        guarded.append([])
    with pytest.raises(rerun.RerunError, match="tried to write"):
        guarded.append_then([], lambda ok, error: None)
