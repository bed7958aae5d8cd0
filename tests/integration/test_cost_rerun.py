"""`noetl cost` and `noetl rerun` through the CLI, in subprocesses, on the embedded
default: the cost's rows add up to its total with the estimates marked; a rerun renders a
block's inputs again from the log, diffs its output, re-resolves secrets without printing
them, and appends nothing to the execution."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.integration

SECRET = "rerun-SECRET-4b1e9c"

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: rerun_me}
workload: {path: "", n: 2}
keychain:
  - {name: envsecret, kind: secrets, provider: env, map: {key: NOETL_RERUN_KEY}}
workflow:
  - step: start
    tool: {kind: python, input: {n: "{{ n }}"}, code: "result = {'double': n * 2}"}
    next: read
  - step: read
    tool:
      kind: python
      input: {path: "{{ path }}", d: "{{ start.double }}"}
      code: |
        result = {"text": open(path).read(), "d": d}
    next: secret
  - step: secret
    tool:
      kind: python
      input: {key: "{{ keychain.envsecret.key }}"}
      code: |
        print("the key is", key)
        result = {"key": key, "size": len(key)}
"""


def noetl(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    return subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env={**base, "NOETL_HOME": str(home), "PYTHONUTF8": "1", **env},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def entry_count(home: Path, execution_id: str) -> tuple[int, int]:
    """(the execution's entries, all entries) in the embedded log."""
    with sqlite3.connect(home / "events.sqlite") as db:
        mine = db.execute("SELECT COUNT(*) FROM entries WHERE execution_id = ?", (execution_id,))
        count = int(mine.fetchone()[0])
        return count, int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])


