"""`make bench`, Google Cloud part: the runtime on the emulator stack.

- ms per block (p50) of a 100-step chain of trivial python steps, blocks running in the
  worker function (functions-framework fed by a Pub/Sub push subscription, Firestore
  log, Cloud Storage payloads): the time between one block's record and the next's;
- Firestore document reads and writes per block for chains of 10 and of 1,000 blocks,
  counted at the event log adapter (blocks run in this process from a pull subscription,
  so every call is seen): a document read or missing document = 1 read, a query = the
  documents it returns (at least 1), an aggregation (count/sum) = 1 read per 1,000 index
  entries, counted as 1; every created document = 1 write.
- cost per 1,000 blocks at list prices (`noetl_core/prices.json`, its `as_of` date), for
  a 100-block chain of small python steps and a 100-item parallel loop: the operations a
  block causes, counted where this process sees them (Firestore as above; Pub/Sub
  Publish requests with each message's data, attributes, 20-byte timestamp and returned
  message id, and one push delivery per command message as the worker's push
  subscription makes; payload store puts (Class A) and gets (Class B); Cloud Tasks timers
  (a create and a delivery each); Secret Manager credential reads), and the worker's
  vCPU- and GiB-seconds from each block's measured handling time on this machine,
  rounded up to 100 ms, at the memory `infra/deployment.json` declares and the vCPU that
  memory gets. `python bench/cloud.py cost` runs only this part.
Targets: <= 15 ms/block; <= 3 document writes per chain block; reads per block flat.

Both emulators are JVMs: their cost per call falls about 3x over their first thousand
or so calls (one commit: ~4.8 ms on the first hundred, ~1.5 ms after 1,500), so the
stack is warmed first (WARM_CHAINS unmeasured 100-step chains, which also warm the
worker), then the floors and the chain are measured on the same warm stack, floors
before and after the chain (their mean is printed).
"""

from __future__ import annotations

import base64
import itertools
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import floors  # noqa: E402
from bench.growth import loop  # noqa: E402
from bench.run import chain_playbook  # noqa: E402
from emulators.deploy import deploy  # noqa: E402
from emulators.stack import DECLARATION, EmulatorStack  # noqa: E402
from noetl_core import cloud, costs, settings  # noqa: E402
from noetl_core.adapters.gcp.firestore_log import FirestoreEventLog  # noqa: E402
from noetl_core.engine.entries import Entry  # noqa: E402
from noetl_core.playbook import load_text  # noqa: E402
from noetl_core.runtime.ports import Open, Snapshot  # noqa: E402

LOOP_SIZES = (100, 10_000)
WARM_CHAINS = 8
COST_CHAIN, COST_LOOP = 100, 100


def cloud_env(stack: EmulatorStack) -> dict[str, str]:
    """A client's environment: the deployment's (`main`), with the bench's payloads."""
    return {**stack.client_env, "NOETL_PAYLOAD_URL": f"gs://{stack.bucket}/bench"}


