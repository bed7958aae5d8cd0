"""`transfer`: rows from one data tool into another, streamed as Arrow record batches.

The source (`postgres` or `duckdb`) runs `query`; rows are read `chunk_size` (or
`batch_size`, default 1000) at a time (a server-side cursor on PostgreSQL, a record batch
reader on DuckDB) and written to the target (`postgres` or `duckdb`) batch by batch, so a
transfer holds one batch in memory, whatever its size. Each side connects as its tool
does: `auth` (a credential alias) or connection fields for `postgres`, `database` for
`duckdb` (whose source query may also read earlier steps' tables by name).

Target modes: `append` (default; COPY on PostgreSQL, `INSERT ... BY NAME` on DuckDB),
`replace` (the table emptied first: TRUNCATE on PostgreSQL, re-created from the rows on
DuckDB), `upsert` (`INSERT ... ON CONFLICT (key) DO UPDATE`; `key` defaults to the first
column, as upstream's). A target `query` is an INSERT run for each row instead (`%s`
placeholders on PostgreSQL, `?` on DuckDB). A PostgreSQL target table must exist; a
DuckDB one is created from the first batch when it does not. The target writes in one
transaction, committed after the last batch: a failed or retried transfer leaves the
target as it was.

The result is upstream's `data`: `{status, direction, source_type, target_type, mode,
rows_transferred, chunks_processed, target_table, columns}`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import ToolError
from ..toolspec.transfer import RAW_FIELDS as RAW_FIELDS
from ..toolspec.transfer import kind_of
from ..toolspec.transfer import validate as validate
from .base import ToolCall

KIND = "transfer"
DEFAULT_CHUNK = 1000
BATCH_VIEW = "__noetl_transfer_batch"


def run(call: ToolCall) -> dict[str, Any]:
    problems = validate(call.fields)
    if problems:
        text = "; ".join(f"{path}: {message}" for path, message in problems)
        raise ToolError(
            f"step {call.step}: transfer: {text}", tool_kind=KIND, code="invalid_request"
        )
    fields = call.fields
    source, target = dict(fields["source"]), dict(fields["target"])
    source_kind, target_kind = str(kind_of(source)), str(kind_of(target))
    size = int(fields.get("chunk_size") or fields.get("batch_size") or DEFAULT_CHUNK)
    mode = str(target.get("mode") or fields.get("mode") or "append")
    if target.get("query"):
        mode = "custom"
    timeout = fields.get("timeout")
    if timeout is not None:
        source.setdefault("timeout", timeout)
        target.setdefault("timeout", timeout)
    with contextlib.ExitStack() as stack:
        batches = stack.enter_context(_reader(call, source_kind, source, size))
        columns, rows, chunks = _write(call, target_kind, target, mode, batches, stack)
    call.log.write(f"transfer {source_kind} -> {target_kind}: {rows} rows in {chunks} chunks\n")
    return {
        "status": "success",
        "direction": f"{source_kind}_to_{target_kind}",
        "source_type": source_kind,
        "target_type": target_kind,
        "mode": mode,
        "rows_transferred": rows,
        "chunks_processed": chunks,
        "target_table": target.get("table") or "custom_query",
        "columns": columns,
    }


def _side(call: ToolCall, kind: str, fields: dict[str, Any]) -> ToolCall:
    """The call one side's tool would get: its fields, the same step and secrets."""
    return dataclasses.replace(call, kind=kind, fields=fields)


def _failed(call: ToolCall, role: str, error: ToolError) -> ToolError:
    """A side's error, said to be the transfer's source or target."""
    message = error.message.replace(f"step {call.step}: ", "", 1)
    return ToolError(
        f"step {call.step}: transfer {role}: {message}",
        tool_kind=KIND,
        code=error.code,
        retryable=error.retryable,
        details=error.details,
    )


# -- reading ------------------------------------------------------------------------------


@contextlib.contextmanager
def _reader(
    call: ToolCall, kind: str, fields: dict[str, Any], size: int
) -> Iterator[Iterator[Any]]:
    if kind == "postgres":
        with _postgres_reader(call, fields, size) as batches:
            yield batches
    else:
        with _duckdb_reader(call, fields, size) as batches:
            yield batches


