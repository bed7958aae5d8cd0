"""The block protocol on the embedded runtime: duplicates, crashes, concurrency, joins,
cancellation, children, lazy hydration."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from noetl_core import embedded, settings
from noetl_core.engine import entries as E
from noetl_core.playbook import load_file, load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime
from noetl_core.runtime.ports import Note

from ..conftest import EXAMPLES

pytestmark = pytest.mark.integration

FAN_IN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: fan_in}
workflow:
  - step: start
    tool: {kind: noop}
    next:
      spec: {mode: inclusive}
      arcs: [{step: b0}, {step: b1}, {step: b2}, {step: b3}, {step: b4}, {step: b5}]
"""
for _i in range(6):
    FAN_IN += f"""  - step: b{_i}
    tool: {{kind: python, code: "result = {_i}"}}
    set: {{ctx.b{_i}: {_i}}}
    next: join
"""
FAN_IN += """  - step: join
    tool:
      kind: python
      input: {xs: "{{ [b0, b1, b2, b3, b4, b5] }}", ctx_keys: "{{ ctx | list | sort }}"}
      code: "result = {'sum': sum(xs), 'keys': ctx_keys}"
"""


def run(rt: Runtime, text: str, workload: dict[str, Any] | None = None, **kw: Any) -> Any:
    execution_id = rt.start(load_text(text), workload or {}, **kw)
    terminal = rt.wait(execution_id, timeout=60)
    assert terminal is not None, f"execution {execution_id} did not finish"
    return execution_id, terminal


def result_of(rt: Runtime, terminal: Any) -> Any:
    return payloads.load(rt.payloads, terminal.body["result"])


def ids_of(rt: Runtime, execution_id: str) -> list[str]:
    return sorted(e.id for e in rt.log.entries(execution_id))


def test_join_runs_once_when_branches_finish_together(rt: Runtime) -> None:
    for _ in range(5):
        execution_id, terminal = run(rt, FAN_IN)
        assert terminal.body["status"] == "completed"
        assert result_of(rt, terminal) == {
            "sum": 15,
            "keys": ["b0", "b1", "b2", "b3", "b4", "b5"],
        }
        joins = [e for e in rt.log.find(execution_id, "issue", step="join")]
        assert len(joins) == 1 and len(joins[0].body["arrivals"]) == 6


def test_every_delivery_twice_gives_the_same_log(tmp_path: Path) -> None:
    logs = []
    for doubled in (False, True):
        conf = settings.load({"NOETL_HOME": str(tmp_path / str(doubled))})
        with embedded.runtime(conf) as rt:
            if doubled:
                publish = rt.bus.publish

                def twice(notes: Sequence[Note], publish: Any = publish) -> None:
                    publish([*notes, *notes])

                rt.bus.publish = twice  # type: ignore[method-assign]
            execution_id, terminal = run(rt, FAN_IN, execution_id="E-fixed")
            assert terminal.body["status"] == "completed"
            logs.append(ids_of(rt, execution_id))
    assert logs[0] == logs[1]


def test_crash_between_record_and_publish_is_repaired_by_redelivery(rt: Runtime) -> None:
    """The block of `greet` records, then its worker dies before publishing `shout`."""
    publish = rt.bus.publish
    dropped: list[Note] = []
    lock = threading.Lock()

    def lossy(notes: Sequence[Note]) -> None:
        with lock:
            for note in notes:
                command = rt.log.get(E.issue_id(note.execution_id, note.command_id))
                if command is not None and command.step == "shout" and not dropped:
                    dropped.append(note)
                    notes = [n for n in notes if n is not note]
        publish(notes)

    rt.bus.publish = lossy  # type: ignore[method-assign]
    execution_id = rt.start(load_file(EXAMPLES / "hello_world.yaml"), {})
    assert rt.wait(execution_id, timeout=1) is None  # stuck: shout was never published
    assert len(dropped) == 1
    greet = next(e for e in rt.log.entries(execution_id) if e.kind == "done" and e.step == "greet")
    rt.handle(Note(execution_id, greet.command_id or ""))  # redelivery of greet
    terminal = rt.wait(execution_id, timeout=30)
    assert terminal is not None and terminal.body["status"] == "completed"
    dones = [e.command_id for e in rt.log.entries(execution_id) if e.kind == "done"]
    assert len(dones) == len(set(dones)) == 3


def test_parallel_iterations_really_overlap_and_respect_max_in_flight(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: overlap}
workload: {items: [0, 1, 2, 3, 4, 5, 6, 7, 8]}
workflow:
  - step: start
    loop: {in: "{{ items }}", iterator: x, spec: {mode: parallel, max_in_flight: 3}}
    tool:
      kind: python
      input: {x: "{{ x }}"}
      code: |
        import time
        began = time.monotonic()
        time.sleep(0.15)
        result = {"x": x, "began": began, "ended": time.monotonic()}