def test_cost_rows_add_up_and_estimates_are_marked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run = noetl(home, "run", "playbooks/examples/fan_out_join.yaml", "--json")
    assert run.returncode == 0, run.stderr
    execution_id = json.loads(run.stdout)["execution_id"]

    done = noetl(home, "cost", execution_id, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["target"] == "embedded" and "Google Cloud" in report["priced_as"]
    blocks = [b for b in report["blocks"] if b["row"] == "block"]
    assert len(blocks) >= 3 and all(b["step"] and b["counted"]["invocations"] for b in blocks)
    assert all(b["estimated"]["firestore_reads"] > 0 for b in blocks)
    total = report["total"]
    assert total > 0
    assert math.isclose(sum(b["cost"] for b in report["blocks"]), total, rel_tol=1e-9)
    assert math.isclose(sum(line["cost"] for line in report["lines"]), total, rel_tol=1e-9)
    reads = [line for line in report["lines"] if line["item"] == "firestore_reads"]
    assert reads and all(line["estimated"] for line in reads)
    writes = sum(b["counted"].get("firestore_writes", 0) for b in report["blocks"])
    assert writes >= sum(b["entries"] for b in report["blocks"])

    text = noetl(home, "cost", execution_id)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any("document reads" in line and line.endswith("[estimated]") for line in lines)
    assert any("would cost on Google Cloud" in line for line in lines)
    for block in blocks:
        assert any(line.strip().startswith(block["step"]) for line in lines)
    assert f"total: ${total:.8f}" in text.stdout


@pytest.fixture
def ran(tmp_path: Path) -> tuple[Path, Path, str, Path]:
    home = tmp_path / "home"
    data = tmp_path / "data.txt"
    data.write_text("first\n")
    file = tmp_path / "rerun_me.yaml"
    file.write_text(textwrap.dedent(PLAYBOOK).lstrip())
    run = noetl(home, "run", str(file), "--set", f"path={data}", "--json", NOETL_RERUN_KEY=SECRET)
    assert run.returncode == 0, run.stderr + run.stdout
    assert SECRET not in run.stdout + run.stderr
    return home, data, json.loads(run.stdout)["execution_id"], file


def test_rerun_of_a_python_step_gives_the_same_output(ran: tuple[Path, Path, str, Path]) -> None:
    home, _, execution_id, _ = ran
    before = entry_count(home, execution_id)
    done = noetl(home, "rerun", execution_id, "start")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "same output"
    done = noetl(home, "rerun", execution_id, "read", "--attempt", "1")
    assert done.returncode == 0, done.stderr
    assert "same output" in done.stdout
    assert entry_count(home, execution_id) == before


def test_rerun_shows_what_changed(ran: tuple[Path, Path, str, Path]) -> None:
    home, data, execution_id, _ = ran
    before = entry_count(home, execution_id)
    data.write_text("second\n")
    done = noetl(home, "rerun", execution_id, "read")
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "--- recorded (attempt 1)" in out and "+++ rerun" in out
    assert '-  "text": "first\\n"' in out and '+  "text": "second\\n"' in out
    assert '"d": 4' in out  # rendered from start's recorded result, unchanged
    assert entry_count(home, execution_id) == before


def test_rerun_resolves_secrets_again_and_never_prints_them(
    ran: tuple[Path, Path, str, Path],
) -> None:
    home, _, execution_id, _ = ran
    before = entry_count(home, execution_id)
    same = noetl(home, "rerun", execution_id, "secret", NOETL_RERUN_KEY=SECRET)
    assert same.returncode == 0, same.stderr
    assert "same output" in same.stdout
    assert SECRET not in same.stdout + same.stderr
    # another value: resolved again (the size differs), still never printed
    other = SECRET + "-rotated"
    changed = noetl(home, "rerun", execution_id, "secret", NOETL_RERUN_KEY=other)
    assert changed.returncode == 1, changed.stderr
    assert f'+  "size": {len(other)}' in changed.stdout
    assert SECRET not in changed.stdout + changed.stderr
    assert other not in changed.stdout + changed.stderr
    assert entry_count(home, execution_id) == before


def test_unknown_step_or_attempt_is_one_clear_line(ran: tuple[Path, Path, str, Path]) -> None:
    home, _, execution_id, _ = ran
    before = entry_count(home, execution_id)
    step = noetl(home, "rerun", execution_id, "nope")
    assert step.returncode == 1 and step.stdout == ""
    assert step.stderr.count("\n") == 1 and "no step 'nope'" in step.stderr
    attempt = noetl(home, "rerun", execution_id, "read", "--attempt", "3")
    assert attempt.returncode == 1 and attempt.stdout == ""
    assert attempt.stderr.count("\n") == 1
    assert "no recorded attempt 3" in attempt.stderr and "attempts: 1" in attempt.stderr
    assert entry_count(home, execution_id) == before


def test_retried_attempts_are_priced_and_rerun_by_number(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run = noetl(home, "run", "playbooks/examples/retry.yaml", "--json")
    assert run.returncode == 0, run.stderr
    execution_id = json.loads(run.stdout)["execution_id"]
    before = entry_count(home, execution_id)
    report = json.loads(noetl(home, "cost", execution_id, "--json").stdout)
    attempts = [b for b in report["blocks"] if b["step"] == "start"]
    assert [b["attempt"] for b in attempts] == [1, 2, 3]
    # each retry: a Cloud Task created and its push delivery
    assert [b["counted"].get("tasks_operations", 0) for b in attempts] == [2, 2, 0]
    # the step counts its calls in a file (gone after its success): attempt 3 saw 2
    counter = Path(tempfile.gettempdir()) / f"noetl-flaky-{execution_id}"
    counter.write_text("2")
    done = noetl(home, "rerun", execution_id, "start", "--attempt", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "attempt 3" in done.stdout and "same output" in done.stdout
    assert not counter.exists()
    # from the state attempt 1 saw, it fails as attempt 1 did
    again = noetl(home, "rerun", execution_id, "start", "--attempt", "1")
    assert again.returncode == 0 and "same output" in again.stdout
    counter.unlink()
    assert entry_count(home, execution_id) == before
