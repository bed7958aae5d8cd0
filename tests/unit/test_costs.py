"""The cost model against hand-computed bills, on the shipped price table and on a small
made-up table (so the arithmetic is checked apart from the figures)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from noetl_core import costs

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def table() -> costs.PriceTable:
    return costs.load_table()


def test_table_loads_with_date_currency_and_a_source_for_every_item(
    table: costs.PriceTable,
) -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.as_of)
    assert table.currency == "USD"
    assert table.region == "us-central1"
    assert set(costs.FIELDS.values()) <= set(table.items)
    for item in table.items.values():
        assert item.source_url.startswith("https://cloud.google.com/"), item.key
        assert item.source_title, item.key
        assert item.price > 0 and item.per > 0, item.key
    assert table.cpu_source.startswith("https://cloud.google.com/")


def test_unverified_items_say_why(table: costs.PriceTable) -> None:
    for item in table.items.values():
        if not item.verified:
            assert item.caveat


def test_a_table_without_a_source_or_date_is_refused(tmp_path: Path) -> None:
    raw = json.loads(costs.TABLE_PATH.read_text())
    del raw["items"]["run_requests"]["source"]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="run_requests has no source"):
        costs.load_table(path)
    raw = json.loads(costs.TABLE_PATH.read_text())
    raw["as_of"] = "recently"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="as_of"):
        costs.load_table(path)


def test_hand_computed_bill_without_free_tier(table: costs.PriceTable) -> None:
    usage = costs.Usage(
        invocations=1_000_000,
        vcpu_seconds=10_000,
        gib_seconds=20_000,
        firestore_reads=200_000,
        firestore_writes=100_000,
        firestore_deletes=100_000,
        tasks_operations=2_000_000,
        secret_accesses=20_000,
        gcs_class_a=1_000,
        gcs_class_b=10_000,
    )
    bill = costs.price(usage, table)
    got = {line.key: line.cost for line in bill.lines}
    expect = {
        "run_requests": 0.40,  # 1 M x $0.40 per M
        "run_vcpu_seconds": 0.24,  # 10,000 x $0.000024
        "run_gib_seconds": 0.05,  # 20,000 x $0.0000025
        "firestore_reads": 0.12,  # 2 x $0.06
        "firestore_writes": 0.18,
        "firestore_deletes": 0.02,
        "tasks_operations": 0.80,  # 2 M x $0.40
        "secret_accesses": 0.06,  # 2 x $0.03
        "gcs_class_a": 0.005,
        "gcs_class_b": 0.004,
    }
    assert got == pytest.approx(expect)
    assert bill.total == pytest.approx(sum(expect.values()))
    assert "as of " + table.as_of in bill.render()


def test_free_tier_is_taken_off_per_period(table: costs.PriceTable) -> None:
    # a 30-day month: 3 M requests (2 M free), 1.5 M reads (50,000 x 30 free) + 100,000
    usage = costs.Usage(invocations=3_000_000, firestore_reads=1_600_000, days=30)
    bill = costs.price(usage, table, free_tier=True)
    got = {line.key: line for line in bill.lines}
    assert got["run_requests"].free == 2_000_000
    assert got["run_requests"].cost == pytest.approx(0.40)
    assert got["firestore_reads"].free == 1_500_000
    assert got["firestore_reads"].cost == pytest.approx(0.06)
    # one day: 50,000 reads free, 1/30 of a month's 2 M requests
    day = costs.price(dataclass_days(usage, 1), table, free_tier=True)
    lines = {line.key: line for line in day.lines}
    assert lines["firestore_reads"].free == 50_000
    assert lines["run_requests"].free == pytest.approx(2_000_000 / 30)
    # within the free tier: nothing to pay
    small = costs.Usage(invocations=1000, vcpu_seconds=100, gib_seconds=50, firestore_writes=10)
    assert costs.price(small, table, free_tier=True).total == 0
    assert costs.price(small, table).total > 0


def dataclass_days(usage: costs.Usage, days: float) -> costs.Usage:
    import dataclasses

    return dataclasses.replace(usage, days=days)


def test_pubsub_minimum_bytes_per_request(table: costs.PriceTable) -> None:
    least = table["pubsub_throughput"].extra["min_bytes_per_request"]
    assert least == 1000
    # 100 requests of one 500-byte message: billed 100 x 1000, not 100 x 500
    assert costs.pubsub_billable_bytes([500] * 100, table) == 100_000
    # one request carrying 100 such messages: billed as is
    assert costs.pubsub_billable_bytes([50_000], table) == 50_000
    # 1 TiB billable costs $40
    bill = costs.price(costs.Usage(pubsub_bytes=2**40), table)
    assert bill.total == pytest.approx(40.0)
    # and the first 10 GiB of a month are free
    free = costs.price(costs.Usage(pubsub_bytes=10 * 2**30), table, free_tier=True)
    assert free.total == 0


def test_function_shape_from_the_declaration(table: costs.PriceTable) -> None:
    decl = {"functions": {"w": {"memory": "512Mi"}, "big": {"memory": "2Gi", "cpu": 2}}}
    assert costs.function_shape(table, "w", decl) == (0.333, 0.5)
    assert costs.function_shape(table, "big", decl) == (2.0, 2.0)
    vcpu, gib = costs.function_shape(table, "worker")  # the shipped declaration
    assert gib == memory_gib_declared() and vcpu > 0


def memory_gib_declared() -> float:
    decl = costs.load_declaration()
    return costs.memory_mib(decl["functions"]["worker"]["memory"]) / 1024


def test_compute_seconds_round_up_to_100_ms() -> None:
    # 1,000 invocations of 12 ms at 0.333 vCPU / 0.5 GiB: billed 100 ms each
    vcpu_s, gib_s = costs.compute_seconds(1000, 0.012, 0.333, 0.5)
    assert vcpu_s == pytest.approx(33.3)
    assert gib_s == pytest.approx(50.0)
    assert costs.compute_seconds(10, 0.25, 1, 1) == pytest.approx((3.0, 3.0))
    assert costs.compute_seconds(10, 0.2, 1, 1) == pytest.approx((2.0, 2.0))
    assert costs.compute_seconds(10, 0.012, 1, 1, granularity=0) == pytest.approx((0.12, 0.12))


def test_usage_scales_and_adds() -> None:
    u = costs.Usage(invocations=2, firestore_reads=3, days=7)
    assert u.scaled(500).invocations == 1000 and u.scaled(500).days == 7
    assert (u + u).firestore_reads == 6


def test_idle_cost_from_the_declaration(table: costs.PriceTable) -> None:
    decl = costs.load_declaration()
    secrets = len(decl["secrets"])
    usage = costs.idle_usage(
        decl,
        source_zip_bytes=2**30,  # 1 GiB, round for the hand computation
        image_bytes=3 * 2**30,
        log_bytes=2 * 2**30,
        scheduler_jobs=5,
    )
    assert usage.invocations == 0 and usage.firestore_reads == 0
    listed = costs.price(usage, table)
    got = {line.key: line.cost for line in listed.lines}
    assert got == pytest.approx(
        {
            "secret_versions": secrets * 0.06,
            "scheduler_jobs": 5 * 0.10,
            "gcs_standard_storage": 0.020,
            "artifact_storage": 3 * 0.10,
            "firestore_storage": 2 * 0.18,
        }
    )
    free = costs.price(usage, table, free_tier=True)
    got = {line.key: line.cost for line in free.lines}
    assert got == pytest.approx(
        {
            "secret_versions": max(0, secrets - 6) * 0.06,  # 6 versions free
            "scheduler_jobs": 2 * 0.10,  # 3 jobs free
            "gcs_standard_storage": 0.020,  # no free tier applied (none found)
            "artifact_storage": 2.5 * 0.10,  # 0.5 GB free
            "firestore_storage": 1 * 0.18,  # 1 GiB free
        }
    )
    # the declaration alone (no jobs, nothing stored): within the free tiers
    assert costs.idle_cost(table).total == 0


def test_within_free_tier(table: costs.PriceTable) -> None:
    block = costs.Usage(invocations=1, firestore_reads=4, firestore_writes=2, days=30)
    n, limit = costs.within_free_tier(block, table)
    # writes: 20,000 a day x 30 / 2 = 300,000; reads: 50,000 x 30 / 4 = 375,000
    assert (n, limit) == (300_000, "firestore_writes")
    assert costs.within_free_tier(costs.Usage(gcs_class_a=1), table) == (0, "gcs_class_a")
    assert costs.within_free_tier(costs.Usage(), table)[1] is None
