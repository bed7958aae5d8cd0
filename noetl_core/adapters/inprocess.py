"""In-process command bus (an elastic pool of worker threads) and timer, for the
embedded default.

Parallel branches and loop iterations really run at once on the pool; a retry delay is a
timer entry, not a sleeping worker. The pool starts with two threads per core: Python
blocks contend for one interpreter lock, and more threads than that only add switching
(measured: a 100-wide fan-out of trivial steps ran ~40% slower on 8 threads than on 2).
When work waits in the queue, no thread is free, the process used less than half a
core over the last 10 ms and the watcher thread woke on time (the interpreter lock was
free: the running blocks wait on I/O, HTTP, a database, a sleep), the pool adds a thread
per queued note, up to its maximum: an I/O-bound parallel loop reaches its
`max_in_flight` within a tick or two, while CPU-bound blocks, which keep the process
busy, add no threads. When no block finished for 50 ms, it doubles. Threads above the
base exit after two idle seconds. A worker that publishes its block's successors runs
the first one itself next, so a chain stays on one thread instead of handing each block
over; it keeps one note per delivery (a worker that commits for others and publishes
their successors wakes other workers for them).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from ..runtime.ports import Note

log = logging.getLogger(__name__)
Handler = Callable[[Note], None]
STARVED_AFTER = 0.05  # seconds without a finished block while work waits
TICK = 0.01  # seconds between the pool watcher's looks at the CPU while work waits
IO_BOUND = 0.5  # cores: using less while work waits, the running blocks wait on I/O
LATE = 0.002  # seconds: the watcher woke later than that, a block was computing
IDLE_RETIRE = 2.0  # seconds an extra thread may stay idle before it exits


class InProcessBus:
    def __init__(self, max_workers: int, base_workers: int | None = None):
        self.max_workers = max(1, max_workers)
        cores = os.cpu_count() or 1
        self.base_workers = min(self.max_workers, base_workers or 2 * cores)
        self._handler: Handler | None = None
        self._queue: deque[Note] = deque()
        lock = threading.Lock()
        self._has_work = threading.Condition(lock)  # workers wait here
        self._cond = threading.Condition(lock)  # the pool watcher and wait_idle wait here
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._running = 0
        self._last_finish = time.monotonic()
        self._closed = False
        self._local = threading.local()
        self._monitor = threading.Thread(target=self._watch, name="noetl-pool", daemon=True)
        self._monitor.start()

    def bind(self, handler: Handler) -> None:
        self._handler = handler

    def publish(self, notes: Sequence[Note]) -> None:
        """Queue notes. A worker publishing its block's successors takes the first one
        itself when its block returns (no hand-off to another thread for a chain); the
        rest wake idle workers."""
        if not notes:
            return
        keep = 0
        if getattr(self._local, "worker", False) and not getattr(self._local, "kept", True):
            keep, self._local.kept = 1, True  # one per delivery: the rest wake others
        with self._cond:
            self._queue.extend(notes)
            waiting = len(self._queue) - keep
            missing = min(waiting - self._idle, self.base_workers - len(self._threads))
            for _ in range(max(0, missing)):
                self._spawn()
            if len(notes) > keep:
                self._has_work.notify(len(notes) - keep)
                if not self._idle:  # nobody free: the watcher may have to grow the pool
                    self._cond.notify_all()
            # a note this worker keeps is not waiting for anyone: waking the watcher for
            # it made every block of a chain switch threads once more

    def _spawn(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"noetl-worker-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        self._local.worker = True
        while True:
            with self._has_work:
                self._idle += 1
                while not self._queue and not self._closed:
                    woke = self._has_work.wait(IDLE_RETIRE)
                    if not woke and not self._queue and len(self._threads) > self.base_workers:
                        self._idle -= 1
                        self._threads.remove(threading.current_thread())
                        return
                self._idle -= 1
                if not self._queue:
                    return
                note = self._queue.popleft()
                self._local.kept = False
                self._running += 1
                if self._queue and not self._idle:  # work left and nobody free
                    self._cond.notify_all()
            try:
                self._deliver(note)
            finally:
                with self._cond:
                    self._running -= 1
                    self._last_finish = time.monotonic()
                    if not self._running and not self._queue:
                        self._cond.notify_all()  # wake wait_idle

    def _deliver(self, note: Note) -> None:
        try:
            if self._handler is None:
                raise RuntimeError("the command bus has no handler bound")
            self._handler(note)
        except Exception:  # the runtime records failures itself; this is a last resort
            log.exception("block for command %s failed outside the runtime", note.command_id)

    def _watch(self) -> None:
        """Grow the pool while queued work waits behind blocks that wait on I/O."""
        with self._cond:
            cpu, at = time.process_time(), time.monotonic()
            while not self._closed:
                if not self._queue or len(self._threads) >= self.max_workers:
                    self._cond.wait()
                    cpu, at = time.process_time(), time.monotonic()
                    continue
                asleep = time.monotonic()
                notified = self._cond.wait(TICK)
                now = time.monotonic()
                if notified or now - at < TICK or not self._queue or self._idle:
                    continue
                busy = (time.process_time() - cpu) / (now - at)
                cpu, at = time.process_time(), now
                # A block computing holds the interpreter lock: this thread then wakes
                # late. Blocks waiting on I/O leave it free, and use little CPU.
                waiting_on_io = busy < IO_BOUND and now - asleep < TICK + LATE
                if not waiting_on_io and now - self._last_finish < STARVED_AFTER:
                    continue
                room = self.max_workers - len(self._threads)
                # waiting on I/O: a thread for each queued note; starved: double
                wanted = len(self._queue) if waiting_on_io else len(self._threads)
                for _ in range(max(1, min(wanted, room))):
                    self._spawn()
                self._last_finish = now

    @property
    def busy(self) -> int:
        """Blocks delivered and not yet finished (running or queued)."""
        with self._cond:
            return self._running + len(self._queue)

    @property
    def threads(self) -> int:
        return len(self._threads)

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._running, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop the pool once its work is done, or after `timeout` seconds: blocks still
        running then (user code that does not return) are left to their daemon threads,
        which end with the process; their executions are resumed elsewhere."""
        self.wait_idle(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._has_work.notify_all()
        for thread in self._threads:
            thread.join(timeout=0 if timeout is not None else 5)
        self._monitor.join(timeout=5)


class InProcessTimer:
    """Delivers notes to the bus at their due time from one thread."""

    def __init__(self, bus: InProcessBus, clock: Callable[[], float] = time.time):
        self._bus = bus
        self._clock = clock
        self._heap: list[tuple[float, int, Note]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="noetl-timer", daemon=True)
        self._thread.start()

    def schedule(self, note: Note, due: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._order), note))
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._heap and self._heap[0][0] <= self._clock():
                        break
                    wait = self._heap[0][0] - self._clock() if self._heap else None
                    self._cond.wait(wait)
                if self._closed:
                    return
                _, _, note = heapq.heappop(self._heap)
            self._bus.publish([note])

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)
