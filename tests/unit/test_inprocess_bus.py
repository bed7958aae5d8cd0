"""The in-process bus: it starts small, grows while queued work waits behind slow blocks,
and shrinks back when idle; the timer delivers at the due time."""

from __future__ import annotations

import threading
import time

import pytest

from noetl_core.adapters import inprocess
from noetl_core.adapters.inprocess import InProcessBus, InProcessTimer
from noetl_core.runtime.ports import Note

pytestmark = pytest.mark.unit


def test_quick_blocks_keep_the_base_pool() -> None:
    bus = InProcessBus(max_workers=32, base_workers=2)
    seen: list[str] = []
    lock = threading.Lock()

    def handler(note: Note) -> None:
        with lock:
            seen.append(note.command_id)

    bus.bind(handler)
    bus.publish([Note("E", f"c{i}") for i in range(200)])
    assert bus.wait_idle(10)
    assert sorted(seen) == sorted(f"c{i}" for i in range(200))
    assert bus.threads == 2
    bus.close()


def test_slow_blocks_make_the_pool_grow_up_to_its_maximum() -> None:
    bus = InProcessBus(max_workers=12, base_workers=2)
    running = 0
    peak = 0
    lock = threading.Lock()

    def handler(note: Note) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.3)
        with lock:
            running -= 1

    bus.bind(handler)
    started = time.monotonic()
    bus.publish([Note("E", f"c{i}") for i in range(12)])
    assert bus.wait_idle(10)
    assert peak == 12 and bus.threads <= 12
    assert time.monotonic() - started < 12 * 0.3 / 2  # far from serial
    bus.close()


def test_extra_threads_retire_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inprocess, "IDLE_RETIRE", 0.1)
    bus = InProcessBus(max_workers=8, base_workers=1)
    bus.bind(lambda note: time.sleep(0.2))
    bus.publish([Note("E", f"c{i}") for i in range(8)])
    assert bus.wait_idle(10)
    grown = bus.threads
    deadline = time.monotonic() + 5
    while bus.threads > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert grown > 1 and bus.threads == 1
    bus.close()


def test_timer_delivers_in_due_order_without_a_worker_waiting() -> None:
    bus = InProcessBus(max_workers=4, base_workers=1)
    got: list[tuple[str, float]] = []
    bus.bind(lambda note: got.append((note.command_id, time.time())))
    timer = InProcessTimer(bus)
    now = time.time()
    timer.schedule(Note("E", "late"), now + 0.3)
    timer.schedule(Note("E", "soon"), now + 0.1)
    assert bus.busy == 0 and timer.pending == 2
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [name for name, _ in got] == ["soon", "late"]
    assert got[0][1] >= now + 0.1 and got[1][1] >= now + 0.3
    timer.close()
    bus.close()