class CountingLog(FirestoreEventLog):
    """The Firestore event log, counting the document reads and writes it causes."""

    reads = 0
    writes = 0
    _lock = threading.Lock()

    def _add(self, reads: int = 0, writes: int = 0) -> None:
        with self._lock:
            CountingLog.reads += reads
            CountingLog.writes += writes

    def append(self, entries: Sequence[Entry]) -> bool:
        ok = super().append(entries)
        self._add(writes=len(entries) if ok else 0)
        return ok

    def get(self, entry_id: str) -> Entry | None:
        self._add(reads=0 if self._cached(entry_id) else 1)  # a cache hit reads nothing
        return super().get(entry_id)

    def get_many(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        self._add(reads=sum(1 for i in entry_ids if self._cached(i) is None))
        return super().get_many(entry_ids)

    def snapshot(self, execution_id: str, entry_ids: Sequence[str] = ()) -> Snapshot:
        # one batched get: each id not cached and the halt marker is a document read
        self._add(reads=sum(1 for i in entry_ids if self._cached(i) is None) + 1)
        return super().snapshot(execution_id, entry_ids)

    def find(
        self, execution_id: str, kind: str, *, step: str | None = None, group: str | None = None
    ) -> list[Entry]:
        found = super().find(execution_id, kind, step=step, group=group)
        self._add(reads=max(1, len(found)))
        return found

    def count(self, execution_id: str, kind: str, *, group: str | None = None) -> int:
        self._add(reads=1)
        return super().count(execution_id, kind, group=group)

    def open_work(self, execution_id: str, steps: Any = None, *, join: Any = None) -> Open:
        self._add(reads=1)
        return super().open_work(execution_id, steps, join=join)

    def halted(self, execution_id: str) -> bool:
        self._add(reads=1)
        return super().halted(execution_id)


class Meter:
    """The other billable operations of one execution, as this process causes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.publish_requests: list[int] = []  # bytes of each Publish request
        self.command_messages: list[int] = []  # bytes of each message on the commands topic
        self.gcs_class_a = self.gcs_class_b = self.gcs_bytes = 0
        self.tasks = self.secret_accesses = 0
        self.handling: list[float] = []  # seconds each delivered command took to handle

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


class MeteredPublisher:
    """The Pub/Sub publisher client, recording each Publish request's billable size."""

    def __init__(self, inner: Any, meter: Meter, commands_topic: str) -> None:
        self.inner, self.meter, self.commands_topic = inner, meter, commands_topic

    def publish(self, *, topic: str, messages: Sequence[Any], **kwargs: Any) -> Any:
        answer = self.inner.publish(topic=topic, messages=messages, **kwargs)
        sizes = [
            len(m.data)
            + sum(len(k) + len(v) for k, v in m.attributes.items())
            + 20  # the publish timestamp
            + len(message_id)
            for m, message_id in zip(messages, answer.message_ids, strict=True)
        ]
        with self.meter._lock:
            self.meter.publish_requests.append(sum(sizes))
            if topic == self.commands_topic:
                self.meter.command_messages.extend(sizes)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def instrument(rt: Any, meter: Meter) -> None:
    """Count the runtime's Pub/Sub, Cloud Storage, Cloud Tasks and Secret Manager calls
    (patched on the adapter objects, so every holder of them is counted)."""
    rt.bus._client = MeteredPublisher(rt.bus.client, meter, rt.bus.topic)
    store, timer, creds = rt.payloads, rt.timer, rt.credentials
    put, get, schedule, read = store.put, store.get, timer.schedule, creds.get

    def metered_put(key: str, value: Any, *, tabular: bool) -> Any:
        ref = put(key, value, tabular=tabular)
        meter.add(gcs_class_a=1, gcs_bytes=int(ref.get("size", 0)))
        return ref

    def metered_get(ref: Any) -> Any:
        meter.add(gcs_class_b=1)
        return get(ref)

    def metered_schedule(note: Any, due: float) -> None:
        meter.add(tasks=2)  # the create call and its push delivery attempt
        schedule(note, due)

    def metered_read(name: str) -> Any:
        meter.add(secret_accesses=1)
        return read(name)

    store.put, store.get, timer.schedule = metered_put, metered_get, metered_schedule
    creds.get = metered_read


def pump(rt: Any, subscription: str, stop: threading.Event, meter: Meter | None = None) -> None:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    subscriber = pubsub_v1.SubscriberClient()
    while not stop.is_set():
        answer = subscriber.pull(subscription=subscription, max_messages=20, timeout=2)
        for received in answer.received_messages:
            data = base64.b64encode(received.message.data).decode()
            started = time.perf_counter()
            cloud.on_message({"message": {"data": data}})
            if meter is not None:
                with meter._lock:
                    meter.handling.append(time.perf_counter() - started)
            subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])


