"""Per-thread capture of standard output, so concurrent steps keep their own logs."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_local = threading.local()
_install_lock = threading.Lock()


class _ThreadRouter(io.TextIOBase):
    """Writes go to the current thread's capture buffer, or to the original stream."""

    def __init__(self, fallback: TextIO):
        self.fallback = fallback

    def write(self, text: str) -> int:
        target = getattr(_local, "buffer", None)
        if target is None:
            return int(self.fallback.write(text))
        return int(target.write(text))

    def flush(self) -> None:
        if getattr(_local, "buffer", None) is None:
            self.fallback.flush()


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _ThreadRouter):
            sys.stdout = _ThreadRouter(sys.stdout)


@contextmanager
def stdout_to(buffer: io.StringIO) -> Iterator[io.StringIO]:
    _install()
    previous = getattr(_local, "buffer", None)
    _local.buffer = buffer
    try:
        yield buffer
    finally:
        _local.buffer = previous
