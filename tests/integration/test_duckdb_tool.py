"""The `duckdb` tool: called directly, and through whole executions where it reads earlier
steps' results (Arrow tables, lists of records, rowsets) by their step names, without JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from noetl_core.engine.entries import Entry
from noetl_core.errors import ToolError
from noetl_core.playbook import load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime
from noetl_core.tools import duckdb as duck
from noetl_core.tools.base import Rowset, ToolCall

pytestmark = pytest.mark.integration


class Services:
    def load(self, ref: Any) -> Any:
        raise AssertionError("not used here")

    def run_tool(self, tool: Any, input: Any, call: ToolCall) -> Any:
        raise AssertionError("not used here")


def call(
    fields: dict[str, Any],
    input: dict[str, Any] | None = None,
    tables: dict[str, Any] | None = None,
    asked: list[str] | None = None,
) -> ToolCall:
    def table(name: str) -> Any:
        if asked is not None:
            asked.append(name)
        return (tables or {}).get(name)

    return ToolCall(
        kind="duckdb",
        fields=fields,
        input=input or {},
        step="q",
        execution_id="E",
        command_id="C",
        attempt=1,
        names={},
        services=Services(),
        tables=table,
    )


def rows(result: Any) -> list[dict[str, Any]]:
    assert isinstance(result, Rowset)
    return result.records()


USERS = pa.table({"name": ["ann", "bob", "cy"], "age": [34, 17, 51]})


# -- the tool called directly ------------------------------------------------------------


def test_an_earlier_table_is_queried_by_its_step_name() -> None:
    out = duck.run(
        call(
            {"query": "SELECT name FROM load_users WHERE age >= 18 ORDER BY name"},
            tables={"load_users": USERS},
        )
    )
    assert isinstance(out, Rowset) and out.table.column_names == ["name"]
    assert out.value() == {
        "columns": ["name"],
        "rows": [{"name": "ann"}, {"name": "cy"}],
        "row_count": 2,
    }


def test_names_are_looked_up_as_written_and_lower_cased_but_not_in_strings() -> None:
    asked: list[str] = []
    sql = (
        "SELECT count(*) AS n, 'big' AS s FROM LOAD_USERS -- big\n"
        'JOIN "Mixed-Case" m ON true /* big */'
    )
    tables = {"load_users": USERS, "Mixed-Case": pa.table({"x": [1]}), "big": USERS}
    assert rows(duck.run(call({"query": sql}, tables=tables, asked=asked))) == [
        {"n": 3, "s": "big"}
    ]
    assert "load_users" in asked and "Mixed-Case" in asked
    assert "big" not in asked  # inside a string literal or a comment: never loaded


def test_input_tables_and_records_are_registered_by_key_over_a_step() -> None:
    step_table = pa.table({"name": ["from the step"]})
    out = duck.run(
        call(
            {"query": "SELECT p.name, count(*) AS n FROM people p, extra GROUP BY p.name"},
            input={"people": [{"name": "from input"}], "extra": USERS, "n": 3},
            tables={"people": step_table},
        )
    )
    assert rows(out) == [{"name": "from input", "n": 3}]


def test_commands_run_in_order_and_the_last_rows_are_the_result() -> None:
    commands = [
        "CREATE TABLE t (id INTEGER, tag VARCHAR)",
        "INSERT INTO t VALUES (1, 'a;b'), (2, 'c')",  # a `;` inside a string does not split
        "SELECT tag FROM t ORDER BY id",
        "UPDATE t SET id = id + 10",
        "PRAGMA enable_progress_bar",
        "CHECKPOINT",
    ]
    assert rows(duck.run(call({"commands": commands}))) == [{"tag": "a;b"}, {"tag": "c"}]


def test_statements_without_rows_give_the_changed_row_count() -> None:
    sql = "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2), (3); DELETE FROM t WHERE a > 1"
    assert duck.run(call({"command": sql})) == {"columns": [], "rows": [], "row_count": 5}
    assert duck.run(call({"command": "CREATE TABLE t (a INT)"})) == {
        "columns": [],
        "rows": [],
        "row_count": 0,
    }
    returning = "CREATE TABLE t (a INT); INSERT INTO t VALUES (4) RETURNING a * 2 AS b"
    assert rows(duck.run(call({"command": returning}))) == [{"b": 8}]


def test_params_positional_and_named() -> None:
    out = duck.run(call({"query": "SELECT ?::INT + ?::INT AS s", "params": [2, 3]}))
    assert rows(out) == [{"s": 5}]
    named = {"query": "SELECT name FROM load_users WHERE age > $min", "params": {"min": 40}}
    assert rows(duck.run(call(named, tables={"load_users": USERS}))) == [{"name": "cy"}]
    with pytest.raises(ToolError) as caught:
        duck.run(call({"query": "SELECT ?; SELECT 2", "params": [1]}))
    assert caught.value.code == "params_need_one_statement"


def test_integer_sums_stay_exact_integers() -> None:
    out = duck.run(call({"query": "SELECT sum(range) AS s, sum(range) / 2 AS h FROM range(10)"}))
    assert isinstance(out, Rowset)
    assert out.table.schema.field("s").type == pa.int64()
    assert rows(out) == [{"s": 45, "h": 22.5}]
    huge = duck.run(call({"query": "SELECT 170141183460469231731687303715884105727::HUGEINT AS h"}))
    assert isinstance(huge, Rowset) and pa.types.is_decimal(huge.table.schema.field("h").type)


@pytest.mark.parametrize(
    ("fields", "code", "index"),
    [
        ({"query": "SELECT 1; SELECT * FROM no_such_table"}, "CatalogException", 1),
        ({"query": "SELECT 1;\nSELEC 2; SELECT 3"}, "ParserException", 1),
        ({"commands": ["SELECT 1; SELECT 2", "SELECT nope FROM range(3)"]}, "BinderException", 2),
        ({"query": "SELECT 'x'::INTEGER"}, "ConversionException", 0),
    ],
)
def test_sql_errors_carry_the_duckdb_class_and_the_statement(
    fields: dict[str, Any], code: str, index: int
) -> None:
    with pytest.raises(ToolError) as caught:
        duck.run(call(fields))
    error = caught.value.to_dict()
    assert error["kind"] == "duckdb" and error["code"] == code and not error["retryable"]
    assert error["duckdb"] == {"error": code, "statement": index}
    assert f"statement {index} " in error["message"]


def test_a_database_file_persists_and_read_only_refuses_writes(tmp_path: Path) -> None:
    db = str(tmp_path / "sub" / "store.duckdb")
    duck.run(call({"command": "CREATE TABLE kv AS SELECT 1 AS k", "database": db}))
    assert rows(duck.run(call({"query": "SELECT k FROM kv", "database": db}))) == [{"k": 1}]
    with pytest.raises(ToolError) as caught:
        duck.run(call({"command": "INSERT INTO kv VALUES (2)", "database": db, "read_only": True}))
    assert caught.value.to_dict()["duckdb"]["statement"] == 0
    with pytest.raises(ToolError) as missing:
        duck.run(
            call({"query": "SELECT 1", "database": str(tmp_path / "no.db"), "read_only": True})
        )
    assert missing.value.to_dict()["duckdb"] == {"error": "IOException", "statement": None}


def test_validate_names_the_field_at_fault() -> None:
    assert duck.validate({"query": "SELECT 1"}) == []
    assert duck.validate({"commands": ["SELECT 1"], "params": [1]}) == []
    assert [p[0] for p in duck.validate({})] == ["query"]
    assert [p[0] for p in duck.validate({"query": "x", "commands": ["y"]})] == ["commands"]
    assert [p[0] for p in duck.validate({"commands": ["a", "b"], "params": [1]})] == ["params"]
    assert [p[0] for p in duck.validate({"query": 1})] == ["query"]
    assert [p[0] for p in duck.validate({"query": "x", "read_only": True})] == ["read_only"]
    assert [p[0] for p in duck.validate({"query": "x", "database": 3})] == ["database"]


# -- whole executions --------------------------------------------------------------------


def finish(rt: Runtime, text: str, workload: dict[str, Any] | None = None) -> tuple[str, Entry]:
    execution_id = rt.start(load_text(text), workload or {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None, "the execution did not finish"
    assert terminal.body["status"] == "completed", terminal.body
    return execution_id, terminal


def done(rt: Runtime, execution_id: str, step: str) -> Entry:
    return next(e for e in rt.log.find(execution_id, "done") if e.step == step)


MILLION = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: duck_million}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        import pyarrow as pa
        import pyarrow.compute as pc
        ids = pa.array(range(1_000_000), type=pa.int64())
        grp = pc.take(pa.array(["a", "b", "c", "d"]), pc.bit_wise_and(ids, 3))
        result = pa.table({"grp": grp, "value": ids})
    next: totals
  - step: totals
    tool:
      kind: duckdb
      query: |
        SELECT grp, count(*) AS n, sum(value) AS total
        FROM start GROUP BY grp ORDER BY grp
    next: check
  - step: check
    tool:
      kind: python
      input: {totals: "{{ totals }}", table: "{{ start }}"}
      code: |
        result = {"rows": totals["rows"], "start_is_table": type(table).__name__}
"""


