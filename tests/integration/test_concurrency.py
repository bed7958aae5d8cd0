"""Concurrency as declared: a parallel loop of I/O-bound steps reaches its
`max_in_flight`, while CPU-bound blocks do not grow the pool (`make bench` times the ramp)."""

from __future__ import annotations

from typing import Any

import pytest

from noetl_core.playbook import load_text
from noetl_core.runtime import payloads

pytestmark = pytest.mark.integration

WIDE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: io_wide}
workflow:
  - step: start
    loop: {in: "{{ range(200) | list }}", iterator: n, spec: {mode: parallel, max_in_flight: 20}}
    tool:
      kind: python
      code: "import time; a = time.monotonic(); time.sleep(0.02); result = [a, time.monotonic()]"
"""


def peak(spans: list[list[float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    running = top = 0
    for _, change in events:
        running += change
        top = max(top, running)
    return top


def test_an_io_bound_parallel_loop_reaches_its_max_in_flight(rt: Any) -> None:
    execution_id = rt.start(load_text(WIDE), {})
    terminal = rt.wait(execution_id, 120)
    assert terminal is not None and terminal.body["status"] == "completed"
    spans = payloads.load(rt.payloads, terminal.body["result"])
    assert len(spans) == 200
    assert peak(spans) == 20  # the declared width, never more
    assert rt.bus.threads >= 20


def test_cpu_bound_blocks_do_not_grow_the_pool_to_the_loops_width(rt: Any) -> None:
    text = WIDE.replace("time.sleep(0.02)", "sum(range(20000))").replace("io_wide", "cpu")
    terminal = rt.wait(rt.start(load_text(text), {}), 120)
    assert terminal is not None and terminal.body["status"] == "completed"
    # the I/O test above reaches 20 threads; busy blocks keep the base pool (one doubling
    # is allowed: a stall of 50 ms without a finished block doubles it, on a loaded host)
    assert rt.bus.threads <= 2 * rt.bus.base_workers
