"""Callbacks, waits and cancellation on the embedded runtime with `noetl serve`'s
endpoint: a fake third party posts back after a delay while no worker is busy; the
timeout path; forged, replayed, expired, oversized and non-JSON callbacks."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from noetl_core import callbacks
from noetl_core.devtools.http_api import DemoApi
from noetl_core.engine import entries as E
from noetl_core.gateway import tokens
from noetl_core.playbook import load_file, load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime
from noetl_core.serve import Server

from ..conftest import EXAMPLES

pytestmark = pytest.mark.integration

WAITER = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: waiter}
workflow:
  - step: start
    spec: {callback: {timeout: TIMEOUT}}
    tool: {kind: python, input: {url: "{{ callback.url }}"}, code: "result = {'handed': url}"}
    next:
      arcs:
        - {step: timed_out, when: "{{ event.name == 'call.error' and error.kind == 'timeout' }}"}
        - {step: after}
  - step: after
    tool: {kind: python, input: {got: "{{ start }}"}, code: "result = got"}
  - step: timed_out
    tool: {kind: python, input: {code: "{{ ctx.x | default('timeout') }}"}, code: "result = {'timed_out': code}"}
"""


@pytest.fixture
def server(rt: Runtime) -> Iterator[Server]:
    made = Server(rt).start()
    yield made
    made.stop()


def admin(rt: Runtime) -> str:
    """A gateway token signed with the runtime's local key, as `noetl token create` makes."""
    key = tokens.load_key(rt.settings.gateway_key, rt.settings.home)
    return tokens.create(key, "tests", ["admin"], ["*"], time.time())


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApi]:
    with DemoApi() as running:
        yield running


