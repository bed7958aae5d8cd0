"""Faults on the real emulator stack: the worker process killed mid-block, every push
delivered twice, a command that always crashes, and a wide loop under max_in_flight.
The blocks run in the worker function (functions-framework, supervised: a killed process
is started again, as Cloud Functions starts a new instance)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from noetl_core.engine import entries as E
from noetl_core.playbook import load_file, load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

from ..conftest import EXAMPLES

pytestmark = pytest.mark.integration


def finish(rt: Runtime, execution_id: str, timeout: float = 90) -> Any:
    terminal = rt.wait(execution_id, timeout)
    assert terminal is not None, f"{execution_id} did not finish"
    return terminal


def completed_once(rt: Runtime, execution_id: str) -> None:
    entries = rt.log.entries(execution_id)
    events = [event for entry in entries for event in E.expand(entry)]
    issued = Counter(e["command_id"] for e in events if e["type"] == "command.issued")
    done = Counter(e.command_id for e in entries if e.kind == "done")
    assert set(issued.values()) == {1}
    assert done == issued, "each command is completed exactly once"


@pytest.mark.parametrize("point", ["claimed", "executed", "recorded"])
def test_worker_killed_mid_block_and_the_execution_still_completes(
    cloud_rt: Runtime, gcp_stack: Any, point: str
) -> None:
    gcp_stack.fault_file.write_text(f"{point}:greet")
    execution_id = cloud_rt.start(load_file(EXAMPLES / "hello_world.yaml"), {})
    terminal = finish(cloud_rt, execution_id)
    assert terminal.body["status"] == "completed"
    assert payloads.load(cloud_rt.payloads, terminal.body["result"]) == {
        "text": "HELLO, WORLD!",
        "length": 13,
    }
    assert not gcp_stack.fault_file.exists(), "the fault fired: a worker process died"
    completed_once(cloud_rt, execution_id)
    greet = [e for e in cloud_rt.log.entries(execution_id) if e.step == "greet"]
    claims = [e for e in greet if e.kind == "claim"]
    if point == "recorded":
        assert len(claims) == 1  # the record was in: the redelivery only published again
    else:
        assert [c.attempt for c in claims] == [1, 2]  # lease expired, the next attempt took over


def test_every_push_delivered_twice_gives_the_same_log(cloud_rt: Runtime, gcp_stack: Any) -> None:
    """The same playbook with every push delivered once and twice writes the same
    entries (compared by what they are: instances cache entries by id, and ids are
    never reused in a live deployment, so the doubled run gets its own id)."""
    loaded = load_file(EXAMPLES / "fan_out_join.yaml")

    def shape(execution_id: str) -> list[tuple[Any, ...]]:
        found = cloud_rt.log.entries(execution_id)
        return sorted((e.kind, e.step or "", e.attempt, e.events) for e in found)

    finish(cloud_rt, cloud_rt.start(loaded, {}, execution_id="dup-once"))
    single = shape("dup-once")
    worker = gcp_stack.functions["worker"]
    endpoint = f"{worker.url}{gcp_stack.topic_path('noetl-commands')}"
    gcp_stack.create_subscription(
        "worker-twice", "noetl-commands", push_endpoint=endpoint, ack_deadline=10
    )
    try:
        finish(cloud_rt, cloud_rt.start(loaded, {}, execution_id="dup-twice"))
        time.sleep(2)  # let the second copies of the last notes arrive, and die
        doubled = shape("dup-twice")
    finally:
        gcp_stack.delete_subscription("worker-twice")
    assert doubled == single


def test_a_command_that_always_crashes_is_dead_lettered_and_fails_the_execution(
    cloud_rt: Runtime, gcp_stack: Any
) -> None:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: crasher}
workflow:
  - step: start
    tool: {kind: noop}
    next: crash
  - step: crash
    tool: {kind: python, code: "import os; os._exit(3)"}
"""
    execution_id = cloud_rt.start(load_text(text), {})
    terminal = finish(cloud_rt, execution_id, timeout=150)
    assert terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert error["code"] == "dead_lettered" and error["step"] == "crash"
    assert "failed 3 times" in error["message"]
    claims = [e for e in cloud_rt.log.entries(execution_id) if e.kind == "claim"]
    assert [c.attempt for c in claims if c.step == "crash"] == [1, 2, 3]
    subscriber = pubsub_v1.SubscriberClient()
    parked = subscriber.pull(
        subscription=gcp_stack.subscription_path("noetl-dead-letter-sub"),
        max_messages=10,
        timeout=10,
    )
    notes = [m.message for m in parked.received_messages]
    assert any(execution_id.encode() in m.data for m in notes)
    assert any("failed 3 times" in m.attributes.get("cause", "") for m in notes)
    subscriber.acknowledge(
        subscription=gcp_stack.subscription_path("noetl-dead-letter-sub"),
        ack_ids=[m.ack_id for m in parked.received_messages],
    )


