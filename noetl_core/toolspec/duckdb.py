"""`duckdb`'s declaration (see `noetl_core.tools.duckdb`)."""

from __future__ import annotations

from typing import Any

RAW_FIELDS: frozenset[str] = frozenset()
SQL_FIELDS = ("query", "command", "commands")


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    given = [key for key in SQL_FIELDS if fields.get(key) is not None]
    if not given:
        return [("query", "`duckdb` needs `query`, `command` or `commands` (SQL text)")]
    if len(given) > 1:
        return [(given[1], f"give one of `query`, `command`, `commands`, not {given}")]
    key, sql, problems = given[0], fields[given[0]], []
    if key == "commands" and isinstance(sql, list):
        if not all(isinstance(s, str) for s in sql):
            problems.append((key, "`commands` must be a list of SQL strings"))
        elif len(sql) > 1 and fields.get("params") is not None:
            problems.append(("params", "`params` go with a single statement, not several"))
    elif not isinstance(sql, str):
        problems.append((key, f"`{key}` must be SQL text, got {type(sql).__name__}"))
    expected = {"database": (str,), "params": (list, dict, str), "read_only": (bool, str)}
    for name, types in expected.items():
        if fields.get(name) is not None and not isinstance(fields[name], types):
            problems.append((name, f"`{name}` has the wrong type {type(fields[name]).__name__}"))
    if fields.get("read_only") is True and fields.get("database") in (None, ":memory:"):
        problems.append(("read_only", "`read_only` needs a `database` file"))
    return problems
