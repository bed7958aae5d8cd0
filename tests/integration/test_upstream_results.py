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


# -- pipeline task `set` and rowsets in policy rules ------------------------------------

TASK_SET = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: task_set}
workflow:
  - step: start
    tool:
      - make:
          kind: python
          code: "result = {'a': 1}"
          set: {ctx.out: "{{ output }}", ctx.res: "{{ result }}", ctx.a: "{{ output.a }}", ctx.ok: "{{ outcome.status }}"}
      - report:
          kind: python
          input: {out: "{{ ctx.out }}", res: "{{ ctx.res }}", a: "{{ ctx.a }}", ok: "{{ ctx.ok }}"}
          code: "result = {'out': out, 'res': res, 'a': a, 'ok': ok}"
"""


def test_a_task_set_reads_the_tools_result_as_output_and_result(rt: Runtime) -> None:
    assert result_of(rt, run(rt, TASK_SET)) == {
        "out": {"a": 1},
        "res": {"a": 1},
        "a": 1,
        "ok": "ok",
    }


ROWSET = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: rowset_policy}
workflow:
  - step: start
    tool:
      - query:
          kind: KIND
          QUERY
          spec:
            policy:
              rules:
                - when: "{{ output.data.rows[0].t == 'x' and output.data.row_count == 2 }}"
                  then:
                    do: continue
                    set_ctx:
                      first: "{{ output.data.rows[0].t }}"
                      columns: "{{ output.data.columns }}"
                      count: "{{ output.data.row_count }}"
                - else: {then: {do: fail}}
          set: {ctx.second: "{{ output.rows[1].t }}", ctx.via_result: "{{ result.row_count }}"}
      - report:
          kind: python
          input: {first: "{{ ctx.first }}", columns: "{{ ctx.columns }}", count: "{{ ctx.count }}", second: "{{ ctx.second }}", n: "{{ ctx.via_result }}"}
          code: "result = {'first': first, 'columns': columns, 'count': count, 'second': second, 'n': n}"
"""
ROWS_SQL = "SELECT * FROM (VALUES ('x', 1), ('y', 2)) AS v(t, n) ORDER BY n"
EXPECTED = {"first": "x", "columns": ["t", "n"], "count": 2, "second": "y", "n": 2}


def test_policy_rules_and_task_set_read_duckdb_rows(rt: Runtime) -> None:
    text = ROWSET.replace("KIND", "duckdb").replace("QUERY", f'query: "{ROWS_SQL}"')
    assert result_of(rt, run(rt, text)) == EXPECTED


def test_policy_rules_and_task_set_read_postgres_rows(rt: Runtime, postgres_server: Any) -> None:
    rt.credentials.put(postgres_server.credential("pg_local"))
    query = f'auth: pg_local\n          query: "{ROWS_SQL}"'
    text = ROWSET.replace("KIND", "postgres").replace("QUERY", query)
    assert result_of(rt, run(rt, text)) == EXPECTED


# -- output: store and select -----------------------------------------------------------

REPRO = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: output_repro}
workflow:
  - step: start
    tool: {kind: python, code: 'result = {"status": "ok", "items": [1,2,3]}'}
    output: {store: {kind: KIND}, output_select: [status]}
    next: report
  - step: report
    tool:
      kind: python
      input: {status: "{{ start.status }}", items: "{{ start.items }}"}
      code: "result = {'status': status, 'items': items}"
"""


def test_the_repro_with_store_auto_and_output_select_completes(rt: Runtime) -> None:
    terminal = run(rt, REPRO.replace("KIND", "auto"))
    assert result_of(rt, terminal) == {"status": "ok", "items": [1, 2, 3]}
    ref = recorded(rt, terminal.execution_id, "start")
    assert ref == {"inline": {"status": "ok", "items": [1, 2, 3]}}


def test_store_payload_forces_a_reference_with_the_selected_fields_inline(rt: Runtime) -> None:
    terminal = run(rt, REPRO.replace("KIND", "payload"))
    assert result_of(rt, terminal) == {"status": "ok", "items": [1, 2, 3]}
    ref = recorded(rt, terminal.execution_id, "start")
    assert "inline" not in ref and ref["select"] == {"status": "ok"}
    assert rt.payloads.get(ref) == {"status": "ok", "items": [1, 2, 3]}
    # the selected field is read from the reference without loading the payload
    view = payloads.view(Unreadable(), ref)
    assert view["status"] == "ok"


class Unreadable:
    def put(self, key: str, value: Any, *, tabular: bool) -> dict[str, Any]:
        raise AssertionError("not written here")

    def get(self, ref: dict[str, Any]) -> Any:
        raise AssertionError("the payload was loaded")


def test_upstream_tiers_and_tool_level_output_go_by_reference(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v10
kind: Playbook
metadata: {name: output_tool_level}
workflow:
  - step: start
    tool:
      kind: python
      code: 'result = {"paging": {"next": "c_2", "page": 1}, "data": {"items": [{"id": 7}]}}'
      output:
        store: {kind: gcs, bucket: b, ttl: 1h, compression: gzip}
        select:
          - {path: "$.paging.next", as: next_cursor}
          - data.items[0].id
        inline_max_bytes: 65536
        preview_max_bytes: 1024
        scope: execution
    next: report
  - step: report
    tool:
      kind: python
      input: {cursor: "{{ start.next_cursor }}", id: "{{ start.id }}", page: "{{ start.paging.page }}"}
      code: "result = {'cursor': cursor, 'id': id, 'page': page}"
"""
    terminal = run(rt, text)
    assert result_of(rt, terminal) == {"cursor": "c_2", "id": 7, "page": 1}
    ref = recorded(rt, terminal.execution_id, "start")
    assert "inline" not in ref and ref["select"] == {"next_cursor": "c_2", "id": 7}


