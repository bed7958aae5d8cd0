"""The `postgres` tool against a real PostgreSQL (one throwaway server per session):
called directly, and through whole executions with credentials, large Arrow results,
policies, recovery arcs and rollback."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from noetl_core.devtools.postgres import PostgresServer, free_port
from noetl_core.engine.entries import Entry
from noetl_core.errors import KeychainError, ToolError
from noetl_core.keychain import CredentialStore, Sealer, SecretCache, Secrets
from noetl_core.playbook import load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime
from noetl_core.tools import postgres as pg
from noetl_core.tools.base import Rowset, ToolCall

pytestmark = pytest.mark.integration


class Services:
    def load(self, ref: Any) -> Any:
        raise AssertionError("not used here")

    def run_tool(self, tool: Any, input: Any, call: ToolCall) -> Any:
        raise AssertionError("not used here")


@pytest.fixture
def server(postgres_server: PostgresServer) -> PostgresServer:
    return postgres_server


@pytest.fixture
def store(tmp_path: Path, server: PostgresServer) -> CredentialStore:
    found = CredentialStore(tmp_path / "credentials")
    found.put(server.credential("pg_local"))
    return found


@pytest.fixture
def table() -> str:
    """A table name of its own for each test (the server is shared by the session)."""
    return f"t_{uuid.uuid4().hex[:10]}"


def call(fields: dict[str, Any], store: CredentialStore) -> ToolCall:
    return ToolCall(
        kind="postgres",
        fields=fields,
        input={},
        step="q",
        execution_id="E",
        command_id="C",
        attempt=1,
        names={},
        services=Services(),
        secrets=Secrets(
            execution_id="E",
            entries=[],
            store=store,
            cache=SecretCache(),
            sealer=Sealer(Fernet.generate_key),
        ),
    )


def failure(fields: dict[str, Any], store: CredentialStore) -> ToolError:
    with pytest.raises(ToolError) as caught:
        pg.run(call(fields, store))
    return caught.value


def scalar(server: PostgresServer, sql: str) -> Any:
    with server.connect() as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


def finish(
    rt: Runtime, text: str, workload: dict[str, Any] | None = None, status: str = "completed"
) -> tuple[str, Entry]:
    execution_id = rt.start(load_text(text), workload or {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None, "the execution did not finish"
    assert terminal.body["status"] == status, terminal.body
    return execution_id, terminal


def done(rt: Runtime, execution_id: str, step: str) -> Entry:
    return next(e for e in rt.log.find(execution_id, "done") if e.step == step)


def result(rt: Runtime, terminal: Entry) -> Any:
    return payloads.load(rt.payloads, terminal.body["result"])


# -- splitting and validation (no server) ------------------------------------------------


def test_statements_split_on_semicolons_outside_quotes_comments_and_bodies() -> None:
    sql = """
        -- a comment; not a statement
        CREATE TABLE "a;b" (v text);   /* block; /* nested; */ still; */
        INSERT INTO "a;b" VALUES ('x;y'), (E'it\\'s;'), ('o''k;');
        CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$;
        CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql
          BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END; SELECT 2; END;
        SELECT $$;$$, $1;
        ;;  -- empty statements vanish
        SELECT 'last'
    """
    parts = [" ".join(p.split()) for p in pg.split_statements(sql)]
    assert parts == [
        '-- a comment; not a statement CREATE TABLE "a;b" (v text)',
        "/* block; /* nested; */ still; */ INSERT INTO \"a;b\" VALUES ('x;y'), (E'it\\'s;'), ('o''k;')",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$",
        "CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END; SELECT 2; END",
        "SELECT $$;$$, $1",
        "-- empty statements vanish SELECT 'last'",
    ]
    assert pg.split_statements("-- only a comment;\n /* and; this */ ;") == []


def test_validation_reports_missing_sql_auth_and_params_on_many_statements() -> None:
    assert pg.validate({"auth": "pg"}) == [
        ("command", "`postgres` needs `command` (or `query`): one or more SQL statements")
    ]
    problems = dict(pg.validate({"command": "SELECT 1; SELECT 2", "params": [1]}))
    assert "single statement" in problems["params"] and "2" in problems["params"]
    assert "needs `auth`" in problems["auth"]
    assert pg.validate({"auth": "{{ pg_auth }}", "query": "SELECT %s", "params": [1]}) == []
    assert pg.validate({"db_host": "h", "command": ["SELECT 1", "SELECT 2"]}) == []
    assert dict(pg.validate({"auth": "pg", "command": "SELECT 1", "timeout": -1}))["timeout"]
    assert dict(pg.validate({"auth": {"credential": "pg"}, "command": "x", "port": "abc"}))["port"]
    assert dict(pg.validate({"auth": "pg", "command": "SELECT 1", "query": "SELECT 2"}))["query"]


# -- the tool called directly ------------------------------------------------------------


def test_create_insert_with_params_and_select(store: CredentialStore, table: str) -> None:
    out = pg.run(
        call({"auth": "pg_local", "command": f"CREATE TABLE {table} (id int, name text)"}, store)
    )
    assert out == {"columns": [], "rows": [], "row_count": 0}
    for params in ([1, "ann"], {"id": 2, "name": "bob"}):
        sql = (
            f"INSERT INTO {table} VALUES (%s, %s)"
            if isinstance(params, list)
            else f"INSERT INTO {table} VALUES (%(id)s, %(name)s)"
        )
        out = pg.run(call({"auth": "pg_local", "command": sql, "params": params}, store))
        assert out == {"columns": [], "rows": [], "row_count": 1}
    out = pg.run(call({"auth": "pg_local", "query": f"SELECT * FROM {table} ORDER BY id"}, store))
    assert isinstance(out, Rowset)
    assert out.value() == {
        "columns": ["id", "name"],
        "rows": [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}],
        "row_count": 2,
    }


def test_values_of_many_types_survive_in_arrow(store: CredentialStore) -> None:
    sql = """
        SELECT 12.50::numeric(10, 2) AS price, 'NaN'::numeric AS nan, DATE '2024-02-29' AS day,
               TIMESTAMPTZ '2024-01-02 03:04:05+02' AS at, TIMESTAMP '2024-01-02 03:04:05' AS local,
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, '{"k": [1, 2.50]}'::jsonb AS doc,
               '[1, 2.50]'::json AS raw, ARRAY[1, 2] AS ints, '\\xdead'::bytea AS blob,
               NULL::text AS nothing, 1.5::float8 AS f, true AS yes, 7::int8 AS n,
               '1 day'::interval AS span, '10.0.0.1'::inet AS addr, 1 AS dup, 2 AS dup
    """
    out = pg.run(call({"auth": "pg_local", "query": sql}, store))
    assert isinstance(out, Rowset)
    schema = {f.name: str(f.type) for f in out.table.schema}
    assert schema["price"] == "decimal128(4, 2)" and schema["day"] == "date32[day]"
    assert schema["at"] == "timestamp[us, tz=UTC]" and schema["local"] == "timestamp[us]"
    assert schema["n"] == "int64" and schema["ints"] == "list<item: int64>"
    assert out.columns[-2:] == ["dup", "dup_1"]
    (row,) = out.records()
    assert row["price"] == decimal.Decimal("12.50") and row["nan"] == "NaN"
    assert row["day"] == dt.date(2024, 2, 29)
    assert row["at"] == dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.UTC)
    assert row["local"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert row["id"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert row["doc"] == '{"k": [1, 2.50]}' and row["raw"] == "[1, 2.50]"
    assert row["ints"] == [1, 2] and row["blob"] == b"\xde\xad" and row["nothing"] is None
    assert row["f"] == 1.5 and row["yes"] is True and row["span"] == dt.timedelta(days=1)
    assert row["addr"] == "10.0.0.1" and (row["dup"], row["dup_1"]) == (1, 2)


def test_an_empty_select_keeps_its_columns(store: CredentialStore) -> None:
    out = pg.run(call({"auth": "pg_local", "query": "SELECT 1 AS a, 'x' AS b WHERE false"}, store))
    assert isinstance(out, Rowset)
    assert out.value() == {"columns": ["a", "b"], "rows": [], "row_count": 0}


def test_the_last_statement_returning_rows_is_the_output(
    store: CredentialStore, table: str
) -> None:
    command = [
        f"CREATE TABLE {table} (v int)",
        f"INSERT INTO {table} SELECT generate_series(1, 5)",
        f"SELECT sum(v) AS total FROM {table}",
        f"UPDATE {table} SET v = v + 1",
    ]
    out = pg.run(call({"auth": "pg_local", "command": command}, store))
    assert isinstance(out, Rowset) and out.value()["rows"] == [{"total": 15}]


def test_connection_fields_without_auth_and_the_password_is_masked(
    server: PostgresServer, store: CredentialStore
) -> None:
    fields = {
        "host": server.host,
        "port": str(server.port),
        "user": server.user,
        "password": server.password,
        "database": server.dbname,
        "command": "SELECT current_database() = %s AS same",
        "params": [server.dbname],
    }
    c = call(fields, store)
    out = pg.run(c)
    assert isinstance(out, Rowset) and out.records() == [{"same": True}]
    assert c.secrets is not None
    assert c.secrets.redactor.text(f"pw={server.password}") == "pw=***"


def test_a_script_with_function_bodies_runs_as_split(store: CredentialStore, table: str) -> None:
    script = f"""
        -- setup; with comments
        CREATE FUNCTION {table}_f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$;
        CREATE FUNCTION {table}_g(x int) RETURNS int LANGUAGE sql
          BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 10 ELSE 0 END; END;
        SELECT {table}_f() + {table}_g(1) AS total, 'a;b' AS text, $$c;d$$ AS dollars;
    """
    out = pg.run(call({"auth": "pg_local", "command": script}, store))
    assert isinstance(out, Rowset)
    assert out.records() == [{"total": 11, "text": "a;b", "dollars": "c;d"}]


def test_base64_commands_and_autocommit(store: CredentialStore, table: str) -> None:
    import base64

    sql = f"CREATE TABLE {table} (v int); VACUUM {table}; SELECT count(*) AS n FROM {table}"
    encoded = base64.b64encode(sql.encode()).decode()
    out = pg.run(call({"auth": "pg_local", "command_b64": encoded, "autocommit": True}, store))
    assert isinstance(out, Rowset) and out.records() == [{"n": 0}]
    error = failure({"auth": "pg_local", "command": f"VACUUM {table}"}, store)
    assert error.code == "25001"  # VACUUM cannot run inside a transaction block


def test_a_statement_timeout_is_a_retryable_timeout(store: CredentialStore) -> None:
    error = failure({"auth": "pg_local", "command": "SELECT pg_sleep(5)", "timeout": 0.2}, store)
    assert error.code == "timeout" and error.retryable is True
    assert error.details["pg"]["sqlstate"] == "57014" and error.details["pg"]["statement"] == 0


def test_a_constraint_violation_carries_the_diagnostics(store: CredentialStore, table: str) -> None:
    command = f"CREATE TABLE {table} (id int PRIMARY KEY); INSERT INTO {table} VALUES (1), (1)"
    error = failure({"auth": "pg_local", "command": command}, store)
    assert error.code == "23505" and error.retryable is False and error.kind == "postgres"
    details = error.details["pg"]
    assert details["statement"] == 1 and details["table"] == table
    assert details["constraint"] == f"{table}_pkey" and "already exists" in details["detail"]
    assert error.message.startswith("step q: postgres statement 2 of 2 failed (INSERT INTO")


def test_mapping_params_are_sent_as_jsonb(store: CredentialStore) -> None:
    fields = {
        "auth": "pg_local",
        "query": "SELECT %(doc)s ->> 'k' AS k, jsonb_array_length(%(items)s) AS n",
        "params": {"doc": {"k": "v"}, "items": [{"a": 1}, {"b": 2}]},
    }
    out = pg.run(call(fields, store))
    assert isinstance(out, Rowset) and out.records() == [{"k": "v", "n": 2}]


def test_an_auth_template_that_resolved_to_nothing_is_named(store: CredentialStore) -> None:
    error = failure({"auth": None, "command": "SELECT 1"}, store)
    assert error.code == "bad_auth" and "`auth` is empty" in error.message


def test_params_with_several_statements_are_refused(store: CredentialStore) -> None:
    error = failure({"auth": "pg_local", "command": "SELECT 1; SELECT %s", "params": [1]}, store)
    assert error.code == "bad_params"


def test_an_unknown_alias_and_a_wrong_credential_type(store: CredentialStore) -> None:
    with pytest.raises(KeychainError, match="nope"):
        pg.run(call({"auth": "nope", "command": "SELECT 1"}, store))
    store.put({"name": "tok", "type": "bearer", "data": {"token": "abcdef"}})
    assert failure({"auth": "tok", "command": "SELECT 1"}, store).code == "bad_credential"


def test_direct_connection_failures_are_classified(
    server: PostgresServer, store: CredentialStore
) -> None:
    closed = failure({"auth": "pg_local", "db_port": free_port(), "command": "SELECT 1"}, store)
    assert closed.code == "connection_failed" and closed.retryable is True
    wrong = "wrong-" + secrets.token_hex(8)
    auth = failure({"auth": "pg_local", "db_password": wrong, "command": "SELECT 1"}, store)
    assert auth.code == "auth_failed" and auth.retryable is False
    assert auth.details["pg"]["sqlstate"] == "28P01"
    assert wrong not in str(auth.to_dict()) and server.password not in str(auth.to_dict())
    missing = failure({"auth": "pg_local", "db_name": "no_such_db", "command": "SELECT 1"}, store)
    assert missing.code == "3D000" and missing.retryable is False


# -- whole executions --------------------------------------------------------------------

CRUD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pg_crud}
workload: {table: t, item: {name: widget, price: 9.99}}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_local
      command: "CREATE TABLE {{ table }} (id serial PRIMARY KEY, name text, price numeric(8, 2), day date)"
    next: insert
  - step: insert
    tool:
      kind: postgres
      auth: pg_local
      command: "INSERT INTO {{ table }} (name, price, day) VALUES (%s, %s, %s) RETURNING id"
      params: ["{{ item.name }}", "{{ item.price }}", "2024-05-01"]
    next: select
  - step: select
    tool:
      kind: postgres
      auth: pg_local
      query: "SELECT id, name, price, day FROM {{ table }} WHERE id = {{ insert.rows[0].id }}"
    next: last
  - step: last
    tool:
      kind: python
      input: {found: "{{ select }}", inserted: "{{ insert.row_count }}"}
      code: "result = {'found': found, 'inserted': inserted}"
"""


def test_create_insert_with_params_and_select_through_an_execution(
    rt: Runtime, server: PostgresServer, table: str
) -> None:
    rt.credentials.put(server.credential("pg_local"))
    _, terminal = finish(rt, CRUD, {"table": table})
    assert result(rt, terminal) == {
        "found": {
            "columns": ["id", "name", "price", "day"],
            "rows": [{"id": 1, "name": "widget", "price": 9.99, "day": "2024-05-01"}],
            "row_count": 1,
        },
        "inserted": 1,
    }
    assert scalar(server, f"SELECT count(*) FROM {table}") == 1


SCRIPT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pg_script}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: "{{ pg_auth }}"
      command: |
        CREATE TABLE {{ table }} (k text, v int);
        INSERT INTO {{ table }} VALUES ('a', 1), ('b', 2), ('c;', 3);
        SELECT k, v FROM {{ table }} ORDER BY v;
        UPDATE {{ table }} SET v = v * 10;
