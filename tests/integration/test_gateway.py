"""The gateway application on the embedded default:
the auth matrix, starting by path (once per request id), state, events as SSE with a
resume that loses and repeats nothing, cancel, the catalog and schedules, refusals of
bad requests, and no data access from the gateway's modules; served by uvicorn, called
by a real HTTP client."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from noetl_core.engine import entries as E
from noetl_core.gateway import app as gateway
from noetl_core.gateway import tokens
from noetl_core.runtime.block import Runtime

from ..conftest import EXAMPLES, ROOT, read_events, serving

pytestmark = pytest.mark.integration

KEY = b"gateway-test-key-not-secret"


def token(*scopes: str, paths: tuple[str, ...] = ("*",), ttl: float = 600, sub: str = "ada") -> str:
    return tokens.create(KEY, sub, list(scopes), list(paths), time.time(), ttl)


def auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def client(rt: Runtime) -> Iterator[httpx.Client]:
    """The gateway served by uvicorn on a free loopback port, and a real HTTP client."""
    rt.catalog.register(EXAMPLES / "hello_world.yaml")
    rt.catalog.register(EXAMPLES / "loops.yaml")
    with (
        serving(gateway.create_app(rt, KEY)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield http


def start(client: httpx.Client, path: str, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/executions", json={"path": path, **body}, headers=headers)


def finished(client: httpx.Client, execution_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        state: dict[str, Any] = client.get(f"/v1/executions/{execution_id}", headers=headers).json()
        if state["status"] != "running":
            return state
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_playbook_is_started_by_path_and_its_state_read(
    client: httpx.Client, rt: Runtime
) -> None:
    headers = auth(token("invoke", "read", paths=("examples/*",)))
    started = start(client, "examples/hello_world", headers, workload={"name": "Ada"})
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]
    state = finished(client, execution_id, headers)
    assert state["status"] == "completed"
    assert state["result"] == {"text": "HELLO, ADA!", "length": 11}
    assert [s["step"] for s in state["steps"]] == ["start", "greet", "shout"]
    assert rt.log.get(E.start_id(execution_id)).body["subject"] == "ada"  # type: ignore[union-attr]
    listed = client.get("/v1/executions", headers=headers).json()["executions"]
    assert execution_id in [e["execution_id"] for e in listed]


def test_the_same_request_id_starts_one_execution(client: httpx.Client) -> None:
    headers = auth(token("invoke"))
    first = start(client, "examples/hello_world", headers, request_id="order-17").json()
    again = start(client, "examples/hello_world", headers, request_id="order-17").json()
    other = start(client, "examples/hello_world", headers, request_id="order-18").json()
    assert first["execution_id"] == again["execution_id"] != other["execution_id"]
    assert (first["new"], again["new"]) == (True, False)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic abc"}, 401),
        (auth("x.y"), 401),
        (auth(token("read")), 403),  # no invoke scope
        (auth(token("invoke", paths=("reports/*",))), 403),  # another path prefix
    ],
    ids=["none", "not_bearer", "forged", "wrong_scope", "wrong_path"],
)
def test_the_auth_matrix(client: httpx.Client, headers: dict[str, str], status: int) -> None:
    answer = start(client, "examples/hello_world", headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] in ("unauthenticated", "forbidden")


def test_an_expired_or_re_signed_token_is_refused(client: httpx.Client) -> None:
    expired = tokens.create(KEY, "ada", ["invoke"], ["*"], time.time() - 120, ttl=60)
    assert start(client, "examples/hello_world", auth(expired)).status_code == 401
    forged = tokens.create(b"another-key", "ada", ["admin"], ["*"], time.time())
    assert start(client, "examples/hello_world", auth(forged)).status_code == 401
    payload, signature = token("read").split(".")
    widened = tokens._b64(
        json.dumps({**json.loads(tokens._unb64(payload)), "scp": ["admin"]}).encode()
    )
    assert start(client, "examples/hello_world", auth(f"{widened}.{signature}")).status_code == 401


@pytest.mark.parametrize(
    ("body", "kind", "status"),
    [
        (b'{"path": "no/such/playbook"}', "application/json", 404),
        (b'{"path": "examples/hello_world", "workload": [1]}', "application/json", 422),
        (b'{"workload": {}}', "application/json", 422),
        (b"{not json", "application/json", 400),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400),
        (b'{"path": "examples/hello_world"}', "text/plain", 415),
        (b'{"path": "' + b"x" * (gateway.MAX_BODY + 10) + b'"}', "application/json", 413),
    ],
    ids=["unknown", "workload_list", "no_path", "malformed", "deep", "text_plain", "too_large"],
)
def test_bad_requests_get_their_status_never_a_500(
    client: httpx.Client, body: bytes, kind: str, status: int
) -> None:
    headers = {**auth(token("invoke")), "Content-Type": kind}
    answer = client.post("/v1/executions", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()


def events(
    client: httpx.Client, execution_id: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    with client.stream("GET", f"/v1/executions/{execution_id}/events", headers=headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        return read_events(stream)


def test_events_follow_the_execution_and_resume_after_last_event_id(client: httpx.Client) -> None:
    headers = auth(token("invoke", "read"))
    execution_id = start(client, "examples/loops", headers).json()["execution_id"]
    whole = events(client, execution_id, headers)
    assert whole[-1]["data"]["kind"] == "terminal"
    assert [e["id"] for e in whole] == list(range(1, len(whole) + 1))
    cut = len(whole) // 2
    rest = events(client, execution_id, {**headers, "Last-Event-ID": str(cut)})
    assert [e["id"] for e in rest] == list(range(cut + 1, len(whole) + 1))
    assert [e["data"] for e in whole[cut:]] == [e["data"] for e in rest]


def test_cancel_catalog_and_schedules(client: httpx.Client, rt: Runtime) -> None:
    reader, admin = auth(token("read")), auth(token("admin"))
    source = (EXAMPLES / "scheduled_report.yaml").read_text()
    assert client.post("/v1/catalog", json={"source": source}, headers=reader).status_code == 403
    made = client.post("/v1/catalog", json={"source": source}, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["path"] == "examples/scheduled_report"
    again = client.post("/v1/catalog", json={"source": source}, headers=admin)
    assert again.status_code == 200 and again.json()["new"] is False
    bad = client.post("/v1/catalog", json={"source": "kind: Playbook\n"}, headers=admin)
    assert bad.status_code == 422
    paths = [p["path"] for p in client.get("/v1/catalog", headers=reader).json()["playbooks"]]
    assert "examples/scheduled_report" in paths
    scheduled = client.get("/v1/schedules", headers=reader).json()["schedules"]
    assert [s["path"] for s in scheduled] == ["examples/scheduled_report"]
    running = start(client, "examples/loops", admin).json()["execution_id"]
    cancelled = client.post(f"/v1/executions/{running}/cancel", headers=admin)
    assert cancelled.status_code == 202
    assert finished(client, running, admin)["status"] in ("cancelled", "completed")
    again = client.post(f"/v1/executions/{running}/cancel", headers=admin)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "already_ended"
    assert f"execution {running} already ended (" in again.json()["error"]["message"]
    assert client.get("/v1/executions/nope", headers=reader).status_code == 404


def test_the_openapi_document_lists_every_route(client: httpx.Client) -> None:
    document = client.get("/v1/openapi.json").json()
    assert set(document["paths"]) == {
        "/v1/executions",
        "/v1/executions/{id}",
        "/v1/executions/{id}/events",
        "/v1/executions/{id}/cancel",
        "/v1/executions/{id}/graph",
        "/v1/executions/{id}/entries/{entry}",
        "/v1/executions/{id}/logs",
        "/v1/catalog",
        "/v1/schedules",
    }


def test_the_gateway_imports_no_tool_or_data_client() -> None:
    code = (
        "import sys, noetl_core.gateway.app, noetl_core.gateway.tokens; "
        "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    from noetl_core.tools.registry import KINDS

    tools = tuple(module for module in KINDS.values() if module)
    clients = ("psycopg", "duckdb", "boto3", "google.cloud.secretmanager", "httpx")
    forbidden = [m for m in loaded if m.startswith(tools) or m.startswith(clients)]
    assert forbidden == []


SLOW = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow, path: tests/slow}
workflow:
  - step: start
    tool: {kind: python, code: "import time; time.sleep(0.3); result = 1"}
    next: second
  - step: second
    tool: {kind: python, code: "import time; time.sleep(0.3); result = 2"}
    next: third
  - step: third
    tool: {kind: python, code: "import time; time.sleep(0.3); result = 3"}
"""


