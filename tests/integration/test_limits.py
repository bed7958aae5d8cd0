"""Bounded work on the embedded default: runaway playbooks stop at a limit with a failure
naming it and its setting, every execution of the tree ends, and a cancel reaches every
descendant of a tree of any depth."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from noetl_core import embedded, settings
from noetl_core.engine import entries as E
from noetl_core.engine.entries import Entry
from noetl_core.playbook import load_file, load_text
from noetl_core.runtime import replay
from noetl_core.runtime.block import Runtime
from noetl_core.view import print_status

pytestmark = pytest.mark.integration


@pytest.fixture
def limited(home: Path) -> Iterator[Callable[..., Runtime]]:
    """An embedded runtime with the settings given (`NOETL_MAX_...="4"`)."""
    with contextlib.ExitStack() as stack:

        def make(**env: str) -> Runtime:
            conf = settings.load({"NOETL_HOME": str(home), "NOETL_SQLITE_SYNC": "NORMAL", **env})
            return stack.enter_context(embedded.runtime(conf))

        yield make


def starts(rt: Runtime) -> list[Entry]:
    """Every execution the runtime recorded, as its start entries (a listener's list)."""
    seen: list[Entry] = []
    rt.subscribe(lambda batch: seen.extend(e for e in batch if e.kind == "start"))
    return seen


def terminal_statuses(rt: Runtime, started: Sequence[Entry]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for start in started:
        terminal = rt.wait(start.execution_id, 30)
        status = "running" if terminal is None else str(terminal.body["status"])
        counts[status] = counts.get(status, 0) + 1
    return counts


CYCLE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: cycle}
workflow:
  - step: start
    tool: {kind: noop}
    next: ping
  - step: ping
    tool: {kind: noop}
    next: pong
  - step: pong
    tool: {kind: noop}
    next: ping
"""


def test_an_endless_cycle_stops_at_the_path_limit(limited: Callable[..., Runtime]) -> None:
    rt = limited(NOETL_MAX_PATH_BLOCKS="40")
    execution_id = rt.start(load_text(CYCLE), {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert (error["kind"], error["code"]) == ("limit", "max_path_blocks")
    assert error["message"] == (
        "step pong: not run: 40 blocks ran before it on this path, "
        "the limit NOETL_MAX_PATH_BLOCKS=40"
    )
    done = rt.log.find(execution_id, "done")
    assert len([d for d in done if d.body["status"] == "ok"]) == 40
    _, checks = replay.verify(rt, execution_id)
    assert checks and all(c.ok for c in checks), [c.detail for c in checks if not c.ok]


def test_the_path_depth_travels_in_the_frame(rt: Runtime) -> None:
    execution_id = rt.start(load_text(CYCLE.replace("next: ping\n", "next: end\n", 1)), {})
    assert rt.wait(execution_id, 30) is not None
    issued = rt.log.find(execution_id, "issue")
    assert [i.body["command"]["frame"]["depth"] for i in issued] == [0]


RECURSE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: recurse, path: tests/recurse}
workflow:
  - step: start
    tool: {kind: noop}
    next: again
  - step: again
    tool: {kind: playbook, path: tests/recurse}
"""


def test_a_playbook_calling_itself_stops_at_the_depth_limit(
    limited: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = limited(NOETL_MAX_PLAYBOOK_DEPTH="12")
    (tmp_path / "recurse.yaml").write_text(RECURSE)
    started = starts(rt)
    execution_id = rt.start(load_file(tmp_path / "recurse.yaml"), {})
    terminal = rt.wait(execution_id, 60)
    assert terminal is not None and terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert error["code"] == "child_failed"
    assert error["cause"]["code"] == "max_playbook_depth"
    assert error["message"].endswith(
        "failed: step again: a sub-playbook 13 deep passes the limit NOETL_MAX_PLAYBOOK_DEPTH=12"
    )
    assert len(started) == 13  # depths 0..12
    assert terminal_statuses(rt, started) == {"failed": 13}


WIDE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: wide}
workflow:
  - step: start
    loop: {in: "{{ range(10) | list }}", iterator: i, spec: {mode: sequential}}
    tool: {kind: playbook, path: tests/leaf, input: {i: "{{ i }}"}}
"""
LEAF = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: leaf, path: tests/leaf}
workflow:
  - step: start
    tool: {kind: noop}
"""


def test_a_wide_parent_stops_at_the_children_limit(
    limited: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = limited(NOETL_MAX_CHILDREN="4")
    (tmp_path / "leaf.yaml").write_text(LEAF)
    (tmp_path / "wide.yaml").write_text(WIDE)
    started = starts(rt)
    execution_id = rt.start(load_file(tmp_path / "wide.yaml"), {})
    terminal = rt.wait(execution_id, 60)
    assert terminal is not None and terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert (error["kind"], error["code"]) == ("limit", "max_children")
    assert error["message"] == (
        f"step start: execution {execution_id} started 4 sub-playbooks, "
        "the limit NOETL_MAX_CHILDREN=4"
    )
    assert terminal_statuses(rt, started) == {"failed": 1, "completed": 4}


DEEP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: deep, path: tests/deep}
workload: {n: 0, leaf: 1}
workflow:
  - step: start
    tool:
      kind: playbook
      path: "{{ 'tests/deep' if workload.n < workload.leaf else 'tests/rest' }}"
      input: {n: "{{ workload.n + 1 }}", leaf: "{{ workload.leaf }}"}
"""
REST = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: rest, path: tests/rest}
workflow:
  - step: start
    tool: {kind: wait, seconds: 600}
"""


def deep_tree(folder: Path) -> Path:
    """`deep.yaml`: each generation starts the next, the last one a child that waits."""
    (folder / "rest.yaml").write_text(REST)
    (folder / "deep.yaml").write_text(DEEP)
    return folder / "deep.yaml"


def test_cancel_reaches_every_descendant_of_a_tree_deeper_than_the_stack(
    limited: Callable[..., Runtime], tmp_path: Path
) -> None:
    """1,500 generations, past Python's recursion limit: the cancel walks the tree with a
    work list, and each child's end completes its parent's step from a queue."""
    rt = limited(NOETL_MAX_PLAYBOOK_DEPTH="2000")
    depth = 1500
    top = deep_tree(tmp_path)
    started = starts(rt)
    waiting = threading.Event()
    rt.subscribe(
        lambda batch: any(e.kind == "pending" and "wait" in e.body for e in batch) and waiting.set()
    )
    root = rt.start(load_file(top), {"leaf": depth})
    assert waiting.wait(240), f"the tree grew to {len(started)} executions only"
    assert len(started) == depth + 2  # generations 0..depth, and the waiting one

    rt.cancel(root)
    assert terminal_statuses(rt, started) == {"cancelled": depth + 2}
    leaf = next(s for s in started if s.body["playbook"]["path"] == "tests/rest")
    assert rt.log.get(E.cancel_id(leaf.execution_id)) is not None


SLOW = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow}
workflow:
  - step: start
    tool:
      kind: python
      input: {flag: "{{ workload.flag }}"}
      code: |
        import pathlib, time
        pathlib.Path(flag).touch()
        time.sleep(2)