def test_a_thousand_iterations_under_max_in_flight_fifty_join_once(cloud_rt: Runtime) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: wide}
workflow:
  - step: start
    loop: {in: "{{ range(1000) | list }}", iterator: i, spec: {mode: parallel, max_in_flight: 50}}
    tool: {kind: python, input: {i: "{{ i }}"}, code: "result = i * 7"}
    next: total
  - step: total
    tool:
      kind: python
      input: {xs: "{{ start }}"}
      code: "result = {'n': len(xs), 'ordered': xs == [i * 7 for i in range(1000)]}"
"""
    execution_id = cloud_rt.start(load_text(text), {})
    terminal = finish(cloud_rt, execution_id, timeout=300)
    assert terminal.body["status"] == "completed"
    assert payloads.load(cloud_rt.payloads, terminal.body["result"]) == {"n": 1000, "ordered": True}
    entries = cloud_rt.log.entries(execution_id)
    assert len([e for e in entries if e.kind == "loopdone"]) == 1
    assert len([e for e in entries if e.kind == "issue" and e.step == "total"]) == 1
    completed_once(cloud_rt, execution_id)


def branch_and_join(chain: int) -> str:
    """`start` forks into a `chain`-step branch and a one-step branch; both reach `join`."""
    steps = [
        "  - step: start\n    tool: {kind: noop}\n"
        "    next:\n      spec: {mode: inclusive}\n      arcs: [{step: c0}, {step: short}]",
        "  - step: short\n    tool: {kind: python, code: 'result = -1'}\n    next: join",
    ]
    for i in range(chain):
        nxt = f"c{i + 1}" if i + 1 < chain else "join"
        steps.append(
            f"  - step: c{i}\n    tool: {{kind: python, code: 'result = {i}'}}\n    next: {nxt}"
        )
    steps.append(
        "  - step: join\n    tool:\n      kind: python\n"
        f"      input: {{a: '{{{{ c{chain - 1} }}}}', b: '{{{{ short }}}}'}}\n"
        "      code: 'result = [a, b]'"
    )
    return (
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: fork}\nworkflow:\n"
        + "\n".join(steps)
        + "\n"
    )


def test_a_join_check_reads_only_the_batches_that_changed_its_upstream(
    cloud_rt: Runtime, gcp_env: dict[str, str]
) -> None:
    """A join runs when nothing that can reach it is in flight. On Firestore that check
    sums only the documents whose batch changed what is open upstream of the join (the
    fork, each branch's end), however many chain steps the branches ran: a chain step
    inside the join's reach closes its command and issues the next one there, net zero,
    and carries no join fields. The join still waits for the long branch, and the
    execution ends through three signal documents whatever the branches' length."""
    from noetl_core.adapters.gcp.firestore_log import _join_key

    matched = {}
    for chain in (2, 12):
        execution_id = cloud_rt.start(load_text(branch_and_join(chain)), {})
        terminal = finish(cloud_rt, execution_id)
        assert terminal.body["status"] == "completed"
        assert payloads.load(cloud_rt.payloads, terminal.body["result"]) == [chain - 1, -1]
        completed_once(cloud_rt, execution_id)
        log: Any = cloud_rt.log
        docs = [d.to_dict() or {} for d in log._where(execution_id).stream()]
        key = _join_key(execution_id, "join")
        changed = [d for d in docs if key in d.get("jv", {})]
        # batch by batch (one commit time each), the net on the batch's first document
        # is the sum of its entries' deltas in the join's upstream
        upstream = {"start", "short", *(f"c{i}" for i in range(chain))}
        batches: dict[Any, list[dict[str, Any]]] = {}
        for doc in docs:
            batches.setdefault(doc["committed"], []).append(doc)
        for batch in batches.values():
            per_entry = sum(
                d.get("dc", 0) + d.get("da", 0) for d in batch if d.get("step") in upstream
            )
            assert sum(d.get("jv", {}).get(key, 0) for d in batch) == per_entry
        moved = [d for d in docs if d.get("step") in upstream and (d.get("dc") or d.get("da"))]
        assert len(moved) >= 2 * chain  # every chain step issued and closed a command
        matched[chain] = len(changed)
        # it ended through signals: the join's command ends the fork's two threads,
        # then the fork ends the root's one
        assert sorted(d["kind"] for d in docs if d["kind"] == "signal") == ["signal"] * 3
    # the fork (+2), the short branch's end and the long one's: not one per chain step
    assert 2 <= matched[2] == matched[12] <= 4, matched