"""


def test_several_statements_in_one_command_with_auth_from_the_workload(
    rt: Runtime, server: PostgresServer, table: str
) -> None:
    rt.credentials.put(server.credential("pg_from_workload"))
    _, terminal = finish(rt, SCRIPT, {"pg_auth": "pg_from_workload", "table": table})
    assert result(rt, terminal) == {
        "columns": ["k", "v"],
        "rows": [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "c;", "v": 3}],
        "row_count": 3,
    }
    assert scalar(server, f"SELECT sum(v) FROM {table}") == 60


FIELDS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pg_fields}
workflow:
  - step: start
    tool:
      kind: postgres
      db_host: "{{ host }}"
      db_port: "{{ port }}"
      db_user: "{{ user }}"
      db_password: "{{ password }}"
      db_name: "{{ dbname }}"
      sslmode: disable
      query: "SELECT 40 + %(n)s AS answer"
      params: {n: 2}
"""


def test_connection_fields_without_auth(rt: Runtime, server: PostgresServer) -> None:
    workload = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "dbname": server.dbname,
    }
    _, terminal = finish(rt, FIELDS, workload)
    assert result(rt, terminal) == {"columns": ["answer"], "rows": [{"answer": 42}], "row_count": 1}


LARGE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pg_large}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_local
      query: "SELECT g AS id, 'name ' || g AS name, g * 1.5 AS score FROM generate_series(1, 100000) g"
    next: count
  - step: count
    tool:
      kind: python
      input: {n: "{{ start.row_count }}", columns: "{{ start.columns }}"}
      code: "result = {'n': n, 'columns': columns}"
    next: rows
  - step: rows
    tool:
      kind: python
      input: {n: "{{ start.rows | length }}", last: "{{ start.rows[-1] }}"}
      code: "result = {'n': n, 'last': last}"
