"""The index check at the session's end (tests/conftest.py) reads the shapes the
Firestore adapters note of their queries. Here: the noting is live in the worker
function and in this process, and every query the adapters can run is noted and served
by infra/firestore.indexes.json, so the check cannot pass on a file that lacks them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emulators import firestore_indexes
from noetl_core.adapters.gcp.firestore_log import _join_key
from noetl_core.playbook import load_text
from noetl_core.runtime.block import Runtime

from .test_cloud_faults import branch_and_join, finish

pytestmark = pytest.mark.integration

DESCENDING = [["committed", "DESCENDING"], ["bi", "DESCENDING"]]


def known(
    filters: list[list[str]],
    orders: list[list[str]] | None = None,
    aggregations: list[list[Any]] | None = None,
    limit: int | None = None,
    collection: str = "entries",
) -> dict[str, Any]:
    return {
        "collection": collection,
        "filters": filters,
        "orders": orders or [],
        "aggregations": aggregations or [],
        "limit": limit,
    }


def sums(*fields: str) -> list[list[Any]]:
    return [["sum", f] for f in fields]


EXECUTION = ["execution_id", "EQUAL"]
KNOWN = {
    "entries": known([EXECUTION], [["committed", "ASCENDING"], ["bi", "ASCENDING"]]),
    "last_result": known([EXECUTION, ["resulting", "EQUAL"]], DESCENDING, limit=1),
    "executions": known([["kind", "EQUAL"]], DESCENDING, limit=20),
    "find_execution": known(
        [
            ["execution_id", "GREATER_THAN_OR_EQUAL"],
            ["execution_id", "LESS_THAN"],
            ["kind", "EQUAL"],
        ],
        limit=5,
    ),
    "find": known([EXECUTION, ["kind", "EQUAL"], ["step", "EQUAL"]]),
    "count": known([EXECUTION, ["kind", "EQUAL"], ["grp", "EQUAL"]], None, [["count", None]]),
    "open work": known([EXECUTION, ["net", "EQUAL"]], None, sums("nc", "na", "nj")),
    "open work of steps": known([EXECUTION, ["step", "IN"]], None, sums("dc", "da", "dj")),
    "catalog versions": known([["path", "EQUAL"]], collection="catalog"),
    "catalog paths": known([], collection="catalog"),
}


def noted(path: Path) -> list[dict[str, Any]]:
    return firestore_indexes.read_shapes(path)


def test_every_adapter_query_is_noted_in_the_worker_and_here_and_served(
    cloud_rt: Runtime, gcp_env: dict[str, str]
) -> None:
    path = Path(gcp_env["NOETL_QUERY_SHAPE_FILE"])
    execution_id = cloud_rt.start(load_text(branch_and_join(2)), {})
    assert finish(cloud_rt, execution_id).body["status"] == "completed"
    # the worker settled the join: its upstream sum, on this execution's own key
    worker_join = known([], aggregations=sums(f"jv.{_join_key(execution_id, 'join')}"))
    assert worker_join in noted(path)

    log: Any = cloud_rt.log
    log.entries(execution_id)
    log.last_result(execution_id)
    log.executions()
    log.find_execution(execution_id[:8])
    log.find(execution_id, "done", step="join")
    log.count(execution_id, "signal", group="g")
    log.open_work(execution_id)
    log.open_work(execution_id, ["join"])
    log.open_work(execution_id, ["c0"], join="no-such-join")  # a key only this process sums
    cloud_rt.catalog.versions("no/such/path")
    cloud_rt.catalog.paths()

    shapes = noted(path)
    mine = known([], aggregations=sums(f"jv.{_join_key(execution_id, 'no-such-join')}"))
    assert mine in shapes
    missing = {name: s for name, s in KNOWN.items() if s not in shapes}
    assert not missing, json.dumps(missing, indent=1)
    declared = firestore_indexes.load()
    assert firestore_indexes.unserved([*KNOWN.values(), worker_join, mine], declared) == []