def operations_per_block(
    stack: EmulatorStack, text: str, blocks: int, pumps: int = 1, meter: Meter | None = None
) -> tuple[float, float, float]:
    """(document reads, document writes, wall ms) per block of one execution whose
    blocks run in this process, pulled by `pumps` threads; `meter` counts the rest."""
    stack.reset()
    stack.create_subscription("bench-pull", "noetl-commands", ack_deadline=60)
    conf = settings.load(
        {**os.environ, **cloud_env(stack), "NOETL_HOME": str(stack.workdir / "bench")}
    )
    rt = cloud.build(conf)
    rt.log = CountingLog(conf.project, conf.firestore_prefix)
    if meter is not None:
        instrument(rt, meter)
    cloud._runtime = rt  # the pump's blocks use this runtime
    stop = threading.Event()
    path = stack.subscription_path("bench-pull")
    workers = [threading.Thread(target=pump, args=(rt, path, stop, meter)) for _ in range(pumps)]
    for worker in workers:
        worker.start()
    try:
        CountingLog.reads = CountingLog.writes = 0
        started = time.perf_counter()
        execution_id = rt.start(load_text(text), {})
        terminal = rt.wait(execution_id, 1800)
        elapsed = (time.perf_counter() - started) * 1000
        assert terminal is not None and terminal.body["status"] == "completed"
        return CountingLog.reads / blocks, CountingLog.writes / blocks, elapsed / blocks
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        rt.timer.close()  # type: ignore[attr-defined]
        stack.delete_subscription("bench-pull")


def chain_latency(stack: EmulatorStack) -> tuple[float, float]:
    stack.reset()
    conf = settings.load(
        {**os.environ, **cloud_env(stack), "NOETL_HOME": str(stack.workdir / "client")}
    )
    rt = cloud.build(conf)
    try:
        rt.wait(rt.start(load_text(chain_playbook(5)), {}), 120)  # warm the worker
        started = time.perf_counter()
        execution_id = rt.start(load_text(chain_playbook(100)), {})
        terminal = rt.wait(execution_id, 600)
        total = time.perf_counter() - started
        assert terminal is not None and terminal.body["status"] == "completed"
        done = sorted(e.ts for e in rt.log.entries(execution_id) if e.kind == "done")
        gaps = [(b - a) * 1000 for a, b in itertools.pairwise(done)]
        return statistics.median(gaps), total * 1000 / 100
    finally:
        rt.timer.close()  # type: ignore[attr-defined]


def block_usage(
    table: costs.PriceTable, meter: Meter, reads: float, writes: float, blocks: int
) -> costs.Usage:
    """One block's usage, from one execution's counts over its `blocks`."""
    vcpu, gib = costs.function_shape(table, "worker")
    vcpu_s = gib_s = 0.0
    for seconds in meter.handling:
        v, g = costs.compute_seconds(1, seconds, vcpu, gib)
        vcpu_s, gib_s = vcpu_s + v, gib_s + g
    deliveries = meter.command_messages  # each pushed to the worker in one request
    billable = costs.pubsub_billable_bytes([*meter.publish_requests, *deliveries], table)
    return costs.Usage(
        invocations=len(deliveries) / blocks,
        vcpu_seconds=vcpu_s / blocks,
        gib_seconds=gib_s / blocks,
        firestore_reads=reads,
        firestore_writes=writes,
        pubsub_bytes=billable / blocks,
        gcs_class_a=meter.gcs_class_a / blocks,
        gcs_class_b=meter.gcs_class_b / blocks,
        tasks_operations=meter.tasks / blocks,
        secret_accesses=meter.secret_accesses / blocks,
    )


