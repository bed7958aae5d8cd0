"""Which process runs an embedded execution: one locked file per execution.

On the embedded default, the process that runs an execution's blocks holds an exclusive
`flock` on `NOETL_HOME/running/<execution_id>.lock` from its start (or its resumption)
until its terminal entry. The operating system drops the lock when the process dies,
however it dies (SIGKILL included), so "the lock can be taken" means exactly "nobody
runs this execution": that is how `noetl resume` and `noetl serve` tell an interrupted
execution from one that another process is running. This is the embedded counterpart of
a claim's lease on the cloud runtime, and costs one `flock` per execution, none per
block.

A released lock file is unlinked while still locked; a process that opened it just
before checks, once it holds the lock, that its file is still the one at the path, and
tries again if not (so two processes never hold "the" lock of one execution at once).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from pathlib import Path

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")  # a file name, never a path


class ExecutionLocks:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def _path(self, execution_id: str) -> Path:
        if not _SAFE.match(execution_id):
            raise ValueError(f"not an execution id: {execution_id!r}")
        return self.root / f"{execution_id}.lock"

    def take(self, execution_id: str) -> bool:
        """Hold the execution's lock (True, also when this process holds it already);
        False when another live process holds it."""
        with self._lock:
            if execution_id in self._held:
                return True
            path = self._path(execution_id)
            self.root.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return False
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    self._held[execution_id] = fd
                    return True
                os.close(fd)  # released and unlinked meanwhile: lock the new file

    def held(self, execution_id: str) -> bool:
        with self._lock:
            return execution_id in self._held

    def release(self, execution_id: str) -> None:
        with self._lock:
            fd = self._held.pop(execution_id, None)
            if fd is None:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(execution_id))
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            held, self._held = self._held, {}
        for fd in held.values():
            os.close(fd)  # the files stay: whoever resumes these executions reuses them
