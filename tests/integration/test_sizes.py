"""No size cliff, the same on both backends: large workloads, ctx values, loop items,
playbook sources and callback bodies go by reference, every entry stays small, wide
loops complete with their join once, and what still cannot fit fails naming the limit.
Each test runs on the embedded default and on the emulator stack (blocks in the worker
function, Firestore log, Cloud Storage payloads)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from noetl_core.engine import entries as E
from noetl_core.playbook import load_text
from noetl_core.runtime import payloads, replay
from noetl_core.runtime.block import Runtime

from .test_callbacks import WAITER
from .test_cloud_faults import completed_once

pytestmark = pytest.mark.integration

SMALL_ENTRY = 70_000  # bytes: an inline result (64 KiB) and a little more


@pytest.fixture(params=["embedded", "emulators"])
def runtime(request: pytest.FixtureRequest) -> Runtime:
    made: Runtime = request.getfixturevalue("rt" if request.param == "embedded" else "cloud_rt")
    return made


def finished(rt: Runtime, execution_id: str, timeout: float = 120) -> Any:
    terminal = rt.wait(execution_id, timeout)
    assert terminal is not None, f"{execution_id} did not finish"
    return terminal


def result(rt: Runtime, terminal: Any) -> Any:
    assert terminal.body["status"] == "completed", terminal.body.get("error")
    return payloads.load(rt.payloads, terminal.body["result"])


def largest_entry(rt: Runtime, execution_id: str) -> int:
    return max(len(E.stored_json(e)) for e in rt.log.entries(execution_id))


def reproduced(rt: Runtime, execution_id: str) -> None:
    _, checks = replay.verify(rt, execution_id)
    assert checks and all(c.ok for c in checks), [c.detail for c in checks if not c.ok]


CTX_CARRY = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: ctx_carry}
workflow:
  - step: start
    tool: {kind: python, code: "result = 'x' * 1_100_000"}
    set: {ctx.big: "{{ start }}"}
    next: grow
  - step: grow
    tool: {kind: python, input: {b: "{{ ctx.big }}"}, code: "result = len(b)"}
    set: {ctx.big: "{{ ctx.big ~ 'y' }}", ctx.n: "{{ grow }}"}
    next: fork
  - step: fork
    tool: {kind: noop}
    next:
      spec: {mode: inclusive}
      arcs: [{step: left}, {step: right, set: {ctx.side: "{{ ctx.big[:3] }}"}}]
  - step: left
    tool: {kind: python, input: {b: "{{ ctx.big }}"}, code: "result = b[-2:]"}
    next: join
  - step: right
    tool: {kind: python, input: {b: "{{ ctx.big }}"}, code: "result = len(b)"}
    next: join
  - step: join
    tool:
      kind: python
      input: {b: "{{ ctx.big }}", n: "{{ ctx.n }}", side: "{{ ctx.side }}", l: "{{ left }}", r: "{{ right }}"}
      code: "result = {'len': len(b), 'tail': b[-2:], 'n': n, 'side': side, 'l': l, 'r': r}"
"""


def test_a_1_1_mb_ctx_value_travels_through_several_steps(runtime: Runtime) -> None:
    execution_id = runtime.start(load_text(CTX_CARRY), {})
    got = result(runtime, finished(runtime, execution_id))
    assert got == {
        "len": 1_100_001,
        "tail": "xy",
        "n": 1_100_000,
        "side": "xxx",
        "l": "xy",
        "r": 1_100_001,
    }
    assert largest_entry(runtime, execution_id) < SMALL_ENTRY
    reproduced(runtime, execution_id)


WORKLOAD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big_workload}
workload: {blob: "", tag: none}
workflow:
  - step: start
    tool: {kind: python, input: {b: "{{ workload.blob }}"}, code: "result = len(b)"}
    next: again
  - step: again
    tool:
      kind: python
      input: {b: "{{ ctx.blob }}", t: "{{ ctx.tag }}", n: "{{ start }}"}
      code: "result = [len(b), b[:2], t, n]"
"""


def test_a_2_mb_workload_completes(runtime: Runtime) -> None:
    workload = {"blob": "wl" * 1_000_000, "tag": "big"}
    execution_id = runtime.start(load_text(WORKLOAD), workload)
    got = result(runtime, finished(runtime, execution_id))
    assert got == [2_000_000, "wl", "big", 2_000_000]
    start = runtime.log.get(E.start_id(execution_id))
    assert start is not None and E.is_spilled(start.body["workload"])
    assert largest_entry(runtime, execution_id) < SMALL_ENTRY
    reproduced(runtime, execution_id)


def test_a_1_2_mb_playbook_source_is_started_from_the_payload_store(runtime: Runtime) -> None:
    """The worker (on the stack, another process) parses the playbook from the start
    entry's source, stored by reference."""
    text = WORKLOAD.replace("tag: none}", 'tag: none, pad: "' + "p" * 1_200_000 + '"}')
    execution_id = runtime.start(load_text(text), {"blob": "ab"})
    assert result(runtime, finished(runtime, execution_id)) == [2, "ab", "none", 2]
    start = runtime.log.get(E.start_id(execution_id))
    assert start is not None and E.is_spilled(start.body["source"])
    assert largest_entry(runtime, execution_id) < SMALL_ENTRY


