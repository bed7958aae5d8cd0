"""The gateway as deployed on the emulator stack: the `gateway` function (functions-
framework's ASGI server, as FUNCTION_USE_ASGI runs it on Cloud Run) from the artifact,
its token key from Secret Manager. A playbook registered and started over HTTP runs in
the worker function; its events stream through the function and resume after a dropped
connection; the auth matrix holds; and the process serving the gateway never imports a
tool, a keychain reader or a data client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from emulators.stack import DECLARATION, ROOT
from noetl_core.engine import entries as E
from noetl_core.gateway import tokens
from noetl_core.playbook import load_text
from noetl_core.runtime.block import Runtime
from noetl_core.tools.registry import KINDS

from ..conftest import read_events

pytestmark = pytest.mark.integration

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: stacked, path: team/stacked}
workload: {n: 2}
workflow:
  - step: start
    tool: {kind: python, input: {n: "{{ workload.n }}"}, code: "result = n + 1"}
    next: wait
  - step: wait
    tool: {kind: wait, seconds: 1s}
    next: last
  - step: last
    tool: {kind: python, input: {a: "{{ start }}"}, code: "result = {'a': a}"}
"""


def gateway_key(stack: Any) -> bytes:
    from emulators.secretmanager import client

    name = DECLARATION["functions"]["gateway"]["secret_env"]["NOETL_GATEWAY_KEY"]
    stored = client(stack.secrets_host).access_secret_version(
        name=f"projects/{stack.project}/secrets/{name}/versions/latest"
    )
    return bytes(stored.payload.data)


def test_register_start_follow_and_resume_through_the_deployed_gateway(
    gcp_stack: Any, cloud_rt: Runtime
) -> None:
    url = gcp_stack.deployed.functions["gateway"].url
    key = gateway_key(gcp_stack)
    admin = {"Authorization": f"Bearer {tokens.create(key, 'ops', ['admin'], ['*'], time.time())}"}
    with httpx.Client(base_url=url, timeout=60) as http:
        made = http.post("/v1/catalog", json={"source": PLAYBOOK}, headers=admin)
        assert made.status_code == 201, made.text
        body = {"path": "team/stacked", "workload": {"n": 4}, "request_id": "order-17"}
        first = http.post("/v1/executions", json=body, headers=admin)
        again = http.post("/v1/executions", json=body, headers=admin)
        assert first.status_code == again.status_code == 202, first.text
        execution_id = first.json()["execution_id"]
        assert again.json() == {"execution_id": execution_id, "new": False}

        events_url = f"/v1/executions/{execution_id}/events"
        with http.stream("GET", events_url, headers=admin) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            head = read_events(stream, keep=2)
        assert cloud_rt.log.get(E.terminal_id(execution_id)) is None
        resumed = {**admin, "Last-Event-ID": str(head[-1]["id"])}
        with http.stream("GET", events_url, headers=resumed) as stream:
            rest = read_events(stream)
        state = http.get(f"/v1/executions/{execution_id}", headers=admin).json()

    logged = cloud_rt.log.entries(execution_id)
    got = head + rest
    assert [e["id"] for e in got] == list(range(1, len(logged) + 1))
    assert [e["data"]["kind"] for e in got] == [e.kind for e in logged]
    assert state["status"] == "completed" and state["result"] == {"a": 5}
    start = cloud_rt.log.get(E.start_id(execution_id))
    assert start is not None and start.body["subject"] == "ops"


def test_the_deployed_gateways_auth_matrix(gcp_stack: Any, cloud_rt: Runtime) -> None:
    url = gcp_stack.deployed.functions["gateway"].url
    key = gateway_key(gcp_stack)
    now = time.time()
    cases = {
        "none": (None, 401),
        "expired": (tokens.create(key, "a", ["invoke"], ["*"], now - 7200, 60), 401),
        "forged": (tokens.create(b"not-the-key", "a", ["invoke"], ["*"], now), 401),
        "read_only": (tokens.create(key, "a", ["read"], ["*"], now), 403),
        "other_prefix": (tokens.create(key, "a", ["invoke"], ["reports/*"], now), 403),
    }
    cloud_rt.catalog.register_loaded(load_text(PLAYBOOK))
    with httpx.Client(base_url=url, timeout=60) as http:
        for name, (token, status) in cases.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = http.post("/v1/executions", json={"path": "team/stacked"}, headers=headers)
            assert answer.status_code == status, (name, answer.text)
            assert answer.json()["error"]["message"], name
    assert cloud_rt.log.executions(10) == []


