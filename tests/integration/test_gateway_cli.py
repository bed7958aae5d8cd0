"""The `noetl` CLI against a gateway (`--gateway URL`): the real CLI in a subprocess, the
gateway served by uvicorn on a free loopback port over an embedded runtime whose
NOETL_HOME the CLI shares (so it mints its own token from the local key). Registering a
directory with an invalid file, the catalog and schedules, run (text, JSON, timeout),
status, events, cancel, `noetl token create` and its tokens, and the refusals: each one
clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl_core.engine import entries as E
from noetl_core.gateway import app as gateway
from noetl_core.gateway import tokens
from noetl_core.gateway.client import GatewayClient
from noetl_core.playbook.loader import load_text
from noetl_core.runtime.block import Runtime

from ..conftest import EXAMPLES, ROOT, serving

pytestmark = pytest.mark.integration

WAITS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: waits, path: tests/waits}
workflow:
  - step: start
    tool: {kind: wait, seconds: 600}
"""

INVALID = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: broken, path: tests/broken}
workflow:
  - step: start
    tool: {kind: noop}
    next: nowhere
"""


@pytest.fixture
def url(rt: Runtime, home: Path) -> Iterator[str]:
    """The gateway over `rt`, signing with the key of its NOETL_HOME."""
    with serving(gateway.create_app(rt, tokens.load_key(None, home))) as base:
        yield base


def noetl(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # nothing of the session's environment picks a backend (a stack fixture exports its
    # emulators' hosts to the whole session)
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NOETL_") and not k.endswith("_EMULATOR_HOST")
    }
    environ.update(NOETL_HOME=str(home), PYTHONUTF8="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(EXAMPLES / "hello_world.yaml", folder / "hello_world.yaml")
    shutil.copy(EXAMPLES / "scheduled_report.yaml", folder / "nested" / "scheduled_report.yaml")
    (folder / "waits.yaml").write_text(WAITS)
    (folder / "broken.yaml").write_text(INVALID)
    return folder


def test_register_a_directory_then_list_run_and_read(url: str, home: Path, playbooks: Path) -> None:
    done = noetl(home, "register", str(playbooks), "--gateway", url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "registered: examples/hello_world v1",
        "registered: examples/scheduled_report v1",
        "registered: tests/waits v1",
    ]
    assert done.stderr.startswith(f"invalid: {playbooks / 'broken.yaml'}:"), done.stderr
    assert "nowhere" in done.stderr and "Traceback" not in done.stderr
    again = noetl(home, "register", str(playbooks / "hello_world.yaml"), "--gateway", url)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "unchanged: examples/hello_world v1\n"

    listed = noetl(home, "catalog", "list", env={"NOETL_GATEWAY": url})
    assert listed.returncode == 0, listed.stderr
    assert "examples/hello_world  latest v1  (1 version)" in listed.stdout.splitlines()
    scheduled = noetl(home, "schedules", "list", "--gateway", url)
    assert scheduled.returncode == 0, scheduled.stderr
    assert scheduled.stdout.startswith("examples/scheduled_report  '* * * * *' UTC  next ")

    ran = noetl(home, "run", "examples/hello_world", "--set", "name=Ada", "--gateway", url)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("status: completed\nresult:\n")
    assert json.loads(ran.stdout.split("result:\n", 1)[1]) == {"text": "HELLO, ADA!", "length": 11}
    assert "✓ shout" in ran.stderr and "= completed" in ran.stderr
    execution_id = ran.stderr.split()[1].rstrip(":")

    as_json = noetl(
        home, "run", "examples/hello_world", "--json", "--request-id", "r-1", "--gateway", url
    )
    assert as_json.returncode == 0, as_json.stderr
    out = json.loads(as_json.stdout)
    assert (out["status"], out["result"]["text"]) == ("completed", "HELLO, WORLD!")
    assert as_json.stderr == ""
    replayed = noetl(
        home, "run", "examples/hello_world", "--json", "--request-id", "r-1", "--gateway", url
    )
    assert json.loads(replayed.stdout)["execution_id"] == out["execution_id"]

    status = noetl(home, "status", execution_id, "--gateway", url)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == f"execution {execution_id}: completed"
    assert lines[1] == "playbook  examples/hello_world" and lines[2] == "steps:"
    assert lines[3].split() == ["step", "status", "runs", "attempts"]
    assert [line.split() for line in lines[4:7]] == [
        [name, "done", "1", "1"] for name in ("start", "greet", "shout")
    ]
    assert lines[7] == "result:"
    assert json.loads("\n".join(lines[8:])) == {"text": "HELLO, ADA!", "length": 11}
    # what the steps printed, as `noetl logs` prints it here
    logs = noetl(home, "logs", execution_id, "--gateway", url)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "== greet (attempt 1, ok) ==\ngreeting Ada\n"
    one = noetl(home, "logs", execution_id, "shout", "--gateway", url)
    assert one.stdout == "(no step printed anything or failed)\n"
    unknown = noetl(home, "logs", execution_id, "nope", "--gateway", url)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "no step 'nope' (steps: greet, shout, start)" in unknown.stderr
    last = noetl(home, "status", "last", "--gateway", url)  # the most recent: the second run
    assert last.stdout.splitlines()[0] == f"execution {out['execution_id']}: completed"
    recent = noetl(home, "status", "--gateway", url)
    assert any(
        re.fullmatch(
            rf"{execution_id}  \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d  completed   examples/hello_world",
            row,
        )
        for row in recent.stdout.splitlines()
    ), recent.stdout  # the start time too, as `noetl status` prints it here

    events = noetl(home, "events", execution_id, "--gateway", url)
    assert events.returncode == 0, events.stderr
    rows = [row.split() for row in events.stdout.splitlines()]
    assert [row[0] for row in rows] == [str(n) for n in range(1, len(rows) + 1)]
    assert "playbook.initialized" in rows[0]
    assert "playbook.completed" in [row[3] for row in rows]
    as_lines = noetl(home, "events", execution_id, "--json", "--gateway", url)
    assert [json.loads(row)["n"] for row in as_lines.stdout.splitlines()] == list(
        range(1, len(rows) + 1)
    )


def test_cancel_and_timeout_of_a_waiting_execution(url: str, home: Path, rt: Runtime) -> None:
    rt.catalog.register_loaded(load_text(WAITS))
    timed = noetl(home, "run", "tests/waits", "--timeout", "1", "--gateway", url)
    assert timed.returncode == 1, timed.stdout + timed.stderr
    assert "did not finish within 1.0s; it is cancelled" in timed.stderr.splitlines()[-1]

    key = tokens.load_key(None, home)
    with GatewayClient(url, tokens.create(key, "t", ["admin"], ["*"], time.time())) as client:
        execution_id = client.start("tests/waits")["execution_id"]
        deadline = time.monotonic() + 20
        while not any(e.kind == "pending" for e in rt.log.entries(execution_id)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        so_far = noetl(home, "events", execution_id, "--gateway", url)  # returns: a snapshot
        assert so_far.returncode == 0, so_far.stderr
        assert "command.issued" in so_far.stdout and "playbook.cancelled" not in so_far.stdout
        done = noetl(home, "cancel", execution_id, "--gateway", url)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"cancel recorded for {execution_id}\n"
        deadline = time.monotonic() + 20
        while client.execution(execution_id)["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.execution(execution_id)["status"] == "cancelled"
    again = noetl(home, "cancel", execution_id, "--gateway", url)
    assert again.returncode == 1
    assert again.stdout == ""
    assert re.fullmatch(
        rf"noetl: execution {execution_id} already ended \(cancelled at [\d: -]+ UTC\): "
        r"there is nothing to cancel\n",
        again.stderr,
    ), again.stderr


def test_token_create_and_its_scopes(url: str, home: Path, rt: Runtime) -> None:
    rt.catalog.register(EXAMPLES / "hello_world.yaml")
    made = noetl(
        home, "token", "create", "--subject", "bob", "--scope", "read", "--paths", "examples/*"
    )
    assert made.returncode == 0, made.stderr
    reader = made.stdout.strip()
    assert "bob" in made.stderr and "read" in made.stderr
    listed = noetl(home, "catalog", "list", "--gateway", url, "--token", reader)
    assert listed.returncode == 0, listed.stderr
    refused = noetl(home, "run", "examples/hello_world", "--gateway", url, "--token", reader)
    line = one_clear_line(refused)
    assert line.startswith("noetl: the gateway answered 403:"), line
    assert "no 'invoke' scope" in line

    invoker = noetl(
        home,
        "token",
        "create",
        "--subject",
        "ci",
        "--scope",
        "invoke",
        "--scope",
        "read",
        "--paths",
        "examples/*",
        "--ttl",
        "60",
    ).stdout.strip()
    ran = noetl(
        home,
        "run",
        "examples/hello_world",
        "--json",
        "--gateway",
        url,
        env={"NOETL_TOKEN": invoker},
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["status"] == "completed"
    start = rt.log.get(E.start_id(json.loads(ran.stdout)["execution_id"]))
    assert start is not None and start.body["subject"] == "ci"

    other = tokens.create(b"another-key", "eve", ["admin"], ["*"], time.time())
    forged = noetl(home, "catalog", "list", "--gateway", url, "--token", other)
    assert (
        one_clear_line(forged) == "noetl: the gateway answered 401: the bearer token is not valid"
    )

    for bad in (
        ["--subject", "x", "--scope", "write", "--paths", "*"],
        ["--scope", "read", "--paths", "*"],
        ["--subject", "x", "--scope", "read"],
        ["--subject", "x", "--scope", "read", "--paths", "*", "--ttl", "0"],
    ):
        refused = noetl(home, "token", "create", *bad)
        assert refused.returncode == 2, (bad, refused.stderr)
        assert refused.stdout == "" and "Traceback" not in refused.stderr


def test_no_token_for_another_machine_and_an_unreachable_gateway(home: Path) -> None:
    stray = noetl(home, "catalog", "list", "--token", "abc")
    assert one_clear_line(stray) == "noetl: --token goes with --gateway URL (or NOETL_GATEWAY)"
    remote = noetl(home, "catalog", "list", "--gateway", "http://192.0.2.10:8080")
    line = one_clear_line(remote)
    assert "a token is needed" in line and "noetl token create" in line
    from emulators.processes import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    for args in (["run", "examples/hello_world"], ["status"], ["events", "e1"]):
        done = noetl(home, *args, "--gateway", closed)
        line = one_clear_line(done)
        assert line.startswith(f"noetl: cannot reach the gateway at {closed}"), line


def test_token_create_for_a_deployment_signs_with_its_secret_manager_key(home: Path) -> None:
    """`--target emulators|gcp`: the key is the Secret Manager secret the deployed
    functions get as NOETL_GATEWAY_KEY (infra/deployment.json)."""
    from emulators.deploy import DECLARATION
    from emulators.secretmanager import SecretManagerEmulator, client
    from noetl_core import platform_secrets

    gateway_env = DECLARATION["functions"]["gateway"]["secret_env"]
    assert gateway_env["NOETL_GATEWAY_KEY"] == platform_secrets.GATEWAY_KEY
    assert platform_secrets.GATEWAY_KEY in DECLARATION["secrets"]
    args = ["token", "create", "--subject", "ops", "--scope", "admin", "--paths", "*"]
    unset = noetl(home, *args, "--target", "emulators")
    assert "SECRET_MANAGER_EMULATOR_HOST not set" in one_clear_line(unset)
    with SecretManagerEmulator() as emulator:
        env = {"SECRET_MANAGER_EMULATOR_HOST": emulator.host, "GOOGLE_CLOUD_PROJECT": "p-gw"}
        missing = noetl(home, *args, "--target", "emulators", env=env)
        assert "no secret 'noetl-gateway-key' in project p-gw" in one_clear_line(missing)
        secrets = client(emulator.host)
        secrets.create_secret(
            parent="projects/p-gw",
            secret_id=platform_secrets.GATEWAY_KEY,
            secret={"replication": {"automatic": {}}},
        )
        secrets.add_secret_version(
            parent=f"projects/p-gw/secrets/{platform_secrets.GATEWAY_KEY}",
            payload={"data": b"the-deployed-key"},
        )
        made = noetl(home, *args, "--target", "emulators", env=env)
        assert made.returncode == 0, made.stderr
    claims = tokens.verify(b"the-deployed-key", f"Bearer {made.stdout.strip()}", time.time())
    assert (claims.subject, claims.scopes, claims.paths) == ("ops", {"admin"}, ("*",))


def test_ctrl_c_cancels_the_run_and_exits_130(url: str, home: Path, rt: Runtime) -> None:
    import signal

    rt.catalog.register_loaded(load_text(WAITS))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    environ.update(NOETL_HOME=str(home), PYTHONUTF8="1", NOETL_GATEWAY=url)
    with subprocess.Popen(
        [sys.executable, "-m", "noetl_core.cli", "run", "tests/waits"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    ) as process:
        assert process.stderr is not None
        lines = [process.stderr.readline(), process.stderr.readline()]
        assert "waiting" in lines[1], lines
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    assert process.returncode == 130, rest
    assert rest.splitlines()[-1].endswith("interrupted; it is cancelled"), rest
    assert "Traceback" not in rest