def cost_report(stack: EmulatorStack) -> None:
    """Cost per 1,000 blocks of a chain and of a parallel loop, from counted operations."""
    table = costs.load_table()
    vcpu, gib = costs.function_shape(table, "worker")
    operations_per_block(stack, chain_playbook(COST_CHAIN), COST_CHAIN)  # warm this process
    cases = (
        (
            f"{COST_CHAIN}-block chain of small python steps",
            chain_playbook(COST_CHAIN),
            COST_CHAIN,
            1,
        ),
        (
            f"{COST_LOOP}-item parallel loop (+ its 2 other blocks)",
            loop(COST_LOOP),
            COST_LOOP + 2,
            1,  # one block at a time, as one instance at concurrency 1 handles them
        ),
    )
    for name, text, blocks, pumps in cases:
        meter = Meter()
        reads, writes, _ = operations_per_block(stack, text, blocks, pumps, meter)
        per_block = block_usage(table, meter, reads, writes, blocks)
        handled = statistics.mean(meter.handling) * 1000
        p50 = statistics.median(meter.handling) * 1000
        pubs = len(meter.publish_requests)
        msgs = len(meter.command_messages)
        print(
            f"measured per block, {name}: {per_block.invocations:.2f} worker invocations "
            f"(push deliveries), handling {handled:.1f} ms mean / {p50:.1f} ms p50 on this "
            f"machine (billed at 100 ms granularity, {vcpu} vCPU, {gib:g} GiB); "
            f"{reads:.2f} Firestore reads, {writes:.2f} writes, 0 deletes; Pub/Sub "
            f"{pubs / blocks:.2f} Publish requests of {msgs / max(pubs, 1):.2f} messages "
            f"(mean {statistics.mean(meter.command_messages):.0f} B/message) + "
            f"{msgs / blocks:.2f} push deliveries = {per_block.pubsub_bytes:.0f} billable "
            f"bytes; Cloud Storage {per_block.gcs_class_a:.2f} Class A, "
            f"{per_block.gcs_class_b:.2f} Class B ({meter.gcs_bytes / blocks:.0f} B "
            f"written); Cloud Tasks {per_block.tasks_operations:.2f} operations; Secret "
            f"Manager {per_block.secret_accesses:.2f} accesses"
        )
        bill = costs.price(per_block.scaled(1000), table)
        print(bill.render(f"cost per 1,000 blocks, {name}"))
        covered, limit = costs.within_free_tier(per_block, table)
        print(
            f"  the monthly free tiers cover {covered:,.0f} such blocks a month "
            f"(first to run out: {limit})"
        )


def main() -> None:
    if sys.argv[1:] == ["cost"]:
        with EmulatorStack() as stack:
            os.environ.update(stack.env())
            stack.client_env = deploy(stack).client_env
            stack.delete_subscription(DECLARATION["functions"]["worker"]["push"]["subscription"])
            cost_report(stack)
        return
    with EmulatorStack() as stack:
        os.environ.update(stack.env())
        stack.client_env = deploy(stack).client_env
        for _ in range(WARM_CHAINS):
            chain_latency(stack)
        project = os.environ["GOOGLE_CLOUD_PROJECT"]
        before, hop_before = floors.firestore(project), floors.pubsub_hop(stack)
        p50, mean = chain_latency(stack)
        after, hop_after = floors.firestore(project), floors.pubsub_hop(stack)
        floor = {k: (before[k] + after[k]) / 2 for k in before}
        hop = (hop_before + hop_after) / 2
        least = hop + floor["get"] + 2 * floor["commit"]
        print(
            f"emulator floors (warmed by {WARM_CHAINS * 100} blocks; mean of before and "
            f"after the chain): chained Pub/Sub hop {hop:.1f} ms, Firestore get "
            f"{floor['get']:.1f} ms, commit {floor['commit']:.1f} ms, query "
            f"{floor['query']:.1f} ms; a chain block's round trips (hop + get + 2 commits) "
            f"= {least:.1f} ms"
        )
        print(
            f"emulator stack, 100-step chain: {p50:.1f} ms/block p50 "
            f"({mean:.1f} ms/block overall); {p50 - least:+.1f} ms over the floors "
            f"(target <= 15 ms, or within 3 ms of the floors)"
        )
        stack.delete_subscription(DECLARATION["functions"]["worker"]["push"]["subscription"])
        for blocks in (10, 1000):
            reads, writes, _ = operations_per_block(stack, chain_playbook(blocks), blocks)
            print(
                f"Firestore per block, {blocks}-block chain: {reads:.2f} document reads, "
                f"{writes:.2f} document writes (target <= 3 writes, <= 4 reads; flat)"
            )
        per_item = {}
        for items in LOOP_SIZES:
            reads, writes, ms = operations_per_block(stack, loop(items), items + 2, pumps=8)
            per_item[items] = ms
            print(
                f"{items}-item parallel loop (max_in_flight 100, 8 pulling threads): "
                f"{ms:.2f} ms/item, {reads:.2f} document reads, {writes:.2f} writes per item"
            )
        small, big = per_item[LOOP_SIZES[0]], per_item[LOOP_SIZES[-1]]
        print(
            f"loop {LOOP_SIZES[0]:,} -> {LOOP_SIZES[-1]:,} items on the emulators: "
            f"ms/item {big / small:.2f}x (target <= 1.3x)"
        )
        cost_report(stack)


if __name__ == "__main__":
    main()
