"""Nothing lost, nothing stuck, on the embedded default: a `noetl run` process killed at
each block boundary is resumed to the same end as an uninterrupted run, each command
completed once; `noetl serve` repairs interrupted executions on its own; a timeout,
Ctrl-C or a cancel ends the CLI promptly whatever the user code does; python steps with
a timeout are stopped; `sys.exit()` in a step is the step's failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from noetl_core import embedded, settings
from noetl_core.engine import entries as E
from noetl_core.runtime import payloads

from ..conftest import ROOT

pytestmark = pytest.mark.integration

# A fork, a join, a parallel loop and a chain; every tool call appends a line to `marks`.
PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: recoverable}
workload: {marks: "", items: [1, 2, 3]}
workflow:
  - step: start
    tool: {kind: python, input: {m: "{{ marks }}"}, code: "open(m, 'a').write('start\\\\n'); result = 10"}
    next:
      spec: {mode: inclusive}
      arcs: [{step: left}, {step: right}]
  - step: left
    tool: {kind: python, input: {m: "{{ marks }}", s: "{{ start }}"}, code: "open(m, 'a').write('left\\\\n'); result = s + 1"}
    next: joined
  - step: right
    tool: {kind: python, input: {m: "{{ marks }}", s: "{{ start }}"}, code: "open(m, 'a').write('right\\\\n'); result = s + 2"}
    next: joined
  - step: joined
    tool: {kind: python, input: {m: "{{ marks }}", a: "{{ left }}", b: "{{ right }}"}, code: "open(m, 'a').write('joined\\\\n'); result = a + b"}
    next: each
  - step: each
    loop: {in: "{{ items }}", iterator: n, spec: {mode: parallel}}
    tool: {kind: python, input: {m: "{{ marks }}", n: "{{ n }}"}, code: "open(m, 'a').write(f'each {n}\\\\n'); result = n * n"}
    next: last
  - step: last
    tool: {kind: python, input: {m: "{{ marks }}", j: "{{ joined }}", e: "{{ each }}"}, code: "open(m, 'a').write('last\\\\n'); result = {'joined': j, 'each': e}"}
"""
STEPS = ["start", "left", "right", "joined", "each", "last"]
POINTS = ["claimed", "executed", "recorded", "published"]


