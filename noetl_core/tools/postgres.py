"""`postgres`: run SQL statements against PostgreSQL in one transaction.

Fields:

- `auth`: a credential alias (or `{credential: alias}`, upstream's
  `{source: credential, key: alias}`) of type `postgres` with `db_host`, `db_port`,
  `db_user`, `db_password`, `db_name`, optional `sslmode`. Connection fields on the tool
  (`db_host`/`host`, `db_port`/`port`, `db_user`/`user`, `db_password`/`password`,
  `db_name`/`dbname`/`database`, `sslmode`, `connect_timeout`, default 10 s) are used
  without `auth`, and override the credential's values with it.
- `command` or `query`: one or more statements in one string (split on `;` outside quotes,
  dollar quotes, comments and `BEGIN ATOMIC ... END` bodies), or a list whose items each
  run as one unit. `command_b64` is upstream's base64 form.
- `params`: a list (`%s`) or a mapping (`%(name)s`); only with a single statement.
  Mapping values are sent as `jsonb`.
- `timeout`: `statement_timeout` in seconds. `autocommit: true` runs each statement in
  its own transaction (for `VACUUM`, `CREATE DATABASE`, ...).

All statements run in one transaction on a fresh connection: committed at the end, rolled
back on any error. The output is `{columns, rows, row_count}`: a `Rowset` (Arrow table)
of the last statement that returned rows, else no columns and the row count of the last
statement (0 when it reports none, as DDL does). Column types follow PostgreSQL's:
numeric stays decimal, dates and timestamps stay temporal (timestamptz in UTC); json and
jsonb arrive as JSON text (use `| fromjson`), uuid and network types as text, and any
value Arrow cannot hold becomes its text.

Errors (`kind: postgres`): `connection_failed` (retryable), `auth_failed`, the SQLSTATE
of a failed statement (retryable for 40001, 40P01, 57014, class 08), with
`error.pg = {sqlstate, message, statement (0-based index), detail, hint, ...}`, which
policy rules read as `output.pg`. Messages are built from the server's diagnostics and
never contain the password.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .. import templating
from ..errors import ToolError
from ..toolspec.postgres import CONNECTION_FIELDS, KIND, SQL_FIELDS, _alias_of, _port, _seconds
from ..toolspec.postgres import RAW_FIELDS as RAW_FIELDS
from ..toolspec.postgres import split_statements as split_statements
from ..toolspec.postgres import validate as validate
from .base import Rowset, ToolCall

DEFAULT_CONNECT_TIMEOUT = 10
QUERY_CANCELED = "57014"
RETRYABLE_STATES = frozenset({"40001", "40P01", QUERY_CANCELED, "57P01", "57P03", "53300"})
AUTH_STATES = frozenset({"28P01", "28000"})
SNIPPET = 160


# -- running ----------------------------------------------------------------------------


def statements_of(fields: Mapping[str, Any], step: str) -> list[str]:
    key = next((k for k in SQL_FIELDS if fields.get(k) is not None), None)
    if key is None:
        raise ToolError(
            f"step {step}: `postgres` needs `command` (or `query`)",
            tool_kind=KIND,
            code="bad_command",
        )
    sql = fields[key]
    if key == "command_b64":
        try:
            sql = base64.b64decode(str(sql), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ToolError(
                f"step {step}: `command_b64` is not base64 of UTF-8 text",
                tool_kind=KIND,
                code="bad_command",
            ) from None
    if isinstance(sql, list):
        statements = [str(s).strip() for s in sql if s is not None and str(s).strip()]
    elif isinstance(sql, str):
        statements = split_statements(sql)
    else:
        raise ToolError(
            f"step {step}: `{key}` must be a SQL string or a list, got {type(sql).__name__}",
            tool_kind=KIND,
            code="bad_command",
        )
    if not statements:
        raise ToolError(
            f"step {step}: `{key}` holds no SQL statement", tool_kind=KIND, code="bad_command"
        )
    return statements


def connection_of(call: ToolCall) -> dict[str, Any]:
    """psycopg.connect keyword arguments: the credential's data, then the tool's fields."""
    fields = call.fields
    values: dict[str, Any] = {}
    auth = fields.get("auth")
    if "auth" in fields and (auth is None or auth == ""):
        raise ToolError(
            f"step {call.step}: `auth` is empty (did its template resolve to a credential alias?)",
            tool_kind=KIND,
            code="bad_auth",
        )
    if auth is not None:
        alias = _alias_of(auth)
        if alias is None:
            raise ToolError(
                f"step {call.step}: `auth` must name a credential, got {type(auth).__name__}",
                tool_kind=KIND,
                code="bad_auth",
            )
        credential = call.credential(alias)
        kind = str(credential.get("type") or "")
        if kind not in ("postgres", "postgresql"):
            raise ToolError(
                f"step {call.step}: credential {alias!r} has type {kind!r}; "
                "`postgres` needs a credential of type postgres",
                tool_kind=KIND,
                code="bad_credential",
            )
        data = credential.get("data") or {}
        for target, names in CONNECTION_FIELDS.items():
            for name in names:
                if data.get(name) not in (None, ""):
                    values[target] = data[name]
                    break
    for target, names in CONNECTION_FIELDS.items():
        for name in names:
            if fields.get(name) not in (None, ""):
                values[target] = fields[name]
                break
    password = values.get("password")
    if password is not None:
        values["password"] = str(password)
        call.mask(values["password"])
    if "port" in values:
        port = _port(values["port"])
        if port is None:
            raise ToolError(
                f"step {call.step}: the port must be a number, got {values['port']!r}",
                tool_kind=KIND,
                code="bad_connection",
            )
        values["port"] = port
    timeout = _seconds(values.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
    values["connect_timeout"] = max(1, round(timeout or DEFAULT_CONNECT_TIMEOUT))
    for key in ("host", "user", "dbname", "sslmode", "sslrootcert", "sslcert", "sslkey"):
        if key in values:
            values[key] = str(values[key])
    statement_timeout = fields.get("timeout")
    if statement_timeout is not None:
        seconds = _seconds(statement_timeout)
        if seconds is None:
            raise ToolError(
                f"step {call.step}: `timeout` must be a positive number of seconds, "
                f"got {statement_timeout!r}",
                tool_kind=KIND,
                code="bad_timeout",
            )
        values["options"] = f"-c statement_timeout={max(1, round(seconds * 1000))}"
    values.setdefault("application_name", "noetl")
    return values


def run(call: ToolCall) -> Any:
    import psycopg

    statements = statements_of(call.fields, call.step)
    params = call.fields.get("params")
    if params is not None and not isinstance(params, list | tuple | dict):
        raise ToolError(
            f"step {call.step}: `params` must be a list or a mapping, got {type(params).__name__}",
            tool_kind=KIND,
            code="bad_params",
        )
    if params is not None and len(statements) != 1:
        raise ToolError(
            f"step {call.step}: `params` needs a single statement; the command has "
            f"{len(statements)}",
            tool_kind=KIND,
            code="bad_params",
        )
    autocommit = templating.truthy(call.fields.get("autocommit", False))
    conninfo = connection_of(call)
    password = conninfo.get("password")

    failure: ToolError | None = None
    try:
        conn = psycopg.connect(**conninfo, autocommit=autocommit)
    except psycopg.Error as exc:
        failure = _connect_failure(call.step, exc, conninfo, password)
    if failure is not None:
        raise failure

    try:
        _text_loaders(conn)
        result, failure = _execute(conn, statements, params, call.step, password, autocommit)
    finally:
        conn.close()
    if failure is not None:
        raise failure
    return result


def _text_loaders(conn: Any) -> None:
    """Types Arrow cannot hold as such arrive as their PostgreSQL text."""
    from psycopg.types.string import TextLoader

    for name in ("json", "jsonb", "uuid", "inet", "cidr", "macaddr", "timetz", "money"):
        conn.adapters.register_loader(name, TextLoader)


def _execute(
    conn: Any,
    statements: list[str],
    params: Any,
    step: str,
    password: str | None,
    autocommit: bool,
) -> tuple[Any, ToolError | None]:
    import psycopg

    last_rows: tuple[list[Any], list[tuple[Any, ...]]] | None = None
    row_count = 0
    index: int | None = None
    try:
        with conn.cursor() as cur:
            for i, statement in enumerate(statements):
                index = i
                args = _adapt(params) if params is not None else None
                cur.execute(statement, args)
                while True:
                    if cur.description is not None:
                        last_rows = (list(cur.description), cur.fetchall())
                    row_count = max(cur.rowcount, 0)
                    if not cur.nextset():
                        break
        index = None
        if not autocommit:
            conn.commit()
    except psycopg.Error as exc:
        error = _statement_failure(step, exc, statements, index, password)
        if not autocommit and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
        return None, error
    if last_rows is None:
        return {"columns": [], "rows": [], "row_count": row_count}, None
    description, rows = last_rows
    return Rowset(to_table(description, rows)), None


def _adapt(params: Any) -> Any:
    from psycopg.types.json import Jsonb

    def one(value: Any) -> Any:
        if isinstance(value, dict):
            return Jsonb(value)
        if isinstance(value, list) and any(isinstance(v, dict) for v in value):
            return Jsonb(value)
        return value

    if isinstance(params, dict):
        return {k: one(v) for k, v in params.items()}
    return [one(v) for v in params]


# -- errors -----------------------------------------------------------------------------


def _scrub(text: str, password: str | None) -> str:
    if password and len(password) >= 1:
        text = text.replace(password, "***")
    return text


def _connect_failure(
    step: str, exc: Any, conninfo: Mapping[str, Any], password: str | None
) -> ToolError:
    """A ToolError for a failed connect, from libpq's message (no SQLSTATE reaches the
    client before the session exists); the password never appears in it."""
    reason = _reason(str(exc))
    sqlstate = getattr(exc, "sqlstate", None) or _connect_state(reason)
    where = (
        f"{conninfo.get('host', 'localhost')}:{conninfo.get('port', 5432)}"
        f" as {conninfo.get('user', '?')} (database {conninfo.get('dbname', '?')})"
    )
    if sqlstate in AUTH_STATES or "fe_sendauth" in reason:
        code, retryable, what = "auth_failed", False, "authentication failed"
    elif sqlstate and not sqlstate.startswith("08") and sqlstate not in RETRYABLE_STATES:
        code, retryable, what = sqlstate, False, "connection rejected"
    else:
        code, retryable, what = "connection_failed", True, "cannot connect"
    message = _scrub(f"step {step}: postgres {what}: {where}: {reason}", password)
    return ToolError(
        message,
        tool_kind=KIND,
        code=code,
        retryable=retryable,
        details={"pg": {"sqlstate": sqlstate, "message": _scrub(reason, password)}},
    )


def _reason(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    first = lines[0]
    if first.startswith("connection failed: "):
        first = first[len("connection failed: ") :]
    if " failed: " in first:
        first = first.split(" failed: ", 1)[1]
    first = re.sub(r"^(FATAL|ERROR):\s+", "", first)
    return " ".join([first, *lines[1:]])


def _connect_state(reason: str) -> str | None:
    lowered = reason.lower()
    if "password authentication failed" in lowered:
        return "28P01"
    if "no pg_hba.conf entry" in lowered or "authentication failed" in lowered:
        return "28000"
    if re.search(r'role ".*" does not exist', lowered):
        return "28000"
    if re.search(r'database ".*" does not exist', lowered):
        return "3D000"
    if "starting up" in lowered or "shutting down" in lowered:
        return "57P03"
    if "too many clients" in lowered:
        return "53300"
    return None


_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)+", re.DOTALL)


def _statement_failure(
    step: str, exc: Any, statements: list[str], index: int | None, password: str | None
) -> ToolError:
    sqlstate: str | None = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    primary = (diag.message_primary if diag is not None else None) or _reason(str(exc))
    pg: dict[str, Any] = {"sqlstate": sqlstate, "message": _scrub(primary, password)}
    pg["statement"] = index
    if diag is not None:
        for key, attr in (
            ("detail", "message_detail"),
            ("hint", "message_hint"),
            ("position", "statement_position"),
            ("schema", "schema_name"),
            ("table", "table_name"),
            ("column", "column_name"),
            ("constraint", "constraint_name"),
        ):
            value = getattr(diag, attr, None)
            if value and key == "position" and str(value).isdigit():
                pg[key] = int(value)
            elif value:
                pg[key] = _scrub(str(value), password)
    if index is None:
        where = "commit failed"
    else:
        snippet = " ".join(_LEADING_COMMENTS.sub("", statements[index]).split())
        if len(snippet) > SNIPPET:
            snippet = snippet[: SNIPPET - 3] + "..."
        where = f"statement {index + 1} of {len(statements)} failed ({snippet})"
    if sqlstate:
        # a statement stopped by its `timeout` (statement_timeout) fails like any timeout
        code = "timeout" if sqlstate == QUERY_CANCELED else sqlstate
        retryable = sqlstate in RETRYABLE_STATES or sqlstate.startswith("08")
        text = f"{primary} (SQLSTATE {sqlstate})"
    else:
        import psycopg

        lost = isinstance(exc, psycopg.OperationalError)
        code = "connection_failed" if lost else "client_error"
        retryable = lost
        text = primary
    if pg.get("detail"):
        text += f"; {pg['detail']}"
    message = _scrub(f"step {step}: postgres {where}: {text}", password)
    return ToolError(message, tool_kind=KIND, code=code, retryable=retryable, details={"pg": pg})


# -- Arrow ------------------------------------------------------------------------------

# type OIDs with a fixed Arrow type; others are inferred, then fall back to text
_INT = {20: "int64", 21: "int16", 23: "int32", 26: "int64"}
_FLOAT = {700: "float32", 701: "float64"}
_TEXT = {18, 19, 25, 1042, 1043, 114, 3802, 2950, 869, 650, 829, 1266, 790}


def _arrow_type(oid: int) -> Any:
    import pyarrow as pa

    if oid in _INT:
        return getattr(pa, _INT[oid])()
    if oid in _FLOAT:
        return getattr(pa, _FLOAT[oid])()
    if oid in _TEXT:
        return pa.string()
    return {
        16: pa.bool_(),
        17: pa.binary(),
        1082: pa.date32(),
        1083: pa.time64("us"),
        1114: pa.timestamp("us"),
        1184: pa.timestamp("us", tz="UTC"),
        1186: pa.duration("us"),
    }.get(oid)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out: list[str] = []
    taken = set(names)
    for name in names:
        if name in seen:
            n = seen[name]
            while f"{name}_{n}" in taken:
                n += 1
            seen[name] = n + 1
            new = f"{name}_{n}"
            taken.add(new)
            out.append(new)
        else:
            seen[name] = 1
            out.append(name)
    return out


def to_table(description: list[Any], rows: list[tuple[Any, ...]]) -> Any:
    """An Arrow table from a cursor's description and rows, built column-wise."""
    import pyarrow as pa

    names = _unique([str(col.name) for col in description])
    columns: Iterator[tuple[Any, ...]] = (
        iter(zip(*rows, strict=True)) if rows else iter(() for _ in description)
    )
    arrays = [
        _column(list(values), int(col.type_code))
        for col, values in zip(description, columns, strict=True)
    ]
    return pa.Table.from_arrays(arrays, names=names)


def _column(values: list[Any], oid: int) -> Any:
    import pyarrow as pa

    wanted = _arrow_type(oid)
    failures = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)
    try:
        if wanted is not None:
            return pa.array(values, type=wanted)
        if all(v is None for v in values):
            return pa.array(values, type=pa.string())
        return pa.array(values)
    except (*failures, TypeError, ValueError):
        return pa.array([None if v is None else _text(v) for v in values], type=pa.string())


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, separators=(",", ":"))
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return str(value)
