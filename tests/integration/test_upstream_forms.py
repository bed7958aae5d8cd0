"""Upstream NoETL's other spellings, run here unchanged: field aliases, python `libs`
with `{from, import}`, templated `max_in_flight`, arc `cond`, step `tracing`, http's
`payload` / `form` / `verify_ssl` / `retry` and its answer's `body`."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noetl_core.devtools.http_api import DemoApi
from noetl_core.errors import PlaybookError
from noetl_core.playbook import load_file, load_text, scripts
from noetl_core.playbook.yamlsrc import parse_yaml
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

pytestmark = pytest.mark.integration

HEAD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: forms}
"""


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApi]:
    with DemoApi() as running:
        yield running


def run(rt: Runtime, text: str, workload: dict[str, Any] | None = None) -> tuple[str, Any]:
    execution_id = rt.start(load_text(text), workload or {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None
    return execution_id, terminal


def result(rt: Runtime, terminal: Any) -> Any:
    assert terminal.body["status"] == "completed", terminal.body
    return payloads.load(rt.payloads, terminal.body["result"])


def done_bodies(rt: Runtime, execution_id: str, step: str) -> list[dict[str, Any]]:
    return [
        e.body
        for e in rt.log.entries(execution_id)
        if e.kind == "done" and e.step == step and "status" in e.body
    ]


# -- python libs ------------------------------------------------------------------------

LIBS = (
    HEAD
    + """
workflow:
  - step: start
    tool:
      kind: python
      libs:
        dumps: {from: json, import: dumps}
        join: {from: os.path, import: join}
        b64: base64
      code: |
        result = {"text": dumps({"a": 1}), "path": join("x", "y"), "enc": b64.b64encode(b"hi").decode()}
"""
)


def test_libs_from_import_are_imported_before_the_code_runs(rt: Runtime) -> None:
    _, terminal = run(rt, LIBS)
    assert result(rt, terminal) == {"text": '{"a": 1}', "path": "x/y", "enc": "aGk="}


def test_a_lib_that_cannot_be_imported_fails_the_step_naming_it(rt: Runtime) -> None:
    text = LIBS.replace("{from: json, import: dumps}", "{from: json, import: no_such_thing}")
    _, terminal = run(rt, text)
    assert terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert error["code"] == "ImportError"
    assert "libs.dumps: cannot import no_such_thing from json" in error["message"]


def test_a_malformed_lib_is_a_validation_error_at_its_path() -> None:
    text = LIBS.replace("{from: json, import: dumps}", "{from: json}")
    with pytest.raises(PlaybookError) as caught:
        load_text(text, "pb.yaml")
    assert "pb.yaml:11: workflow[0].tool.libs.dumps: a module name" in str(caught.value)


# -- templated max_in_flight ----------------------------------------------------------

WIDE = (
    HEAD
    + """
workload: {width: 2}
workflow:
  - step: start
    loop:
      in: [1, 2, 3, 4, 5]
      iterator: n
      spec: {mode: parallel, max_in_flight: "{{ workload.width }}"}
    tool: {kind: python, args: {n: "{{ n }}"}, code: "result = n * 10"}
"""
)


def test_a_templated_max_in_flight_is_rendered_when_the_loop_starts(rt: Runtime) -> None:
    execution_id, terminal = run(rt, WIDE, {"width": 3})
    assert result(rt, terminal) == [10, 20, 30, 40, 50]
    activation = [b for b in done_bodies(rt, execution_id, "start") if "loop" in b]
    assert activation[0]["loop"] == {"length": 5, "width": 3}


@pytest.mark.parametrize("width", [0, -2, "many", 1.5])
def test_a_max_in_flight_that_is_no_positive_integer_fails_the_step(
    rt: Runtime, width: Any
) -> None:
    _, terminal = run(rt, WIDE, {"width": width})
    assert terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert error["kind"] == "template"
    assert (
        "step start: loop.spec.max_in_flight: '{{ workload.width }}' rendered to"
        in (error["message"])
    )
    assert "expected a positive integer" in error["message"]


def test_a_literal_max_in_flight_that_is_no_integer_is_a_validation_error() -> None:
    with pytest.raises(PlaybookError) as caught:
        load_text(WIDE.replace('"{{ workload.width }}"', "lots"), "pb.yaml")
    assert "pb.yaml:12: workflow[0].loop.spec.max_in_flight: `max_in_flight` must be" in str(
        caught.value
    )


# -- arcs and steps -------------------------------------------------------------------

ROUTES = (
    HEAD
    + """
workflow:
  - step: start
    tracing: {enabled: true, sample: 1.0}
    tool: {kind: python, code: "result = {'n': 3}"}
    next:
      spec: {mode: exclusive, on_no_match: complete}
      arcs:
        - step: small
          cond: "{{ start.n < 2 }}"
        - step: big
          cond: "{{ start.n >= 2 }}"
  - step: small
    tool: {kind: python, code: "result = 'small'"}
  - step: big
    tool: {kind: python, code: "result = 'big'"}
"""
)


def test_arc_cond_is_when_and_tracing_is_recorded_in_the_step_entries(rt: Runtime) -> None:
    execution_id, terminal = run(rt, ROUTES)
    assert result(rt, terminal) == "big"
    (body,) = done_bodies(rt, execution_id, "start")
    assert body["meta"]["tracing"] == {"enabled": True, "sample": 1.0}
    (other,) = done_bodies(rt, execution_id, "big")
    assert "tracing" not in other.get("meta", {})


def test_on_no_match_fail_fails_a_step_none_of_whose_arcs_match(rt: Runtime) -> None:
    guarded = ROUTES.replace('cond: "{{ start', "cond: \"{{ event.name == 'call.done' and start")
    text = guarded.replace("on_no_match: complete", "on_no_match: fail").replace(">= 2", "> 5")
    _, terminal = run(rt, text)
    assert terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert (error["kind"], error["code"]) == ("routing", "no_arc_matched")
    assert error["message"] == "step start: no arc matched (next.spec.on_no_match: fail)"
    for ends in ("complete", "quiet", "end"):  # the branch ends
        text = ROUTES.replace("complete", ends).replace(">= 2", "> 5")
        _, ended = run(rt, text)
        assert result(rt, ended) == {"n": 3}
    with pytest.raises(PlaybookError) as caught:
        load_text(ROUTES.replace("on_no_match: complete", "on_no_match: sulk"), "pb.yaml")
    assert "pb.yaml:11: workflow[0].next.spec.on_no_match: Input should be 'complete' or" in str(
        caught.value
    )


def test_cond_and_when_together_are_refused() -> None:
    text = ROUTES.replace('cond: "{{ start.n < 2 }}"', 'cond: "{{ true }}"\n          when: x')
    with pytest.raises(PlaybookError) as caught:
        load_text(text, "pb.yaml")
    assert "workflow[0].next.arcs[0].cond: `cond` is an alias of `when`" in str(caught.value)


# -- http -----------------------------------------------------------------------------

HTTP = (
    HEAD
    + """
workflow:
  - step: start
    tool:
      - get:
          kind: http
          url: "{{ workload.api }}/echo"
          verify_ssl: false
          payload: {q: one}
      - post:
          kind: http
          method: POST
          url: "{{ workload.api }}/echo"
          payload: {a: [1, 2]}
      - form:
          kind: http
          method: POST
          url: "{{ workload.api }}/echo"
          form: {a: "1", b: two}
  - step: check
    tool:
      kind: python
      args:
        got: "{{ start.body }}"
        code: "{{ start.status_code }}"
      code: "result = {'code': code, 'body': got['body']}"
"""
)


def test_http_payload_form_verify_ssl_and_the_answers_body(rt: Runtime, api: DemoApi) -> None:
    text = HTTP.replace("  - step: check", "    next: check\n  - step: check")
    _, terminal = run(rt, text, {"api": api.url})
    assert result(rt, terminal) == {"code": 200, "body": "a=1&b=two"}
    requests = [r for r in api.requests if r.get("path") == "/echo"][-3:]
    assert [r["method"] for r in requests] == ["GET", "POST", "POST"]


def test_http_payload_is_the_query_of_a_get_and_the_json_body_otherwise() -> None:
    loaded = load_text(HTTP)
    tasks = loaded.playbook.workflow[0].tool
    assert isinstance(tasks, list)
    assert tasks[0].fields()["verify"] is False and "verify_ssl" not in tasks[0].fields()
    assert tasks[2].fields()["data"] == {"a": "1", "b": "two"}
    from noetl_core.tools import http

    assert http._payload({"payload": {"q": "one"}}, "GET") == {"params": {"q": "one"}}
    assert http._payload({"payload": {"a": [1]}}, "POST") == {"json": {"a": [1]}}


RETRY = (
    HEAD
    + """
workflow:
  - step: start
    tool:
      kind: http
      url: "{{ workload.api }}/flaky/{{ workload.key }}?fail=2&status=503"
      retry: {max_attempts: 3, initial_delay: 0, backoff_multiplier: 2}
"""
)


def test_http_retry_is_a_retry_policy(rt: Runtime, api: DemoApi) -> None:
    _, terminal = run(rt, RETRY, {"api": api.url, "key": "retry-ok"})
    assert result(rt, terminal)["data"] == {"key": "retry-ok", "calls": 3}
    _, failed = run(
        rt,
        RETRY.replace("max_attempts: 3", "max_attempts: 2"),
        {
            "api": api.url,
            "key": "retry-short",
        },
    )
    assert failed.body["status"] == "failed"
    assert failed.body["error"]["code"] == "http_503"


def test_http_retry_with_an_unknown_key_is_refused() -> None:
    with pytest.raises(PlaybookError) as caught:
        load_text(RETRY.replace("backoff_multiplier: 2", "backof: 2"), "pb.yaml")
    assert "pb.yaml:11: workflow[0].tool.retry: `retry` takes max_attempts" in str(caught.value)


# -- postgres / duckdb credential -----------------------------------------------------


@pytest.mark.parametrize("kind,sql", [("postgres", "command"), ("duckdb", "query")])
def test_credential_is_auth(kind: str, sql: str) -> None:
    text = (
        HEAD
        + f"""
workflow:
  - step: start
    tool: {{kind: {kind}, credential: warehouse, {sql}: "select 1"}}
"""
    )
    fields = load_text(text).playbook.workflow[0].tool
    assert not isinstance(fields, list)
    assert fields.fields()["auth"] == "warehouse" and "credential" not in fields.fields()
    both = text.replace("credential: warehouse", "credential: a, auth: b")
    with pytest.raises(PlaybookError) as caught:
        load_text(both, "pb.yaml")
    assert "workflow[0].tool.credential: `credential` is an alias of `auth`" in str(caught.value)


ASSERTED = (
    HEAD
    + """
workbook:
  - name: double
    assert: {expects: [x], returns: [doubled, parts.1, data.doubled]}
    tool: {kind: python, code: "result = {'doubled': x * 2, 'parts': [x, x]}"}
workflow:
  - step: start
    tool: {kind: workbook, name: double, args: {x: 4}}
"""
)


def test_workbook_assert_checks_the_inputs_and_the_result(rt: Runtime) -> None:
    _, terminal = run(rt, ASSERTED)
    assert result(rt, terminal) == {"doubled": 8, "parts": [4, 4]}
    _, failed = run(rt, ASSERTED.replace("args: {x: 4}", "args: {y: 4}"))
    assert failed.body["error"]["code"] == "assert_failed"
    assert (
        "workbook entry 'double' assert: expects input x, not given"
        in (failed.body["error"]["message"])
    )
    _, failed = run(rt, ASSERTED.replace("parts.1,", "parts.2,"))
    assert "assert: returns parts.2, not in its result" in failed.body["error"]["message"]
    with pytest.raises(PlaybookError) as caught:
        load_text(ASSERTED.replace("returns:", "gives:"), "pb.yaml")
    assert "pb.yaml:8: workbook[0].assert.gives: `assert` takes `expects` and `returns`" in str(
        caught.value
    )


# -- script forms ---------------------------------------------------------------------

SCRIPTED = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: scripted, path: forms/scripted}
workload: {name: ada, script: scripts/hello.py}
workflow:
  - step: start
    tool:
      kind: python
      script:
        uri: "{{ workload.script }}"
        source: {type: file}
      args: {name: "{{ workload.name }}"}
    next: count
  - step: count
    tool:
      kind: duckdb
      script: {uri: ./sql/count.sql, source: {type: file}}
    next: greet
  - step: greet
    tool:
      kind: python
      script:
        source:
          type: inline
          code: "result = {'greeting': {{ start.greeting | tojson }}, 'n': {{ count.rows[0].n }}}"
"""

HELLO = 'def main(name):\n    return {"greeting": f"héllo {name} \\u2028"}\n'


def scripted_tree(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "sql").mkdir()
    (tmp_path / "scripts" / "hello.py").write_text(HELLO, encoding="utf-8")
    (tmp_path / "sql" / "count.sql").write_text("select 3 as n", encoding="utf-8")
    (tmp_path / "pb.yaml").write_text(SCRIPTED, encoding="utf-8")
    return tmp_path / "pb.yaml"


def test_file_scripts_are_embedded_when_loaded_and_never_read_again(
    rt: Runtime, tmp_path: Path
) -> None:
    loaded = load_file(scripted_tree(tmp_path))
    assert loaded.source.startswith(SCRIPTED)  # every line of the file keeps its number
    assert "x-noetl-scripts:" in loaded.source
    shutil.rmtree(tmp_path / "scripts")
    shutil.rmtree(tmp_path / "sql")
    again = load_text(loaded.source)  # as a block re-reads the stored source
    assert again.source == loaded.source
    start = again.playbook.workflow[0].tool
    assert not isinstance(start, list) and start.fields()["code"] == HELLO
    _, terminal = run(rt, loaded.source)
    assert result(rt, terminal) == {"greeting": "héllo ada \u2028", "n": 3}


@pytest.mark.parametrize(
    "code",
    ["a\x00b\x7fc", "c\x85d\u2028e\u2029", 'e\U0001f600f"\\\\g\tz\r\n', "\ufeffh\ud7ff\ufffd"],
)
def test_embedded_script_text_reads_back_exactly(code: str) -> None:
    text = scripts.embed(HEAD + "workflow: []\n", {"./odd.py": code})
    data, _ = parse_yaml(text, "pb.yaml")
    assert data[scripts.EMBED_KEY] == {"./odd.py": code}


def test_a_catalog_playbook_runs_its_embedded_scripts_without_the_files(
    rt: Runtime, tmp_path: Path
) -> None:
    registered = rt.catalog.register(scripted_tree(tmp_path))
    shutil.rmtree(tmp_path / "scripts")
    shutil.rmtree(tmp_path / "sql")
    loaded = rt.catalog.resolve(registered.path)
    execution_id = rt.start(loaded, {})
    terminal = rt.wait(execution_id, 30)
    assert result(rt, terminal) == {"greeting": "héllo ada \u2028", "n": 3}
    assert not rt.catalog.register_loaded(loaded).new  # same text, same version


def test_a_missing_script_file_names_the_file_the_line_and_the_path(tmp_path: Path) -> None:
    file = scripted_tree(tmp_path)
    (tmp_path / "sql" / "count.sql").unlink()
    with pytest.raises(PlaybookError) as caught:
        load_file(file)
    message = str(caught.value)
    assert f"{file}:17: workflow[1].tool.script: script file './sql/count.sql' not found" in (
        message
    )
    assert str(tmp_path / "sql" / "count.sql") in message


def test_a_file_script_in_a_text_without_a_folder_is_refused() -> None:
    with pytest.raises(PlaybookError) as caught:
        load_text(SCRIPTED, "pb.yaml")
    message = str(caught.value)
    assert "pb.yaml:9: workflow[0].tool.script: script file 'scripts/hello.py' is not embedded" in (
        message
    )
    assert "noetl register -f FILE" in message


def test_a_postgres_sql_file_becomes_its_command(tmp_path: Path) -> None:
    (tmp_path / "ddl.sql").write_text("create table t (id int);\ninsert into t values (1);")
    (tmp_path / "pb.yaml").write_text(
        HEAD
        + """
workflow:
  - step: start
    tool:
      kind: postgres
      credential: warehouse
      command: "select 'ignored: the script wins'"
      script: {uri: ddl.sql, source: {type: file}}
"""
    )
    tool = load_file(tmp_path / "pb.yaml").playbook.workflow[0].tool
    assert not isinstance(tool, list)
    assert tool.fields() == {
        "auth": "warehouse",
        "command": "create table t (id int);\ninsert into t values (1);",
    }


def test_a_script_file_with_a_syntax_error_is_reported_at_the_script(tmp_path: Path) -> None:
    file = scripted_tree(tmp_path)
    (tmp_path / "scripts" / "hello.py").write_text("def main(:\n")
    with pytest.raises(PlaybookError) as caught:
        load_file(file)
    assert f"{file}:9: workflow[0].tool.code: Python syntax error at code line 1" in str(
        caught.value
    )


# -- a playbook task in a pipeline ------------------------------------------------------

CHILD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: child, path: forms/child}
workload: {n: 0}
workflow:
  - step: start
    tool: {kind: python, args: {n: "{{ workload.n }}"}, code: "result = {'doubled': n * 2}"}
"""

PARENT = (
    HEAD
    + """
workflow:
  - step: start
    tool:
      - prepare:
          kind: python
          code: "result = {'n': 21}"
          spec:
            policy:
              rules:
                - else: {do: continue, set_iter: {seen: prepared}}
      - call_child:
          kind: playbook
          path: forms/child
          args: {n: "{{ prepare.n }}"}
      - after:
          kind: python
          args: {child: "{{ call_child }}", first: "{{ prepare.n }}", seen: "{{ iter.seen }}"}
          code: "result = {'child': child, 'first': first, 'seen': seen}"
    next: report
  - step: report
    tool: {kind: python, args: {got: "{{ start }}"}, code: "result = got"}
"""
)


def test_a_playbook_task_runs_its_child_and_the_pipeline_goes_on(rt: Runtime) -> None:
    rt.catalog.register_loaded(load_text(CHILD))
    execution_id, terminal = run(rt, PARENT)
    assert result(rt, terminal) == {"child": {"doubled": 42}, "first": 21, "seen": "prepared"}
    kinds = [
        (e.kind, e.body.get("status")) for e in rt.log.entries(execution_id) if e.step == "start"
    ]
    assert ("attempt", "continue") in kinds and ("pending", None) in kinds
    assert [b["status"] for b in done_bodies(rt, execution_id, "start")] == ["ok"]


def test_a_failed_child_of_a_pipeline_task_fails_the_step(rt: Runtime) -> None:
    rt.catalog.register_loaded(load_text(CHILD.replace("n * 2", "n / 0")))
    _, terminal = run(rt, PARENT)
    assert terminal.body["status"] == "failed"
    assert terminal.body["error"]["code"] == "child_failed"


def test_a_child_as_the_last_task_gives_the_step_its_result(rt: Runtime) -> None:
    rt.catalog.register_loaded(load_text(CHILD))
    text = (
        PARENT.split("      - after:")[0]
        + "    next: report\n"
        + PARENT.split("    next: report\n")[1]
    )
    _, terminal = run(rt, text)
    assert result(rt, terminal) == {"doubled": 42}


def test_a_postgres_sql_file_script_runs_with_credential(
    rt: Runtime, postgres_server: Any, tmp_path: Path
) -> None:
    rt.credentials.put(postgres_server.credential("pg_forms"))
    table = f"t_{uuid.uuid4().hex[:10]}"
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "make.sql").write_text(
        f"create table {table} (id int);\n"
        f"insert into {table} values ({{{{ workload.first }}}}), (2);\n"
        f"select count(*) as n, sum(id) as total from {table};\n"
    )
    (tmp_path / "pb.yaml").write_text(
        HEAD
        + """
workload: {first: 40}
workflow:
  - step: start
    tool:
      kind: postgres
      credential: pg_forms
      script: {uri: sql/make.sql, source: {type: file}}
"""
    )
    loaded = load_file(tmp_path / "pb.yaml")
    shutil.rmtree(tmp_path / "sql")
    execution_id = rt.start(loaded, {})
    terminal = rt.wait(execution_id, 30)
    assert result(rt, terminal) == {
        "columns": ["n", "total"],
        "rows": [{"n": 2, "total": 42}],
        "row_count": 1,
    }
