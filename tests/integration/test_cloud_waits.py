"""Waits on the emulator stack: the `wait` tool and a callback timeout are Cloud Tasks
tasks that call the worker when due (nothing runs meanwhile), and cancellation reaches a
child waiting for a callback, whose URL then answers 410."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from noetl_core.playbook import load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

from .test_callbacks import WAITER

pytestmark = pytest.mark.integration


def tasks_waiting(stack: Any) -> int:
    from emulators.cloudtasks import client

    tasks = client(stack.tasks_host)
    return len(
        list(
            tasks.list_tasks(parent=tasks.queue_path(stack.project, "us-central1", "noetl-timers"))
        )
    )


def wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_wait_tool_is_a_cloud_task_and_nothing_runs_meanwhile(
    cloud_rt: Runtime, gcp_stack: Any
) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: sleeper}
workflow:
  - step: start
    tool: {kind: wait, seconds: 4s}
    next: after
  - step: after
    tool: {kind: python, input: {w: "{{ start.waited }}"}, code: "result = w"}
"""
    execution_id = cloud_rt.start(load_text(text), {})
    wait_for(lambda: cloud_rt.log.find(execution_id, "pending"))
    pending_at = cloud_rt.log.find(execution_id, "pending")[0].ts
    wait_for(lambda: tasks_waiting(gcp_stack) == 1)  # armed after the pending entry commits
    time.sleep(1)
    claims = [e for e in cloud_rt.log.entries(execution_id) if e.kind == "claim"]
    assert all(c.ts <= pending_at for c in claims), "no block ran while it waited"
    terminal = cloud_rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "completed"
    assert payloads.load(cloud_rt.payloads, terminal.body["result"]) == pytest.approx(4.0, abs=0.1)
    assert tasks_waiting(gcp_stack) == 0


def test_a_callback_timeout_on_the_stack_routes_to_its_arc(cloud_rt: Runtime) -> None:
    execution_id = cloud_rt.start(load_text(WAITER.replace("TIMEOUT", "1s")), {})
    terminal = cloud_rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "completed"
    assert payloads.load(cloud_rt.payloads, terminal.body["result"]) == {"timed_out": "timeout"}


def test_cancel_reaches_a_child_waiting_for_a_callback_on_the_stack(
    cloud_rt: Runtime, tmp_path: Any
) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(
        WAITER.replace("TIMEOUT", "60").replace("name: waiter", "name: waiter, path: tests/waiter")
    )
    cloud_rt.catalog.register(child)
    parent = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: parent}
workflow:
  - step: start
    tool: {kind: playbook, path: tests/waiter}
"""
    execution_id = cloud_rt.start(load_text(parent), {})
    wait_for(lambda: cloud_rt.log.find(execution_id, "pending"))
    child_id = cloud_rt.log.find(execution_id, "pending")[0].body["child_execution_id"]
    wait_for(lambda: cloud_rt.log.find(child_id, "pending"))
    url = cloud_rt.log.find(child_id, "pending")[0].body["output"]["inline"]["handed"]
    cloud_rt.cancel(execution_id)
    terminal = cloud_rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "cancelled"
    child_terminal = cloud_rt.wait(child_id, 30)
    assert child_terminal is not None and child_terminal.body["status"] == "cancelled"
    request = urllib.request.Request(
        url,
        data=json.dumps({"late": True}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 410


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code)


def test_forged_replayed_and_expired_tokens_at_the_callback_function(cloud_rt: Runtime) -> None:
    from noetl_core import callbacks

    execution_id = cloud_rt.start(load_text(WAITER.replace("TIMEOUT", "60")), {})
    wait_for(lambda: cloud_rt.log.find(execution_id, "pending"))
    pending = cloud_rt.log.find(execution_id, "pending")[0]
    url = pending.body["output"]["inline"]["handed"]
    base, token = url.rsplit("/", 1)
    before = len(cloud_rt.log.entries(execution_id))
    payload, _, signature = token.partition(".")
    assert post(f"{base}/{payload}.{signature[::-1]}", b"{}") == 401
    stale = callbacks.sign(
        cloud_rt.callback_key,
        callbacks.Grant(execution_id, pending.command_id or "", 1, time.time() - 5),
    )
    assert post(f"{base}/{stale}", b"{}") == 410
    assert post(url, b"not json") == 400
    assert len(cloud_rt.log.entries(execution_id)) == before
    assert post(url, b'{"ok": 1}') == 202
    terminal = cloud_rt.wait(execution_id, 30)
    assert terminal is not None and payloads.load(cloud_rt.payloads, terminal.body["result"]) == {
        "ok": 1
    }
    settled = len(cloud_rt.log.entries(execution_id))
    assert post(url, b'{"ok": 2}') == 202  # replayed: accepted, nothing changes
    assert len(cloud_rt.log.entries(execution_id)) == settled