"""


def test_a_large_select_is_stored_as_arrow_and_loaded_only_when_rows_are_read(
    rt: Runtime, server: PostgresServer
) -> None:
    rt.credentials.put(server.credential("pg_local"))
    reads: list[str] = []
    get = rt.payloads.get

    def counting(ref: dict[str, Any]) -> Any:
        reads.append(ref["key"])
        return get(ref)

    rt.payloads.get = counting  # type: ignore[method-assign]
    execution_id, terminal = finish(rt, LARGE)
    ref = done(rt, execution_id, "start").body["result"]
    assert ref["format"] == "arrow" and ref["rowset"] is True
    assert ref["select"] == {"columns": ["id", "name", "score"], "row_count": 100000}
    count = done(rt, execution_id, "count").body["result"]
    assert count == {"inline": {"n": 100000, "columns": ["id", "name", "score"]}}
    assert result(rt, terminal) == {
        "n": 100000,
        "last": {"id": 100000, "name": "name 100000", "score": 150000.0},
    }
    # `count` read the inline selection; only `rows` loaded the table
    assert [k.split("/")[2] for k in reads] == ["start"]


UNREACHABLE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pg_unreachable}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_closed
      command: SELECT 1
      spec:
        policy:
          rules:
            - when: "{{ output.error.code == 'connection_failed' and output.error.retryable }}"
              then: {do: retry, attempts: 2, delay: 0}
            - when: "{{ output.status == 'error' }}"
              then: {do: fail}
"""


