"""In-process command bus (a worker thread pool) and timer, for the embedded default.

Parallel branches and loop iterations really run at once on the pool; a retry delay is
a timer entry, not a sleeping worker.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..runtime.ports import Note

log = logging.getLogger(__name__)
Handler = Callable[[Note], None]


class InProcessBus:
    def __init__(self, workers: int):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noetl-worker")
        self._handler: Handler | None = None
        self._busy = 0
        self._idle = threading.Condition()

    def bind(self, handler: Handler) -> None:
        self._handler = handler

    def publish(self, notes: Sequence[Note]) -> None:
        for note in notes:
            with self._idle:
                self._busy += 1
            self._pool.submit(self._deliver, note)

    def _deliver(self, note: Note) -> None:
        try:
            if self._handler is None:
                raise RuntimeError("the command bus has no handler bound")
            self._handler(note)
        except Exception:  # the runtime records failures itself; this is a last resort
            log.exception("block for command %s failed outside the runtime", note.command_id)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    @property
    def busy(self) -> int:
        """Blocks delivered and not yet finished (running or queued)."""
        return self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


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