def test_a_stream_dropped_mid_execution_resumes_losing_and_repeating_nothing(
    client: httpx.Client, rt: Runtime
) -> None:
    from noetl_core.playbook import load_text

    rt.catalog.register_loaded(load_text(SLOW))
    headers = auth(token("invoke", "read"))
    execution_id = start(client, "tests/slow", headers).json()["execution_id"]
    url = f"/v1/executions/{execution_id}/events"
    with client.stream("GET", url, headers=headers) as stream:
        first = read_events(stream, keep=3)  # the connection drops while the execution runs
    assert rt.log.get(E.terminal_id(execution_id)) is None, "dropped too late to prove much"
    rest = events(client, execution_id, {**headers, "Last-Event-ID": str(first[-1]["id"])})
    got = first + rest
    logged = rt.log.entries(execution_id)
    assert [e["id"] for e in got] == list(range(1, len(logged) + 1))
    assert [(e["data"]["kind"], e["data"]["step"]) for e in got] == [
        (e.kind, e.step) for e in logged
    ]
    # resuming after the last event ends at once, with nothing
    assert events(client, execution_id, {**headers, "Last-Event-ID": str(len(logged))}) == []


def test_listing_filters_by_path_status_and_since(client: httpx.Client, rt: Runtime) -> None:
    headers = auth(token("invoke", "read"))
    done = start(client, "examples/hello_world", headers).json()["execution_id"]
    finished(client, done, headers)
    between = time.time()
    time.sleep(0.05)
    other = start(client, "examples/loops", headers).json()["execution_id"]
    finished(client, other, headers)

    def listed(**params: str) -> list[str]:
        answer = client.get("/v1/executions", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return [e["execution_id"] for e in answer.json()["executions"]]

    assert listed() == [other, done]
    assert listed(path="examples/hello_world") == [done]
    assert listed(status="completed") == [other, done]
    assert listed(status="failed") == []
    since = dt.datetime.fromtimestamp(between, dt.UTC).isoformat()
    assert listed(since=since) == [other]
    assert listed(limit="1") == [other]
    first = client.get("/v1/executions", headers=headers).json()["executions"][0]
    assert first["status"] == "completed" and first["subject"] == "ada"
    assert first["started_at"].endswith("Z") and first["path"] == "examples/loops"
    for bad in ({"status": "done"}, {"since": "yesterday"}, {"limit": "0"}, {"limit": "x"}):
        refused = client.get("/v1/executions", params=bad, headers=headers)
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["message"]
    # a token limited to some paths lists only those
    narrow = auth(token("read", paths=("examples/hello*",)))
    answer = client.get("/v1/executions", headers=narrow).json()["executions"]
    assert [e["execution_id"] for e in answer] == [done]