def test_a_million_row_table_is_aggregated_by_step_name_without_json(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    big_json: list[int] = []
    to_json = payloads.to_json

    def counting_to_json(value: Any) -> str:
        text = to_json(value)
        if len(text) > 100_000:
            big_json.append(len(text))
        return text

    materialized: list[int] = []
    records = Rowset.records

    def counting_records(self: Rowset) -> list[dict[str, Any]]:
        materialized.append(self.row_count)
        return records(self)

    monkeypatch.setattr(payloads, "to_json", counting_to_json)
    monkeypatch.setattr(Rowset, "records", counting_records)
    execution_id, terminal = finish(rt, MILLION)
    start_ref = done(rt, execution_id, "start").body["result"]
    assert start_ref["format"] == "arrow" and start_ref["shape"] == "table"
    assert start_ref["rows"] == 1_000_000
    expected = [
        {"grp": g, "n": 250_000, "total": sum(range(k, 1_000_000, 4))} for k, g in enumerate("abcd")
    ]
    result = payloads.load(rt.payloads, terminal.body["result"])
    assert result == {"rows": expected, "start_is_table": "Table"}
    assert expected[0]["total"] == 124_999_500_000
    assert big_json == [] and all(n < 1000 for n in materialized)


CHAIN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: duck_chain}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        result = [{"name": "ann", "age": 34, "city": "Oslo"},
                  {"name": "bob", "age": 17, "city": "Oslo"},
                  {"name": "cy", "age": 51, "city": "Rome"}]
    next: adults
  - step: adults
    tool: {kind: duckdb, query: "SELECT name, city FROM start WHERE age >= 18"}
    next: by_city
  - step: by_city
    tool:
      kind: duckdb
      commands:
        - CREATE TABLE cities AS SELECT DISTINCT city FROM adults
        - "SELECT c.city, count(a.name) AS n FROM cities c LEFT JOIN adults a USING (city) GROUP BY c.city ORDER BY c.city"
    next: params
  - step: params
    tool:
      kind: duckdb
      query: "SELECT n FROM by_city WHERE city = $city"
      params: {city: "{{ wanted }}"}