@contextlib.contextmanager
def _postgres_reader(call: ToolCall, fields: dict[str, Any], size: int) -> Iterator[Iterator[Any]]:
    import psycopg

    from . import postgres

    conninfo = postgres.connection_of(_side(call, "postgres", fields))
    password = conninfo.get("password")
    try:
        conn = psycopg.connect(**conninfo)
    except psycopg.Error as exc:
        raise _failed(
            call, "source", postgres._connect_failure(call.step, exc, conninfo, password)
        ) from None
    query = str(fields["query"])

    def batches() -> Iterator[Any]:
        try:
            with conn.cursor(name="noetl_transfer") as cur:
                cur.itersize = size
                cur.execute(query)
                first = True
                while True:
                    rows = cur.fetchmany(size)
                    if not rows and not first:
                        return
                    first = False
                    table = postgres.to_table(list(cur.description or []), rows)
                    yield table
                    if not rows:
                        return
        except psycopg.Error as exc:
            error = postgres._statement_failure(call.step, exc, [query], 0, password)
            raise _failed(call, "source", error) from None

    try:
        postgres._text_loaders(conn)
        yield batches()
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


@contextlib.contextmanager
def _duckdb_reader(call: ToolCall, fields: dict[str, Any], size: int) -> Iterator[Iterator[Any]]:
    import duckdb

    from . import duckdb as duck

    query = str(fields["query"])
    try:
        con = duck._connect(
            duckdb, {"database": fields.get("database"), "read_only": fields.get("read_only")}
        )
        duck._register(duckdb, con, call, duck._names(duckdb, [query]))
    except ToolError as exc:
        raise _failed(call, "source", exc) from None

    alarms = contextlib.ExitStack()
    _alarm(alarms, con, fields)

    def batches() -> Iterator[Any]:
        import pyarrow as pa

        try:
            relation = con.sql(query)
            arrow_reader = getattr(relation, "to_arrow_reader", None)  # duckdb 2; 1.x below
            reader = (arrow_reader or relation.fetch_arrow_reader)(size)
            empty = True
            for batch in reader:
                if batch.num_rows:
                    empty = False
                    yield pa.Table.from_batches([batch])
            if empty:
                yield reader.schema.empty_table()
        except duckdb.Error as exc:
            raise _duck_failure(call, "source", exc, query, fields) from None

    try:
        yield batches()
    finally:
        alarms.close()
        con.close()


# -- writing ------------------------------------------------------------------------------


def _write(
    call: ToolCall,
    kind: str,
    fields: dict[str, Any],
    mode: str,
    batches: Iterator[Any],
    stack: contextlib.ExitStack,
) -> tuple[list[str], int, int]:
    if kind == "postgres":
        return _postgres_write(call, fields, mode, batches, stack)
    return _duckdb_write(call, fields, mode, batches, stack)


def _key(fields: dict[str, Any], columns: list[str]) -> list[str]:
    key = fields.get("key")
    if key is None:
        return columns[:1]
    return [key] if isinstance(key, str) else list(key)


