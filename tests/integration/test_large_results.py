"""Large results through whole executions: stored, referenced, selected, loaded lazily."""

from __future__ import annotations

from typing import Any

import pytest

from noetl_core.playbook import load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

pytestmark = pytest.mark.integration

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: large}
workflow:
  - step: start
    tool:
      kind: python
      code: "result = {'status_text': 'ready', 'count': 5000, 'rows': [{'id': i, 'v': i * 2} for i in range(5000)]}"
    output: {select: [status_text, count]}
    next: peek
  - step: peek
    tool:
      kind: python
      input: {count: "{{ start.count }}", ref: "{{ start._ref }}", text: "{{ start.status_text }}"}
      code: "result = {'count': count, 'fmt': ref['format'], 'text': text}"
    next: fetch
  - step: fetch
    tool: {kind: artifact, action: get, input: {result_ref: "{{ start._ref }}"}}
    next: records
  - step: records
    tool:
      kind: python
      input: {n: "{{ fetch.count }}"}
      code: "result = [{'id': i, 'name': 'n' + str(i)} for i in range(n)]"
    next: last
  - step: last
    tool:
      kind: python
      input: {rows: "{{ records }}", ref: "{{ records._ref }}"}
      code: "result = {'n': len(rows), 'first': rows[0], 'fmt': ref['format'], 'shape': ref['shape']}"
"""


def test_selected_fields_travel_inline_and_the_rest_loads_on_demand(rt: Runtime) -> None:
    reads: list[str] = []
    get = rt.payloads.get

    def counting(ref: dict[str, Any]) -> Any:
        reads.append(ref["key"])
        return get(ref)

    rt.payloads.get = counting  # type: ignore[method-assign]
    execution_id = rt.start(load_text(PLAYBOOK), {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "completed", terminal
    peek = next(e for e in rt.log.find(execution_id, "done") if e.step == "peek")
    assert peek.body["result"] == {"inline": {"count": 5000, "fmt": "json", "text": "ready"}}
    assert payloads.load(rt.payloads, terminal.body["result"]) == {
        "n": 5000,
        "first": {"id": 0, "name": "n0"},
        "fmt": "arrow",
        "shape": "records",
    }
    # peek read only the inline selection; fetch loaded start (explicitly); records read
    # fetch's own stored copy for one field; last loaded records
    assert [k.split("/")[2] for k in reads] == ["start", "fetch", "records"]


def test_stored_payloads_are_under_execution_scoped_keys(rt: Runtime) -> None:
    execution_id = rt.start(load_text(PLAYBOOK), {})
    assert rt.wait(execution_id, 30) is not None
    start = next(e for e in rt.log.find(execution_id, "done") if e.step == "start")
    ref = start.body["result"]
    assert ref["key"].startswith(f"executions/{execution_id}/start/{start.command_id}/1/")
    assert ref["size"] > 64 * 1024 and len(ref["sha256"]) == 64


def test_an_artifact_reference_outside_the_payload_store_is_refused(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: peek_outside}
workflow:
  - step: start
    tool:
      kind: artifact
      action: get
      input:
        result_ref: {uri: "file:///etc/passwd", format: json, sha256: x}
"""
    terminal = rt.wait(rt.start(load_text(text), {}), 30)
    assert terminal is not None and terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert (error["kind"], error["code"], error["step"]) == ("payload", "outside_store", "start")
    assert error["message"] == (
        f"payload reference 'file:///etc/passwd' is outside the payload store {rt.payloads.url}"
    )
