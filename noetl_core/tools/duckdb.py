"""`duckdb`: SQL on an in-process DuckDB that reads earlier steps' tables by their names.

Fields: `query` or `command` (SQL text, one or more statements separated by `;`) or
`commands` (a list of them); `database` (a file, created when missing; in memory by
default); `params` (a list or a mapping, with a single statement only); `read_only`;
`timeout` (seconds, or `spec.timeout`): the running statement is interrupted then and the
step fails with code `timeout` (retryable).

Every earlier step on this path whose result is tabular (an Arrow table, a rowset, a list
of records) is readable by the step's name: the names the SQL mentions (as written and
lower-cased) are looked up and registered as Arrow views, never through JSON. Input values
that are tables or lists of records are registered by their input key, over a step of the
same name.

The result is the rows of the last statement that returns rows, as a `Rowset` (decimal
columns without a fraction, such as DuckDB's HUGEINT sums, come back as 64-bit integers
when they fit); else `{"columns": [], "rows": [], "row_count": n}`, n the rows changed.
A failure's code is the DuckDB exception class (`CatalogException`, `ParserException`,
...), with `{"duckdb": {"error": <class>, "statement": <0-based index or null>}}`.
"""

from __future__ import annotations

import contextlib
import re
import threading
from pathlib import Path
from typing import Any

from ..errors import NoetlError, ToolError
from ..templating import truthy
from ..toolspec.duckdb import RAW_FIELDS as RAW_FIELDS
from ..toolspec.duckdb import SQL_FIELDS
from ..toolspec.duckdb import validate as validate
from .base import Rowset, ToolCall

# what DDL, DML without RETURNING, SET, PRAGMA, CHECKPOINT... give back instead of rows
NO_ROWS = (["Count"], ["Success"])


def run(call: ToolCall) -> Any:
    import duckdb

    texts, params = _texts(call.fields), call.fields.get("params")
    seconds = call.timeout()
    con = _connect(duckdb, call.fields)
    alarm = threading.Timer(seconds, con.interrupt) if seconds else None
    try:
        statements = _parse(duckdb, con, texts)
        if params is not None and len(statements) != 1:
            raise ToolError(
                f"`params` go with a single statement; the SQL holds {len(statements)}",
                tool_kind="duckdb",
                code="params_need_one_statement",
            )
        _register(duckdb, con, call, _names(duckdb, texts))
        if alarm is not None:
            alarm.start()
        return _execute(duckdb, con, statements, params)
    except ToolError as exc:
        if alarm is not None and exc.code == "InterruptException":
            raise ToolError(
                f"step {call.step}: timed out after {seconds:g} s (the statement was stopped)",
                tool_kind="duckdb",
                code="timeout",
                retryable=True,
            ) from None
        raise
    finally:
        if alarm is not None:
            alarm.cancel()
        con.close()


def _texts(fields: dict[str, Any]) -> list[str]:
    key = next((k for k in SQL_FIELDS if fields.get(k) is not None), "query")
    sql = fields.get(key)
    texts: list[Any] = sql if isinstance(sql, list) else [sql]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ToolError(
            f"`{key}` must be SQL text (or a list of it), got {type(sql).__name__}",
            tool_kind="duckdb",
            code="bad_sql",
        )
    return texts


def _connect(duckdb: Any, fields: dict[str, Any]) -> Any:
    database = str(fields.get("database") or ":memory:")
    read_only = truthy(fields.get("read_only") or False)
    try:
        if database != ":memory:" and "://" not in database and not database.startswith("md:"):
            database = str(Path(database).expanduser())
            if not read_only:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(database, read_only=read_only)
        # only what this step registers is readable, never the tool's own Python variables
        con.sql("SET python_enable_replacements = false")
        return con
    except (duckdb.Error, OSError) as exc:
        raise _failure(exc, None, f"cannot open database {database!r}") from None


def _parse(duckdb: Any, con: Any, texts: list[str]) -> list[Any]:
    try:
        return [s for text in texts for s in con.extract_statements(text)]
    except duckdb.Error as exc:
        count = 0  # find the statement that does not parse, for the error's index
        for piece in (p for text in texts for p in _pieces(duckdb, text)):
            try:
                count += len(con.extract_statements(piece))
            except duckdb.Error:
                raise _failure(exc, count, piece) from None
        raise _failure(exc, None, "the SQL does not parse") from None


