"""`transfer`'s declaration (see `noetl_core.tools.transfer`).

Upstream's fields: `source: {kind (or type, tool), query, auth}`, `target: {kind, table |
query, auth}`, `chunk_size` (`batch_size` here too), `mode` (append, replace, upsert; on
the tool or on the target).
"""

from __future__ import annotations

from typing import Any

RAW_FIELDS: frozenset[str] = frozenset()
ENDPOINTS = ("postgres", "duckdb")
UPSTREAM_ONLY = ("snowflake", "http")  # upstream moves these too; not here
MODES = ("append", "replace", "upsert")


def kind_of(side: dict[str, Any]) -> Any:
    return side.get("kind", side.get("type", side.get("tool")))


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name in ("source", "target"):
        side = fields.get(name)
        if not isinstance(side, dict):
            problems.append((name, f"`transfer` needs `{name}: {{kind, ...}}`"))
            continue
        kind = kind_of(side)
        if _template(kind):
            pass
        elif kind in UPSTREAM_ONLY:
            problems.append(
                (
                    f"{name}.kind",
                    f"a {kind} {name} is upstream NoETL's but not supported here "
                    f"(kinds: {', '.join(ENDPOINTS)})",
                )
            )
        elif kind not in ENDPOINTS:
            problems.append(
                (f"{name}.kind", f"expected one of {', '.join(ENDPOINTS)}, got {kind!r}")
            )
        for key in ("query", "table", "database"):
            if side.get(key) is not None and not isinstance(side[key], str):
                problems.append((f"{name}.{key}", f"`{key}` must be a string"))
    source, target = fields.get("source"), fields.get("target")
    if isinstance(source, dict) and not source.get("query"):
        problems.append(("source.query", "the source needs `query` (SQL whose rows are moved)"))
    if isinstance(target, dict):
        if not target.get("table") and not target.get("query"):
            problems.append(("target.table", "the target needs `table` (or `query`, an INSERT)"))
        columns = target.get("key")
        if columns is not None and not (
            isinstance(columns, str)
            or (isinstance(columns, list) and all(isinstance(k, str) for k in columns))
        ):
            problems.append(("target.key", "`key` is a column name or a list of them"))
    for where, mode in (("mode", fields.get("mode")), ("target.mode", _get(target, "mode"))):
        if mode is not None and not _template(mode) and mode not in MODES:
            problems.append((where, f"`mode` is one of {', '.join(MODES)}, got {mode!r}"))
    given = [key for key in ("chunk_size", "batch_size") if fields.get(key) is not None]
    if len(given) > 1:
        problems.append(("batch_size", "give `chunk_size` or `batch_size`, not both"))
    for key in given:
        size = fields[key]
        if _template(size):
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            problems.append((key, f"`{key}` must be a positive whole number of rows"))
    return problems


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value