"""
    _, terminal = run(rt, text)
    rows = result_of(rt, terminal)
    assert [r["x"] for r in rows] == list(range(9))
    points = sorted([(r["began"], 1) for r in rows] + [(r["ended"], -1) for r in rows])
    running = peak = 0
    for _, change in points:
        running += change
        peak = max(peak, running)
    assert peak == 3


def test_thousand_iterations_with_max_in_flight_fifty(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: wide}
workflow:
  - step: start
    loop: {in: "{{ range(1000) | list }}", iterator: i, spec: {mode: parallel, max_in_flight: 50}}
    tool: {kind: python, input: {i: "{{ i }}"}, code: "result = i * 3"}
    next: total
  - step: total
    tool:
      kind: python
      input: {xs: "{{ start }}"}
      code: "result = {'n': len(xs), 'ordered': xs == [i * 3 for i in range(1000)]}"
"""
    execution_id, terminal = run(rt, text)
    assert result_of(rt, terminal) == {"n": 1000, "ordered": True}
    assert len(rt.log.find(execution_id, "loopdone")) == 1
    assert len(rt.log.find(execution_id, "issue", step="total")) == 1


def test_cancel_stops_a_retry_waiting_on_its_timer(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: waits}
workflow:
  - step: start
    tool:
      kind: python
      code: "raise ConnectionError('down')"
      spec:
        policy:
          rules:
            - then: {do: retry, attempts: 5, delay: 0.3}
              is_else: true
"""
    execution_id = rt.start(load_text(text), {})
    deadline = time.monotonic() + 10
    while not rt.log.find(execution_id, "attempt") and time.monotonic() < deadline:
        time.sleep(0.01)
    deadline = time.monotonic() + 5  # the block that recorded the attempt is returning
    while rt.bus.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rt.bus.busy == 0, "a retry delay must not hold a worker"
    assert len(rt.log.find(execution_id, "attempt")) == 1  # still waiting on its timer
    rt.cancel(execution_id)
    terminal = rt.wait(execution_id, timeout=10)
    assert terminal is not None and terminal.body["status"] == "cancelled"
    attempts = rt.log.find(execution_id, "attempt")
    assert len(attempts) == 1  # attempt 2 was delivered after the cancel and closed unrun
    done = rt.log.find(execution_id, "done")
    assert [d.body["status"] for d in done] == ["skipped"]


def test_no_worker_waits_for_a_child_and_cancel_reaches_it(rt: Runtime, tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(
        """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow_child, path: tests/slow_child}
workflow:
  - step: start
    loop: {in: "{{ range(40) | list }}", iterator: i, spec: {mode: sequential}}
    tool: {kind: python, code: "import time; time.sleep(0.05)"}
"""
    )
    parent = tmp_path / "parent.yaml"
    parent.write_text(
        """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: parent}
workflow:
  - step: start
    tool: {kind: playbook, path: tests/slow_child}
"""
    )
    execution_id = rt.start(load_file(parent), {})
    deadline = time.monotonic() + 10
    while not rt.log.find(execution_id, "pending") and time.monotonic() < deadline:
        time.sleep(0.01)
    pending = rt.log.find(execution_id, "pending")
    assert len(pending) == 1
    child_id = pending[0].body["child_execution_id"]
    time.sleep(0.2)
    assert rt.bus.busy <= 1  # only the child's current iteration, never the parent
    rt.cancel(execution_id)
    terminal = rt.wait(execution_id, timeout=10)
    assert terminal is not None and terminal.body["status"] == "cancelled"
    child_terminal = rt.wait(child_id, timeout=10)
    assert child_terminal is not None and child_terminal.body["status"] == "cancelled"
    ran = len([e for e in rt.log.find(child_id, "done") if e.body["status"] == "ok"])
    assert ran < 40


def test_a_block_loads_only_the_results_its_templates_name(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: lazy}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'blob': 'a' * 100000}"}
    next: second
  - step: second
    tool: {kind: python, code: "result = {'blob': 'b' * 100000}"}
    next: third
  - step: third
    tool: {kind: python, input: {n: "{{ second.blob | length }}"}, code: "result = n"}
"""
    reads: list[str] = []
    get = rt.payloads.get

    def counting(ref: dict[str, Any]) -> Any:
        reads.append(ref["key"])
        return get(ref)

    rt.payloads.get = counting  # type: ignore[method-assign]
    _, terminal = run(rt, text)
    assert result_of(rt, terminal) == 100000
    assert len(reads) == 1 and "/second/" in reads[0]


def test_a_halted_execution_closes_later_commands_unrun(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: drains}
workflow:
  - step: start
    tool: {kind: noop}
    next:
      spec: {mode: inclusive}
      arcs: [{step: boom}, {step: slow}]
  - step: boom
    tool: {kind: python, code: "import time; time.sleep(0.1); raise ValueError('no')"}
  - step: slow
    tool: {kind: python, code: "import time; time.sleep(0.3); result = 1"}
    next: after
  - step: after
    tool: {kind: python, code: "result = 2"}
"""
    execution_id, terminal = run(rt, text)
    assert terminal.body["status"] == "failed"
    assert "ValueError" in terminal.body["error"]["message"]
    assert terminal.body["error"]["step"] == "boom"
    statuses = {e.step: e.body["status"] for e in rt.log.find(execution_id, "done")}
    assert statuses["slow"] == "ok"  # in flight: drained
    assert "after" not in statuses or statuses["after"] == "skipped"
