"""Every example playbook through the `noetl` CLI in a subprocess: result, replay, events.

Each example runs once per module (in one temporary NOETL_HOME) with `noetl run FILE
--json`; the other tests of an example read that execution back with `noetl replay`,
`noetl events` and `noetl status`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

# The result each example's logic gives with its own workload defaults.
EXPECTED: dict[str, Any] = {
    # sum(2 * i for i in range(1_000_000)) == 999_999_000_000; the table is handed over
    # by reference, stored as Arrow.
    "big_table": {
        "rows": 1_000_000,
        "value_sum": 999_999_000_000,
        "stored_as": "arrow",
        "ref_rows": 1_000_000,
    },
    "child_sum": {"total": 6, "has_parent": False},
    # amount 250 > limit 100: the first exclusive arc (review) wins.
    "conditional_routing": {"route": "manual", "decided_by": "reviewer"},
    # base 10: double 20 + square 100; negate is not taken and the join runs once.
    "fan_out_join": {"sum": 120, "flags": [True, True]},
    "hello_world": {"text": "HELLO, WORLD!", "length": 13},
    # The parallel loop's results come back in iteration order, not finishing order.
    "loops": {
        "squares": [9, 1, 16, 1, 25, 81, 4, 36],
        "sum": 173,
        "order": [0, 1, 2, 3, 4, 5, 6, 7],
    },
    # Four pages of 10, 20, 30, 40; `break` skips the task that would raise.
    "pipeline": {"count": 4, "total": 100},
    # 100 / 0 fails `start`; its call.error arc routes to `recover`.
    "recovery": {
        "value": None,
        "recovery": {"recovered_from": "start", "code": "ZeroDivisionError"},
    },
    # Two ConnectionErrors, then success on the third call.
    "retry": {"succeeded_on_call": 3},
    "scheduled_report": {"report": "manual", "scheduled": False},
    # The child sums 10 + 20 + 30 + 40 and sees its parent.
    "sub_playbook": {"child_total": 100, "child_saw_parent": True},
}

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def noetl(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`noetl ARGS` in a subprocess with NOETL_HOME=home, from the repository root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    env.update(NOETL_HOME=str(home), PYTHONUTF8="1")
    return subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def run_json(home: Path, *args: str) -> dict[str, Any]:
    done = noetl(home, "run", *args, "--json")
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    out: dict[str, Any] = json.loads(done.stdout)
    return out


@pytest.fixture(scope="module")
def example_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("noetl-home")


_RUNS: dict[Path, dict[str, Any]] = {}


@pytest.fixture
def example_run(example_home: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The example's `noetl run --json` output (run once per module, then reused)."""
    file: Path = request.param
    if file.stem not in EXPECTED:
        pytest.fail(f"{file.name}: add its expected result to EXPECTED in {Path(__file__).name}")
    if file not in _RUNS:
        done = noetl(example_home, "run", str(file.relative_to(ROOT)), "--json")
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert done.stderr == "", "--json prints no progress lines"
        _RUNS[file] = json.loads(done.stdout)
    return _RUNS[file]


def _ids(files: list[Path]) -> list[str]:
    return [f.stem for f in files]


def test_every_example_has_an_expected_result() -> None:
    assert EXAMPLE_FILES, f"no example playbooks under {EXAMPLES}"
    assert sorted(_ids(EXAMPLE_FILES)) == sorted(EXPECTED)


