"""Large values in entries go by reference above the inline limit (payloads.spill)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from noetl_core.adapters.fsspec_payloads import FsspecPayloadStore
from noetl_core.engine import entries as E
from noetl_core.engine.entries import Entry
from noetl_core.runtime import payloads

pytestmark = pytest.mark.unit

LIMIT = 1000


@pytest.fixture
def store(tmp_path: Path) -> FsspecPayloadStore:
    return FsspecPayloadStore((tmp_path / "payloads").as_uri())


def entry(kind: str = "done", **body: Any) -> Entry:
    return Entry(id="e1", execution_id="X", kind=kind, events=(), ts=0.0, body=body)


def test_a_value_over_the_limit_is_stored_once_under_its_digest(store: Any) -> None:
    big = {"rows": ["x" * 100] * 20}
    held = payloads.spill(store, big, "executions/X/values", LIMIT)
    assert E.is_spilled(held)
    ref = held[E.SPILLED]
    assert ref["key"].startswith("executions/X/values/") and ref["size"] > LIMIT
    assert payloads.spill(store, big, "executions/X/values", LIMIT) == held  # same object
    assert payloads.unspill(store, held) == big


@pytest.mark.parametrize("value", [None, 7, 2.5, True, "short", {"a": 1}, ["x"] * 10])
def test_a_small_value_stays_itself(store: Any, value: Any) -> None:
    assert payloads.spill(store, value, "p", LIMIT) is value
    assert payloads.unspill(store, value) is value


def test_a_start_entry_holds_a_big_workload_and_source_by_reference(store: Any) -> None:
    workload = {"blob": "y" * 5000, "n": 1}
    start = entry("start", workload=workload, source="s" * 3000, playbook={"name": "p"})
    held = payloads.spill_entry(store, start, LIMIT)
    assert E.is_spilled(held.body["workload"]) and E.is_spilled(held.body["source"])
    assert held.body["playbook"] == {"name": "p"}
    assert len(E.stored_json(held)) < 2000  # two references
    back = payloads.unspill_fields(store, held)
    assert back.body["workload"] == workload and back.body["source"] == "s" * 3000


def test_an_entry_with_nothing_large_is_the_same_entry(store: Any) -> None:
    small = entry(set={"ctx": {"a": 1}}, nodes=[{"k": {"a": 1}}, {"v": "x" * 600}])
    assert payloads.spill_entry(store, small, LIMIT) is small
    assert payloads.unspill_fields(store, small) is small


def test_only_value_nodes_over_the_limit_are_stored_apart(store: Any) -> None:
    nodes = [{"k": {"a": 1}, "r": {"big": "e1:1"}}, {"v": "z" * 5000}, {"v": "w" * 600}]
    held = payloads.spill_entry(store, entry(nodes=nodes), LIMIT)
    kept, apart, small = held.body["nodes"]
    assert kept is nodes[0] and small is nodes[2]
    assert E.is_spilled(apart["v"]) and payloads.unspill(store, apart["v"]) == "z" * 5000


def test_set_patches_over_the_limit_go_by_reference(store: Any) -> None:
    patch = {"ctx": {"big": "q" * 5000}, "iter": {}, "step": {}}
    held = payloads.spill_entry(store, entry(set=patch, arc_set={"0": {"a": 1}}), LIMIT)
    assert E.is_spilled(held.body["set"]) and held.body["arc_set"] == {"0": {"a": 1}}
    assert payloads.unspill_fields(store, held).body["set"] == patch


def test_many_values_under_the_limit_still_fit_one_entry(store: Any) -> None:
    """Twenty values of 60 KB (each under a 64 KiB limit) set at once: the largest go by
    reference until what stays inline is within half an entry."""
    nodes = [{"v": chr(97 + i) * 60_000} for i in range(20)]
    held = payloads.spill_entry(store, entry(nodes=nodes), 64 * 1024)
    apart = [n for n in held.body["nodes"] if E.is_spilled(n["v"])]
    assert 10 <= len(apart) < 20
    assert len(E.stored_json(held)) <= payloads.INLINE_BUDGET + 20 * 1000
    assert [payloads.unspill(store, n["v"]) for n in held.body["nodes"]] == [n["v"] for n in nodes]
