"""`make bench`, Google Cloud part: the runtime on the emulator stack.

- ms per block (p50) of a 100-step chain of trivial python steps, blocks running in the
  worker function (functions-framework fed by a Pub/Sub push subscription, Firestore
  log, Cloud Storage payloads): the time between one block's record and the next's;
- Firestore document reads and writes per block for chains of 10 and of 1,000 blocks,
  counted at the event log adapter (blocks run in this process from a pull subscription,
  so every call is seen): a document read or missing document = 1 read, a query = the
  documents it returns (at least 1), an aggregation (count/sum) = 1 read per 1,000 index
  entries, counted as 1; every created document = 1 write.
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
from noetl_core import cloud, settings  # noqa: E402
from noetl_core.adapters.gcp.firestore_log import FirestoreEventLog  # noqa: E402
from noetl_core.engine.entries import Entry  # noqa: E402
from noetl_core.playbook import load_text  # noqa: E402
from noetl_core.runtime.ports import Open, Snapshot  # noqa: E402

LOOP_SIZES = (100, 10_000)
WARM_CHAINS = 8


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


def pump(rt: Any, subscription: str, stop: threading.Event) -> None:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    subscriber = pubsub_v1.SubscriberClient()
    while not stop.is_set():
        answer = subscriber.pull(subscription=subscription, max_messages=20, timeout=2)
        for received in answer.received_messages:
            data = base64.b64encode(received.message.data).decode()
            cloud.on_message({"message": {"data": data}})
            subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])


def operations_per_block(
    stack: EmulatorStack, text: str, blocks: int, pumps: int = 1
) -> tuple[float, float, float]:
    """(document reads, document writes, wall ms) per block of one execution whose
    blocks run in this process, pulled by `pumps` threads."""
    stack.reset()
    stack.create_subscription("bench-pull", "noetl-commands", ack_deadline=60)
    conf = settings.load(
        {**os.environ, **cloud_env(stack), "NOETL_HOME": str(stack.workdir / "bench")}
    )
    rt = cloud.build(conf)
    rt.log = CountingLog(conf.project, conf.firestore_prefix)
    cloud._runtime = rt  # the pump's blocks use this runtime
    stop = threading.Event()
    path = stack.subscription_path("bench-pull")
    workers = [threading.Thread(target=pump, args=(rt, path, stop)) for _ in range(pumps)]
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


def main() -> None:
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


if __name__ == "__main__":
    main()
