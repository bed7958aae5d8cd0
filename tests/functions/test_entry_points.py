"""The Cloud Functions entry points in functions/main.py, through functions-framework's
test client, against the emulator stack."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from noetl_core.playbook import load_file
from noetl_core.runtime.block import Runtime
from noetl_core.runtime.ports import Note

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration


def client(
    target: str, signature: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> Any:
    import functions_framework

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = functions_framework.create_app(target, str(ROOT / "functions" / "main.py"), signature)
    return app.test_client()


def cloud_event(note: Note) -> dict[str, Any]:
    data = json.dumps(
        {"execution_id": note.execution_id, "command_id": note.command_id, "attempt": note.attempt}
    ).encode()
    return {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/noetl-local/topics/noetl-commands",
        "id": "test-1",
        "data": {"message": {"data": base64.b64encode(data).decode(), "messageId": "1"}},
    }


def test_start_begins_an_execution_by_catalog_path(
    cloud_rt: Runtime, gcp_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    cloud_rt.catalog.register(EXAMPLES / "hello_world.yaml")
    http = client("start", "http", monkeypatch, {**gcp_env, "NOETL_HOME": str(tmp_path)})
    answer = http.post("/", json={"path": "examples/hello_world", "workload": {"name": "Fn"}})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    execution_id = answer.get_json()["execution_id"]
    terminal = cloud_rt.wait(execution_id, 60)
    assert terminal is not None and terminal.body["status"] == "completed"

    missing = http.post("/", json={"path": "examples/nope"})
    assert missing.status_code == 404
    assert (
        "no playbook registered at catalog path 'examples/nope'"
        in missing.get_json()["error"]["message"]
    )
    bad = http.post("/", data="not json", content_type="text/plain")
    assert bad.status_code == 400
    assert "`path`" in bad.get_json()["error"]["message"]


def test_worker_runs_one_block_per_event_and_a_duplicate_is_harmless(
    cloud_rt: Runtime, gcp_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    execution_id = cloud_rt.start(load_file(EXAMPLES / "hello_world.yaml"), {})
    assert cloud_rt.wait(execution_id, 60) is not None  # the pushed worker ran it
    first = next(e for e in cloud_rt.log.entries(execution_id) if e.kind == "issue")
    worker = client("worker", "cloudevent", monkeypatch, {**gcp_env, "NOETL_HOME": str(tmp_path)})
    headers = {"Content-Type": "application/cloudevents+json"}
    again = worker.post(
        "/",
        data=json.dumps(cloud_event(Note(execution_id, first.command_id or ""))),
        headers=headers,
    )
    assert again.status_code == 200  # already done: acknowledged, nothing run again
    dones = [e for e in cloud_rt.log.entries(execution_id) if e.kind == "done"]
    assert len(dones) == len({d.command_id for d in dones}) == 3
    unknown = worker.post("/", data=json.dumps(cloud_event(Note("nope", "cx"))), headers=headers)
    assert unknown.status_code == 200  # a note for nothing is dropped, not redelivered forever
