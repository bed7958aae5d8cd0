"""The Cloud Functions entry points in functions/main.py, through functions-framework's
test client, against the emulator stack."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from noetl_core.engine import entries as E
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


def test_the_gateway_starts_follows_and_refuses_through_functions_framework(
    cloud_rt: Runtime, gcp_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """functions-framework's own ASGI app for the `gateway` target (as Cloud Run runs it
    with FUNCTION_USE_ASGI), called in process through httpx's ASGI transport."""
    import asyncio

    import functions_framework.aio
    import httpx

    from noetl_core import cloud
    from noetl_core.gateway import tokens

    cloud_rt.catalog.register(EXAMPLES / "hello_world.yaml")
    key = "functions-test-gateway-key"
    env = {**gcp_env, "NOETL_HOME": str(tmp_path), "NOETL_GATEWAY_KEY": key}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cloud, "_gateway", None)
    app = functions_framework.aio.create_asgi_app(
        "gateway", str(ROOT / "functions/main.py"), "http"
    )
    token = tokens.create(key.encode(), "fn", ["invoke", "read"], ["examples/*"], time.time())
    auth = {"Authorization": f"Bearer {token}"}

    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fn") as http:
            body = {"path": "examples/hello_world", "workload": {"name": "Fn"}}
            started = await http.post("/v1/executions", json=body, headers=auth)
            assert started.status_code == 202, started.text
            execution_id = started.json()["execution_id"]
            assert cloud_rt.wait(execution_id, 60) is not None
            return [
                started,
                await http.get(f"/v1/executions/{execution_id}", headers=auth),
                await http.get(f"/v1/executions/{execution_id}/events", headers=auth),
                await http.post("/v1/executions", json={"path": "examples/nope"}, headers=auth),
                await http.post("/v1/executions", json=body),
                await http.post("/v1/executions", json={"path": "other/x"}, headers=auth),
                await http.get("/v1/openapi.json"),
            ]

    async def viewer_calls() -> list[httpx.Response]:
        """The viewer's pages and its sign-in with a pasted read token, behind TLS as
        Cloud Run ends it (X-Forwarded-Proto)."""
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fn") as http:
            tls = {"X-Forwarded-Proto": "https"}
            page = await http.get("/viewer/", headers=tls)
            signed = await http.post(
                "/viewer/session", json={}, headers={**auth, **tls, "Origin": "https://fn"}
            )
            value = signed.cookies.get("noetl_viewer", "")  # sent back as a browser would
            cookie = {"Cookie": f"noetl_viewer={value}"}
            listed = await http.get("/v1/executions", headers={**tls, **cookie})  # no bearer
            return [page, signed, listed]

    started, state, events, unknown, anonymous, elsewhere, spec = asyncio.run(calls())
    page, signed, listed = asyncio.run(viewer_calls())
    assert page.status_code == 200 and '<script src="app.js">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert signed.status_code == 200, signed.text
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    assert listed.status_code == 200, listed.text
    assert started.json()["execution_id"] in {
        e["execution_id"] for e in listed.json()["executions"]
    }
    assert state.json()["status"] == "completed"
    assert state.json()["result"] is not None
    assert events.headers["content-type"].startswith("text/event-stream")
    assert "event: terminal" in events.text
    assert unknown.status_code == 404
    assert "no playbook registered at catalog path 'examples/nope'" in unknown.text
    assert anonymous.status_code == 401
    assert elsewhere.status_code == 403
    assert spec.json()["paths"]["/v1/executions"]
    start_entry = cloud_rt.log.get(E.start_id(started.json()["execution_id"]))
    assert start_entry is not None and start_entry.body["subject"] == "fn"


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