def _tokens(duckdb: Any, text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every token, in UTF-8 bytes; strings and comments stay whole."""
    data = text.encode()
    try:
        found = duckdb.tokenize(text)
    except Exception:  # the parser reports malformed SQL; here, fall back to words
        return [("identifier", m.start(), m.end()) for m in re.finditer(rb"\w+", data)]
    ends = [pos for pos, _ in found[1:]] + [len(data)]
    return [(kind.name, pos, end) for (pos, kind), end in zip(found, ends, strict=True)]


def _pieces(duckdb: Any, text: str) -> list[str]:
    """The text cut at each `;` token (a `;` inside a string or a comment stays)."""
    data = text.encode()
    cuts = [a for _, a, b in _tokens(duckdb, text) if data[a:b].strip() == b";"]
    starts, ends = [0, *(c + 1 for c in cuts)], [*cuts, len(data)]
    return [data[a:b].decode() for a, b in zip(starts, ends, strict=True)]


def _names(duckdb: Any, texts: list[str]) -> list[str]:
    """Identifiers the SQL mentions, as written (unquoted) and lower-cased, in order."""
    names: dict[str, None] = {}
    for text in texts:
        data = text.encode()
        for kind, a, b in _tokens(duckdb, text):
            token = data[a:b].decode(errors="replace").strip()
            if kind in ("identifier", "keyword") and token:
                if token.startswith('"') and token.endswith('"') and len(token) > 1:
                    token = token[1:-1].replace('""', '"')
                names.update({token: None, token.lower(): None})
    return list(names)


def _register(duckdb: Any, con: Any, call: ToolCall, names: list[str]) -> None:
    for name in names:
        try:
            table = _as_table(call.input[name]) if name in call.input else None
            table = call.table(name) if table is None else table
        except NoetlError:
            raise
        except Exception as exc:  # e.g. records whose columns mix types
            call.log.write(f"duckdb: {name!r} is not readable as a table: {exc}\n")
            continue
        if table is not None:
            try:
                con.register(name, table)
            except duckdb.Error as exc:
                raise _failure(exc, None, f"cannot register table {name!r}") from None


def _as_table(value: Any) -> Any:
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return value
    if isinstance(value, dict) and isinstance(value.get("rows"), list) and "columns" in value:
        value = value["rows"]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return pa.Table.from_pylist(value)
    return None


def _execute(duckdb: Any, con: Any, statements: list[Any], params: Any) -> Any:
    last, changed = None, 0
    for index, statement in enumerate(statements):
        try:
            rel = con.sql(statement) if params is None else con.sql(statement, params=params)
            if rel is None or not rel.columns:
                continue
            if statement.type.name != "SELECT" and rel.columns in NO_ROWS:
                if rel.columns == ["Count"]:
                    changed += sum(int(row[0] or 0) for row in rel.fetchall())
                continue
            last = rel.to_arrow_table()
        except (duckdb.Error, TypeError, ValueError) as exc:
            raise _failure(exc, index, statement.query) from None
    if last is None:
        return {"columns": [], "rows": [], "row_count": changed}
    return Rowset(_exact_integers(last))


def _exact_integers(table: Any) -> Any:
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type) and field.type.scale == 0:
            with contextlib.suppress(pa.ArrowInvalid):  # over 64 bits: stays decimal
                table = table.set_column(i, field.name, table.column(i).cast(pa.int64()))
    return table


def _failure(exc: BaseException, index: int | None, what: str) -> ToolError:
    name = type(exc).__name__
    where = f"statement {index} `{_short(what)}`" if index is not None else what
    return ToolError(
        f"duckdb {where} failed: {exc}" if index is not None else f"duckdb: {where}: {exc}",
        tool_kind="duckdb",
        code=name,
        details={"duckdb": {"error": name, "statement": index}},
    )


def _short(sql: str, limit: int = 120) -> str:
    text = " ".join(sql.split()).rstrip(";")
    return text if len(text) <= limit else text[: limit - 3] + "..."