"""


def test_records_then_a_duckdb_result_are_chained_into_the_next_duckdb_steps(
    rt: Runtime,
) -> None:
    execution_id, terminal = finish(rt, CHAIN, {"wanted": "Rome"})
    assert done(rt, execution_id, "adults").body["result"] == {
        "inline": {
            "columns": ["name", "city"],
            "rows": [{"name": "ann", "city": "Oslo"}, {"name": "cy", "city": "Rome"}],
            "row_count": 2,
        },
        "schema": [{"name": "name", "type": "string"}, {"name": "city", "type": "string"}],
    }
    by_city = payloads.load(rt.payloads, done(rt, execution_id, "by_city").body["result"])
    assert by_city["rows"] == [{"city": "Oslo", "n": 1}, {"city": "Rome", "n": 1}]
    assert payloads.load(rt.payloads, terminal.body["result"]) == {
        "columns": ["n"],
        "rows": [{"n": 1}],
        "row_count": 1,
    }


PERSISTENT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: duck_file}
workflow:
  - step: start
    tool:
      kind: python
      code: "result = [{'id': i, 'kind': 'odd' if i % 2 else 'even'} for i in range(10)]"
    next: save
  - step: save
    tool:
      kind: duckdb
      database: "{{ db }}"
      command: |
        CREATE OR REPLACE TABLE items AS SELECT * FROM start;
        INSERT INTO items VALUES (10, 'even');
    next: report
  - step: report
    tool:
      kind: duckdb
      database: "{{ db }}"
      read_only: true
      query: SELECT kind, count(*) AS n FROM items GROUP BY kind ORDER BY kind
"""


