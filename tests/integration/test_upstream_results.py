"""Results as upstream NoETL records and exposes them: `output:` (store, select),
pipeline task `set`, rowsets in policy rules, result status, http 5xx errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from noetl_core.devtools.http_api import DemoApi
from noetl_core.errors import PlaybookError
from noetl_core.playbook import load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApi]:
    with DemoApi() as running:
        yield running


def run(rt: Runtime, text: str, workload: dict[str, Any] | None = None) -> Any:
    execution_id = rt.start(load_text(text), workload or {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None
    return terminal


def result_of(rt: Runtime, terminal: Any) -> Any:
    assert terminal.body["status"] == "completed", terminal.body
    return payloads.load(rt.payloads, terminal.body["result"])


def recorded(rt: Runtime, execution_id: str, step: str) -> dict[str, Any]:
    """The result reference the step's `call.done` entry holds."""
    for entry in rt.log.entries(execution_id):
        if entry.step == step and "call.done" in entry.events:
            ref: dict[str, Any] = entry.body["result"]
            return ref
    raise AssertionError(f"no call.done for {step}")


# -- result status ----------------------------------------------------------------------

STATUS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: status_data}
workflow:
  - step: start
    tool: {kind: python, code: 'result = {"status": "error", "message": "quota", "n": 1}'}
    next: report
  - step: report
    tool:
      kind: python
      input: {seen: "{{ start.status }}", n: "{{ start.n }}"}
      code: "result = {'seen': seen, 'n': n}"
"""


def test_a_result_with_status_error_is_data_by_default(rt: Runtime) -> None:
    assert result_of(rt, run(rt, STATUS)) == {"seen": "error", "n": 1}


def test_fail_on_status_on_the_tool_fails_the_step_keeping_the_data(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: status_fails}
workflow:
  - step: start
    tool:
      kind: python
      code: 'result = {"status": "failed", "message": "quota"}'
      spec: {fail_on_status: true}
    next:
      arcs:
        - step: recover
          when: "{{ event.name == 'call.error' }}"
          set: {ctx.code: "{{ error.code }}", ctx.data: "{{ error.data }}", ctx.msg: "{{ error.message }}"}
  - step: recover
    tool:
      kind: python
      input: {code: "{{ ctx.code }}", data: "{{ ctx.data }}", msg: "{{ ctx.msg }}"}
      code: "result = {'code': code, 'data': data, 'quota': 'quota' in msg}"
"""
    assert result_of(rt, run(rt, text)) == {
        "code": "result_status",
        "data": {"status": "failed", "message": "quota"},
        "quota": True,
    }


def test_fail_on_status_on_the_step_covers_its_pipeline_tasks(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: status_pipeline}
workflow:
  - step: start
    spec: {fail_on_status: true}
    tool:
      - first: {kind: python, code: 'result = {"status": "ok"}'}
      - second: {kind: python, code: 'result = {"status": "error", "error": "bad row"}'}
"""
    terminal = run(rt, text)
    assert terminal.body["status"] == "failed"
    assert terminal.body["error"]["code"] == "result_status"
    assert "bad row" in terminal.body["error"]["message"]


def test_fail_on_status_must_be_a_boolean() -> None:
    text = STATUS.replace(
        "tool: {kind: python, code:",
        "spec: {fail_on_status: 'yes'}\n    tool: {kind: python, code:",
        1,
    )
    with pytest.raises(PlaybookError) as caught:
        load_text(text, "pb.yaml")
    assert "workflow[0].spec.fail_on_status: expected true or false, got 'yes'" in str(caught.value)


# -- http 5xx ---------------------------------------------------------------------------


def test_an_http_5xx_answer_is_a_server_error_with_its_status(rt: Runtime, api: DemoApi) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: http_5xx}
workflow:
  - step: start
    tool:
      kind: http
      url: "{{ api }}/status/503"
      spec:
        policy:
          rules:
            - when: "{{ output.error.kind == 'server_error' and output.error.http_status == 503 }}"
              then: {do: continue, set: {ctx.kind: "{{ output.error.kind }}", ctx.status: "{{ output.error.http_status }}"}}
            - else: {then: {do: fail}}
    next: report
  - step: report
    tool:
      kind: python
      input: {kind: "{{ ctx.kind }}", status: "{{ ctx.status }}"}
      code: "result = {'kind': kind, 'status': status}"
"""
    assert result_of(rt, run(rt, text, {"api": api.url})) == {
        "kind": "server_error",
        "status": 503,
    }
