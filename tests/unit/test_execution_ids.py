"""Execution ids are 19-digit decimals (a SQL BIGINT literal), sorted by start time."""

from __future__ import annotations

import re

from noetl_core import ids
from noetl_core.runtime.block import child_execution_id, new_execution_id

BIGINT_MAX = 2**63 - 1


def test_new_ids_are_bigint_literals_ordered_by_start_time() -> None:
    made = [new_execution_id(1_700_000_000.0 + n / 1000) for n in range(2000)]
    assert all(re.fullmatch(r"[1-9][0-9]{18}", m) for m in made)
    assert all(int(m) <= BIGINT_MAX for m in made)
    assert made == sorted(made) == sorted(made, key=int)  # the same order as text and number
    assert len(set(made)) == len(made)
    # the last millisecond a 19-digit id can hold still fits a BIGINT
    assert int(ids.execution_id_at(9_223_372_036.0, 999_999)) <= BIGINT_MAX


def test_ids_in_one_millisecond_differ() -> None:
    same = {new_execution_id(1_800_000_000.0) for _ in range(200)}
    assert len(same) > 190  # six random digits per millisecond


def test_derived_ids_are_stable_bigint_literals() -> None:
    child = child_execution_id("1796311182296456789", "c123", 1)
    assert child == child_execution_id("1796311182296456789", "c123", 1)
    assert child != child_execution_id("1796311182296456789", "c123", 2)
    for made in (child, ids.derived_execution_id("request", "ada", "order-17")):
        assert re.fullmatch(r"[1-9][0-9]{18}", made) and int(made) <= BIGINT_MAX