def test_a_database_file_carries_tables_from_one_step_to_the_next(
    rt: Runtime, tmp_path: Path
) -> None:
    db = tmp_path / "data" / "work.duckdb"
    execution_id, terminal = finish(rt, PERSISTENT, {"db": str(db)})
    assert db.exists()
    save = done(rt, execution_id, "save").body["result"]
    assert save == {"inline": {"columns": [], "rows": [], "row_count": 11}}
    assert payloads.load(rt.payloads, terminal.body["result"])["rows"] == [
        {"kind": "even", "n": 6},
        {"kind": "odd", "n": 5},
    ]


LARGE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: duck_large}
workflow:
  - step: start
    tool:
      kind: duckdb
      query: "SELECT range AS id, range * 3 AS triple, 'row ' || range AS label FROM range(200000)"
    next: peek
  - step: peek
    tool:
      kind: python
      input: {columns: "{{ start.columns }}", count: "{{ start.row_count }}", ref: "{{ start._ref }}"}
      code: "result = {'columns': columns, 'count': count, 'fmt': ref['format']}"
    next: total
  - step: total
    tool: {kind: duckdb, query: "SELECT count(*) AS n, sum(triple) AS s FROM start"}
"""


def test_a_large_result_is_stored_as_arrow_with_columns_and_count_inline(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    get = rt.payloads.get

    def counting(ref: dict[str, Any]) -> Any:
        reads.append(ref["key"].split("/")[2])
        return get(ref)

    monkeypatch.setattr(rt.payloads, "get", counting)
    execution_id, terminal = finish(rt, LARGE)
    ref = done(rt, execution_id, "start").body["result"]
    assert ref["format"] == "arrow" and ref["rows"] == 200_000
    assert ref["select"] == {"columns": ["id", "triple", "label"], "row_count": 200_000}
    assert done(rt, execution_id, "peek").body["result"] == {
        "inline": {"columns": ["id", "triple", "label"], "count": 200_000, "fmt": "arrow"}
    }
    # peek read only the inline selection; total read the table once, as Arrow
    assert reads == ["start"]
    total = payloads.load(rt.payloads, terminal.body["result"])
    assert total["rows"] == [{"n": 200_000, "s": 3 * sum(range(200_000))}]


ERRORS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: duck_errors}
workflow:
  - step: start
    tool:
      kind: duckdb
      query: SELECT * FROM no_such_table
      spec:
        policy:
          rules:
            - when: "{{ output.error.code == 'CatalogException' }}"
              then: {do: continue, set: {ctx.caught: "{{ output.error.duckdb }}"}}
    next: broken
  - step: broken
    tool: {kind: duckdb, query: "SELECT 1; SELEC 2"}
    next:
      arcs:
        - step: recover
          when: "{{ event.name == 'call.error' and error.code == 'ParserException' }}"
          set: {ctx.code: "{{ error.code }}"}
  - step: recover
    tool:
      kind: python
      input: {caught: "{{ caught }}", code: "{{ code }}", start: "{{ start }}"}
      code: "result = {'caught': caught, 'first': start['error']['code'], 'code': code}"
"""


