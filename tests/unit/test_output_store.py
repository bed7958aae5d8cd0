"""`output:` at the payload layer: store kinds, selection by name and path (`persist`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from noetl_core.adapters.fsspec_payloads import FsspecPayloadStore
from noetl_core.playbook.model import OutputSpec, select_path
from noetl_core.runtime import payloads
from noetl_core.tools.base import Rowset


@pytest.fixture
def store(tmp_path: Path) -> FsspecPayloadStore:
    return FsspecPayloadStore((tmp_path / "payloads").as_uri())


RESULT = {"status": "ok", "paging": {"next": "c2"}, "items": [{"id": 7}, {"id": 8}]}


def test_auto_keeps_a_small_result_inline(store: Any) -> None:
    ref, view = payloads.persist(store, RESULT, "k", 1024, ["status"])
    assert ref == {"inline": RESULT} and view["status"] == "ok"


def test_payload_stores_even_a_scalar_and_keeps_the_selection(store: Any) -> None:
    ref, _ = payloads.persist(store, 5, "k1", 1024, mode="payload")
    assert "inline" not in ref and store.get(ref) == 5
    ref, view = payloads.persist(store, RESULT, "k2", 1024, ["status"], mode="payload")
    assert ref["select"] == {"status": "ok"} and view["status"] == "ok"
    assert payloads.load(store, ref) == RESULT


def test_inline_ignores_the_limit_up_to_the_logs_and_refuses_beyond(store: Any) -> None:
    big = {"text": "x" * 5000}
    ref, _ = payloads.persist(store, big, "k", 1024, mode="inline")
    assert ref == {"inline": big}
    with pytest.raises(payloads.InlineTooLarge) as caught:
        payloads.persist(store, {"text": "x" * payloads.MAX_INLINE}, "k", 1024, mode="inline")
    assert caught.value.code == "inline_too_large" and caught.value.kind == "payload"
    table = pa.table({"t": ["x" * 1000] * 1000})
    with pytest.raises(payloads.InlineTooLarge):
        payloads.persist(store, Rowset(table), "k", 1024, mode="inline")


def test_a_query_result_goes_as_arrow_under_payload(store: Any) -> None:
    rows = Rowset(pa.table({"n": [1, 2]}))
    ref, view = payloads.persist(store, rows, "k", 1024, mode="payload")
    assert ref["rowset"] and ref["select"] == {"columns": ["n"], "row_count": 2}
    assert view["rows"] == [{"n": 1}, {"n": 2}]


def test_selection_by_path_and_alias_beside_a_reference_and_inline(store: Any) -> None:
    spec = OutputSpec.validate(
        {"select": ["items[1].id", {"path": "$.paging.next", "as": "cursor"}, "nope.x"]}
    )
    pairs = spec.selection()
    assert pairs == [
        ("id", ("items", 1, "id")),
        ("cursor", ("paging", "next")),
        ("x", ("nope", "x")),
    ]
    ref, _ = payloads.persist(store, RESULT, "k", 10, pairs, select_limit=1024)
    assert ref["select"] == {"id": 8, "cursor": "c2", "x": None}
    ref, view = payloads.persist(store, RESULT, "k", 1024, pairs)
    assert ref["inline"] == RESULT and view["cursor"] == "c2"
    assert payloads.view(store, ref)["id"] == 8


def test_the_selection_is_kept_within_its_budget(store: Any) -> None:
    value = {"a": "x" * 50, "b": 1, "pad": "y" * 500}
    ref, _ = payloads.persist(store, value, "k", 100, ["a", "b"], select_limit=10)
    assert ref["select"] == {"b": 1}  # `a` is read from the payload when used
    assert payloads.view(store, ref)["a"] == "x" * 50


@pytest.mark.parametrize(
    ("text", "parts"),
    [("status", ("status",)), ("$.a.b[2]", ("a", "b", 2)), ("a[0][1].c", ("a", 0, 1, "c"))],
)
def test_select_paths(text: str, parts: tuple[Any, ...]) -> None:
    assert select_path(text) == parts