def test_selected_names_are_readable_on_an_inline_result_too(rt: Runtime) -> None:
    text = REPRO.replace("KIND", "auto").replace(
        "output_select: [status]", "select: [{path: '$.items[1]', as: second}]"
    )
    text = text.replace("{{ start.status }}", "{{ start.second }}")
    assert result_of(rt, run(rt, text)) == {"status": 2, "items": [1, 2, 3]}


def test_inline_max_bytes_lowers_the_threshold(rt: Runtime) -> None:
    text = REPRO.replace("{store: {kind: KIND}, output_select: [status]}", "{inline_max_bytes: 10}")
    terminal = run(rt, text)
    assert result_of(rt, terminal) == {"status": "ok", "items": [1, 2, 3]}
    assert "inline" not in recorded(rt, terminal.execution_id, "start")


BIG = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: output_inline}
workflow:
  - step: start
    tool: {kind: python, code: 'result = {"text": "x" * SIZE}'}
    output: {store: {kind: inline}}
    next:
      arcs:
        - step: recover
          when: "{{ event.name == 'call.error' }}"
          set: {ctx.code: "{{ error.code }}", ctx.kind: "{{ error.kind }}", ctx.msg: "{{ error.message }}"}
        - step: size
  - step: size
    tool: {kind: python, input: {n: "{{ start.text | length }}"}, code: "result = {'n': n}"}
  - step: recover
    tool: {kind: python, input: {code: "{{ ctx.code }}", kind: "{{ ctx.kind }}", msg: "{{ ctx.msg }}"}, code: "result = {'code': code, 'kind': kind, 'msg': msg}"}
"""


def test_store_inline_keeps_a_result_over_the_inline_limit_in_the_log(rt: Runtime) -> None:
    terminal = run(rt, BIG.replace("SIZE", "100_000"))
    assert result_of(rt, terminal) == {"n": 100_000}
    assert "inline" in recorded(rt, terminal.execution_id, "start")


def test_store_inline_over_the_logs_limit_fails_the_step_clearly(rt: Runtime) -> None:
    out = result_of(rt, run(rt, BIG.replace("SIZE", "600_000")))
    assert (out["code"], out["kind"]) == ("inline_too_large", "payload")
    assert out["msg"].startswith("step start: the result is 600")
    assert "`output.store.kind: inline`" in out["msg"]


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        (
            "{store: {kind: nats}}",
            "pb.yaml:8: workflow[0].output.store.kind: unknown store kind 'nats'",
        ),
        (
            "{select: [{as: x}]}",
            "workflow[0].output.select[0].path: a selected field needs a `path`",
        ),
        ("{selekt: [a]}", "workflow[0].output.selekt: unknown field"),
    ],
)
def test_bad_output_names_where_and_why(output: str, problem: str) -> None:
    text = REPRO.replace("{store: {kind: KIND}, output_select: [status]}", output)
    with pytest.raises(PlaybookError) as caught:
        load_text(text, "pb.yaml")
    assert problem in str(caught.value)


def test_store_beside_output_select_on_the_step(rt: Runtime) -> None:
    text = REPRO.replace(
        "output: {store: {kind: KIND}, output_select: [status]}",
        "output_select: [status]\n    store: {kind: payload}",
    )
    terminal = run(rt, text)
    assert result_of(rt, terminal) == {"status": "ok", "items": [1, 2, 3]}
    assert recorded(rt, terminal.execution_id, "start")["select"] == {"status": "ok"}


def test_a_workbook_entrys_output_governs_the_calling_steps_result(rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: output_workbook}
workbook:
  - name: make
    tool:
      kind: python
      code: 'result = {"status": "ok", "items": [1, 2, 3]}'
      output: {store: {kind: payload}, select: [status]}
workflow:
  - step: start
    tool: {kind: workbook, name: make}
    next: report
  - step: report
    tool: {kind: python, input: {s: "{{ start.status }}"}, code: "result = {'s': s}"}
"""
    terminal = run(rt, text)
    assert result_of(rt, terminal) == {"s": "ok"}
    ref = recorded(rt, terminal.execution_id, "start")
    assert "inline" not in ref and ref["select"] == {"status": "ok"}