def noetl(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env={**os.environ, "NOETL_HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def outcome(home: Path, execution_id: str) -> dict[str, Any]:
    """What an execution decided and produced, without its ids: each step's records
    with their results, the steps issued, and the terminal."""
    conf = settings.load({"NOETL_HOME": str(home), "NOETL_SQLITE_SYNC": "NORMAL"})
    with embedded.runtime(conf) as rt:
        entries = rt.log.entries(execution_id)
        done = [e for e in entries if e.kind == "done"]
        terminal = rt.log.get(E.terminal_id(execution_id))
        assert terminal is not None, [e.kind for e in entries]
        results = sorted(
            (
                e.step or "",
                e.body.get("index", -1),
                json.dumps(payloads.load(rt.payloads, e.body["result"])),
            )
            for e in done
            if "result" in e.body
        )
        return {
            "records": results,
            "done per command": Counter(Counter(e.command_id for e in done).values()),
            "issued": sorted(e.step or "" for e in entries if e.kind == "issue"),
            "terminal": (
                terminal.body["status"],
                json.dumps(payloads.load(rt.payloads, terminal.body.get("result"))),
            ),
        }


def run_playbook(home: Path, tmp: Path, env: dict[str, str] | None = None) -> Any:
    playbook = tmp / "recoverable.yaml"
    playbook.write_text(PLAYBOOK)
    marks = tmp / "marks.txt"
    return noetl(home, "run", str(playbook), "--set", f"marks={marks}", env=env), marks


def execution_of(home: Path) -> str:
    conf = settings.load({"NOETL_HOME": str(home)})
    with embedded.runtime(conf) as rt:
        (start,) = rt.log.executions(5)
        return start.execution_id


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("reference")
    done, marks = run_playbook(tmp / "home", tmp)
    assert done.returncode == 0, done.stderr
    found = outcome(tmp / "home", execution_of(tmp / "home"))
    found["marks"] = Counter(marks.read_text().splitlines())
    return found


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("step", ["start", "joined", "each", "last"])
def test_a_run_killed_at_a_block_boundary_resumes_to_the_same_end(
    reference: dict[str, Any], tmp_path: Path, point: str, step: str
) -> None:
    home, fault = tmp_path / "home", tmp_path / "fault"
    fault.write_text(f"{point}:{step}")
    killed, marks = run_playbook(home, tmp_path, {"NOETL_FAULT_FILE": str(fault)})
    assert killed.returncode == 17, killed.stderr  # the process died at the point
    assert not fault.exists()
    execution_id = execution_of(home)
    resumed = noetl(home, "resume", execution_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    found = outcome(home, execution_id)
    ran = Counter(marks.read_text().splitlines())
    for key in ("records", "issued", "terminal"):
        assert found[key] == reference[key], key
    assert found["done per command"] == reference["done per command"] == Counter({1: 9})
    # A tool killed before its record runs again (same attempt: same idempotency key),
    # and so may blocks running beside it in other threads when the process died; every
    # other tool call ran once, and none ran more than twice.
    again = {name: n for name, n in ran.items() if n != reference["marks"][name]}
    assert set(again.values()) <= {2}, again
    allowed = set(BESIDE[step]) | ({step} if point == "executed" and step != "each" else set())
    assert again.keys() <= allowed, again
    if point == "executed" and step != "each":
        assert again == {step: 2}


EACH = ["each 1", "each 2", "each 3"]
# what may be running in other threads when a block of the step reaches a point
BESIDE = {"start": ["left", "right"], "joined": EACH, "each": [*EACH, "last"], "last": []}


def test_noetl_run_says_how_many_executions_can_be_resumed(tmp_path: Path) -> None:
    home, fault = tmp_path / "home", tmp_path / "fault"
    fault.write_text("executed:joined")
    killed, _ = run_playbook(home, tmp_path, {"NOETL_FAULT_FILE": str(fault)})
    assert killed.returncode == 17
    hello = noetl(home, "run", "playbooks/examples/hello_world.yaml")
    assert hello.returncode == 0
    assert "1 interrupted execution(s) can be resumed" in hello.stderr


def test_noetl_serve_repairs_an_interrupted_execution_by_itself(
    reference: dict[str, Any], tmp_path: Path
) -> None:
    from emulators.processes import free_port

    home, fault = tmp_path / "home", tmp_path / "fault"
    fault.write_text("executed:each")
    killed, _ = run_playbook(home, tmp_path, {"NOETL_FAULT_FILE": str(fault)})
    assert killed.returncode == 17
    execution_id = execution_of(home)
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "noetl_core.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "NOETL_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        conf = settings.load({"NOETL_HOME": str(home)})
        deadline = time.monotonic() + 30
        with embedded.runtime(conf) as rt:
            while rt.log.get(E.terminal_id(execution_id)) is None:
                assert time.monotonic() < deadline, "serve did not finish the execution"
                time.sleep(0.1)
    finally:
        serve.send_signal(signal.SIGINT)
        out, _ = serve.communicate(timeout=30)
    assert f"resumed {execution_id}" in out
    assert outcome(home, execution_id)["terminal"] == reference["terminal"]


STUCK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: stuck}
workflow:
  - step: start
    tool: {kind: python, code: "while True:\\n  pass"}
"""


def start_stuck(home: Path, tmp: Path, *args: str) -> subprocess.Popen[str]:
    playbook = tmp / "stuck.yaml"
    playbook.write_text(STUCK)
    return subprocess.Popen(
        [sys.executable, "-m", "noetl_core.cli", "run", str(playbook), *args],
        cwd=ROOT,
        env={**os.environ, "NOETL_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C reaches Python as KeyboardInterrupt even when this test runs in a
        # background job (whose children ignore SIGINT)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_running(home: Path) -> str:
    conf = settings.load({"NOETL_HOME": str(home)})
    deadline = time.monotonic() + 30
    with embedded.runtime(conf) as rt:
        while True:
            found = rt.log.executions(5)
            if found:
                return found[0].execution_id
            assert time.monotonic() < deadline
            time.sleep(0.05)


def ended_status(home: Path, execution_id: str) -> str:
    conf = settings.load({"NOETL_HOME": str(home)})
    with embedded.runtime(conf) as rt:
        terminal = rt.log.get(E.terminal_id(execution_id))
        assert terminal is not None
        return str(terminal.body["status"])


@pytest.mark.parametrize("how", ["timeout", "ctrl-c", "cancel"])
def test_the_cli_ends_promptly_whatever_the_code_does(tmp_path: Path, how: str) -> None:
    home = tmp_path / "home"
    run = start_stuck(home, tmp_path, *(["--timeout", "1"] if how == "timeout" else []))
    execution_id = wait_running(home)
    time.sleep(0.5)  # the step is spinning
    asked = time.monotonic()
    if how == "ctrl-c":
        run.send_signal(signal.SIGINT)
    elif how == "cancel":
        cancelled = noetl(home, "cancel", execution_id)
        assert cancelled.returncode == 0, cancelled.stderr
    _, err = run.communicate(timeout=60)
    took = time.monotonic() - asked
    assert took < 10, took  # `make bench` measures the figure; this bound is generous
    assert run.returncode == {"timeout": 1, "ctrl-c": 130, "cancel": 1}[how], err
    assert ended_status(home, execution_id) == "cancelled"


def test_cancel_ends_an_execution_nobody_runs(tmp_path: Path) -> None:
    home, fault = tmp_path / "home", tmp_path / "fault"
    fault.write_text("executed:joined")
    killed, _ = run_playbook(home, tmp_path, {"NOETL_FAULT_FILE": str(fault)})
    assert killed.returncode == 17
    execution_id = execution_of(home)
    cancelled = noetl(home, "cancel", execution_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    assert ended_status(home, execution_id) == "cancelled"
    again = noetl(home, "cancel", execution_id)
    assert again.returncode == 1 and "already ended (cancelled at " in again.stderr


def test_a_python_step_with_a_timeout_is_stopped_and_its_error_routed(rt: Any) -> None:
    from noetl_core.playbook import load_text

    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: timed}
workflow:
  - step: start
    tool:
      kind: python
      code: "print('spinning')\\nwhile True:\\n  pass"
      spec: {timeout: 0.5}
    next:
      arcs:
        - step: handled
          when: "{{ event.name == 'call.error' and error.code == 'timeout' }}"
  - step: handled
    tool: {kind: python, code: "result = 'timed out and routed'"}
"""
    started = time.monotonic()
    execution_id = rt.start(load_text(text), {})
    terminal = rt.wait(execution_id, 30)
    assert time.monotonic() - started < 10
    assert terminal is not None and terminal.body["status"] == "completed"
    assert rt.load(terminal.body["result"]) == "timed out and routed"
    (failed,) = [e for e in rt.log.entries(execution_id) if e.step == "start" and e.kind == "done"]
    assert failed.body["error"]["code"] == "timeout"
    assert failed.body["error"]["retryable"] is True


@pytest.mark.parametrize(
    ("code", "name"),
    [("import sys; sys.exit(3)", "SystemExit"), ("raise KeyboardInterrupt", "KeyboardInterrupt")],
)
def test_a_base_exception_in_user_code_is_a_recorded_step_failure(
    rt: Any, code: str, name: str
) -> None:
    from noetl_core.playbook import load_text

    text = f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: exits}}
workflow:
  - step: start
    tool: {{kind: python, code: "{code}"}}
"""
    terminal = rt.wait(rt.start(load_text(text), {}), 30)
    assert terminal is not None and terminal.body["status"] == "failed"
    assert terminal.body["error"]["code"] == name
    again = rt.wait(rt.start(load_text(text.replace("exits", "exits_again")), {}), 30)
    assert again is not None  # the worker that ran it is still serving