ITEMS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big_items}
workflow:
  - step: start
    tool: {kind: python, code: "result = [{'i': i, 'pad': 'q' * 20_000} for i in range(60)]"}
    next: each
  - step: each
    loop: {in: "{{ start }}", iterator: it, spec: {mode: parallel, max_in_flight: 25}}
    tool: {kind: python, input: {it: "{{ it }}"}, code: "result = it['i'] * len(it['pad'])"}
    set: {ctx.last: "{{ it.pad }}"}
    next: total
  - step: total
    tool: {kind: python, input: {xs: "{{ each }}", last: "{{ ctx.last }}"}, code: "result = [sum(xs), len(last)]"}
"""


def test_1_2_mb_of_loop_items_each_20_kb(runtime: Runtime) -> None:
    execution_id = runtime.start(load_text(ITEMS), {})
    got = result(runtime, finished(runtime, execution_id))
    assert got == [sum(range(60)) * 20_000, 20_000]
    assert largest_entry(runtime, execution_id) < SMALL_ENTRY
    reproduced(runtime, execution_id)


def test_a_record_that_cannot_fit_fails_naming_the_limit(runtime: Runtime) -> None:
    """Arc `args` travel in the next command's frame: 1.1 MB of them make an entry over
    the event log's 1,000,000 bytes, refused whole on both backends and recorded as the
    step's failure (not dead-lettered, not half written)."""
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: too_big}
workflow:
  - step: start
    tool: {kind: python, code: "result = 'z' * 1_100_000"}
    next: [{step: second, args: {blob: "{{ start }}"}}]
  - step: second
    tool: {kind: noop}
"""
    execution_id = runtime.start(load_text(text), {})
    terminal = finished(runtime, execution_id)
    assert terminal.body["status"] == "failed"
    message = terminal.body["error"]["message"]
    assert "over the event log's limit of 1,000,000 bytes per entry" in message, message
    assert terminal.body["error"]["step"] == "start"
    entries = runtime.log.entries(execution_id)
    assert not [e for e in entries if e.step == "second"]  # the refused batch wrote nothing
    assert largest_entry(runtime, execution_id) < SMALL_ENTRY


@pytest.fixture
def callback_base(runtime: Runtime) -> Iterator[None]:
    """The embedded runtime's callback endpoint (the stack has its callback function)."""
    if runtime.settings.callback_url:
        yield
        return
    from noetl_core.serve import Server

    server = Server(runtime).start()
    try:
        yield
    finally:
        server.stop()


def test_a_900_kb_callback_body_is_the_steps_result_by_reference(
    runtime: Runtime, callback_base: None
) -> None:
    execution_id = runtime.start(load_text(WAITER.replace("TIMEOUT", "60")), {})
    deadline = time.monotonic() + 30
    while not runtime.log.find(execution_id, "pending"):
        assert time.monotonic() < deadline, "the step never started waiting"
        time.sleep(0.05)
    url = runtime.log.find(execution_id, "pending")[0].body["output"]["inline"]["handed"]
    body = json.dumps({"blob": "c" * 900_000}).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 202
    got = result(runtime, finished(runtime, execution_id, 60))
    assert got == {"blob": "c" * 900_000}
    assert largest_entry(runtime, execution_id) < SMALL_ENTRY


def wide_loop(items: int, spec: str) -> str:
    return f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: wide}}
workflow:
  - step: start
    loop: {{in: "{{{{ range({items}) | list }}}}", iterator: i, spec: {spec}}}
    tool: {{kind: python, input: {{i: "{{{{ i }}}}"}}, code: "result = i * 7"}}
    next: total
  - step: total
    tool:
      kind: python
      input: {{xs: "{{{{ start }}}}"}}
      code: "result = {{'n': len(xs), 'ordered': xs == [i * 7 for i in range({items})]}}"
"""


@pytest.mark.parametrize(
    ("items", "spec"),
    [(2500, "{mode: parallel}"), (1500, "{mode: parallel, max_in_flight: 1500}")],
    ids=["2500-max_in_flight-unset", "1500-max_in_flight-1500"],
)
def test_a_wide_loop_completes_with_its_join_once(runtime: Runtime, items: int, spec: str) -> None:
    """The activation is one entry however wide its first wave (Firestore takes 500
    writes per commit), its notes go out in Publish calls of at most 1,000, and the last
    wave is settled through a tally tree that never reads more than 16 entries."""
    started = time.monotonic()
    execution_id = runtime.start(load_text(wide_loop(items, spec)), {})
    got = result(runtime, finished(runtime, execution_id, 240))
    took = time.monotonic() - started
    assert got == {"n": items, "ordered": True}
    entries = runtime.log.entries(execution_id)
    assert len([e for e in entries if e.kind == "loopdone"]) == 1
    assert len([e for e in entries if e.kind == "issue" and e.step == "total"]) == 1
    activation = next(e for e in entries if e.kind == "done" and "loop" in e.body)
    assert (
        activation.dc == items
        and E.issued_iterations(activation)[-1] == f"{activation.command_id}.{items - 1}"
    )
    completed_once(runtime, execution_id)
    print(f"{items} items ({spec}) in {took:.1f} s")
