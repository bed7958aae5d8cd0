"""Every example playbook, on the embedded default and on the emulator stack, through
`noetl run`: the same result, every decision reproduced by `noetl replay`, the same
events. On the emulator stack the blocks run in the worker function (functions-framework
fed by a Pub/Sub push subscription), the log is Firestore and payloads are in Cloud
Storage (fake-gcs-server)."""

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
from .test_examples import EXPECTED

pytestmark = pytest.mark.integration

FILES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.fixture(params=["embedded", "emulators"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    env["NOETL_HOME"] = str(tmp_path / "home")
    if request.param == "emulators":
        env.update(request.getfixturevalue("gcp_env"))
    return {"name": request.param, "env": env}


def noetl(backend: dict[str, Any], verb: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "noetl_core.cli", verb, "--target", backend["name"], *args]
    return subprocess.run(
        command, cwd=ROOT, env=backend["env"], capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("file", FILES, ids=[f.stem for f in FILES])
def test_example_on_both_backends(file: Path, backend: dict[str, Any]) -> None:
    done = noetl(backend, "run", str(file.relative_to(ROOT)), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "completed"
    assert out["result"] == EXPECTED[file.stem]

    replay = noetl(backend, "replay", out["execution_id"])
    assert replay.returncode == 0, replay.stdout + replay.stderr
    found = re.search(r"decisions checked: (\d+), reproduced: (\d+)", replay.stdout)
    assert found is not None and int(found[1]) > 0 and found[1] == found[2], replay.stdout

    events = noetl(backend, "events", out["execution_id"], "--json")
    parsed = [json.loads(line) for line in events.stdout.splitlines()]
    assert parsed[0]["type"] == "playbook.initialized"
    assert parsed[-1]["type"] == "playbook.completed"
    issued = sorted(e["command_id"] for e in parsed if e["type"] == "command.issued")
    finished = sorted(
        e["command_id"] for e in parsed if e["type"] in ("command.completed", "command.failed")
    )
    assert issued == finished  # each command finished exactly once


def test_a_2_mb_workload_through_noetl_run(backend: dict[str, Any], tmp_path: Path) -> None:
    """On main the emulator stack's start entry was over Firestore's 1 MiB document and
    `noetl run --target emulators` died with a traceback; the embedded default took it."""
    file = tmp_path / "workload.json"
    file.write_text(json.dumps({"name": "w" * 2_000_000}))
    done = noetl(backend, "run", "playbooks/examples/hello_world.yaml", "--workload", f"@{file}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "completed" in done.stdout + done.stderr
