"""NoETL as deployed on the emulator stack from infra/deployment.json and the artifact:
functions run outside the repository in their own virtualenv, production settings are
checked at start, subscriptions are the declared ones, and private functions take Cloud
Tasks requests only with the invoker's OIDC token."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from google.cloud import tasks_v2

from emulators.deploy import lease_seconds
from emulators.stack import DECLARATION, ROOT, TASKS_LOCATION, TASKS_QUEUE
from noetl_core import settings

pytestmark = pytest.mark.integration


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_every_function_runs_from_the_artifact_outside_the_repository(gcp_stack: Any) -> None:
    deployed = gcp_stack.deployed
    assert not deployed.source.is_relative_to(ROOT)
    assert not deployed.python.is_relative_to(ROOT)
    assert not (deployed.source / "noetl_core" / "devtools").exists()
    assert set(deployed.functions) == set(DECLARATION["functions"])
    for function in deployed.functions.values():
        environ = _environ(function.service.pid)
        assert "PYTHONPATH" not in environ
        assert Path(os.readlink(f"/proc/{function.service.pid}/cwd")) == deployed.source
        assert os.path.realpath(f"/proc/{function.service.pid}/exe") == os.path.realpath(
            deployed.python
        )
        assert environ["K_SERVICE"] == function.name
        assert environ["GOOGLE_CLOUD_PROJECT"] == gcp_stack.project != "noetl-local"
        assert environ["NOETL_PAYLOAD_URL"].startswith(f"gs://{gcp_stack.bucket}/")
        assert environ["NOETL_HOME"].startswith("/tmp/")


def test_the_callback_key_comes_from_secret_manager(gcp_stack: Any) -> None:
    from emulators.secretmanager import client

    name = DECLARATION["secret_env"]["NOETL_CALLBACK_KEY"]
    stored = client(gcp_stack.secrets_host).access_secret_version(
        name=f"projects/{gcp_stack.project}/secrets/{name}/versions/latest"
    )
    key = stored.payload.data.decode()
    assert len(key) >= 32
    for function in gcp_stack.deployed.functions.values():
        assert _environ(function.service.pid)["NOETL_CALLBACK_KEY"] == key


def test_a_function_with_local_settings_refuses_to_start_naming_them_all(
    gcp_stack: Any,
) -> None:
    deployed = gcp_stack.deployed
    argv = [str(deployed.python), "-m", "functions_framework", "--target", "worker"]
    argv += ["--signature-type", "cloudevent", "--source", "main.py", "--port", "0"]
    env = {"PATH": os.environ["PATH"], "K_SERVICE": "worker", "NOETL_HOME": "/var/noetl"}
    env["NOETL_PAYLOAD_URL"] = "file:///var/noetl/payloads"
    done = subprocess.run(
        argv, cwd=deployed.source, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for name in settings.PRODUCTION_VARIABLES:
        assert name in lines[0]


def _subscription(gcp_stack: Any, name: str) -> dict[str, Any]:
    return dict(gcp_stack._pubsub("GET", f"subscriptions/{name}"))


def test_push_subscriptions_are_the_declared_ones(gcp_stack: Any) -> None:
    spec = DECLARATION["functions"]["trigger"]["push"]
    got = _subscription(gcp_stack, spec["subscription"])
    function = gcp_stack.deployed.functions["trigger"]
    assert got["topic"].endswith("/topics/" + DECLARATION["topics"][spec["topic"]])
    assert got["ackDeadlineSeconds"] == spec["ack_deadline_seconds"]
    assert got["pushConfig"]["pushEndpoint"].startswith(function.url)
    assert got["pushConfig"]["oidcToken"]["audience"] == function.url.rstrip("/")
    assert got["pushConfig"]["oidcToken"]["serviceAccountEmail"].startswith("noetl-pusher@")
    assert got["deadLetterPolicy"]["maxDeliveryAttempts"] == spec["max_delivery_attempts"]
    assert got["retryPolicy"]["minimumBackoff"] == f"{spec['min_backoff_seconds']}s"
    worker = _subscription(gcp_stack, DECLARATION["functions"]["worker"]["push"]["subscription"])
    assert worker["ackDeadlineSeconds"] == 10  # the test session's override, named in conftest


def test_a_task_without_the_invokers_token_never_reaches_the_worker(gcp_stack: Any) -> None:
    from emulators.cloudtasks import client

    worker = gcp_stack.deployed.functions["worker"]
    tasks = client(gcp_stack.tasks_host)
    queue = tasks.queue_path(gcp_stack.project, TASKS_LOCATION, TASKS_QUEUE)
    note = base64.b64encode(json.dumps({"execution_id": "x", "command_id": "c"}).encode())
    body = json.dumps({"message": {"data": note.decode(), "messageId": "m1"}}).encode()
    task = tasks.create_task(
        parent=queue,
        task=tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(url=f"{worker.url}projects/p/topics/t", body=body)
        ),
    )
    deadline = time.monotonic() + 10
    while not [d for d in gcp_stack.tasks.dispatched if d["name"] == task.name]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert {d["status"] for d in gcp_stack.tasks.dispatched if d["name"] == task.name} == {401}
    tasks.delete_task(name=task.name)


def test_the_declaration_keeps_deliveries_and_leases_consistent() -> None:
    max_deliveries = int(DECLARATION["env"]["NOETL_MAX_DELIVERIES"])
    for name, spec in DECLARATION["functions"].items():
        push = spec.get("push")
        if push:  # claim conflicts count as attempts: the runtime dead-letters first
            assert push["max_delivery_attempts"] > max_deliveries, name
            assert push["ack_deadline_seconds"] == spec["timeout_seconds"], name
            assert push["ack_deadline_seconds"] <= 600, name  # Pub/Sub's largest
    assert lease_seconds() > DECLARATION["functions"]["worker"]["timeout_seconds"]
    assert set(DECLARATION["secret_env"].values()) <= set(DECLARATION["secrets"])