def test_an_unreachable_database_is_a_retryable_connection_failure(
    rt: Runtime, server: PostgresServer
) -> None:
    closed = server.credential("pg_closed")
    closed["data"]["db_port"] = free_port()
    rt.credentials.put(closed)
    execution_id, terminal = finish(rt, UNREACHABLE, status="failed")
    error = done(rt, execution_id, "start").body["error"]
    assert error["kind"] == "postgres" and error["code"] == "connection_failed"
    assert error["retryable"] is True and error["attempts"] == 2
    assert terminal.body["error"]["code"] == "connection_failed"


BAD_PASSWORD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pg_auth}
workflow:
  - step: start
    tool: {kind: postgres, auth: "{{ pg_auth }}", query: SELECT 1 AS one}
"""


def test_a_wrong_password_fails_without_leaking_either_password(
    rt: Runtime, server: PostgresServer
) -> None:
    wrong = "wrong-" + secrets.token_hex(12)
    bad = server.credential("pg_bad")
    bad["data"]["db_password"] = wrong
    rt.credentials.put(bad)
    rt.credentials.put(server.credential("pg_good"))
    _, ok = finish(rt, BAD_PASSWORD, {"pg_auth": "pg_good"})
    assert result(rt, ok)["rows"] == [{"one": 1}]
    execution_id, terminal = finish(rt, BAD_PASSWORD, {"pg_auth": "pg_bad"}, status="failed")
    error = done(rt, execution_id, "start").body["error"]
    assert error["code"] == "auth_failed" and error["retryable"] is False
    assert error["pg"]["sqlstate"] == "28P01"
    assert "authentication failed" in error["message"]
    for text in (str(error), str(terminal.body)):
        assert wrong not in text and server.password not in text
    home = rt.settings.log_path.parent
    recorded = [  # (execution locks are empty files, removed when an execution ends)
        p
        for p in home.rglob("*")
        if p.is_file() and "credential" not in p.name and p.parent.name != "running"
    ]
    assert any(p.name.startswith(rt.settings.log_path.name) for p in recorded)
    for path in recorded:
        data = path.read_bytes()
        assert wrong.encode() not in data and server.password.encode() not in data, path


SQL_ERRORS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pg_errors}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_local
      command: SELECT * FROM no_such_table
      spec:
        policy:
          rules:
            - when: "{{ output.pg.sqlstate == '42P01' }}"
              then: {do: continue, set: {ctx.caught: "{{ output.pg }}"}}
    next: broken
  - step: broken
    tool: {kind: postgres, auth: pg_local, command: "SELECT 1; SELECT * FROM no_such_table"}
    next:
      arcs:
        - step: recover
          when: "{{ event.name == 'call.error' and error.code == '42P01' }}"
          set: {ctx.failed: "{{ error.pg }}"}
  - step: recover
    tool:
      kind: python
      input: {caught: "{{ caught }}", failed: "{{ failed }}", first: "{{ start.error.code }}"}
      code: "result = {'caught': caught, 'failed': failed, 'first': first}"
"""


