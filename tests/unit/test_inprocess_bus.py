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


def test_a_worker_keeps_one_published_note_per_delivery_and_wakes_others_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker publishing its block's successor runs it itself next (a chain stays on one
    thread); notes it publishes one by one for other blocks (as the thread that commits a
    group does, publishing each block's successors) wake idle workers instead of waiting
    behind it."""
    monkeypatch.setattr(inprocess, "IDLE_RETIRE", 60.0)  # an idle worker sleeps until woken
    bus = InProcessBus(max_workers=2, base_workers=2)  # no growth: only a wake-up can help
    threads: dict[str, str] = {}
    started = threading.Event()
    release = threading.Event()

    def handler(note: Note) -> None:
        threads[note.command_id] = threading.current_thread().name
        if note.command_id == "first":
            bus.publish([Note("E", "kept")])  # one at a time, as continuations publish
            bus.publish([Note("E", "handed")])
            started.set()
            assert release.wait(5)  # the handed note must not wait for this block

    bus.bind(handler)
    bus.publish([Note("E", "warm-a"), Note("E", "warm-b")])  # both base workers exist, idle
    assert bus.wait_idle(5) and bus.threads == 2
    bus.publish([Note("E", "first")])
    assert started.wait(5)
    deadline = time.monotonic() + 5
    while not {"kept", "handed"} & set(threads) and time.monotonic() < deadline:
        time.sleep(0.01)
    ran_meanwhile = {"kept", "handed"} & set(threads)
    release.set()
    assert bus.wait_idle(10)
    assert ran_meanwhile, "both notes waited behind the block that published them"
    assert all(threads[n] != threads["first"] for n in ran_meanwhile)
    bus.close()
