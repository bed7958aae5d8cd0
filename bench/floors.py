"""The emulator stack's own floors: what its round trips cost with no NoETL in them.

- a chained Pub/Sub hop: a push subscription delivers a message to a local HTTP
  endpoint, which publishes the next one with one Publish call (as a block publishes
  its successor), 60 times; the median time between deliveries;
- one Firestore document get, one commit of a one-document create batch, one query
  (`where(...) .limit(1)`), each the median of 60.

A chain block's remaining round trips are one batched get, two commits (claim, record)
and one hop (publish + push), so their floors add up to what the emulators alone cost
a block.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOPS = 60
CALLS = 60


def _median_ms(call: Callable[[], Any], runs: int = CALLS) -> float:
    call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def firestore(project: str) -> dict[str, float]:
    from google.cloud import firestore as fs
    from google.cloud.firestore_v1.base_query import FieldFilter

    client = fs.Client(project=project)
    collection = client.collection("bench_floors")
    run = uuid.uuid4().hex[:8]
    collection.document(f"{run}-seed").create({"execution_id": run, "n": 0})
    counter = iter(range(1_000_000))

    def commit() -> None:
        batch = client.batch()
        batch.create(collection.document(f"{run}-{next(counter)}"), {"execution_id": run})
        batch.commit()

    query = collection.where(filter=FieldFilter("execution_id", "==", run)).limit(1)
    return {
        "get": _median_ms(lambda: collection.document(f"{run}-seed").get()),
        "commit": _median_ms(commit),
        "query": _median_ms(lambda: list(query.stream())),
    }


def pubsub_hop(stack: Any) -> float:
    """Median ms between consecutive deliveries of a publish-on-receive chain."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]
    from google.pubsub_v1 import PubsubMessage

    topic = f"bench-hop-{uuid.uuid4().hex[:6]}"
    stack.create_topic(topic)
    publisher = pubsub_v1.PublisherClient().api
    path = stack.topic_path(topic)
    arrivals: list[float] = []
    done = threading.Event()

    class Hop(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            arrivals.append(time.perf_counter())
            if len(arrivals) < HOPS:
                publisher.publish(topic=path, messages=[PubsubMessage(data=b"hop")])
            else:
                done.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/hop"
    try:
        stack.create_subscription(f"{topic}-push", topic, push_endpoint=endpoint)
        publisher.publish(topic=path, messages=[PubsubMessage(data=b"hop")])
        if not done.wait(120):
            raise RuntimeError(f"the hop chain stalled after {len(arrivals)} deliveries")
    finally:
        server.shutdown()
        stack.delete_subscription(f"{topic}-push")
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(arrivals)]
    return statistics.median(gaps[5:])  # the first hops warm the push path