def post(
    url: str, body: bytes, content_type: str = "application/json", token: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def pending_url(rt: Runtime, execution_id: str) -> str:
    """The callback URL the waiting step handed out (its tool's recorded output)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = rt.log.find(execution_id, "pending")
        if found:
            return str(found[0].body["output"]["inline"]["handed"])
        time.sleep(0.02)
    raise AssertionError("the step never started waiting")


def waiting_command(rt: Runtime, execution_id: str) -> str:
    return str(rt.log.find(execution_id, "pending")[0].command_id)


def test_webhook_example_no_worker_waits_and_the_post_resumes_it(
    rt: Runtime, server: Server, api: DemoApi
) -> None:
    execution_id = rt.start(
        load_file(EXAMPLES / "data" / "webhook_callback.yaml"), {"api_url": api.url}
    )
    deadline = time.monotonic() + 10
    while not rt.log.find(execution_id, "pending") and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert rt.bus.busy == 0, "nothing runs while the third party works"
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "completed"
    assert payloads.load(rt.payloads, terminal.body["result"]) == {
        "job": 1,
        "said": "monthly report ready",
    }
    deadline = time.monotonic() + 5  # the API notes the answer after the runtime has it
    while not api.callbacks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.callbacks[-1]["status"] == 202
    events = [n for e in rt.log.entries(execution_id) for n in e.events]
    assert "call.pending" in events and "callback.received" in events


def test_a_repeated_callback_answers_202_and_changes_nothing(rt: Runtime, server: Server) -> None:
    execution_id = rt.start(load_text(WAITER.replace("TIMEOUT", "30")), {})
    url = pending_url(rt, execution_id)
    expected = {"execution_id": execution_id, "command_id": waiting_command(rt, execution_id)}
    assert post(url, b'{"n": 1}') == (202, {**expected, "status": "received"})
    terminal = rt.wait(execution_id, 10)
    assert terminal is not None and payloads.load(rt.payloads, terminal.body["result"]) == {"n": 1}
    before = len(rt.log.entries(execution_id))
    status, body = post(url, b'{"n": 2}')
    assert status == 202 and body["status"] == "already received"
    assert len(rt.log.entries(execution_id)) == before


def test_forged_oversized_and_non_json_callbacks_record_nothing(
    rt: Runtime, server: Server
) -> None:
    execution_id = rt.start(load_text(WAITER.replace("TIMEOUT", "30")), {})
    url = pending_url(rt, execution_id)
    before = len(rt.log.entries(execution_id))
    payload, _, signature = url.rsplit("/", 1)[1].partition(".")
    forged = url.rsplit("/", 1)[0] + "/" + payload + "." + signature[::-1]
    assert post(forged, b"{}")[0] == 401
    tampered = url.rsplit("/", 1)[0] + "/" + payload[:-2] + "AA." + signature
    assert post(tampered, b"{}")[0] == 401
    assert post(url, b"not json", "text/plain")[0] == 415  # noetl serve takes JSON only
    assert post(url, b"not json")[0] == 400
    rt.settings = dataclasses.replace(rt.settings, callback_max_bytes=100)
    assert post(url, json.dumps({"x": "y" * 200}).encode())[0] == 413
    assert len(rt.log.entries(execution_id)) == before
    rt.cancel(execution_id)


def test_bodies_nested_too_deep_answer_400_and_record_nothing(rt: Runtime, server: Server) -> None:
    execution_id = rt.start(load_text(WAITER.replace("TIMEOUT", "30")), {})
    url = pending_url(rt, execution_id)
    before = len(rt.log.entries(execution_id))
    deep = b"[" * 10_000 + b"]" * 10_000
    limit = "nested deeper than 100 levels at line 1 (NOETL_MAX_DEPTH)"
    assert post(url, b'{"x": ' + deep + b"}") == (400, {"error": f"the callback body: {limit}"})
    start = post(
        server.url + "/v1/executions", b'{"path": "p", "workload": ' + deep + b"}", token=admin(rt)
    )
    assert start == (
        400,
        {"error": {"code": "input_limit", "message": f"the request body: {limit}"}},
    )
    assert len(rt.log.entries(execution_id)) == before
    assert post(url, b'{"n": 1}')[0] == 202  # the step still waits, and takes a good body


def test_an_expired_token_answers_410(rt: Runtime, server: Server) -> None:
    execution_id = rt.start(load_text(WAITER.replace("TIMEOUT", "30")), {})
    pending_url(rt, execution_id)
    command_id = waiting_command(rt, execution_id)
    stale = callbacks.sign(
        rt.callback_key, callbacks.Grant(execution_id, command_id, 1, time.time() - 1)
    )
    status, body = post(f"{server.url}/callbacks/{stale}", b"{}")
    assert status == 410 and "expired" in body["error"]
    rt.cancel(execution_id)


def test_no_callback_before_the_timeout_is_a_routable_error_then_410(
    rt: Runtime, server: Server
) -> None:
    execution_id = rt.start(load_text(WAITER.replace("TIMEOUT", "0.4s")), {})
    url = pending_url(rt, execution_id)
    terminal = rt.wait(execution_id, 10)
    assert terminal is not None and terminal.body["status"] == "completed"
    assert payloads.load(rt.payloads, terminal.body["result"]) == {"timed_out": "timeout"}
    start = next(d for d in rt.log.find(execution_id, "done") if d.step == "start")
    assert start.body["error"]["kind"] == "timeout" and start.body.get("recovered")
    status, _ = post(url, b"{}")
    assert status == 410


def test_the_wait_tool_holds_no_worker(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: sleeper}
workflow:
  - step: start
    tool: {kind: wait, seconds: 0.5s}
    next: after
  - step: after
    tool: {kind: python, input: {w: "{{ start.waited }}"}, code: "result = w"}
"""
    began = time.monotonic()
    execution_id = rt.start(load_text(text), {})
    time.sleep(0.2)
    assert rt.bus.busy == 0 and rt.log.find(execution_id, "pending")
    terminal = rt.wait(execution_id, 10)
    assert terminal is not None and terminal.body["status"] == "completed"
    assert time.monotonic() - began >= 0.5
    assert payloads.load(rt.payloads, terminal.body["result"]) == pytest.approx(0.5, abs=0.05)


def test_cancel_reaches_a_child_waiting_for_a_callback(
    rt: Runtime, server: Server, tmp_path: Any
) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(
        WAITER.replace("TIMEOUT", "30").replace("name: waiter", "name: waiter, path: tests/waiter")
    )
    parent = tmp_path / "parent.yaml"
    parent.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: parent}\nworkflow:\n"
        "  - step: start\n    tool: {kind: playbook, path: tests/waiter}\n"
    )
    execution_id = rt.start(load_file(parent), {})
    deadline = time.monotonic() + 10
    while not rt.log.find(execution_id, "pending") and time.monotonic() < deadline:
        time.sleep(0.02)
    child_id = rt.log.find(execution_id, "pending")[0].body["child_execution_id"]
    url = pending_url(rt, child_id)
    status, _ = post(f"{server.url}/v1/executions/{execution_id}/cancel", b"", token=admin(rt))
    assert status == 202
    terminal = rt.wait(execution_id, 10)
    assert terminal is not None and terminal.body["status"] == "cancelled"
    child_terminal = rt.wait(child_id, 10)
    assert child_terminal is not None and child_terminal.body["status"] == "cancelled"
    assert post(url, b"{}")[0] == 410
    assert rt.log.get(E.terminal_id(child_id)) is not None
