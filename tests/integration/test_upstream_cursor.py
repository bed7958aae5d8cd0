"""Cursor loops (`loop.cursor`, `spec.mode: cursor`) against a real PostgreSQL: slots
claim rows with the playbook's claim statement frame by frame until the queue is
drained, `loop.done` comes once, and the decisions replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

EXAMPLE = EXAMPLES / "data" / "postgres_cursor.yaml"


def noetl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env={**os.environ, "NOETL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def home(tmp_path: Path, postgres_server: Any) -> Path:
    home = tmp_path / "home"
    credential = tmp_path / "pg.json"
    credential.write_text(json.dumps(postgres_server.credential("pg_local")))
    done = noetl(home, "register", "credential", "-f", str(credential))
    assert done.returncode == 0, done.stderr
    return home


def run(home: Path, playbook: Path, *sets: str) -> dict[str, Any]:
    args = [item for s in sets for item in ("--set", s)]
    done = noetl(home, "run", str(playbook), "--json", *args)
    assert done.returncode == 0, done.stderr + done.stdout
    out: dict[str, Any] = json.loads(done.stdout)
    replay = noetl(home, "replay", out["execution_id"])
    assert replay.returncode == 0 and "MISMATCH" not in replay.stdout, replay.stdout
    return out


def events(home: Path, execution_id: str) -> list[dict[str, Any]]:
    done = noetl(home, "events", execution_id, "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_example_drains_the_queue_with_every_row_once(home: Path) -> None:
    queue = f"q_{uuid.uuid4().hex[:8]}"
    out = run(home, EXAMPLE, f"queue={queue}")
    assert out["status"] == "completed", out
    assert out["result"] == {
        "rows_processed": 50,
        "distinct_ids": 50,
        "done": 50,
        "left_over": 0,
        "total": sum(n * n for n in range(1, 51)),
    }
    parsed = events(home, out["execution_id"])
    assert [e["type"] for e in parsed].count("loop.done") == 1
    issued = sorted(e["command_id"] for e in parsed if e["type"] == "command.issued")
    finished = sorted(
        e["command_id"] for e in parsed if e["type"] in ("command.completed", "command.failed")
    )
    assert issued == finished
    frames = [e for e in parsed if e["type"] == "call.done" and e["step"] == "square"]
    # 50 rows, at most 5 a frame: at least 10 frames (and loop.done's call.done)
    assert len(frames) >= 10 + 1


CURSOR = """
apiVersion: noetl.io/v10
kind: Playbook
metadata: {{name: cursor_case}}
workload: {{queue: {queue}}}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_local
      command: |
        CREATE TABLE {queue} (id int PRIMARY KEY, status text NOT NULL DEFAULT 'pending');
        INSERT INTO {queue} (id) SELECT g FROM generate_series(1, {rows}) AS g;
    next: work
  - step: work
    loop:
      cursor:
        kind: postgres
        auth: pg_local
        claim: >-
          UPDATE {queue} SET status = 'claimed'
          WHERE id = (SELECT id FROM {queue} WHERE status = 'pending'
                      ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
          RETURNING id
      iterator: row
      spec: {{mode: cursor, max_in_flight: {slots}}}
    tool:
      kind: python
      input: {{id: "{{{{ iter.row.id }}}}", slot: "{{{{ iter._worker_slot_id }}}}"}}
      code: |
        if id == {fail}:
            raise ValueError(f"row {{id}} is bad")
        result = id
{next}
"""


def write(tmp_path: Path, rows: int, slots: int, fail: int = -1, next: str = "") -> Path:
    queue = f"q_{uuid.uuid4().hex[:8]}"
    text = CURSOR.format(queue=queue, rows=rows, slots=slots, fail=fail, next=next)
    path = tmp_path / "cursor_case.yaml"
    path.write_text(text)
    return path


def test_an_empty_queue_ends_every_slot_and_collects_nothing(home: Path, tmp_path: Path) -> None:
    out = run(home, write(tmp_path, rows=0, slots=3))
    assert out["status"] == "completed"
    assert out["result"] == []


def test_one_row_per_frame_collects_every_result_once(home: Path, tmp_path: Path) -> None:
    out = run(home, write(tmp_path, rows=12, slots=3))
    assert out["status"] == "completed"
    assert sorted(out["result"]) == list(range(1, 13))


def test_a_failed_row_without_recovery_fails_the_execution(home: Path, tmp_path: Path) -> None:
    done = noetl(home, "run", str(write(tmp_path, rows=6, slots=2, fail=4)), "--json")
    assert done.returncode != 0
    out = json.loads(done.stdout)
    assert out["status"] == "failed"
    assert "row 4 is bad" in json.dumps(out["error"])


def test_a_failed_row_with_recovery_arcs_reports_it_at_loop_done(
    home: Path, tmp_path: Path
) -> None:
    arcs = """    next:
      arcs:
        - step: after
          when: "{{ event.name == 'call.error' }}"
          set:
            ctx.failed: "{{ error.failed_iterations | length }}"
            ctx.code: "{{ error.code }}"
            ctx.collected: "{{ work | length }}"
  - step: after
    tool: {kind: python, input: {c: "{{ ctx }}"}, code: "result = c"}
"""
    out = run(home, write(tmp_path, rows=6, slots=2, fail=4, next=arcs))
    assert out["status"] == "completed"
    # the other rows ran; the failed one is in the list as null and named by position
    found = {k: out["result"][k] for k in ("failed", "code", "collected")}
    assert found == {"failed": 1, "code": "ValueError", "collected": 6}


def count(server: Any, queue: str) -> dict[str, int]:
    with server.connect() as conn:
        rows = conn.execute(f"SELECT status, count(*) FROM {queue} GROUP BY status").fetchall()
    return {status: n for status, n in rows}


@pytest.mark.parametrize("point", ["claimed", "executed"])
def test_a_frame_killed_after_its_claim_takes_its_rows_back_on_resume(
    home: Path, tmp_path: Path, postgres_server: Any, point: str
) -> None:
    """The example's claim also takes back rows still claimed with its own
    `cursor.token`: a frame killed between its claim and its record runs again with the
    same token and finds them, so the queue drains completely."""
    queue = f"q_{uuid.uuid4().hex[:8]}"
    fault = tmp_path / "fault"
    fault.write_text(f"{point}:square")
    args = ["run", str(EXAMPLE), "--json", "--set", f"queue={queue}"]
    killed = subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env={**os.environ, "NOETL_HOME": str(home), "NOETL_FAULT_FILE": str(fault)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert killed.returncode == 17, killed.stderr
    assert not fault.exists()
    assert count(postgres_server, queue).get("claimed", 0) >= 1  # rows held by the lost frame
    listed = noetl(home, "resume", "--json")
    assert listed.returncode == 0, listed.stderr + listed.stdout
    assert count(postgres_server, queue) == {"done": 50}


@pytest.fixture(params=["embedded", "emulators"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    env["NOETL_HOME"] = str(tmp_path / "home")
    if request.param == "emulators":
        env.update(request.getfixturevalue("gcp_env"))
    return {"name": request.param, "env": env}


def on(backend: dict[str, Any], verb: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "noetl_core.cli", verb, *args, "--target", backend["name"]]
    return subprocess.run(
        command, cwd=ROOT, env=backend["env"], capture_output=True, text=True, timeout=300
    )


def test_the_example_on_both_backends(
    backend: dict[str, Any], postgres_server: Any, tmp_path: Path
) -> None:
    """On the emulator stack the frames run in the worker function (Pub/Sub push), the
    slots' ends and `loop.done` are Firestore entries, the credential is in Secret
    Manager: the same result, the decisions replayed."""
    credential = tmp_path / "pg.json"
    credential.write_text(json.dumps(postgres_server.credential("pg_local")))
    done = on(backend, "register", "credential", "-f", str(credential))
    assert done.returncode == 0, done.stderr
    queue = f"q_{uuid.uuid4().hex[:8]}"
    done = on(backend, "run", str(EXAMPLE), "--json", "--set", f"queue={queue}")
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "completed", out
    assert out["result"]["rows_processed"] == out["result"]["distinct_ids"] == 50
    assert out["result"]["left_over"] == 0
    replay = on(backend, "replay", out["execution_id"])
    assert replay.returncode == 0 and "MISMATCH" not in replay.stdout, replay.stdout
    assert count(postgres_server, queue) == {"done": 50}


RETRYING = """
apiVersion: noetl.io/v10
kind: Playbook
metadata: {{name: cursor_retry}}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_local
      command: |
        CREATE TABLE {queue} (id int PRIMARY KEY, status text NOT NULL DEFAULT 'pending');
        INSERT INTO {queue} (id) SELECT g FROM generate_series(1, 6) AS g;
    next: work
  - step: work
    loop:
      cursor:
        kind: postgres
        auth: pg_local
        claim: >-
          UPDATE {queue} SET status = 'claimed'
          WHERE id = (SELECT id FROM {queue} WHERE status = 'pending'
                      ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
          RETURNING id
      iterator: row
      spec: {{mode: cursor, max_in_flight: 2, frame: {{max_rows: 3}}}}
    tool:
      - mark:
          kind: python
          input: {{id: "{{{{ iter.row.id }}}}", marks: "{marks}"}}
          code: |
            with open(marks, "a") as fh:
                fh.write(f"mark {{id}}\\n")
            result = id
      - flaky:
          kind: python
          input: {{id: "{{{{ iter.row.id }}}}", marks: "{marks}"}}
          code: |
            with open(marks) as fh:
                seen = fh.read().splitlines().count(f"flaky {{id}}")
            with open(marks, "a") as fh:
                fh.write(f"flaky {{id}}\\n")
            if id in (2, 5) and seen < 2:
                raise RuntimeError(f"row {{id}} not yet")
            result = id * 10
          spec:
            policy:
              rules:
                - when: "{{{{ outcome.status == 'error' }}}}"
                  then: {{do: retry, attempts: 3, delay: 0.05}}
                - else: {{do: continue}}
"""


def test_a_row_retried_by_its_policy_resumes_at_its_task_without_claiming_again(
    home: Path, tmp_path: Path, postgres_server: Any
) -> None:
    queue = f"q_{uuid.uuid4().hex[:8]}"
    marks = tmp_path / "marks.txt"
    marks.write_text("")
    path = tmp_path / "cursor_retry.yaml"
    path.write_text(RETRYING.format(queue=queue, marks=marks))
    out = run(home, path)
    assert out["status"] == "completed", out
    assert sorted(out["result"]) == [10, 20, 30, 40, 50, 60]
    lines = marks.read_text().splitlines()
    assert sorted(line for line in lines if line.startswith("mark")) == [
        f"mark {i}" for i in range(1, 7)
    ]  # the pipeline resumed at the failed task: `mark` ran once per row
    assert lines.count("flaky 2") == lines.count("flaky 5") == 3
    assert count(postgres_server, queue) == {"claimed": 6}  # each row claimed once


def test_the_steps_set_runs_after_each_row_and_reaches_the_next_step(
    home: Path, tmp_path: Path
) -> None:
    tail = """    set: {ctx.last: "{{ row.id }}", ctx.seen: "{{ (ctx.seen or 0) + 1 }}"}
    next: after
  - step: after
    tool: {kind: python, input: {last: "{{ ctx.last }}", n: "{{ work | length }}"},
           code: "result = {'last': last, 'n': n}"}
"""
    out = run(home, write(tmp_path, rows=5, slots=1, next=tail))
    assert out["status"] == "completed", out
    assert out["result"] == {"last": 5, "n": 5}