@pytest.mark.parametrize("example_run", EXAMPLE_FILES, ids=_ids(EXAMPLE_FILES), indirect=True)
def test_example_completes_with_the_expected_result(
    example_run: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.id
    assert example_run["status"] == "completed"
    assert "error" not in example_run
    assert re.fullmatch(r"[1-9][0-9]{18}", example_run["execution_id"])  # a SQL BIGINT
    assert example_run["result"] == EXPECTED[name]


@pytest.mark.parametrize("example_run", EXAMPLE_FILES, ids=_ids(EXAMPLE_FILES), indirect=True)
def test_example_replay_reproduces_every_decision(
    example_run: dict[str, Any], example_home: Path
) -> None:
    execution_id = example_run["execution_id"]
    done = noetl(example_home, "replay", execution_id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"execution {execution_id} rebuilt from" in done.stdout
    assert "state: completed; in flight: 0 command(s), 0 loop(s), 0 arrival(s)" in done.stdout
    found = re.search(r"decisions checked: (\d+), reproduced: (\d+)", done.stdout)
    assert found is not None, done.stdout
    checked, reproduced = int(found[1]), int(found[2])
    assert checked > 0
    assert reproduced == checked
    assert "MISMATCH" not in done.stdout


@pytest.mark.parametrize("example_run", EXAMPLE_FILES, ids=_ids(EXAMPLE_FILES), indirect=True)
def test_example_events_and_status_say_completed(
    example_run: dict[str, Any], example_home: Path
) -> None:
    execution_id = example_run["execution_id"]
    events = noetl(example_home, "events", execution_id)
    assert events.returncode == 0, events.stderr
    header, *lines = events.stdout.splitlines()
    assert header.split()[:4] == ["#", "since", "start", "event"]
    assert "playbook.initialized" in lines[0]
    assert re.search(r"\bplaybook\.completed\b.*\bcompleted$", lines[-1]), lines[-1]
    assert not any("playbook.failed" in line for line in lines)

    as_json = noetl(example_home, "events", execution_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    types = [json.loads(line)["type"] for line in as_json.stdout.splitlines()]
    assert len(types) == len(lines)
    assert types[-1] == "playbook.completed"

    status = noetl(example_home, "status", execution_id)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == f"execution {execution_id}: completed"
    assert "in flight 0 command(s), 0 loop(s), 0 join arrival(s)" in status.stdout

    listing = noetl(example_home, "status")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith(execution_id))
    assert row.split()[3] == "completed"


def test_sub_playbook_child_is_its_own_execution_with_a_parent(tmp_path: Path) -> None:
    parent = run_json(tmp_path, "playbooks/examples/sub_playbook.yaml")
    listing = noetl(tmp_path, "status").stdout.splitlines()
    child = next(line.split()[0] for line in listing if line.endswith("examples/child_sum"))
    status = noetl(tmp_path, "status", child)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == f"execution {child}: completed"
    assert f"parent    {parent['execution_id']}" in status.stdout
    replay = noetl(tmp_path, "replay", child)
    assert replay.returncode == 0, replay.stdout


def test_replay_at_an_event_shows_the_state_then(tmp_path: Path) -> None:
    execution_id = run_json(tmp_path, "playbooks/examples/hello_world.yaml")["execution_id"]
    done = noetl(tmp_path, "replay", execution_id, "--at", "10")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(up to event 10)" in done.stdout
    assert "state: running; in flight: 1 command(s)" in done.stdout
    assert "shout" not in done.stdout


# -- workload overrides -------------------------------------------------------------------


def test_set_overrides_a_workload_value(tmp_path: Path) -> None:
    out = run_json(tmp_path, "playbooks/examples/hello_world.yaml", "--set", "name=Ada")
    assert out["status"] == "completed"
    assert out["result"] == {"text": "HELLO, ADA!", "length": 11}


def test_set_values_are_parsed_as_json(tmp_path: Path) -> None:
    out = run_json(tmp_path, "playbooks/examples/loops.yaml", "--set", "numbers=[1, 2, 3]")
    assert out["result"] == {"squares": [1, 4, 9], "sum": 14, "order": [0, 1, 2]}


def test_workload_json_overrides_several_values(tmp_path: Path) -> None:
    workload = json.dumps({"name": "Bob", "message": "Hi"})
    out = run_json(tmp_path, "playbooks/examples/hello_world.yaml", "--workload", workload)
    assert out["result"] == {"text": "HI, BOB!", "length": 8}


def test_workload_from_a_file_and_set_on_top(tmp_path: Path) -> None:
    file = tmp_path / "workload.json"
    file.write_text(json.dumps({"name": "Cy", "message": "Hey"}), encoding="utf-8")
    home = tmp_path / "home"
    out = run_json(home, "playbooks/examples/hello_world.yaml", "--workload", f"@{file}")
    assert out["result"] == {"text": "HEY, CY!", "length": 8}
    out = run_json(
        home,
        "playbooks/examples/hello_world.yaml",
        "--workload",
        f"@{file}",
        "--set",
        "message=Yo",
    )
    assert out["result"] == {"text": "YO, CY!", "length": 7}


def test_workload_overrides_reach_a_sub_playbook(tmp_path: Path) -> None:
    out = run_json(tmp_path, "playbooks/examples/sub_playbook.yaml", "--set", "numbers=[5, 6]")
    assert out["result"] == {"child_total": 11, "child_saw_parent": True}


# -- what a person sees -------------------------------------------------------------------


def test_run_prints_live_step_lines_on_stderr(tmp_path: Path) -> None:
    done = noetl(tmp_path, "run", "playbooks/examples/hello_world.yaml", "--set", "name=Ada")
    assert done.returncode == 0, done.stderr
    err = done.stderr.splitlines()
    execution_id = err[0].split()[1].rstrip(":")
    assert err[0] == (
        f"execution {execution_id}: examples/hello_world (playbooks/examples/hello_world.yaml)"
    )
    steps = [line.split()[:2] for line in err[1:-1]]
    assert steps == [["✓", "start"], ["✓", "greet"], ["✓", "shout"]]
    assert all(re.search(r" \d+\.\d ms$", line) for line in err[1:-1])
    assert err[-1] == f"  = {execution_id} completed"
    assert done.stdout.splitlines()[0] == "status: completed"
    assert json.loads(done.stdout.split("result:\n", 1)[1]) == {
        "text": "HELLO, ADA!",
        "length": 11,
    }


def test_run_shows_retries_and_loop_ends_live(tmp_path: Path) -> None:
    retry = noetl(tmp_path, "run", "playbooks/examples/retry.yaml")
    assert retry.returncode == 0, retry.stderr
    assert "  ! start attempt 1 failed (step start: ConnectionError" in retry.stderr
    assert "  ! start attempt 2 failed (step start: ConnectionError" in retry.stderr
    assert "  ✓ start " in retry.stderr
    loops = noetl(tmp_path, "run", "playbooks/examples/loops.yaml")
    assert loops.returncode == 0, loops.stderr
    assert "  ✓ start loop done" in loops.stderr
    assert "  ✓ squares loop done" in loops.stderr


def test_run_shows_the_start_of_a_retried_attempt_live(tmp_path: Path) -> None:
    retry = noetl(tmp_path, "run", "playbooks/examples/retry.yaml")
    assert retry.returncode == 0, retry.stderr
    assert "  ↻ start attempt 2" in retry.stderr
    assert "  ↻ start attempt 3" in retry.stderr


def test_replay_shows_ctx_set_on_an_arc(tmp_path: Path) -> None:
    execution_id = run_json(tmp_path, "playbooks/examples/conditional_routing.yaml")["execution_id"]
    done = noetl(tmp_path, "replay", execution_id)
    assert done.returncode == 0, done.stdout
    assert 'ctx: {"route": "manual"}' in done.stdout