SERVE_AND_LIST = """
import json, sys, time, threading
import httpx, uvicorn
from noetl_core import cloud
from noetl_core.gateway import tokens
app = cloud.gateway()
config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
server = uvicorn.Server(config)
threading.Thread(target=server.run, daemon=True).start()
while not server.started:
    time.sleep(0.01)
key = sys.argv[2].encode()
auth = {"Authorization": "Bearer " + tokens.create(key, "t", ["admin"], ["*"], time.time())}
with httpx.Client(base_url="http://127.0.0.1:" + sys.argv[1], timeout=60) as http:
    made = http.post("/v1/catalog", json={"source": sys.argv[3]}, headers=auth)
    assert made.status_code in (200, 201), made.text
    started = http.post("/v1/executions", json={"path": "team/stacked"}, headers=auth).json()
    with http.stream("GET", "/v1/executions/%s/events" % started["execution_id"], headers=auth) as s:
        assert "event: terminal" in s.read().decode()
    http.get("/v1/executions", headers=auth)
    http.get("/v1/catalog", headers=auth)
    http.get("/v1/schedules", headers=auth)
    http.post("/v1/executions/%s/cancel" % started["execution_id"], json={}, headers=auth)
server.should_exit = True
print(json.dumps(sorted(sys.modules)))
"""


def test_the_gateway_process_imports_no_tool_keychain_reader_or_data_client(
    gcp_stack: Any, gcp_env: dict[str, str], tmp_path: Any
) -> None:
    """The gateway on the cloud runtime, serving register, start, events, lists and cancel
    in a process of its own (the blocks run in the deployed worker): afterwards no tool
    module, keychain reader or data client is loaded in it."""
    from emulators.processes import free_port

    key = "gateway-import-test-key"
    env = {**os.environ, **gcp_env, "NOETL_HOME": str(tmp_path), "NOETL_GATEWAY_KEY": key}
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_LIST, str(free_port()), key, PLAYBOOK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    forbidden = (
        "noetl_core.keychain.providers",
        "psycopg",
        "duckdb",
        "boto3",
        "google.cloud.secretmanager",
        *(m for m in KINDS.values() if m),  # validating and starting read only declarations
    )
    assert [m for m in loaded if m.startswith(forbidden)] == []
    assert "noetl_core.gateway.app" in loaded  # it did serve


WAITS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: waits, path: team/waits}
workflow:
  - step: start
    tool: {kind: wait, seconds: 600}
"""


def test_the_cli_drives_the_deployed_gateway(
    gcp_stack: Any, gcp_env: dict[str, str], cloud_rt: Runtime, tmp_path: Any
) -> None:
    """`noetl token create --target emulators` signs with the deployment's key; then
    register, catalog list, run PATH, status, events and cancel go through the gateway
    function (`--gateway`, the token in NOETL_TOKEN)."""
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "stacked.yaml").write_text(PLAYBOOK)
    (folder / "waits.yaml").write_text(WAITS)
    url = gcp_stack.deployed.functions["gateway"].url
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    base |= {**gcp_env, "NOETL_HOME": str(tmp_path / "home")}

    def noetl(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "noetl_core.cli", *args],
            cwd=ROOT,
            env={**base, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    made = noetl(
        "token",
        "create",
        "--target",
        "emulators",
        "--subject",
        "cli",
        "--scope",
        "admin",
        "--paths",
        "team/*",
    )
    assert made.returncode == 0, made.stderr
    via = {"NOETL_GATEWAY": url, "NOETL_TOKEN": made.stdout.strip()}
    registered = noetl("register", str(folder), **via)
    assert registered.returncode == 0, registered.stderr
    assert sorted(registered.stdout.splitlines()) == [
        "registered: team/stacked v1",
        "registered: team/waits v1",
    ]
    listed = noetl("catalog", "list", **via)
    assert "team/stacked  latest v1  (1 version)" in listed.stdout.splitlines(), listed.stderr
    ran = noetl("run", "team/stacked", "--set", "n=9", "--json", **via)
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert (out["status"], out["result"]) == ("completed", {"a": 10})
    status = noetl("status", out["execution_id"], **via)
    assert status.stdout.startswith(f"execution {out['execution_id']}: completed"), status.stderr
    events = noetl("events", out["execution_id"], **via)
    assert "playbook.completed" in events.stdout, events.stderr

    waiting = noetl("run", "team/waits", "--timeout", "3", **via)
    assert waiting.returncode == 1, waiting.stdout + waiting.stderr
    (start,) = [
        s for s in cloud_rt.log.executions(10) if s.body["playbook"]["path"] == "team/waits"
    ]
    terminal = cloud_rt.wait(start.execution_id, 60)
    assert terminal is not None and terminal.body["status"] == "cancelled"
    assert start.body["subject"] == "cli"
    again = noetl("cancel", start.execution_id, **via)
    assert again.returncode != 0 and "already ended" in (again.stdout + again.stderr)
