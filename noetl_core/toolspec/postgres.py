"""`postgres`'s declaration (see `noetl_core.tools.postgres`), and how its SQL text
splits into statements (`split_statements`), which validation counts and the tool runs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .. import templating

RAW_FIELDS: frozenset[str] = frozenset()
KIND = "postgres"
SQL_FIELDS = ("command", "query", "command_b64")
CONNECTION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "host": ("db_host", "host"),
    "port": ("db_port", "port"),
    "user": ("db_user", "user"),
    "password": ("db_password", "password"),
    "dbname": ("db_name", "dbname", "database"),
    "sslmode": ("sslmode",),
    "sslrootcert": ("sslrootcert",),
    "sslcert": ("sslcert",),
    "sslkey": ("sslkey",),
    "connect_timeout": ("connect_timeout",),
}


# -- validation -----------------------------------------------------------------------


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    given = [k for k in SQL_FIELDS if fields.get(k) is not None]
    if not given:
        return [("command", "`postgres` needs `command` (or `query`): one or more SQL statements")]
    if len(given) > 1:
        problems.append((given[1], f"give either `{given[0]}` or `{given[1]}`, not both"))
    key = given[0]
    sql = fields[key]
    count: int | None = None
    if isinstance(sql, str):
        if not templating.is_template(sql) and key != "command_b64":
            count = len(split_statements(sql))
            if count == 0:
                problems.append((key, f"`{key}` holds no SQL statement"))
    elif isinstance(sql, list) and key != "command_b64":
        if not sql or not all(isinstance(s, str) for s in sql):
            problems.append((key, f"`{key}` as a list must hold SQL strings"))
        else:
            count = len(sql)
    else:
        problems.append((key, f"`{key}` must be a SQL string or a list of them"))

    params = fields.get("params")
    if params is not None and not _is_template_str(params):
        if not isinstance(params, list | dict):
            problems.append(("params", "`params` must be a list (%s) or a mapping (%(name)s)"))
        elif count is not None and count != 1:
            problems.append(("params", f"`params` needs a single statement; `{key}` has {count}"))

    auth = fields.get("auth")
    if auth is not None and not _is_template_str(auth) and _alias_of(auth) is None:
        problems.append(
            ("auth", "`auth` names a credential: an alias string or {credential: alias}")
        )
    if auth is None and not any(f in fields for names in CONNECTION_FIELDS.values() for f in names):
        problems.append(
            (
                "auth",
                "`postgres` needs `auth` (a credential alias) or connection fields "
                "(db_host, db_port, db_user, db_password, db_name)",
            )
        )
    for name in ("timeout", "connect_timeout"):
        value = fields.get(name)
        if value is not None and not _is_template_str(value) and _seconds(value) is None:
            problems.append((name, f"`{name}` must be a positive number of seconds"))
    for name in ("db_port", "port"):
        value = fields.get(name)
        if value is not None and not _is_template_str(value) and _port(value) is None:
            problems.append((name, f"`{name}` must be a port number"))
    autocommit = fields.get("autocommit")
    if autocommit is not None and not isinstance(autocommit, bool | str):
        problems.append(("autocommit", "`autocommit` must be true or false"))
    return problems


def _is_template_str(value: Any) -> bool:
    return isinstance(value, str) and templating.is_template(value)


def _alias_of(auth: Any) -> str | None:
    if isinstance(auth, str) and auth.strip():
        return auth.strip()
    if isinstance(auth, Mapping):
        for key in ("credential", "key", "alias", "name"):
            value = auth.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        port = int(str(value).strip())
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


# -- splitting --------------------------------------------------------------------------

_DOLLAR = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*")


def split_statements(sql: str) -> list[str]:
    """The statements of a SQL script, without their `;`; blank and comment-only parts
    are dropped. Quotes ('', E'', ""), dollar quotes, `--` and nested `/* */` comments,
    and `BEGIN ATOMIC ... END` function bodies keep their semicolons."""
    out: list[str] = []
    start, i, n = 0, 0, len(sql)
    has_code = False
    atomic = 0  # depth inside BEGIN ATOMIC bodies (CASE ... END nests within)
    previous_word = ""
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
            continue
        has_code = has_code or not (c.isspace() or c == ";")
        if c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _ident_char(sql[i - 2]))
            i = _skip_quoted(sql, i, "'", backslash=escapes)
            continue
        if c == '"':
            i = _skip_quoted(sql, i, '"', backslash=False)
            continue
        if c == "$" and (i == 0 or not _ident_char(sql[i - 1])):
            found = _DOLLAR.match(sql, i)
            if found:
                end = sql.find(found.group(0), found.end())
                i = n if end < 0 else end + len(found.group(0))
                continue
        if c.isalpha() or c == "_":
            word = _WORD.match(sql, i)
            if word and (i == 0 or not _ident_char(sql[i - 1])):
                upper = word.group(0).upper()
                opens = upper == "CASE" if atomic else False
                if opens or (upper == "ATOMIC" and previous_word == "BEGIN"):
                    atomic += 1
                elif atomic and upper == "END":
                    atomic -= 1
                previous_word = upper
                i = word.end()
                continue
        if c == ";" and not atomic:
            if has_code:
                out.append(sql[start:i].strip())
            start, has_code, previous_word = i + 1, False, ""
        i += 1
    if has_code and sql[start:].strip():
        out.append(sql[start:].strip())
    return out


def _ident_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _skip_quoted(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    i += 1
    n = len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_block_comment(sql: str, i: int) -> int:
    depth, i, n = 0, i, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return n
