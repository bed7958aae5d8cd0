"""Step results: inline when small, else in the payload store; loaded lazily.

A result reference is `{"inline": value}` for JSON up to the inline limit, else the
payload store's reference (Arrow IPC for tables and lists of records, JSON otherwise),
plus `select`: the top-level fields named by the step's `output.select`, kept inline.
A pyarrow Table is always stored as Arrow, whatever its size, so it comes back a Table.

Every other value an entry may hold at any size (the workload, the playbook's source,
ctx values and `set` patches: `entries.LARGE_FIELDS` and scope-version value nodes) goes
the same way above the same limit (`spill`), on every backend: entries stay small, so
none nears Firestore's 1 MiB per document, and both backends take the same inputs.
Every payload key is made by `key`, under its execution's prefix.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from ..engine.entries import LARGE_FIELDS, MAX_ENTRY_BYTES, SPILLED, Entry, is_spilled
from ..errors import PayloadError
from ..redact import Redactor
from ..templating import ResultView
from ..tools.base import Rowset
from .ports import PayloadStore


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, ResultView):
        return value.value
    if isinstance(value, Mapping):  # a lazy scope such as ctx
        return dict(value)
    return str(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_default)  # built once


def to_json(value: Any) -> str:
    return _ENCODER.encode(value)


def key(execution_id: str, *parts: str | int) -> str:
    """`executions/<execution id>/<part>/...`: where an execution stores a payload. Parts
    come from the playbook (step and task names), so each is made one segment whatever
    it holds: percent-encoded outside letters, digits and `_ . - ~`, and a part of dots
    only (`..`) encoded whole. A key can then never leave its execution's prefix, even for
    a name that validation did not see."""
    return "/".join(["executions", *map(_segment, map(str, (execution_id, *parts)))])


@lru_cache(maxsize=4096)
def _segment(part: str) -> str:
    if not part:
        raise ValueError("a payload key segment cannot be empty")
    quoted = quote(part, safe="")
    return quoted if quoted.strip(".") else quoted.replace(".", "%2E")


def _is_table(value: Any) -> bool:
    return type(value).__module__.startswith("pyarrow") and type(value).__name__ == "Table"


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


Selected = Sequence[str | tuple[str, Sequence[str | int]]]
# What `output.store.kind: inline` may keep in the log: half an entry, as other values.
MAX_INLINE = MAX_ENTRY_BYTES // 2


class InlineTooLarge(PayloadError):
    """`output.store.kind: inline` asked for a result the log cannot hold."""

    @property
    def kind(self) -> str:
        return "payload"


def persist(
    store: PayloadStore,
    value: Any,
    key: str,
    limit: int,
    select: Selected = (),
    redactor: Redactor | None = None,
    mode: str = "auto",
    select_limit: int | None = None,
) -> tuple[dict[str, Any], ResultView]:
    """Store a result (secrets masked); return its reference and the view later templates
    in this block use. `mode` (`output.store.kind`): `auto` keeps JSON up to `limit`
    inline and stores the rest; `inline` keeps it inline up to `MAX_INLINE`, else raises
    `InlineTooLarge`; `payload` stores it whatever its size. `select`: the fields (names,
    or (name, path) pairs) kept inline beside a reference, together up to `select_limit`
    (default: `limit`)."""
    if redactor:
        value = (
            Rowset(redactor.scrub(value.table))
            if isinstance(value, Rowset)
            else redactor.scrub(value)
        )
    budget = limit if select_limit is None else select_limit
    if mode == "inline":
        limit = MAX_INLINE
    elif mode == "payload":
        limit = -1
    if isinstance(value, Rowset):
        return _persist_rowset(store, value, key, limit, mode)
    if _is_table(value):
        table_ref = store.put(key, value, tabular=True)
        return table_ref, ResultView(value, ref=table_ref)
    pairs = _pairs(select)
    scalar = value is None or type(value) in (bool, int, float, str)
    if scalar and limit >= 0 and (type(value) is not str or len(value) <= limit):
        return {"inline": value}, ResultView(value)
    text = to_json(value)
    plain = json.loads(text)
    if len(text) <= limit:
        inline: dict[str, Any] = {"inline": plain}
        aliases = [(n, p) for n, p in pairs if tuple(p) != (n,)]
        if aliases:  # a name that is not the result's own field: readable inline too
            inline["select"] = _selection(plain, aliases, budget)
        return inline, ResultView(plain, selected=inline.get("select"))
    if mode == "inline":
        raise InlineTooLarge(
            f"the result is {len(text)} bytes of JSON, over the {MAX_INLINE} the log holds "
            "inline (`output.store.kind: inline`): use `auto` or `payload`",
            code="inline_too_large",
        )
    ref: dict[str, Any] | None = None
    if _is_records(plain):
        try:
            ref = store.put(key, plain, tabular=True)
        except Exception:  # mixed column types: keep it as JSON
            ref = None
    if ref is None:
        ref = store.put(key, plain, tabular=False)
    if pairs:
        ref["select"] = _selection(plain, pairs, budget)
    return ref, ResultView(plain, ref=ref, selected=ref.get("select"))


def _pairs(select: Selected) -> list[tuple[str, tuple[str | int, ...]]]:
    return [(s, (s,)) if isinstance(s, str) else (s[0], tuple(s[1])) for s in select]


def _at(value: Any, path: Sequence[str | int]) -> Any:
    """The value at `path` (keys and list indexes), or None where there is none."""
    for part in path:
        if isinstance(value, dict):
            value = value.get(str(part))
        elif isinstance(value, list) and isinstance(part, int) and -len(value) <= part < len(value):
            value = value[part]
        else:
            return None
    return value


def _selection(
    plain: Any, select: Sequence[tuple[str, Sequence[str | int]]], limit: int
) -> dict[str, Any]:
    """The fields `output.select` names, kept inline while together within `limit`: a
    field left out is read from the stored result when a template uses it (when it is
    one of the result's own fields)."""
    kept: dict[str, Any] = {}
    used = 0
    for name, path in select:
        found = _at(plain, path)
        size = len(to_json(found))
        if used + size <= limit:
            kept[name] = found
            used += size
    return kept


def _persist_rowset(
    store: PayloadStore, rowset: Rowset, key: str, limit: int, mode: str = "auto"
) -> tuple[dict[str, Any], ResultView]:
    if rowset.table.nbytes <= limit or mode == "inline":
        text = to_json(rowset.value())
        if len(text) <= limit:
            plain = json.loads(text)
            # the column types travel with the JSON, so `table()` can restore them
            schema = [{"name": f.name, "type": str(f.type)} for f in rowset.table.schema]
            return {"inline": plain, "schema": schema}, ResultView(plain)
        if mode == "inline":
            raise InlineTooLarge(
                f"the query result is {len(text)} bytes of JSON, over the {MAX_INLINE} the "
                "log holds inline (`output.store.kind: inline`): use `auto` or `payload`",
                code="inline_too_large",
            )
    ref = store.put(key, rowset.table, tabular=True)
    ref["rowset"] = True
    ref["select"] = {"columns": rowset.columns, "row_count": rowset.row_count}
    return ref, view(store, ref)


def _rowset_value(table: Any) -> dict[str, Any]:
    return Rowset(table).value()


def view(store: PayloadStore, ref: dict[str, Any] | None) -> ResultView:
    """A lazy view of a recorded result."""
    if ref is None:
        return ResultView(None)
    if "inline" in ref:
        return ResultView(ref["inline"], selected=ref.get("select"))
    if ref.get("rowset"):
        return ResultView(
            ref=ref, loader=lambda: _rowset_value(store.get(ref)), selected=ref.get("select")
        )
    if "list" in ref:
        items = ref["list"]
        return ResultView(ref=ref, loader=lambda: [load(store, r) for r in items])
    return ResultView(ref=ref, loader=lambda: store.get(ref), selected=ref.get("select"))


def load(store: PayloadStore, ref: dict[str, Any] | None) -> Any:
    return view(store, ref).value


def table(store: PayloadStore, ref: dict[str, Any] | None) -> Any:
    """A recorded result as an Arrow table (read as Arrow, without a JSON detour), or None
    when it is not tabular: a table, a rowset, or a list of records."""
    if ref is None:
        return None
    import pyarrow as pa

    if ref.get("format") == "arrow":
        return store.get({**ref, "shape": "table"})  # the IPC table itself, no row objects
    value = load(store, ref)
    if isinstance(value, dict) and isinstance(value.get("rows"), list) and "columns" in value:
        if not value["rows"]:
            empty = pa.table({c: pa.array([], pa.null()) for c in value["columns"]})
            return _typed(empty, ref.get("schema"))
        value = value["rows"]
    if _is_records(value):
        return _typed(pa.Table.from_pylist(value), ref.get("schema"))
    return None


def _typed(table: Any, schema: list[dict[str, str]] | None) -> Any:
    """Cast columns back to the types recorded beside an inline rowset (best effort: a
    column that does not cast keeps the type JSON gave it)."""
    if not schema:
        return table
    import pyarrow as pa

    columns = []
    for field, column in zip(schema, table.columns, strict=False):
        try:
            columns.append(column.cast(pa.type_for_alias(field["type"])))
        except (ValueError, TypeError, pa.ArrowException):
            columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


# -- other large values in entries ---------------------------------------------------------

# What an entry's large fields and value nodes may hold inline together: half an entry
# (`MAX_ENTRY_BYTES`), the rest left to what is bounded otherwise (an inline result, a
# step's log tail, ...). Over it, the largest go by reference even under the limit: a
# step setting twenty values of 60 KB each fits as one setting one of 1.2 MB does.
INLINE_BUDGET = MAX_ENTRY_BYTES // 2


def spill(store: PayloadStore, value: Any, prefix: str, limit: int) -> Any:
    """`value` as an entry holds it: itself when its JSON is at most `limit` bytes, else
    `{"$payload": ref}` (see `_stored`)."""
    if _plain_scalar(value) or is_spilled(value):
        return value
    text = to_json(value)
    return value if len(text) <= limit else _stored(store, value, text, prefix)


def _plain_scalar(value: Any) -> bool:
    return value is None or type(value) in (bool, int, float)


def _stored(store: PayloadStore, value: Any, text: str, prefix: str) -> dict[str, Any]:
    """`{"$payload": ref}`, the value stored under its digest: the same value is one
    object, and a retried block writes again exactly what it wrote."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    return {SPILLED: store.put(f"{prefix}/{digest}", value, tabular=False)}


def unspill(store: PayloadStore, value: Any) -> Any:
    """The value an entry holds, read back from the payload store if it was spilled."""
    return store.get(value[SPILLED]) if is_spilled(value) else value


def spill_entry(store: PayloadStore, entry: Entry, limit: int) -> Entry:
    """The entry with its large fields and value nodes by reference: each one over
    `limit`, then the largest while together they hold more than `INLINE_BUDGET`. Keys
    of `held`: a field's name, or a value node's position."""
    body = entry.body
    held: dict[str | int, Any] = {f: body[f] for f in LARGE_FIELDS if f in body}
    nodes = body.get("nodes") or ()
    held.update((i, node["v"]) for i, node in enumerate(nodes) if "v" in node)
    texts = {k: to_json(v) for k, v in held.items() if not _plain_scalar(v) and not is_spilled(v)}
    if not texts:  # most entries: nothing but numbers and flags, or nothing at all
        return entry
    inline = sum(len(t) for t in texts.values())
    prefix = f"executions/{entry.execution_id}/values"
    for where in sorted(texts, key=lambda k: len(texts[k]), reverse=True):
        size = len(texts[where])
        if size <= limit and inline <= INLINE_BUDGET:
            break
        held[where] = _stored(store, held[where], texts[where], prefix)
        inline -= size
    changed = {k: v for k, v in held.items() if isinstance(k, str) and v is not body[k]}
    moved = {k: v for k, v in held.items() if isinstance(k, int) and v is not nodes[k]["v"]}
    if moved:
        changed["nodes"] = [{"v": moved[i]} if i in moved else n for i, n in enumerate(nodes)]
    return entry.evolve(body={**body, **changed}) if changed else entry


def unspill_fields(store: PayloadStore, entry: Entry) -> Entry:
    """The entry with its spilled `LARGE_FIELDS` read back (value nodes are read back
    one by one, when a scope version reaches them)."""
    spilled = [f for f in LARGE_FIELDS if is_spilled(entry.body.get(f))]
    if not spilled:
        return entry
    restored = {f: unspill(store, entry.body[f]) for f in spilled}
    return entry.evolve(body={**entry.body, **restored})
