"""The index matcher on hand-written query shapes: which index serves which query under
Firestore's rules (the emulator needs none, so these rules are all the check has), and
the declared file itself."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from emulators import firestore_indexes as fi

pytestmark = pytest.mark.unit

ASC, DESC = "ASCENDING", "DESCENDING"


def shape(
    filters: Sequence[tuple[str, str]] = (),
    orders: Sequence[tuple[str, str]] = (),
    aggregations: Sequence[tuple[str, str | None]] = (),
    collection: str = "things",
) -> dict[str, Any]:
    """A shape as the recorder writes it (JSON lists, `limit` that changes nothing)."""
    return {
        "collection": collection,
        "filters": [list(f) for f in filters],
        "orders": [list(o) for o in orders],
        "aggregations": [list(a) for a in aggregations],
        "limit": 1,
    }


def declared(
    tmp_path: Path, *indexes: list[tuple[str, str]], exempt: tuple[str, ...] = ()
) -> fi.Declared:
    """An index file on `noetl_things`, read the way the session check reads the real one."""
    spec = {
        "indexes": [
            {
                "collectionGroup": "noetl_things",
                "queryScope": "COLLECTION",
                "fields": [
                    {"fieldPath": f, ("arrayConfig" if m == "CONTAINS" else "order"): m}
                    for f, m in fields
                ],
            }
            for fields in indexes
        ],
        "fieldOverrides": [
            {"collectionGroup": "noetl_things", "fieldPath": f, "indexes": []} for f in exempt
        ],
    }
    path = tmp_path / "firestore.indexes.json"
    path.write_text(json.dumps(spec))
    return fi.load(path)


def served(s: dict[str, Any], d: fi.Declared) -> bool:
    return fi.why_unserved(s, d) is None


def test_single_field_indexes_serve_one_field_and_no_field(tmp_path: Path) -> None:
    none = declared(tmp_path)
    assert served(shape(), none)  # the whole collection
    assert served(shape(aggregations=[("count", None)]), none)
    assert served(shape([("a", "EQUAL")]), none)
    assert served(shape([("a", "GREATER_THAN"), ("a", "LESS_THAN")]), none)
    assert served(shape([("a", "GREATER_THAN")], [("a", DESC)]), none)
    assert served(shape([("tags", "ARRAY_CONTAINS")]), none)
    assert served(shape(orders=[("a", DESC)]), none)
    assert served(shape(aggregations=[("sum", "m.k1")]), none)  # a map's subfield too
    assert served(shape([("a", "IN")]), none)


def test_an_exemption_takes_the_single_field_index_away_and_a_map_s_subfields(
    tmp_path: Path,
) -> None:
    d = declared(tmp_path, exempt=("data", "m"))
    assert not served(shape([("data", "EQUAL")]), d)
    assert not served(shape(aggregations=[("sum", "m.k1")]), d)
    assert served(shape(aggregations=[("sum", "mm")]), d)  # a prefix of the name is not
    assert not served(shape([("a", "EQUAL"), ("data", "EQUAL")]), d)  # nothing to merge


def test_equalities_alone_are_served_by_merging_single_field_indexes(tmp_path: Path) -> None:
    none = declared(tmp_path)
    three = shape([("a", "EQUAL"), ("b", "EQUAL"), ("c", "EQUAL")])
    assert served(three, none)
    assert served({**three, "aggregations": [["count", None]]}, none)
    # `in` and array-contains beside another filter: one composite index (stricter reading)
    assert not served(shape([("a", "EQUAL"), ("b", "IN")]), none)
    assert served(
        shape([("a", "EQUAL"), ("b", "IN")]), declared(tmp_path, [("b", ASC), ("a", ASC)])
    )
    assert not served(shape([("a", "EQUAL"), ("t", "ARRAY_CONTAINS")]), none)


def test_equalities_with_an_order_merge_only_indexes_ending_in_that_order(
    tmp_path: Path,
) -> None:
    query = shape([("a", "EQUAL"), ("b", "EQUAL")], [("c", ASC)])
    assert not served(query, declared(tmp_path))
    assert served(query, declared(tmp_path, [("a", ASC), ("c", ASC)], [("b", ASC), ("c", ASC)]))
    assert not served(query, declared(tmp_path, [("a", ASC), ("c", ASC)]))  # b uncovered
    assert not served(
        query, declared(tmp_path, [("a", ASC), ("c", ASC)], [("b", ASC), ("c", DESC)])
    )
    assert served(query, declared(tmp_path, [("b", DESC), ("a", ASC), ("c", ASC)]))


def test_an_order_on_another_field_needs_the_composite_with_its_direction(
    tmp_path: Path,
) -> None:
    last = shape([("e", "EQUAL"), ("r", "EQUAL")], [("t", DESC), ("bi", DESC)])
    exact = [("e", ASC), ("r", ASC), ("t", DESC), ("bi", DESC)]
    assert served(last, declared(tmp_path, exact))
    assert served(last, declared(tmp_path, [*exact, ("__name__", DESC)]))  # implicit anyway
    assert served(last, declared(tmp_path, [("r", DESC), ("e", ASC), ("t", DESC), ("bi", DESC)]))
    assert not served(last, declared(tmp_path, [("e", ASC), ("r", ASC), ("t", ASC), ("bi", ASC)]))
    assert not served(last, declared(tmp_path, [("e", ASC), ("r", ASC), ("bi", DESC), ("t", DESC)]))
    assert not served(last, declared(tmp_path, [("e", ASC), ("t", DESC), ("bi", DESC), ("r", ASC)]))
    # a document without a field of the index is not in it: no extra field
    assert not served(last, declared(tmp_path, [*exact[:2], ("x", ASC), *exact[2:]]))
    assert not served(last, declared(tmp_path, exact[1:]))


def test_an_inequality_beside_an_equality_is_ordered_ascending_after_the_equalities(
    tmp_path: Path,
) -> None:
    wave = shape([("e", "EQUAL"), ("k", "EQUAL"), ("ix", "GREATER_THAN_OR_EQUAL")])
    wave = {**wave, "aggregations": [["count", None]]}
    assert not served(wave, declared(tmp_path))  # counting does not lift the rule
    assert served(wave, declared(tmp_path, [("k", ASC), ("e", ASC), ("ix", ASC)]))
    assert not served(wave, declared(tmp_path, [("e", ASC), ("k", ASC), ("ix", DESC)]))
    assert not served(wave, declared(tmp_path, [("e", ASC), ("ix", ASC), ("k", ASC)]))
    prefix = shape([("id", "GREATER_THAN_OR_EQUAL"), ("id", "LESS_THAN"), ("k", "EQUAL")])
    assert served(prefix, declared(tmp_path, [("k", ASC), ("id", ASC)]))
    assert not served(prefix, declared(tmp_path, [("id", ASC), ("k", ASC)]))
    assert not served(shape([("a", "NOT_EQUAL"), ("b", "EQUAL")]), declared(tmp_path))


def test_array_contains_with_another_filter_needs_the_array_config_in_the_composite(
    tmp_path: Path,
) -> None:
    query = shape([("e", "EQUAL"), ("t", "ARRAY_CONTAINS")])
    assert served(query, declared(tmp_path, [("t", "CONTAINS"), ("e", ASC)]))
    assert not served(query, declared(tmp_path, [("t", ASC), ("e", ASC)]))
    assert not served(shape([("t", "ARRAY_CONTAINS")]), declared(tmp_path, exempt=("t",)))


def test_a_sum_beside_a_filter_needs_the_summed_fields_in_the_composite(
    tmp_path: Path,
) -> None:
    sums = [("sum", "x"), ("sum", "y")]
    query = shape([("e", "EQUAL"), ("n", "EQUAL")], aggregations=sums)
    assert not served(query, declared(tmp_path))  # the sums' values come from one index
    assert served(query, declared(tmp_path, [("n", ASC), ("e", ASC), ("x", ASC), ("y", ASC)]))
    assert not served(query, declared(tmp_path, [("e", ASC), ("n", ASC), ("y", ASC), ("x", ASC)]))
    assert not served(query, declared(tmp_path, [("e", ASC), ("n", ASC), ("x", ASC)]))
    assert not served(shape(aggregations=sums), declared(tmp_path))  # two fields, no filter
    assert served(shape(aggregations=sums), declared(tmp_path, [("x", ASC), ("y", ASC)]))
    averaged = shape([("e", "EQUAL")], aggregations=[("avg", "x")])
    assert served(averaged, declared(tmp_path, [("e", ASC), ("x", ASC)]))


def test_what_a_shape_lacks_is_named_and_unknown_operators_are_never_served(
    tmp_path: Path,
) -> None:
    d = declared(tmp_path)
    [problem] = fi.unserved([shape([("e", "EQUAL")], [("t", DESC)])], d)
    assert problem.endswith("needs a composite index on noetl_things (e ASCENDING, t DESCENDING)")
    assert fi.unserved([shape([("e", "EQUAL")])], d) == []
    assert "IS_NULL" in str(fi.why_unserved(shape([("e", "IS_NULL")]), d))
    assert "OR" in str(fi.why_unserved(shape([("", "OR")]), d))


def test_the_declared_file_is_firestore_s_format_with_the_exemptions() -> None:
    spec = json.loads(fi.INDEX_FILE.read_text(encoding="utf-8"))
    assert set(spec) == {"indexes", "fieldOverrides"}
    modes = {"order": {ASC, DESC}, "arrayConfig": {"CONTAINS"}}
    for index in spec["indexes"]:
        assert set(index) == {"collectionGroup", "queryScope", "fields"}
        assert index["queryScope"] == "COLLECTION"
        assert len(index["fields"]) >= 2  # one field is a single-field index, not composite
        for field in index["fields"]:
            [(key, value)] = [(k, v) for k, v in field.items() if k != "fieldPath"]
            assert value in modes[key]
    exempt = {(o["collectionGroup"], o["fieldPath"]) for o in spec["fieldOverrides"]}
    assert exempt == {("noetl_entries", "data"), ("noetl_catalog", "source")}
    assert all(o["indexes"] == [] for o in spec["fieldOverrides"])
    keys = [json.dumps(i, sort_keys=True) for i in spec["indexes"]]
    assert len(keys) == len(set(keys))
