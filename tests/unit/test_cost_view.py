"""`noetl cost`'s accounting, from a hand-built log: which operations each block is
charged, what is counted and what is estimated, and that the rows add up to the total."""

from __future__ import annotations

import math
from typing import Any

import pytest

from noetl_core import cost_view, costs
from noetl_core.engine.entries import Entry

EXEC = "1000"
DECL = {"functions": {"worker": {"memory": "512Mi", "cpu": "1"}}}


def entry(kind: str, ts: float, **fields: Any) -> Entry:
    return Entry(
        id=f"{kind}-{fields.get('command_id', '')}-{fields.get('attempt', 0)}-{ts}",
        execution_id=EXEC,
        kind=kind,
        events=(),
        ts=ts,
        **fields,
    )


def hand_built() -> list[Entry]:
    ref = {"uri": "gs://b/executions/1000/b/result.json", "size": 70_000, "sha256": "x"}
    return [
        entry("start", 10.0, body={"playbook": {"path": "t"}}),
        entry("issue", 10.0, step="a", command_id="ca", attempt=1),
        # a: embedded-style, its claim folded into the record; issues b
        entry(
            "done",
            10.25,
            step="a",
            command_id="ca",
            attempt=1,
            body={"status": "ok", "claimed": {"at": 10.05}, "issued": ["cb"]},
        ),
        entry("issue", 10.25, step="b", command_id="cb", attempt=1),
        # b: cloud-style, attempt 1 retried (a Cloud Task), attempt 2 stores its result
        entry("claim", 11.0, step="b", command_id="cb", attempt=1),
        entry(
            "attempt",
            11.03,
            step="b",
            command_id="cb",
            attempt=1,
            body={"error": {"message": "x"}, "retry": {"due": 12.0}},
        ),
        entry("claim", 12.0, step="b", command_id="cb", attempt=2),
        entry(
            "done",
            12.31,
            step="b",
            command_id="cb",
            attempt=2,
            body={"status": "ok", "result": ref, "issued": []},
        ),
        entry("signal", 12.31, body={"node": "n", "slot": 0}),
        entry("terminal", 12.31, halt=True, body={"status": "completed"}),
    ]


@pytest.fixture
def table() -> costs.PriceTable:
    return costs.load_table()


def test_each_block_is_charged_what_its_batch_wrote(table: costs.PriceTable) -> None:
    rows = cost_view.account(hand_built(), table, 1.0, 0.5)
    assert [(r.kind, r.step, r.attempt) for r in rows] == [
        ("start", None, 0),
        ("block", "a", 1),
        ("block", "b", 1),
        ("block", "b", 2),
        ("settling", None, 0),
    ]
    start, a, b1, b2, settling = rows
    # start: its entry and the entry command's issue; one message published and pushed
    assert start.counted.firestore_writes == 2 and start.messages == 1
    assert start.counted.pubsub_bytes == 2000  # each request at least 1000 bytes
    assert start.counted.invocations == 0
    # a: the record, the folded claim (its own document on Firestore), b's issue
    assert a.counted.firestore_writes == 3 and a.messages == 1
    assert a.counted.invocations == 1
    assert a.seconds == pytest.approx(0.2)
    assert a.counted.vcpu_seconds == pytest.approx(0.2)  # 200 ms, 1 vCPU
    assert a.counted.gib_seconds == pytest.approx(0.1)
    # b attempt 1: claim + attempt, a retry's task and its push; 30 ms billed as 100
    assert b1.counted.firestore_writes == 2 and b1.counted.tasks_operations == 2
    assert b1.counted.vcpu_seconds == pytest.approx(0.1)
    # b attempt 2: claim + done; its result in Cloud Storage
    assert b2.counted.firestore_writes == 2
    assert b2.counted.gcs_class_a == 1 and b2.gcs_bytes == 70_000
    assert b2.estimated.gcs_class_b == 1
    assert b2.counted.vcpu_seconds == pytest.approx(0.4)  # 310 ms -> 400 ms
    # settling: the signal and the terminal, whose halt marker is a write of its own
    assert settling.counted.firestore_writes == 3
    assert settling.estimated.firestore_reads == 2  # the signal's count, the halt read
    for block in (a, b1, b2):  # reads are the bench's model, never counted
        assert block.estimated.firestore_reads == cost_view.BLOCK_READS
        assert block.counted.firestore_reads == 0
    assert sum(r.counted.firestore_writes for r in rows) == 12  # 10 entries + claim + halt


def test_rows_add_up_to_the_total_and_estimates_are_marked(table: costs.PriceTable) -> None:
    rep = cost_view.report(hand_built(), EXEC, "embedded", table, DECL, "t")
    assert math.isclose(sum(rep.row_costs), rep.total, rel_tol=1e-9)
    out = cost_view.as_json(rep)
    assert math.isclose(sum(line["cost"] for line in out["lines"]), out["total"], rel_tol=1e-9)
    assert math.isclose(sum(b["cost"] for b in out["blocks"]), out["total"], rel_tol=1e-9)
    estimated = {line["item"] for line in out["lines"] if line["estimated"]}
    counted = {line["item"] for line in out["lines"] if not line["estimated"]}
    assert "firestore_reads" in estimated and "firestore_reads" not in counted
    assert {"firestore_writes", "run_requests", "pubsub_throughput"} <= counted
    assert {"gcs_class_a", "tasks_operations"} <= counted
    assert "Google Cloud" in out["priced_as"]
    text = cost_view.render(rep)
    reads = next(line for line in text.splitlines() if "document reads" in line)
    assert reads.endswith("[estimated]")
    assert "priced as the same execution would cost on Google Cloud" in text
    assert f"{rep.total:.8f}" in text


def test_loop_iterations_are_published_by_the_record_that_issues_them(
    table: costs.PriceTable,
) -> None:
    log = [
        entry("start", 1.0),
        entry("issue", 1.0, step="l", command_id="cl", attempt=1),
        entry(
            "done",
            1.2,
            step="l",
            command_id="cl",
            attempt=1,
            body={"claimed": {"at": 1.1}, "loop": {"length": 3, "width": 3}, "iterations": [0, 3]},
        ),
        entry("loopdone", 2.0, step="l", command_id="cl", body={"status": "ok"}),
    ]
    rows = cost_view.account(log, table, 1.0, 0.5)
    activation = rows[1]
    assert activation.messages == 3
    # one Publish request (3 small messages: 1000 billable) + 3 pushes (1000 each)
    assert activation.counted.pubsub_bytes == 4000
    assert rows[-1].estimated.firestore_reads == 3  # loop.done reads its 3 iterations