def test_an_sql_error_is_readable_by_policy_rules_and_recovery_arcs(
    rt: Runtime, server: PostgresServer
) -> None:
    rt.credentials.put(server.credential("pg_local"))
    execution_id, terminal = finish(rt, SQL_ERRORS)
    missing = 'relation "no_such_table" does not exist'
    out = result(rt, terminal)
    assert out["first"] == "42P01"
    assert out["caught"] == {
        "sqlstate": "42P01",
        "message": missing,
        "statement": 0,
        "position": 15,
    }
    assert out["failed"] == {
        "sqlstate": "42P01",
        "message": missing,
        "statement": 1,
        "position": 15,
    }
    error = done(rt, execution_id, "broken").body["error"]
    assert error["kind"] == "postgres" and error["code"] == "42P01" and not error["retryable"]


ROLLBACK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pg_rollback}
workflow:
  - step: start
    tool: {kind: postgres, auth: pg_local, command: "CREATE TABLE {{ table }} (v int)"}
    next: both
  - step: both
    tool:
      kind: postgres
      auth: pg_local
      command: "INSERT INTO {{ table }} VALUES (1); INSERT INTO {{ table }} VALUES ('not a number')"
    next:
      - {step: check, when: "{{ event.name == 'call.error' }}"}
  - step: check
    tool: {kind: postgres, auth: pg_local, query: "SELECT count(*) AS n FROM {{ table }}"}
"""


def test_a_failing_second_statement_rolls_back_the_first(
    rt: Runtime, server: PostgresServer, table: str
) -> None:
    rt.credentials.put(server.credential("pg_local"))
    execution_id, terminal = finish(rt, ROLLBACK, {"table": table})
    error = done(rt, execution_id, "both").body["error"]
    assert error["code"] == "22P02" and error["pg"]["statement"] == 1
    assert result(rt, terminal)["rows"] == [{"n": 0}]


# -- the dev server itself ---------------------------------------------------------------


def test_a_dev_server_stops_by_pid_and_leaves_nothing_behind() -> None:
    with PostgresServer(user="someone", dbname="somewhere") as other:
        assert other.running and other.root is not None
        root, pid = other.root, other.process.pid if other.process else 0
        credential = other.credential("x")
        assert credential["type"] == "postgres"
        assert set(credential["data"]) >= {
            "db_host",
            "db_port",
            "db_user",
            "db_password",
            "db_name",
        }
        with other.connect() as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("someone",)
    assert not other.running and not root.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(other.dsn(), connect_timeout=2)