def test_sql_errors_are_readable_by_policy_rules_and_recovery_arcs(rt: Runtime) -> None:
    execution_id, terminal = finish(rt, ERRORS)
    broken = done(rt, execution_id, "broken").body
    assert broken["error"]["code"] == "ParserException"
    assert broken["error"]["duckdb"] == {"error": "ParserException", "statement": 1}
    assert payloads.load(rt.payloads, terminal.body["result"]) == {
        "caught": {"error": "CatalogException", "statement": 0},
        "first": "CatalogException",
        "code": "ParserException",
    }


FAILING = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: duck_fails}
workflow:
  - step: start
    tool: {kind: duckdb, query: SELECT * FROM no_such_table}
"""


def test_without_a_rule_a_sql_error_fails_the_execution(rt: Runtime) -> None:
    execution_id = rt.start(load_text(FAILING), {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "failed"
    error = done(rt, execution_id, "start").body["error"]
    assert error["code"] == "CatalogException" and error["kind"] == "duckdb"
    assert "no_such_table" in error["message"]


PARALLEL = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: duck_parallel}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        import pyarrow as pa
        result = pa.table({"k": [i % 8 for i in range(80_000)], "v": list(range(80_000))})
    next: each
  - step: each
    loop: {in: "{{ keys }}", iterator: key, spec: {mode: parallel, max_in_flight: 8}}
    tool:
      kind: duckdb
      query: "SELECT k, count(*) AS n, sum(v) AS s FROM start WHERE k = ? GROUP BY k"
      params: ["{{ key }}"]
    next: gather
  - step: gather
    tool:
      kind: python
      input: {each: "{{ each }}"}
      code: "result = [r['rows'][0] for r in each]"
"""


def test_parallel_iterations_each_open_their_own_connection(rt: Runtime) -> None:
    keys = [7, 0, 3, 5, 1, 6, 2, 4]
    _, terminal = finish(rt, PARALLEL, {"keys": keys})
    assert payloads.load(rt.payloads, terminal.body["result"]) == [
        {"k": k, "n": 10_000, "s": sum(range(k, 80_000, 8))} for k in keys
    ]


def test_a_statement_past_its_timeout_is_interrupted_as_a_retryable_timeout() -> None:
    import time

    started = time.monotonic()
    with pytest.raises(ToolError) as failed:
        duck.run(call({"query": "SELECT count(*) FROM range(100000000000)", "timeout": 0.3}))
    assert time.monotonic() - started < 10
    assert failed.value.code == "timeout" and failed.value.retryable is True
    assert "timed out after 0.3 s" in failed.value.message
    fast = duck.run(call({"query": "SELECT 42 AS answer", "timeout": 5}))
    assert rows(fast) == [{"answer": 42}]
    with pytest.raises(ToolError) as bad:
        duck.run(call({"query": "SELECT 1", "timeout": -1}))
    assert bad.value.code == "bad_timeout"


UNQUOTED_ID = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: ids_in_sql}
workflow:
  - step: start
    tool:
      kind: duckdb
      commands:
        - CREATE TABLE runs (execution_id BIGINT, note VARCHAR)
        - INSERT INTO runs VALUES ({{ execution_id }}, 'as upstream fixtures write it')
        - SELECT execution_id, execution_id = {{ execution_id }} AS same FROM runs
"""


def test_an_execution_id_goes_unquoted_into_sql(rt: Runtime) -> None:
    execution_id = rt.start(load_text(UNQUOTED_ID), {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "completed", terminal
    result = payloads.load(rt.payloads, terminal.body["result"])
    rows = result["rows"] if isinstance(result, dict) else result.to_pylist()
    assert rows[0]["same"] is True
    assert str(rows[0]["execution_id"]) == execution_id