"""


def test_status_says_cancelling_until_what_runs_has_ended(
    rt: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = tmp_path / "running"
    execution_id = rt.start(load_text(SLOW), {"flag": str(flag)})
    deadline = time.monotonic() + 10
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    rt.cancel(execution_id)
    capsys.readouterr()
    print_status(rt, execution_id)
    print_status(rt, None)
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == f"execution {execution_id}: cancelling"
    assert shown[-1].split()[0] == execution_id and shown[-1].split()[3] == "cancelling"
    terminal = rt.wait(execution_id, 10)
    assert terminal is not None and terminal.body["status"] == "cancelled"
    print_status(rt, execution_id)
    assert capsys.readouterr().out.splitlines()[0] == f"execution {execution_id}: cancelled"


def test_a_child_starting_while_its_parent_is_cancelled_is_cancelled_too(
    rt: Runtime, tmp_path: Path
) -> None:
    """The cancel comes between the parent's pending entry and the child's start: it
    finds no child to cancel, so the step that starts the child cancels it."""
    top = deep_tree(tmp_path)
    started = starts(rt)
    real_start = rt.start

    def cancel_first(loaded: Any, workload: Any = None, **kw: Any) -> str:
        if kw.get("parent"):
            rt.cancel(kw["parent"]["execution_id"])
        return real_start(loaded, workload, **kw)

    rt.start = cancel_first  # type: ignore[method-assign]
    root = rt.start(load_file(top), {"leaf": 0})
    assert rt.wait(root, 30) is not None
    assert len(started) == 2
    assert terminal_statuses(rt, started) == {"cancelled": 2}
