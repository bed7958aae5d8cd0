"""Whether infra/firestore.indexes.json serves a query, by real Firestore's rules.

The Firestore emulator serves every query; real Firestore refuses one that no index
fits. The adapters write down the shape of each query they run
(`noetl_core/adapters/gcp/firestore_queries.py`, `NOETL_QUERY_SHAPE_FILE`) and the test
session checks every shape here, so the emulator suite proves the index file complete.

The rules, as Firestore documents them (where it leaves room, the stricter reading):

- Every field has automatic single-field indexes (ascending, descending,
  array-contains) unless a field override (an exemption) takes them away; an override of
  a map field applies to its subfields.
- A query touching one field only (filters, orders, a sum on it) is served by that
  field's single-field index; one with no field at all, by the collection's own.
- Equality (`==`) filters only, with or without orders: index merging serves it when
  every filtered field sits in an index made of equality-filtered fields followed by
  exactly the query's orders (a single-field index where there are no orders).
- Anything else needs one composite index: first the equality (`==`, `in`) fields in
  any order and direction and the array-contains field with `arrayConfig: CONTAINS`,
  then the orders with their directions (an inequality's field is ordered ascending
  after the explicit orders when they do not name it), then the summed or averaged
  fields, ascending, in the query's order. A document lacking one of an index's fields
  is not in it, so the index holds the query's fields and no other.
- `__name__` closes every index and ordering implicitly; a trailing one is ignored.
- The limit changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INDEX_FILE = ROOT / "infra" / "firestore.indexes.json"
PREFIX = "noetl"  # the collections as deployed: NOETL_FIRESTORE_PREFIX's default

ASCENDING, DESCENDING, CONTAINS = "ASCENDING", "DESCENDING", "CONTAINS"
EQUALITY = {"EQUAL", "IN"}
INEQUALITY = {
    "LESS_THAN",
    "LESS_THAN_OR_EQUAL",
    "GREATER_THAN",
    "GREATER_THAN_OR_EQUAL",
    "NOT_EQUAL",
    "NOT_IN",
}
ARRAY_CONTAINS = "ARRAY_CONTAINS"

Field = tuple[str, str]  # (field path, ASCENDING | DESCENDING | CONTAINS)


@dataclass(frozen=True)
class Declared:
    """An index file: composite indexes and single-field overrides by collection group."""

    composites: dict[str, list[tuple[Field, ...]]]
    overrides: dict[str, dict[str, set[str]]]  # group -> field path -> modes it keeps

    def single_field_modes(self, group: str, path: str) -> set[str]:
        """The modes of a field's automatic index: the closest override's, else all."""
        fields = self.overrides.get(group, {})
        parts = path.split(".")
        for cut in range(len(parts), 0, -1):
            modes = fields.get(".".join(parts[:cut]))
            if modes is not None:
                return modes
        return {ASCENDING, DESCENDING, CONTAINS}


def load(path: Path = INDEX_FILE) -> Declared:
    spec = json.loads(path.read_text(encoding="utf-8"))
    composites: dict[str, list[tuple[Field, ...]]] = {}
    for index in spec.get("indexes", []):
        fields = tuple(_mode(f) for f in index["fields"])
        composites.setdefault(index["collectionGroup"], []).append(_without_name(fields))
    overrides: dict[str, dict[str, set[str]]] = {}
    for override in spec.get("fieldOverrides", []):
        modes = {_mode(i)[1] for i in override.get("indexes", []) if _collection_scope(i)}
        overrides.setdefault(override["collectionGroup"], {})[override["fieldPath"]] = modes
    return Declared(composites, overrides)


def read_shapes(path: Path) -> list[dict[str, Any]]:
    """The distinct shapes in a shape file (one JSON object a line)."""
    lines = dict.fromkeys(path.read_text(encoding="utf-8").splitlines())
    return [json.loads(line) for line in lines if line.strip()]


def unserved(shapes: Iterable[dict[str, Any]], declared: Declared) -> list[str]:
    """One line per shape no declared index serves: the shape and what it needs."""
    problems = []
    for shape in shapes:
        missing = why_unserved(shape, declared)
        if missing is not None:
            problems.append(f"{json.dumps(shape)}: {missing}")
    return problems


def why_unserved(shape: dict[str, Any], declared: Declared) -> str | None:
    """None when Firestore could run the query with these indexes; else what it lacks."""
    group = f"{PREFIX}_{shape['collection']}"
    filters = [(str(f), str(op)) for f, op in shape["filters"]]
    unknown = sorted({op for _, op in filters} - EQUALITY - INEQUALITY - {ARRAY_CONTAINS})
    if unknown:
        return f"no index rule here for the operator(s) {', '.join(unknown)}"
    equal = [f for f, op in filters if op in EQUALITY]
    contains = [f for f, op in filters if op == ARRAY_CONTAINS]
    orders = _ordering(shape, filters)
    summed = [(str(a[1]), ASCENDING) for a in shape["aggregations"] if a[0] != "count"]
    if _single_field(group, equal, contains, orders, summed, declared):
        return None
    only_equal = all(op == "EQUAL" for _, op in filters) and not summed
    if only_equal and equal and _merged(group, equal, orders, declared):
        return None
    needed = [(f, ASCENDING) for f in equal] + [(f, CONTAINS) for f in contains]
    if any(_fits(i, needed, [*orders, *summed]) for i in declared.composites.get(group, [])):
        return None
    wanted = ", ".join(f"{f} {mode}" for f, mode in [*needed, *orders, *summed])
    return f"needs a composite index on {group} ({wanted})"


def _ordering(shape: dict[str, Any], filters: Sequence[tuple[str, str]]) -> list[Field]:
    """The explicit orders, then each inequality field they leave out, ascending."""
    orders = list(_without_name(tuple((str(f), str(d)) for f, d in shape["orders"])))
    named = {f for f, _ in orders}
    implicit = sorted({f for f, op in filters if op in INEQUALITY} - named)
    return orders + [(f, ASCENDING) for f in implicit]


def _single_field(
    group: str,
    equal: Sequence[str],
    contains: Sequence[str],
    orders: Sequence[Field],
    summed: Sequence[Field],
    declared: Declared,
) -> bool:
    touched = {*equal, *contains, *(f for f, _ in orders), *(f for f, _ in summed)}
    if not touched:
        return True  # the collection's own index (`__name__`)
    if len(touched) > 1:
        return False
    modes = declared.single_field_modes(group, touched.pop())
    if contains:
        return CONTAINS in modes and not (equal or orders or summed)
    directions = {d for _, d in orders}
    return bool(modes & {ASCENDING, DESCENDING}) and directions <= modes


def _merged(group: str, equal: Sequence[str], orders: Sequence[Field], declared: Declared) -> bool:
    """Index merging: each equality field in an index of equality fields + the orders."""
    tail = tuple(orders)
    usable = [
        i
        for i in declared.composites.get(group, [])
        if i[len(i) - len(tail) :] == tail
        and len(i) > len(tail)
        and all(f in equal and mode != CONTAINS for f, mode in i[: len(i) - len(tail)])
    ]
    covered = {f for i in usable for f, _ in i[: len(i) - len(tail)]}
    if not tail:
        covered |= {
            f for f in equal if declared.single_field_modes(group, f) & {ASCENDING, DESCENDING}
        }
    return set(equal) <= covered


def _fits(index: tuple[Field, ...], prefix: Sequence[Field], rest: Sequence[Field]) -> bool:
    """The index's fields are the prefix's in any order (equality fields in either
    direction), then exactly `rest`."""
    head, tail = index[: len(prefix)], index[len(prefix) :]
    if tuple(tail) != tuple(rest):
        return False
    wanted = {(f, CONTAINS if mode == CONTAINS else "ORDER") for f, mode in prefix}
    found = {(f, CONTAINS if mode == CONTAINS else "ORDER") for f, mode in head}
    return len(head) == len(prefix) and wanted == found


def _mode(field: dict[str, Any]) -> Field:
    mode = field.get("order") or field.get("arrayConfig")
    return str(field.get("fieldPath", "")), str(mode)


def _collection_scope(index: dict[str, Any]) -> bool:
    return str(index.get("queryScope", "COLLECTION")) == "COLLECTION"


def _without_name(fields: tuple[Field, ...]) -> tuple[Field, ...]:
    return fields[:-1] if fields and fields[-1][0] == "__name__" else fields