def _postgres_write(
    call: ToolCall,
    fields: dict[str, Any],
    mode: str,
    batches: Iterator[Any],
    stack: contextlib.ExitStack,
) -> tuple[list[str], int, int]:
    import psycopg
    from psycopg import sql

    from . import postgres

    conninfo = postgres.connection_of(_side(call, "postgres", fields))
    password = conninfo.get("password")
    try:
        conn = psycopg.connect(**conninfo)
    except psycopg.Error as exc:
        raise _failed(
            call, "target", postgres._connect_failure(call.step, exc, conninfo, password)
        ) from None
    stack.callback(conn.close)
    table_name = str(fields.get("table") or "")
    table = (
        sql.SQL(".").join(sql.Identifier(p) for p in table_name.split(".")) if table_name else None
    )
    columns: list[str] = []
    rows = chunks = 0
    statement = "?"
    try:
        with conn.cursor() as cur:
            if mode == "replace" and table is not None:
                statement = f"TRUNCATE {table_name}"
                cur.execute(sql.SQL("TRUNCATE {}").format(table))
            for batch in batches:
                columns = list(batch.column_names)
                records = [tuple(r.values()) for r in batch.to_pylist()]
                if not records:
                    continue
                cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
                if mode == "custom":
                    statement = str(fields["query"])
                    cur.executemany(statement.encode(), records)  # type: ignore[arg-type]
                elif mode == "upsert":
                    key = _key(fields, columns)
                    updates = [c for c in columns if c not in key]
                    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO ").format(
                        table,
                        cols,
                        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                        sql.SQL(", ").join(sql.Identifier(k) for k in key),
                    )
                    if updates:
                        query += sql.SQL("UPDATE SET ") + sql.SQL(", ").join(
                            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                            for c in updates
                        )
                    else:
                        query += sql.SQL("NOTHING")
                    statement = f"INSERT INTO {table_name} ... ON CONFLICT"
                    cur.executemany(query, records)
                else:
                    statement = f"COPY {table_name} FROM STDIN"
                    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, cols)) as copy:
                        for record in records:
                            copy.write_row(record)
                rows += len(records)
                chunks += 1
        conn.commit()
    except psycopg.Error as exc:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        error = postgres._statement_failure(call.step, exc, [statement], 0, password)
        raise _failed(call, "target", error) from None
    return columns, rows, chunks


def _duckdb_write(
    call: ToolCall,
    fields: dict[str, Any],
    mode: str,
    batches: Iterator[Any],
    stack: contextlib.ExitStack,
) -> tuple[list[str], int, int]:
    import duckdb

    from . import duckdb as duck

    try:
        con = duck._connect(duckdb, {"database": fields.get("database")})
    except ToolError as exc:
        raise _failed(call, "target", exc) from None
    stack.callback(con.close)
    _alarm(stack, con, fields)
    table = ".".join(_quoted(p) for p in str(fields.get("table") or "").split("."))
    columns: list[str] = []
    rows = chunks = 0
    statement = ""
    exists = mode == "custom" or _exists(con, table)  # before the transaction: a miss aborts it
    try:
        con.begin()
        first = True
        for batch in batches:
            columns = list(batch.column_names)
            con.register(BATCH_VIEW, batch)
            if mode == "custom":
                statement = str(fields["query"])
                records = [tuple(r.values()) for r in batch.to_pylist()]
                if records:
                    con.executemany(statement, records)
            elif first and (mode == "replace" or not exists):
                statement = f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {BATCH_VIEW}"
                con.execute(statement)
            elif batch.num_rows:
                verb = "INSERT OR REPLACE INTO" if mode == "upsert" else "INSERT INTO"
                statement = f"{verb} {table} BY NAME SELECT * FROM {BATCH_VIEW}"
                con.execute(statement)
            con.unregister(BATCH_VIEW)
            first = False
            if batch.num_rows:
                rows += batch.num_rows
                chunks += 1
        con.commit()
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):
            con.rollback()
        raise _duck_failure(call, "target", exc, statement, fields) from None
    return columns, rows, chunks


def _alarm(stack: contextlib.ExitStack, con: Any, fields: dict[str, Any]) -> None:
    """Interrupt a DuckDB side past the transfer's `timeout` (its whole run)."""
    seconds = fields.get("timeout")
    if seconds is None:
        return
    alarm = threading.Timer(float(seconds), con.interrupt)
    alarm.daemon = True
    alarm.start()
    stack.callback(alarm.cancel)


def _duck_failure(
    call: ToolCall, role: str, exc: Any, statement: str, fields: dict[str, Any]
) -> ToolError:
    from . import duckdb as duck

    if type(exc).__name__ == "InterruptException" and fields.get("timeout") is not None:
        return ToolError(
            f"step {call.step}: transfer {role}: timed out after {float(fields['timeout']):g} s "
            "(the statement was stopped)",
            tool_kind=KIND,
            code="timeout",
            retryable=True,
        )
    return _failed(call, role, duck._failure(exc, 0, statement))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _exists(con: Any, table: str) -> bool:
    import duckdb

    try:
        con.execute(f"SELECT 1 FROM {table} LIMIT 0")
    except duckdb.Error:
        return False
    return True
