"""The README walked as a new user walks it: every `sh` block of its sections, in order,
run by bash in a fresh working directory after `make run` (this checkout's `.venv`), one
shell per block, as pasted. Nothing may print a traceback, and each block must show
what the README says it shows.

Two sections are not run here, each proven elsewhere: the emulator stack (`make
emulators`; `tests/integration/test_stack*.py` and the gateway stack tests start it once
per session) and the deployment (`terraform init` needs the Terraform registry; `make
infra-check` checks the Terraform). The Quick start's `make test` is this suite, and its
`make run` is what made the `.venv` used here (CI runs it on a fresh clone). The data
section's `pip install` line is left out: the dev install already holds those extras.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess

import pytest

from ..conftest import ROOT

README = ROOT / "README.md"
NOT_RUN = ("The Google Cloud runtime on the emulators", "Deploying to Google Cloud")


def sections(text: str) -> dict[str, list[str]]:
    """Heading -> the `sh` blocks under it (before the next heading of any level)."""
    found: dict[str, list[str]] = {}
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        elif line.strip() == "```sh":
            block = []
            i += 1
            while lines[i].strip() != "```":
                block.append(lines[i])
                i += 1
            found.setdefault(heading, []).append("\n".join(block))
        i += 1
    return found


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_readme_names_the_sections_this_walks() -> None:
    found = sections(README.read_text())
    assert list(found) == [
        "Quick start",
        "Using the CLI",
        "Through a gateway",
        "The gateway over HTTP",
        "Data tools and secrets",
        "Callbacks, waits and schedules",
        "The Google Cloud runtime on the emulators",
        "Deploying to Google Cloud",
    ]
    assert found["Quick start"] == [
        "make run    # virtualenv + install, then runs playbooks/examples/hello_world.yaml\n"
        "make test   # dev dependencies, ruff, mypy, and the whole test suite"
    ]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each section's blocks run in order in one fresh directory: heading -> output."""
    pytest.importorskip("psycopg")
    pytest.importorskip("duckdb")
    for port in (8080, 8765):
        if not free(port):
            pytest.fail(f"port {port} is taken: the README's commands use it")
    where = tmp_path_factory.mktemp("readme")
    for name in (".venv", "playbooks"):
        (where / name).symlink_to(ROOT / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOETL_", "PUBSUB_", "FIRESTORE_", "STORAGE_EMULATOR"))
    }
    outputs: dict[str, str] = {}
    for heading, blocks in sections(README.read_text()).items():
        if heading == "Quick start" or heading in NOT_RUN:
            continue
        printed = []
        for block in blocks:
            script = "\n".join(
                line for line in block.splitlines() if not line.startswith(".venv/bin/pip ")
            )
            # the schedules block's `noetl serve` runs until Ctrl-C: here, for 3 seconds
            script = script.replace(
                ".venv/bin/noetl serve --port 8080          #",
                "timeout -s INT 3 .venv/bin/noetl serve --port 8080  #",
            )
            proc = subprocess.Popen(
                ["bash", "-c", script],
                cwd=where,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                out, _ = proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
                pytest.fail(f"{heading}: did not end in 300 s:\n{out}")
            finally:
                with contextlib.suppress(ProcessLookupError):  # what it left running
                    os.killpg(proc.pid, signal.SIGKILL)
            printed.append(f"$ {script}\n{out}")
        outputs[heading] = "\n".join(printed)
    return outputs


def section(walk: dict[str, str], heading: str) -> str:
    out = walk[heading]
    assert "Traceback" not in out, out
    return out


def test_using_the_cli(walk: dict[str, str]) -> None:
    out = section(walk, "Using the CLI")
    assert '"status": "completed"' in out and "HELLO, ADA!" in out
    assert re.search(r"ok: playbooks/examples/hello_world.yaml", out), out
    assert "flowchart" in out  # the Mermaid graph
    assert "result:" in out and "greeting Ada" in out  # status last, logs last
    assert "playbook.completed" in out  # events
    assert "total" in out.lower()  # cost
    assert "same output" in out  # rerun
    assert "examples/hello_world" in out and "HELLO, WORLD!" in out  # the catalog run
    assert "already ended (completed at" in out  # cancel of an ended execution


def test_through_a_gateway(walk: dict[str, str]) -> None:
    out = section(walk, "Through a gateway")
    assert "viewer: http://127.0.0.1:8080/viewer/login?code=" in out
    assert "registered" in out and "invalid" not in out.split("registered", 1)[0]
    assert out.count("HELLO, ADA!") >= 2  # the run, then `status last`'s result
    assert "greeting Ada" in out  # logs last
    assert "playbook.completed" in out  # events last --follow
    assert '"status": "completed"' in out  # the loops run as `ci`


def test_the_gateway_over_http(walk: dict[str, str]) -> None:
    out = section(walk, "The gateway over HTTP")
    assert "event: terminal" in out
    assert '"status":"completed"' in out and "HELLO, ADA!" in out


def test_data_tools_and_secrets(walk: dict[str, str]) -> None:
    out = section(walk, "Data tools and secrets")
    assert "registered credential: pg_local" in out, out
    assert out.count("status: completed") == 4, out  # the four data playbooks
    assert "db_password" not in out  # the helper never prints it


def test_callbacks_waits_and_schedules(walk: dict[str, str]) -> None:
    out = section(walk, "Callbacks, waits and schedules")
    assert "status: completed" in out  # the webhook callback resumed it
    assert "examples/scheduled_report" in out and "* * * * *" in out
    assert "noetl serve: http://127.0.0.1:8080  (gateway at /v1" in out


def test_nothing_is_left_in_the_tree(walk: dict[str, str]) -> None:
    assert not (ROOT / "pg_local.json").exists()
